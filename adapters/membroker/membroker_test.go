package membroker_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/iotjobs/iotjobs/adapters/membroker"
	"github.com/iotjobs/iotjobs/ports"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// newBroker returns a broker closed when the test ends.
func newBroker(t testing.TB, opts membroker.Options) *membroker.Broker {
	t.Helper()
	b := membroker.New(opts)
	t.Cleanup(func() { b.Close() })
	return b
}

func connect(t testing.TB, b *membroker.Broker, id string) *membroker.Client {
	t.Helper()
	c, err := b.Connect(id)
	if err != nil {
		t.Fatalf("Connect(%q): %v", id, err)
	}
	return c
}

// recorder is a Handler that records what it is given, as strings:
// "topic=payload@qos" for a message and "state:lost" for a state change.
type recorder struct {
	mu     sync.Mutex
	events []string
	msgs   []ports.Message
	active atomic.Int32
	overl  atomic.Bool // handler calls overlapped
}

func (r *recorder) HandleMessage(m ports.Message) {
	r.enter()
	defer r.active.Add(-1)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, fmt.Sprintf("%s=%s@%d", m.Topic, m.Payload, m.QoS))
	r.msgs = append(r.msgs, m)
}

func (r *recorder) HandleState(s ports.State) {
	r.enter()
	defer r.active.Add(-1)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, "state:"+s.String())
}

func (r *recorder) enter() {
	if r.active.Add(1) > 1 {
		r.overl.Store(true)
	}
}

func (r *recorder) got() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}

func subscribe(t testing.TB, c *membroker.Client, f ports.Filter, h ports.Handler) ports.Subscription {
	t.Helper()
	s, err := c.Subscribe(context.Background(), f, h)
	if err != nil {
		t.Fatalf("Subscribe(%+v): %v", f, err)
	}
	return s
}

func publish(t testing.TB, c *membroker.Client, topic, payload string, qos ports.QoS) {
	t.Helper()
	if err := c.Publish(context.Background(), ports.Message{Topic: topic, Payload: []byte(payload), QoS: qos}); err != nil {
		t.Fatalf("Publish(%q): %v", topic, err)
	}
}

func quiesce(t testing.TB, b *membroker.Broker) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := b.Quiesce(ctx); err != nil {
		t.Fatalf("Quiesce: %v", err)
	}
}

func wantEvents(t testing.TB, r *recorder, want ...string) {
	t.Helper()
	if got := r.got(); !slices.Equal(got, want) {
		t.Errorf("delivered\n  %q\nwant\n  %q", got, want)
	}
	if r.overl.Load() {
		t.Error("handler calls overlapped")
	}
}

func TestConnect(t *testing.T) {
	b := newBroker(t, membroker.Options{})
	taken := connect(t, b, "client-1")
	auto := connect(t, b, "")
	if auto.ID() != "client-2" {
		t.Errorf("generated ID %q, want client-2", auto.ID())
	}
	auto2 := connect(t, b, "")
	if auto2.ID() == auto.ID() || auto2.ID() == "" {
		t.Errorf("generated IDs %q then %q", auto.ID(), auto2.ID())
	}
	if _, err := b.Connect("client-1"); !errors.Is(err, membroker.ErrClientExists) {
		t.Errorf("Connect of a connected ID: %v, want ErrClientExists", err)
	}
	taken.Close()
	again := connect(t, b, "client-1")
	if again.ID() != "client-1" {
		t.Errorf("ID %q, want client-1", again.ID())
	}
	b.Close()
	if _, err := b.Connect("x"); !errors.Is(err, ports.ErrClosed) {
		t.Errorf("Connect after Close: %v, want ErrClosed", err)
	}
}

