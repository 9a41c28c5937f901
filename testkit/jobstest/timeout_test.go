package jobstest

import (
	"strings"
	"testing"
	"time"

	"github.com/iotjobs/iotjobs/domain/job"
	"github.com/iotjobs/iotjobs/domain/jobtopic"
	"github.com/iotjobs/iotjobs/ports"
)

func TestTimeouts(t *testing.T) {
	type action struct {
		after  time.Duration // clock advance before it
		status job.Status    // update sent; "" = StartNext
		step   int64         // stepTimeoutInMinutes, 0 = none
	}
	tests := []struct {
		name       string
		inProgress time.Duration
		actions    []action
		alive      time.Duration // after the last action: still IN_PROGRESS ...
		dead       time.Duration // ... and TIMED_OUT at this (0: never)
	}{
		{name: "step timer from StartNext", actions: []action{{step: 5}}, alive: 5*time.Minute - time.Second, dead: 5 * time.Minute},
		{name: "step timer from Update", actions: []action{{status: job.InProgress, step: 3}}, alive: 3*time.Minute - time.Second, dead: 3 * time.Minute},
		{name: "in-progress timer", inProgress: 10 * time.Minute, actions: []action{{}}, alive: 10*time.Minute - time.Second, dead: 10 * time.Minute},
		{name: "step capped by in-progress timer", inProgress: 10 * time.Minute, actions: []action{{status: job.InProgress, step: 60}}, alive: 10*time.Minute - time.Second, dead: 10 * time.Minute},
		{name: "step shorter than in-progress", inProgress: 10 * time.Minute, actions: []action{{step: 2}}, alive: 2*time.Minute - time.Second, dead: 2 * time.Minute},
		{name: "new step replaces the old", actions: []action{{step: 5}, {after: 4 * time.Minute, status: job.InProgress, step: 10}}, alive: 10*time.Minute - time.Second, dead: 10 * time.Minute},
		{name: "new step may be shorter", actions: []action{{step: 50}, {after: time.Minute, status: job.InProgress, step: 1}}, alive: 59 * time.Second, dead: time.Minute},
		{name: "update without step keeps it", actions: []action{{step: 5}, {after: 3 * time.Minute, status: job.InProgress}}, alive: 2*time.Minute - time.Second, dead: 2 * time.Minute},
		{name: "in-progress timer runs from start", inProgress: 10 * time.Minute, actions: []action{{}, {after: 8 * time.Minute, status: job.InProgress, step: 5}}, alive: 2*time.Minute - time.Second, dead: 2 * time.Minute},
		{name: "no timer", actions: []action{{}}, alive: 10080 * time.Minute},
		{name: "terminal stops the timers", inProgress: time.Minute, actions: []action{{step: 1}, {status: job.Succeeded}}, alive: time.Hour},
		{name: "queued does not time out", inProgress: time.Minute, alive: time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			d := e.device("dev-1")
			e.createSpec(JobSpec{JobID: "j", Document: []byte(`{}`), Targets: []string{"dev-1"}, InProgressTimeout: tt.inProgress})
			for _, a := range tt.actions {
				e.clock.Advance(a.after)
				fields := map[string]any{}
				if a.step != 0 {
					fields["stepTimeoutInMinutes"] = a.step
				}
				if a.status == "" {
					d.startNext(fields)
				} else {
					d.update("j", a.status, fields)
				}
			}
			d.notes()
			before, _ := e.svc.Execution("dev-1", "j")
			start := e.clock.Now()

			e.clock.Advance(tt.alive)
			if err := e.svc.CheckTimeouts(ctx(t)); err != nil {
				t.Fatal(err)
			}
			if x, _ := e.svc.Execution("dev-1", "j"); x.Status != before.Status || x.VersionNumber != before.VersionNumber {
				t.Fatalf("after %v: %s v%d, want %s v%d", tt.alive, x.Status, x.VersionNumber, before.Status, before.VersionNumber)
			}
			d.expectNotes()
			if tt.dead == 0 {
				return
			}
			e.clock.Set(start.Add(tt.dead))
			if err := e.svc.CheckTimeouts(ctx(t)); err != nil {
				t.Fatal(err)
			}
			x, _ := e.svc.Execution("dev-1", "j")
			if x.Status != job.TimedOut || x.VersionNumber != before.VersionNumber+1 || x.LastUpdatedAt != job.TimestampOf(start.Add(tt.dead)) {
				t.Errorf("after %v: %+v, want TIMED_OUT, next version, updated at the deadline", tt.dead, x)
			}
			d.expectNotes("notify", "next -")
		})
	}
}

