package agent

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"time"

	"github.com/iotjobs/iotjobs/domain/job"
)

// errGoexit is the error of a handler that called runtime.Goexit.
var errGoexit = errors.New("handler exited without returning (runtime.Goexit)")

// run is one job execution the agent runs. Its goroutine (execute) owns
// the fields without a lock; the handler reaches it as its Progress.
type run struct {
	a       *Agent
	key     key
	job     Job
	started time.Time

	// version is the execution's version as last learned, if known.
	version      job.Version
	versionKnown bool
	// takenAt is the service's time of the take, if it said; immutable.
	takenAt job.Timestamp

	check    chan struct{} // the job may have ended; capacity 1
	reported chan struct{} // progress was reported; capacity 1

	mu      sync.Mutex // guards the progress below
	details job.StatusDetails
	dirty   bool // details not sent yet
	over    bool // the handler returned: reports are ignored

	// final is the final update, kept for a later try if it failed.
	final  *job.UpdateRequest
	result Result
}

func newRun(a *Agent, x job.Execution, resumed bool, v job.Version, versionKnown bool, takenAt job.Timestamp) *run {
	return &run{
		takenAt: takenAt,
		a:       a,
		key:     key{x.JobID, x.ExecutionNumber},
		job: Job{
			Thing: a.thing, ID: x.JobID, ExecutionNumber: x.ExecutionNumber,
			Document: x.JobDocument, Execution: x, Resumed: resumed,
		},
		version:      v,
		versionKnown: versionKnown,
		check:        make(chan struct{}, 1),
		reported:     make(chan struct{}, 1),
	}
}

// newerThan reports whether r was taken after a message sent at ts: in an
// earlier second of the service's clock. Such a message says nothing of r.
func (r *run) newerThan(ts job.Timestamp) bool {
	return ts != 0 && r.takenAt != 0 && ts.Time().Unix() < r.takenAt.Time().Unix()
}

// signalCheck asks r to check that its job still runs.
func (r *run) signalCheck() {
	select {
	case r.check <- struct{}{}:
	default:
	}
}

// Report is the Progress of r's handler.
func (r *run) Report(details job.StatusDetails) {
	r.mu.Lock()
	if r.over {
		r.mu.Unlock()
		return
	}
	r.details, r.dirty = cloneDetails(details), true
	r.mu.Unlock()
	select {
	case r.reported <- struct{}{}:
	default:
	}
}

// unsent returns the details reported and not sent yet, and marks them
// sent.
func (r *run) unsent() (job.StatusDetails, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	d, ok := r.details, r.dirty
	r.dirty = false
	return d, ok
}

// resend marks d as not sent, unless newer details were reported.
func (r *run) resend(d job.StatusDetails) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.dirty {
		r.details, r.dirty = d, true
	}
}

// last ends the reports and returns the last details reported.
func (r *run) last() job.StatusDetails {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.over = true
	return r.details
}

// versionPtr returns the version to expect, nil if unknown.
func (r *run) versionPtr() *job.Version {
	if !r.versionKnown {
		return nil
	}
	v := r.version
	return &v
}

// learn records the version of an execution state.
func (r *run) learn(s *job.ExecutionState) {
	if s == nil {
		r.versionKnown = false
		return
	}
	r.version, r.versionKnown = s.VersionNumber, true
}

// start registers r as running and starts its goroutine, which ends
// before Run returns.
func (a *Agent) start(base context.Context, r *run) {
	r.started = a.clock.Now()
	a.mu.Lock()
	a.running[r.key] = r
	a.mu.Unlock()
	a.log.Info("agent: job started", "job", r.job.ID, "execution", r.job.ExecutionNumber, "resumed", r.job.Resumed)
	a.wg.Add(1)
	go a.execute(base, r)
}