func TestRouting(t *testing.T) {
	tests := []struct {
		filter  string
		match   []string
		nomatch []string
	}{
		{"a/b", []string{"a/b"}, []string{"a", "a/b/c", "a/c", "A/b"}},
		{"a/+", []string{"a/b", "a/"}, []string{"a", "a/b/c", "b/a"}},
		{"a/+/c", []string{"a/b/c", "a//c"}, []string{"a/b/c/d", "a/c"}},
		{"a/#", []string{"a", "a/b", "a/b/c"}, []string{"ab", "b/a"}},
		{"#", []string{"a", "a/b", "/"}, []string{"$aws/x", "$SYS"}},
		{"+/things/T/jobs/#", []string{"x/things/T/jobs/get"}, []string{"$aws/things/T/jobs/get"}},
		{"$aws/things/T/jobs/#", []string{"$aws/things/T/jobs/x/get/accepted", "$aws/things/T/jobs"}, []string{"$aws/things/U/jobs/get"}},
	}
	for _, tt := range tests {
		t.Run(tt.filter, func(t *testing.T) {
			b := newBroker(t, membroker.Options{})
			pub, sub := connect(t, b, "pub"), connect(t, b, "sub")
			var r recorder
			subscribe(t, sub, ports.Filter{Topic: tt.filter, QoS: 1}, &r)
			var want []string
			for _, topic := range tt.nomatch {
				publish(t, pub, topic, "no", 1)
			}
			for _, topic := range tt.match {
				publish(t, pub, topic, "yes", 1)
				want = append(want, topic+"=yes@1")
			}
			quiesce(t, b)
			wantEvents(t, &r, want...)
		})
	}
}

func TestQoS(t *testing.T) {
	for _, pq := range []ports.QoS{0, 1} {
		for _, sq := range []ports.QoS{0, 1} {
			t.Run(fmt.Sprintf("pub%d-sub%d", pq, sq), func(t *testing.T) {
				b := newBroker(t, membroker.Options{})
				c := connect(t, b, "")
				var r recorder
				subscribe(t, c, ports.Filter{Topic: "t", QoS: sq}, &r)
				publish(t, c, "t", "m", pq)
				quiesce(t, b)
				wantEvents(t, &r, fmt.Sprintf("t=m@%d", min(pq, sq)))
			})
		}
	}
}

func TestNoLocal(t *testing.T) {
	b := newBroker(t, membroker.Options{})
	self, other := connect(t, b, "self"), connect(t, b, "other")
	var noLocal, local recorder
	subscribe(t, self, ports.Filter{Topic: "t", QoS: 1, NoLocal: true}, &noLocal)
	subscribe(t, self, ports.Filter{Topic: "t", QoS: 1}, &local)
	publish(t, self, "t", "own", 1)
	publish(t, other, "t", "theirs", 1)
	quiesce(t, b)
	wantEvents(t, &noLocal, "t=theirs@1")
	wantEvents(t, &local, "t=own@1", "t=theirs@1")
}

func TestOverlappingSubscriptions(t *testing.T) {
	b := newBroker(t, membroker.Options{})
	c := connect(t, b, "")
	var r1, r2, r3 recorder
	subscribe(t, c, ports.Filter{Topic: "a/#", QoS: 1}, &r1)
	subscribe(t, c, ports.Filter{Topic: "a/+", QoS: 0}, &r2)
	subscribe(t, c, ports.Filter{Topic: "a/+", QoS: 1}, &r3)
	publish(t, c, "a/b", "x", 1)
	quiesce(t, b)
	wantEvents(t, &r1, "a/b=x@1")
	wantEvents(t, &r2, "a/b=x@0")
	wantEvents(t, &r3, "a/b=x@1")
}