func TestTimeoutsAppliedLazily(t *testing.T) {
	e := newEnv(t)
	d := e.device("dev-1")
	e.createSpec(JobSpec{JobID: "j", Document: []byte(`{}`), Targets: []string{"dev-1"}, InProgressTimeout: 10 * time.Minute})
	x := d.startNext(map[string]any{"stepTimeoutInMinutes": 4})
	if x.ApproximateSecondsBeforeTimedOut == nil || *x.ApproximateSecondsBeforeTimedOut != 240 {
		t.Errorf("approximateSecondsBeforeTimedOut = %v, want 240", x.ApproximateSecondsBeforeTimedOut)
	}
	e.clock.Advance(time.Minute)
	if x := d.describe("j"); x.ApproximateSecondsBeforeTimedOut == nil || *x.ApproximateSecondsBeforeTimedOut != 180 {
		t.Errorf("approximateSecondsBeforeTimedOut = %v, want 180", x.ApproximateSecondsBeforeTimedOut)
	}
	d.notes()

	t.Run("before a request", func(t *testing.T) {
		e.clock.Advance(3 * time.Minute)
		r := d.call(jobtopic.Update, "j", map[string]any{"status": job.Succeeded})
		rej := r.rejected(t)
		if rej.Code != job.CodeInvalidStateTransition || rej.ExecutionState.Status != job.TimedOut {
			t.Errorf("update after timeout: %+v, want InvalidStateTransition from TIMED_OUT", rej)
		}
		d.expectNotes("notify", "next -")
	})

	t.Run("before a control call", func(t *testing.T) {
		e.create("k", "dev-1")
		d.startNext(map[string]any{"stepTimeoutInMinutes": 1})
		d.notes()
		e.clock.Advance(time.Minute)
		e.create("l", "dev-1")
		d.expectNotes("notify", "next -", "notify QUEUED:[l]", "next l")
		if x, _ := e.svc.Execution("dev-1", "k"); x.Status != job.TimedOut {
			t.Errorf("k = %s, want TIMED_OUT", x.Status)
		}
	})
}

// TestRealClockTimeout checks that with the real clock the service fires
// timers by itself.
func TestRealClockTimeout(t *testing.T) {
	e := newEnv(t)
	svc := New(Options{Logf: t.Logf})
	c, err := e.b.Connect("real-clock-service")
	if err != nil {
		t.Fatal(err)
	}
	// The env's service serves the same topics: stop it first.
	if err := e.svc.Close(); err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(ctx(t), c); err != nil {
		t.Fatal(err)
	}
	defer func() {
		svc.Close()
		c.Close()
	}()
	d := e.device("dev-1")
	if err := svc.CreateJob(ctx(t), JobSpec{JobID: "j", Document: []byte(`{}`), Targets: []string{"dev-1"}, InProgressTimeout: time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	d.call(jobtopic.StartNext, "", nil)
	d.in.waitFor(t, "notify-next with no execution", func(m ports.Message) bool {
		return m.Topic == "$aws/things/dev-1/jobs/notify-next" && !strings.Contains(string(m.Payload), "execution")
	})
	if x, _ := svc.Execution("dev-1", "j"); x.Status != job.TimedOut {
		t.Errorf("status = %s, want TIMED_OUT", x.Status)
	}
}
