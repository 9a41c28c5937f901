// Package mqtt5 is the MQTT 5 transport of iotjobs: a ports.PubSub over TLS
// with an X.509 client certificate, as AWS IoT Core's devices connect, built
// on github.com/eclipse/paho.golang.
//
//	c, err := mqtt5.Connect(ctx, mqtt5.Config{
//		Endpoint: "xxxx-ats.iot.eu-west-1.amazonaws.com", // port 8883
//		ClientID: "my-thing",
//		CertFile: "my-thing.cert.pem",
//		KeyFile:  "my-thing.private.key",
//		CAFile:   "AmazonRootCA1.pem", // or leave empty for the system roots
//	})
//	if err != nil { ... }
//	defer c.Close()
//	client, err := jobs.New(ctx, c, jobs.Options{Thing: "my-thing"})
//
// # Connection
//
// Connect validates the Config (a *ConfigError, never a panic), makes one
// connection attempt within its context and Config.ConnectTimeout, and
// returns a *ConnectError if it fails: a refused TLS handshake or a CONNACK
// reason code of 0x80 or more is reported at once, never retried. Once
// connected, the Client keeps the connection up by itself: when it drops it
// reconnects with exponential backoff and jitter (Config.ReconnectMin,
// ReconnectMax), for as long as it is not closed. Config.OnConnectionChange
// reports each connection and disconnection with its reason.
//
// Every connection attempt goes through a Dialer: by default one that dials
// TCP and completes a TLS 1.2+ handshake with the client certificate
// (offering ALPN "x-amzn-mqtt-ca" on port 443); Config.Dialer replaces it
// (the SigV4 WebSocket transport does).
//
// The CONNECT asks for a small receive maximum (Config.ReceiveMaximum) so
// paho's inbound buffer stays small, announces the largest packet the client
// accepts, and allows no topic aliases. What the broker announces in CONNACK
// is respected: its receive maximum bounds the QoS 1 messages in flight (a
// Publish waits for a slot), its maximum packet size refuses larger messages
// with a *ports.LimitError before anything is sent, and no topic alias is
// ever used.
//
// # Publish
//
// Publish checks the message against Config.Limits (AWS IoT Core's by
// default) and the broker's maximum packet size, then sends it; a QoS 1
// Publish returns when the PUBACK arrives. A PUBACK reason code 0x10 (no
// matching subscribers) is success; 0x80 or more is a *PublishError. While
// the connection is down Publish fails at once with an error wrapping
// ports.ErrNotConnected: it does not wait for the reconnect. A QoS 1
// Publish whose connection drops before its PUBACK fails at once with an
// error wrapping ErrConnectionLost (and ports.ErrNotConnected): the message
// may or may not have been delivered.
//
// # Subscriptions
//
// Subscribe sends at most one SUBSCRIBE (none if the Client's subscription
// of the same filter already covers it) and returns when the broker granted
// it (a *SubscribeError if it refused); Subscribe, too, fails at once while
// the connection is down. After every reconnect the Client
// subscribes again to every filter, at most MaxFiltersPerSubscribe (8) per
// SUBSCRIBE, whether or not the broker resumed the session, since a
// session may be resumed without the messages sent meanwhile. Each
// subscription's Handler is told ports.StateLost when the connection drops
// and ports.StateRestored once its filter is subscribed again. A filter the
// broker refuses after a reconnect stays lost (and is logged) until the
// next reconnect.
//
// Subscriptions are local: the Client subscribes each distinct filter once
// at the broker (with the highest QoS its subscriptions ask for, and
// NoLocal only if all of them ask for it) and hands every message received
// to each of its subscriptions whose filter matches the topic, with the
// lower of the message's QoS and the subscription's. A broker that sends a
// copy per matching filter (mosquitto, AWS IoT Core) makes a message that
// matches several filters of the client arrive several times at each of
// them; overlapping filters also weaken NoLocal.
//
// Each subscription has its own goroutine and an unbounded queue: paho
// delivers every message on one goroutine and acknowledges it once the
// adapter has queued it, so a slow handler delays only its own
// subscription, and a handler may Publish (QoS 1 included), Subscribe and
// Unsubscribe without deadlock.
//
// # Concurrency and Close
//
// A Client is safe for concurrent use. paho writes one packet with several
// Write calls; the adapter gathers them under a lock so concurrent
// publications never interleave (see Dialer for a connection of your own).
// Close sends a DISCONNECT, ends every goroutine of the Client and waits
// for handler calls in progress (except the caller's own, when a handler
// calls Close); a second Close does nothing.
package mqtt5

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/eclipse/paho.golang/paho/session"
	"github.com/eclipse/paho.golang/paho/session/state"

	"github.com/iotjobs/iotjobs/ports"
)

