// Package agent runs the AWS IoT Jobs of one thing to completion with user
// handlers: it takes the next job, runs the handler the job document asks
// for, reports its progress and its end (SUCCEEDED, FAILED or REJECTED),
// notices when the service cancels, removes, deletes or times out the job
// it runs, retries what may be retried, and never runs one execution
// twice.
//
//	mux := agent.NewMux()
//	mux.HandleFunc("install", install) // {"operation":"install",...}
//	mux.HandleFunc("reboot", reboot)
//	a, err := agent.New(ctx, transport, "my-thing", agent.Config{Handler: mux})
//	if err != nil { ... }
//	defer a.Close()
//	err = a.Run(ctx) // until ctx ends; RunOnce returns when no job is left
//
// # The client
//
// New makes the agent's own jobs.Client over the transport, so that the
// agent sees every notification (jobs.Options.OnEvent is fixed when a
// client is made); Config.Client tunes it, and Client returns it for other
// requests.
//
// # Taking jobs
//
// The agent takes the next job when Run starts, when a notification says
// that the next job changed or a job was queued, after every reconnect
// (jobs.EventResynced: notifications sent meanwhile are lost), and after
// every job's end. With Concurrency 1 (the default) it takes it the way AWS
// advises for scale: DescribeJobExecution of $next, then an IN_PROGRESS
// update that expects the version read; when a notification has just shown
// the next execution, the update alone, expecting the version shown
// (Config.UseStartNext uses StartNextPendingJobExecution instead). With
// Concurrency n it reads the pending list and takes up to n jobs the same
// way, each with the version listed. A take that loses a race
// (VersionMismatch, or the job ended meanwhile) reads again. RequestThrottled, InternalError, lost replies and
// disconnections are retried with capped exponential backoff and jitter
// (Config.Retry); other errors are not.
//
// An execution already IN_PROGRESS when the agent takes it belongs to this
// device and was interrupted, say by a restart: the agent runs it again,
// with Job.Resumed set and Job.Execution as the service held it, including
// the status details reported before. A handler must therefore be
// idempotent, or look at those details to carry on where it stopped.
//
// The agent remembers the executions it runs and ran, by job id and
// execution number, so that duplicate notifications, reconnects and
// triggers that coincide never start one twice. It forgets an execution it
// ran once the service no longer lists it, and keeps at most 1024. When the
// end of a job could not be reported (Result.ReportErr), the agent sends it
// again before each later take, instead of running the job again; Run
// tries a take, and so the report, at least every Retry.Max until it is
// reported.
//
// # Handlers
//
// A Handler (or HandlerFunc) runs one job. Its error decides the end: nil
// is SUCCEEDED; an error wrapping a *RejectError (see Reject) is REJECTED,
// for a job that can never succeed here, which a job's retry configuration
// never retries; any other error, or a panic, which the agent recovers, is
// FAILED. The error's message goes in the "reason" status detail. A Mux
// routes each job to a handler by its document's "operation", or by the
// handler named in the steps of an AWS managed job template, and rejects
// documents it cannot read and operations it does not know.
//
// The handler reports progress with Progress.Report: the agent sends the
// latest details as an IN_PROGRESS update at most once per
// Config.ProgressInterval, so a chatty handler cannot exceed AWS's request
// limits, and the last details reported go with the final status. Details
// are cleaned up to AWS's rules (SanitizeDetails) rather than refused by
// the service.
//
// # Cancellation
//
// Nothing tells a device directly that the service ended the job it runs:
// it shows as the job leaving the pending list (notify), the next job
// changing (notify-next), a Describe answering a terminal status,
// TerminalStateReached or ResourceNotFound, or an update rejected with
// InvalidStateTransition or ResourceNotFound. The agent watches all of
// these and confirms with a Describe. Since a Describe of a terminal
// execution answers only TerminalStateReached, the agent then learns the
// status from the rejection of an IN_PROGRESS update, which the service
// cannot apply to a terminal execution. It cancels the handler's context
// with a *JobEndedError (errors.Is(context.Cause(ctx), ErrJobCanceled)) that
// says which status the service set, and sends nothing more for that job:
// it never overwrites a terminal state.
//
// With Config.StepTimeout, every IN_PROGRESS update carries the step
// timeout, so the service times a silent job out, and the agent cancels the
// handler itself (cause ErrStepTimeout) when no progress was sent for that
// long; the job is then FAILED.
//
// # Stopping
//
// Run returns when its context ends or Close is called: it cancels the
// handlers (cause ErrStopped), waits for them, reports the jobs whose
// handler succeeded all the same, and leaves the others IN_PROGRESS for the
// next agent to resume. Every goroutine of the agent has ended when Run
// returns.
package agent
