// Package ports defines the transport contract of iotjobs: the Publisher and
// Subscriber interfaces that every transport (in-memory broker, MQTT 5 over
// TLS, MQTT over SigV4 WebSocket, or a user's own) implements, and the limits
// and errors they share.
//
// The contract, which the conformance suite in testkit/pubsubtest checks:
//
//   - Every method is safe for concurrent use by many goroutines.
//   - Blocking calls take a context first and return ctx.Err() (possibly
//     wrapped) when it ends first. A canceled Publish may or may not have sent
//     the message.
//   - Publish returns once the transport has taken responsibility for the
//     message: at once for QoS 0, when the broker acknowledged it for QoS 1.
//   - QoS 1 messages may be delivered more than once; nothing orders messages
//     published by different clients.
//   - Messages are checked against the transport's Limits before anything is
//     sent; a message that breaks them yields a *LimitError and is not sent.
//   - A subscription survives reconnects: the transport restores it. It
//     tells the Handler StateLost when the subscription stopped receiving
//     (connection lost, session not resumed) and StateRestored when it
//     receives again. Messages published in between may have been missed.
//   - A Handler's methods are called from one goroutine per subscription,
//     never concurrently with each other, in the order messages arrived.
//     They should return quickly: a slow handler delays its subscription.
//     The handler owns Message.Payload.
//   - A handler may call Publish (QoS 1 included), Subscribe and Unsubscribe
//     on its own transport, its own subscription included, without deadlock.
//   - After Unsubscribe or Close returns, the handler is not called again.
//     After Close, Publish and Subscribe return an error wrapping ErrClosed,
//     and Unsubscribe returns promptly.
//   - While the connection is down, Publish and Subscribe may fail with an
//     error wrapping ErrNotConnected instead of waiting.
//   - Overlapping subscriptions are independent: a message matching two of
//     them is delivered to each. A nil Handler is refused with an error.
package ports

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// QoS is an MQTT quality of service level. AWS IoT Core supports only 0 and 1.
type QoS byte

// The quality of service levels a transport must support.
const (
	// AtMostOnce is QoS 0: fire and forget.
	AtMostOnce QoS = 0
	// AtLeastOnce is QoS 1: acknowledged, possibly delivered more than once.
	AtLeastOnce QoS = 1
)

// Valid reports whether q is a QoS that AWS IoT Core supports (0 or 1).
func (q QoS) Valid() bool { return q == AtMostOnce || q == AtLeastOnce }

// Message is one application message, published or received.
type Message struct {
	// Topic is the topic name; it never contains wildcards.
	Topic string
	// Payload is the message body.
	Payload []byte
	// QoS is the quality of service it is published or was received with.
	QoS QoS
}

// Publisher sends messages.
type Publisher interface {
	// Publish sends m and returns when the transport has taken
	// responsibility for it: at once for QoS 0, on acknowledgement for QoS 1.
	// It returns a *LimitError for a message that breaks the transport's
	// limits, an error wrapping ErrNotConnected when the connection is down
	// and the transport does not wait, and one wrapping ErrClosed after Close.
	Publish(ctx context.Context, m Message) error
}

// Filter is what a subscription asks for.
type Filter struct {
	// Topic is an MQTT topic filter; it may contain the + and # wildcards.
	Topic string
	// QoS is the maximum QoS of the messages delivered.
	QoS QoS
	// NoLocal asks the broker not to deliver the subscriber's own
	// publications back to it (MQTT 5).
	NoLocal bool
}

// State is the state of a subscription, reported to its Handler.
type State int

// The states of a subscription after it was first established.
const (
	// StateLost means the subscription stopped receiving: the connection
	// dropped or the broker forgot the session. Messages may be missed.
	StateLost State = iota + 1
	// StateRestored means the subscription receives again after StateLost.
	// A client should re-read any state it may have missed.
	StateRestored
)

