// Package pubsubtest is the conformance suite for transports: it checks that
// a ports.PubSub keeps the contract documented in package ports, so that
// the Jobs client and the fake Jobs service work on it.
//
// An adapter's test connects clients to one broker and calls Run with the
// features the transport has:
//
//	func TestConformance(t *testing.T) {
//		broker := startBroker(t) // a broker shared by every subtest
//		pubsubtest.Run(t, func(t *testing.T) pubsubtest.Client {
//			c, err := mytransport.Dial(broker.Addr())
//			if err != nil {
//				t.Fatal(err)
//			}
//			return c
//		}, pubsubtest.Features{
//			NoLocal:      true,
//			DollarTopics: true,
//			Reconnect: func(t testing.TB, c pubsubtest.Client) {
//				broker.Kick(c) // drop the connection; the client reconnects
//			},
//		})
//	}
//
// The checks, each a subtest of Run's test (select them with -run):
//
//   - PublishReceive: QoS 0 and 1 arrive, with the lower of the publication's
//     and the subscription's QoS; OwnMessages: a client receives its own
//     publications unless NoLocal asks otherwise (NoLocal).
//   - Wildcards and DollarTopics: '+' and '#' match as MQTT says, "a/#"
//     matches "a", and a leading wildcard does not match "$aws/...".
//   - Payloads: binary, empty and limit-sized payloads arrive intact; Limits,
//     InvalidPublish, InvalidSubscribe: what breaks the limits or is not
//     valid MQTT is refused with the ports errors and not delivered.
//   - Order and ConcurrentPublishers: the QoS 1 messages of one publisher
//     arrive in order, handler calls never overlap, concurrent publishers
//     lose nothing.
//   - PublishFromHandler: a handler may publish with QoS 1 on its own
//     client, as a service replying to requests does.
//   - Unsubscribe, Close, CanceledContext: the handler is not called after
//     Unsubscribe or Close returns, a second call is harmless, a closed
//     client's Publish and Subscribe return ports.ErrClosed, a canceled
//     context makes calls return at once.
//   - Reconnect: subscriptions report ports.StateLost, then
//     ports.StateRestored, and receive again.
//
// Every check is a subtest of its own, with topics under a unique prefix,
// so the broker may be shared and may carry other traffic. Checks that
// something was not delivered publish a marker message afterwards and
// wait for it: MQTT brokers deliver a client's messages in order, so what
// was not delivered before the marker was not delivered at all.
// Features.Settle makes those checks stronger for transports that can tell
// when they are idle. Every wait ends after Features.Timeout and fails with
// what was received.
package pubsubtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/iotjobs/iotjobs/ports"
)

// Client is a connected client of the transport under test.
type Client interface {
	ports.PubSub
	// Close disconnects the client. A second call returns nil.
	Close() error
}

// Features describes what the transport under test supports and how the
// suite can drive it. The zero value runs the checks every transport must
// pass.
type Features struct {
	// NoLocal reports whether the transport honours ports.Filter.NoLocal
	// (MQTT 5).
	NoLocal bool

	// DollarTopics reports whether clients may publish and subscribe topics
	// starting with '$', such as AWS IoT's "$aws/things/T/jobs/notify".
	DollarTopics bool

	// Limits are the transport's limits; the zero value means AWS IoT
	// Core's. The suite checks that a payload and a topic at the limits are
	// delivered and that one byte more is refused. The suite's own topics
	// need about 100 bytes.
	Limits ports.Limits

	// Reconnect, if set, drops the connection of c so that the transport
	// reconnects by itself. It may return before the connection is back.
	// The suite then checks that c's subscriptions report ports.StateLost
	// and ports.StateRestored and receive again.
	Reconnect func(t testing.TB, c Client)

	// Settle, if set, waits until the transport has delivered everything
	// published so far and no handler is running. The suite calls it before
	// checking that something was not delivered.
	Settle func(t testing.TB)

	// Timeout bounds every wait for an expected event; 0 means 5 seconds.
	Timeout time.Duration
}

