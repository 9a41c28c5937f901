package jobs_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/iotjobs/iotjobs/adapters/membroker"
	"github.com/iotjobs/iotjobs/app/jobs"
	"github.com/iotjobs/iotjobs/domain/job"
	"github.com/iotjobs/iotjobs/domain/jobtopic"
	"github.com/iotjobs/iotjobs/ports"
	"github.com/iotjobs/iotjobs/testkit/jobstest"
)

// e2e is a Jobs client and the fake service on one in-memory broker, with a
// record of the jobs topic kinds published on it.
type e2e struct {
	t     *testing.T
	ctx   context.Context
	thing string
	b     *membroker.Broker
	clock *jobstest.FakeClock
	svc   *jobstest.Service
	c     *jobs.Client

	mu    sync.Mutex
	kinds map[jobtopic.Kind]int
}

func newE2E(t *testing.T) *e2e {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	e := &e2e{t: t, ctx: ctx, thing: "e2e-thing", clock: jobstest.NewFakeClock(t0), kinds: map[jobtopic.Kind]int{}}
	e.b = membroker.New(membroker.Options{OnPublish: func(_ string, m ports.Message) {
		if tp, err := jobtopic.Parse(m.Topic); err == nil {
			e.mu.Lock()
			e.kinds[tp.Kind]++
			e.mu.Unlock()
		}
	}})
	t.Cleanup(func() { e.b.Close() })
	svcConn, err := e.b.Connect("service")
	if err != nil {
		t.Fatal(err)
	}
	e.svc = jobstest.New(jobstest.Options{Clock: e.clock})
	if err := e.svc.Start(ctx, svcConn); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.svc.Close() })
	dev, err := e.b.Connect(e.thing)
	if err != nil {
		t.Fatal(err)
	}
	if e.c, err = jobs.New(ctx, dev, jobs.Options{Thing: e.thing}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.c.Close() })
	return e
}

func (e *e2e) create(id string) {
	e.t.Helper()
	spec := jobstest.JobSpec{JobID: id, Document: json.RawMessage(`{"id":"` + id + `"}`), Targets: []string{e.thing}}
	if err := e.svc.CreateJob(e.ctx, spec); err != nil {
		e.t.Fatalf("create %s: %v", id, err)
	}
}

func (e *e2e) update(id string, req job.UpdateRequest) {
	e.t.Helper()
	if _, err := e.c.Update(e.ctx, id, req); err != nil {
		e.t.Fatalf("update %s to %s: %v", id, req.Status, err)
	}
}

func (e *e2e) status(id string) job.Status {
	e.t.Helper()
	ex, ok := e.svc.Execution(e.thing, id)
	if !ok {
		e.t.Fatalf("the service has no execution %s", id)
	}
	return ex.Status
}

// bring creates job id and drives its execution to status from, through
// the client where a device would and the control plane where the service
// would.
func (e *e2e) bring(id string, from job.Status) {
	e.t.Helper()
	e.create(id)
	one := int64(1)
	switch from {
	case job.Queued:
	case job.InProgress, job.Succeeded, job.Failed, job.Rejected:
		e.update(id, job.UpdateRequest{Status: from})
	case job.TimedOut:
		e.update(id, job.UpdateRequest{Status: job.InProgress, StepTimeoutInMinutes: &one})
		e.clock.Advance(2 * time.Minute)
		if err := e.svc.CheckTimeouts(e.ctx); err != nil {
			e.t.Fatal(err)
		}
	case job.Removed:
		if err := e.svc.RemoveExecution(e.ctx, e.thing, id); err != nil {
			e.t.Fatal(err)
		}
	case job.Canceled:
		if err := e.svc.CancelExecution(e.ctx, e.thing, id, true); err != nil {
			e.t.Fatal(err)
		}
	default:
		e.t.Fatalf("no way to bring an execution to %s", from)
	}
	if got := e.status(id); got != from {
		e.t.Fatalf("set-up of %s: status %s, want %s", id, got, from)
	}
}

