package sigv4test

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/mochi-mqtt/server/v2/listeners"

	"github.com/iotjobs/iotjobs/adapters/sigv4ws"
)

// Config configures a Listener.
type Config struct {
	// ID names the listener in the broker; empty means "sigv4ws".
	ID string

	// Address is the address to listen on, such as "127.0.0.1:0" (the
	// default) for a port of the system's choice; Address reports the one
	// bound.
	Address string

	// TLSConfig, if set, makes the listener serve wss (TLS); nil serves
	// plain ws, for unit tests.
	TLSConfig *tls.Config

	// Region is the region the requests must be signed for; empty means
	// "us-east-1".
	Region string

	// Credentials knows the access keys that may connect. Nil refuses
	// every request.
	Credentials Lookup

	// Now is the verifier's clock; nil means time.Now.
	Now func() time.Time

	// OnVerify, if set, is called with the access key id of every upgrade
	// request on the MQTT path (empty if the request had none) and the
	// result of its verification. It may be called from many goroutines
	// at once.
	OnVerify func(accessKeyID string, err error)
}

// Listener is a mochi-mqtt listener (listeners.Listener) that accepts MQTT
// over WebSocket on path /mqtt the way AWS IoT Core does with IAM
// credentials: it checks the presigned query of the upgrade request with
// Verify and answers HTTP 403 with a one-line reason when it is not valid,
// requires the WebSocket subprotocol "mqtt", and hands the connection to
// the broker as a net.Conn carrying binary frames.
//
//	l := sigv4test.NewListener(sigv4test.Config{
//		Credentials: sigv4test.StaticLookup(creds),
//		TLSConfig:   serverTLS,
//	})
//	if err := server.AddListener(l); err != nil { ... }
//	if err := server.Serve(); err != nil { ... }
//	endpoint := l.Address() // "127.0.0.1:PORT", once added
type Listener struct {
	cfg Config
	log *slog.Logger

	mu        sync.Mutex
	ln        net.Listener
	srv       *http.Server
	establish listeners.EstablishFn
	conns     map[*brokerConn]struct{}
	closed    bool
	// pending counts the requests that have not yet handed their
	// connection over to the broker.
	pending sync.WaitGroup

	upgrader websocket.Upgrader
}

var _ listeners.Listener = (*Listener)(nil)

// NewListener returns a Listener; the broker opens it (Init) when it is
// added with AddListener.
func NewListener(cfg Config) *Listener {
	if cfg.ID == "" {
		cfg.ID = "sigv4ws"
	}
	if cfg.Address == "" {
		cfg.Address = "127.0.0.1:0"
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Credentials == nil {
		cfg.Credentials = StaticLookup()
	}
	l := &Listener{cfg: cfg, conns: make(map[*brokerConn]struct{})}
	l.upgrader = websocket.Upgrader{
		HandshakeTimeout: 10 * time.Second,
		Subprotocols:     []string{sigv4ws.Subprotocol},
		// Devices send no Origin; a browser client may send any.
		CheckOrigin: func(*http.Request) bool { return true },
	}
	return l
}

// ID returns the listener's id.
func (l *Listener) ID() string { return l.cfg.ID }

// Address returns the address the listener is bound to once Init ran (the
// broker's AddListener), the configured one before.
func (l *Listener) Address() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ln != nil {
		return l.ln.Addr().String()
	}
	return l.cfg.Address
}

// Protocol returns "wss", or "ws" without TLS.
func (l *Listener) Protocol() string {
	if l.cfg.TLSConfig != nil {
		return "wss"
	}
	return "ws"
}

// Init opens the network address; the broker calls it.
func (l *Listener) Init(log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ln, err := net.Listen("tcp", l.cfg.Address)
	if err != nil {
		return fmt.Errorf("sigv4test: listen: %w", err)
	}
	if l.cfg.TLSConfig != nil {
		tc := l.cfg.TLSConfig.Clone()
		tc.NextProtos = []string{"http/1.1"}
		ln = tls.NewListener(ln, tc)
	}
	mux := http.NewServeMux()
	mux.HandleFunc(sigv4ws.Path, l.serveMQTT)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.log = log
	l.ln = ln
	l.srv = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	return nil
}