// Client is an MQTT 5 connection that reconnects by itself. It implements
// ports.PubSub; its methods are safe for concurrent use.
type Client struct {
	s       *settings
	session *state.State // paho's session state, shared by the connections

	life    context.Context // ends at Close
	stop    context.CancelFunc
	runDone chan struct{} // closed when run returns
	runGID  atomic.Uint64 // the goroutine running run

	sem chan struct{} // one slot: SUBSCRIBE/UNSUBSCRIBE changes and restores, in turn

	mu      sync.Mutex
	conn    *connection // nil while down
	closed  bool
	entries map[string]*entry // by filter
	orphans map[string]bool   // filters perhaps still subscribed in a resumable session
	subs    []*subscription   // every started subscription, for Close

	closeOnce sync.Once
}

var _ ports.PubSub = (*Client)(nil)

// ClientID returns the Client's MQTT client ID.
func (c *Client) ClientID() string { return c.s.clientID }

// Connected reports whether the Client is connected at the moment.
func (c *Client) Connected() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.conn != nil
}

// connection is one network connection and its paho client.
type connection struct {
	cli            *paho.Client
	nc             net.Conn
	ctx            context.Context // ends with the connection
	cancel         context.CancelFunc
	sessionPresent bool
	maxPacket      uint32     // the broker's maximum packet size; 0: none
	reason         chan error // why it ended, buffered 1
}

func (cn *connection) setReason(err error) {
	select {
	case cn.reason <- err:
	default:
	}
}

// entry is one filter subscribed at the broker, and the local
// subscriptions it feeds.
type entry struct {
	filter string
	subs   []*subscription
	conn   *connection // the connection on which it is subscribed
	opts   options     // with which options
}

type options struct {
	qos     ports.QoS
	noLocal bool
}

// want returns the options the entry's subscriptions need.
func (e *entry) want() options {
	o := options{noLocal: len(e.subs) > 0}
	for _, s := range e.subs {
		o.qos = max(o.qos, s.f.QoS)
		o.noLocal = o.noLocal && s.f.NoLocal
	}
	return o
}

// Connect connects to the broker and returns once the broker accepted the
// connection (CONNACK), or with an error: a *ConfigError for a bad cfg, a
// *ConnectError if the attempt failed or was refused, or ctx's error. It
// makes one attempt, bounded by ctx and cfg.ConnectTimeout; afterwards the
// Client reconnects by itself until Close.
func Connect(ctx context.Context, cfg Config) (*Client, error) {
	s, err := cfg.settings()
	if err != nil {
		return nil, err
	}
	c := &Client{
		s:       s,
		session: state.NewInMemory(),
		runDone: make(chan struct{}),
		sem:     make(chan struct{}, 1),
		entries: make(map[string]*entry),
		orphans: make(map[string]bool),
	}
	c.life, c.stop = context.WithCancel(context.Background())
	conn, err := c.connect(ctx, true)
	if err != nil {
		c.stop()
		s.log.Warn("mqtt5: connect failed", "err", err)
		return nil, err
	}
	c.conn = conn
	go c.run(conn)
	return c, nil
}