func TestPublishErrors(t *testing.T) {
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	limits := ports.Limits{MaxPayload: 4, MaxTopicLength: 8}
	tests := []struct {
		name  string
		ctx   context.Context
		m     ports.Message
		setup func(b *membroker.Broker, c *membroker.Client)
		want  error
	}{
		{name: "canceled", ctx: canceled, m: ports.Message{Topic: "t"}, want: context.Canceled},
		{name: "empty topic", m: ports.Message{}, want: ports.ErrInvalidTopic},
		{name: "wildcard", m: ports.Message{Topic: "t/#"}, want: ports.ErrInvalidTopic},
		{name: "NUL", m: ports.Message{Topic: "t\x00"}, want: ports.ErrInvalidTopic},
		{name: "QoS 2", m: ports.Message{Topic: "t", QoS: 2}, want: ports.ErrInvalidQoS},
		{name: "payload", m: ports.Message{Topic: "t", Payload: []byte("12345")}, want: ports.ErrTooLarge},
		{name: "topic", m: ports.Message{Topic: "t/123456789"}, want: ports.ErrTooLarge},
		{
			name: "dropped", m: ports.Message{Topic: "t"}, want: ports.ErrNotConnected,
			setup: func(b *membroker.Broker, c *membroker.Client) { b.DropConnection(c.ID()) },
		},
		{
			name: "closed", m: ports.Message{Topic: "t"}, want: ports.ErrClosed,
			setup: func(b *membroker.Broker, c *membroker.Client) { c.Close() },
		},
		{
			name: "broker closed", m: ports.Message{Topic: "t"}, want: ports.ErrClosed,
			setup: func(b *membroker.Broker, c *membroker.Client) { b.Close() },
		},
		// After Close, every Publish reports ErrClosed; an invalid message
		// is reported before a dropped connection.
		{
			name: "closed and invalid", ctx: canceled, m: ports.Message{Topic: "t/#"}, want: ports.ErrClosed,
			setup: func(b *membroker.Broker, c *membroker.Client) { c.Close() },
		},
		{
			name: "dropped and invalid", m: ports.Message{Topic: "t", QoS: 3}, want: ports.ErrInvalidQoS,
			setup: func(b *membroker.Broker, c *membroker.Client) { b.DropConnection(c.ID()) },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var published atomic.Int32
			b := newBroker(t, membroker.Options{
				Limits:    limits,
				OnPublish: func(string, ports.Message) { published.Add(1) },
			})
			c, sub := connect(t, b, ""), connect(t, b, "")
			var r recorder
			subscribe(t, sub, ports.Filter{Topic: "#", QoS: 1}, &r)
			if tt.setup != nil {
				tt.setup(b, c)
			}
			ctx := tt.ctx
			if ctx == nil {
				ctx = context.Background()
			}
			err := c.Publish(ctx, tt.m)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Publish: %v, want %v", err, tt.want)
			}
			if !strings.HasPrefix(err.Error(), "membroker: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
			var le *ports.LimitError
			if errors.As(err, &le) != (tt.want == ports.ErrTooLarge) {
				t.Errorf("errors.As(%v, *LimitError) disagrees with ErrTooLarge", err)
			}
			quiesce(t, b)
			wantEvents(t, &r)
			if n := published.Load(); n != 0 {
				t.Errorf("OnPublish called %d times", n)
			}
		})
	}
}

