// Package membroker is an in-memory MQTT broker for tests: several clients
// connected to one Broker publish and subscribe with real MQTT semantics,
// deterministically and without a network.
//
// A *Client implements ports.PubSub:
//
//   - Filters use MQTT wildcards (ports.Match): '+' matches one level, '#'
//     the rest, and a leading wildcard never matches a topic starting with
//     '$'.
//   - A message is delivered with the lower of its QoS and the
//     subscription's. Filter.NoLocal keeps a client's own publications from
//     its subscription.
//   - Publish checks the broker's ports.Limits first, then enqueues the
//     message for every matching subscription before it returns: that is the
//     acknowledgement. Messages published by one goroutine reach every
//     subscription in the order they were published.
//   - Every subscription is independent, with its own unbounded queue and
//     goroutine: a client whose subscriptions overlap receives a message once
//     per matching subscription (as mosquitto does), and subscribing the same
//     filter twice makes two subscriptions.
//   - A handler may publish, subscribe, unsubscribe its own subscription and
//     close its client; it must not call Broker.Quiesce, and two handlers
//     must not wait for each other (say, each unsubscribing the other's
//     subscription at the same time).
//
// The Broker also lets a test control delivery: Quiesce waits until every
// handler is done, Hold and Release pause delivery, DropNext and
// DuplicateNext lose or repeat messages, and Disconnect, DropConnection and
// Reconnect simulate a connection that drops and comes back without its
// session.
package membroker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/iotjobs/iotjobs/ports"
)

// Errors of the Broker's own methods. Client methods return the ports
// errors.
var (
	// ErrClientExists is returned by Connect for an ID that is connected.
	ErrClientExists = errors.New("membroker: client id in use")
	// ErrUnknownClient is returned by the fault injection methods for an ID
	// that is not connected.
	ErrUnknownClient = errors.New("membroker: unknown client")
)

// Options configure a Broker. The zero value is ready to use.
type Options struct {
	// Limits bound what clients may publish and subscribe. The zero value
	// means AWS IoT Core's limits.
	Limits ports.Limits

	// OnPublish, if set, is called with every message a client published
	// successfully (including those DropNext loses), after the message was
	// enqueued for its subscribers and before Publish returns. Calls for
	// concurrent publications may be concurrent. The message's payload is
	// the callee's own.
	OnPublish func(clientID string, m ports.Message)
}

// Broker is an in-memory MQTT broker. Its methods are safe for concurrent
// use.
type Broker struct {
	opts Options

	mu      sync.Mutex
	clients map[string]*Client
	faults  []*fault
	held    bool
	closed  bool
	lastID  int
	// subs holds the live subscriptions by the literal levels their filter
	// starts with, so that Publish looks only at subscriptions whose filter
	// can match (with a thousand clients, not at all of them).
	subs    map[prefixKey][]*subscription
	queued  int             // events waiting in all queues
	running int             // handler calls in progress
	idle    []chan struct{} // closed when the broker becomes quiescent
}

// fault is a pending DropNext or DuplicateNext.
type fault struct {
	filter string
	n      int
	dup    bool
}

// New returns a running Broker.
func New(opts Options) *Broker {
	return &Broker{opts: opts, clients: make(map[string]*Client)}
}

// Connect connects a new client with the given ID. An empty ID gets a
// unique one, which Client.ID reports. Connect refuses an ID that is
// connected with an error wrapping ErrClientExists (unlike MQTT, which would
// take the old connection over: in a test that is usually a mistake); the
// ID is free again once its client is closed.
func (b *Broker) Connect(id string) (*Client, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, fmt.Errorf("membroker: connect %q: %w", id, ports.ErrClosed)
	}
	for id == "" {
		b.lastID++
		if cand := "client-" + strconv.Itoa(b.lastID); b.clients[cand] == nil {
			id = cand
		}
	}
	if b.clients[id] != nil {
		return nil, fmt.Errorf("%w: %q", ErrClientExists, id)
	}
	c := &Client{b: b, id: id}
	b.clients[id] = c
	return c, nil
}

