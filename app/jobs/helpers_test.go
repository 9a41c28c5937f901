package jobs

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/iotjobs/iotjobs/adapters/membroker"
	"github.com/iotjobs/iotjobs/domain/job"
	"github.com/iotjobs/iotjobs/domain/jobtopic"
	"github.com/iotjobs/iotjobs/ports"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	thing     = "thing-1"
	deviceID  = "device"
	serviceID = "service"
	// waitFor bounds every wait of a test for something that should happen.
	waitFor = 5 * time.Second
)

// request is a request the scripted responder received.
type request struct {
	topic jobtopic.Topic
	token string
	body  []byte
}

// script answers one request with the messages to publish (none: no reply).
type script func(r request) []ports.Message

// env is a jobs Client on a membroker, with a scripted responder in place of
// the service and a record of what the device published.
type env struct {
	t      *testing.T
	b      *membroker.Broker
	dev    *membroker.Client
	svc    *membroker.Client
	c      *Client
	events chan Event
	got    chan request // every request the responder received

	mu        sync.Mutex
	script    script
	published []ports.Message // by the device
}

type envOptions struct {
	opts     Options // Thing defaults to thing
	noEvents bool    // leave OnEvent nil
	script   script
}

func newEnv(t *testing.T, o envOptions) *env {
	t.Helper()
	e := &env{t: t, events: make(chan Event, 1000), got: make(chan request, 1000), script: o.script}
	e.b = membroker.New(membroker.Options{OnPublish: func(id string, m ports.Message) {
		if id == deviceID {
			e.mu.Lock()
			e.published = append(e.published, m)
			e.mu.Unlock()
		}
	}})
	var err error
	if e.dev, err = e.b.Connect(deviceID); err != nil {
		t.Fatal(err)
	}
	if e.svc, err = e.b.Connect(serviceID); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := e.svc.Subscribe(ctx, ports.Filter{Topic: jobtopic.AllThingsFilter, QoS: 1, NoLocal: true},
		ports.HandlerFuncs{Message: e.respond}); err != nil {
		t.Fatal(err)
	}
	opts := o.opts
	if opts.Thing == "" {
		opts.Thing = thing
	}
	if opts.OnEvent == nil && !o.noEvents {
		opts.OnEvent = func(ev Event) { e.events <- ev }
	}
	if e.c, err = New(ctx, e.dev, opts); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := e.c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		e.b.Close()
	})
	return e
}

// respond runs on the service connection's handler goroutine.
func (e *env) respond(m ports.Message) {
	t, err := jobtopic.Parse(m.Topic)
	if err != nil || !t.Kind.IsRequest() {
		return
	}
	r := request{topic: t, token: tokenOf(m.Payload), body: m.Payload}
	e.got <- r
	e.mu.Lock()
	s := e.script
	e.mu.Unlock()
	if s == nil {
		return
	}
	for _, out := range s(r) {
		if err := e.svc.Publish(context.Background(), out); err != nil {
			e.t.Errorf("responder: publish %s: %v", out.Topic, err)
		}
	}
}

func (e *env) setScript(s script) {
	e.mu.Lock()
	e.script = s
	e.mu.Unlock()
}

// requests returns what the device published.
func (e *env) requests() []ports.Message {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]ports.Message(nil), e.published...)
}

// quiesce waits until the broker delivered everything.
func (e *env) quiesce() {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := e.b.Quiesce(ctx); err != nil {
		e.t.Fatal(err)
	}
}

// nextRequest waits for the responder to receive a request.
func (e *env) nextRequest() request {
	e.t.Helper()
	select {
	case r := <-e.got:
		return r
	case <-time.After(waitFor):
		e.t.Fatal("no request received")
		return request{}
	}
}

// nextEvent waits for an event.
func (e *env) nextEvent() Event {
	e.t.Helper()
	select {
	case ev := <-e.events:
		return ev
	case <-time.After(waitFor):
		e.t.Fatal("no event received")
		return Event{}
	}
}

// flushKind marks the sentinel event that noEvent queues.
const flushKind EventKind = -1

// noEvent checks that no event is pending: once the broker is quiescent,
// every event of the messages delivered is queued, so a sentinel queued now
// comes out first unless some event waits before it.
func (e *env) noEvent() {
	e.t.Helper()
	e.quiesce()
	e.c.enqueue(item{ev: Event{Kind: flushKind}})
	for {
		ev := e.nextEvent()
		if ev.Kind == flushKind {
			return
		}
		e.t.Fatalf("got event %v, want none", ev.Kind)
	}
}

// publishAs publishes a message from the service connection.
func (e *env) publishAs(topic string, payload []byte) {
	e.t.Helper()
	if err := e.svc.Publish(context.Background(), ports.Message{Topic: topic, Payload: payload, QoS: 1}); err != nil {
		e.t.Fatal(err)
	}
}

func tokenOf(body []byte) string {
	var b struct {
		ClientToken string `json:"clientToken"`
	}
	json.Unmarshal(body, &b)
	return b.ClientToken
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// replyTo returns the reply topic of kind k (accepted or rejected) for r.
func replyTo(r request, accepted bool) string {
	k := r.topic.Kind.Rejected()
	if accepted {
		k = r.topic.Kind.Accepted()
	}
	return jobtopic.Topic{Thing: r.topic.Thing, Kind: k, JobID: r.topic.JobID}.String()
}

// accept answers r on its accepted topic with body, whose clientToken is set
// to r's.
func accept(r request, body map[string]any) ports.Message {
	if body == nil {
		body = map[string]any{}
	}
	body["clientToken"] = r.token
	return ports.Message{Topic: replyTo(r, true), Payload: mustJSON(body), QoS: 1}
}

// reject answers r on its rejected topic with code.
func reject(r request, code job.ErrorCode, state *job.ExecutionState) ports.Message {
	body := map[string]any{"code": code, "message": "scripted", "clientToken": r.token, "timestamp": 1}
	if state != nil {
		body["executionState"] = state
	}
	return ports.Message{Topic: replyTo(r, false), Payload: mustJSON(body), QoS: 1}
}
