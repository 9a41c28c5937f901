package jobstest

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/iotjobs/iotjobs/domain/job"
	"github.com/iotjobs/iotjobs/domain/jobtopic"
)

// TestNotifications walks the spec's list of when notify and notify-next
// are sent, one step at a time, each with the notifications it must cause
// and no others.
func TestNotifications(t *testing.T) {
	type step struct {
		name string
		do   func(e *env, d *device)
		want []string
	}
	ok := func(err error) {
		if err != nil {
			t.Helper()
			t.Fatal(err)
		}
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"device runs two jobs in turn", []step{
			{"first job queued", func(e *env, d *device) { e.create("a", d.thing) }, []string{"notify QUEUED:[a]", "next a"}},
			{"second job queued", func(e *env, d *device) { e.create("b", d.thing) }, []string{"notify QUEUED:[a b]"}},
			{"head QUEUED to IN_PROGRESS by StartNext", func(e *env, d *device) { d.startNext(nil) }, nil},
			{"StartNext again", func(e *env, d *device) { d.startNext(nil) }, nil},
			{"progress update", func(e *env, d *device) { d.update("a", job.InProgress, nil) }, nil},
			{"later job IN_PROGRESS behind the head", func(e *env, d *device) { d.update("b", job.InProgress, nil) }, nil},
			{"head succeeds", func(e *env, d *device) { d.update("a", job.Succeeded, nil) }, []string{"notify IN_PROGRESS:[b]", "next b"}},
			{"last fails", func(e *env, d *device) { d.update("b", job.Failed, nil) }, []string{"notify", "next -"}},
			{"rejected requests", func(e *env, d *device) { d.call(jobtopic.Update, "b", map[string]any{"status": job.Succeeded}) }, nil},
			{"reads", func(e *env, d *device) { d.getPending(); d.describe(job.NextJobID); d.startNext(nil) }, nil},
		}},
		{"head QUEUED to IN_PROGRESS by Update", []step{
			{"two queued", func(e *env, d *device) { e.create("a", d.thing); e.create("b", d.thing) }, []string{"notify QUEUED:[a]", "next a", "notify QUEUED:[a b]"}},
			{"head started", func(e *env, d *device) { d.update("a", job.InProgress, nil) }, nil},
		}},
		{"later queued job started ahead of the head", []step{
			{"two queued", func(e *env, d *device) { e.create("a", d.thing); e.create("b", d.thing) }, []string{"notify QUEUED:[a]", "next a", "notify QUEUED:[a b]"}},
			{"b started", func(e *env, d *device) { d.update("b", job.InProgress, nil) }, []string{"next b"}},
			{"a, not next, rejected", func(e *env, d *device) { d.update("a", job.Rejected, nil) }, []string{"notify IN_PROGRESS:[b]"}},
			{"queued straight to SUCCEEDED", func(e *env, d *device) { e.create("c", d.thing); d.update("c", job.Succeeded, nil) }, []string{"notify IN_PROGRESS:[b] QUEUED:[c]", "notify IN_PROGRESS:[b]"}},
		}},
		{"service changes", []step{
			{"three queued", func(e *env, d *device) {
				e.create("a", d.thing)
				e.create("b", d.thing)
				e.create("c", d.thing)
				d.notes()
			}, nil},
			{"head canceled", func(e *env, d *device) { ok(e.svc.CancelExecution(ctx(t), d.thing, "a", false)) }, []string{"notify QUEUED:[b c]", "next b"}},
			{"non-head removed", func(e *env, d *device) { ok(e.svc.RemoveExecution(ctx(t), d.thing, "c")) }, []string{"notify QUEUED:[b]"}},
			{"head deleted", func(e *env, d *device) { ok(e.svc.DeleteExecution(ctx(t), d.thing, "b")) }, []string{"notify", "next -"}},
			{"terminal deleted", func(e *env, d *device) { ok(e.svc.DeleteExecution(ctx(t), d.thing, "a")) }, nil},
			{"queued again", func(e *env, d *device) { e.create("d", d.thing) }, []string{"notify QUEUED:[d]", "next d"}},
			{"head removed", func(e *env, d *device) { ok(e.svc.RemoveExecution(ctx(t), d.thing, "d")) }, []string{"notify", "next -"}},
			{"started job canceled with force", func(e *env, d *device) {
				e.create("e", d.thing)
				d.startNext(nil)
				d.notes()
				ok(e.svc.CancelJob(ctx(t), "e", true))
			}, []string{"notify", "next -"}},
			{"started job times out", func(e *env, d *device) {
				e.create("f", d.thing)
				d.startNext(map[string]any{"stepTimeoutInMinutes": 1})
				d.notes()
				e.clock.Advance(time.Minute)
				ok(e.svc.CheckTimeouts(ctx(t)))
			}, []string{"notify", "next -"}},
			{"nothing expired", func(e *env, d *device) { ok(e.svc.CheckTimeouts(ctx(t))) }, nil},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			d := e.device("dev-1")
			for _, s := range tt.steps {
				e.clock.Advance(time.Second)
				s.do(e, d)
				got := d.noteStrings()
				if strings.Join(got, "\n") != strings.Join(s.want, "\n") {
					t.Errorf("%s:\n got %q\nwant %q", s.name, got, s.want)
				}
			}
		})
	}
}