// connect makes one connection attempt, bounded by ctx, the Client's life
// and the connect timeout.
func (c *Client) connect(ctx context.Context, first bool) (*connection, error) {
	ctx, cancel := context.WithTimeout(ctx, c.s.connectTimeout)
	defer cancel()
	stop := context.AfterFunc(c.life, cancel)
	defer stop()

	fail := func(err error) error {
		if ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
			err = fmt.Errorf("%w (%v)", ctx.Err(), err)
		}
		return &ConnectError{Endpoint: c.s.endpoint, Err: err}
	}
	nc, err := c.s.dialer.Dial(ctx)
	if err != nil {
		return nil, fail(err)
	}
	if nc == nil {
		return nil, fail(errors.New("dialer returned no connection"))
	}
	if _, ok := nc.(sync.Locker); !ok {
		nc = newPacketConn(nc)
	}
	cn := &connection{nc: nc, reason: make(chan error, 1)}
	cli := paho.NewClient(paho.ClientConfig{
		ClientID:          c.s.clientID,
		Conn:              nc,
		Session:           c.session,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){c.received},
		PacketTimeout:     c.s.ackTimeout,
		OnClientError:     func(err error) { cn.setReason(fmt.Errorf("%w: %v", ErrConnectionLost, err)) },
		OnServerDisconnect: func(d *paho.Disconnect) {
			de := &DisconnectError{ReasonCode: d.ReasonCode}
			if d.Properties != nil {
				de.Reason = d.Properties.ReasonString
			}
			cn.setReason(de)
		},
	})
	expiry, recvMax, maxPacket := c.s.sessionExpiry, c.s.receiveMax, c.maxInbound()
	ca, err := cli.Connect(ctx, &paho.Connect{
		ClientID:   c.s.clientID,
		KeepAlive:  c.s.keepAlive,
		CleanStart: first && c.s.cleanStart,
		Properties: &paho.ConnectProperties{
			SessionExpiryInterval: &expiry,
			ReceiveMaximum:        &recvMax,
			MaximumPacketSize:     &maxPacket,
			RequestProblemInfo:    true,
		},
	})
	if err != nil { // paho has closed nc
		if ca != nil && ca.ReasonCode >= 0x80 {
			ce := &ConnectError{Endpoint: c.s.endpoint, ReasonCode: ca.ReasonCode, Err: err}
			if ca.Properties != nil {
				ce.Reason = ca.Properties.ReasonString
			}
			return nil, ce
		}
		return nil, fail(err)
	}
	cn.cli = cli
	cn.sessionPresent = ca.SessionPresent
	if ca.Properties != nil && ca.Properties.MaximumPacketSize != nil {
		cn.maxPacket = *ca.Properties.MaximumPacketSize
	}
	cn.ctx, cn.cancel = context.WithCancel(c.life)
	go func() {
		select {
		case <-cli.Done():
		case <-cn.ctx.Done():
		}
		cn.cancel()
	}()
	return cn, nil
}

// maxInbound is the largest packet the client accepts: a payload at the
// limit (at least AWS IoT Core's) and room for the topic and properties.
func (c *Client) maxInbound() uint32 {
	p := max(c.s.limits.MaxPayload, ports.MaxPayload)
	return uint32(min(p+64<<10, 268435455)) // MQTT's largest packet
}

// run keeps the Client connected until Close: it waits for the connection
// to end, tells the subscriptions, reconnects and restores them.
func (c *Client) run(cn *connection) {
	defer close(c.runDone)
	c.runGID.Store(goid())
	c.s.log.Info("mqtt5: connected", "session_present", cn.sessionPresent)
	c.emit(ConnectionEvent{Connected: true, SessionPresent: cn.sessionPresent})
	for {
		select {
		case <-cn.cli.Done():
		case <-c.life.Done():
			c.disconnect(cn)
			c.emit(ConnectionEvent{Err: fmt.Errorf("mqtt5: %w", ports.ErrClosed)})
			return
		}
		reason := c.reasonOf(cn)
		cn.cancel()
		c.markLost(cn)
		c.s.log.Warn("mqtt5: connection lost", "err", reason)
		c.emit(ConnectionEvent{Err: reason})

		cn = c.reconnect()
		if cn == nil {
			return // closed
		}
		c.mu.Lock()
		c.conn = cn
		c.mu.Unlock()
		c.s.log.Info("mqtt5: reconnected", "session_present", cn.sessionPresent)
		c.emit(ConnectionEvent{Connected: true, SessionPresent: cn.sessionPresent})
		c.restore(cn)
	}
}

// reasonOf returns why the connection ended. paho reports it from a
// goroutine of its own, shortly after the client is done.
func (c *Client) reasonOf(cn *connection) error {
	t := time.NewTimer(2 * time.Second)
	defer t.Stop()
	select {
	case err := <-cn.reason:
		return err
	case <-c.life.Done():
		return fmt.Errorf("mqtt5: %w", ports.ErrClosed)
	case <-t.C:
		return fmt.Errorf("%w: connection closed", ErrConnectionLost)
	}
}

