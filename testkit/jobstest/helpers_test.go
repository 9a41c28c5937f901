package jobstest

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
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

// t0 is the fake clock's start: a whole second.
var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// waitTimeout bounds every wait in the tests.
const waitTimeout = 10 * time.Second

// env is a broker with the service attached, driven by a fake clock.
type env struct {
	t     *testing.T
	b     *membroker.Broker
	svc   *Service
	clock *FakeClock
}

func newEnv(t *testing.T) *env {
	t.Helper()
	return newEnvOpts(t, membroker.Options{})
}

func newEnvOpts(t *testing.T, bopts membroker.Options) *env {
	t.Helper()
	e := &env{t: t, b: membroker.New(bopts), clock: NewFakeClock(t0)}
	c, err := e.b.Connect("jobs-service")
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	e.svc = New(Options{Clock: e.clock, Logf: t.Logf})
	if err := e.svc.Start(ctx(t), c); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := e.svc.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		c.Close()
		e.b.Close()
	})
	return e
}

// ctx returns a context that ends with the test or after waitTimeout.
func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), waitTimeout)
	t.Cleanup(cancel)
	return c
}

// quiesce waits until every message published so far was handled.
func (e *env) quiesce() {
	e.t.Helper()
	if err := e.b.Quiesce(ctx(e.t)); err != nil {
		e.t.Fatalf("Quiesce: %v", err)
	}
}

func (e *env) create(jobID string, things ...string) {
	e.t.Helper()
	e.createSpec(JobSpec{JobID: jobID, Document: json.RawMessage(`{"op":"` + jobID + `"}`), Targets: things})
}

func (e *env) createSpec(spec JobSpec) {
	e.t.Helper()
	if err := e.svc.CreateJob(ctx(e.t), spec); err != nil {
		e.t.Fatalf("CreateJob(%s): %v", spec.JobID, err)
	}
}

// inbox collects the messages of a subscription without ever blocking it.
type inbox struct {
	mu     sync.Mutex
	msgs   []ports.Message
	signal chan struct{}
}

func newInbox() *inbox { return &inbox{signal: make(chan struct{}, 1)} }

func (in *inbox) HandleMessage(m ports.Message) {
	in.mu.Lock()
	in.msgs = append(in.msgs, m)
	in.mu.Unlock()
	select {
	case in.signal <- struct{}{}:
	default:
	}
}

func (in *inbox) HandleState(ports.State) {}

// takeAll removes and returns every message received so far.
func (in *inbox) takeAll() []ports.Message {
	in.mu.Lock()
	defer in.mu.Unlock()
	m := in.msgs
	in.msgs = nil
	return m
}

// waitFor removes and returns the first message that matches, waiting for
// it until the deadline.
func (in *inbox) waitFor(t *testing.T, what string, match func(ports.Message) bool) ports.Message {
	t.Helper()
	deadline := time.NewTimer(waitTimeout)
	defer deadline.Stop()
	for {
		in.mu.Lock()
		for i, m := range in.msgs {
			if match(m) {
				in.msgs = append(in.msgs[:i:i], in.msgs[i+1:]...)
				in.mu.Unlock()
				return m
			}
		}
		in.mu.Unlock()
		select {
		case <-in.signal:
		case <-deadline.C:
			t.Fatalf("no %s within %v", what, waitTimeout)
		}
	}
}

// device is a raw client of one thing: it publishes request bodies and
// reads replies and notifications, with no SDK in between.
type device struct {
	e     *env
	thing string
	c     *membroker.Client
	in    *inbox
	n     int
}

func (e *env) device(thing string) *device {
	return e.deviceFilter(thing, jobtopic.Prefix+thing+"/jobs/#")
}

