package agent_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/iotjobs/iotjobs/app/agent"
	"github.com/iotjobs/iotjobs/app/jobs"
	"github.com/iotjobs/iotjobs/domain/job"
	"github.com/iotjobs/iotjobs/domain/jobtopic"
	"github.com/iotjobs/iotjobs/ports"
)

var nop = agent.HandlerFunc(func(context.Context, agent.Job, agent.Progress) error { return nil })

func TestNewRefuses(t *testing.T) {
	e := newEnv(t, envOptions{})
	conn, err := e.b.Connect("device")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	tests := []struct {
		name  string
		thing string
		cfg   agent.Config
		want  string
	}{
		{"no handler", thing, agent.Config{}, "nil Handler"},
		{"concurrency", thing, agent.Config{Handler: nop, Concurrency: -1}, "Concurrency -1"},
		{"interval", thing, agent.Config{Handler: nop, ProgressInterval: -time.Second}, "ProgressInterval"},
		{"step timeout", thing, agent.Config{Handler: nop, StepTimeout: 10081 * time.Minute}, "StepTimeout"},
		{"negative step timeout", thing, agent.Config{Handler: nop, StepTimeout: -1}, "StepTimeout"},
		{"retry", thing, agent.Config{Handler: nop, Retry: agent.RetryPolicy{Initial: time.Second, Max: time.Millisecond}}, "Retry"},
		{"attempts", thing, agent.Config{Handler: nop, Retry: agent.RetryPolicy{Attempts: -1}}, "Retry"},
		{"client thing", thing, agent.Config{Handler: nop, Client: jobs.Options{Thing: "other"}}, "Client.Thing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := agent.New(e.ctx, conn, tt.thing, tt.cfg)
			if !errors.Is(err, agent.ErrInvalidConfig) || !strings.Contains(err.Error(), tt.want) || a != nil {
				t.Errorf("New: %v, want ErrInvalidConfig about %s", err, tt.want)
			}
		})
	}
	t.Run("client refuses", func(t *testing.T) {
		a, err := agent.New(e.ctx, conn, "bad thing", agent.Config{Handler: nop})
		if !errors.Is(err, job.ErrInvalidInput) || a != nil {
			t.Errorf("New: %v, want job.ErrInvalidInput", err)
		}
	})
}

func TestRunAndClose(t *testing.T) {
	e := newEnv(t, envOptions{})
	events := make(chan jobs.EventKind, 100)
	d := e.newAgent(agent.Config{Handler: nop, Client: jobs.Options{Thing: thing, OnEvent: func(ev jobs.Event) { events <- ev.Kind }}})
	if d.a.Client() == nil || d.a.Client().Thing() != thing {
		t.Fatal("Client is not the agent's client")
	}
	d.start()
	poll(t, "the first take", func() bool { return len(e.svc.Requests()) > 0 })
	// A second Run while one runs is refused.
	if err := d.a.Run(e.ctx); !errors.Is(err, agent.ErrRunning) {
		t.Errorf("second Run: %v, want ErrRunning", err)
	}
	if err := d.a.RunOnce(e.ctx); !errors.Is(err, agent.ErrRunning) {
		t.Errorf("RunOnce: %v, want ErrRunning", err)
	}
	e.create("job-1", `{"operation":"op"}`)
	if r := d.result(); r.Status != job.Succeeded {
		t.Errorf("result %+v", r)
	}
	// The user's OnEvent sees the events too.
	if k := <-events; k != jobs.EventJobsChanged && k != jobs.EventNextChanged {
		t.Errorf("event %s", k)
	}
	// Close stops Run, which returns nil.
	if err := d.a.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-d.runErr:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(waitFor):
		t.Fatal("Close did not stop Run")
	}
	d.stopRun = nil
	if err := d.a.Run(e.ctx); !errors.Is(err, agent.ErrClosed) {
		t.Errorf("Run after Close: %v, want ErrClosed", err)
	}
	if err := d.a.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestRunAgain: Run may run again after it returned, and remembers what it
// ran.
func TestRunAgain(t *testing.T) {
	e := newEnv(t, envOptions{})
	ran := map[string]int{}
	d := e.newAgent(agent.Config{Handler: agent.HandlerFunc(func(_ context.Context, j agent.Job, _ agent.Progress) error {
		ran[j.ID]++
		return nil
	})})
	e.create("job-1", `{"operation":"op"}`)
	d.runOnce()
	ctx, cancel := context.WithCancel(e.ctx)
	cancel()
	if err := d.a.Run(ctx); err != nil {
		t.Errorf("Run with an ended context: %v", err)
	}
	e.create("job-2", `{"operation":"op"}`)
	d.runOnce()
	if ran["job-1"] != 1 || ran["job-2"] != 1 {
		t.Errorf("ran %v", ran)
	}
}

