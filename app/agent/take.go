package agent

import (
	"context"
	"errors"

	"github.com/iotjobs/iotjobs/domain/job"
)

// step says what a take does after one attempt.
type step int

const (
	stepDone  step = iota // nothing more to take now
	stepAgain             // a race was lost: read the pending jobs again
	stepList              // the next job is one the agent knows: look further
)

// take takes pending jobs while slots are free, and starts them. It returns
// how many it started. It first sends the final reports that could not be
// sent before, so that the service does not offer those jobs again.
func (a *Agent) take(ctx context.Context) (started int, err error) {
	// What the take reads is newer than what asked for a take before it:
	// such a request is served.
	select {
	case <-a.kick:
	default:
	}
	a.flushReports(ctx)
	list := a.cfg.Concurrency > 1
	for rereads := 0; rereads <= maxRereads; {
		free := a.cfg.Concurrency - a.runningCount()
		if free <= 0 {
			return started, nil
		}
		var (
			n    int
			next step
		)
		switch {
		case list:
			n, next, err = a.takeListed(ctx, free)
		case a.cfg.UseStartNext:
			n, next, err = a.takeStartNext(ctx)
		default:
			n, next, err = a.takeDescribed(ctx)
		}
		started += n
		if err != nil {
			return started, err
		}
		switch next {
		case stepDone:
			return started, nil
		case stepList:
			list = true
		case stepAgain:
			rereads++
		}
	}
	return started, nil
}

// takeDescribed takes the next job the scalable way: Describe of $next,
// then an IN_PROGRESS update expecting the version read. When a
// notification showed the next job, the update expects the version it
// showed, without the Describe: if the notification was stale, the update
// fails and the Describe follows.
func (a *Agent) takeDescribed(ctx context.Context) (int, step, error) {
	a.mu.Lock()
	hint := a.hint
	a.hint = nil
	a.mu.Unlock()
	if hint != nil && hint.Status.Pending() && !a.known(key{hint.JobID, hint.ExecutionNumber}) {
		n, next, err := a.claim(ctx, *hint, len(hint.JobDocument) == 0)
		if err != nil || n > 0 {
			return n, next, err
		}
	}
	var resp *job.DescribeResponse
	err := a.retry(ctx, ctx, "describe $next", func(ctx context.Context) (err error) {
		resp, err = a.client.Describe(ctx, job.NextJobID, job.DescribeRequest{})
		return err
	})
	switch {
	case err != nil:
		return 0, stepDone, err
	case resp.Execution == nil:
		return 0, stepDone, nil
	case !resp.Execution.Status.Pending():
		return 0, stepAgain, nil // not a next execution: ask again
	case a.known(key{resp.Execution.JobID, resp.Execution.ExecutionNumber}):
		return 0, stepList, nil
	}
	return a.claim(ctx, *resp.Execution, false)
}

// takeStartNext takes the next job with StartNext.
func (a *Agent) takeStartNext(ctx context.Context) (int, step, error) {
	var resp *job.StartNextResponse
	err := a.retry(ctx, ctx, "start next", func(ctx context.Context) (err error) {
		resp, err = a.client.StartNext(ctx, job.StartNextRequest{StepTimeoutInMinutes: a.stepMinutes})
		return err
	})
	switch {
	case err != nil:
		return 0, stepDone, err
	case resp.Execution == nil:
		return 0, stepDone, nil
	}
	x := *resp.Execution
	k := key{x.JobID, x.ExecutionNumber}
	if a.known(k) {
		return 0, stepList, nil
	}
	resumed := x.StartedAt != 0 && x.StartedAt < resp.Timestamp || len(x.StatusDetails) > 0
	a.start(ctx, newRun(a, x, resumed, x.VersionNumber, true, resp.Timestamp))
	return 1, stepDone, nil
}

