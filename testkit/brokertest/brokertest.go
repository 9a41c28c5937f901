// Package brokertest starts MQTT 5 brokers for tests, benchmarks and the
// emulator: an in-process mochi-mqtt broker (Start), optionally behind TLS
// that requires client certificates, and Debian's mosquitto as an
// independent broker to check interoperability (StartMosquitto).
//
// The in-process broker is controlled from Go: DropClient cuts a client's
// network connection, DisconnectClient sends it a DISCONNECT with a reason
// code, Restart stops the broker (losing every session) and starts it again
// on the same address, so tests can exercise a transport's reconnects.
//
//	set, _ := pki.NewSet("thing-1")
//	b, err := brokertest.Start(brokertest.Options{TLS: set.CA.ServerTLS(set.Server)})
//	if err != nil { ... }
//	defer b.Close()
//	// connect clients to b.Addr() with set.Client and set.CA.Pool()
//
// # Repairs to mochi v2.7.9
//
// The in-process broker works around three defects of the mochi version
// the module pins, so that it behaves as MQTT 5 says:
//
//   - Two lock-order bugs (recursive read locks in Inflight.NextImmediate
//     and Clients.GetByListener) deadlock mochi under concurrent QoS 1
//     traffic. The broker processes one client's packets at a time: a lock
//     held while a connection's bytes are processed, released while it
//     waits to read (deliveries are written by each client's own writer).
//     Close and Restart disconnect the clients themselves.
//   - A filter ending in "+/#" does not match its parent level ("a/+/#"
//     misses "a/x"): such a subscription also subscribes the parent filter,
//     invisibly.
//   - The broker's maximum packet size (Options.Capabilities) is enforced
//     but not announced: the broker announces it in CONNACK.
//
// One difference remains and is MQTT-conformant: once a client has as many
// QoS 1 messages in flight as its receive maximum allows, mochi holds
// further QoS 1 messages back but sends QoS 0 ones at once, so messages of
// different QoS may overtake each other.
package brokertest

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Errors of the Broker's methods.
var (
	// ErrUnknownClient is returned for a client ID that is not connected.
	ErrUnknownClient = errors.New("brokertest: client not connected")
	// ErrClosed is returned by the methods of a closed Broker.
	ErrClosed = errors.New("brokertest: broker closed")
)

// Options configure an in-process broker. The zero value serves plain MQTT
// on a free port of 127.0.0.1 and allows every client.
type Options struct {
	// TLS, if set, makes the main listener serve TLS with this
	// configuration (usually one that requires client certificates, such
	// as pki.CA.ServerTLS returns). Nil serves plain TCP.
	TLS *tls.Config
	// Addr is the main listener's address; empty means "127.0.0.1:0", a
	// free port that Addr reports.
	Addr string
	// Listeners are extra listeners (such as a WebSocket listener) added
	// at Start. A mochi listener cannot be served again once closed, so
	// Restart does not bring these back: use NewListeners for listeners
	// that must survive a restart.
	Listeners []listeners.Listener
	// NewListeners, if set, is called at Start and at every Restart for
	// extra listeners to add. They should listen on fixed addresses so
	// that clients find them again after a restart.
	NewListeners func() ([]listeners.Listener, error)
	// Authenticate, if set, decides whether a client may connect, from its
	// client ID and the certificate chain it presented over TLS (nil on a
	// listener without TLS). Refused clients get CONNACK reason 0x87 (not
	// authorized). Nil allows every client. Every client may publish and
	// subscribe to every topic.
	Authenticate func(clientID string, certs []*x509.Certificate) bool
	// ACL, if set, decides whether a client may publish (write) to a topic
	// or subscribe to a filter. Refused QoS 1 publications get PUBACK
	// reason 0x87, refused filters SUBACK 0x87. Nil allows everything.
	ACL func(clientID, topic string, write bool) bool
	// Hooks are added to the broker after its authentication hook, for
	// tests that watch or alter what the broker does (see mqtt.HookBase).
	Hooks []mqtt.Hook
	// Capabilities, if set, may change the broker's capabilities before it
	// starts (e.g. its maximum packet size, which the broker then announces
	// in CONNACK, or its receive maximum). NoInheritedPropertiesOnAck is
	// always set.
	Capabilities func(*mqtt.Capabilities)
	// Logger receives the broker's log; nil discards it.
	Logger *slog.Logger
}

