package agent_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/iotjobs/iotjobs/adapters/membroker"
	"github.com/iotjobs/iotjobs/app/agent"
	"github.com/iotjobs/iotjobs/domain/job"
	"github.com/iotjobs/iotjobs/domain/jobtopic"
	"github.com/iotjobs/iotjobs/ports"
	"github.com/iotjobs/iotjobs/testkit/jobstest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	thing = "agent-thing"
	// waitFor bounds every wait of a test for something that should happen.
	waitFor = 10 * time.Second
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// fastRetry retries at once, or nearly: tests do not wait for backoff.
var fastRetry = agent.RetryPolicy{Initial: time.Millisecond, Max: 2 * time.Millisecond, Attempts: 6, Seed: 1}

// fakeClock is an agent.Clock (and a jobstest.Clock) that moves only when
// told to; its timers fire when Advance passes their time.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	c    *fakeClock
	when time.Time
	ch   chan time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: t0} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) NewTimer(at time.Time) agent.Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{c: c, when: at, ch: make(chan time.Time, 1)}
	if !at.After(c.now) {
		t.ch <- c.now
		return t
	}
	c.timers = append(c.timers, t)
	return t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	c.timers = slices.DeleteFunc(c.timers, func(t *fakeTimer) bool {
		if t.when.After(c.now) {
			return false
		}
		t.ch <- c.now
		return true
	})
}

// waitTimer waits until a timer is set to fire at when.
func (c *fakeClock) waitTimer(t *testing.T, when time.Time) {
	t.Helper()
	poll(t, fmt.Sprintf("a timer at %v", when.Sub(t0)), func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return slices.ContainsFunc(c.timers, func(x *fakeTimer) bool { return x.when.Equal(when) })
	})
}

func (t *fakeTimer) C() <-chan time.Time { return t.ch }

func (t *fakeTimer) Stop() bool {
	c := t.c
	c.mu.Lock()
	defer c.mu.Unlock()
	n := len(c.timers)
	c.timers = slices.DeleteFunc(c.timers, func(x *fakeTimer) bool { return x == t })
	return len(c.timers) < n
}

// poll waits until cond holds, failing the test after waitFor.
func poll(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(waitFor)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		case <-tick.C:
		}
	}
}

// env is the fake service on an in-memory broker, and agents of thing on
// it.
type env struct {
	t     *testing.T
	ctx   context.Context
	b     *membroker.Broker
	svc   *jobstest.Service
	clock interface{ Now() time.Time }
	// svcClock is the service's clock when it is a jobstest.FakeClock.
	svcClock *jobstest.FakeClock
	conns    atomic.Int32
}

type envOptions struct {
	// clock, if set, is the service's clock (and usually the agent's).
	clock *fakeClock
	// onPublish is the broker's OnPublish.
	onPublish func(clientID string, m ports.Message)
}

func newEnv(t *testing.T, o envOptions) *env {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*waitFor)
	t.Cleanup(cancel)
	e := &env{t: t, ctx: ctx}
	e.b = membroker.New(membroker.Options{OnPublish: o.onPublish})
	t.Cleanup(func() { e.b.Close() })
	conn, err := e.b.Connect("service")
	if err != nil {
		t.Fatal(err)
	}
	if o.clock != nil {
		e.clock = o.clock
	} else {
		e.svcClock = jobstest.NewFakeClock(t0)
		e.clock = e.svcClock
	}
	e.svc = jobstest.New(jobstest.Options{Clock: e.clock, Logf: t.Logf})
	if err := e.svc.Start(ctx, conn); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.svc.Close() })
	return e
}

// testLogger logs to t at debug level.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// device is an agent on its own connection, with its results.
type device struct {
	e       *env
	id      string
	a       *agent.Agent
	results chan agent.Result
	stopRun context.CancelFunc
	runErr  chan error
}

// newAgent connects a device and makes its agent. Unless set, the config
// gets fast retries, a test logger, and OnResult feeding d.results.
func (e *env) newAgent(cfg agent.Config) *device {
	e.t.Helper()
	d := &device{e: e, id: fmt.Sprintf("device-%d", e.conns.Add(1)), results: make(chan agent.Result, 100)}
	conn, err := e.b.Connect(d.id)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { conn.Close() })
	if cfg.Retry == (agent.RetryPolicy{}) {
		cfg.Retry = fastRetry
	}
	if cfg.Logger == nil {
		cfg.Logger = testLogger(e.t).With("device", d.id)
	}
	user := cfg.OnResult
	cfg.OnResult = func(r agent.Result) {
		if user != nil {
			user(r)
		}
		d.results <- r
	}
	if d.a, err = agent.New(e.ctx, conn, thing, cfg); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() {
		d.stop()
		if err := d.a.Close(); err != nil {
			e.t.Errorf("Close: %v", err)
		}
	})
	return d
}