// Serve accepts connections until Close; the broker calls it.
func (l *Listener) Serve(establish listeners.EstablishFn) {
	l.mu.Lock()
	if l.srv == nil || l.closed {
		l.mu.Unlock()
		return
	}
	l.establish = establish
	srv, ln := l.srv, l.ln
	l.mu.Unlock()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		l.log.Error("sigv4test: serve", "error", err)
	}
}

// Close stops accepting, has the broker close this listener's clients
// (closeClients) and closes every connection left; the broker calls it.
//
// It waits until each request in progress has either ended or handed its
// connection to the broker (the broker's first read of it), so that the
// broker, whose Close then waits for its clients, counts them all; it does
// not wait for the clients to end, which could deadlock a caller holding a
// lock they need.
func (l *Listener) Close(closeClients listeners.CloseFn) {
	l.mu.Lock()
	already := l.closed
	l.closed = true
	srv, ln := l.srv, l.ln
	l.mu.Unlock()
	if already {
		return
	}
	if srv != nil {
		_ = srv.Close()
	}
	if ln != nil {
		_ = ln.Close() // in case Serve never ran
	}
	if closeClients != nil {
		closeClients(l.cfg.ID)
	}
	l.mu.Lock()
	conns := make([]*brokerConn, 0, len(l.conns))
	for c := range l.conns {
		conns = append(conns, c)
	}
	l.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
	l.pending.Wait()
}

// serveMQTT verifies and upgrades one request, then serves the connection
// until the broker is done with it.
func (l *Listener) serveMQTT(w http.ResponseWriter, r *http.Request) {
	err := Verify(r, l.cfg.Credentials, l.cfg.Region, l.cfg.Now())
	if l.cfg.OnVerify != nil {
		l.cfg.OnVerify(accessKeyID(r), err)
	}
	if err != nil {
		l.log.Debug("sigv4test: refused", "remote", r.RemoteAddr, "error", err)
		http.Error(w, err.Error(), http.StatusForbidden)
		return
	}
	if !slices.Contains(websocket.Subprotocols(r), sigv4ws.Subprotocol) {
		http.Error(w, "sigv4test: WebSocket subprotocol \"mqtt\" required", http.StatusBadRequest)
		return
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		http.Error(w, "sigv4test: closing", http.StatusServiceUnavailable)
		return
	}
	establish := l.establish
	l.pending.Add(1)
	l.mu.Unlock()
	var once sync.Once
	handedOver := func() { once.Do(l.pending.Done) }
	defer handedOver()

	ws, err := l.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader answered the client
	}
	conn := &brokerConn{Conn: sigv4ws.NewConn(ws), firstRead: handedOver}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		_ = conn.Close()
		return
	}
	l.conns[conn] = struct{}{}
	l.mu.Unlock()
	defer func() {
		l.mu.Lock()
		delete(l.conns, conn)
		l.mu.Unlock()
		_ = conn.Close()
	}()
	if err := establish(l.cfg.ID, conn); err != nil {
		l.log.Debug("sigv4test: connection ended", "remote", r.RemoteAddr, "error", err)
	}
}

// brokerConn is the connection handed to the broker. Its first Read tells
// the listener that the broker took it: mochi reads a connection only
// after it counted the client among those its Close waits for.
type brokerConn struct {
	*sigv4ws.Conn
	firstRead func()
}

// Read calls firstRead, then reads.
func (c *brokerConn) Read(p []byte) (int, error) {
	c.firstRead()
	return c.Conn.Read(p)
}

// accessKeyID returns the access key id of a presigned request, or "".
func accessKeyID(r *http.Request) string {
	params, err := parseQuery(r.URL.RawQuery)
	if err != nil {
		return ""
	}
	id, _, _ := strings.Cut(params["X-Amz-Credential"], "/")
	return id
}