// disconnect ends cn with a DISCONNECT (normal disconnection), at Close.
func (c *Client) disconnect(cn *connection) {
	cn.nc.SetWriteDeadline(time.Now().Add(time.Second))
	cn.cli.Disconnect(&paho.Disconnect{ReasonCode: 0})
	cn.cancel()
	c.mu.Lock()
	if c.conn == cn {
		c.conn = nil
	}
	c.mu.Unlock()
	c.s.log.Info("mqtt5: disconnected (closed)")
}

// reconnect tries to connect until it succeeds or the Client is closed
// (then it returns nil), pausing with exponential backoff and jitter.
func (c *Client) reconnect() *connection {
	for attempt := 0; ; attempt++ {
		d := c.backoff(attempt)
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-c.life.Done():
			t.Stop()
			return nil
		}
		cn, err := c.connect(c.life, false)
		if err == nil {
			return cn
		}
		if c.life.Err() != nil {
			return nil
		}
		c.s.log.Warn("mqtt5: reconnect failed", "attempt", attempt+1, "err", err)
	}
}

// backoff returns the pause before reconnect attempt n (from 0): a random
// duration between ReconnectMin and min(ReconnectMax, ReconnectMin·2ⁿ).
func (c *Client) backoff(n int) time.Duration {
	lo, hi := c.s.reconnectMin, c.s.reconnectMin
	for range min(n, 62) {
		if hi >= c.s.reconnectMax/2 {
			hi = c.s.reconnectMax
			break
		}
		hi *= 2
	}
	hi = min(hi, c.s.reconnectMax)
	if hi <= lo {
		return lo
	}
	return lo + rand.N(hi-lo+1)
}

// markLost records that cn is gone and tells every subscription.
func (c *Client) markLost(cn *connection) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn == cn {
		c.conn = nil
	}
	for _, e := range c.entries {
		for _, s := range e.subs {
			if s.started && !s.lost {
				s.lost = true
				s.enqueue(event{state: ports.StateLost})
			}
		}
	}
}

// restore subscribes again, on cn, every filter not subscribed on it, and
// tells their subscriptions. A filter the broker refuses stays lost; if the
// broker does not answer, the connection is closed so that the next one
// tries again.
func (c *Client) restore(cn *connection) {
	select {
	case c.sem <- struct{}{}:
	case <-cn.ctx.Done():
		return
	}
	defer func() { <-c.sem }()

	c.mu.Lock()
	var todo []*entry
	for _, e := range c.entries {
		if e.conn != cn && len(e.subs) > 0 {
			todo = append(todo, e)
		}
	}
	var orphans []string
	if cn.sessionPresent {
		for f := range c.orphans {
			orphans = append(orphans, f)
		}
	}
	clear(c.orphans)
	c.mu.Unlock()
	slices.SortFunc(todo, func(a, b *entry) int { return cmpString(a.filter, b.filter) })
	slices.Sort(orphans)

	restored := 0
	for batch := range slices.Chunk(todo, MaxFiltersPerSubscribe) {
		c.mu.Lock()
		wants := make([]options, len(batch))
		subs := make([]paho.SubscribeOptions, len(batch))
		for i, e := range batch {
			wants[i] = e.want()
			subs[i] = paho.SubscribeOptions{Topic: e.filter, QoS: byte(wants[i].qos), NoLocal: wants[i].noLocal}
		}
		c.mu.Unlock()
		reasons, reason, err := c.sendSubscribe(cn.ctx, cn, subs)
		if err != nil {
			if cn.ctx.Err() == nil {
				c.s.log.Error("mqtt5: restoring subscriptions failed; reconnecting", "err", err)
				cn.nc.Close()
			}
			return
		}
		c.mu.Lock()
		for i, e := range batch {
			if reasons[i] >= 0x80 {
				c.s.log.Error("mqtt5: broker refused to restore a subscription", "filter", e.filter, "reason", reasonText(reasons[i]), "reason_string", reason)
				continue
			}
			restored++
			e.conn, e.opts = cn, wants[i]
			e.restoreLocked()
		}
		c.mu.Unlock()
	}
	for batch := range slices.Chunk(orphans, MaxFiltersPerSubscribe) {
		c.sendUnsubscribe(cn.ctx, cn, batch)
	}
	if len(todo) > 0 {
		c.s.log.Info("mqtt5: subscriptions restored", "restored", restored, "of", len(todo))
	}
}