func TestNotificationBodies(t *testing.T) {
	e := newEnv(t)
	d := e.device("dev-1")
	e.create("a", "dev-1")
	ns := d.notes()
	if len(ns) != 2 {
		t.Fatalf("notes = %v", ns)
	}
	want := fmt.Sprintf(`{"jobs":{"QUEUED":[{"jobId":"a","queuedAt":%[1]d,"lastUpdatedAt":%[1]d,"versionNumber":1,"executionNumber":1}]},"timestamp":%[1]d}`, t0.Unix())
	if ns[0].raw != want {
		t.Errorf("notify =\n%s\nwant\n%s", ns[0].raw, want)
	}
	want = fmt.Sprintf(`{"execution":{"jobId":"a","thingName":"dev-1","jobDocument":{"op":"a"},"status":"QUEUED","queuedAt":%[1]d,"lastUpdatedAt":%[1]d,"versionNumber":1,"executionNumber":1},"timestamp":%[1]d}`, t0.Unix())
	if ns[1].raw != want {
		t.Errorf("notify-next =\n%s\nwant\n%s", ns[1].raw, want)
	}

	d.update("a", job.Succeeded, nil)
	ns = d.notes()
	if len(ns) != 2 || ns[0].raw != fmt.Sprintf(`{"jobs":{},"timestamp":%d}`, t0.Unix()) ||
		ns[1].raw != fmt.Sprintf(`{"timestamp":%d}`, t0.Unix()) {
		t.Errorf("notes when empty = %q", []string{ns[0].raw, ns[1].raw})
	}
}

func TestNotificationsFollowReply(t *testing.T) {
	e := newEnv(t)
	d := e.device("dev-1")
	e.create("a", "dev-1")
	d.notes()
	d.send(d.topic(jobtopic.Update, "a"), `{"status":"SUCCEEDED"}`)
	// send took the reply; publish again and look at the raw order.
	e.create("b", "dev-1")
	d.notes()
	if err := d.c.Publish(ctx(t), publishMsg(d.topic(jobtopic.Update, "b"), `{"status":"SUCCEEDED"}`)); err != nil {
		t.Fatal(err)
	}
	e.quiesce()
	var got []string
	for _, m := range d.in.takeAll() {
		got = append(got, strings.TrimPrefix(m.Topic, "$aws/things/dev-1/jobs/"))
	}
	if want := []string{"b/update/accepted", "notify", "notify-next"}; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("order = %v, want %v", got, want)
	}
}

func TestNotifyListCap(t *testing.T) {
	e := newEnv(t)
	d := e.device("dev-1")
	for i := range 12 {
		e.create(fmt.Sprintf("j%02d", i), "dev-1")
	}
	d.notes()
	d.update("j11", job.InProgress, nil) // the newest, started ahead of the rest
	d.expectNotes("next j11")
	d.update("j00", job.Rejected, nil)
	ns := d.notes()
	if len(ns) != 1 || ns[0].kind != jobtopic.Notify {
		t.Fatalf("notes = %v, want one notify", ns)
	}
	want := "notify IN_PROGRESS:[j11] QUEUED:[j01 j02 j03 j04 j05 j06 j07 j08 j09]"
	if got := ns[0].String(); got != want {
		t.Errorf("notify = %s, want %s", got, want)
	}
	// The 11th pending execution still changes the list: notify is sent.
	e.create("j12", "dev-1")
	if got := d.noteStrings(); len(got) != 1 || got[0] != want {
		t.Errorf("notes = %q, want [%s]", got, want)
	}
}

func TestThingsAreIsolated(t *testing.T) {
	e := newEnv(t)
	d1, d2, d3 := e.device("dev-1"), e.device("dev-2"), e.device("dev-3")
	e.create("shared", "dev-1", "dev-2")
	e.create("own", "dev-2")
	d1.expectNotes("notify QUEUED:[shared]", "next shared")
	d2.expectNotes("notify QUEUED:[shared]", "next shared", "notify QUEUED:[shared own]")
	d3.expectNotes()

	d1.update("shared", job.Succeeded, nil)
	d1.expectNotes("notify", "next -")
	d2.expectNotes()
	if x, _ := e.svc.Execution("dev-2", "shared"); x.Status != job.Queued {
		t.Errorf("dev-2's execution = %s, want QUEUED", x.Status)
	}
	if x := d3.startNext(nil); x != nil {
		t.Errorf("dev-3 StartNext = %+v, want none", x)
	}
	if rej := d1.call(jobtopic.Describe, "own", nil).rejected(t); rej.Code != job.CodeResourceNotFound {
		t.Errorf("dev-1 describe of dev-2's job: %s, want ResourceNotFound", rej.Code)
	}
	if got := ids(d2.getPending().QueuedJobs); strings.Join(got, ",") != "shared,own" {
		t.Errorf("dev-2 pending = %v", got)
	}
	d3.expectNotes()
}
