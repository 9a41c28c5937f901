package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/iotjobs/iotjobs/app/jobs"
	"github.com/iotjobs/iotjobs/domain/job"
	"github.com/iotjobs/iotjobs/ports"
)

// DefaultProgressInterval is Config.ProgressInterval when zero.
const DefaultProgressInterval = 5 * time.Second

// maxFinished bounds the executions the agent remembers having run.
const maxFinished = 1024

// maxRereads bounds how often one take reads the pending jobs again after
// losing a race (VersionMismatch, or the job ended meanwhile).
const maxRereads = 5

// Config configures an Agent. Only Handler is required.
type Config struct {
	// Handler runs every job; a Mux chooses one by the job document.
	Handler Handler
	// Concurrency is how many jobs run at once; zero means 1. With 1 the
	// agent takes the next job the way AWS advises for scale: Describe of
	// $next, then an IN_PROGRESS update with the version read. With more,
	// it reads the pending list and takes queued jobs one by one the same
	// way, with the versions listed.
	Concurrency int
	// UseStartNext takes the next job with StartNextPendingJobExecution
	// instead of Describe and Update: one request instead of two, but AWS
	// counts it as a write, which competes with updates for throttling
	// quota. It applies with Concurrency 1 only.
	UseStartNext bool
	// ProgressInterval is the least time between two updates of a job
	// (its take, progress reports): reports in between are coalesced. Zero
	// means DefaultProgressInterval.
	ProgressInterval time.Duration
	// StepTimeout, if not zero, is the time a job may run without a
	// progress report. The agent sends it with every IN_PROGRESS update
	// (as stepTimeoutInMinutes, rounded up to whole minutes, at most 10080),
	// so that the service times the job out if the device goes silent, and
	// it cancels the handler itself (cause ErrStepTimeout) when that long
	// passed since the job was taken or its last progress was sent; the
	// job is then FAILED.
	StepTimeout time.Duration
	// Retry says how requests are retried.
	Retry RetryPolicy
	// Logger receives the agent's log; nil means none.
	Logger *slog.Logger
	// OnResult, if set, is called with the Result of every job, one call
	// at a time, from the goroutine of Run. It must return quickly and must
	// not call Close.
	OnResult func(Result)
	// Clock drives the agent's timers; nil means the real clock.
	Clock Clock
	// Client configures the Jobs client the agent makes. Its Thing is the
	// thing argument of New (a different non-empty value is refused); its
	// OnEvent, if set, is called with every event after the agent saw it,
	// and must not call Close.
	Client jobs.Options
}

// key names one job execution.
type key struct {
	jobID  string
	number int64
}

// finished is an execution the agent ran to its end.
type finished struct {
	// report, if not nil, is the final update that could not be sent yet,
	// for the reason err.
	report  *job.UpdateRequest
	err     error
	version job.Version
}

// Agent runs the jobs of one thing. Make one with New, run it with Run or
// RunOnce, and Close it.
type Agent struct {
	client  *jobs.Client
	thing   string
	handler Handler
	cfg     Config
	log     *slog.Logger
	clock   Clock
	backoff *backoff
	// stepMinutes is StepTimeout in whole minutes, for the service; nil
	// without step timeout.
	stepMinutes *int64
	onEvent     func(jobs.Event)

	kick chan struct{}  // a take is wanted; capacity 1
	done chan *run      // runs that ended
	wg   sync.WaitGroup // the runs' goroutines

	// closing ends, with cause ErrClosed, when Close is called.
	closing       context.Context
	cancelClosing context.CancelCauseFunc
	closeOnce     sync.Once
	closeErr      error

	mu       sync.Mutex // guards what follows
	active   bool       // Run or RunOnce is running
	idle     chan struct{}
	running  map[key]*run
	finished map[key]*finished
	order    []key // of finished, oldest first
	// hint is the next execution as the last notification showed it, to
	// take without a Describe (Concurrency 1, without StartNext).
	hint *job.Execution
	// claiming is the execution being taken, if any: known already, so
	// that its notifications ask for no other take.
	claiming key
}