// Run runs the conformance suite. connect returns a new client, connected
// to the same broker as every other client it returns during the run; the
// suite closes the clients it gets (a transport must accept a second
// Close). connect may call t.Fatal and t.Cleanup.
func Run(t *testing.T, connect func(t *testing.T) Client, f Features) {
	if connect == nil {
		t.Fatal("pubsubtest: Run needs a connect function")
	}
	s := &suite{connect: connect, f: f, timeout: f.Timeout}
	if s.timeout <= 0 {
		s.timeout = 5 * time.Second
	}
	tests := []struct {
		name string
		run  func(*testing.T)
	}{
		{"PublishReceive", s.testPublishReceive},
		{"OwnMessages", s.testOwnMessages},
		{"NoLocal", s.testNoLocal},
		{"Wildcards", s.testWildcards},
		{"DollarTopics", s.testDollarTopics},
		{"Payloads", s.testPayloads},
		{"Limits", s.testLimits},
		{"InvalidPublish", s.testInvalidPublish},
		{"InvalidSubscribe", s.testInvalidSubscribe},
		{"Order", s.testOrder},
		{"ConcurrentPublishers", s.testConcurrentPublishers},
		{"PublishFromHandler", s.testPublishFromHandler},
		{"Unsubscribe", s.testUnsubscribe},
		{"Close", s.testClose},
		{"CanceledContext", s.testCanceledContext},
		{"Reconnect", s.testReconnect},
	}
	for _, tt := range tests {
		t.Run(tt.name, tt.run)
	}
}

type suite struct {
	connect func(t *testing.T) Client
	f       Features
	timeout time.Duration
}

// client connects a client that is closed when the test ends.
func (s *suite) client(t *testing.T) Client {
	t.Helper()
	c := s.connect(t)
	if c == nil {
		t.Fatal("pubsubtest: connect returned nil")
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return c
}

// ctx returns a context that ends after the suite's timeout.
func (s *suite) ctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	t.Cleanup(cancel)
	return ctx
}

func (s *suite) subscribe(t *testing.T, c Client, f ports.Filter, h ports.Handler) ports.Subscription {
	t.Helper()
	sub, err := c.Subscribe(s.ctx(t), f, h)
	if err != nil {
		t.Fatalf("Subscribe(%+v): %v", f, err)
	}
	if sub == nil {
		t.Fatalf("Subscribe(%+v) returned a nil Subscription", f)
	}
	return sub
}

func (s *suite) publish(t *testing.T, c Client, topic string, payload []byte, qos ports.QoS) {
	t.Helper()
	if err := c.Publish(s.ctx(t), ports.Message{Topic: topic, Payload: payload, QoS: qos}); err != nil {
		t.Fatalf("Publish(%q, %d bytes, QoS %d): %v", topic, len(payload), qos, err)
	}
}

// settle calls Features.Settle if it is set.
func (s *suite) settle(t *testing.T) {
	t.Helper()
	if s.f.Settle != nil {
		s.f.Settle(t)
	}
}

// prefix returns a topic prefix unique to this run of the test, and its
// last level, a unique token.
func prefix() (prefix, id string) {
	var b [8]byte
	rand.Read(b[:])
	id = hex.EncodeToString(b[:])
	return "pubsubtest/" + id, id
}

// recorder is a Handler that records what it receives, for tests to wait
// for and inspect.
type recorder struct {
	mu      sync.Mutex
	msgs    []ports.Message
	states  []ports.State
	changed chan struct{} // signalled after each event, buffered 1

	active  atomic.Int32
	overlap atomic.Bool // two handler calls overlapped
	ended   atomic.Bool // set when the subscription was ended
	late    atomic.Int32
	keep    func(ports.Message) bool // if set, what to record
}

func newRecorder() *recorder { return &recorder{changed: make(chan struct{}, 1)} }

func (r *recorder) HandleMessage(m ports.Message) {
	r.enter()
	defer r.active.Add(-1)
	if r.keep != nil && !r.keep(m) {
		return
	}
	r.mu.Lock()
	r.msgs = append(r.msgs, m)
	r.mu.Unlock()
	r.signal()
}

func (r *recorder) HandleState(st ports.State) {
	r.enter()
	defer r.active.Add(-1)
	r.mu.Lock()
	r.states = append(r.states, st)
	r.mu.Unlock()
	r.signal()
}

func (r *recorder) enter() {
	if r.active.Add(1) > 1 {
		r.overlap.Store(true)
	}
	if r.ended.Load() {
		r.late.Add(1)
	}
}

func (r *recorder) signal() {
	select {
	case r.changed <- struct{}{}:
	default:
	}
}

// end records that the subscription ended: any later call is a violation.
func (r *recorder) end() { r.ended.Store(true) }

func (r *recorder) messages() []ports.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]ports.Message(nil), r.msgs...)
}

// wait waits until done reports true for what was recorded, and fails the
// test if the timeout passes first.
func (r *recorder) wait(t *testing.T, timeout time.Duration, what string, done func(msgs []ports.Message, states []ports.State) bool) {
	t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		r.mu.Lock()
		ok := done(r.msgs, r.states)
		r.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-r.changed:
		case <-timer.C:
			t.Fatalf("timed out after %v waiting for %s; received %s", timeout, what, r)
		}
	}
}

