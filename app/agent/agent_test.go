package agent_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iotjobs/iotjobs/adapters/membroker"
	"github.com/iotjobs/iotjobs/app/agent"
	"github.com/iotjobs/iotjobs/app/jobs"
	"github.com/iotjobs/iotjobs/domain/job"
	"github.com/iotjobs/iotjobs/domain/jobtopic"
	"github.com/iotjobs/iotjobs/ports"
	"github.com/iotjobs/iotjobs/testkit/jobstest"
)

// TestJobEnds runs one job to each end a handler can give it.
func TestJobEnds(t *testing.T) {
	boom := errors.New("disk full")
	ok := func(context.Context, agent.Job, agent.Progress) error { return nil }
	tests := []struct {
		name    string
		doc     string
		handler agent.HandlerFunc // the Mux's handler of "op"
		want    job.Status
		reason  string // want the reason detail; "" for none
		err     func(error) bool
	}{
		{name: "success", doc: `{"operation":"op"}`, handler: ok, want: job.Succeeded,
			err: func(err error) bool { return err == nil }},
		{name: "failure", doc: `{"operation":"op"}`, want: job.Failed, reason: "disk full",
			handler: func(context.Context, agent.Job, agent.Progress) error { return boom },
			err:     func(err error) bool { return err == boom }},
		{name: "rejection", doc: `{"operation":"op"}`, want: job.Rejected, reason: "disk full",
			handler: func(context.Context, agent.Job, agent.Progress) error {
				return fmt.Errorf("check: %w", agent.Reject(boom))
			},
			err: func(err error) bool {
				var rej *agent.RejectError
				return errors.As(err, &rej) && errors.Is(err, boom)
			}},
		{name: "unknown operation", doc: `{"operation":"dance"}`, handler: ok, want: job.Rejected,
			reason: `agent: unknown operation "dance"`,
			err:    func(err error) bool { return errors.Is(err, agent.ErrUnknownOperation) }},
		{name: "invalid document", doc: `{"steps":[]}`, handler: ok, want: job.Rejected,
			reason: "agent: invalid job document: no steps",
			err:    func(err error) bool { return errors.Is(err, agent.ErrInvalidDocument) }},
		{name: "panic", doc: `{"operation":"op"}`, want: job.Failed, reason: "handler panicked: boom",
			handler: func(context.Context, agent.Job, agent.Progress) error { panic("boom") },
			err: func(err error) bool {
				var p *agent.PanicError
				return errors.As(err, &p) && p.Value == "boom" && len(p.Stack) > 0
			}},
		{name: "goexit", doc: `{"operation":"op"}`, want: job.Failed,
			reason:  "handler exited without returning (runtime.Goexit)",
			handler: func(context.Context, agent.Job, agent.Progress) error { runtime.Goexit(); return nil },
			err:     func(err error) bool { return err != nil }},
		{name: "managed template", want: job.Succeeded,
			doc: `{"version":"1.0","steps":[{"action":{"name":"Run","type":"runHandler","input":{"handler":"op","args":["a","b"]}}}]}`,
			handler: func(_ context.Context, j agent.Job, _ agent.Progress) error {
				if op := j.Operation; op.Name != "op" || !slices.Equal(op.Args, []string{"a", "b"}) || op.Action != "Run" {
					return fmt.Errorf("operation %+v", op)
				}
				return nil
			},
			err: func(err error) bool { return err == nil }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, envOptions{})
			mux := agent.NewMux()
			mux.Handle("op", tt.handler)
			d := e.newAgent(agent.Config{Handler: mux})
			e.create("job-1", tt.doc)
			d.runOnce()
			r := d.result()
			if r.JobID != "job-1" || r.ExecutionNumber != 1 || r.Status != tt.want || r.ReportErr != nil || r.Resumed {
				t.Errorf("result %+v, want job-1 #1 %s, reported, not resumed", r, tt.want)
			}
			if !tt.err(r.Err) {
				t.Errorf("result error %v (%T)", r.Err, r.Err)
			}
			x := e.execution("job-1")
			if x.Status != tt.want {
				t.Errorf("service status %s, want %s", x.Status, tt.want)
			}
			if got := x.StatusDetails[agent.ReasonKey]; got != tt.reason {
				t.Errorf("reason %q, want %q", got, tt.reason)
			}
			if got, want := e.statuses("job-1"), []job.Status{job.InProgress, tt.want}; !slices.Equal(got, want) {
				t.Errorf("updates %v, want %v", got, want)
			}
		})
	}
}

