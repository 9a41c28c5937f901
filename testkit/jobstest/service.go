package jobstest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/iotjobs/iotjobs/domain/job"
	"github.com/iotjobs/iotjobs/domain/jobtopic"
	"github.com/iotjobs/iotjobs/ports"
)

// Errors of the control plane. Test with errors.Is.
var (
	// ErrClosed is returned by Start and the control calls after Close.
	ErrClosed = errors.New("jobstest: service closed")
	// ErrStarted is returned by a second Start.
	ErrStarted = errors.New("jobstest: service already started")
	// ErrNotFound is returned for a job or job execution that does not
	// exist (or was deleted).
	ErrNotFound = errors.New("jobstest: not found")
	// ErrJobExists is returned by CreateJob for a job id already used.
	ErrJobExists = errors.New("jobstest: job exists")
	// ErrInvalidState is returned for a change the execution's status does
	// not allow: canceling an IN_PROGRESS execution without force, or
	// canceling or removing a terminal one.
	ErrInvalidState = errors.New("jobstest: invalid state")
)

// closeTimeout bounds the Unsubscribe done by Close, which has no context.
const closeTimeout = 10 * time.Second

// sweepInterval is how often the timers are checked with the real clock.
const sweepInterval = time.Second

// Options configure a Service. The zero value is ready to use.
type Options struct {
	// Clock gives the time of timestamps and timers; nil means the real
	// clock, with which the service also checks the timers every second.
	Clock Clock
	// Logf, if set, receives one line per request served, fault injected,
	// timer expired and publish failed (testing.T.Logf fits; Close the
	// service before the test ends).
	Logf func(format string, args ...any)
}

// Request is one request the service received, as Requests logs it.
type Request struct {
	// Time is when it was served, by the service's Clock.
	Time time.Time
	// Topic is the topic it arrived on.
	Topic string
	// Thing is the thing name of the topic; empty for an invalid topic.
	Thing string
	// Kind is GetPending, StartNext, Describe or Update; 0 for an invalid
	// topic.
	Kind jobtopic.Kind
	// JobID is the job id of the topic (Describe and Update), maybe "$next".
	JobID string
	// ClientToken is the request's token, when it could be read.
	ClientToken string
	// Body is the payload as received.
	Body []byte
	// Reply is the kind of the reply: Kind.Accepted() or Kind.Rejected();
	// 0 for an invalid topic.
	Reply jobtopic.Kind
	// ReplyTopic is the topic the reply was published on.
	ReplyTopic string
	// Code is the code of the rejected reply; empty when accepted.
	Code job.ErrorCode
}

// Accepted reports whether the request was answered on its accepted topic.
func (r Request) Accepted() bool { return r.Code == "" }

// batch is what one change publishes, in order. done, if set, receives the
// outcome once everything was published.
type batch struct {
	msgs []ports.Message
	done chan error
}