// Broker is a running in-process MQTT 5 broker (mochi-mqtt, with an
// allow-all authentication hook unless Options say otherwise, and
// caps.Compatibilities.NoInheritedPropertiesOnAck set). Its methods are
// safe for concurrent use.
type Broker struct {
	opts Options

	mu     sync.Mutex
	server *mqtt.Server
	auth   *authHook // the current server's
	gate   *gate     // the current server's
	ids    []string  // the current server's listeners
	addr   string
	closed bool
}

// Start starts a broker with the given options and returns once it
// listens.
func Start(opts Options) (*Broker, error) {
	b := &Broker{opts: opts}
	addr := opts.Addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	if err := b.serve(addr, opts.Listeners); err != nil {
		return nil, err
	}
	return b, nil
}

// serve starts a server whose main listener listens on addr, with extra
// listeners, and makes it the Broker's.
func (b *Broker) serve(addr string, extra []listeners.Listener) error {
	logger := b.opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	caps := mqtt.NewDefaultServerCapabilities()
	if b.opts.Capabilities != nil {
		b.opts.Capabilities(caps)
	}
	caps.Compatibilities.NoInheritedPropertiesOnAck = true
	s := mqtt.New(&mqtt.Options{Capabilities: caps, Logger: logger})
	auth := &authHook{check: b.opts.Authenticate, acl: b.opts.ACL}
	g := &gate{}
	if err := s.AddHook(auth, nil); err != nil {
		return fmt.Errorf("brokertest: %w", err)
	}
	if err := s.AddHook(newParentHook(s), nil); err != nil {
		return fmt.Errorf("brokertest: %w", err)
	}
	if caps.MaximumPacketSize > 0 {
		if err := s.AddHook(&connackHook{maxPacket: caps.MaximumPacketSize}, nil); err != nil {
			return fmt.Errorf("brokertest: %w", err)
		}
	}
	for _, h := range b.opts.Hooks {
		if err := s.AddHook(h, nil); err != nil {
			return fmt.Errorf("brokertest: hook %s: %w", h.ID(), err)
		}
	}
	main := listeners.NewTCP(listeners.Config{ID: "main", Address: addr, TLSConfig: b.opts.TLS})
	if err := s.AddListener(g.listener(main)); err != nil {
		s.Close()
		return fmt.Errorf("brokertest: listen on %s: %w", addr, err)
	}
	if b.opts.NewListeners != nil {
		more, err := b.opts.NewListeners()
		if err != nil {
			s.Close()
			return fmt.Errorf("brokertest: new listeners: %w", err)
		}
		extra = append(append([]listeners.Listener(nil), extra...), more...)
	}
	for _, l := range extra {
		if err := s.AddListener(g.listener(l)); err != nil {
			s.Close()
			return fmt.Errorf("brokertest: listener %s: %w", l.ID(), err)
		}
	}
	if err := s.Serve(); err != nil {
		s.Close()
		return fmt.Errorf("brokertest: serve: %w", err)
	}
	b.ids = []string{main.ID()}
	for _, l := range extra {
		b.ids = append(b.ids, l.ID())
	}
	b.server, b.auth, b.gate, b.addr = s, auth, g, main.Address()
	return nil
}

// shutdown stops the current server: it refuses new clients, closes the
// listeners and disconnects every client with reason 0x8B (server shutting
// down) while holding the gate, then lets mochi wait for the clients'
// goroutines. (mochi's own Close would look the clients up with
// Clients.GetByListener, which can deadlock.) b.mu is held.
func (b *Broker) shutdown() {
	s := b.server
	b.gate.mu.Lock()
	b.auth.closing.Store(true)
	for _, id := range b.ids {
		s.Listeners.Close(id, func(string) {})
	}
	for _, cl := range s.Clients.GetAll() {
		if !cl.Closed() && !cl.Net.Inline {
			s.DisconnectClient(cl, packets.ErrServerShuttingDown)
		}
	}
	b.gate.mu.Unlock()
	s.Close()
}