// TestTakesTheScalableWay checks the requests of one job: Describe $next,
// an IN_PROGRESS update expecting the version read, the final update, and
// Describe $next again.
func TestTakesTheScalableWay(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.create("job-1", `{"operation":"op"}`) // before the agent: no notification
	d := e.newAgent(agent.Config{Handler: agent.HandlerFunc(func(context.Context, agent.Job, agent.Progress) error { return nil })})
	d.runOnce()
	var got []string
	for _, r := range e.svc.Requests() {
		s := r.Kind.String() + " " + r.JobID
		if r.Kind == jobtopic.Update {
			u := update(t, r)
			s += fmt.Sprintf(" %s v%d", u.Status, *u.ExpectedVersion)
		}
		got = append(got, s)
	}
	want := []string{"Describe $next", "Update job-1 IN_PROGRESS v1", "Update job-1 SUCCEEDED v2", "Describe $next"}
	if !slices.Equal(got, want) {
		t.Errorf("requests\n%q\nwant\n%q", got, want)
	}
}

// TestTakesFromNotifications: a job queued while the agent waits is taken
// with the version its notification showed, without a Describe of $next;
// after it, the agent describes $next to find the next one.
func TestTakesFromNotifications(t *testing.T) {
	e := newEnv(t, envOptions{})
	var got []agent.Job
	d := e.newAgent(agent.Config{Handler: agent.HandlerFunc(func(_ context.Context, j agent.Job, _ agent.Progress) error {
		got = append(got, j)
		return nil
	})})
	describes := func() int { return len(e.requests(jobtopic.Describe, job.NextJobID)) }
	d.start()
	for i, id := range []string{"job-1", "job-2"} {
		poll(t, "the Describe of $next when idle", func() bool { return describes() == i+1 })
		e.create(id, `{"operation":"op","id":"`+id+`"}`)
		if r := d.result(); r.Status != job.Succeeded || r.JobID != id {
			t.Fatalf("result %+v", r)
		}
	}
	poll(t, "the last Describe of $next", func() bool { return describes() == 3 })
	if err := d.stop(); err != nil {
		t.Fatal(err)
	}
	var reqs []string
	for _, r := range e.svc.Requests() {
		if r.Kind == jobtopic.Describe && r.JobID != job.NextJobID {
			continue // a check that a running job still runs, after a late notification
		}
		reqs = append(reqs, r.Kind.String()+" "+r.JobID)
	}
	want := []string{"Describe $next", "Update job-1", "Update job-1", "Describe $next", "Update job-2", "Update job-2", "Describe $next"}
	if !slices.Equal(reqs, want) {
		t.Errorf("requests %q, want %q", reqs, want)
	}
	if len(got) != 2 || string(got[1].Document) != `{"operation":"op","id":"job-2"}` || got[1].Execution.Status != job.Queued {
		t.Errorf("handled %+v", got)
	}
}

// TestStartNext takes jobs with StartNext when told to.
func TestStartNext(t *testing.T) {
	e := newEnv(t, envOptions{})
	var seen []agent.Job
	d := e.newAgent(agent.Config{UseStartNext: true, StepTimeout: 90 * time.Second,
		Handler: agent.HandlerFunc(func(_ context.Context, j agent.Job, _ agent.Progress) error {
			seen = append(seen, j)
			return nil
		})})
	e.create("job-1", `{"operation":"op","n":1}`)
	e.create("job-2", `{"operation":"op","n":2}`)
	d.runOnce()
	for _, id := range []string{"job-1", "job-2"} {
		if s := e.execution(id).Status; s != job.Succeeded {
			t.Errorf("%s is %s, want SUCCEEDED", id, s)
		}
	}
	if len(seen) != 2 || seen[0].ID != "job-1" || string(seen[1].Document) != `{"operation":"op","n":2}` || seen[0].Resumed {
		t.Errorf("handled %+v", seen)
	}
	if n := len(e.requests(jobtopic.Describe, job.NextJobID)); n != 0 {
		t.Errorf("%d Describe requests of $next, want none", n)
	}
	starts := e.requests(jobtopic.StartNext, "")
	if len(starts) != 3 {
		t.Fatalf("%d StartNext requests, want 3", len(starts))
	}
	if !strings.Contains(string(starts[0].Body), `"stepTimeoutInMinutes":2`) {
		t.Errorf("StartNext body %s, want the step timeout rounded up to 2 minutes", starts[0].Body)
	}
}