// deviceFilter connects a device subscribed to filter.
func (e *env) deviceFilter(thing, filter string) *device {
	e.t.Helper()
	c, err := e.b.Connect("")
	if err != nil {
		e.t.Fatalf("connect: %v", err)
	}
	e.t.Cleanup(func() { c.Close() })
	d := &device{e: e, thing: thing, c: c, in: newInbox()}
	f := ports.Filter{Topic: filter, QoS: ports.AtLeastOnce, NoLocal: true}
	if _, err := c.Subscribe(ctx(e.t), f, d.in); err != nil {
		e.t.Fatalf("subscribe: %v", err)
	}
	return d
}

// reply is a reply as received.
type reply struct {
	Topic   string
	Kind    jobtopic.Kind
	Payload []byte
	fields  map[string]json.RawMessage
}

// has reports whether the reply's body has the field.
func (r reply) has(field string) bool { _, ok := r.fields[field]; return ok }

// raw returns the JSON of a field of the reply's body.
func (r reply) raw(field string) string { return string(r.fields[field]) }

// rejected decodes a rejected reply, failing the test for an accepted one.
func (r reply) rejected(t *testing.T) *job.RejectedError {
	t.Helper()
	if !r.Kind.IsRejected() {
		t.Fatalf("reply on %s = %s, want rejected", r.Topic, r.Payload)
	}
	rej, err := job.DecodeRejected(r.Payload)
	if err != nil {
		t.Fatalf("decode rejected: %v", err)
	}
	return rej
}

// accepted decodes an accepted reply into v, failing the test for a
// rejected one.
func (r reply) accepted(t *testing.T, v any) {
	t.Helper()
	if !r.Kind.IsAccepted() {
		t.Fatalf("reply on %s = %s, want accepted", r.Topic, r.Payload)
	}
	if err := json.Unmarshal(r.Payload, v); err != nil {
		t.Fatalf("decode %s: %v", r.Payload, err)
	}
}

// topic returns the request topic of kind k for the device's thing.
func (d *device) topic(k jobtopic.Kind, jobID string) string {
	return jobtopic.Topic{Thing: d.thing, Kind: k, JobID: jobID}.String()
}

// send publishes body on topic, waits until the broker is quiet, and
// returns the one reply on topic/accepted or topic/rejected. Notifications
// stay in the inbox.
func (d *device) send(topic, body string) reply {
	t := d.e.t
	t.Helper()
	if err := d.c.Publish(ctx(t), ports.Message{Topic: topic, Payload: []byte(body), QoS: ports.AtLeastOnce}); err != nil {
		t.Fatalf("publish %s: %v", topic, err)
	}
	d.e.quiesce()
	m := d.in.waitFor(t, "reply on "+topic, func(m ports.Message) bool {
		return m.Topic == topic+"/accepted" || m.Topic == topic+"/rejected"
	})
	r := reply{Topic: m.Topic, Payload: m.Payload}
	if pt, err := jobtopic.Parse(m.Topic); err == nil {
		r.Kind = pt.Kind
	} else if strings.HasSuffix(m.Topic, "/rejected") {
		r.Kind = jobtopic.GetPendingRejected // any rejected kind: for InvalidTopic
	}
	if err := json.Unmarshal(m.Payload, &r.fields); err != nil {
		t.Fatalf("reply on %s is not a JSON object: %s", m.Topic, m.Payload)
	}
	return r
}

// token returns a fresh client token.
func (d *device) token() string {
	d.n++
	return fmt.Sprintf("%s-tok-%d", d.thing, d.n)
}

// call sends a request of kind k with body fields (a clientToken is added)
// and checks the token is echoed.
func (d *device) call(k jobtopic.Kind, jobID string, fields map[string]any) reply {
	t := d.e.t
	t.Helper()
	tok := d.token()
	body := map[string]any{"clientToken": tok}
	for k, v := range fields {
		body[k] = v
	}
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	r := d.send(d.topic(k, jobID), string(b))
	if got := r.raw("clientToken"); got != `"`+tok+`"` {
		t.Errorf("%s reply clientToken = %s, want %q", k, got, tok)
	}
	if !r.has("timestamp") {
		t.Errorf("%s reply has no timestamp: %s", k, r.Payload)
	}
	return r
}