// Close closes every client and waits until their handlers have returned
// (except the one calling Close, if a handler does). Connect fails
// afterwards. A second Close does nothing. It returns nil.
func (b *Broker) Close() error {
	b.mu.Lock()
	b.closed = true
	clients := make([]*Client, 0, len(b.clients))
	for _, c := range b.clients {
		clients = append(clients, c)
	}
	b.mu.Unlock()
	for _, c := range clients {
		c.Close()
	}
	return nil
}

// Quiesce waits until no handler is running and no message or state change
// waits to be delivered (while delivery is held, until no handler is
// running). Since a handler's publications are enqueued before it returns,
// a quiescent broker stays so until someone publishes again: after Quiesce,
// a test may assert that something was not delivered. Quiesce must not be
// called from a handler, which would wait for itself until ctx ends. It
// returns an error wrapping ctx.Err() if ctx ends first.
func (b *Broker) Quiesce(ctx context.Context) error {
	b.mu.Lock()
	if b.quiescentLocked() {
		b.mu.Unlock()
		return nil
	}
	ch := make(chan struct{})
	b.idle = append(b.idle, ch)
	b.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		b.mu.Lock()
		if i := slices.Index(b.idle, ch); i >= 0 {
			b.idle = slices.Delete(b.idle, i, i+1)
		}
		b.mu.Unlock()
		return fmt.Errorf("membroker: quiesce: %w", ctx.Err())
	}
}

func (b *Broker) quiescentLocked() bool {
	return b.running == 0 && (b.queued == 0 || b.held)
}

// notifyLocked wakes the Quiesce calls if the broker is quiescent. It is
// called whenever running or queued drop, or delivery is held.
func (b *Broker) notifyLocked() {
	if !b.quiescentLocked() {
		return
	}
	for _, ch := range b.idle {
		close(ch)
	}
	b.idle = nil
}

// Hold pauses delivery: messages and state changes are still enqueued, in
// order, but no handler is called (handler calls in progress finish) until
// Release.
func (b *Broker) Hold() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.held = true
	b.notifyLocked()
}

// Release resumes the delivery paused by Hold.
func (b *Broker) Release() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.held = false
	for _, c := range b.clients {
		for _, s := range c.subs {
			s.wakeUp()
		}
	}
}

// DropNext makes the broker lose the next n messages published on a topic
// matching filter: Publish succeeds, nobody receives them. Pending DropNext
// and DuplicateNext calls apply in the order they were made, one per
// message. n <= 0 does nothing. It returns an error wrapping
// ports.ErrInvalidTopic for an invalid filter.
func (b *Broker) DropNext(filter string, n int) error {
	return b.addFault(filter, n, false)
}

// DuplicateNext makes the broker deliver the next n messages published on a
// topic matching filter twice in a row to every matching subscription, as
// an MQTT broker may for QoS 1 (it does so whatever the QoS). See DropNext.
func (b *Broker) DuplicateNext(filter string, n int) error {
	return b.addFault(filter, n, true)
}

func (b *Broker) addFault(filter string, n int, dup bool) error {
	if err := ports.ValidateFilter(filter); err != nil {
		return fmt.Errorf("membroker: %w", err)
	}
	if n > 0 {
		b.mu.Lock()
		b.faults = append(b.faults, &fault{filter: filter, n: n, dup: dup})
		b.mu.Unlock()
	}
	return nil
}

// takeFaultLocked returns the fault that applies to a message on topic, if
// any, and counts it.
func (b *Broker) takeFaultLocked(topic string) *fault {
	for i, f := range b.faults {
		if ports.Match(f.filter, topic) {
			if f.n--; f.n == 0 {
				b.faults = slices.Delete(b.faults, i, i+1)
			}
			return f
		}
	}
	return nil
}

// Disconnect simulates a dropped connection that the client re-establishes
// at once without its session: each of the client's subscriptions is told
// ports.StateLost, then ports.StateRestored, after the messages already
// enqueued for it. It returns an error wrapping ErrUnknownClient if no
// client with that ID is connected.
func (b *Broker) Disconnect(clientID string) error { return b.setDown(clientID, true, false) }