// TestEndedByTheService ends the running job from the service's side in
// every way there is: the handler's context ends with the cause, nothing
// more is sent about the job, and the agent moves on to the next one.
func TestEndedByTheService(t *testing.T) {
	tests := []struct {
		name    string
		cfg     agent.Config
		spec    jobstest.JobSpec
		end     func(e *env) error
		status  job.Status
		deleted bool
		// nilOnCancel makes the handler return nil, as if it finished.
		nilOnCancel bool
	}{
		{name: "execution canceled", status: job.Canceled,
			end: func(e *env) error { return e.svc.CancelExecution(e.ctx, thing, "job-1", true) }},
		{name: "job canceled, handler returns nil", status: job.Canceled, nilOnCancel: true,
			end: func(e *env) error { return e.svc.CancelJob(e.ctx, "job-1", true) }},
		{name: "removed", status: job.Removed,
			end: func(e *env) error { return e.svc.RemoveExecution(e.ctx, thing, "job-1") }},
		{name: "deleted", deleted: true,
			end: func(e *env) error { return e.svc.DeleteExecution(e.ctx, thing, "job-1") }},
		{name: "in-progress timeout", status: job.TimedOut, spec: jobstest.JobSpec{InProgressTimeout: 10 * time.Minute},
			end: func(e *env) error {
				e.svcClock.Advance(11 * time.Minute)
				return e.svc.CheckTimeouts(e.ctx)
			}},
		{name: "step timeout", status: job.TimedOut, cfg: agent.Config{StepTimeout: time.Minute},
			end: func(e *env) error {
				e.svcClock.Advance(2 * time.Minute)
				return e.svc.CheckTimeouts(e.ctx)
			}},
		{name: "concurrent, canceled", status: job.Canceled, cfg: agent.Config{Concurrency: 2},
			end: func(e *env) error { return e.svc.CancelExecution(e.ctx, thing, "job-1", true) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, envOptions{})
			b := newBlocker()
			cfg := tt.cfg
			cfg.Handler = agent.HandlerFunc(func(ctx context.Context, j agent.Job, p agent.Progress) error {
				if j.ID != "job-1" {
					return nil
				}
				err := b.HandleJob(ctx, j, p)
				if tt.nilOnCancel {
					return nil
				}
				return err
			})
			d := e.newAgent(cfg)
			spec := tt.spec
			spec.JobID, spec.Document = "job-1", []byte(`{"operation":"op"}`)
			e.createSpec(spec)
			d.start()
			b.next(t)
			if err := tt.end(e); err != nil {
				t.Fatal(err)
			}
			cause := b.cause(t)
			var ended *agent.JobEndedError
			if !errors.Is(cause, agent.ErrJobCanceled) || !errors.As(cause, &ended) {
				t.Fatalf("handler's context cause %v, want a *JobEndedError", cause)
			}
			if ended.JobID != "job-1" || ended.Status != tt.status || ended.Deleted != tt.deleted {
				t.Errorf("cause %+v, want status %q, deleted %t", ended, tt.status, tt.deleted)
			}
			r := d.result()
			if r.Status != tt.status || !errors.Is(r.Err, agent.ErrJobCanceled) || r.ReportErr != nil {
				t.Errorf("result %+v, want status %q and the cause", r, tt.status)
			}
			// The agent moves on.
			e.create("job-2", `{"operation":"op"}`)
			if r := d.result(); r.JobID != "job-2" || r.Status != job.Succeeded {
				t.Errorf("next result %+v, want job-2 SUCCEEDED", r)
			}
			for _, u := range e.requests(jobtopic.Update, "job-1") {
				if s := update(t, u).Status; s != job.InProgress {
					t.Errorf("the agent sent %s for job-1 after the service ended it", s)
				}
			}
			if x, ok := e.svc.Execution(thing, "job-1"); ok != !tt.deleted || ok && x.Status != tt.status {
				t.Errorf("service holds job-1: %t %s", ok, x.Status)
			}
			if n := b.count("job-1"); n != 1 {
				t.Errorf("job-1 ran %d times", n)
			}
		})
	}
}

