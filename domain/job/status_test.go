package job_test

import (
	"slices"
	"testing"

	"github.com/iotjobs/iotjobs/domain/job"
)

func TestStatusPredicates(t *testing.T) {
	tests := []struct {
		s                                        job.Status
		valid, terminal, pending, deviceSettable bool
	}{
		{job.Queued, true, false, true, false},
		{job.InProgress, true, false, true, true},
		{job.Succeeded, true, true, false, true},
		{job.Failed, true, true, false, true},
		{job.Rejected, true, true, false, true},
		{job.TimedOut, true, true, false, false},
		{job.Removed, true, true, false, false},
		{job.Canceled, true, true, false, false},
		{"", false, false, false, false},
		{"queued", false, false, false, false},
		{"CANCELLED", false, false, false, false},
		{"DONE", false, false, false, false},
	}
	for _, tt := range tests {
		t.Run(string(tt.s), func(t *testing.T) {
			if got := tt.s.Valid(); got != tt.valid {
				t.Errorf("Valid() = %v, want %v", got, tt.valid)
			}
			if got := tt.s.Terminal(); got != tt.terminal {
				t.Errorf("Terminal() = %v, want %v", got, tt.terminal)
			}
			if got := tt.s.Pending(); got != tt.pending {
				t.Errorf("Pending() = %v, want %v", got, tt.pending)
			}
			if got := tt.s.DeviceSettable(); got != tt.deviceSettable {
				t.Errorf("DeviceSettable() = %v, want %v", got, tt.deviceSettable)
			}
			if got := tt.s.String(); got != string(tt.s) {
				t.Errorf("String() = %q, want %q", got, string(tt.s))
			}
		})
	}
}

func TestStatusesList(t *testing.T) {
	want := []job.Status{"QUEUED", "IN_PROGRESS", "SUCCEEDED", "FAILED", "REJECTED", "TIMED_OUT", "REMOVED", "CANCELED"}
	if !slices.Equal(job.Statuses, want) {
		t.Fatalf("Statuses = %v, want %v", job.Statuses, want)
	}
	for _, s := range job.Statuses {
		if !s.Valid() {
			t.Errorf("%s.Valid() = false, want true", s)
		}
		// A status is pending exactly when it is not terminal.
		if s.Pending() == s.Terminal() {
			t.Errorf("%s: Pending() = %v and Terminal() = %v, want opposite", s, s.Pending(), s.Terminal())
		}
	}
}

// TestCanBecome checks all 8×8 pairs (and invalid statuses) against the
// transitions of the spec (§5): nothing leaves a terminal status, nothing
// becomes QUEUED (only a new execution starts QUEUED), IN_PROGRESS may
// repeat, and from QUEUED or IN_PROGRESS any other status may follow (set by
// the device or by the service).
func TestCanBecome(t *testing.T) {
	const (
		Q = iota
		I
		S
		F
		R
		T
		M
		C
	)
	statuses := [...]job.Status{Q: job.Queued, I: job.InProgress, S: job.Succeeded, F: job.Failed,
		R: job.Rejected, T: job.TimedOut, M: job.Removed, C: job.Canceled}
	// allowed[from][to]
	allowed := [8][8]bool{
		//   Q      I      S      F      R      T      M      C
		Q: {false, true, true, true, true, true, true, true},
		I: {false, true, true, true, true, true, true, true},
		S: {},
		F: {},
		R: {},
		T: {},
		M: {},
		C: {},
	}
	for from, fs := range statuses {
		for to, ts := range statuses {
			t.Run(string(fs)+"->"+string(ts), func(t *testing.T) {
				if got, want := fs.CanBecome(ts), allowed[from][to]; got != want {
					t.Errorf("%s.CanBecome(%s) = %v, want %v", fs, ts, got, want)
				}
			})
		}
	}
	for _, s := range statuses {
		if s.CanBecome("BOGUS") {
			t.Errorf("%s.CanBecome(BOGUS) = true, want false", s)
		}
		if job.Status("BOGUS").CanBecome(s) {
			t.Errorf("BOGUS.CanBecome(%s) = true, want false", s)
		}
		if job.Status("").CanBecome(s) {
			t.Errorf(`"".CanBecome(%s) = true, want false`, s)
		}
	}
}