func TestSubscribeErrors(t *testing.T) {
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name  string
		ctx   context.Context
		f     ports.Filter
		h     ports.Handler
		setup func(b *membroker.Broker, c *membroker.Client)
		want  error // nil: any error
	}{
		{name: "canceled", ctx: canceled, f: ports.Filter{Topic: "t"}, want: context.Canceled},
		{name: "empty", f: ports.Filter{}, want: ports.ErrInvalidTopic},
		{name: "misplaced #", f: ports.Filter{Topic: "a/#/b"}, want: ports.ErrInvalidTopic},
		{name: "partial +", f: ports.Filter{Topic: "a+"}, want: ports.ErrInvalidTopic},
		{name: "QoS 2", f: ports.Filter{Topic: "t", QoS: 2}, want: ports.ErrInvalidQoS},
		{name: "long", f: ports.Filter{Topic: strings.Repeat("x", ports.MaxTopicLength+1)}, want: ports.ErrTooLarge},
		{name: "nil handler", f: ports.Filter{Topic: "t"}, h: nilHandler{}},
		{
			name: "dropped", f: ports.Filter{Topic: "t"}, want: ports.ErrNotConnected,
			setup: func(b *membroker.Broker, c *membroker.Client) { b.DropConnection(c.ID()) },
		},
		{
			name: "closed", f: ports.Filter{Topic: "t"}, want: ports.ErrClosed,
			setup: func(b *membroker.Broker, c *membroker.Client) { c.Close() },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBroker(t, membroker.Options{})
			c := connect(t, b, "")
			if tt.setup != nil {
				tt.setup(b, c)
			}
			ctx := tt.ctx
			if ctx == nil {
				ctx = context.Background()
			}
			var h ports.Handler = &recorder{}
			if _, ok := tt.h.(nilHandler); ok {
				h = nil
			}
			s, err := c.Subscribe(ctx, tt.f, h)
			if err == nil || tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("Subscribe: %v, want %v", err, tt.want)
			}
			if s != nil {
				t.Errorf("Subscribe returned a subscription with error %v", err)
			}
			if !strings.HasPrefix(err.Error(), "membroker: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
		})
	}
}

// nilHandler marks a test case that subscribes a nil handler.
type nilHandler struct{ ports.Handler }

func TestPayloadOwnership(t *testing.T) {
	var hooked ports.Message
	b := newBroker(t, membroker.Options{OnPublish: func(_ string, m ports.Message) { hooked = m }})
	c := connect(t, b, "")
	var r1, r2 recorder
	subscribe(t, c, ports.Filter{Topic: "t"}, &r1)
	subscribe(t, c, ports.Filter{Topic: "t"}, &r2)
	payload := []byte("abc")
	if err := c.Publish(context.Background(), ports.Message{Topic: "t", Payload: payload}); err != nil {
		t.Fatal(err)
	}
	payload[0] = 'X'
	quiesce(t, b)
	r1.msgs[0].Payload[1] = 'Y'
	if got := string(r2.msgs[0].Payload); got != "abc" {
		t.Errorf("second subscriber got %q, want abc", got)
	}
	if got := string(hooked.Payload); got != "abc" {
		t.Errorf("OnPublish got %q, want abc", got)
	}
}

func TestBinaryPayloads(t *testing.T) {
	b := newBroker(t, membroker.Options{})
	c := connect(t, b, "")
	var r recorder
	subscribe(t, c, ports.Filter{Topic: "t", QoS: 1}, &r)
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	payloads := [][]byte{nil, {}, {0}, all, bytes.Repeat([]byte{0xff}, ports.MaxPayload)}
	for _, p := range payloads {
		if err := c.Publish(context.Background(), ports.Message{Topic: "t", Payload: p, QoS: 1}); err != nil {
			t.Fatal(err)
		}
	}
	quiesce(t, b)
	if len(r.msgs) != len(payloads) {
		t.Fatalf("got %d messages, want %d", len(r.msgs), len(payloads))
	}
	for i, p := range payloads {
		if !bytes.Equal(r.msgs[i].Payload, p) {
			t.Errorf("payload %d: got %d bytes, want %d", i, len(r.msgs[i].Payload), len(p))
		}
	}
}