// TestE2ETransitions sends every status from every status through the
// client to the fake service and checks the outcome against the domain's
// transition rule.
func TestE2ETransitions(t *testing.T) {
	e := newE2E(t)
	for _, from := range job.Statuses {
		for _, to := range job.Statuses {
			t.Run(fmt.Sprintf("%s_to_%s", from, to), func(t *testing.T) {
				e.t = t
				id := fmt.Sprintf("tr-%d-%d", index(from), index(to))
				e.bring(id, from)
				before := len(e.svc.Requests())
				_, err := e.c.Update(e.ctx, id, job.UpdateRequest{Status: to})
				switch {
				case !to.DeviceSettable():
					if !errors.Is(err, job.ErrInvalidInput) {
						t.Fatalf("update to %s: err = %v, want job.ErrInvalidInput", to, err)
					}
					if n := len(e.svc.Requests()); n != before {
						t.Errorf("a refused update reached the service (%d requests, want %d)", n, before)
					}
				case from.CanBecome(to):
					if err != nil {
						t.Fatalf("update %s -> %s: %v", from, to, err)
					}
					if got := e.status(id); got != to {
						t.Errorf("service status %s, want %s", got, to)
					}
				default:
					var rej *job.RejectedError
					if !errors.Is(err, job.ErrInvalidStateTransition) || !errors.As(err, &rej) {
						t.Fatalf("update %s -> %s: err = %v, want InvalidStateTransition", from, to, err)
					}
					if rej.ExecutionState == nil || rej.ExecutionState.Status != from {
						t.Errorf("executionState = %+v, want status %s", rej.ExecutionState, from)
					}
					if got := e.status(id); got != from {
						t.Errorf("a rejected update changed the status to %s", got)
					}
				}
			})
		}
	}
}

func index(s job.Status) int {
	for i, x := range job.Statuses {
		if x == s {
			return i
		}
	}
	return -1
}

// TestE2ERejectedCodes makes the fake service reject each of the four
// requests with each of the nine codes and checks what the client returns.
func TestE2ERejectedCodes(t *testing.T) {
	e := newE2E(t)
	e.create("rc-job")
	requests := []struct {
		kind jobtopic.Kind
		call func() error
	}{
		{jobtopic.GetPending, func() error { _, err := e.c.GetPending(e.ctx); return err }},
		{jobtopic.StartNext, func() error { _, err := e.c.StartNext(e.ctx, job.StartNextRequest{}); return err }},
		{jobtopic.Describe, func() error { _, err := e.c.Describe(e.ctx, "rc-job", job.DescribeRequest{}); return err }},
		{jobtopic.Update, func() error {
			_, err := e.c.Update(e.ctx, "rc-job", job.UpdateRequest{Status: job.InProgress})
			return err
		}},
	}
	for _, r := range requests {
		for _, code := range job.Codes {
			t.Run(fmt.Sprintf("%s_%s", r.kind, code), func(t *testing.T) {
				e.svc.InjectError(code, 1)
				err := r.call()
				var rej *job.RejectedError
				if !errors.Is(err, code) || !errors.As(err, &rej) {
					t.Fatalf("err = %v, want a *job.RejectedError with %s", err, code)
				}
				for _, other := range job.Codes {
					if other != code && errors.Is(err, other) {
						t.Errorf("errors.Is(err, %s) is true for a %s rejection", other, code)
					}
				}
				log := e.svc.Requests()
				last := log[len(log)-1]
				if last.Kind != r.kind || last.Code != code {
					t.Errorf("service logged %s rejected with %q, want %s with %s", last.Kind, last.Code, r.kind, code)
				}
				if rej.ClientToken != last.ClientToken || rej.ClientToken == "" {
					t.Errorf("reply token %q, request token %q", rej.ClientToken, last.ClientToken)
				}
				if rej.Retryable() != code.Retryable() {
					t.Errorf("Retryable() = %v, want %v", rej.Retryable(), code.Retryable())
				}
			})
		}
	}
}