// waitPayloads waits until a message with each payload was received on
// topic (or any topic if it is empty).
func (r *recorder) waitPayloads(t *testing.T, timeout time.Duration, topic string, payloads ...string) {
	t.Helper()
	r.wait(t, timeout, fmt.Sprintf("%q on %q", payloads, topic), func(msgs []ports.Message, _ []ports.State) bool {
		for _, p := range payloads {
			if !hasMessage(msgs, topic, p) {
				return false
			}
		}
		return true
	})
}

func hasMessage(msgs []ports.Message, topic, payload string) bool {
	for _, m := range msgs {
		if (topic == "" || m.Topic == topic) && string(m.Payload) == payload {
			return true
		}
	}
	return false
}

// check reports handler calls that overlapped or came after the
// subscription ended.
func (r *recorder) check(t *testing.T) {
	t.Helper()
	if r.overlap.Load() {
		t.Error("handler calls of one subscription overlapped")
	}
	if n := r.late.Load(); n > 0 {
		t.Errorf("handler called %d times after its subscription ended", n)
	}
}

// String describes what was recorded, briefly.
func (r *recorder) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var b strings.Builder
	fmt.Fprintf(&b, "%d messages", len(r.msgs))
	for i, m := range r.msgs {
		if i == 10 {
			b.WriteString(" ...")
			break
		}
		p := m.Payload
		if len(p) > 24 {
			p = p[:24]
		}
		fmt.Fprintf(&b, " [%s %q (%d bytes) QoS %d]", m.Topic, p, len(m.Payload), m.QoS)
	}
	if len(r.states) > 0 {
		fmt.Fprintf(&b, ", states %v", r.states)
	}
	return b.String()
}

// distinct returns msgs without repetitions of a topic and payload: QoS 1
// messages may arrive more than once.
func distinct(msgs []ports.Message) []ports.Message {
	seen := make(map[string]bool)
	var out []ports.Message
	for _, m := range msgs {
		k := m.Topic + "\x00" + string(m.Payload)
		if !seen[k] {
			seen[k] = true
			out = append(out, m)
		}
	}
	return out
}

func (s *suite) testPublishReceive(t *testing.T) {
	for _, pq := range []ports.QoS{ports.AtMostOnce, ports.AtLeastOnce} {
		for _, sq := range []ports.QoS{ports.AtMostOnce, ports.AtLeastOnce} {
			t.Run(fmt.Sprintf("publish QoS %d subscribe QoS %d", pq, sq), func(t *testing.T) {
				p, _ := prefix()
				pub, sub := s.client(t), s.client(t)
				r := newRecorder()
				s.subscribe(t, sub, ports.Filter{Topic: p + "/t", QoS: sq}, r)
				s.publish(t, pub, p+"/t", []byte("hello"), pq)
				r.waitPayloads(t, s.timeout, p+"/t", "hello")
				m := r.messages()[0]
				if want := min(pq, sq); m.QoS != want {
					t.Errorf("received with QoS %d, want %d (the lower of publish and subscription)", m.QoS, want)
				}
				r.check(t)
			})
		}
	}
}

func (s *suite) testOwnMessages(t *testing.T) {
	p, _ := prefix()
	c := s.client(t)
	r := newRecorder()
	s.subscribe(t, c, ports.Filter{Topic: p + "/t", QoS: 1}, r)
	s.publish(t, c, p+"/t", []byte("own"), 1)
	r.waitPayloads(t, s.timeout, p+"/t", "own")
}

func (s *suite) testNoLocal(t *testing.T) {
	if !s.f.NoLocal {
		t.Skip("the transport does not support NoLocal")
	}
	p, _ := prefix()
	self, other := s.client(t), s.client(t)
	r := newRecorder()
	s.subscribe(t, self, ports.Filter{Topic: p + "/t", QoS: 1, NoLocal: true}, r)
	s.publish(t, self, p+"/t", []byte("own"), 1)
	// The broker acknowledged "own" before "marker" was published.
	s.publish(t, other, p+"/t", []byte("marker"), 1)
	r.waitPayloads(t, s.timeout, p+"/t", "marker")
	s.settle(t)
	if hasMessage(r.messages(), "", "own") {
		t.Errorf("a NoLocal subscription received its own client's message; received %s", r)
	}
}

