package mqtt5_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/iotjobs/iotjobs/adapters/mqtt5"
	"github.com/iotjobs/iotjobs/ports"
	"github.com/iotjobs/iotjobs/testkit/brokertest"
)

// inbox is a Handler that passes what it receives to channels.
type inbox struct {
	msgs   chan ports.Message
	states chan ports.State
}

func newInbox() *inbox {
	return &inbox{msgs: make(chan ports.Message, 100), states: make(chan ports.State, 100)}
}

func (b *inbox) HandleMessage(m ports.Message) { b.msgs <- m }
func (b *inbox) HandleState(s ports.State)     { b.states <- s }

// next returns the next message, or fails after 10 seconds.
func (b *inbox) next(t testing.TB) ports.Message {
	t.Helper()
	select {
	case m := <-b.msgs:
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("no message within 10s")
	}
	return ports.Message{}
}

// empty checks that nothing arrived.
func (b *inbox) empty(t testing.TB) {
	t.Helper()
	select {
	case m := <-b.msgs:
		t.Errorf("unexpected message %q on %s", m.Payload, m.Topic)
	default:
	}
}

func ctx10(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func subscribe(t testing.TB, c *mqtt5.Client, f ports.Filter, h ports.Handler) ports.Subscription {
	t.Helper()
	s, err := c.Subscribe(ctx10(t), f, h)
	if err != nil {
		t.Fatalf("Subscribe(%+v): %v", f, err)
	}
	return s
}

func publish(t testing.TB, c *mqtt5.Client, topic, payload string, qos ports.QoS) {
	t.Helper()
	if err := c.Publish(ctx10(t), ports.Message{Topic: topic, Payload: []byte(payload), QoS: qos}); err != nil {
		t.Fatalf("Publish(%q): %v", topic, err)
	}
}

// TestBrokerRefusals checks PUBACK and SUBACK reason codes of 0x80 or more.
func TestBrokerRefusals(t *testing.T) {
	e := newEnv(t, brokertest.Options{ACL: func(_, topic string, write bool) bool {
		return !(write && strings.HasPrefix(topic, "denied/")) && !(!write && strings.HasPrefix(topic, "forbidden/"))
	}})
	c := connect(t, e.config(t, ""))
	ctx := ctx10(t)

	err := c.Publish(ctx, ports.Message{Topic: "denied/x", Payload: []byte("p"), QoS: 1})
	var pe *mqtt5.PublishError
	if !errors.As(err, &pe) || pe.ReasonCode != 0x87 || pe.Topic != "denied/x" {
		t.Errorf("QoS 1 Publish to a denied topic: %v, want a *PublishError with reason 0x87", err)
	} else if want := `mqtt5: publish "denied/x": refused by the broker with reason 0x87 (not authorized)`; !strings.HasPrefix(err.Error(), want) {
		t.Errorf("error %q, want it to start with %q", err, want)
	}
	if err := c.Publish(ctx, ports.Message{Topic: "denied/x", Payload: []byte("p")}); err != nil {
		t.Errorf("QoS 0 Publish to a denied topic: %v, want nil (no acknowledgement)", err)
	}

	_, err = c.Subscribe(ctx, ports.Filter{Topic: "forbidden/#", QoS: 1}, newInbox())
	var se *mqtt5.SubscribeError
	if !errors.As(err, &se) || se.ReasonCode != 0x87 || se.Filter != "forbidden/#" {
		t.Errorf("Subscribe to a forbidden filter: %v, want a *SubscribeError with reason 0x87", err)
	}

	// The client still works.
	in := newInbox()
	subscribe(t, c, ports.Filter{Topic: "ok/#", QoS: 1}, in)
	publish(t, c, "ok/1", "fine", 1)
	if m := in.next(t); string(m.Payload) != "fine" {
		t.Errorf("received %q, want fine", m.Payload)
	}
}

// TestBrokerLimits checks that the client respects the maximum packet size
// the broker announces, and announces a small receive maximum and its own
// maximum packet size.
func TestBrokerLimits(t *testing.T) {
	e := newEnv(t, brokertest.Options{Capabilities: func(c *mqtt.Capabilities) { c.MaximumPacketSize = 4096 }})
	cfg := e.config(t, "")
	c := connect(t, cfg)
	in := newInbox()
	subscribe(t, c, ports.Filter{Topic: "big/#", QoS: 1}, in)

	// PUBLISH header: 1 byte type, 2 bytes length, 2+5 bytes topic, 2 bytes
	// packet id, 1 byte properties: 13 bytes.
	const room = 4096 - 13
	err := c.Publish(ctx10(t), ports.Message{Topic: "big/x", Payload: make([]byte, room+1), QoS: 1})
	var le *ports.LimitError
	if !errors.As(err, &le) || !errors.Is(err, ports.ErrTooLarge) || le.What != "payload" || le.Max != room || le.Size != room+1 {
		t.Errorf("Publish over the broker's maximum packet size: %v (%+v), want a LimitError with Max %d", err, le, room)
	}
	publish(t, c, "big/x", string(make([]byte, room)), 1)
	if m := in.next(t); len(m.Payload) != room {
		t.Errorf("received %d bytes, want %d", len(m.Payload), room)
	}

	// What the client announced in CONNECT.
	cl, ok := e.broker.Server().Clients.Get(cfg.ClientID)
	if !ok {
		t.Fatal("the broker does not know the client")
	}
	props := cl.Properties.Props
	if props.ReceiveMaximum != mqtt5.DefaultReceiveMaximum {
		t.Errorf("CONNECT receive maximum %d, want %d", props.ReceiveMaximum, mqtt5.DefaultReceiveMaximum)
	}
	if props.MaximumPacketSize == 0 || props.MaximumPacketSize < ports.MaxPayload {
		t.Errorf("CONNECT maximum packet size %d, want at least %d", props.MaximumPacketSize, ports.MaxPayload)
	}
	if props.TopicAliasMaximum != 0 {
		t.Errorf("CONNECT topic alias maximum %d, want 0", props.TopicAliasMaximum)
	}
	if cl.State.Keepalive != 60 {
		t.Errorf("CONNECT keep-alive %d, want 60", cl.State.Keepalive)
	}
}

// TestNotConnected checks that Publish and Subscribe fail at once while the
// connection is down.
func TestNotConnected(t *testing.T) {
	e := newEnv(t, brokertest.Options{})
	ev := newEvents()
	cfg := e.config(t, "")
	cfg.OnConnectionChange = ev.record
	cfg.ReconnectMin, cfg.ReconnectMax = time.Hour, time.Hour // stay down
	c := connect(t, cfg)
	in := newInbox()
	subscribe(t, c, ports.Filter{Topic: "t", QoS: 1}, in)
	e.broker.Close()
	ev.wait(t, "disconnected", func(evs []mqtt5.ConnectionEvent) bool { return count(evs, false) == 1 })
	select {
	case st := <-in.states:
		if st != ports.StateLost {
			t.Errorf("subscription state %v, want lost", st)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the subscription was not told it was lost")
	}

	start := time.Now()
	err := c.Publish(context.Background(), ports.Message{Topic: "t", QoS: 1})
	if !errors.Is(err, ports.ErrNotConnected) {
		t.Errorf("Publish while down: %v, want ports.ErrNotConnected", err)
	}
	_, err = c.Subscribe(context.Background(), ports.Filter{Topic: "u"}, newInbox())
	if !errors.Is(err, ports.ErrNotConnected) {
		t.Errorf("Subscribe while down: %v, want ports.ErrNotConnected", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("took %v, want at once", d)
	}
	// Close does not wait for the reconnect backoff.
	start = time.Now()
	c.Close()
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Close took %v", d)
	}
}

// rejectHook makes the broker drop QoS 1 publications to "unacked/..."
// without acknowledging them.
type rejectHook struct {
	mqtt.HookBase
	seen atomic.Int32
}

func (h *rejectHook) ID() string { return "reject-unacked" }

func (h *rejectHook) Provides(b byte) bool { return b == mqtt.OnPublish }

func (h *rejectHook) OnPublish(_ *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if strings.HasPrefix(pk.TopicName, "unacked/") {
		h.seen.Add(1)
		return pk, packets.ErrRejectPacket
	}
	return pk, nil
}

// TestInFlightPublishLost checks that a QoS 1 Publish whose connection
// drops before the PUBACK fails at once with ErrConnectionLost, and that
// the client works again after reconnecting.
func TestInFlightPublishLost(t *testing.T) {
	hook := &rejectHook{}
	e := newEnv(t, brokertest.Options{Hooks: []mqtt.Hook{hook}})
	ev := newEvents()
	cfg := e.config(t, "")
	cfg.OnConnectionChange = ev.record
	c := connect(t, cfg)

	done := make(chan error, 1)
	go func() {
		done <- c.Publish(context.Background(), ports.Message{Topic: "unacked/1", Payload: []byte("x"), QoS: 1})
	}()
	waitFor(t, "the broker to get the publication", func() bool { return hook.seen.Load() > 0 })
	if err := e.broker.DropClient(cfg.ClientID); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, mqtt5.ErrConnectionLost) || !errors.Is(err, ports.ErrNotConnected) {
			t.Errorf("in-flight Publish: %v, want ErrConnectionLost and ports.ErrNotConnected", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the in-flight Publish did not return after the connection dropped")
	}
	ev.wait(t, "reconnected", func(evs []mqtt5.ConnectionEvent) bool { return count(evs, true) == 2 })
	in := newInbox()
	subscribe(t, c, ports.Filter{Topic: "after", QoS: 1}, in)
	publish(t, c, "after", "ok", 1)
	in.next(t)
}

// TestSharedFilter checks subscriptions of one filter: one broker
// subscription with the strongest options, each local subscription its own
// delivery and QoS, and the broker's options follow when one ends.
func TestSharedFilter(t *testing.T) {
	e := newEnv(t, brokertest.Options{})
	cfg := e.config(t, "")
	c, other := connect(t, cfg), connect(t, e.config(t, ""))
	brokerSubs := func() map[string]packets.Subscription {
		cl, ok := e.broker.Server().Clients.Get(cfg.ClientID)
		if !ok {
			t.Fatal("the broker does not know the client")
		}
		return cl.State.Subscriptions.GetAll()
	}

	local, all := newInbox(), newInbox()
	subLocal := subscribe(t, c, ports.Filter{Topic: "shared/t", QoS: 0, NoLocal: true}, local)
	subAll := subscribe(t, c, ports.Filter{Topic: "shared/t", QoS: 1}, all)
	if subs := brokerSubs(); len(subs) != 1 || subs["shared/t"].Qos != 1 || subs["shared/t"].NoLocal {
		t.Errorf("broker subscriptions %+v, want shared/t with QoS 1 without NoLocal", subs)
	}

	publish(t, other, "shared/t", "from other", 1)
	if m := local.next(t); string(m.Payload) != "from other" || m.QoS != 0 {
		t.Errorf("QoS 0 subscription got %q with QoS %d", m.Payload, m.QoS)
	}
	if m := all.next(t); string(m.Payload) != "from other" || m.QoS != 1 {
		t.Errorf("QoS 1 subscription got %q with QoS %d", m.Payload, m.QoS)
	}

	// Without the subscription that wants its own messages, the broker's
	// subscription becomes NoLocal.
	if err := subAll.Unsubscribe(ctx10(t)); err != nil {
		t.Fatal(err)
	}
	if subs := brokerSubs(); len(subs) != 1 || !subs["shared/t"].NoLocal {
		t.Errorf("broker subscriptions %+v, want shared/t with NoLocal", subs)
	}
	publish(t, c, "shared/t", "own", 1)
	publish(t, other, "shared/t", "marker", 1)
	if m := local.next(t); string(m.Payload) != "marker" {
		t.Errorf("NoLocal subscription got %q, want only the marker", m.Payload)
	}

	// The last one gone, the broker's subscription goes too.
	if err := subLocal.Unsubscribe(ctx10(t)); err != nil {
		t.Fatal(err)
	}
	if subs := brokerSubs(); len(subs) != 0 {
		t.Errorf("broker subscriptions %+v after the last Unsubscribe, want none", subs)
	}
	if err := subLocal.Unsubscribe(ctx10(t)); err != nil {
		t.Errorf("second Unsubscribe: %v", err)
	}
	all.empty(t)
}

// TestOverlappingFilters checks that each subscription whose filter matches
// gets its own copy of the payload.
func TestOverlappingFilters(t *testing.T) {
	e := newEnv(t, brokertest.Options{})
	c := connect(t, e.config(t, ""))
	a, b := newInbox(), newInbox()
	subscribe(t, c, ports.Filter{Topic: "o/#", QoS: 1}, a)
	subscribe(t, c, ports.Filter{Topic: "o/+", QoS: 1}, b)
	publish(t, c, "o/x", "payload", 1)
	ma, mb := a.next(t), b.next(t)
	if !bytes.Equal(ma.Payload, mb.Payload) || string(ma.Payload) != "payload" {
		t.Fatalf("got %q and %q", ma.Payload, mb.Payload)
	}
	ma.Payload[0] = 'P'
	if mb.Payload[0] != 'p' {
		t.Error("two subscriptions share one payload")
	}
}

// TestHandlerSubscribes checks that a handler may subscribe, publish with
// QoS 1, unsubscribe its own subscription and close the client.
func TestHandlerSubscribes(t *testing.T) {
	e := newEnv(t, brokertest.Options{})
	c := connect(t, e.config(t, ""))
	second := newInbox()
	done := make(chan error, 1)
	var self ports.Subscription
	ready := make(chan struct{})
	self = subscribe(t, c, ports.Filter{Topic: "h/first", QoS: 1}, ports.HandlerFuncs{Message: func(ports.Message) {
		<-ready
		ctx := context.Background()
		if _, err := c.Subscribe(ctx, ports.Filter{Topic: "h/second", QoS: 1}, second); err != nil {
			done <- err
			return
		}
		if err := c.Publish(ctx, ports.Message{Topic: "h/second", Payload: []byte("2"), QoS: 1}); err != nil {
			done <- err
			return
		}
		done <- self.Unsubscribe(ctx)
	}})
	close(ready)
	publish(t, c, "h/first", "1", 1)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("in the handler: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the handler did not finish")
	}
	second.next(t)

	// Close from a handler; another client publishes the trigger, since
	// the Close may overtake the acknowledgement of a publication of c.
	closed := make(chan error, 1)
	subscribe(t, c, ports.Filter{Topic: "h/close", QoS: 1}, ports.HandlerFuncs{Message: func(ports.Message) {
		closed <- c.Close()
	}})
	publish(t, connect(t, e.config(t, "")), "h/close", "bye", 1)
	select {
	case err := <-closed:
		if err != nil {
			t.Errorf("Close from a handler: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close from a handler did not return")
	}
}
