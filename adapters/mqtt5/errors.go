package mqtt5

import (
	"errors"
	"fmt"

	"github.com/iotjobs/iotjobs/ports"
)

// Errors of the adapter. Test with errors.Is; the ports errors
// (ports.ErrClosed, ports.ErrNotConnected, ports.ErrTooLarge, ...) apply too.
var (
	// ErrInvalidConfig matches every *ConfigError.
	ErrInvalidConfig = errors.New("mqtt5: invalid configuration")
	// ErrConnectionLost is returned by a Publish, Subscribe or Unsubscribe
	// whose connection dropped before the broker acknowledged it (the
	// message may or may not have been delivered); such errors match
	// ports.ErrNotConnected too. It also matches the Err of a
	// ConnectionEvent that reports a lost connection.
	ErrConnectionLost = errors.New("mqtt5: connection lost")
	// ErrTimeout is returned by a request the broker did not acknowledge
	// within twice the keep-alive while the connection stayed up and the
	// caller's context had not ended.
	ErrTimeout = errors.New("mqtt5: no acknowledgement in time")
)

// ConfigError reports a Config that Connect refuses. errors.Is(err,
// ErrInvalidConfig) is true for it.
type ConfigError struct {
	// Field names the Config field at fault.
	Field string
	// Reason says what is wrong with it.
	Reason string
	// Err is the underlying error, if any (e.g. reading CertFile).
	Err error
}