func (s *suite) testWildcards(t *testing.T) {
	// P is the test's unique prefix, ID its last level.
	tests := []struct {
		filter, match, nomatch []string // filter has one element
	}{
		{[]string{"P/a/+/c"}, []string{"P/a/b/c", "P/a//c"}, []string{"P/a/b/c/d", "P/a/c", "P/x/b/c"}},
		{[]string{"P/a/#"}, []string{"P/a", "P/a/b", "P/a/b/c"}, []string{"P/ab", "P/b/a"}},
		{[]string{"P/+"}, []string{"P/x", "P/"}, []string{"P/x/y", "P"}},
		{[]string{"+/ID/x"}, []string{"P/x", "other/ID/x"}, []string{"P/y", "P/x/y"}},
		{[]string{"P/+/+/#"}, []string{"P/a/b", "P/a/b/c/d"}, []string{"P/a"}},
	}
	for _, tt := range tests {
		t.Run(tt.filter[0], func(t *testing.T) {
			p, id := prefix()
			expand := func(s string) string {
				return strings.ReplaceAll(strings.ReplaceAll(s, "P", p), "ID", id)
			}
			pub, sub := s.client(t), s.client(t)
			r := newRecorder()
			s.subscribe(t, sub, ports.Filter{Topic: expand(tt.filter[0]), QoS: 1}, r)
			// What does not match is published first: were it delivered, it
			// would arrive before the last message that matches.
			for _, topic := range tt.nomatch {
				s.publish(t, pub, expand(topic), []byte("no"), 1)
			}
			var want []string
			for _, topic := range tt.match {
				s.publish(t, pub, expand(topic), []byte("yes"), 1)
				want = append(want, expand(topic))
			}
			r.wait(t, s.timeout, fmt.Sprintf("messages on %q", want), func(msgs []ports.Message, _ []ports.State) bool {
				return len(distinct(msgs)) >= len(want)
			})
			s.settle(t)
			got := distinct(r.messages())
			for i, m := range got {
				if string(m.Payload) != "yes" || i >= len(want) || m.Topic != want[i] {
					t.Fatalf("filter %q: received %s; want %q in order", expand(tt.filter[0]), r, want)
				}
			}
			r.check(t)
		})
	}
}

func (s *suite) testDollarTopics(t *testing.T) {
	if !s.f.DollarTopics {
		t.Skip("the transport does not support topics starting with '$'")
	}
	p, id := prefix()
	thing := "pubsubtest-" + id
	jobs := "$aws/things/" + thing + "/jobs"
	pub, sub := s.client(t), s.client(t)

	dollar, all, plus := newRecorder(), newRecorder(), newRecorder()
	// "#" receives everything on a shared broker: keep only this test's.
	all.keep = func(m ports.Message) bool { return strings.Contains(m.Topic, id) }
	s.subscribe(t, sub, ports.Filter{Topic: jobs + "/#", QoS: 1}, dollar)
	s.subscribe(t, sub, ports.Filter{Topic: "#", QoS: 1}, all)
	s.subscribe(t, sub, ports.Filter{Topic: "+/things/" + thing + "/jobs/#", QoS: 1}, plus)

	s.publish(t, pub, jobs+"/x/get/accepted", []byte("dollar"), 1)
	s.publish(t, pub, p+"/marker", []byte("marker"), 1)
	s.publish(t, pub, "aws/things/"+thing+"/jobs/marker", []byte("marker"), 1)

	dollar.waitPayloads(t, s.timeout, jobs+"/x/get/accepted", "dollar")
	all.waitPayloads(t, s.timeout, "aws/things/"+thing+"/jobs/marker", "marker")
	plus.waitPayloads(t, s.timeout, "aws/things/"+thing+"/jobs/marker", "marker")
	s.settle(t)
	if hasMessage(all.messages(), "", "dollar") {
		t.Errorf(`filter "#" matched a topic starting with '$'; received %s`, all)
	}
	if hasMessage(plus.messages(), "", "dollar") {
		t.Errorf(`filter "+/things/..." matched a topic starting with '$'; received %s`, plus)
	}
	if got := len(distinct(dollar.messages())); got != 1 {
		t.Errorf("filter %q received %s, want 1 message", jobs+"/#", dollar)
	}
}