// TestEndedDuringReport: the service ended the job, unseen, before the
// final report: the report is refused and the service's status stands.
func TestEndedDuringReport(t *testing.T) {
	e := newEnv(t, envOptions{})
	release := make(chan struct{})
	started := make(chan struct{})
	d := e.newAgent(agent.Config{Handler: agent.HandlerFunc(func(context.Context, agent.Job, agent.Progress) error {
		close(started)
		<-release
		return nil
	}), Client: jobs.Options{}})
	e.create("job-1", `{"operation":"op"}`)
	d.start()
	<-started
	// Lose the notifications, so that only the report finds out.
	if err := e.b.DropNext("$aws/things/"+thing+"/jobs/notify-next", 1); err != nil {
		t.Fatal(err)
	}
	if err := e.b.DropNext("$aws/things/"+thing+"/jobs/notify", 1); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.RemoveExecution(e.ctx, thing, "job-1"); err != nil {
		t.Fatal(err)
	}
	close(release)
	r := d.result()
	var ended *agent.JobEndedError
	if r.Status != job.Removed || !errors.As(r.Err, &ended) || ended.Status != job.Removed {
		t.Errorf("result %+v, want REMOVED with a *JobEndedError", r)
	}
	if s := e.execution("job-1").Status; s != job.Removed {
		t.Errorf("service status %s, want REMOVED", s)
	}
}

// TestLocalStepTimeout: the agent cancels a handler that made no progress
// for StepTimeout, and a progress report restarts the timer.
func TestLocalStepTimeout(t *testing.T) {
	e := newEnv(t, envOptions{})
	clock := newFakeClock()
	reports := make(chan job.StatusDetails)
	causes := make(chan error, 1)
	d := e.newAgent(agent.Config{Clock: clock, StepTimeout: time.Minute, ProgressInterval: 10 * time.Second,
		Handler: agent.HandlerFunc(func(ctx context.Context, _ agent.Job, p agent.Progress) error {
			for {
				select {
				case details := <-reports:
					p.Report(details)
				case <-ctx.Done():
					causes <- context.Cause(ctx)
					return ctx.Err()
				}
			}
		})})
	e.create("job-1", `{"operation":"op"}`)
	d.start()
	reportAt := func(step string) {
		t.Helper()
		reports <- job.StatusDetails{"step": step}
		poll(t, "progress "+step, func() bool { return e.execution("job-1").StatusDetails["step"] == step })
	}
	clock.waitTimer(t, t0.Add(time.Minute))
	clock.Advance(40 * time.Second)
	reportAt("1") // at 40 s: the timer now ends at 100 s
	clock.waitTimer(t, t0.Add(100*time.Second))
	clock.Advance(40 * time.Second)
	reportAt("2") // at 80 s: alive, though the first timer would have ended at 60 s
	clock.waitTimer(t, t0.Add(140*time.Second))
	clock.Advance(60 * time.Second)
	if cause := <-causes; !errors.Is(cause, agent.ErrStepTimeout) {
		t.Errorf("cause %v, want ErrStepTimeout", cause)
	}
	r := d.result()
	if r.Status != job.Failed || !errors.Is(r.Err, agent.ErrStepTimeout) || r.Duration != 140*time.Second {
		t.Errorf("result %+v, want FAILED after 140 s with ErrStepTimeout", r)
	}
	x := e.execution("job-1")
	if x.Status != job.Failed || x.StatusDetails["step"] != "2" || !strings.Contains(x.StatusDetails[agent.ReasonKey], "step timeout") {
		t.Errorf("service holds %s %v", x.Status, x.StatusDetails)
	}
	for _, u := range e.requests(jobtopic.Update, "job-1") {
		if m := update(t, u).StepTimeoutInMinutes; u.Accepted() && update(t, u).Status == job.InProgress && (m == nil || *m != 1) {
			t.Errorf("IN_PROGRESS update %s without stepTimeoutInMinutes 1", u.Body)
		}
	}
}