// TestE2ENaturalRejections provokes the rejections the service produces
// on its own, and checks executionState comes only with VersionMismatch and
// InvalidStateTransition.
func TestE2ENaturalRejections(t *testing.T) {
	e := newE2E(t)
	e.create("nat-1")
	e.update("nat-1", job.UpdateRequest{Status: job.InProgress})
	current, _ := e.svc.Execution(e.thing, "nat-1")
	stale := current.VersionNumber - 1
	e.bring("nat-done", job.Succeeded)

	tests := []struct {
		name      string
		call      func() error
		code      job.ErrorCode
		withState bool
	}{
		{"stale expectedVersion", func() error {
			_, err := e.c.Update(e.ctx, "nat-1", job.UpdateRequest{Status: job.InProgress, ExpectedVersion: &stale})
			return err
		}, job.CodeVersionMismatch, true},
		{"update of a terminal execution", func() error {
			_, err := e.c.Update(e.ctx, "nat-done", job.UpdateRequest{Status: job.Failed})
			return err
		}, job.CodeInvalidStateTransition, true},
		{"describe of a terminal execution", func() error {
			_, err := e.c.Describe(e.ctx, "nat-done", job.DescribeRequest{})
			return err
		}, job.CodeTerminalStateReached, false},
		{"describe of an unknown job", func() error {
			_, err := e.c.Describe(e.ctx, "nat-none", job.DescribeRequest{})
			return err
		}, job.CodeResourceNotFound, false},
		{"update of an unknown job", func() error {
			_, err := e.c.Update(e.ctx, "nat-none", job.UpdateRequest{Status: job.Succeeded})
			return err
		}, job.CodeResourceNotFound, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			var rej *job.RejectedError
			if !errors.Is(err, tt.code) || !errors.As(err, &rej) {
				t.Fatalf("err = %v, want %s", err, tt.code)
			}
			if got := rej.ExecutionState != nil; got != tt.withState {
				t.Errorf("executionState present = %v, want %v", got, tt.withState)
			}
		})
	}
	if ex, _ := e.svc.Execution(e.thing, "nat-1"); ex.VersionNumber != current.VersionNumber {
		t.Errorf("a rejected update moved the version from %d to %d", current.VersionNumber, ex.VersionNumber)
	}
}

// TestE2ETopics runs a lifecycle and the rejection tables and checks that
// every one of the fourteen topics was used.
func TestE2ETopics(t *testing.T) {
	e := newE2E(t)
	e.create("tp-1")
	e.create("tp-2")
	if _, err := e.c.GetPending(e.ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := e.c.Describe(e.ctx, job.NextJobID, job.DescribeRequest{}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.c.StartNext(e.ctx, job.StartNextRequest{}); err != nil {
		t.Fatal(err)
	}
	e.update("tp-1", job.UpdateRequest{Status: job.Succeeded})
	for _, k := range []jobtopic.Kind{jobtopic.GetPending, jobtopic.StartNext, jobtopic.Describe, jobtopic.Update} {
		e.svc.InjectError(job.CodeRequestThrottled, 1)
		var err error
		switch k {
		case jobtopic.GetPending:
			_, err = e.c.GetPending(e.ctx)
		case jobtopic.StartNext:
			_, err = e.c.StartNext(e.ctx, job.StartNextRequest{})
		case jobtopic.Describe:
			_, err = e.c.Describe(e.ctx, "tp-2", job.DescribeRequest{})
		case jobtopic.Update:
			_, err = e.c.Update(e.ctx, "tp-2", job.UpdateRequest{Status: job.InProgress})
		}
		if !errors.Is(err, job.ErrRequestThrottled) {
			t.Fatalf("%s: err = %v, want RequestThrottled", k, err)
		}
	}
	if err := e.b.Quiesce(e.ctx); err != nil {
		t.Fatal(err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, k := range jobtopic.Kinds {
		if e.kinds[k] == 0 {
			t.Errorf("no message on a %s topic", k)
		}
	}
}