// execute runs r's handler, sends its progress, watches for its end by the
// service and its step timeout, then reports its final status and hands r
// to Run.
func (a *Agent) execute(base context.Context, r *run) {
	defer a.wg.Done()
	hctx, cancel := context.WithCancelCause(base)
	defer cancel(nil)

	out := make(chan error, 1)
	var hwg sync.WaitGroup
	hwg.Add(1)
	go func() {
		defer hwg.Done()
		err := errGoexit
		defer func() { out <- err }()
		err = a.call(hctx, r)
	}()

	var (
		herr     error
		ended    *JobEndedError
		lastSent = r.started
		failures int // progress updates failed in a row
		pt, st   Timer
		ptC, stC <-chan time.Time
	)
	if a.cfg.StepTimeout > 0 {
		st = a.clock.NewTimer(r.started.Add(a.cfg.StepTimeout))
		stC = st.C()
	}
	end := func(e *JobEndedError) {
		if ended == nil {
			ended = e
			cancel(e)
			a.log.Info("agent: job ended by the service", "job", r.job.ID, "status", e.Status)
		}
	}
	send := func() {
		d, ok := r.unsent()
		if !ok || ended != nil {
			return
		}
		lastSent = a.clock.Now()
		e, err := a.progress(hctx, r, d)
		switch {
		case e != nil:
			end(e)
		case err != nil:
			a.log.Warn("agent: cannot send progress", "job", r.job.ID, "error", err)
			if hctx.Err() == nil && retryable(hctx, err) {
				// Send again after the interval, or the backoff if longer.
				failures++
				r.resend(d)
				if ptC == nil {
					pt = a.clock.NewTimer(lastSent.Add(max(a.cfg.ProgressInterval, a.backoff.delay(failures))))
					ptC = pt.C()
				}
			}
		default:
			failures = 0
			if st != nil {
				// The service restarted its step timer: so does the agent.
				st.Stop()
				st = a.clock.NewTimer(lastSent.Add(a.cfg.StepTimeout))
				stC = st.C()
			}
		}
	}
wait:
	for {
		select {
		case herr = <-out:
			break wait
		case <-r.reported:
			if ptC != nil {
				continue // a send is scheduled
			}
			if at := lastSent.Add(a.cfg.ProgressInterval); a.clock.Now().Before(at) {
				pt = a.clock.NewTimer(at)
				ptC = pt.C()
				continue
			}
			send()
		case <-ptC:
			pt, ptC = nil, nil
			send()
		case <-r.check:
			if ended == nil {
				if e := a.confirm(hctx, r); e != nil {
					end(e)
				}
			}
		case <-stC:
			st, stC = nil, nil
			err := fmt.Errorf("%w: no progress for %v", ErrStepTimeout, a.cfg.StepTimeout)
			a.log.Warn("agent: step timeout", "job", r.job.ID, "timeout", a.cfg.StepTimeout)
			cancel(err)
		}
	}
	hwg.Wait()
	for _, t := range []Timer{pt, st} {
		if t != nil {
			t.Stop()
		}
	}
	details := r.last()

	res := Result{JobID: r.key.jobID, ExecutionNumber: r.key.number, Resumed: r.job.Resumed}
	var cause error
	if hctx.Err() != nil {
		cause = context.Cause(hctx)
	}
	switch {
	case ended != nil:
		res.Status, res.Err = ended.Status, ended
	case herr != nil && errors.Is(cause, ErrStopped):
		// Left IN_PROGRESS: the next agent resumes it.
		res.Status, res.Err = job.InProgress, cause
	default:
		status, reason := job.Succeeded, ""
		if herr != nil {
			res.Err = herr
			if cause != nil {
				res.Err = cause
			}
			status, reason = job.Failed, reasonOf(res.Err)
			var rej *RejectError
			if errors.As(herr, &rej) {
				status, reason = job.Rejected, reasonOf(rej)
			}
		}
		r.final = &job.UpdateRequest{Status: status, StatusDetails: finalDetails(details, reason)}
		// The report outlives a stop, but is then not retried.
		e, err := a.report(context.WithoutCancel(base), base, r.key, *r.final, r.versionPtr())
		switch {
		case e != nil:
			res.Status = e.Status
			if res.Err == nil {
				res.Err = e
			}
		case err != nil:
			res.Status, res.ReportErr = job.InProgress, err
		default:
			res.Status = status
		}
	}
	res.Duration = a.clock.Now().Sub(r.started)
	r.result = res
	a.done <- r
}

// call runs the handler, turning a panic into a *PanicError.
func (a *Agent) call(ctx context.Context, r *run) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &PanicError{Value: v, Stack: debug.Stack()}
		}
	}()
	return a.handler.HandleJob(ctx, r.job, r)
}

// finalDetails returns the details of a final update: the last ones
// reported, with the reason if any.
func finalDetails(last job.StatusDetails, reason string) job.StatusDetails {
	if reason == "" {
		return sanitize(last, MaxDetailsSize)
	}
	d := sanitize(last, MaxDetailsSize-entrySize(ReasonKey, reason))
	if d == nil {
		d = job.StatusDetails{}
	}
	d[ReasonKey] = reason
	return d
}