// TestRetries injects rejections: throttling and internal errors are
// retried, other errors are not.
func TestRetries(t *testing.T) {
	tests := []struct {
		name     string
		code     job.ErrorCode
		n        int
		attempts int
		// running injects the faults while the job runs, so that they hit
		// the final report.
		running bool
		want    job.Status // of the job
		wantErr error      // of RunOnce
	}{
		{name: "throttled take", code: job.CodeRequestThrottled, n: 3, want: job.Succeeded},
		{name: "internal error", code: job.CodeInternalError, n: 5, want: job.Succeeded},
		{name: "throttled report", code: job.CodeRequestThrottled, n: 4, running: true, want: job.Succeeded},
		{name: "throttled too long", code: job.CodeRequestThrottled, n: 20, attempts: 3, want: job.Queued, wantErr: job.ErrRequestThrottled},
		{name: "not retried", code: job.CodeInvalidRequest, n: 1, want: job.Queued, wantErr: job.ErrInvalidRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, envOptions{})
			retry := fastRetry
			if tt.attempts != 0 {
				retry.Attempts = tt.attempts
			}
			d := e.newAgent(agent.Config{Retry: retry, Handler: agent.HandlerFunc(func(context.Context, agent.Job, agent.Progress) error {
				if tt.running {
					e.svc.InjectError(tt.code, tt.n)
				}
				return nil
			})})
			e.create("job-1", `{"operation":"op"}`)
			if !tt.running {
				e.svc.InjectError(tt.code, tt.n)
			}
			err := d.a.RunOnce(e.ctx)
			if !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
				t.Errorf("RunOnce: %v, want %v", err, tt.wantErr)
			}
			if s := e.execution("job-1").Status; s != tt.want {
				t.Errorf("job-1 is %s, want %s", s, tt.want)
			}
			rejected := 0
			for _, r := range e.svc.Requests() {
				if r.Code == tt.code {
					rejected++
				}
			}
			want := tt.n
			if tt.attempts != 0 {
				want = tt.attempts
			}
			if rejected != want {
				t.Errorf("%d requests rejected with %s, want %d", rejected, tt.code, want)
			}
			e.svc.InjectError(tt.code, 0)
		})
	}
}

// TestDuplicateNotifications: notifications delivered twice, and many
// triggers at once, run each job once.
func TestDuplicateNotifications(t *testing.T) {
	for _, conc := range []int{1, 3} {
		t.Run(fmt.Sprintf("concurrency %d", conc), func(t *testing.T) {
			e := newEnv(t, envOptions{})
			b := newBlocker()
			d := e.newAgent(agent.Config{Handler: b, Concurrency: conc})
			for _, f := range []string{"notify", "notify-next"} {
				if err := e.b.DuplicateNext("$aws/things/"+thing+"/jobs/"+f, 20); err != nil {
					t.Fatal(err)
				}
			}
			d.start()
			ids := []string{"job-1", "job-2", "job-3", "job-4"}
			for _, id := range ids {
				e.create(id, `{"operation":"op"}`)
			}
			for range ids {
				b.next(t)
				b.release <- nil
			}
			for _, id := range ids {
				e.waitStatus(id, job.Succeeded)
			}
			if err := e.b.Quiesce(e.ctx); err != nil {
				t.Fatal(err)
			}
			if err := d.stop(); err != nil {
				t.Fatal(err)
			}
			for _, id := range ids {
				if n := b.count(id); n != 1 {
					t.Errorf("%s ran %d times", id, n)
				}
				if got, want := e.statuses(id), []job.Status{job.InProgress, job.Succeeded}; !slices.Equal(got, want) {
					t.Errorf("%s updates %v, want %v", id, got, want)
				}
			}
		})
	}
}

// TestReconnect drops the device's connection while a job runs: the job
// still ends once, and an end that could not be reported is reported after
// the reconnection.
func TestReconnect(t *testing.T) {
	tests := []struct {
		name string
		conc int
		// drop keeps the connection down while the job ends.
		drop bool
	}{
		{name: "disconnect", conc: 1},
		{name: "disconnect, concurrency 2", conc: 2},
		{name: "down while reporting", conc: 1, drop: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, envOptions{})
			b := newBlocker()
			resynced := make(chan jobs.Event, 10)
			retry := fastRetry
			retry.Attempts = 2
			d := e.newAgent(agent.Config{Handler: b, Concurrency: tt.conc, Retry: retry,
				Client: jobs.Options{OnEvent: func(ev jobs.Event) {
					if ev.Kind == jobs.EventResynced {
						resynced <- ev
					}
				}}})
			e.create("job-1", `{"operation":"op"}`)
			d.start()
			b.next(t)
			if !tt.drop {
				if err := e.b.Disconnect(d.id); err != nil {
					t.Fatal(err)
				}
				<-resynced
				b.release <- nil
				if r := d.result(); r.Status != job.Succeeded || r.ReportErr != nil {
					t.Errorf("result %+v, want SUCCEEDED", r)
				}
			} else {
				if err := e.b.DropConnection(d.id); err != nil {
					t.Fatal(err)
				}
				b.release <- nil
				r := d.result()
				if r.Status != job.InProgress || !errors.Is(r.ReportErr, ports.ErrNotConnected) || r.Err != nil {
					t.Errorf("result %+v, want IN_PROGRESS, not reported for want of a connection", r)
				}
				if err := e.b.Reconnect(d.id); err != nil {
					t.Fatal(err)
				}
			}
			e.waitStatus("job-1", job.Succeeded)
			if err := d.stop(); err != nil {
				t.Fatal(err)
			}
			if n := b.count("job-1"); n != 1 {
				t.Errorf("job-1 ran %d times", n)
			}
			if got, want := e.statuses("job-1"), []job.Status{job.InProgress, job.Succeeded}; !slices.Equal(got, want) {
				t.Errorf("updates %v, want %v", got, want)
			}
		})
	}
}