// New makes the agent of thing over ps, with its own Jobs client
// (jobs.New with cfg.Client). The agent owns the client so that it sees
// every notification: use Client for other requests. ctx bounds the
// client's subscription. New refuses an invalid Config with an error
// wrapping ErrInvalidConfig.
func New(ctx context.Context, ps ports.PubSub, thing string, cfg Config) (*Agent, error) {
	var bad []string
	if cfg.Handler == nil {
		bad = append(bad, "nil Handler")
	}
	if cfg.Concurrency < 0 {
		bad = append(bad, fmt.Sprintf("Concurrency %d is negative", cfg.Concurrency))
	}
	if cfg.ProgressInterval < 0 {
		bad = append(bad, fmt.Sprintf("ProgressInterval %v is negative", cfg.ProgressInterval))
	}
	if maxStep := job.MaxStepTimeoutMinutes * time.Minute; cfg.StepTimeout < 0 || cfg.StepTimeout > maxStep {
		bad = append(bad, fmt.Sprintf("StepTimeout %v is not between 0 and %v", cfg.StepTimeout, maxStep))
	}
	if r := cfg.Retry; r.Initial < 0 || r.Max < 0 || r.Attempts < 0 || r.Max != 0 && r.Max < r.Initial {
		bad = append(bad, fmt.Sprintf("Retry %+v has a negative field, or Max below Initial", r))
	}
	if cfg.Client.Thing != "" && cfg.Client.Thing != thing {
		bad = append(bad, fmt.Sprintf("Client.Thing %q is not thing %q", cfg.Client.Thing, thing))
	}
	if len(bad) > 0 {
		return nil, fmt.Errorf("agent: new: %w: %s", ErrInvalidConfig, strings.Join(bad, "; "))
	}
	a := &Agent{
		thing:    thing,
		handler:  cfg.Handler,
		cfg:      cfg,
		log:      cfg.Logger,
		clock:    cfg.Clock,
		backoff:  newBackoff(cfg.Retry),
		onEvent:  cfg.Client.OnEvent,
		kick:     make(chan struct{}, 1),
		done:     make(chan *run),
		running:  make(map[key]*run),
		finished: make(map[key]*finished),
	}
	if a.cfg.Concurrency == 0 {
		a.cfg.Concurrency = 1
	}
	if a.cfg.ProgressInterval == 0 {
		a.cfg.ProgressInterval = DefaultProgressInterval
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if a.clock == nil {
		a.clock = systemClock{}
	}
	if cfg.StepTimeout > 0 {
		m := int64((cfg.StepTimeout + time.Minute - 1) / time.Minute)
		a.stepMinutes = &m
	}
	a.closing, a.cancelClosing = context.WithCancelCause(context.Background())
	opts := cfg.Client
	opts.Thing = thing
	opts.OnEvent = a.event
	c, err := jobs.New(ctx, ps, opts)
	if err != nil {
		a.cancelClosing(ErrClosed)
		return nil, fmt.Errorf("agent: new: %w", err)
	}
	a.client = c
	return a, nil
}

// Client returns the agent's Jobs client.
func (a *Agent) Client() *jobs.Client { return a.client }

// Close stops Run or RunOnce if one runs, as if its context ended, waits
// for it to return, and closes the agent's Jobs client. A second Close
// returns the result of the first.
func (a *Agent) Close() error {
	a.closeOnce.Do(func() {
		a.cancelClosing(ErrClosed)
		a.mu.Lock()
		idle := a.idle
		a.mu.Unlock()
		if idle != nil {
			<-idle
		}
		a.closeErr = a.client.Close()
	})
	return a.closeErr
}

// Run runs jobs until ctx ends or Close is called: it takes the next job
// when it starts, when the service says the next job changed or a job was
// queued, after every reconnect, and whenever a job ends, and runs up to
// Config.Concurrency at once. When it stops, it cancels the handlers that
// run (cause ErrStopped), waits for them, reports the jobs whose handler
// succeeded all the same, leaves the others IN_PROGRESS (the next agent
// resumes them) and returns nil. It returns ErrClosed after Close and
// ErrRunning while another Run or RunOnce runs; it may be called again
// after it returned.
func (a *Agent) Run(ctx context.Context) error { return a.serve(ctx, false) }

// RunOnce runs jobs as Run does, but returns as soon as no job runs and the
// service has no job left that the agent may take. It returns the error of
// the last attempt to take a job, if that failed; else an error wrapping
// ErrUnreported if the end of a job could not be reported; else nil.
func (a *Agent) RunOnce(ctx context.Context) error { return a.serve(ctx, true) }

// serve is Run (once false) and RunOnce (once true).
func (a *Agent) serve(ctx context.Context, once bool) error {
	a.mu.Lock()
	switch {
	case a.closing.Err() != nil:
		a.mu.Unlock()
		return ErrClosed
	case a.active:
		a.mu.Unlock()
		return ErrRunning
	}
	a.active, a.idle = true, make(chan struct{})
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		a.active = false
		close(a.idle)
		a.mu.Unlock()
	}()

	// base is the parent of the handlers' contexts: it keeps ctx's values,
	// and ends with cause ErrStopped when ctx ends or Close is called.
	base, stop := context.WithCancelCause(context.WithoutCancel(ctx))
	defer stop(nil)
	stopCtx := context.AfterFunc(ctx, func() { stop(fmt.Errorf("%w: %w", ErrStopped, context.Cause(ctx))) })
	defer stopCtx()
	stopClose := context.AfterFunc(a.closing, func() { stop(fmt.Errorf("%w: %w", ErrStopped, ErrClosed)) })
	defer stopClose()

	a.log.Info("agent: running", "thing", a.thing, "concurrency", a.cfg.Concurrency, "once", once)
	var (
		retryTimer Timer
		retryC     <-chan time.Time
	)
	defer func() {
		if retryTimer != nil {
			retryTimer.Stop()
		}
	}()
	a.wake()
	for {
		// Decide once: base may end at any time.
		stopping := base.Err() != nil
		if stopping && a.runningCount() == 0 {
			a.wg.Wait()
			a.log.Info("agent: stopped", "thing", a.thing)
			return nil
		}
		stopped := base.Done()
		if stopping {
			stopped = nil // the handlers were canceled with base: wait for them
		}
		select {
		case <-stopped:
			continue
		case r := <-a.done:
			a.end(r)
		case <-a.kick:
		case <-retryC:
			retryTimer, retryC = nil, nil
		}
		if base.Err() != nil {
			continue
		}
		started, err := a.take(base)
		switch {
		case err != nil && base.Err() == nil:
			a.log.Warn("agent: cannot take a job", "thing", a.thing, "error", err)
			if once && started == 0 && a.runningCount() == 0 {
				a.wg.Wait()
				return err
			}
			if retryTimer == nil {
				retryTimer = a.clock.NewTimer(a.clock.Now().Add(a.backoff.max))
				retryC = retryTimer.C()
			}
		case err == nil && once && started == 0 && a.runningCount() == 0:
			a.wg.Wait()
			a.log.Info("agent: no job left", "thing", a.thing)
			return a.unreported()
		case err == nil && retryTimer == nil && a.unreported() != nil:
			// The end of a job waits to be reported, and nothing may
			// ask for a take again: try again after Max all the same.
			retryTimer = a.clock.NewTimer(a.clock.Now().Add(a.backoff.max))
			retryC = retryTimer.C()
		}
	}
}