func (s *suite) testPayloads(t *testing.T) {
	p, _ := prefix()
	pub, sub := s.client(t), s.client(t)
	r := newRecorder()
	s.subscribe(t, sub, ports.Filter{Topic: p + "/#", QoS: 1}, r)

	every := make([]byte, 256)
	for i := range every {
		every[i] = byte(i)
	}
	random := make([]byte, 1000)
	rand.Read(random)
	payloads := []struct {
		name string
		data []byte
	}{
		{"nil", nil},
		{"empty", []byte{}},
		{"NUL", []byte{0}},
		{"every byte", every},
		{"random", random},
		{"invalid UTF-8", []byte("\xff\xfe\xc3\x28")},
		{"at the limit", bytes.Repeat([]byte{0xA5}, s.maxPayload())},
	}
	for _, pl := range payloads {
		s.publish(t, pub, p+"/"+strings.ReplaceAll(pl.name, " ", "-"), pl.data, 1)
	}
	r.wait(t, s.timeout, fmt.Sprintf("%d messages", len(payloads)), func(msgs []ports.Message, _ []ports.State) bool {
		return len(distinct(msgs)) >= len(payloads)
	})
	got := make(map[string][]byte)
	for _, m := range r.messages() {
		got[m.Topic] = m.Payload
	}
	for _, pl := range payloads {
		data, ok := got[p+"/"+strings.ReplaceAll(pl.name, " ", "-")]
		if !ok || !bytes.Equal(data, pl.data) {
			t.Errorf("payload %s: received %d bytes (ok=%v), want %d bytes intact", pl.name, len(data), ok, len(pl.data))
		}
	}
}

func (s *suite) maxPayload() int {
	if s.f.Limits.MaxPayload > 0 {
		return s.f.Limits.MaxPayload
	}
	return ports.MaxPayload
}

func (s *suite) maxTopic() int {
	if s.f.Limits.MaxTopicLength > 0 {
		return s.f.Limits.MaxTopicLength
	}
	return ports.MaxTopicLength
}

func (s *suite) testLimits(t *testing.T) {
	p, _ := prefix()
	pub, sub := s.client(t), s.client(t)
	r := newRecorder()
	s.subscribe(t, sub, ports.Filter{Topic: p + "/#", QoS: 1}, r)

	long := func(n int) string { return p + "/" + strings.Repeat("x", n-len(p)-1) }
	if s.maxTopic() < len(p)+2 {
		t.Fatalf("Features.Limits.MaxTopicLength %d is too small for the suite's topics", s.maxTopic())
	}
	tooLong := long(s.maxTopic() + 1)
	tests := []struct {
		what      string
		m         ports.Message
		size, max int
	}{
		{"payload", ports.Message{Topic: p + "/big", Payload: make([]byte, s.maxPayload()+1), QoS: 1}, s.maxPayload() + 1, s.maxPayload()},
		{"payload", ports.Message{Topic: p + "/big", Payload: make([]byte, s.maxPayload()+1)}, s.maxPayload() + 1, s.maxPayload()},
		{"topic", ports.Message{Topic: tooLong, QoS: 1}, len(tooLong), s.maxTopic()},
	}
	for _, tt := range tests {
		err := pub.Publish(s.ctx(t), tt.m)
		var le *ports.LimitError
		switch {
		case !errors.Is(err, ports.ErrTooLarge):
			t.Errorf("Publish of a %s over the limit (QoS %d): %v, want an error matching ports.ErrTooLarge", tt.what, tt.m.QoS, err)
		case !errors.As(err, &le):
			t.Errorf("Publish of a %s over the limit: %v is not a *ports.LimitError", tt.what, err)
		case le.What != tt.what || le.Size != tt.size || le.Max != tt.max:
			t.Errorf("Publish of a %s over the limit: got LimitError{What: %q, Size: %d, Max: %d}, want {%q, %d, %d}",
				tt.what, le.What, le.Size, le.Max, tt.what, tt.size, tt.max)
		}
	}
	if _, err := sub.Subscribe(s.ctx(t), ports.Filter{Topic: long(s.maxTopic() + 1)}, newRecorder()); !errors.Is(err, ports.ErrTooLarge) {
		t.Errorf("Subscribe of a filter over the limit: %v, want an error matching ports.ErrTooLarge", err)
	}

	// A topic at the limit is delivered; what was refused is not.
	atLimit := long(s.maxTopic())
	s.publish(t, pub, atLimit, []byte("marker"), 1)
	r.waitPayloads(t, s.timeout, atLimit, "marker")
	s.settle(t)
	if got := distinct(r.messages()); len(got) != 1 {
		t.Errorf("received %s, want only the marker", r)
	}
}