// TestUnreportedDoesNotBlock: a job whose end cannot be reported stays
// IN_PROGRESS at the head of the queue; the agent takes the next job past
// it, and reports it later.
func TestUnreportedDoesNotBlock(t *testing.T) {
	e := newEnv(t, envOptions{})
	b := newBlocker()
	retry := fastRetry
	retry.Attempts = 2
	d := e.newAgent(agent.Config{Handler: b, Retry: retry})
	e.create("job-1", `{"operation":"op"}`)
	e.create("job-2", `{"operation":"op"}`)
	d.start()
	if j := b.next(t); j.ID != "job-1" {
		t.Fatalf("started %s first", j.ID)
	}
	if err := e.b.DropConnection(d.id); err != nil {
		t.Fatal(err)
	}
	b.release <- nil
	if r := d.result(); r.ReportErr == nil {
		t.Fatalf("result %+v, want a report error", r)
	}
	// The resync after the reconnection, and the first report again, fail.
	e.svc.InjectError(job.CodeInvalidRequest, 2)
	if err := e.b.Reconnect(d.id); err != nil {
		t.Fatal(err)
	}
	if j := b.next(t); j.ID != "job-2" {
		t.Fatalf("started %s, want job-2", j.ID)
	}
	b.release <- nil
	e.waitStatus("job-2", job.Succeeded)
	e.waitStatus("job-1", job.Succeeded)
	if n := b.count("job-1"); n != 1 {
		t.Errorf("job-1 ran %d times", n)
	}
}

// TestRestartResumes stops an agent while its job runs; a new agent on a
// new connection resumes the job, with the details reported before.
func TestRestartResumes(t *testing.T) {
	tests := []struct {
		name string
		cfg  agent.Config
	}{
		{name: "describe next"},
		{name: "pending list", cfg: agent.Config{Concurrency: 2}},
		{name: "start next", cfg: agent.Config{UseStartNext: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, envOptions{})
			cfg1 := tt.cfg
			cfg1.ProgressInterval = time.Nanosecond
			cfg1.Handler = agent.HandlerFunc(func(ctx context.Context, _ agent.Job, p agent.Progress) error {
				p.Report(job.StatusDetails{"step": "2"})
				<-ctx.Done()
				return context.Cause(ctx)
			})
			d1 := e.newAgent(cfg1)
			e.create("job-1", `{"operation":"op"}`)
			d1.start()
			poll(t, "progress", func() bool { return e.execution("job-1").StatusDetails["step"] == "2" })
			if err := d1.stop(); err != nil {
				t.Fatalf("Run: %v", err)
			}
			r := d1.result()
			if r.Status != job.InProgress || !errors.Is(r.Err, agent.ErrStopped) || r.ReportErr != nil {
				t.Errorf("first result %+v, want IN_PROGRESS, stopped", r)
			}
			if err := d1.a.Close(); err != nil {
				t.Fatal(err)
			}
			if s := e.execution("job-1").Status; s != job.InProgress {
				t.Fatalf("job-1 is %s after the stop, want IN_PROGRESS", s)
			}

			var got agent.Job
			cfg2 := tt.cfg
			cfg2.Handler = agent.HandlerFunc(func(_ context.Context, j agent.Job, _ agent.Progress) error {
				got = j
				return nil
			})
			d2 := e.newAgent(cfg2)
			d2.runOnce()
			if !got.Resumed || got.ID != "job-1" || got.Execution.Status != job.InProgress ||
				got.Execution.StatusDetails["step"] != "2" || string(got.Document) != `{"operation":"op"}` {
				t.Errorf("resumed job %+v", got)
			}
			if r := d2.result(); r.Status != job.Succeeded || !r.Resumed {
				t.Errorf("second result %+v, want SUCCEEDED, resumed", r)
			}
			if s := e.execution("job-1").Status; s != job.Succeeded {
				t.Errorf("job-1 is %s, want SUCCEEDED", s)
			}
		})
	}
}

