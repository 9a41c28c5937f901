package agent

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/iotjobs/iotjobs/domain/job"
)

// Errors of the agent. Test with errors.Is.
var (
	// ErrClosed is returned by Run and RunOnce after Close.
	ErrClosed = errors.New("agent: closed")
	// ErrInvalidConfig is wrapped by the error of New for an invalid
	// Config.
	ErrInvalidConfig = errors.New("agent: invalid config")
	// ErrRunning is returned by Run and RunOnce while the agent already
	// runs.
	ErrRunning = errors.New("agent: already running")
	// ErrStopped is the cause of a handler's context when the agent stops:
	// the context of Run ended or Close was called.
	ErrStopped = errors.New("agent: stopped")
	// ErrJobCanceled is matched by every *JobEndedError: the cause of a
	// handler's context when the service ended the job while it ran
	// (canceled, removed, timed out or deleted).
	ErrJobCanceled = errors.New("agent: job ended by the service")
	// ErrUnreported is wrapped by the error of RunOnce when it returns with
	// the end of a job not reported.
	ErrUnreported = errors.New("agent: job end not reported")
	// ErrStepTimeout is the cause of a handler's context when
	// Config.StepTimeout expired without a progress report.
	ErrStepTimeout = errors.New("agent: step timeout")
)

// Handler runs one job. HandleJob returns nil when the job succeeded: the
// agent then reports SUCCEEDED. An error reports FAILED, or REJECTED when
// it wraps a *RejectError (see Reject); its message becomes the reason
// status detail. A panic is recovered and reported as FAILED.
//
// ctx ends when the service ended the job (its cause then matches
// ErrJobCanceled: see context.Cause), when the step timeout expired
// (ErrStepTimeout) or when the agent stops (ErrStopped). HandleJob must
// then return promptly: the agent waits for it.
//
// A job taken after a restart may have run before (Job.Resumed): a handler
// must be idempotent, or look at Job.Execution.StatusDetails (the details it
// reported last time) to carry on where it stopped.
type Handler interface {
	HandleJob(ctx context.Context, j Job, progress Progress) error
}

// HandlerFunc is a function that is a Handler.
type HandlerFunc func(ctx context.Context, j Job, progress Progress) error

// HandleJob calls f.
func (f HandlerFunc) HandleJob(ctx context.Context, j Job, progress Progress) error {
	return f(ctx, j, progress)
}

// Progress receives a running job's progress.
type Progress interface {
	// Report sets the status details of the job. It never blocks: the
	// agent sends the latest details as an IN_PROGRESS update, at most
	// one per Config.ProgressInterval; details reported in between replace
	// each other (the latest win), and the last ones reported go with the
	// final status. The agent keeps a copy of details, which it cleans up
	// with SanitizeDetails before sending.
	Report(details job.StatusDetails)
}

// ProgressFunc is a function that is a Progress, handy to test a handler
// on its own.
type ProgressFunc func(details job.StatusDetails)

// Report calls f.
func (f ProgressFunc) Report(details job.StatusDetails) { f(details) }

// Job is a job execution the agent took, as passed to a Handler.
type Job struct {
	// Thing is the name of the agent's thing.
	Thing string
	// ID is the job id.
	ID string
	// ExecutionNumber is the number of the execution (1 unless the job's
	// retry configuration ran it again).
	ExecutionNumber int64
	// Document is the job document.
	Document job.Document
	// Execution is the execution as the service held it when the agent
	// took it, before the agent moved it to IN_PROGRESS: Status is QUEUED
	// for a new execution, IN_PROGRESS for one resumed, whose StatusDetails
	// are the ones reported before. Fields the service did not send are
	// zero. (With Config.UseStartNext it is the execution StartNext
	// returned, already IN_PROGRESS.)
	Execution job.Execution
	// Resumed reports that the execution was already IN_PROGRESS when the
	// agent took it: it may have run before, on this device, before a
	// restart. (With Config.UseStartNext the service does not say so: it is
	// then true when the execution had started in an earlier second or had
	// status details.)
	Resumed bool
	// Operation is what a Mux routed the job by; zero unless the job came
	// through a Mux.
	Operation Operation
}

// Result is what became of one job execution, passed to Config.OnResult.
type Result struct {
	// JobID and ExecutionNumber name the execution.
	JobID           string
	ExecutionNumber int64
	// Status is the execution's final status as far as the agent knows:
	// the one it reported (SUCCEEDED, FAILED or REJECTED); the terminal
	// status the service set meanwhile (CANCELED, REMOVED, TIMED_OUT...,
	// empty when the execution was deleted); or IN_PROGRESS when the agent
	// stopped before the job ended, or could not report its end (see
	// ReportErr).
	Status job.Status
	// Err is why the job did not succeed: the handler's error, a
	// *PanicError, or, when the agent canceled the handler, the cause (a
	// *JobEndedError, an error matching ErrStepTimeout or ErrStopped). Nil
	// when the handler succeeded.
	Err error
	// ReportErr is why the final status could not be reported; the agent
	// tries again before it takes its next job.
	ReportErr error
	// Resumed is Job.Resumed.
	Resumed bool
	// Duration is how long the job ran, from its take to its end.
	Duration time.Duration
}

// RejectError marks a handler's error as final: the job can never succeed
// on this device (an unknown operation, an invalid document), so the agent
// reports REJECTED, which a job's retry configuration never retries.
type RejectError struct {
	// Err says why.
	Err error
}

// Reject returns err marked as a rejection (nil for nil). A handler
// returns it to have its job REJECTED rather than FAILED.
func Reject(err error) error {
	if err == nil {
		return nil
	}
	return &RejectError{Err: err}
}

// Error returns the message of e.Err.
func (e *RejectError) Error() string {
	if e.Err == nil {
		return "rejected"
	}
	return e.Err.Error()
}

// Unwrap returns e.Err.
func (e *RejectError) Unwrap() error { return e.Err }

// PanicError is the error of a handler that panicked; the job is FAILED.
type PanicError struct {
	// Value is what the handler panicked with.
	Value any
	// Stack is the handler's stack trace at the panic.
	Stack []byte
}

// Error returns the panic's value.
func (e *PanicError) Error() string { return fmt.Sprintf("handler panicked: %v", e.Value) }

// JobEndedError says that the service ended a job while the agent ran it:
// it is the cause of the handler's context (context.Cause), and
// errors.Is(err, ErrJobCanceled) is true for it.
type JobEndedError struct {
	// JobID is the job.
	JobID string
	// Status is the terminal status the service holds: CANCELED, REMOVED,
	// TIMED_OUT, or another terminal status set by someone else; empty
	// when the execution was deleted (Deleted) or its status could not be
	// learned.
	Status job.Status
	// Deleted reports that the execution no longer exists.
	Deleted bool
}

// Error says what ended the job.
func (e *JobEndedError) Error() string {
	switch {
	case e.Deleted:
		return fmt.Sprintf("agent: job %s was deleted", e.JobID)
	case e.Status == "":
		return fmt.Sprintf("agent: job %s ended", e.JobID)
	}
	return fmt.Sprintf("agent: job %s is %s", e.JobID, e.Status)
}

// Is reports whether target is ErrJobCanceled.
func (e *JobEndedError) Is(target error) bool { return target == ErrJobCanceled }

// cloneDetails copies d; nil stays nil.
func cloneDetails(d job.StatusDetails) job.StatusDetails { return maps.Clone(d) }