// restoreLocked tells the entry's lost subscriptions that they receive
// again. c.mu is held.
func (e *entry) restoreLocked() {
	for _, s := range e.subs {
		if s.started && s.lost {
			s.lost = false
			s.enqueue(event{state: ports.StateRestored})
		}
	}
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// emit passes ev to Config.OnConnectionChange.
func (c *Client) emit(ev ConnectionEvent) {
	if c.s.onChange == nil {
		return
	}
	ev.At = time.Now()
	c.s.onChange(ev)
}

// current returns the connection, or an error for an operation that
// cannot start: closed, ctx ended, invalid (the limits' verdict), or not
// connected, in that order.
func (c *Client) current(ctx context.Context, op, topic string, invalid error) (*connection, error) {
	c.mu.Lock()
	closed, cn := c.closed, c.conn
	c.mu.Unlock()
	switch {
	case closed:
		return nil, fmt.Errorf("mqtt5: %s %q: %w", op, topic, ports.ErrClosed)
	case ctx.Err() != nil:
		return nil, fmt.Errorf("mqtt5: %s %q: %w", op, topic, ctx.Err())
	case invalid != nil:
		return nil, fmt.Errorf("mqtt5: %s: %w", op, invalid)
	case cn == nil:
		return nil, fmt.Errorf("mqtt5: %s %q: %w", op, topic, ports.ErrNotConnected)
	}
	return cn, nil
}

// failure explains why a request made on cn failed with err.
func (c *Client) failure(ctx context.Context, cn *connection, op, topic string, err error) error {
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("mqtt5: %s %q: %w", op, topic, ctx.Err())
	case closed:
		return fmt.Errorf("mqtt5: %s %q: %w", op, topic, ports.ErrClosed)
	case errors.Is(err, paho.ErrInvalidArguments):
		return fmt.Errorf("mqtt5: %s %q: %w", op, topic, err)
	case cn.ctx.Err() != nil, isConnError(err):
		return lostError(op, topic, err)
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("mqtt5: %s %q: %w (%v)", op, topic, ErrTimeout, c.s.ackTimeout)
	}
	return fmt.Errorf("mqtt5: %s %q: %w", op, topic, err)
}

// isConnError reports whether err says the connection is broken.
func isConnError(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrClosedPipe) ||
		errors.Is(err, net.ErrClosed) || errors.Is(err, session.ErrNoConnection) || errors.Is(err, paho.ErrConnectionLost)
}

// withConn returns ctx, also canceled when cn ends.
func withConn(ctx context.Context, cn *connection) (context.Context, func()) {
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(cn.ctx, cancel)
	return ctx, func() { stop(); cancel() }
}

// Publish sends m and returns at once for QoS 0, or when the broker
// acknowledged it for QoS 1. It returns an error wrapping a
// *ports.LimitError, ports.ErrInvalidTopic or ports.ErrInvalidQoS for a
// message it refuses to send (a payload too large for the broker's maximum
// packet size is reported as over the payload limit); ports.ErrClosed after
// Close; ports.ErrNotConnected while the connection is down;
// ErrConnectionLost if it dropped before the PUBACK; a *PublishError if the
// broker refused the message; ctx's error if ctx ended first. Publish keeps
// no reference to m.Payload once it returns.
func (c *Client) Publish(ctx context.Context, m ports.Message) error {
	cn, err := c.current(ctx, "publish", m.Topic, c.s.limits.CheckMessage(m))
	if err != nil {
		return err
	}
	if cn.maxPacket > 0 {
		if size := publishSize(m); size > int(cn.maxPacket) {
			le := &ports.LimitError{What: "payload", Size: len(m.Payload), Max: max(0, len(m.Payload)-(size-int(cn.maxPacket)))}
			return fmt.Errorf("mqtt5: publish: broker's maximum packet size %d: %w", cn.maxPacket, le)
		}
	}
	pctx, done := withConn(ctx, cn)
	defer done()
	resp, err := cn.cli.Publish(pctx, &paho.Publish{QoS: byte(m.QoS), Topic: m.Topic, Payload: m.Payload})
	if resp != nil && resp.ReasonCode >= 0x80 {
		pe := &PublishError{Topic: m.Topic, ReasonCode: resp.ReasonCode}
		if resp.Properties != nil {
			pe.Reason = resp.Properties.ReasonString
		}
		return pe
	}
	if err != nil {
		return c.failure(ctx, cn, "publish", m.Topic, err)
	}
	return nil
}