func (s *suite) testInvalidPublish(t *testing.T) {
	p, _ := prefix()
	pub, sub := s.client(t), s.client(t)
	r := newRecorder()
	s.subscribe(t, sub, ports.Filter{Topic: p + "/#", QoS: 1}, r)
	tests := []struct {
		m    ports.Message
		want error
	}{
		{ports.Message{Topic: ""}, ports.ErrInvalidTopic},
		{ports.Message{Topic: p + "/+"}, ports.ErrInvalidTopic},
		{ports.Message{Topic: p + "/#"}, ports.ErrInvalidTopic},
		{ports.Message{Topic: p + "/a+b"}, ports.ErrInvalidTopic},
		{ports.Message{Topic: p + "/a#"}, ports.ErrInvalidTopic},
		{ports.Message{Topic: p + "/nul\x00"}, ports.ErrInvalidTopic},
		{ports.Message{Topic: p + "/\xff"}, ports.ErrInvalidTopic},
		{ports.Message{Topic: p + "/qos", QoS: 2}, ports.ErrInvalidQoS},
		{ports.Message{Topic: p + "/qos", QoS: 255}, ports.ErrInvalidQoS},
	}
	for _, tt := range tests {
		tt.m.Payload = []byte("invalid")
		if err := pub.Publish(s.ctx(t), tt.m); !errors.Is(err, tt.want) {
			t.Errorf("Publish(%q, QoS %d): %v, want an error matching %v", tt.m.Topic, tt.m.QoS, err, tt.want)
		}
	}
	s.publish(t, pub, p+"/marker", []byte("marker"), 1)
	r.waitPayloads(t, s.timeout, p+"/marker", "marker")
	s.settle(t)
	if hasMessage(r.messages(), "", "invalid") {
		t.Errorf("an invalid message was delivered; received %s", r)
	}
}

func (s *suite) testInvalidSubscribe(t *testing.T) {
	p, _ := prefix()
	c := s.client(t)
	tests := []struct {
		f    ports.Filter
		want error
	}{
		{ports.Filter{Topic: ""}, ports.ErrInvalidTopic},
		{ports.Filter{Topic: p + "/#/a"}, ports.ErrInvalidTopic},
		{ports.Filter{Topic: p + "/a#"}, ports.ErrInvalidTopic},
		{ports.Filter{Topic: p + "/a+"}, ports.ErrInvalidTopic},
		{ports.Filter{Topic: p + "/+a/b"}, ports.ErrInvalidTopic},
		{ports.Filter{Topic: p + "/nul\x00"}, ports.ErrInvalidTopic},
		{ports.Filter{Topic: p + "/\xc3\x28"}, ports.ErrInvalidTopic},
		{ports.Filter{Topic: p + "/qos", QoS: 2}, ports.ErrInvalidQoS},
	}
	for _, tt := range tests {
		sub, err := c.Subscribe(s.ctx(t), tt.f, newRecorder())
		if !errors.Is(err, tt.want) {
			t.Errorf("Subscribe(%q, QoS %d): %v, want an error matching %v", tt.f.Topic, tt.f.QoS, err, tt.want)
		}
		if err == nil && sub != nil {
			sub.Unsubscribe(s.ctx(t))
		}
	}
	// The client still works.
	r := newRecorder()
	s.subscribe(t, c, ports.Filter{Topic: p + "/ok", QoS: 1}, r)
	s.publish(t, c, p+"/ok", []byte("ok"), 1)
	r.waitPayloads(t, s.timeout, p+"/ok", "ok")
}

func (s *suite) testOrder(t *testing.T) {
	const n = 200
	p, _ := prefix()
	pub, sub := s.client(t), s.client(t)
	r := newRecorder()
	s.subscribe(t, sub, ports.Filter{Topic: p + "/t", QoS: 1}, r)
	for i := range n {
		s.publish(t, pub, p+"/t", fmt.Append(nil, i), 1)
	}
	r.wait(t, s.timeout, fmt.Sprintf("%d messages", n), func(msgs []ports.Message, _ []ports.State) bool {
		return len(distinct(msgs)) >= n
	})
	for i, m := range distinct(r.messages()) {
		if got, want := string(m.Payload), fmt.Sprint(i); got != want {
			t.Fatalf("message %d is %q, want %q: QoS 1 messages of one publisher arrived out of order", i, got, want)
		}
	}
	r.check(t)
}