// TestStop: a handler that finishes despite the stop is reported.
func TestStop(t *testing.T) {
	e := newEnv(t, envOptions{})
	started := make(chan struct{})
	d := e.newAgent(agent.Config{Handler: agent.HandlerFunc(func(ctx context.Context, _ agent.Job, _ agent.Progress) error {
		close(started)
		<-ctx.Done()
		if !errors.Is(context.Cause(ctx), agent.ErrStopped) {
			return fmt.Errorf("cause %v", context.Cause(ctx))
		}
		return nil // finished all the same
	})})
	e.create("job-1", `{"operation":"op"}`)
	d.start()
	<-started
	if err := d.stop(); err != nil {
		t.Fatal(err)
	}
	if r := d.result(); r.Status != job.Succeeded {
		t.Errorf("result %+v, want SUCCEEDED", r)
	}
	if s := e.execution("job-1").Status; s != job.Succeeded {
		t.Errorf("job-1 is %s", s)
	}
}

// TestProgressRateLimit: a handler reports 1000 times; the agent sends at
// most one update per interval, and the last details with the final
// status.
func TestProgressRateLimit(t *testing.T) {
	const interval = 10 * time.Second
	tests := []struct {
		name string
		// every is how many reports pass between two moves of the clock by
		// the interval; 0: the clock does not move.
		every int
		want  int // progress updates
	}{
		{name: "time stands still", every: 0, want: 0},
		{name: "ten intervals", every: 100, want: 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newFakeClock()
			e := newEnv(t, envOptions{clock: clock})
			d := e.newAgent(agent.Config{Clock: clock, ProgressInterval: interval,
				Handler: agent.HandlerFunc(func(_ context.Context, j agent.Job, p agent.Progress) error {
					for i := range 1000 {
						n := fmt.Sprint(i)
						p.Report(job.StatusDetails{"n": n})
						if tt.every != 0 && i%tt.every == 0 {
							clock.Advance(interval)
							poll(t, "progress "+n, func() bool { return e.execution(j.ID).StatusDetails["n"] == n })
						}
					}
					return nil
				})})
			e.create("job-1", `{"operation":"op"}`)
			d.runOnce()
			ups := e.requests(jobtopic.Update, "job-1")
			if len(ups) != tt.want+2 {
				t.Fatalf("%d updates, want %d (take, %d progress, end)", len(ups), tt.want+2, tt.want)
			}
			for i := 1; i < len(ups)-1; i++ {
				if gap := ups[i].Time.Sub(ups[i-1].Time); gap < interval {
					t.Errorf("update %d came %v after the one before, want at least %v", i, gap, interval)
				}
			}
			last := update(t, ups[len(ups)-1])
			if last.Status != job.Succeeded || last.StatusDetails["n"] != "999" {
				t.Errorf("final update %s %v, want SUCCEEDED with the last details", last.Status, last.StatusDetails)
			}
		})
	}
}

// TestSanitizedDetails: details a handler reports that AWS would refuse
// are cleaned up, not sent as they are.
func TestSanitizedDetails(t *testing.T) {
	e := newEnv(t, envOptions{})
	long := strings.Repeat("é", 3000)
	d := e.newAgent(agent.Config{ProgressInterval: time.Nanosecond,
		Handler: agent.HandlerFunc(func(_ context.Context, j agent.Job, p agent.Progress) error {
			p.Report(job.StatusDetails{"bad key!": "a\x00b", "": "x", "empty": "\x01", "long": long})
			poll(t, "progress", func() bool { return e.execution(j.ID).StatusDetails["bad_key_"] == "ab" })
			p.Report(job.StatusDetails{"reason": "mine", "ok": "1"})
			return errors.New("line one\nline two\x7f" + long)
		})})
	e.create("job-1", `{"operation":"op"}`)
	d.runOnce()
	for _, r := range e.svc.Requests() {
		if !r.Accepted() {
			t.Errorf("request %s rejected: %s", r.Topic, r.Code)
		}
	}
	x := e.execution("job-1")
	if err := x.StatusDetails.Validate(); err != nil {
		t.Errorf("service holds invalid details: %v", err)
	}
	reason := x.StatusDetails[agent.ReasonKey]
	if x.Status != job.Failed || x.StatusDetails["ok"] != "1" || !strings.HasPrefix(reason, "line one line two") ||
		!strings.HasSuffix(reason, "…") || len([]rune(reason)) != job.MaxStatusDetailValueLength {
		t.Errorf("service holds %s %.80v", x.Status, x.StatusDetails)
	}
}