// Error returns "mqtt5: ..." with the field and the reason.
func (e *ConfigError) Error() string {
	s := "mqtt5: invalid configuration: " + e.Field + ": " + e.Reason
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Is reports whether target is ErrInvalidConfig.
func (e *ConfigError) Is(target error) bool { return target == ErrInvalidConfig }

// Unwrap returns the underlying error.
func (e *ConfigError) Unwrap() error { return e.Err }

// ConnectError reports a failed connection attempt: the dial, the TLS
// handshake (a *tls.CertificateVerificationError when the server's
// certificate is not trusted or does not carry the endpoint's name; a
// "remote error: tls: ..." when the broker refused the client certificate)
// or the CONNACK (ReasonCode >= 0x80).
type ConnectError struct {
	// Endpoint is the address the attempt was made to.
	Endpoint string
	// ReasonCode is the CONNACK reason code when the broker refused the
	// connection (0x80 or more), 0 otherwise.
	ReasonCode byte
	// Reason is the CONNACK's reason string, if any.
	Reason string
	// Err is the underlying error.
	Err error
}

// Error returns "mqtt5: ..." with the endpoint and why the attempt failed.
func (e *ConnectError) Error() string {
	s := "mqtt5: connect to " + e.Endpoint + ": "
	if e.ReasonCode >= 0x80 {
		s += "refused by the broker with " + reasonText(e.ReasonCode)
		if e.Reason != "" {
			s += ": " + e.Reason
		}
		return s
	}
	return s + errText(e.Err)
}

// Unwrap returns the underlying error.
func (e *ConnectError) Unwrap() error { return e.Err }

// PublishError reports a QoS 1 publication the broker refused with a
// PUBACK reason code of 0x80 or more (0x87 not authorized, 0x97 quota
// exceeded, ...). A PUBACK with 0x10, no matching subscribers, is success.
type PublishError struct {
	// Topic is the topic published to.
	Topic string
	// ReasonCode is the PUBACK reason code.
	ReasonCode byte
	// Reason is the PUBACK's reason string, if any.
	Reason string
}

// Error returns "mqtt5: ..." with the topic and the reason code.
func (e *PublishError) Error() string {
	s := fmt.Sprintf("mqtt5: publish %q: refused by the broker with %s", e.Topic, reasonText(e.ReasonCode))
	if e.Reason != "" {
		s += ": " + e.Reason
	}
	return s
}

// SubscribeError reports a topic filter the broker refused with a SUBACK
// reason code of 0x80 or more.
type SubscribeError struct {
	// Filter is the topic filter.
	Filter string
	// ReasonCode is the SUBACK reason code for it.
	ReasonCode byte
	// Reason is the SUBACK's reason string, if any.
	Reason string
}

// Error returns "mqtt5: ..." with the filter and the reason code.
func (e *SubscribeError) Error() string {
	s := fmt.Sprintf("mqtt5: subscribe %q: refused by the broker with %s", e.Filter, reasonText(e.ReasonCode))
	if e.Reason != "" {
		s += ": " + e.Reason
	}
	return s
}

// DisconnectError reports a DISCONNECT sent by the broker, in the Err of
// a ConnectionEvent. errors.Is(err, ErrConnectionLost) is true for it.
type DisconnectError struct {
	// ReasonCode is the DISCONNECT reason code (0x8B server shutting
	// down, 0x8E session taken over, ...).
	ReasonCode byte
	// Reason is the DISCONNECT's reason string, if any.
	Reason string
}

// Error returns "mqtt5: ..." with the reason code.
func (e *DisconnectError) Error() string {
	s := "mqtt5: disconnected by the broker with " + reasonText(e.ReasonCode)
	if e.Reason != "" {
		s += ": " + e.Reason
	}
	return s
}

// Is reports whether target is ErrConnectionLost.
func (e *DisconnectError) Is(target error) bool { return target == ErrConnectionLost }

// errNilHandler is the reason a Subscribe with a nil handler is refused.
var errNilHandler = errors.New("nil handler")

// lostError wraps err as a request whose connection dropped.
func lostError(op, topic string, err error) error {
	if err == nil {
		return fmt.Errorf("mqtt5: %s %q: %w before the broker acknowledged it (%w)", op, topic, ErrConnectionLost, ports.ErrNotConnected)
	}
	return fmt.Errorf("mqtt5: %s %q: %w before the broker acknowledged it (%w): %v", op, topic, ErrConnectionLost, ports.ErrNotConnected, err)
}

func errText(err error) string {
	if err == nil {
		return "unknown error"
	}
	return err.Error()
}

// reasonNames are the MQTT 5 reason codes' names (MQTT 5 §2.4).
var reasonNames = map[byte]string{
	0x00: "success",
	0x01: "granted QoS 1",
	0x04: "disconnect with will message",
	0x10: "no matching subscribers",
	0x11: "no subscription existed",
	0x80: "unspecified error",
	0x81: "malformed packet",
	0x82: "protocol error",
	0x83: "implementation specific error",
	0x84: "unsupported protocol version",
	0x85: "client identifier not valid",
	0x86: "bad user name or password",
	0x87: "not authorized",
	0x88: "server unavailable",
	0x89: "server busy",
	0x8A: "banned",
	0x8B: "server shutting down",
	0x8C: "bad authentication method",
	0x8D: "keep alive timeout",
	0x8E: "session taken over",
	0x8F: "topic filter invalid",
	0x90: "topic name invalid",
	0x91: "packet identifier in use",
	0x92: "packet identifier not found",
	0x93: "receive maximum exceeded",
	0x94: "topic alias invalid",
	0x95: "packet too large",
	0x96: "message rate too high",
	0x97: "quota exceeded",
	0x98: "administrative action",
	0x99: "payload format invalid",
	0x9A: "retain not supported",
	0x9B: "QoS not supported",
	0x9C: "use another server",
	0x9D: "server moved",
	0x9E: "shared subscriptions not supported",
	0x9F: "connection rate exceeded",
	0xA0: "maximum connect time",
	0xA1: "subscription identifiers not supported",
	0xA2: "wildcard subscriptions not supported",
}

// reasonText returns "reason 0x87 (not authorized)".
func reasonText(code byte) string {
	if name, ok := reasonNames[code]; ok {
		return fmt.Sprintf("reason 0x%02X (%s)", code, name)
	}
	return fmt.Sprintf("reason 0x%02X", code)
}