// Service is a fake AWS IoT Jobs service. Make one with New, attach it to a
// transport with Start, drive it with the control calls, and Close it.
type Service struct {
	clock     Clock
	realClock bool
	logFn     func(format string, args ...any)

	mu         sync.Mutex
	jobs       map[string]*jobRecord
	things     map[string]*thingState
	order      []*execution // every execution, creation order
	timed      []*execution // executions that may have a running timer
	seq        uint64
	faults     []job.ErrorCode
	requests   requestLog
	outbox     []batch // computed under mu, published in order by drain
	publishing bool    // a goroutine is draining the outbox
	started    bool
	closed     bool
	ps         ports.PubSub // set while started
	sub        ports.Subscription
	// runCtx lives from Start to Close: the context of publications that
	// belong to no caller (replies, the background drains).
	runCtx context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New returns a Service with no jobs. It publishes nothing until Start.
func New(opts Options) *Service {
	s := &Service{
		clock:  opts.Clock,
		logFn:  opts.Logf,
		jobs:   map[string]*jobRecord{},
		things: map[string]*thingState{},
	}
	if s.clock == nil {
		s.clock, s.realClock = realClock{}, true
	}
	return s
}

func (s *Service) logf(format string, args ...any) {
	if s.logFn != nil {
		s.logFn(format, args...)
	}
}

// Start attaches the service to ps: it subscribes to every thing's jobs
// topics (jobtopic.AllThingsFilter, QoS 1, NoLocal) and serves the requests
// that arrive until Close. ctx bounds the subscription only. Changes made
// before Start are kept but were published to nobody. Start may be called
// once; if it fails, it may be called again.
func (s *Service) Start(ctx context.Context, ps ports.PubSub) error {
	if ps == nil {
		return errors.New("jobstest: start: nil transport")
	}
	s.mu.Lock()
	switch {
	case s.closed:
		s.mu.Unlock()
		return ErrClosed
	case s.started:
		s.mu.Unlock()
		return ErrStarted
	}
	runCtx, cancel := context.WithCancel(context.Background())
	s.started, s.ps, s.runCtx, s.cancel = true, ps, runCtx, cancel
	if s.realClock {
		s.wg.Add(1)
		go s.sweepLoop(runCtx)
	}
	s.mu.Unlock()

	f := ports.Filter{Topic: jobtopic.AllThingsFilter, QoS: ports.AtLeastOnce, NoLocal: true}
	sub, err := ps.Subscribe(ctx, f, ports.HandlerFuncs{Message: s.receive, State: s.subscriptionState})
	if err != nil {
		cancel()
		s.wg.Wait()
		s.mu.Lock()
		s.started, s.ps, s.runCtx, s.cancel = false, nil, nil, nil
		s.outbox = nil
		s.mu.Unlock()
		return fmt.Errorf("jobstest: subscribe: %w", err)
	}
	s.mu.Lock()
	if s.closed { // Close ran meanwhile, before there was a subscription
		s.mu.Unlock()
		return errors.Join(ErrClosed, sub.Unsubscribe(ctx))
	}
	s.sub = sub
	s.mu.Unlock()
	return nil
}

// Close unsubscribes, stops publishing and ends the service's goroutines.
// Replies and notifications not yet published are dropped. The state stays
// readable (Execution, Executions, Requests); the control calls return
// ErrClosed. A second Close returns nil.
func (s *Service) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	sub, cancel := s.sub, s.cancel
	s.mu.Unlock()

	if cancel != nil {
		cancel() // ends publications in progress
	}
	var err error
	if sub != nil {
		ctx, stop := context.WithTimeout(context.Background(), closeTimeout)
		if uerr := sub.Unsubscribe(ctx); uerr != nil {
			err = fmt.Errorf("jobstest: close: %w", uerr)
		}
		stop()
	}
	s.wg.Wait()
	s.mu.Lock()
	if !s.publishing {
		fail(s.outbox)
		s.outbox = nil
	} // else the draining goroutine fails them
	s.mu.Unlock()
	return err
}

func (s *Service) subscriptionState(st ports.State) {
	s.logf("jobstest: subscription %s", st)
}

// receive serves one message from the transport and publishes the reply
// before it returns (unless another goroutine is publishing, which then
// does), so that a broker that waits for its handlers sees the reply.
func (s *Service) receive(m ports.Message) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.enqueueLocked(s.serveLocked(m), false)
	run := s.runCtx
	s.mu.Unlock()
	s.drain(run)
}

// enqueueLocked appends msgs to the outbox. With wantDone it returns a
// channel that receives the outcome once they are published; nil when there
// is nothing to wait for.
func (s *Service) enqueueLocked(msgs []ports.Message, wantDone bool) chan error {
	if s.ps == nil || s.closed || len(msgs) == 0 {
		return nil
	}
	b := batch{msgs: msgs}
	if wantDone {
		b.done = make(chan error, 1)
	}
	s.outbox = append(s.outbox, b)
	return b.done
}

// drain publishes the outbox, batch by batch in order, until it is empty,
// unless another goroutine is already doing so. The service's lock is not
// held while publishing, so a transport may deliver synchronously. If ctx
// ends first, drain returns and a goroutine of the service publishes the
// rest.
func (s *Service) drain(ctx context.Context) {
	s.mu.Lock()
	if s.publishing || s.ps == nil {
		s.mu.Unlock()
		return
	}
	s.publishing = true
	ps, run := s.ps, s.runCtx
	// Publications end with ctx or when the service closes. A drain on
	// the service's own context (every request served) needs no context of
	// its own.
	pctx := run
	if ctx != run {
		var stop context.CancelFunc
		pctx, stop = context.WithCancel(ctx)
		defer stop()
		defer context.AfterFunc(run, stop)()
	}
	for {
		if s.closed {
			fail(s.outbox)
			s.outbox = nil
		}
		if len(s.outbox) == 0 {
			s.publishing = false
			s.mu.Unlock()
			return
		}
		b := s.outbox[0]
		s.outbox = s.outbox[1:]
		s.mu.Unlock()

		var errs []error
		for len(b.msgs) > 0 && pctx.Err() == nil {
			m := b.msgs[0]
			if err := ps.Publish(pctx, m); err != nil {
				switch {
				case run.Err() != nil: // closing: drop it quietly
					errs = append(errs, ErrClosed)
				case pctx.Err() != nil: // the caller gave up: publish it again below
				default:
					s.logf("jobstest: publish %s: %v", m.Topic, err)
					errs = append(errs, fmt.Errorf("jobstest: publish %s: %w", m.Topic, err))
				}
				if pctx.Err() != nil && run.Err() == nil {
					break
				}
			}
			b.msgs = b.msgs[1:]
		}

		s.mu.Lock()
		if len(b.msgs) > 0 && !s.closed {
			// ctx ended: hand the rest to a goroutine of the service.
			s.outbox = append([]batch{b}, s.outbox...)
			s.publishing = false
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				s.drain(run)
			}()
			s.mu.Unlock()
			return
		}
		if b.done != nil {
			if len(b.msgs) > 0 {
				errs = append(errs, ErrClosed)
			}
			b.done <- errors.Join(errs...)
		}
	}
}

