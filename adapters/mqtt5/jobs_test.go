package mqtt5_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/iotjobs/iotjobs/adapters/mqtt5"
	"github.com/iotjobs/iotjobs/app/jobs"
	"github.com/iotjobs/iotjobs/domain/job"
	"github.com/iotjobs/iotjobs/ports"
	"github.com/iotjobs/iotjobs/testkit/brokertest"
	"github.com/iotjobs/iotjobs/testkit/jobstest"
)

const thing = "thing-1"

// jobsEnv is the fake Jobs service and a thing's Jobs client, each on its
// own connection to one broker.
type jobsEnv struct {
	svc    *jobstest.Service
	hold   *holdPS
	device *mqtt5.Client
	c      *jobs.Client
	events *jobEvents
}

// newJobsEnv connects the service and the device with the configs config
// returns. The device reconnects after deviceDelay, well after the service
// (10ms), so that the service listens again when the device resyncs.
func newJobsEnv(t *testing.T, config func(t testing.TB, clientID string) mqtt5.Config, deviceDelay time.Duration) *jobsEnv {
	t.Helper()
	ctx := ctx10(t)
	je := &jobsEnv{events: &jobEvents{changed: make(chan struct{}, 1)}}

	svcConn := connect(t, config(t, "jobs-service"))
	je.hold = &holdPS{PubSub: svcConn}
	je.svc = jobstest.New(jobstest.Options{Logf: t.Logf})
	if err := je.svc.Start(ctx, je.hold); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		je.hold.release()
		je.svc.Close()
	})

	cfg := config(t, thing)
	cfg.ReconnectMin, cfg.ReconnectMax = deviceDelay, 2*deviceDelay
	je.device = connect(t, cfg)
	c, err := jobs.New(ctx, je.device, jobs.Options{Thing: thing, Timeout: 5 * time.Second, OnEvent: je.events.record})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	je.c = c
	return je
}

func (je *jobsEnv) createJob(t *testing.T, id string) {
	t.Helper()
	err := je.svc.CreateJob(ctx10(t), jobstest.JobSpec{JobID: id, Document: json.RawMessage(`{"step":"update"}`), Targets: []string{thing}})
	if err != nil {
		t.Fatal(err)
	}
}

// jobEvents records a Jobs client's events.
type jobEvents struct {
	mu      sync.Mutex
	list    []jobs.Event
	changed chan struct{}
}

func (e *jobEvents) record(ev jobs.Event) {
	e.mu.Lock()
	e.list = append(e.list, ev)
	e.mu.Unlock()
	select {
	case e.changed <- struct{}{}:
	default:
	}
}

// waitKind waits until n events of kind were recorded, and returns the
// n-th.
func (e *jobEvents) waitKind(t *testing.T, kind jobs.EventKind, n int) jobs.Event {
	t.Helper()
	timer := time.NewTimer(15 * time.Second)
	defer timer.Stop()
	for {
		e.mu.Lock()
		seen := 0
		for _, ev := range e.list {
			if ev.Kind == kind {
				if seen++; seen == n {
					e.mu.Unlock()
					return ev
				}
			}
		}
		e.mu.Unlock()
		select {
		case <-e.changed:
		case <-timer.C:
			e.mu.Lock()
			defer e.mu.Unlock()
			t.Fatalf("timed out waiting for %v event #%d; events: %+v", kind, n, e.list)
		}
	}
}

// holdPS is the service's transport: it can hold back the requests whose
// topic contains a string, as a service slow to answer would.
type holdPS struct {
	ports.PubSub
	mu      sync.Mutex
	match   string
	held    chan struct{} // closed when a request is held
	waiting chan struct{} // closed to let held requests through
}

// holdNext holds the requests whose topic contains match, from now on.
func (h *holdPS) holdNext(match string) (held <-chan struct{}) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.match, h.held, h.waiting = match, make(chan struct{}), make(chan struct{})
	return h.held
}

// release lets the held requests through.
func (h *holdPS) release() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.waiting != nil {
		close(h.waiting)
		h.match, h.waiting = "", nil
	}
}

func (h *holdPS) Subscribe(ctx context.Context, f ports.Filter, handler ports.Handler) (ports.Subscription, error) {
	return h.PubSub.Subscribe(ctx, f, ports.HandlerFuncs{
		Message: func(m ports.Message) {
			h.mu.Lock()
			match, held, waiting := h.match, h.held, h.waiting
			if match != "" && strings.Contains(m.Topic, match) && waiting != nil {
				select {
				case <-held:
				default:
					close(held)
				}
			} else {
				waiting = nil
			}
			h.mu.Unlock()
			if waiting != nil {
				<-waiting
			}
			handler.HandleMessage(m)
		},
		State: handler.HandleState,
	})
}

// TestJobsEndToEnd runs a job from start to finish with the Jobs client and
// the fake service over the adapter.
func TestJobsEndToEnd(t *testing.T) {
	e := newEnv(t, brokertest.Options{})
	runJobsEndToEnd(t, newJobsEnv(t, e.config, 10*time.Millisecond))
}