// DropConnection takes the client's connection down until Reconnect: its
// subscriptions are told ports.StateLost and miss the messages published
// meanwhile; its Publish and Subscribe return errors wrapping
// ports.ErrNotConnected. Dropping a dropped connection does nothing.
func (b *Broker) DropConnection(clientID string) error { return b.setDown(clientID, true) }

// Reconnect brings back the connection taken down by DropConnection: the
// subscriptions are restored and told ports.StateRestored. Reconnecting a
// connected client does nothing.
func (b *Broker) Reconnect(clientID string) error { return b.setDown(clientID, false) }

// setDown takes the client's connection down or up, in the order given.
func (b *Broker) setDown(clientID string, down ...bool) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	c, err := b.clientLocked(clientID)
	if err != nil {
		return err
	}
	for _, d := range down {
		c.setDownLocked(d)
	}
	return nil
}

func (b *Broker) clientLocked(id string) (*Client, error) {
	if c := b.clients[id]; c != nil {
		return c, nil
	}
	return nil, fmt.Errorf("%w: %q", ErrUnknownClient, id)
}

// Client is one connection to a Broker. It implements ports.PubSub; its
// methods are safe for concurrent use.
type Client struct {
	b  *Broker
	id string

	// Guarded by b.mu.
	closed bool
	down   bool
	subs   []*subscription
}

var _ ports.PubSub = (*Client)(nil)

// ID returns the client's ID.
func (c *Client) ID() string { return c.id }

// Publish enqueues m for every matching subscription and returns. For a
// message the broker's limits refuse it returns an error wrapping a
// *ports.LimitError (matching ports.ErrTooLarge), ports.ErrInvalidTopic or
// ports.ErrInvalidQoS, and nothing is delivered. It returns an error
// wrapping ports.ErrClosed after Close (whatever the message),
// ports.ErrNotConnected while the connection is dropped, or ctx.Err() if
// ctx has ended. Publish keeps
// no reference to m.Payload: every subscription gets a copy of its own.
func (c *Client) Publish(ctx context.Context, m ports.Message) error {
	b := c.b
	invalid := b.opts.Limits.CheckMessage(m)
	b.mu.Lock()
	if err := c.refuseLocked(ctx, "publish", m.Topic, invalid); err != nil {
		b.mu.Unlock()
		return err
	}
	msg := m
	if b.opts.OnPublish != nil {
		// OnPublish gets a payload of its own; subscriptions get theirs below.
		msg.Payload = bytes.Clone(m.Payload)
	}
	copies := 1
	if len(b.faults) > 0 {
		if f := b.takeFaultLocked(msg.Topic); f != nil {
			copies = 0
			if f.dup {
				copies = 2
			}
		}
	}
	b.forCandidatesLocked(msg.Topic, func(s *subscription) {
		if s.c.down || !ports.Match(s.f.Topic, msg.Topic) || s.f.NoLocal && s.c == c {
			return
		}
		for range copies {
			d := msg
			d.Payload = bytes.Clone(m.Payload)
			d.QoS = min(msg.QoS, s.f.QoS)
			s.enqueueLocked(event{msg: d})
		}
	})
	b.mu.Unlock()

	if b.opts.OnPublish != nil {
		b.opts.OnPublish(c.id, msg)
	}
	return nil
}

// refuseLocked returns why an operation must be refused, if it must: the
// client is closed, ctx has ended, the operation is invalid (the error of
// the limits' check) or the connection is dropped, in that order.
func (c *Client) refuseLocked(ctx context.Context, op, topic string, invalid error) error {
	switch {
	case c.closed:
		return fmt.Errorf("membroker: %s %q: %w", op, topic, ports.ErrClosed)
	case ctx.Err() != nil:
		return fmt.Errorf("membroker: %s %q: %w", op, topic, ctx.Err())
	case invalid != nil:
		return fmt.Errorf("membroker: %s: %w", op, invalid)
	case c.down:
		return fmt.Errorf("membroker: %s %q: %w", op, topic, ports.ErrNotConnected)
	}
	return nil
}