// String returns "lost" or "restored".
func (s State) String() string {
	switch s {
	case StateLost:
		return "lost"
	case StateRestored:
		return "restored"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// Handler receives the messages and state changes of one subscription.
// Its methods are never called concurrently for the same subscription.
type Handler interface {
	// HandleMessage is called for each message received.
	HandleMessage(m Message)
	// HandleState is called when the subscription is lost or restored.
	HandleState(s State)
}

// HandlerFuncs adapts two functions to a Handler. A nil field ignores its
// events.
type HandlerFuncs struct {
	// Message is called by HandleMessage.
	Message func(Message)
	// State is called by HandleState.
	State func(State)
}

// HandleMessage calls h.Message if it is set.
func (h HandlerFuncs) HandleMessage(m Message) {
	if h.Message != nil {
		h.Message(m)
	}
}

// HandleState calls h.State if it is set.
func (h HandlerFuncs) HandleState(s State) {
	if h.State != nil {
		h.State(s)
	}
}

// Subscriber receives messages.
type Subscriber interface {
	// Subscribe starts delivering messages matching f to h and returns once
	// the broker confirmed the subscription. The subscription lasts until
	// Unsubscribe or the transport's Close, across reconnects.
	Subscribe(ctx context.Context, f Filter, h Handler) (Subscription, error)
}

// Subscription is an established subscription.
type Subscription interface {
	// Unsubscribe ends the subscription. After it returns, its handler is
	// not called again. A second call returns nil.
	Unsubscribe(ctx context.Context) error
}

// PubSub is a transport that both publishes and subscribes: what the Jobs
// client and the fake Jobs service need.
type PubSub interface {
	Publisher
	Subscriber
}

// Errors shared by transports. Adapters wrap them with detail; test with
// errors.Is.
var (
	// ErrClosed is returned by a transport used after Close.
	ErrClosed = errors.New("ports: transport closed")
	// ErrNotConnected is returned by a publish attempted while the connection
	// is down, by transports that fail fast instead of waiting.
	ErrNotConnected = errors.New("ports: not connected")
	// ErrTooLarge matches every *LimitError.
	ErrTooLarge = errors.New("ports: over limit")
	// ErrInvalidTopic is returned for a topic name or filter that is not
	// valid MQTT (empty, not UTF-8, contains NUL, misplaced wildcards).
	ErrInvalidTopic = errors.New("ports: invalid topic")
	// ErrInvalidQoS is returned for a QoS other than 0 or 1.
	ErrInvalidQoS = errors.New("ports: invalid QoS")
)

// AWS IoT Core's limits, the defaults of every transport.
const (
	// MaxPayload is the largest payload of one PUBLISH, 128 KiB.
	MaxPayload = 128 * 1024
	// MaxTopicLength is the longest topic name, in bytes.
	MaxTopicLength = 256
)

// Limits bound what a transport accepts. The zero value means AWS IoT Core's
// limits (MaxPayload, MaxTopicLength).
type Limits struct {
	// MaxPayload is the largest payload in bytes; 0 means MaxPayload.
	MaxPayload int
	// MaxTopicLength is the longest topic name or filter in bytes; 0 means
	// MaxTopicLength.
	MaxTopicLength int
}

func (l Limits) payload() int {
	if l.MaxPayload > 0 {
		return l.MaxPayload
	}
	return MaxPayload
}

func (l Limits) topic() int {
	if l.MaxTopicLength > 0 {
		return l.MaxTopicLength
	}
	return MaxTopicLength
}

// LimitError reports a message refused before sending because it breaks a
// limit. errors.Is(err, ErrTooLarge) is true for it.
type LimitError struct {
	// What names the limit: "payload" or "topic".
	What string
	// Size is the size of the refused item in bytes.
	Size int
	// Max is the limit in bytes.
	Max int
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("ports: %s of %d bytes is over the limit of %d", e.What, e.Size, e.Max)
}

// Is reports whether target is ErrTooLarge.
func (e *LimitError) Is(target error) bool { return target == ErrTooLarge }

// CheckMessage reports whether m may be published under l: a valid topic
// name within the length limit, a payload within the size limit and QoS 0
// or 1. It returns nil or an error matching ErrInvalidTopic, ErrInvalidQoS or
// ErrTooLarge (a *LimitError).
func (l Limits) CheckMessage(m Message) error {
	if err := ValidateTopic(m.Topic); err != nil {
		return err
	}
	if len(m.Topic) > l.topic() {
		return &LimitError{What: "topic", Size: len(m.Topic), Max: l.topic()}
	}
	if len(m.Payload) > l.payload() {
		return &LimitError{What: "payload", Size: len(m.Payload), Max: l.payload()}
	}
	if !m.QoS.Valid() {
		return fmt.Errorf("%w: %d", ErrInvalidQoS, m.QoS)
	}
	return nil
}

// CheckFilter reports whether f may be subscribed under l.
func (l Limits) CheckFilter(f Filter) error {
	if err := ValidateFilter(f.Topic); err != nil {
		return err
	}
	if len(f.Topic) > l.topic() {
		return &LimitError{What: "topic", Size: len(f.Topic), Max: l.topic()}
	}
	if !f.QoS.Valid() {
		return fmt.Errorf("%w: %d", ErrInvalidQoS, f.QoS)
	}
	return nil
}

// ValidateTopic reports whether name is a valid MQTT topic name: not empty,
// UTF-8, no NUL and no wildcard characters.
func ValidateTopic(name string) error {
	if err := validateUTF8(name); err != nil {
		return err
	}
	if strings.ContainsAny(name, "+#") {
		return fmt.Errorf("%w: %q: wildcards in a topic name", ErrInvalidTopic, name)
	}
	return nil
}

// ValidateFilter reports whether filter is a valid MQTT topic filter: not
// empty, UTF-8, no NUL, '+' only as a whole level and '#' only as the whole
// last level.
func ValidateFilter(filter string) error {
	if err := validateUTF8(filter); err != nil {
		return err
	}
	levels := strings.Split(filter, "/")
	for i, lv := range levels {
		switch {
		case lv == "#" && i != len(levels)-1:
			return fmt.Errorf("%w: %q: '#' not last", ErrInvalidTopic, filter)
		case lv != "#" && lv != "+" && strings.ContainsAny(lv, "+#"):
			return fmt.Errorf("%w: %q: wildcard inside a level", ErrInvalidTopic, filter)
		}
	}
	return nil
}

func validateUTF8(s string) error {
	switch {
	case s == "":
		return fmt.Errorf("%w: empty", ErrInvalidTopic)
	case !utf8.ValidString(s):
		return fmt.Errorf("%w: not UTF-8", ErrInvalidTopic)
	case strings.ContainsRune(s, 0):
		return fmt.Errorf("%w: contains NUL", ErrInvalidTopic)
	}
	return nil
}

// Match reports whether the topic name matches the filter under MQTT rules:
// '+' matches one level, '#' the rest (including the parent level), and a
// filter starting with a wildcard never matches a topic starting with '$'.
// Both arguments are assumed valid.
func Match(filter, topic string) bool {
	if strings.HasPrefix(topic, "$") && (strings.HasPrefix(filter, "+") || strings.HasPrefix(filter, "#")) {
		return false
	}
	for {
		fl, frest, fmore := strings.Cut(filter, "/")
		if fl == "#" {
			return true
		}
		tl, trest, tmore := strings.Cut(topic, "/")
		if fl != "+" && fl != tl {
			return false
		}
		if !fmore || !tmore {
			// "a/#" matches "a": the parent level.
			return fmore == tmore || (!tmore && frest == "#")
		}
		filter, topic = frest, trest
	}
}