func runJobsEndToEnd(t *testing.T, je *jobsEnv) {
	ctx := ctx10(t)
	je.createJob(t, "job-1")
	next := je.events.waitKind(t, jobs.EventNextChanged, 1)
	if next.NextChanged.Execution == nil || next.NextChanged.Execution.JobID != "job-1" {
		t.Fatalf("notify-next %+v, want job-1", next.NextChanged)
	}
	started, err := je.c.StartNext(ctx, job.StartNextRequest{StatusDetails: job.StatusDetails{"step": "download"}})
	if err != nil {
		t.Fatal(err)
	}
	if started.Execution == nil || started.Execution.JobID != "job-1" || started.Execution.Status != job.InProgress {
		t.Fatalf("StartNext: %+v", started.Execution)
	}
	if _, err := je.c.Update(ctx, "job-1", job.UpdateRequest{Status: job.Succeeded}); err != nil {
		t.Fatal(err)
	}
	if x, _ := je.svc.Execution(thing, "job-1"); x.Status != job.Succeeded {
		t.Errorf("service holds %s, want SUCCEEDED", x.Status)
	}
	_, err = je.c.Update(ctx, "job-1", job.UpdateRequest{Status: job.InProgress})
	if !errors.Is(err, job.ErrInvalidStateTransition) {
		t.Errorf("update of a finished job: %v, want ErrInvalidStateTransition", err)
	}
}

// TestJobsReconnect drops the device's connection, and restarts the broker,
// while the Jobs client is idle: it re-reads its pending set each time.
func TestJobsReconnect(t *testing.T) {
	e := newEnv(t, brokertest.Options{})
	je := newJobsEnv(t, e.config, 200*time.Millisecond)
	je.createJob(t, "job-1")

	for i, drop := range []struct {
		name string
		do   func() error
	}{
		{"drop", func() error { return e.broker.DropClient(thing) }},
		{"restart", e.broker.Restart},
	} {
		if err := drop.do(); err != nil {
			t.Fatal(err)
		}
		je.events.waitKind(t, jobs.EventLost, i+1)
		ev := je.events.waitKind(t, jobs.EventResynced, i+1)
		if ev.Err != nil {
			t.Fatalf("after %s: resync failed: %v", drop.name, ev.Err)
		}
		if q := ev.Pending.QueuedJobs; len(q) != 1 || q[0].JobID != "job-1" {
			t.Errorf("after %s: pending set %+v, want job-1 queued", drop.name, ev.Pending)
		}
	}
	// And the client works on.
	if _, err := je.c.Describe(ctx10(t), "job-1", job.DescribeRequest{}); err != nil {
		t.Errorf("Describe after the reconnects: %v", err)
	}
}

// TestJobsInFlightCompletes drops the device's connection while a request
// waits for its reply: the reply, sent after the subscription was
// restored, completes it.
func TestJobsInFlightCompletes(t *testing.T) {
	resync := &watchHook{suffix: "/jobs/get", seen: make(chan struct{}, 10)}
	e := newEnv(t, brokertest.Options{Hooks: []mqtt.Hook{resync}})
	je := newJobsEnv(t, e.config, 10*time.Millisecond)
	je.createJob(t, "job-1")

	held := je.hold.holdNext("/jobs/job-1/get")
	type result struct {
		resp *job.DescribeResponse
		err  error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := je.c.Describe(ctx10(t), "job-1", job.DescribeRequest{})
		done <- result{resp, err}
	}()
	<-held
	if err := e.broker.DropClient(thing); err != nil {
		t.Fatal(err)
	}
	// The client re-reads its pending set once its subscription is
	// restored; the service, busy with the held request, answers later.
	select {
	case <-resync.seen:
	case <-time.After(10 * time.Second):
		t.Fatal("the client did not resync after the reconnect")
	}
	je.hold.release()
	select {
	case r := <-done:
		if r.err != nil || r.resp.Execution == nil || r.resp.Execution.JobID != "job-1" {
			t.Errorf("Describe in flight across a reconnect: %+v, %v; want job-1", r.resp, r.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Describe did not return")
	}
	if ev := je.events.waitKind(t, jobs.EventResynced, 1); ev.Err != nil {
		t.Errorf("resync: %v", ev.Err)
	}
}

// watchHook signals each publication whose topic ends with suffix.
type watchHook struct {
	mqtt.HookBase
	suffix string
	seen   chan struct{}
}

func (h *watchHook) ID() string { return "watch-" + h.suffix }

func (h *watchHook) Provides(b byte) bool { return b == mqtt.OnPublish }

func (h *watchHook) OnPublish(_ *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if strings.HasSuffix(pk.TopicName, h.suffix) {
		select {
		case h.seen <- struct{}{}:
		default:
		}
	}
	return pk, nil
}

// TestJobsInFlightFails restarts the broker while a request waits for a
// reply that never comes: it fails with its deadline, not later.
func TestJobsInFlightFails(t *testing.T) {
	e := newEnv(t, brokertest.Options{})
	je := newJobsEnv(t, e.config, 10*time.Millisecond)
	je.createJob(t, "job-1")

	held := je.hold.holdNext("/jobs/job-1/get")
	const deadline = time.Second
	done := make(chan error, 1)
	start := time.Now()
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), deadline)
		defer cancel()
		_, err := je.c.Describe(ctx, "job-1", job.DescribeRequest{})
		done <- err
	}()
	<-held
	if err := e.broker.Restart(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Describe whose reply never comes: %v, want context.DeadlineExceeded", err)
		}
		if d := time.Since(start); d > deadline+2*time.Second {
			t.Errorf("Describe returned after %v, its deadline was %v", d, deadline)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Describe did not return")
	}
	je.hold.release()
}