func (s *suite) testConcurrentPublishers(t *testing.T) {
	const clients, goroutines, each = 4, 4, 25
	p, _ := prefix()
	sub := s.client(t)
	r := newRecorder()
	s.subscribe(t, sub, ports.Filter{Topic: p + "/#", QoS: 1}, r)

	pubs := make([]Client, clients)
	for i := range pubs {
		pubs[i] = s.client(t)
	}
	ctx := s.ctx(t)
	var wg sync.WaitGroup
	errs := make(chan error, clients*goroutines)
	for c, pub := range pubs {
		for g := range goroutines {
			wg.Go(func() {
				topic := fmt.Sprintf("%s/%d/%d", p, c, g)
				for i := range each {
					qos := ports.QoS(i % 2)
					if err := pub.Publish(ctx, ports.Message{Topic: topic, Payload: fmt.Append(nil, i), QoS: qos}); err != nil {
						errs <- fmt.Errorf("Publish(%q, QoS %d): %w", topic, qos, err)
						return
					}
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	total := clients * goroutines * each
	r.wait(t, s.timeout, fmt.Sprintf("%d messages", total), func(msgs []ports.Message, _ []ports.State) bool {
		return len(distinct(msgs)) >= total
	})
	// Each goroutine waited for one Publish before the next: its messages
	// arrive in order.
	next := make(map[string]int)
	for _, m := range distinct(r.messages()) {
		if got, want := string(m.Payload), fmt.Sprint(next[m.Topic]); got != want {
			t.Fatalf("on %s got %q, want %q: messages of one publishing goroutine arrived out of order", m.Topic, got, want)
		}
		next[m.Topic]++
	}
	r.check(t)
}

// testPublishFromHandler checks that a handler may publish, with QoS 1, on
// its own client: what a service replying to requests does.
func (s *suite) testPublishFromHandler(t *testing.T) {
	const n = 20
	p, _ := prefix()
	device, service := s.client(t), s.client(t)
	failed := make(chan error, n)
	s.subscribe(t, service, ports.Filter{Topic: p + "/request", QoS: 1}, ports.HandlerFuncs{
		Message: func(m ports.Message) {
			ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
			defer cancel()
			if err := service.Publish(ctx, ports.Message{Topic: p + "/reply", Payload: m.Payload, QoS: 1}); err != nil {
				failed <- err
			}
		},
	})
	r := newRecorder()
	s.subscribe(t, device, ports.Filter{Topic: p + "/reply", QoS: 1}, r)
	var want []string
	for i := range n {
		want = append(want, fmt.Sprint(i))
		s.publish(t, device, p+"/request", []byte(want[i]), 1)
	}
	r.waitPayloads(t, s.timeout, p+"/reply", want...)
	select {
	case err := <-failed:
		t.Errorf("Publish from a handler: %v", err)
	default:
	}
}

func (s *suite) testUnsubscribe(t *testing.T) {
	p, _ := prefix()
	topic := p + "/t"
	pub, sub, witness := s.client(t), s.client(t), s.client(t)
	r, w := newRecorder(), newRecorder()
	subscription := s.subscribe(t, sub, ports.Filter{Topic: topic, QoS: 1}, r)
	s.subscribe(t, witness, ports.Filter{Topic: topic, QoS: 1}, w)

	s.publish(t, pub, topic, []byte("before"), 1)
	r.waitPayloads(t, s.timeout, topic, "before")
	if err := subscription.Unsubscribe(s.ctx(t)); err != nil {
		t.Fatalf("Unsubscribe: %v", err)
	}
	r.end()
	if err := subscription.Unsubscribe(s.ctx(t)); err != nil {
		t.Errorf("second Unsubscribe: %v, want nil", err)
	}

	s.publish(t, pub, topic, []byte("after"), 1)
	w.waitPayloads(t, s.timeout, topic, "after")
	s.settle(t)
	r.check(t)

	// The filter can be subscribed again.
	again := newRecorder()
	s.subscribe(t, sub, ports.Filter{Topic: topic, QoS: 1}, again)
	s.publish(t, pub, topic, []byte("again"), 1)
	again.waitPayloads(t, s.timeout, topic, "again")
	if hasMessage(r.messages(), "", "after") || hasMessage(r.messages(), "", "again") {
		t.Errorf("the handler of an ended subscription received %s", r)
	}
}

func (s *suite) testClose(t *testing.T) {
	p, _ := prefix()
	topic := p + "/t"
	pub, c, witness := s.client(t), s.client(t), s.client(t)
	r, w := newRecorder(), newRecorder()
	subscription := s.subscribe(t, c, ports.Filter{Topic: topic, QoS: 1}, r)
	s.subscribe(t, witness, ports.Filter{Topic: topic, QoS: 1}, w)
	s.publish(t, pub, topic, []byte("before"), 1)
	r.waitPayloads(t, s.timeout, topic, "before")

	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	r.end()
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v, want nil", err)
	}
	if err := c.Publish(s.ctx(t), ports.Message{Topic: topic, Payload: []byte("closed")}); !errors.Is(err, ports.ErrClosed) {
		t.Errorf("Publish after Close: %v, want an error matching ports.ErrClosed", err)
	}
	if _, err := c.Subscribe(s.ctx(t), ports.Filter{Topic: topic}, newRecorder()); !errors.Is(err, ports.ErrClosed) {
		t.Errorf("Subscribe after Close: %v, want an error matching ports.ErrClosed", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		subscription.Unsubscribe(context.Background())
	}()
	select {
	case <-done:
	case <-time.After(s.timeout):
		t.Fatalf("Unsubscribe after Close did not return within %v", s.timeout)
	}

	s.publish(t, pub, topic, []byte("after"), 1)
	w.waitPayloads(t, s.timeout, topic, "after")
	s.settle(t)
	r.check(t)
	if hasMessage(w.messages(), "", "closed") {
		t.Error("a message published after Close was delivered")
	}
}

func (s *suite) testCanceledContext(t *testing.T) {
	p, _ := prefix()
	c := s.client(t)
	canceled, cancel := context.WithCancel(context.Background())
	cancel()

	calls := []struct {
		name string
		call func() error
	}{
		{"Publish QoS 0", func() error {
			return c.Publish(canceled, ports.Message{Topic: p + "/t", Payload: []byte("canceled")})
		}},
		{"Publish QoS 1", func() error {
			return c.Publish(canceled, ports.Message{Topic: p + "/t", Payload: []byte("canceled"), QoS: 1})
		}},
		{"Subscribe", func() error {
			sub, err := c.Subscribe(canceled, ports.Filter{Topic: p + "/canceled", QoS: 1}, newRecorder())
			if err == nil && sub != nil {
				sub.Unsubscribe(context.Background())
			}
			return err
		}},
	}
	for _, tt := range calls {
		errc := make(chan error, 1)
		go func() { errc <- tt.call() }()
		select {
		case err := <-errc:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("%s with a canceled context: %v, want an error matching context.Canceled", tt.name, err)
			}
		case <-time.After(s.timeout):
			t.Fatalf("%s with a canceled context did not return within %v", tt.name, s.timeout)
		}
	}
	// The client still works.
	r := newRecorder()
	s.subscribe(t, c, ports.Filter{Topic: p + "/t", QoS: 1}, r)
	s.publish(t, c, p+"/t", []byte("ok"), 1)
	r.waitPayloads(t, s.timeout, p+"/t", "ok")
}

func (s *suite) testReconnect(t *testing.T) {
	if s.f.Reconnect == nil {
		t.Skip("Features.Reconnect is not set")
	}
	p, _ := prefix()
	pub, c := s.client(t), s.client(t)
	r1, r2, back := newRecorder(), newRecorder(), newRecorder()
	s.subscribe(t, c, ports.Filter{Topic: p + "/one", QoS: 1}, r1)
	s.subscribe(t, c, ports.Filter{Topic: p + "/two/+", QoS: 0}, r2)
	s.subscribe(t, pub, ports.Filter{Topic: p + "/back", QoS: 1}, back)
	s.publish(t, pub, p+"/one", []byte("before"), 1)
	r1.waitPayloads(t, s.timeout, p+"/one", "before")

	s.f.Reconnect(t, c)

	for _, r := range []*recorder{r1, r2} {
		r.wait(t, s.timeout, "StateLost then StateRestored", func(_ []ports.Message, states []ports.State) bool {
			return len(states) >= 2 && states[len(states)-1] == ports.StateRestored
		})
		r.mu.Lock()
		states := append([]ports.State(nil), r.states...)
		r.mu.Unlock()
		for i, st := range states {
			if want := []ports.State{ports.StateLost, ports.StateRestored}[i%2]; st != want {
				t.Errorf("states %v: state %d is %v, want %v (lost and restored alternate)", states, i, st, want)
			}
		}
	}
	// The subscriptions and the connection work again.
	s.publish(t, pub, p+"/one", []byte("after"), 1)
	s.publish(t, pub, p+"/two/x", []byte("after"), 1)
	s.publish(t, c, p+"/back", []byte("after"), 1)
	r1.waitPayloads(t, s.timeout, p+"/one", "after")
	r2.waitPayloads(t, s.timeout, p+"/two/x", "after")
	back.waitPayloads(t, s.timeout, p+"/back", "after")
	r1.check(t)
	r2.check(t)
}
