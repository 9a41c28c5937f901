package agent

import (
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/iotjobs/iotjobs/domain/job"
)

func TestBackoff(t *testing.T) {
	p := RetryPolicy{Initial: 100 * time.Millisecond, Max: time.Second, Attempts: 10, Seed: 7}
	b1, b2 := newBackoff(p), newBackoff(p)
	for n := 1; n <= 10; n++ {
		ceiling := min(p.Initial<<(n-1), p.Max)
		d := b1.delay(n)
		if d < ceiling/2 || d > ceiling {
			t.Errorf("delay(%d) = %v, want between %v and %v", n, d, ceiling/2, ceiling)
		}
		if d2 := b2.delay(n); d2 != d {
			t.Errorf("delay(%d) = %v and %v with the same seed", n, d, d2)
		}
	}
	if b := newBackoff(RetryPolicy{}); b.initial != DefaultRetry.Initial || b.max != DefaultRetry.Max || b.attempts != DefaultRetry.Attempts {
		t.Errorf("defaults %v %v %d", b.initial, b.max, b.attempts)
	}
	if b := newBackoff(RetryPolicy{Initial: time.Minute}); b.max != time.Minute {
		t.Errorf("max %v, want Initial when above the default", b.max)
	}
	if d := newBackoff(RetryPolicy{Initial: time.Hour, Max: time.Hour}).delay(1000); d > time.Hour || d < 30*time.Minute {
		t.Errorf("delay(1000) = %v: overflow?", d)
	}
}

func TestFinishedIsBounded(t *testing.T) {
	a := &Agent{finished: map[key]*finished{}, running: map[key]*run{}}
	for i := range maxFinished + 10 {
		a.rememberLocked(key{fmt.Sprint(i), 1}, &finished{})
	}
	a.rememberLocked(key{"20", 1}, &finished{}) // again: no new entry
	if len(a.finished) != maxFinished || len(a.order) != maxFinished {
		t.Fatalf("%d finished, %d in order, want %d", len(a.finished), len(a.order), maxFinished)
	}
	if a.knownLocked(key{"9", 1}) || !a.knownLocked(key{"10", 1}) {
		t.Error("not the oldest forgotten")
	}

	// A complete list forgets what it does not hold, but for unreported
	// ends; a full list forgets nothing.
	a.rememberLocked(key{"unreported", 1}, &finished{report: &job.UpdateRequest{Status: job.Succeeded}})
	full := &job.GetPendingResponse{}
	for i := range job.MaxPendingListed {
		full.QueuedJobs = append(full.QueuedJobs, job.Summary{JobID: fmt.Sprint("q", i), ExecutionNumber: 1})
	}
	a.forgetUnlisted(full)
	if len(a.finished) != maxFinished {
		t.Errorf("a full list made the agent forget: %d left", len(a.finished))
	}
	a.forgetUnlisted(&job.GetPendingResponse{InProgressJobs: []job.Summary{{JobID: "100", ExecutionNumber: 1}}})
	if len(a.finished) != 2 || !a.knownLocked(key{"100", 1}) || !a.knownLocked(key{"unreported", 1}) || len(a.order) != 2 {
		t.Errorf("after a short list: %v", a.order)
	}
}

func TestReportAfterEnd(t *testing.T) {
	r := newRun(&Agent{}, job.Execution{JobID: "j"}, false, 1, true, 0)
	r.Report(job.StatusDetails{"a": "1"})
	if d := r.last(); d["a"] != "1" {
		t.Errorf("last %v", d)
	}
	r.Report(job.StatusDetails{"a": "2"})
	if d := r.last(); d["a"] != "1" {
		t.Errorf("a report after the end counted: %v", d)
	}
}

func TestFinalDetails(t *testing.T) {
	if d := finalDetails(nil, ""); d != nil {
		t.Errorf("no details, no reason: %v", d)
	}
	if d := finalDetails(nil, "why"); len(d) != 1 || d[ReasonKey] != "why" {
		t.Errorf("reason only: %v", d)
	}
	if d := finalDetails(job.StatusDetails{ReasonKey: "mine", "k": "v"}, "why"); d[ReasonKey] != "why" || d["k"] != "v" {
		t.Errorf("with details: %v", d)
	}
	if r := reasonOf(fmt.Errorf("\x00")); r != "error" {
		t.Errorf("reason of an empty message: %q", r)
	}
}

// TestStaleNotifications: a notification sent before a job was taken
// (in an earlier second) does not make the agent check the job; a later
// or undated one does.
func TestStaleNotifications(t *testing.T) {
	taken := job.Timestamp(1000)
	a := &Agent{log: slog.New(slog.DiscardHandler), cfg: Config{Concurrency: 1}, kick: make(chan struct{}, 1),
		running: map[key]*run{}, finished: map[key]*finished{}}
	r := newRun(a, job.Execution{JobID: "j", ExecutionNumber: 1}, false, 2, true, taken)
	a.running[r.key] = r
	checked := func() bool {
		select {
		case <-r.check:
			return true
		default:
			return false
		}
	}
	other := []job.Summary{{JobID: "other", ExecutionNumber: 1}}
	tests := []struct {
		name string
		see  func()
		want bool
	}{
		{"older list", func() { a.sawPending(nil, other, taken-1) }, false},
		{"list of the same second", func() { a.sawPending(nil, other, taken) }, true},
		{"newer list", func() { a.sawPending(nil, other, taken+1) }, true},
		{"undated list", func() { a.sawPending(nil, other, 0) }, true},
		{"list with the job", func() { a.sawPending([]job.Summary{{JobID: "j", ExecutionNumber: 1}}, nil, taken+1) }, false},
		{"older empty next", func() { a.sawNext(nil, taken-1) }, false},
		{"newer empty next", func() { a.sawNext(nil, taken+1) }, true},
		{"newer queued next", func() { a.sawNext(&job.Execution{JobID: "other", Status: job.Queued}, taken+1) }, true},
		{"next in progress", func() { a.sawNext(&job.Execution{JobID: "other", Status: job.InProgress}, taken+1) }, false},
		{"the job queued", func() { a.sawNext(&job.Execution{JobID: "j", ExecutionNumber: 1, Status: job.Queued}, taken+1) }, false},
	}
	for _, tt := range tests {
		tt.see()
		if got := checked(); got != tt.want {
			t.Errorf("%s: checked %t, want %t", tt.name, got, tt.want)
		}
	}
}