// takeListed reads the pending list and takes up to free jobs the agent
// does not know, IN_PROGRESS ones (to resume) first, then QUEUED ones
// oldest first, each with an IN_PROGRESS update expecting its listed
// version.
func (a *Agent) takeListed(ctx context.Context, free int) (int, step, error) {
	var p *job.GetPendingResponse
	err := a.retry(ctx, ctx, "get pending", func(ctx context.Context) (err error) {
		p, err = a.client.GetPending(ctx)
		return err
	})
	if err != nil {
		return 0, stepDone, err
	}
	a.forgetUnlisted(p)
	n, lost := 0, false
	for _, l := range []struct {
		status job.Status
		jobs   []job.Summary
	}{{job.InProgress, p.InProgressJobs}, {job.Queued, p.QueuedJobs}} {
		for _, s := range l.jobs {
			if n == free {
				return n, stepDone, nil
			}
			if a.known(key{s.JobID, s.ExecutionNumber}) {
				continue
			}
			c, next, err := a.claim(ctx, *execution(s, l.status), true)
			n += c
			if err != nil {
				return n, stepDone, err
			}
			lost = lost || next == stepAgain
		}
	}
	if lost {
		return n, stepAgain, nil
	}
	return n, stepDone, nil
}

// claim moves the pending execution x to IN_PROGRESS, expecting its
// version, and starts it. With withDoc the update asks for the job
// document, which x lacks. A race lost to the service (the version moved,
// the execution ended or is gone) asks for another read.
func (a *Agent) claim(ctx context.Context, x job.Execution, withDoc bool) (int, step, error) {
	a.mu.Lock()
	a.claiming = key{x.JobID, x.ExecutionNumber}
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		a.claiming = key{}
		a.mu.Unlock()
	}()
	v := x.VersionNumber
	req := job.UpdateRequest{
		Status: job.InProgress, ExpectedVersion: &v, IncludeJobExecutionState: true,
		IncludeJobDocument: withDoc, StepTimeoutInMinutes: a.stepMinutes, ExecutionNumber: number(x.ExecutionNumber),
	}
	var resp *job.UpdateResponse
	err := a.retry(ctx, ctx, "take "+x.JobID, func(ctx context.Context) (err error) {
		resp, err = a.client.Update(ctx, x.JobID, req)
		return err
	})
	switch {
	case errors.Is(err, job.ErrVersionMismatch), errors.Is(err, job.ErrInvalidStateTransition),
		errors.Is(err, job.ErrResourceNotFound):
		a.log.Debug("agent: lost a race for a job", "job", x.JobID, "error", err)
		return 0, stepAgain, nil
	case err != nil:
		return 0, stepDone, err
	}
	known := false
	if s := resp.ExecutionState; s != nil {
		v, known = s.VersionNumber, true
		if withDoc {
			x.StatusDetails = s.StatusDetails // unchanged by the take
		}
	}
	if withDoc {
		x.JobDocument = resp.JobDocument
	}
	a.start(ctx, newRun(a, x, x.Status == job.InProgress, v, known, resp.Timestamp))
	return 1, stepDone, nil
}

// number returns a pointer to n, or nil for 0 (not known).
func number(n int64) *int64 {
	if n == 0 {
		return nil
	}
	return &n
}

// known reports whether the agent runs or ran k.
func (a *Agent) known(k key) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.knownLocked(k)
}

// flushReports sends again the final reports that failed.
func (a *Agent) flushReports(ctx context.Context) {
	type pending struct {
		k key
		f finished
	}
	var ps []pending
	a.mu.Lock()
	for _, k := range a.order {
		if f := a.finished[k]; f.report != nil {
			ps = append(ps, pending{k, *f})
		}
	}
	a.mu.Unlock()
	for _, p := range ps {
		ended, err := a.report(ctx, ctx, p.k, *p.f.report, &p.f.version)
		if err != nil {
			a.log.Warn("agent: cannot report a job's end", "job", p.k.jobID, "status", p.f.report.Status, "error", err)
			a.mu.Lock()
			if f := a.finished[p.k]; f != nil {
				f.err = err
			}
			a.mu.Unlock()
			continue
		}
		if ended != nil {
			a.log.Info("agent: job ended before its end was reported", "job", p.k.jobID, "error", ended)
		} else {
			a.log.Info("agent: job's end reported", "job", p.k.jobID, "status", p.f.report.Status)
		}
		a.mu.Lock()
		if f := a.finished[p.k]; f != nil {
			f.report = nil
		}
		a.mu.Unlock()
	}
}