// TestConcurrency runs five jobs three at a time.
func TestConcurrency(t *testing.T) {
	e := newEnv(t, envOptions{})
	b := newBlocker()
	d := e.newAgent(agent.Config{Handler: b, Concurrency: 3})
	ids := []string{"job-1", "job-2", "job-3", "job-4", "job-5"}
	for _, id := range ids {
		e.create(id, `{"operation":"op","id":"`+id+`"}`)
	}
	d.start()
	got := map[string]bool{}
	for range 3 {
		j := b.next(t)
		if got[j.ID] || string(j.Document) != `{"operation":"op","id":"`+j.ID+`"}` || j.Resumed {
			t.Errorf("started %+v", j)
		}
		got[j.ID] = true
	}
	if err := e.b.Quiesce(e.ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case j := <-b.started:
		t.Fatalf("started %s while 3 run", j.ID)
	default:
	}
	for range ids {
		b.release <- nil
	}
	for _, id := range ids {
		e.waitStatus(id, job.Succeeded)
	}
	if err := d.stop(); err != nil {
		t.Fatal(err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.peak != 3 {
		t.Errorf("%d jobs ran at once at most, want 3", b.peak)
	}
	for _, id := range ids {
		if b.calls[id] != 1 {
			t.Errorf("%s ran %d times", id, b.calls[id])
		}
	}
	if n := len(e.requests(jobtopic.GetPending, "")); n == 0 {
		t.Error("no GetPending request: the pending list was not read")
	}
}

// TestRunOnce returns when nothing is left.
func TestRunOnce(t *testing.T) {
	for _, conc := range []int{1, 4} {
		for _, n := range []int{0, 3} {
			t.Run(fmt.Sprintf("concurrency %d, %d jobs", conc, n), func(t *testing.T) {
				e := newEnv(t, envOptions{})
				d := e.newAgent(agent.Config{Concurrency: conc, Handler: agent.HandlerFunc(func(context.Context, agent.Job, agent.Progress) error { return nil })})
				for i := range n {
					e.create(fmt.Sprintf("job-%d", i), `{"operation":"op"}`)
				}
				d.runOnce()
				if len(d.results) != n {
					t.Errorf("%d results, want %d", len(d.results), n)
				}
				for _, x := range e.svc.Executions() {
					if x.Status != job.Succeeded {
						t.Errorf("%s is %s", x.JobID, x.Status)
					}
				}
			})
		}
	}
}

// TestVersionMismatchOnTake: the execution changes between the Describe and
// the take: the agent reads again and takes it as it is now.
func TestVersionMismatchOnTake(t *testing.T) {
	var (
		intruder *membroker.Client
		once     sync.Once
	)
	// Right after the agent's first Describe of $next, someone else starts
	// the job: the service serves that update before the agent's.
	e := newEnv(t, envOptions{onPublish: func(id string, m ports.Message) {
		if strings.HasPrefix(id, "device-") && strings.HasSuffix(m.Topic, "/$next/get") {
			once.Do(func() {
				body := `{"status":"IN_PROGRESS","statusDetails":{"by":"intruder"},"clientToken":"intruder-1"}`
				m := ports.Message{Topic: "$aws/things/" + thing + "/jobs/job-1/update", Payload: []byte(body), QoS: ports.AtLeastOnce}
				if err := intruder.Publish(context.Background(), m); err != nil {
					t.Error(err)
				}
			})
		}
	}})
	var err error
	if intruder, err = e.b.Connect("intruder"); err != nil {
		t.Fatal(err)
	}
	var got []agent.Job
	e.create("job-1", `{"operation":"op"}`) // before the agent: no notification
	d := e.newAgent(agent.Config{Handler: agent.HandlerFunc(func(_ context.Context, j agent.Job, _ agent.Progress) error {
		got = append(got, j)
		return nil
	})})
	d.runOnce()
	if len(got) != 1 || !got[0].Resumed || got[0].Execution.Status != job.InProgress || got[0].Execution.StatusDetails["by"] != "intruder" {
		t.Errorf("handled %+v, want job-1 once, as resumed", got)
	}
	var codes []job.ErrorCode
	for _, r := range e.requests(jobtopic.Update, "job-1") {
		codes = append(codes, r.Code)
	}
	if want := []job.ErrorCode{"", job.CodeVersionMismatch, "", ""}; !slices.Equal(codes, want) {
		t.Errorf("update codes %q, want %q (intruder, take refused, take, end)", codes, want)
	}
	if s := e.execution("job-1").Status; s != job.Succeeded {
		t.Errorf("job-1 is %s", s)
	}
}
