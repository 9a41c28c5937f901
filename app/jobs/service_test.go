package jobs_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/iotjobs/iotjobs/adapters/membroker"
	"github.com/iotjobs/iotjobs/app/jobs"
	"github.com/iotjobs/iotjobs/domain/job"
	"github.com/iotjobs/iotjobs/domain/jobtopic"
	"github.com/iotjobs/iotjobs/testkit/jobstest"
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// svcEnv is a jobs Client of thing-1 talking to the fake service over
// membroker.
type svcEnv struct {
	t      *testing.T
	ctx    context.Context
	b      *membroker.Broker
	svc    *jobstest.Service
	c      *jobs.Client
	events chan jobs.Event
}

func newSvcEnv(t *testing.T) *svcEnv {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	e := &svcEnv{t: t, ctx: ctx, b: membroker.New(membroker.Options{}), events: make(chan jobs.Event, 100)}
	t.Cleanup(func() { e.b.Close() })
	svcConn, err := e.b.Connect("service")
	if err != nil {
		t.Fatal(err)
	}
	e.svc = jobstest.New(jobstest.Options{Clock: jobstest.NewFakeClock(t0), Logf: t.Logf})
	if err := e.svc.Start(ctx, svcConn); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.svc.Close() })
	dev, err := e.b.Connect("device")
	if err != nil {
		t.Fatal(err)
	}
	e.c, err = jobs.New(ctx, dev, jobs.Options{Thing: "thing-1", OnEvent: func(ev jobs.Event) { e.events <- ev }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := e.c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return e
}

func (e *svcEnv) create(id string, things ...string) {
	e.t.Helper()
	if err := e.svc.CreateJob(e.ctx, jobstest.JobSpec{JobID: id, Document: json.RawMessage(`{"op":"` + id + `"}`), Targets: things}); err != nil {
		e.t.Fatal(err)
	}
}

func (e *svcEnv) event() jobs.Event {
	e.t.Helper()
	select {
	case ev := <-e.events:
		return ev
	case <-e.ctx.Done():
		e.t.Fatal("no event")
		return jobs.Event{}
	}
}

// quiesce waits until the broker delivered everything.
func (e *svcEnv) quiesce() {
	e.t.Helper()
	if err := e.b.Quiesce(e.ctx); err != nil {
		e.t.Fatal(err)
	}
}

func TestServiceLifecycle(t *testing.T) {
	e := newSvcEnv(t)
	ctx := e.ctx
	e.create("j1", "thing-1")
	e.create("j2", "thing-1", "thing-2")
	e.create("other", "thing-2")

	// j1: notify and notify-next; j2: notify only (j1 stays next).
	wants := []jobs.EventKind{jobs.EventJobsChanged, jobs.EventNextChanged, jobs.EventJobsChanged}
	for i, want := range wants {
		if ev := e.event(); ev.Kind != want {
			t.Fatalf("event %d = %v, want %v", i, ev.Kind, want)
		}
	}
	if !e.c.Changed() {
		t.Error("Changed() = false after notifications, want true")
	}

	in, queued, err := e.c.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(in) != 0 || len(queued) != 2 || queued[0].ID() != "j1" || queued[1].ID() != "j2" {
		t.Fatalf("List = %v, %v; want [], [j1 j2]", in, queued)
	}
	j1 := queued[0]
	if err := j1.Describe(ctx); err != nil {
		t.Fatal(err)
	}
	if j1.Status() != job.Queued || j1.Version() != 1 || string(j1.Document()) != `{"op":"j1"}` {
		t.Errorf("j1 = %s v%d %s, want QUEUED v1 {\"op\":\"j1\"}", j1.Status(), j1.Version(), j1.Document())
	}
	if err := j1.Update(ctx, job.InProgress, job.StatusDetails{"progress": "50"}); err != nil {
		t.Fatal(err)
	}
	if j1.Version() != 2 || j1.Status() != job.InProgress {
		t.Errorf("j1 after update = %s v%d, want IN_PROGRESS v2", j1.Status(), j1.Version())
	}
	if err := j1.Update(ctx, job.Succeeded, nil); err != nil {
		t.Fatal(err)
	}
	got, _ := e.svc.Execution("thing-1", "j1")
	if got.Status != job.Succeeded || got.StatusDetails["progress"] != "50" || got.VersionNumber != 3 {
		t.Errorf("service's j1 = %s %v v%d, want SUCCEEDED progress=50 v3", got.Status, got.StatusDetails, got.VersionNumber)
	}
	var versions []*job.Version
	for _, r := range e.svc.Requests() {
		if r.Kind == jobtopic.Update {
			var u job.UpdateRequest
			json.Unmarshal(r.Body, &u)
			versions = append(versions, u.ExpectedVersion)
		}
	}
	if len(versions) != 2 || versions[0] == nil || *versions[0] != 1 || versions[1] == nil || *versions[1] != 2 {
		t.Errorf("expected versions sent = %v, want [1 2]", versions)
	}
	if err := j1.Describe(ctx); !errors.Is(err, job.ErrTerminalStateReached) {
		t.Errorf("Describe of a succeeded job: got %v, want TerminalStateReached", err)
	}

	// The next one: describe $next, then start it.
	next, err := e.c.Describe(ctx, job.NextJobID, job.DescribeRequest{})
	if err != nil || next.Execution == nil || next.Execution.JobID != "j2" {
		t.Fatalf("Describe($next) = %+v, %v; want j2", next, err)
	}
	started, err := e.c.StartNext(ctx, job.StartNextRequest{StatusDetails: job.StatusDetails{"s": "1"}})
	if err != nil || started.Execution == nil || started.Execution.JobID != "j2" || started.Execution.Status != job.InProgress {
		t.Fatalf("StartNext = %+v, %v; want j2 IN_PROGRESS", started, err)
	}
	p, err := e.c.GetPending(ctx)
	if err != nil || len(p.InProgressJobs) != 1 || p.InProgressJobs[0].JobID != "j2" || len(p.QueuedJobs) != 0 {
		t.Fatalf("GetPending = %+v, %v; want j2 in progress", p, err)
	}
	u, err := e.c.Update(ctx, "j2", job.UpdateRequest{Status: job.Failed, ExpectedVersion: &started.Execution.VersionNumber, IncludeJobDocument: true})
	if err != nil || string(u.JobDocument) != `{"op":"j2"}` {
		t.Fatalf("Update j2 = %+v, %v", u, err)
	}
	none, err := e.c.StartNext(ctx, job.StartNextRequest{})
	if err != nil || none.Execution != nil {
		t.Errorf("StartNext with nothing pending = %+v, %v; want no execution", none, err)
	}
	if s := e.c.Stats(); s.Waiting != 0 || s.DroppedReplies != 0 {
		t.Errorf("Stats = %+v, want nothing waiting or dropped", s)
	}
}

func TestServiceRejections(t *testing.T) {
	e := newSvcEnv(t)
	ctx := e.ctx
	e.create("j1", "thing-1")
	e.create("j2", "thing-1")

	t.Run("canceled while running", func(t *testing.T) {
		j := e.c.Job("j1")
		if err := j.Update(ctx, job.InProgress, nil); err != nil {
			t.Fatal(err)
		}
		if err := e.svc.CancelJob(ctx, "j1", true); err != nil {
			t.Fatal(err)
		}
		err := j.Update(ctx, job.Succeeded, nil)
		if !errors.Is(err, job.ErrInvalidStateTransition) {
			t.Fatalf("got %v, want InvalidStateTransition", err)
		}
		var rej *job.RejectedError
		if !errors.As(err, &rej) || rej.ExecutionState == nil || rej.ExecutionState.Status != job.Canceled {
			t.Errorf("rejection = %+v, want the CANCELED state", rej)
		}
		if j.Status() != job.Canceled {
			t.Errorf("Status() = %s, want CANCELED", j.Status())
		}
	})
	t.Run("version mismatch", func(t *testing.T) {
		v := job.Version(9)
		_, err := e.c.Update(ctx, "j2", job.UpdateRequest{Status: job.InProgress, ExpectedVersion: &v})
		var rej *job.RejectedError
		if !errors.Is(err, job.ErrVersionMismatch) || !errors.As(err, &rej) || rej.ExecutionState == nil || rej.ExecutionState.VersionNumber != 1 {
			t.Fatalf("got %v, want VersionMismatch with version 1", err)
		}
	})
	t.Run("deleted", func(t *testing.T) {
		if err := e.svc.DeleteExecution(ctx, "thing-1", "j2"); err != nil {
			t.Fatal(err)
		}
		if err := e.c.Job("j2").Describe(ctx); !errors.Is(err, job.ErrResourceNotFound) {
			t.Errorf("got %v, want ResourceNotFound", err)
		}
	})
	t.Run("throttled", func(t *testing.T) {
		e.svc.InjectError(job.CodeRequestThrottled, 1)
		_, err := e.c.GetPending(ctx)
		var rej *job.RejectedError
		if !errors.As(err, &rej) || !rej.Retryable() {
			t.Fatalf("got %v, want a retryable rejection", err)
		}
		if _, err := e.c.GetPending(ctx); err != nil {
			t.Errorf("retry: %v", err)
		}
	})
}

func TestServiceResync(t *testing.T) {
	e := newSvcEnv(t)
	e.create("j1", "thing-1")
	for range 2 { // notify, notify-next
		e.event()
	}
	e.c.Changed()
	// The connection drops while a job is queued: its notifications are lost.
	if err := e.b.DropConnection("device"); err != nil {
		t.Fatal(err)
	}
	if ev := e.event(); ev.Kind != jobs.EventLost {
		t.Fatalf("event = %v, want Lost", ev.Kind)
	}
	e.create("j2", "thing-1")
	if err := e.b.Reconnect("device"); err != nil {
		t.Fatal(err)
	}
	ev := e.event()
	if ev.Kind != jobs.EventResynced || ev.Err != nil || ev.Pending == nil {
		t.Fatalf("event = %+v, want Resynced", ev)
	}
	if q := ev.Pending.QueuedJobs; len(q) != 2 || q[1].JobID != "j2" {
		t.Errorf("resynced queue = %+v, want j1, j2", q)
	}
	if !e.c.Changed() {
		t.Error("Changed() after a resync = false, want true")
	}
}

func TestServiceDuplicateNotifications(t *testing.T) {
	e := newSvcEnv(t)
	if err := e.b.DuplicateNext("$aws/things/thing-1/jobs/+", 2); err != nil { // notify, notify-next
		t.Fatal(err)
	}
	e.create("j1", "thing-1")
	e.quiesce()
	for _, want := range []jobs.EventKind{jobs.EventJobsChanged, jobs.EventNextChanged} {
		if ev := e.event(); ev.Kind != want {
			t.Fatalf("event = %v, want %v", ev.Kind, want)
		}
	}
	if got := e.c.Stats().DuplicateNotifications; got != 2 {
		t.Errorf("DuplicateNotifications = %d, want 2", got)
	}
}

func TestServiceConcurrentClients(t *testing.T) {
	// Two clients of the same thing race to update one job with the
	// version they described: exactly one wins.
	e := newSvcEnv(t)
	e.create("j1", "thing-1")
	dev2, err := e.b.Connect("device-2")
	if err != nil {
		t.Fatal(err)
	}
	c2, err := jobs.New(e.ctx, dev2, jobs.Options{Thing: "thing-1"})
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	a, b := e.c.Job("j1"), c2.Job("j1")
	for _, j := range []*jobs.Job{a, b} {
		if err := j.Describe(e.ctx); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, j := range []*jobs.Job{a, b} {
		wg.Go(func() { errs[i] = j.Update(e.ctx, job.InProgress, nil) })
	}
	wg.Wait()
	wins := 0
	for _, err := range errs {
		switch {
		case err == nil:
			wins++
		case !errors.Is(err, job.ErrVersionMismatch):
			t.Errorf("got %v, want nil or VersionMismatch", err)
		}
	}
	if wins != 1 {
		t.Errorf("%d updates won, want 1 (errors %v)", wins, errs)
	}
	if a.Version() != 2 || b.Version() != 2 {
		t.Errorf("versions learned = %d, %d; want 2, 2", a.Version(), b.Version())
	}
}