// publishSize is the size of m's PUBLISH packet, without properties.
func publishSize(m ports.Message) int {
	n := 2 + len(m.Topic) + 1 + len(m.Payload) // topic, property length, payload
	if m.QoS > 0 {
		n += 2 // packet identifier
	}
	v := 1
	for x := n; x >= 128; x /= 128 {
		v++
	}
	return 1 + v + n
}

// sendSubscribe sends one SUBSCRIBE on cn and returns the SUBACK's reason
// codes, one per filter, and its reason string.
func (c *Client) sendSubscribe(ctx context.Context, cn *connection, subs []paho.SubscribeOptions) ([]byte, string, error) {
	ctx, done := withConn(ctx, cn)
	defer done()
	sa, err := cn.cli.Subscribe(ctx, &paho.Subscribe{Subscriptions: subs})
	if sa != nil && len(sa.Reasons) == len(subs) {
		var reason string
		if sa.Properties != nil {
			reason = sa.Properties.ReasonString
		}
		return sa.Reasons, reason, nil
	}
	if err == nil {
		err = fmt.Errorf("SUBACK with %d reason codes for %d filters", len(sa.Reasons), len(subs))
	}
	return nil, "", err
}

// sendUnsubscribe sends one UNSUBSCRIBE on cn; the broker's refusals only
// get logged, since the subscriptions are gone locally anyway.
func (c *Client) sendUnsubscribe(ctx context.Context, cn *connection, filters []string) error {
	ctx, done := withConn(ctx, cn)
	defer done()
	ua, err := cn.cli.Unsubscribe(ctx, &paho.Unsubscribe{Topics: filters})
	if ua != nil {
		for i, r := range ua.Reasons {
			if r >= 0x80 && i < len(filters) {
				c.s.log.Warn("mqtt5: broker refused to unsubscribe", "filter", filters[i], "reason", reasonText(r))
			}
		}
		return nil
	}
	return err
}

// Subscribe subscribes to f, sending a SUBSCRIBE unless the Client's
// subscription of the same filter already covers f's options, and returns
// when the broker granted it. h receives the messages and state changes
// from a goroutine of the subscription's own until Unsubscribe or Close.
// Errors: as Publish's (limits, invalid filter or QoS, closed, not
// connected, connection lost, ctx), a *SubscribeError if the broker
// refused the filter, and one for a nil h.
func (c *Client) Subscribe(ctx context.Context, f ports.Filter, h ports.Handler) (ports.Subscription, error) {
	invalid := c.s.limits.CheckFilter(f)
	if invalid == nil && h == nil {
		invalid = fmt.Errorf("%w for %q", errNilHandler, f.Topic)
	}
	if _, err := c.current(ctx, "subscribe", f.Topic, invalid); err != nil {
		return nil, err
	}
	select {
	case c.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("mqtt5: subscribe %q: %w", f.Topic, ctx.Err())
	case <-c.life.Done():
		return nil, fmt.Errorf("mqtt5: subscribe %q: %w", f.Topic, ports.ErrClosed)
	}
	defer func() { <-c.sem }()

	cn, err := c.current(ctx, "subscribe", f.Topic, nil)
	if err != nil {
		return nil, err
	}
	s := &subscription{c: c, f: f, h: h, wake: make(chan struct{}, 1), done: make(chan struct{})}
	c.mu.Lock()
	e := c.entries[f.Topic]
	created := e == nil
	if created {
		e = &entry{filter: f.Topic}
		c.entries[f.Topic] = e
		delete(c.orphans, f.Topic)
	}
	s.e = e
	e.subs = append(e.subs, s) // messages are queued from now on
	want := e.want()
	send := e.conn != cn || e.opts != want
	c.mu.Unlock()

	if send {
		opts := paho.SubscribeOptions{Topic: f.Topic, QoS: byte(want.qos), NoLocal: want.noLocal}
		reasons, reason, err := c.sendSubscribe(ctx, cn, []paho.SubscribeOptions{opts})
		if err == nil && reasons[0] >= 0x80 {
			err = &SubscribeError{Filter: f.Topic, ReasonCode: reasons[0], Reason: reason}
		} else if err != nil {
			err = c.failure(ctx, cn, "subscribe", f.Topic, err)
		}
		if err != nil {
			c.mu.Lock()
			e.subs = slices.DeleteFunc(e.subs, func(o *subscription) bool { return o == s })
			if len(e.subs) == 0 && c.entries[f.Topic] == e {
				delete(c.entries, f.Topic)
				if c.s.sessionExpiry > 0 {
					c.orphans[f.Topic] = true // the broker may have it
				}
			}
			c.mu.Unlock()
			return nil, err
		}
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, fmt.Errorf("mqtt5: subscribe %q: %w", f.Topic, ports.ErrClosed)
	}
	if send {
		e.conn, e.opts = cn, want
		if c.conn == cn {
			e.restoreLocked()
		}
	}
	s.started = true
	if c.conn != cn { // the connection dropped meanwhile
		s.lost = true
		s.enqueue(event{state: ports.StateLost})
	}
	c.subs = append(c.subs, s)
	go s.run()
	return s, nil
}