func TestOrderAndConcurrency(t *testing.T) {
	const publishers, each = 8, 200
	b := newBroker(t, membroker.Options{})
	sub := connect(t, b, "sub")
	var r recorder
	subscribe(t, sub, ports.Filter{Topic: "p/#", QoS: 1}, &r)
	var wg sync.WaitGroup
	for p := range publishers {
		c := connect(t, b, "")
		wg.Go(func() {
			for i := range each {
				topic := fmt.Sprintf("p/%d", p)
				if err := c.Publish(context.Background(), ports.Message{Topic: topic, Payload: fmt.Appendf(nil, "%d", i), QoS: 1}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	quiesce(t, b)
	next := make(map[string]int)
	for _, m := range r.msgs {
		if want := fmt.Sprint(next[m.Topic]); string(m.Payload) != want {
			t.Fatalf("%s: got %s, want %s", m.Topic, m.Payload, want)
		}
		next[m.Topic]++
	}
	if len(r.msgs) != publishers*each {
		t.Errorf("got %d messages, want %d", len(r.msgs), publishers*each)
	}
	if r.overl.Load() {
		t.Error("handler calls overlapped")
	}
}

// TestHandlerPublishes plays ping-pong between two clients' handlers, the
// way a fake service replies to requests: no deadlock, and Quiesce waits
// for the whole exchange.
func TestHandlerPublishes(t *testing.T) {
	const rounds = 100
	b := newBroker(t, membroker.Options{})
	ping, pong := connect(t, b, "ping"), connect(t, b, "pong")
	var n atomic.Int32
	bounce := func(c *membroker.Client, to string) ports.Handler {
		return ports.HandlerFuncs{Message: func(m ports.Message) {
			if n.Add(1) < rounds {
				if err := c.Publish(context.Background(), ports.Message{Topic: to, QoS: 1}); err != nil {
					t.Error(err)
				}
			}
		}}
	}
	subscribe(t, ping, ports.Filter{Topic: "ping", QoS: 1}, bounce(ping, "pong"))
	subscribe(t, pong, ports.Filter{Topic: "pong", QoS: 1}, bounce(pong, "ping"))
	publish(t, ping, "pong", "", 1)
	quiesce(t, b)
	if got := n.Load(); got != rounds {
		t.Errorf("%d messages handled, want %d", got, rounds)
	}
}

func TestUnsubscribe(t *testing.T) {
	b := newBroker(t, membroker.Options{})
	c := connect(t, b, "")
	var r, other recorder
	s := subscribe(t, c, ports.Filter{Topic: "t", QoS: 1}, &r)
	subscribe(t, c, ports.Filter{Topic: "t", QoS: 1}, &other)
	publish(t, c, "t", "1", 1)
	quiesce(t, b)
	if err := s.Unsubscribe(context.Background()); err != nil {
		t.Fatalf("Unsubscribe: %v", err)
	}
	publish(t, c, "t", "2", 1)
	quiesce(t, b)
	wantEvents(t, &r, "t=1@1")
	wantEvents(t, &other, "t=1@1", "t=2@1")
	if err := s.Unsubscribe(context.Background()); err != nil {
		t.Errorf("second Unsubscribe: %v", err)
	}
}

// TestUnsubscribeDiscardsQueue checks that events queued but not delivered
// when Unsubscribe or Close is called are never delivered.
func TestUnsubscribeDiscardsQueue(t *testing.T) {
	for _, how := range []string{"unsubscribe", "close client", "close broker"} {
		t.Run(how, func(t *testing.T) {
			b := newBroker(t, membroker.Options{})
			c := connect(t, b, "")
			var r recorder
			s := subscribe(t, c, ports.Filter{Topic: "t"}, &r)
			b.Hold()
			publish(t, c, "t", "held", 0)
			b.Disconnect(c.ID())
			quiesce(t, b) // returns while held
			switch how {
			case "unsubscribe":
				s.Unsubscribe(context.Background())
			case "close client":
				c.Close()
			default:
				b.Close()
			}
			b.Release()
			quiesce(t, b)
			wantEvents(t, &r)
		})
	}
}

// TestUnsubscribeWaits checks that Unsubscribe waits for the handler call in
// progress: with a canceled context it gives up with an error instead.
func TestUnsubscribeWaits(t *testing.T) {
	b := newBroker(t, membroker.Options{})
	c := connect(t, b, "")
	entered, release := make(chan struct{}), make(chan struct{})
	var calls atomic.Int32
	s := subscribe(t, c, ports.Filter{Topic: "t"}, ports.HandlerFuncs{Message: func(ports.Message) {
		calls.Add(1)
		close(entered)
		<-release
	}})
	publish(t, c, "t", "1", 0)
	publish(t, c, "t", "2", 0)
	<-entered

	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Unsubscribe(canceled); !errors.Is(err, context.Canceled) {
		t.Fatalf("Unsubscribe with a handler running and a canceled context: %v, want context.Canceled", err)
	}
	done := make(chan error)
	go func() { done <- s.Unsubscribe(context.Background()) }()
	select {
	case err := <-done:
		t.Fatalf("Unsubscribe returned %v while the handler was running", err)
	default:
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("Unsubscribe: %v", err)
	}
	quiesce(t, b)
	if n := calls.Load(); n != 1 {
		t.Errorf("handler called %d times, want 1", n)
	}
}

// TestHandlerEndsItself checks that a handler may unsubscribe its own
// subscription or close its client or broker without deadlock, and is not
// called again.
func TestHandlerEndsItself(t *testing.T) {
	tests := []struct {
		name string
		end  func(b *membroker.Broker, c *membroker.Client, s ports.Subscription) error
	}{
		{"unsubscribe", func(_ *membroker.Broker, _ *membroker.Client, s ports.Subscription) error {
			return s.Unsubscribe(context.Background())
		}},
		{"close client", func(_ *membroker.Broker, c *membroker.Client, _ ports.Subscription) error { return c.Close() }},
		{"close broker", func(b *membroker.Broker, _ *membroker.Client, _ ports.Subscription) error { return b.Close() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBroker(t, membroker.Options{})
			c := connect(t, b, "")
			var sub ports.Subscription
			ready := make(chan struct{})
			var calls atomic.Int32
			errs := make(chan error, 1)
			sub = subscribe(t, c, ports.Filter{Topic: "t"}, ports.HandlerFuncs{Message: func(ports.Message) {
				<-ready
				if calls.Add(1) == 1 {
					errs <- tt.end(b, c, sub)
				}
			}})
			var other recorder
			subscribe(t, c, ports.Filter{Topic: "t"}, &other)
			publish(t, c, "t", "1", 0)
			publish(t, c, "t", "2", 0)
			close(ready)
			if err := <-errs; err != nil {
				t.Fatalf("%s from the handler: %v", tt.name, err)
			}
			quiesce(t, b)
			if n := calls.Load(); n != 1 {
				t.Errorf("handler called %d times, want 1", n)
			}
			if tt.name == "unsubscribe" {
				return
			}
			// Closing ended the client's other subscription too.
			if err := c.Publish(context.Background(), ports.Message{Topic: "t"}); !errors.Is(err, ports.ErrClosed) {
				t.Errorf("Publish after Close: %v, want ErrClosed", err)
			}
		})
	}
}

func TestClose(t *testing.T) {
	b := newBroker(t, membroker.Options{})
	c, other := connect(t, b, ""), connect(t, b, "")
	var r recorder
	s := subscribe(t, c, ports.Filter{Topic: "t"}, &r)
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := s.Unsubscribe(context.Background()); err != nil {
		t.Errorf("Unsubscribe after Close: %v", err)
	}
	publish(t, other, "t", "x", 0)
	quiesce(t, b)
	wantEvents(t, &r)
	if err := c.Publish(context.Background(), ports.Message{Topic: "t"}); !errors.Is(err, ports.ErrClosed) {
		t.Errorf("Publish after Close: %v, want ErrClosed", err)
	}
	if _, err := c.Subscribe(context.Background(), ports.Filter{Topic: "t"}, &r); !errors.Is(err, ports.ErrClosed) {
		t.Errorf("Subscribe after Close: %v, want ErrClosed", err)
	}
	if err := b.DropConnection(c.ID()); !errors.Is(err, membroker.ErrUnknownClient) {
		t.Errorf("DropConnection of a closed client: %v, want ErrUnknownClient", err)
	}
}

func TestBrokerClose(t *testing.T) {
	b := membroker.New(membroker.Options{})
	c1, c2 := connect(t, b, ""), connect(t, b, "")
	subscribe(t, c1, ports.Filter{Topic: "#"}, &recorder{})
	subscribe(t, c2, ports.Filter{Topic: "#"}, &recorder{})
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	for _, c := range []*membroker.Client{c1, c2} {
		if err := c.Publish(context.Background(), ports.Message{Topic: "t"}); !errors.Is(err, ports.ErrClosed) {
			t.Errorf("Publish after broker Close: %v, want ErrClosed", err)
		}
	}
	quiesce(t, b)
	// goleak in TestMain checks that no goroutine survived.
}

func TestQuiesceCanceled(t *testing.T) {
	b := newBroker(t, membroker.Options{})
	c := connect(t, b, "")
	entered, release := make(chan struct{}), make(chan struct{})
	subscribe(t, c, ports.Filter{Topic: "t"}, ports.HandlerFuncs{Message: func(ports.Message) {
		close(entered)
		<-release
	}})
	publish(t, c, "t", "", 0)
	<-entered
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := b.Quiesce(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Quiesce with a running handler: %v, want context.Canceled", err)
	}
	// Holding delivery does not make a running handler finish.
	b.Hold()
	if err := b.Quiesce(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Quiesce while held with a running handler: %v, want context.Canceled", err)
	}
	b.Release()
	close(release)
	quiesce(t, b)
}

func TestHoldRelease(t *testing.T) {
	b := newBroker(t, membroker.Options{})
	c := connect(t, b, "")
	var r recorder
	subscribe(t, c, ports.Filter{Topic: "#", QoS: 1}, &r)
	b.Hold()
	publish(t, c, "a", "1", 1)
	publish(t, c, "b", "2", 0)
	b.Disconnect(c.ID())
	publish(t, c, "a", "3", 1)
	quiesce(t, b)
	wantEvents(t, &r)
	b.Release()
	quiesce(t, b)
	wantEvents(t, &r, "a=1@1", "b=2@0", "state:lost", "state:restored", "a=3@1")
}

func TestDropAndDuplicate(t *testing.T) {
	b := newBroker(t, membroker.Options{})
	c := connect(t, b, "")
	var r recorder
	subscribe(t, c, ports.Filter{Topic: "#", QoS: 1}, &r)
	subscribe(t, c, ports.Filter{Topic: "a/+", QoS: 0}, &recorder{})

	if err := b.DropNext("a/+", 2); err != nil {
		t.Fatal(err)
	}
	if err := b.DuplicateNext("#", 1); err != nil {
		t.Fatal(err)
	}
	if err := b.DropNext("b", 0); err != nil { // does nothing
		t.Fatal(err)
	}
	if err := b.DuplicateNext("b", -1); err != nil { // does nothing
		t.Fatal(err)
	}
	if err := b.DropNext("a/#/b", 1); !errors.Is(err, ports.ErrInvalidTopic) {
		t.Errorf("DropNext with an invalid filter: %v, want ErrInvalidTopic", err)
	}
	if err := b.DuplicateNext("", 1); !errors.Is(err, ports.ErrInvalidTopic) {
		t.Errorf("DuplicateNext with an invalid filter: %v, want ErrInvalidTopic", err)
	}
	publish(t, c, "b", "1", 1)   // duplicated: "a/+" does not match
	publish(t, c, "a/x", "2", 1) // dropped
	publish(t, c, "b", "3", 1)
	publish(t, c, "a/y", "4", 0) // dropped
	publish(t, c, "a/z", "5", 1)
	quiesce(t, b)
	wantEvents(t, &r, "b=1@1", "b=1@1", "b=3@1", "a/z=5@1")
}

func TestDisconnect(t *testing.T) {
	b := newBroker(t, membroker.Options{})
	c, other := connect(t, b, "c"), connect(t, b, "other")
	var r1, r2 recorder
	subscribe(t, c, ports.Filter{Topic: "a", QoS: 1}, &r1)
	subscribe(t, c, ports.Filter{Topic: "b", QoS: 1}, &r2)
	publish(t, other, "a", "before", 1)
	if err := b.Disconnect("c"); err != nil {
		t.Fatal(err)
	}
	publish(t, other, "a", "after", 1)
	quiesce(t, b)
	wantEvents(t, &r1, "a=before@1", "state:lost", "state:restored", "a=after@1")
	wantEvents(t, &r2, "state:lost", "state:restored")
}

func TestDropConnection(t *testing.T) {
	b := newBroker(t, membroker.Options{})
	c, other := connect(t, b, "c"), connect(t, b, "other")
	var r, theirs recorder
	subscribe(t, c, ports.Filter{Topic: "t", QoS: 1}, &r)
	subscribe(t, other, ports.Filter{Topic: "t", QoS: 1}, &theirs)

	if err := b.DropConnection("c"); err != nil {
		t.Fatal(err)
	}
	if err := b.DropConnection("c"); err != nil { // does nothing
		t.Fatal(err)
	}
	publish(t, other, "t", "missed", 1)
	if err := c.Publish(context.Background(), ports.Message{Topic: "t"}); !errors.Is(err, ports.ErrNotConnected) {
		t.Errorf("Publish while dropped: %v, want ErrNotConnected", err)
	}
	quiesce(t, b)
	wantEvents(t, &r, "state:lost")

	if err := b.Reconnect("c"); err != nil {
		t.Fatal(err)
	}
	if err := b.Reconnect("c"); err != nil { // does nothing
		t.Fatal(err)
	}
	publish(t, other, "t", "received", 1)
	publish(t, c, "t", "own", 1)
	quiesce(t, b)
	wantEvents(t, &r, "state:lost", "state:restored", "t=received@1", "t=own@1")
	wantEvents(t, &theirs, "t=missed@1", "t=received@1", "t=own@1")

	for name, f := range map[string]func(string) error{
		"Disconnect": b.Disconnect, "DropConnection": b.DropConnection, "Reconnect": b.Reconnect,
	} {
		if err := f("nobody"); !errors.Is(err, membroker.ErrUnknownClient) {
			t.Errorf("%s of an unknown client: %v, want ErrUnknownClient", name, err)
		}
	}
}

func TestOnPublish(t *testing.T) {
	var mu sync.Mutex
	var got []string
	b := newBroker(t, membroker.Options{OnPublish: func(id string, m ports.Message) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, fmt.Sprintf("%s:%s=%s@%d", id, m.Topic, m.Payload, m.QoS))
	}})
	a, z := connect(t, b, "a"), connect(t, b, "z")
	b.DropNext("#", 1)
	publish(t, a, "t/1", "x", 1) // dropped, but published
	publish(t, z, "t/2", "y", 0)
	want := []string{"a:t/1=x@1", "z:t/2=y@0"}
	if !slices.Equal(got, want) {
		t.Errorf("OnPublish saw %q, want %q", got, want)
	}
}

func BenchmarkPublishDeliverQoS1(b *testing.B) {
	br := membroker.New(membroker.Options{})
	defer br.Close()
	pub, _ := br.Connect("pub")
	sub, _ := br.Connect("sub")
	got := make(chan struct{})
	_, err := sub.Subscribe(context.Background(), ports.Filter{Topic: "bench/+", QoS: 1},
		ports.HandlerFuncs{Message: func(ports.Message) { got <- struct{}{} }})
	if err != nil {
		b.Fatal(err)
	}
	m := ports.Message{Topic: "bench/x", Payload: make([]byte, 256), QoS: 1}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := pub.Publish(ctx, m); err != nil {
			b.Fatal(err)
		}
		<-got
	}
}