func (a *Agent) runningCount() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.running)
}

// wake asks the goroutine of Run for a take.
func (a *Agent) wake() {
	select {
	case a.kick <- struct{}{}:
	default: // one is pending already
	}
}

// end records the end of r and passes its result on.
func (a *Agent) end(r *run) {
	res := r.result
	a.mu.Lock()
	delete(a.running, r.key)
	if res.Status != job.InProgress || res.ReportErr != nil {
		f := &finished{version: r.version}
		if res.ReportErr != nil {
			f.report, f.err = r.final, res.ReportErr
		}
		a.rememberLocked(r.key, f)
	}
	a.mu.Unlock()
	attrs := []any{"job", res.JobID, "status", res.Status, "duration", res.Duration}
	if res.Err != nil {
		attrs = append(attrs, "error", res.Err)
	}
	if res.ReportErr != nil {
		attrs = append(attrs, "report_error", res.ReportErr)
		a.log.Warn("agent: job ended, not reported", attrs...)
	} else {
		a.log.Info("agent: job ended", attrs...)
	}
	if a.cfg.OnResult != nil {
		a.cfg.OnResult(res)
	}
}

// rememberLocked adds k to the finished executions, forgetting the oldest
// beyond maxFinished. a.mu is held.
func (a *Agent) rememberLocked(k key, f *finished) {
	if _, ok := a.finished[k]; !ok {
		a.order = append(a.order, k)
	}
	a.finished[k] = f
	for len(a.order) > maxFinished {
		delete(a.finished, a.order[0])
		a.order = a.order[1:]
	}
}