// received is paho's handler of every inbound PUBLISH: it queues the
// message for each subscription whose filter matches and returns at once.
func (c *Client) received(pr paho.PublishReceived) (bool, error) {
	p := pr.Packet
	if p == nil {
		return false, nil
	}
	if p.Topic == "" { // a topic alias, which the client never allows
		c.s.log.Warn("mqtt5: dropped a message without topic name")
		return false, nil
	}
	qos := ports.QoS(min(p.QoS, 1))
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false, nil
	}
	var to []*subscription
	for _, e := range c.entries {
		if ports.Match(e.filter, p.Topic) {
			to = append(to, e.subs...)
		}
	}
	for i, s := range to {
		payload := p.Payload
		if i < len(to)-1 {
			payload = bytes.Clone(payload) // every handler owns its payload
		}
		s.enqueue(event{msg: ports.Message{Topic: p.Topic, Payload: payload, QoS: min(qos, s.f.QoS)}})
	}
	return len(to) > 0, nil
}

// Close disconnects (DISCONNECT, reason 0), ends the subscriptions and
// every goroutine of the Client, and waits for handler calls in progress,
// except the caller's own when a handler or OnConnectionChange calls it.
// Later calls of Publish and Subscribe return errors wrapping
// ports.ErrClosed. A second Close waits likewise and returns nil.
func (c *Client) Close() error {
	me := goid()
	var subs []*subscription
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.closed = true
		for _, s := range c.subs {
			s.stopQueue()
		}
		clear(c.entries)
		c.mu.Unlock()
		c.stop()
	})
	c.mu.Lock()
	subs = slices.Clone(c.subs)
	c.mu.Unlock()
	if c.runGID.Load() != me {
		<-c.runDone
	}
	for _, s := range subs {
		if !s.isRunBy(me) {
			<-s.done
		}
	}
	return nil
}

// event is what a subscription's queue holds: a message, or a state
// change if state is set.
type event struct {
	msg   ports.Message
	state ports.State
}

// subscription is one Subscribe call's subscription: a queue and the
// goroutine that drains it into the handler.
type subscription struct {
	c    *Client
	e    *entry
	f    ports.Filter
	h    ports.Handler
	wake chan struct{} // signals run, buffered 1
	done chan struct{} // closed when run returns

	// Guarded by c.mu.
	started bool
	lost    bool

	mu      sync.Mutex
	queue   []event
	stopped bool
	gid     uint64 // the goroutine running run, once it runs
}

var _ ports.Subscription = (*subscription)(nil)

// enqueue adds ev to the queue, unless the subscription ended.
func (s *subscription) enqueue(ev event) {
	s.mu.Lock()
	if !s.stopped {
		s.queue = append(s.queue, ev)
	}
	s.mu.Unlock()
	s.wakeUp()
}

func (s *subscription) wakeUp() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// stopQueue ends the subscription's deliveries: run returns after the
// handler call in progress. It reports whether it was running before.
func (s *subscription) stopQueue() bool {
	s.mu.Lock()
	was := !s.stopped
	s.stopped = true
	s.queue = nil
	s.mu.Unlock()
	s.wakeUp()
	return was
}

func (s *subscription) isRunBy(gid uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gid != 0 && s.gid == gid
}