// progress sends d as an IN_PROGRESS update of r. It returns a
// *JobEndedError if the service ended the job.
func (a *Agent) progress(ctx context.Context, r *run, d job.StatusDetails) (*JobEndedError, error) {
	d = sanitize(d, MaxDetailsSize)
	if d == nil {
		d = job.StatusDetails{} // nothing valid to say; the update still shows life
	}
	var err error
	for range 2 {
		req := job.UpdateRequest{
			Status: job.InProgress, StatusDetails: d, ExpectedVersion: r.versionPtr(),
			ExecutionNumber: number(r.key.number), IncludeJobExecutionState: true,
			StepTimeoutInMinutes: a.stepMinutes,
		}
		var resp *job.UpdateResponse
		resp, err = a.client.Update(ctx, r.key.jobID, req)
		if err == nil {
			r.learn(resp.ExecutionState)
			return nil, nil
		}
		e, s := endedBy(r.key.jobID, err)
		if e != nil {
			return e, nil
		}
		if s == nil || !errors.Is(err, job.ErrVersionMismatch) {
			break
		}
		r.learn(s) // someone else moved it: take the current version
	}
	return nil, err
}

// endedBy reads a rejected update: it returns a *JobEndedError if the
// execution is gone or terminal, and the execution state sent, if any.
func endedBy(jobID string, err error) (*JobEndedError, *job.ExecutionState) {
	var rej *job.RejectedError
	if !errors.As(err, &rej) {
		return nil, nil
	}
	s := rej.ExecutionState
	switch {
	case rej.Code == job.CodeResourceNotFound:
		return &JobEndedError{JobID: jobID, Deleted: true}, nil
	case s != nil && s.Status.Terminal():
		return &JobEndedError{JobID: jobID, Status: s.Status}, s
	}
	return nil, s
}

// report sends the final update req of k, expecting version v (nil:
// unknown). It returns a *JobEndedError if the service ended the job
// first, and an error if the report could not be made. An execution
// that already has req's status (an earlier attempt whose reply was lost)
// counts as reported. Retries end when stop ends.
func (a *Agent) report(ctx, stop context.Context, k key, req job.UpdateRequest, v *job.Version) (*JobEndedError, error) {
	req.IncludeJobExecutionState = true
	req.ExecutionNumber = number(k.number)
	var err error
	for range maxRereads {
		req.ExpectedVersion = v
		err = a.retry(ctx, stop, "report "+k.jobID, func(ctx context.Context) error {
			_, err := a.client.Update(ctx, k.jobID, req)
			return err
		})
		if err == nil {
			return nil, nil
		}
		e, s := endedBy(k.jobID, err)
		switch {
		case s != nil && s.Status == req.Status:
			return nil, nil // done before
		case e != nil:
			return e, nil
		case s != nil && errors.Is(err, job.ErrVersionMismatch):
			vv := s.VersionNumber // our last progress reply was lost, or the job moved: read again
			v = &vv
			continue
		}
		break
	}
	return nil, err
}

// confirm asks the service whether r's job still runs. It returns a
// *JobEndedError if not. Describe shows an execution in a terminal state
// only as TerminalStateReached; an IN_PROGRESS update, which the service
// cannot apply to such an execution, then learns its status from the
// rejection.
func (a *Agent) confirm(ctx context.Context, r *run) *JobEndedError {
	noDoc := false
	var resp *job.DescribeResponse
	err := a.retry(ctx, ctx, "describe "+r.key.jobID, func(ctx context.Context) (err error) {
		resp, err = a.client.Describe(ctx, r.key.jobID, job.DescribeRequest{ExecutionNumber: number(r.key.number), IncludeJobDocument: &noDoc})
		return err
	})
	switch {
	case err == nil && resp.Execution != nil:
		x := resp.Execution
		if x.Status.Terminal() {
			return &JobEndedError{JobID: r.key.jobID, Status: x.Status}
		}
		r.version, r.versionKnown = x.VersionNumber, true
		return nil
	case errors.Is(err, job.ErrResourceNotFound):
		return &JobEndedError{JobID: r.key.jobID, Deleted: true}
	case !errors.Is(err, job.ErrTerminalStateReached):
		if err != nil {
			a.log.Warn("agent: cannot check a job", "job", r.key.jobID, "error", err)
		}
		return nil
	}
	req := job.UpdateRequest{
		Status: job.InProgress, ExpectedVersion: r.versionPtr(), ExecutionNumber: number(r.key.number),
		IncludeJobExecutionState: true,
	}
	// The probe cannot change a terminal execution: retrying it is safe,
	// and a lost reply must not hide the status the service set.
	var presp *job.UpdateResponse
	err = a.retry(ctx, ctx, "probe "+r.key.jobID, func(ctx context.Context) (err error) {
		presp, err = a.client.Update(ctx, r.key.jobID, req)
		return err
	})
	if err == nil { // alive after all
		r.learn(presp.ExecutionState)
		return nil
	}
	if e, _ := endedBy(r.key.jobID, err); e != nil {
		return e
	}
	return &JobEndedError{JobID: r.key.jobID}
}