// forgetUnlisted forgets the finished executions that a complete pending
// list p does not hold: the service will not offer them again.
func (a *Agent) forgetUnlisted(p *job.GetPendingResponse) {
	if len(p.InProgressJobs)+len(p.QueuedJobs) >= job.MaxPendingListed {
		return // maybe cut short
	}
	listed := make(map[key]bool)
	for _, s := range p.InProgressJobs {
		listed[key{s.JobID, s.ExecutionNumber}] = true
	}
	for _, s := range p.QueuedJobs {
		listed[key{s.JobID, s.ExecutionNumber}] = true
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	kept := a.order[:0]
	for _, k := range a.order {
		if listed[k] || a.finished[k].report != nil {
			kept = append(kept, k)
		} else {
			delete(a.finished, k)
		}
	}
	clear(a.order[len(kept):])
	a.order = kept
}

// unreported returns an error wrapping ErrUnreported and the reasons if
// the ends of jobs wait to be reported, else nil.
func (a *Agent) unreported() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	var errs []error
	for _, k := range a.order {
		if f := a.finished[k]; f.report != nil {
			errs = append(errs, fmt.Errorf("%s %s: %w", k.jobID, f.report.Status, f.err))
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrUnreported, errors.Join(errs...))
}

// knownLocked reports whether the agent runs or ran k. a.mu is held.
func (a *Agent) knownLocked(k key) bool {
	_, r := a.running[k]
	_, f := a.finished[k]
	return r || f || k == a.claiming
}

// event receives the client's events, on the client's event goroutine. It
// only looks and signals: running jobs that may have ended are asked to
// check, and a take is asked for when a slot is free and a job unknown to
// the agent is pending.
func (a *Agent) event(ev jobs.Event) {
	a.log.Debug("agent: event", "kind", ev.Kind)
	switch ev.Kind {
	case jobs.EventJobsChanged:
		n := ev.JobsChanged
		a.sawPending(n.Jobs[job.InProgress], n.Jobs[job.Queued], n.Timestamp)
	case jobs.EventNextChanged:
		a.sawNext(ev.NextChanged.Execution, ev.NextChanged.Timestamp)
	case jobs.EventResynced:
		if ev.Err != nil {
			a.checkAll()
			a.wakeIfFree(true)
		} else {
			a.forgetUnlisted(ev.Pending)
			a.sawPending(ev.Pending.InProgressJobs, ev.Pending.QueuedJobs, 0) // read just now
			// Notifications may have been missed; a final report may wait.
			a.wakeIfFree(true)
		}
	}
	if a.onEvent != nil {
		a.onEvent(ev)
	}
}

// sawPending handles a pending list sent at ts (0: now): running jobs
// missing from it may have ended.
func (a *Agent) sawPending(inProgress, queued []job.Summary, ts job.Timestamp) {
	listed := make(map[string]bool, len(inProgress)+len(queued))
	unknown := false
	a.mu.Lock()
	for _, l := range [][]job.Summary{inProgress, queued} {
		for _, s := range l {
			listed[s.JobID] = true
			if !a.knownLocked(key{s.JobID, s.ExecutionNumber}) {
				unknown = true
			}
		}
	}
	// The head of the list is the next execution.
	if l := slices.Concat(inProgress, queued); len(l) > 0 && !a.knownLocked(key{l[0].JobID, l[0].ExecutionNumber}) {
		status := job.Queued
		if len(inProgress) > 0 {
			status = job.InProgress
		}
		a.hintLocked(execution(l[0], status))
	}
	var check []*run
	// The list holds IN_PROGRESS executions first: unless they fill it,
	// a running job missing from it is no longer IN_PROGRESS.
	if len(inProgress) < job.MaxPendingListed {
		for k, r := range a.running {
			if !listed[k.jobID] && !r.newerThan(ts) {
				check = append(check, r)
			}
		}
	}
	a.mu.Unlock()
	a.check(check)
	a.wakeIfFree(unknown)
}

// hintLocked records x as the next execution to take, when the agent takes
// jobs by Describe of $next. a.mu is held.
func (a *Agent) hintLocked(x *job.Execution) {
	if a.cfg.Concurrency == 1 && !a.cfg.UseStartNext {
		a.hint = x
	}
}

// execution returns the execution a summary in the list of status shows.
func execution(s job.Summary, status job.Status) *job.Execution {
	return &job.Execution{
		JobID: s.JobID, Status: status, QueuedAt: s.QueuedAt, StartedAt: s.StartedAt,
		LastUpdatedAt: s.LastUpdatedAt, VersionNumber: s.VersionNumber, ExecutionNumber: s.ExecutionNumber,
	}
}

// sawNext handles a new next execution, sent at ts: if it is none, or a
// QUEUED one, no execution is IN_PROGRESS, so the running jobs may have
// ended (unless the message predates the take of that QUEUED one).
func (a *Agent) sawNext(next *job.Execution, ts job.Timestamp) {
	a.mu.Lock()
	known := next != nil && a.knownLocked(key{next.JobID, next.ExecutionNumber})
	var rs []*run
	if next == nil || !known && next.Status == job.Queued {
		// With the same lock: a job started since is not concerned.
		rs = a.runningLocked(ts)
	}
	if next != nil && !known {
		a.hintLocked(next)
	}
	a.mu.Unlock()
	a.check(rs)
	a.wakeIfFree(next != nil && !known)
}

// checkAll asks every running job to check that it still runs.
func (a *Agent) checkAll() {
	a.mu.Lock()
	rs := a.runningLocked(0)
	a.mu.Unlock()
	a.check(rs)
}

// runningLocked returns the runs not newer than ts (0: all). a.mu is held.
func (a *Agent) runningLocked(ts job.Timestamp) []*run {
	rs := make([]*run, 0, len(a.running))
	for _, r := range a.running {
		if !r.newerThan(ts) {
			rs = append(rs, r)
		}
	}
	return rs
}

// check asks the runs rs to check that their jobs still run.
func (a *Agent) check(rs []*run) {
	for _, r := range rs {
		a.log.Debug("agent: checking job", "job", r.key.jobID)
		r.signalCheck()
	}
}

// wakeIfFree asks for a take if want is set, Run runs and a slot is free.
func (a *Agent) wakeIfFree(want bool) {
	if !want {
		return
	}
	a.mu.Lock()
	free := a.active && len(a.running) < a.cfg.Concurrency
	a.mu.Unlock()
	if free {
		a.wake()
	}
}