// start runs the agent in the background until stop.
func (d *device) start() {
	ctx, cancel := context.WithCancel(d.e.ctx)
	d.stopRun, d.runErr = cancel, make(chan error, 1)
	go func() { d.runErr <- d.a.Run(ctx) }()
}

// stop stops Run, if started, and returns its error.
func (d *device) stop() error {
	if d.stopRun == nil {
		return nil
	}
	d.stopRun()
	d.stopRun = nil
	select {
	case err := <-d.runErr:
		return err
	case <-time.After(waitFor):
		var buf strings.Builder
		pprof.Lookup("goroutine").WriteTo(&buf, 1)
		d.e.t.Fatalf("Run did not return; goroutines:\n%s", buf.String())
		return nil
	}
}

// runOnce runs RunOnce and fails the test on error.
func (d *device) runOnce() {
	d.e.t.Helper()
	if err := d.a.RunOnce(d.e.ctx); err != nil {
		d.e.t.Fatalf("RunOnce: %v", err)
	}
}

// result waits for the next result.
func (d *device) result() agent.Result {
	d.e.t.Helper()
	select {
	case r := <-d.results:
		return r
	case <-time.After(waitFor):
		d.e.t.Fatal("timed out waiting for a result")
		return agent.Result{}
	}
}

// create queues job id with document doc (JSON) for thing.
func (e *env) create(id, doc string) {
	e.t.Helper()
	e.createSpec(jobstest.JobSpec{JobID: id, Document: json.RawMessage(doc)})
}

func (e *env) createSpec(spec jobstest.JobSpec) {
	e.t.Helper()
	spec.Targets = []string{thing}
	if err := e.svc.CreateJob(e.ctx, spec); err != nil {
		e.t.Fatalf("create %s: %v", spec.JobID, err)
	}
}

// execution returns the service's execution of id.
func (e *env) execution(id string) job.Execution {
	e.t.Helper()
	x, ok := e.svc.Execution(thing, id)
	if !ok {
		e.t.Fatalf("the service has no execution %s", id)
	}
	return x
}

// waitStatus waits until the service holds id in status.
func (e *env) waitStatus(id string, status job.Status) {
	e.t.Helper()
	poll(e.t, id+" "+string(status), func() bool {
		x, ok := e.svc.Execution(thing, id)
		return ok && x.Status == status
	})
}

// requests returns the requests of kind about job id ("" for any).
func (e *env) requests(kind jobtopic.Kind, id string) []jobstest.Request {
	var out []jobstest.Request
	for _, r := range e.svc.Requests() {
		if r.Kind == kind && (id == "" || r.JobID == id) {
			out = append(out, r)
		}
	}
	return out
}

// update decodes the body of an update request.
func update(t *testing.T, r jobstest.Request) job.UpdateRequest {
	t.Helper()
	var u job.UpdateRequest
	if err := json.Unmarshal(r.Body, &u); err != nil {
		t.Fatalf("update body %s: %v", r.Body, err)
	}
	return u
}

// statuses returns the statuses of the accepted updates of id, in order.
func (e *env) statuses(id string) []job.Status {
	var out []job.Status
	for _, r := range e.requests(jobtopic.Update, id) {
		if r.Accepted() {
			out = append(out, update(e.t, r).Status)
		}
	}
	return out
}

// blocker is a handler that reports each job it starts and blocks until
// released or its context ends; it then returns what release sent, or
// the context's cause.
type blocker struct {
	started chan agent.Job
	release chan error
	ctxErr  chan error // the cause of the context, when it ended

	mu    sync.Mutex
	calls map[string]int
	now   int
	peak  int
}

func newBlocker() *blocker {
	return &blocker{
		started: make(chan agent.Job, 100), release: make(chan error, 100), ctxErr: make(chan error, 100),
		calls: map[string]int{},
	}
}

func (b *blocker) HandleJob(ctx context.Context, j agent.Job, _ agent.Progress) error {
	b.mu.Lock()
	b.calls[j.ID]++
	b.now++
	b.peak = max(b.peak, b.now)
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		b.now--
		b.mu.Unlock()
	}()
	b.started <- j
	select {
	case err := <-b.release:
		return err
	case <-ctx.Done():
		b.ctxErr <- context.Cause(ctx)
		return ctx.Err()
	}
}

// next waits for the next job started.
func (b *blocker) next(t *testing.T) agent.Job {
	t.Helper()
	select {
	case j := <-b.started:
		return j
	case <-time.After(waitFor):
		t.Fatal("timed out waiting for a handler to start")
		return agent.Job{}
	}
}

// cause waits for the cause of a handler's ended context.
func (b *blocker) cause(t *testing.T) error {
	t.Helper()
	select {
	case err := <-b.ctxErr:
		return err
	case <-time.After(waitFor):
		t.Fatal("timed out waiting for a handler's context to end")
		return nil
	}
}

func (b *blocker) count(id string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.calls[id]
}

// encodedSize is the length of d in JSON.
func encodedSize(t testing.TB, d job.StatusDetails) int {
	t.Helper()
	b, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	return len(b)
}