// fail tells the waiters of unpublished batches that the service closed.
func fail(bs []batch) {
	for _, b := range bs {
		if b.done != nil {
			b.done <- ErrClosed
		}
	}
}

// sweepLoop applies expired timers every second (real clock only).
func (s *Service) sweepLoop(ctx context.Context) {
	defer s.wg.Done()
	t := time.NewTicker(sweepInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.mu.Lock()
			if !s.closed {
				s.enqueueLocked(s.sweepLocked(s.clock.Now()), false)
			}
			s.mu.Unlock()
			s.drain(ctx)
		}
	}
}

// control runs change under the lock after applying expired timers,
// publishes the notifications, and waits until they are published or ctx
// ends. change may be nil.
func (s *Service) control(ctx context.Context, change func(now time.Time, tr *tracker) error) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	now := s.clock.Now()
	msgs := s.sweepLocked(now)
	var err error
	if change != nil {
		tr := s.newTracker()
		err = change(now, tr)
		msgs = append(msgs, tr.notifications(now)...)
	}
	done := s.enqueueLocked(msgs, true)
	s.mu.Unlock()
	if done == nil {
		return err
	}
	s.drain(ctx)
	select {
	case perr := <-done:
		return errors.Join(err, perr)
	case <-ctx.Done():
		return errors.Join(err, ctx.Err())
	}
}

// Execution returns a copy of the execution of jobID on thing, with its
// job document. Like every read, it applies no expired timer: call
// CheckTimeouts first to see them.
func (s *Service) Execution(thing, jobID string) (job.Execution, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.things[thing].find(jobID)
	if e == nil {
		return job.Execution{}, false
	}
	return *s.wire(e, true, s.clock.Now()), true
}

// Executions returns a copy of every execution (deleted ones excepted), in
// the order they were created.
func (s *Service) Executions() []job.Execution {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.clock.Now()
	out := make([]job.Execution, 0, len(s.order))
	for _, e := range s.order {
		out = append(out, *s.wire(e, true, now))
	}
	return out
}

// Requests returns a copy of the log of the requests served, in order.
// Messages on reply and notification topics are not requests and are not
// logged.
func (s *Service) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests.all()
}

// requestLog is the log of requests served, in chunks of fixed size: an
// append never copies the requests logged before (a long benchmark logs
// millions).
type requestLog struct {
	chunks [][]Request
	n      int
}

const requestChunk = 256

func (l *requestLog) add(r Request) {
	if len(l.chunks) == 0 || len(l.chunks[len(l.chunks)-1]) == requestChunk {
		l.chunks = append(l.chunks, make([]Request, 0, requestChunk))
	}
	last := &l.chunks[len(l.chunks)-1]
	*last = append(*last, r)
	l.n++
}

// all returns a copy of the log, bodies included; nil when it is empty.
func (l *requestLog) all() []Request {
	if l.n == 0 {
		return nil
	}
	out := make([]Request, 0, l.n)
	for _, c := range l.chunks {
		out = append(out, c...)
	}
	for i := range out {
		out[i].Body = slices.Clone(out[i].Body)
	}
	return out
}

// InjectError makes the next n requests (of any thing, on a valid request
// topic) fail with code, in addition to faults already injected, which come
// first. The rejected reply carries the request's clientToken and no
// execution state; the request changes nothing. Any code is sent as given,
// so unknown codes can be tried too; InternalError and RequestThrottled are
// the ones AWS asks to retry. n ≤ 0 clears the faults not yet consumed.
func (s *Service) InjectError(code job.ErrorCode, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n <= 0 {
		s.faults = nil
		return
	}
	for range n {
		s.faults = append(s.faults, code)
	}
	s.logf("jobstest: next %d request(s) will be rejected with %s", n, string(code))
}

// CheckTimeouts moves the IN_PROGRESS executions whose step or in-progress
// timer expired by the Clock's time to TIMED_OUT and publishes the
// notifications. Requests and control calls do this first anyway.
func (s *Service) CheckTimeouts(ctx context.Context) error {
	return s.control(ctx, nil)
}