// Subscribe starts delivering the messages published on topics matching
// f.Topic to h, from a goroutine of the subscription's own, until
// Unsubscribe or Close. It returns an error wrapping
// ports.ErrInvalidTopic, ports.ErrInvalidQoS or ports.ErrTooLarge for a
// filter the broker's limits refuse, ports.ErrNotConnected while the
// connection is dropped, ports.ErrClosed after Close, or ctx.Err() if ctx
// has ended. A nil h is refused with an error.
func (c *Client) Subscribe(ctx context.Context, f ports.Filter, h ports.Handler) (ports.Subscription, error) {
	b := c.b
	invalid := b.opts.Limits.CheckFilter(f)
	if invalid == nil && h == nil {
		invalid = errors.New("nil handler")
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := c.refuseLocked(ctx, "subscribe", f.Topic, invalid); err != nil {
		return nil, err
	}
	s := &subscription{c: c, f: f, h: h, wake: make(chan struct{}, 1), done: make(chan struct{})}
	c.subs = append(c.subs, s)
	b.indexLocked(s)
	go s.run()
	return s, nil
}

// Close closes the client: its subscriptions end and it is disconnected
// from the broker, which frees its ID. Close waits until the subscriptions'
// handlers have returned, except the one calling Close, if a handler does.
// Later calls of Publish and Subscribe return errors wrapping
// ports.ErrClosed. A second Close waits likewise and returns nil.
func (c *Client) Close() error {
	b := c.b
	me := goid()
	b.mu.Lock()
	if !c.closed {
		c.closed = true
		delete(b.clients, c.id)
		for _, s := range c.subs {
			s.stopLocked()
		}
		b.notifyLocked()
	}
	var wait []chan struct{}
	for _, s := range c.subs {
		if !s.isRunBy(me) {
			wait = append(wait, s.done)
		}
	}
	b.mu.Unlock()
	for _, done := range wait {
		<-done
	}
	return nil
}

// setDownLocked takes the client's connection down or up and tells its
// subscriptions.
func (c *Client) setDownLocked(down bool) {
	if c.down == down {
		return
	}
	c.down = down
	st := ports.StateRestored
	if down {
		st = ports.StateLost
	}
	for _, s := range c.subs {
		s.enqueueLocked(event{state: st})
	}
}

// event is what a subscription's queue holds: a message or, if state is
// set, a state change.
type event struct {
	msg   ports.Message
	state ports.State
}

// maxIdleQueue is the largest queue array an idle subscription keeps.
const maxIdleQueue = 64

// subscription is one Subscribe call's subscription.
type subscription struct {
	c    *Client
	f    ports.Filter
	h    ports.Handler
	wake chan struct{} // signals run, buffered 1
	done chan struct{} // closed when run returns

	// Guarded by c.b.mu. The events waiting are queue[head:]: popping
	// advances head, and the array is reused once the queue is empty, so a
	// steady flow of messages allocates no queue space.
	queue   []event
	head    int
	stopped bool
	gid     uint64 // the goroutine running run, 0 until it starts
}

// isRunBy reports whether the goroutine gid runs s's handler. Its caller
// holds c.b.mu.
func (s *subscription) isRunBy(gid uint64) bool { return gid != 0 && s.gid == gid }

func (s *subscription) enqueueLocked(ev event) {
	if len(s.queue) == cap(s.queue) && s.head >= len(s.queue)/2 && s.head > 0 {
		// Full, and half of it already delivered: slide the waiting events
		// down instead of growing an array that never empties.
		n := copy(s.queue, s.queue[s.head:])
		clear(s.queue[n:])
		s.queue, s.head = s.queue[:n], 0
	}
	s.queue = append(s.queue, ev)
	s.c.b.queued++
	s.wakeUp()
}

func (s *subscription) wakeUp() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// stopLocked ends the subscription, once: its queue is discarded, run
// returns after the handler call in progress, if any.
func (s *subscription) stopLocked() {
	s.stopped = true
	s.c.b.unindexLocked(s)
	s.c.b.queued -= len(s.queue) - s.head
	s.queue, s.head = nil, 0
	s.wakeUp()
}

// run delivers the queue to the handler, one event at a time, until the
// subscription stops.
func (s *subscription) run() {
	defer close(s.done)
	b := s.c.b
	me := goid()
	b.mu.Lock()
	s.gid = me
	for {
		for !s.stopped && (b.held || s.head == len(s.queue)) {
			b.mu.Unlock()
			<-s.wake
			b.mu.Lock()
		}
		if s.stopped {
			b.mu.Unlock()
			return
		}
		ev := s.queue[s.head]
		s.queue[s.head] = event{} // let the payload go
		if s.head++; s.head == len(s.queue) {
			s.queue, s.head = s.queue[:0], 0
			if cap(s.queue) > maxIdleQueue {
				s.queue = nil // a burst is over: let its array go
			}
		}
		b.queued--
		b.running++
		b.mu.Unlock()

		if ev.state != 0 {
			s.h.HandleState(ev.state)
		} else {
			s.h.HandleMessage(ev.msg)
		}

		b.mu.Lock()
		b.running--
		b.notifyLocked()
	}
}

// Unsubscribe ends the subscription and waits until a handler call in
// progress has returned, unless the handler itself is calling. A second
// call returns nil. It returns an error wrapping ctx.Err() if ctx ends while
// it waits; the handler is not called again in any case.
func (s *subscription) Unsubscribe(ctx context.Context) error {
	b := s.c.b
	me := goid()
	b.mu.Lock()
	if !s.stopped {
		s.stopLocked()
		s.c.subs = slices.DeleteFunc(s.c.subs, func(o *subscription) bool { return o == s })
		b.notifyLocked()
	}
	self := s.isRunBy(me)
	b.mu.Unlock()
	if self {
		return nil
	}
	select {
	case <-s.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("membroker: unsubscribe %q: %w", s.f.Topic, ctx.Err())
	}
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

// prefixKey identifies the first n levels of a topic or filter: prefix is
// those levels with their separators ("" for n = 0).
type prefixKey struct {
	prefix string
	n      int
}

// literalPrefix returns the levels of filter before its first wildcard
// (all of them for a filter without one).
func literalPrefix(filter string) prefixKey {
	n, start := 0, 0
	for {
		end := strings.IndexByte(filter[start:], '/')
		level := filter[start:]
		if end >= 0 {
			level = filter[start : start+end]
		}
		if level == "+" || level == "#" {
			return prefixKey{prefix: filter[:max(start-1, 0)], n: n}
		}
		n++
		if end < 0 {
			return prefixKey{prefix: filter, n: n}
		}
		start += end + 1
	}
}

func (b *Broker) indexLocked(s *subscription) {
	if b.subs == nil {
		b.subs = make(map[prefixKey][]*subscription)
	}
	k := literalPrefix(s.f.Topic)
	b.subs[k] = append(b.subs[k], s)
}

func (b *Broker) unindexLocked(s *subscription) {
	k := literalPrefix(s.f.Topic)
	list := slices.DeleteFunc(b.subs[k], func(o *subscription) bool { return o == s })
	if len(list) == 0 {
		delete(b.subs, k)
	} else {
		b.subs[k] = list
	}
}

// forCandidatesLocked calls f with every live subscription whose filter's
// literal prefix is a prefix of topic: a superset of the matching ones.
func (b *Broker) forCandidatesLocked(topic string, f func(*subscription)) {
	visit := func(k prefixKey) {
		for _, s := range b.subs[k] {
			f(s)
		}
	}
	visit(prefixKey{})
	n := 0
	for i := 0; i < len(topic); i++ {
		if topic[i] == '/' {
			n++
			visit(prefixKey{prefix: topic[:i], n: n})
		}
	}
	visit(prefixKey{prefix: topic, n: n + 1})
}