// Addr returns the main listener's address, host:port.
func (b *Broker) Addr() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.addr
}

// Server returns the mochi server currently running (a new one after each
// Restart), for what this package does not offer, such as its inline
// client or its listeners.
func (b *Broker) Server() *mqtt.Server {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.server
}

// Connected reports whether a client with this ID is connected.
func (b *Broker) Connected(clientID string) bool {
	_, err := b.client(clientID)
	return err == nil
}

func (b *Broker) client(id string) (*mqtt.Client, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, ErrClosed
	}
	cl, ok := b.server.Clients.Get(id)
	if !ok || cl.Closed() {
		return nil, fmt.Errorf("%w: %q", ErrUnknownClient, id)
	}
	return cl, nil
}

// DropClient closes the network connection of the client with this ID,
// without a DISCONNECT packet, as a network failure would. It returns an
// error wrapping ErrUnknownClient if no such client is connected.
func (b *Broker) DropClient(clientID string) error {
	cl, err := b.client(clientID)
	if err != nil {
		return err
	}
	b.mu.Lock()
	g := b.gate
	b.mu.Unlock()
	g.mu.Lock()
	defer g.mu.Unlock()
	cl.Stop(errors.New("brokertest: connection dropped"))
	return nil
}

// DisconnectClient sends the client with this ID a DISCONNECT packet with
// the given reason code (e.g. 0x8E, session taken over, or 0x8B, server
// shutting down) and closes its connection.
func (b *Broker) DisconnectClient(clientID string, reason byte) error {
	cl, err := b.client(clientID)
	if err != nil {
		return err
	}
	b.mu.Lock()
	s, g := b.server, b.gate
	b.mu.Unlock()
	g.mu.Lock()
	defer g.mu.Unlock()
	code := packets.Code{Code: reason, Reason: fmt.Sprintf("brokertest: disconnect with reason 0x%02X", reason)}
	err = s.DisconnectClient(cl, code)
	var c packets.Code
	if errors.As(err, &c) && c.Code == reason {
		err = nil // mochi returns the code itself for reasons >= 0x80
	}
	return err
}

// Restart stops the broker, dropping every connection (each client gets a
// DISCONNECT with reason 0x8B, server shutting down) and forgetting every
// session, then starts a new one on the same address with the same
// options. Extra listeners from Options.Listeners are not restarted; those
// of Options.NewListeners are made anew.
func (b *Broker) Restart() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return ErrClosed
	}
	b.shutdown()
	if err := b.serve(b.addr, nil); err != nil {
		b.closed = true
		return err
	}
	return nil
}

// Close stops the broker and closes every client connection. A second
// Close does nothing. It returns nil.
func (b *Broker) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	b.shutdown()
	return nil
}

// authHook allows every client, or those its check accepts, and every
// topic, or those its acl accepts.
type authHook struct {
	mqtt.HookBase
	check   func(clientID string, certs []*x509.Certificate) bool
	acl     func(clientID, topic string, write bool) bool
	closing atomic.Bool // refuse every client: the server is stopping
}

func (h *authHook) ID() string { return "brokertest-auth" }

func (h *authHook) Provides(b byte) bool {
	return bytes.Contains([]byte{mqtt.OnConnectAuthenticate, mqtt.OnACLCheck}, []byte{b})
}

func (h *authHook) OnConnectAuthenticate(cl *mqtt.Client, _ packets.Packet) bool {
	if h.closing.Load() {
		return false
	}
	if h.check == nil {
		return true
	}
	var certs []*x509.Certificate
	if tc, ok := cl.Net.Conn.(interface{ ConnectionState() tls.ConnectionState }); ok {
		certs = tc.ConnectionState().PeerCertificates
	}
	return h.check(cl.ID, certs)
}

func (h *authHook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	return h.acl == nil || h.acl(cl.ID, topic, write)
}

// FreeAddr returns a loopback address with a port that was free when it was
// asked for, for a process (such as mosquitto) that must be told its port.
func FreeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("brokertest: free port: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}
