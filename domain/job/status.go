package job

// Status is the status of a job execution, as written on the wire.
type Status string

// The eight job execution statuses.
const (
	// Queued: waiting for the device. Set by the service only.
	Queued Status = "QUEUED"
	// InProgress: the device works on it; may be sent repeatedly as progress.
	InProgress Status = "IN_PROGRESS"
	// Succeeded: done (terminal, set by the device).
	Succeeded Status = "SUCCEEDED"
	// Failed: did not succeed (terminal, set by the device; a job retry
	// configuration may retry it).
	Failed Status = "FAILED"
	// Rejected: the device cannot ever do it (terminal, set by the device,
	// never retried).
	Rejected Status = "REJECTED"
	// TimedOut: the in-progress or step timer expired (terminal, set by the
	// service).
	TimedOut Status = "TIMED_OUT"
	// Removed: the thing left the job's target group (terminal, set by the
	// service).
	Removed Status = "REMOVED"
	// Canceled: the job or execution was canceled (terminal, set by the
	// service).
	Canceled Status = "CANCELED"
)

// Statuses lists every status, in the order above.
var Statuses = []Status{Queued, InProgress, Succeeded, Failed, Rejected, TimedOut, Removed, Canceled}

// Valid reports whether s is one of the eight statuses.
func (s Status) Valid() bool {
	switch s {
	case Queued, InProgress, Succeeded, Failed, Rejected, TimedOut, Removed, Canceled:
		return true
	}
	return false
}

// Terminal reports whether s ends the execution: no update is accepted after it.
func (s Status) Terminal() bool {
	switch s {
	case Succeeded, Failed, Rejected, TimedOut, Removed, Canceled:
		return true
	}
	return false
}

// Pending reports whether an execution in status s is in the pending list
// (QUEUED or IN_PROGRESS).
func (s Status) Pending() bool { return s == Queued || s == InProgress }

// DeviceSettable reports whether a device may send s in an update:
// IN_PROGRESS, SUCCEEDED, FAILED or REJECTED.
func (s Status) DeviceSettable() bool {
	switch s {
	case InProgress, Succeeded, Failed, Rejected:
		return true
	}
	return false
}

// CanBecome reports whether an execution in status s may move to next, by
// anyone: s must not be terminal, next must be valid and not QUEUED (only a
// new execution starts QUEUED). IN_PROGRESS may repeat (progress reports).
func (s Status) CanBecome(next Status) bool {
	return s.Pending() && next.Valid() && next != Queued
}

// String returns the wire form of s.
func (s Status) String() string { return string(s) }