// run delivers the queue to the handler, one event at a time, until the
// subscription stops.
func (s *subscription) run() {
	defer close(s.done)
	me := goid()
	s.mu.Lock()
	s.gid = me
	for {
		for !s.stopped && len(s.queue) == 0 {
			s.mu.Unlock()
			<-s.wake
			s.mu.Lock()
		}
		if s.stopped {
			s.mu.Unlock()
			return
		}
		ev := s.queue[0]
		s.queue[0] = event{}
		s.queue = s.queue[1:]
		if len(s.queue) == 0 {
			s.queue = nil // let the backing array go
		}
		s.mu.Unlock()
		if ev.state != 0 {
			s.h.HandleState(ev.state)
		} else {
			s.h.HandleMessage(ev.msg)
		}
		s.mu.Lock()
	}
}

// Unsubscribe ends the subscription: its handler is not called once
// Unsubscribe returns (it waits for a call in progress, unless the handler
// itself unsubscribes). If no other subscription of the Client uses the
// filter, it sends an UNSUBSCRIBE when connected. It returns an error
// wrapping ctx.Err() if ctx ended while it waited, and nil otherwise
// (the subscription is gone locally whatever the broker answers); a
// second call returns nil.
func (s *subscription) Unsubscribe(ctx context.Context) error {
	c := s.c
	me := goid()
	if s.stopQueue() {
		if err := c.unsubscribe(ctx, s); err != nil {
			return err
		}
	}
	if s.isRunBy(me) {
		return nil
	}
	select {
	case <-s.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("mqtt5: unsubscribe %q: %w", s.f.Topic, ctx.Err())
	}
}

// unsubscribe removes s from its entry and updates the broker.
func (c *Client) unsubscribe(ctx context.Context, s *subscription) error {
	acquired := false
	select {
	case c.sem <- struct{}{}:
		acquired = true
		defer func() { <-c.sem }()
	case <-ctx.Done():
	case <-c.life.Done():
	}
	c.mu.Lock()
	c.subs = slices.DeleteFunc(c.subs, func(o *subscription) bool { return o == s })
	e := s.e
	e.subs = slices.DeleteFunc(e.subs, func(o *subscription) bool { return o == s })
	cn := c.conn
	subscribed := cn != nil && e.conn == cn && !c.closed
	empty := len(e.subs) == 0
	if empty && c.entries[e.filter] == e {
		delete(c.entries, e.filter)
		if !acquired || !subscribed {
			if c.s.sessionExpiry > 0 && !c.closed {
				c.orphans[e.filter] = true // unsubscribed after a resumed reconnect
			}
		}
	}
	want := e.want()
	c.mu.Unlock()
	if !acquired {
		if ctx.Err() != nil {
			return fmt.Errorf("mqtt5: unsubscribe %q: %w", s.f.Topic, ctx.Err())
		}
		return nil // closed
	}
	if !subscribed {
		return nil
	}
	var err error
	if empty {
		err = c.sendUnsubscribe(ctx, cn, []string{e.filter})
	} else if want != e.opts { // the others ask for less: QoS or NoLocal
		opts := paho.SubscribeOptions{Topic: e.filter, QoS: byte(want.qos), NoLocal: want.noLocal}
		var reasons []byte
		if reasons, _, err = c.sendSubscribe(ctx, cn, []paho.SubscribeOptions{opts}); err == nil && reasons[0] < 0x80 {
			c.mu.Lock()
			e.opts = want
			c.mu.Unlock()
		}
	}
	if err != nil && ctx.Err() != nil {
		return fmt.Errorf("mqtt5: unsubscribe %q: %w", s.f.Topic, ctx.Err())
	}
	return nil // a broken connection takes the subscription with it
}

// goid returns the ID of the calling goroutine. Go offers no other way for
// Unsubscribe and Close to tell that they are called by the handler they
// would otherwise wait for, and would deadlock. It is called once per
// subscription and per Unsubscribe or Close, never per message.
func goid() uint64 {
	var buf [64]byte
	// The trace starts "goroutine 123 [running]:".
	f := bytes.Fields(buf[:runtime.Stack(buf[:], false)])
	if len(f) < 2 {
		return 0
	}
	id, _ := strconv.ParseUint(string(f[1]), 10, 64)
	return id
}