// TestTakeRetriedLater: in Run, a take that failed is tried again later.
func TestTakeRetriedLater(t *testing.T) {
	e := newEnv(t, envOptions{})
	d := e.newAgent(agent.Config{Handler: nop})
	e.create("job-1", `{"operation":"op"}`)
	e.svc.InjectError(job.CodeInvalidRequest, 1)
	d.start()
	if r := d.result(); r.Status != job.Succeeded {
		t.Errorf("result %+v", r)
	}
	if r := e.svc.Requests()[0]; r.Code != job.CodeInvalidRequest {
		t.Errorf("first request %s %s, want rejected", r.Topic, r.Code)
	}
}

// TestProgressRaces: a progress update that is throttled is sent again;
// one refused for a version that moved is sent with the new version.
func TestProgressRaces(t *testing.T) {
	e := newEnv(t, envOptions{})
	intruder, err := e.b.Connect("intruder")
	if err != nil {
		t.Fatal(err)
	}
	defer intruder.Close()
	d := e.newAgent(agent.Config{ProgressInterval: time.Nanosecond,
		Handler: agent.HandlerFunc(func(ctx context.Context, j agent.Job, p agent.Progress) error {
			e.svc.InjectError(job.CodeRequestThrottled, 1)
			p.Report(job.StatusDetails{"step": "1"})
			poll(t, "step 1", func() bool { return e.execution(j.ID).StatusDetails["step"] == "1" })
			// Someone else updates the execution.
			m := ports.Message{Topic: "$aws/things/" + thing + "/jobs/" + j.ID + "/update", QoS: ports.AtLeastOnce,
				Payload: []byte(`{"status":"IN_PROGRESS","statusDetails":{"step":"other"}}`)}
			if err := intruder.Publish(ctx, m); err != nil {
				return err
			}
			poll(t, "the other update", func() bool { return e.execution(j.ID).StatusDetails["step"] == "other" })
			p.Report(job.StatusDetails{"step": "2"})
			poll(t, "step 2", func() bool { return e.execution(j.ID).StatusDetails["step"] == "2" })
			return nil
		})})
	e.create("job-1", `{"operation":"op"}`)
	d.runOnce()
	var codes []job.ErrorCode
	for _, r := range e.requests(jobtopic.Update, "job-1") {
		codes = append(codes, r.Code)
	}
	want := []job.ErrorCode{"", job.CodeRequestThrottled, "", "", job.CodeVersionMismatch, "", ""}
	if !slices.Equal(codes, want) {
		t.Errorf("update codes %q, want %q", codes, want)
	}
	if s := e.execution("job-1").Status; s != job.Succeeded {
		t.Errorf("job-1 is %s", s)
	}
}

// TestResyncFails: when the pending set cannot be read after a reconnect,
// the agent checks its running job with a Describe and keeps it.
func TestResyncFails(t *testing.T) {
	e := newEnv(t, envOptions{})
	b := newBlocker()
	resynced := make(chan error, 1)
	d := e.newAgent(agent.Config{Handler: b, Client: jobs.Options{OnEvent: func(ev jobs.Event) {
		if ev.Kind == jobs.EventResynced {
			resynced <- ev.Err
		}
	}}})
	e.create("job-1", `{"operation":"op"}`)
	d.start()
	b.next(t)
	e.svc.InjectError(job.CodeInternalError, 1)
	if err := e.b.Disconnect(d.id); err != nil {
		t.Fatal(err)
	}
	if err := <-resynced; !errors.Is(err, job.ErrInternalError) {
		t.Fatalf("resync error %v", err)
	}
	poll(t, "a Describe of job-1", func() bool { return len(e.requests(jobtopic.Describe, "job-1")) > 0 })
	b.release <- nil
	if r := d.result(); r.Status != job.Succeeded {
		t.Errorf("result %+v", r)
	}
}

// TestRunOnceUnreported: RunOnce says when it leaves the end of a job
// unreported; the next run reports it without running the job again.
func TestRunOnceUnreported(t *testing.T) {
	e := newEnv(t, envOptions{})
	runs := 0
	d := e.newAgent(agent.Config{Handler: agent.HandlerFunc(func(context.Context, agent.Job, agent.Progress) error {
		runs++
		e.svc.InjectError(job.CodeInvalidRequest, 2) // the report, and its retry before the next take
		return nil
	})})
	e.create("job-1", `{"operation":"op"}`)
	err := d.a.RunOnce(e.ctx)
	if !errors.Is(err, agent.ErrUnreported) || !errors.Is(err, job.ErrInvalidRequest) {
		t.Fatalf("RunOnce: %v, want ErrUnreported for InvalidRequest", err)
	}
	if r := d.result(); r.Status != job.InProgress || !errors.Is(r.ReportErr, job.ErrInvalidRequest) {
		t.Errorf("result %+v", r)
	}
	if s := e.execution("job-1").Status; s != job.InProgress {
		t.Fatalf("job-1 is %s", s)
	}
	d.runOnce()
	if s := e.execution("job-1").Status; s != job.Succeeded || runs != 1 {
		t.Errorf("job-1 is %s after %d runs, want SUCCEEDED after 1", s, runs)
	}
}