func (d *device) getPending() job.GetPendingResponse {
	d.e.t.Helper()
	var resp job.GetPendingResponse
	d.call(jobtopic.GetPending, "", nil).accepted(d.e.t, &resp)
	return resp
}

func (d *device) startNext(fields map[string]any) *job.Execution {
	d.e.t.Helper()
	var resp job.StartNextResponse
	d.call(jobtopic.StartNext, "", fields).accepted(d.e.t, &resp)
	return resp.Execution
}

func (d *device) describe(jobID string) *job.Execution {
	d.e.t.Helper()
	var resp job.DescribeResponse
	d.call(jobtopic.Describe, jobID, nil).accepted(d.e.t, &resp)
	return resp.Execution
}

func (d *device) update(jobID string, status job.Status, fields map[string]any) job.UpdateResponse {
	d.e.t.Helper()
	f := map[string]any{"status": status}
	for k, v := range fields {
		f[k] = v
	}
	var resp job.UpdateResponse
	d.call(jobtopic.Update, jobID, f).accepted(d.e.t, &resp)
	return resp
}

// note is a notification as received.
type note struct {
	kind jobtopic.Kind
	// notify
	jobs map[job.Status][]job.Summary
	// notify-next
	next *job.Execution
	raw  string
}

// String shows a notification in the compact form the tests compare:
// "notify IN_PROGRESS:[a] QUEUED:[b c]" or "next a" or "next -".
func (n note) String() string {
	if n.kind == jobtopic.NotifyNext {
		if n.next == nil {
			return "next -"
		}
		return "next " + n.next.JobID
	}
	s := "notify"
	for _, st := range []job.Status{job.InProgress, job.Queued} {
		if l, ok := n.jobs[st]; ok {
			var ids []string
			for _, x := range l {
				ids = append(ids, x.JobID)
			}
			s += fmt.Sprintf(" %s:[%s]", st, strings.Join(ids, " "))
		}
	}
	return s
}

// notes waits until the broker is quiet and returns the notifications the
// device received since the last call, in order. Any other message fails
// the test.
func (d *device) notes() []note {
	t := d.e.t
	t.Helper()
	d.e.quiesce()
	var out []note
	for _, m := range d.in.takeAll() {
		pt, err := jobtopic.Parse(m.Topic)
		if err != nil || !pt.Kind.IsNotification() || pt.Thing != d.thing {
			t.Fatalf("unexpected message on %s: %s", m.Topic, m.Payload)
		}
		n := note{kind: pt.Kind, raw: string(m.Payload)}
		if pt.Kind == jobtopic.Notify {
			var b job.JobExecutionsChanged
			if err := json.Unmarshal(m.Payload, &b); err != nil || b.Jobs == nil || b.Timestamp == 0 {
				t.Fatalf("bad notify %s (%v)", m.Payload, err)
			}
			n.jobs = b.Jobs
		} else {
			var b job.NextJobExecutionChanged
			if err := json.Unmarshal(m.Payload, &b); err != nil || b.Timestamp == 0 {
				t.Fatalf("bad notify-next %s (%v)", m.Payload, err)
			}
			n.next = b.Execution
		}
		if m.QoS != ports.AtLeastOnce {
			t.Errorf("%s QoS = %d, want 1", m.Topic, m.QoS)
		}
		out = append(out, n)
	}
	return out
}

// noteStrings returns the notifications' compact forms.
func (d *device) noteStrings() []string {
	d.e.t.Helper()
	var s []string
	for _, n := range d.notes() {
		s = append(s, n.String())
	}
	return s
}

// expectNotes checks the notifications received since the last call.
func (d *device) expectNotes(want ...string) {
	t := d.e.t
	t.Helper()
	got := d.noteStrings()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("notifications of %s:\n got %q\nwant %q", d.thing, got, want)
	}
}

func publishMsg(topic, body string) ports.Message {
	return ports.Message{Topic: topic, Payload: []byte(body), QoS: ports.AtLeastOnce}
}
