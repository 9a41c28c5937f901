package mqtt5

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/iotjobs/iotjobs/ports"
)

// Defaults and bounds of Config.
const (
	// DefaultPort is the port of an Endpoint without one: MQTT over TLS.
	DefaultPort = 8883
	// ALPNPort is the port on which the TLS dialer offers ALPN
	// ALPNProtocol, as AWS IoT Core requires for MQTT with client
	// certificates on 443.
	ALPNPort = 443
	// ALPNProtocol is AWS IoT Core's ALPN protocol name for MQTT with X.509
	// client certificates.
	ALPNProtocol = "x-amzn-mqtt-ca"
	// DefaultKeepAlive is the keep-alive of a zero Config.KeepAlive.
	DefaultKeepAlive = 60 * time.Second
	// MinKeepAlive and MaxKeepAlive bound Config.KeepAlive (AWS IoT Core's
	// range).
	MinKeepAlive = 30 * time.Second
	// MaxKeepAlive is the longest keep-alive.
	MaxKeepAlive = 1200 * time.Second
	// DefaultConnectTimeout bounds one connection attempt when
	// Config.ConnectTimeout is zero.
	DefaultConnectTimeout = 10 * time.Second
	// DefaultReconnectMin and DefaultReconnectMax bound the reconnect
	// backoff when Config.ReconnectMin or ReconnectMax is zero.
	DefaultReconnectMin = time.Second
	// DefaultReconnectMax is the longest pause between reconnect attempts.
	DefaultReconnectMax = 2 * time.Minute
	// DefaultReceiveMaximum is the receive maximum sent in CONNECT when
	// Config.ReceiveMaximum is zero: how many QoS 1 messages the broker
	// may have in flight towards the client.
	DefaultReceiveMaximum = 64
	// MaxClientIDLength is the longest client ID, in bytes.
	MaxClientIDLength = 128
	// MaxFiltersPerSubscribe is how many topic filters one SUBSCRIBE
	// carries at most (AWS IoT Core's limit).
	MaxFiltersPerSubscribe = 8
)

// Dialer opens the network connection of one connection attempt; the
// adapter calls it for every attempt (first connect and every reconnect),
// with a context bounded by Config.ConnectTimeout. The connection it returns
// carries MQTT packets both ways (a TLS or WebSocket connection, say).
//
// paho writes one MQTT packet with several Write calls. If the returned
// net.Conn implements sync.Locker, the adapter uses it as it is: paho locks
// it around the writes of each packet, so its Lock must exclude every other
// packet's writes (a WebSocket connection may buffer from Lock to Unlock and
// send one frame). Otherwise the adapter wraps it with a mutex of its own.
type Dialer interface {
	Dial(ctx context.Context) (net.Conn, error)
}

// DialerFunc adapts a function to a Dialer.
type DialerFunc func(ctx context.Context) (net.Conn, error)

// Dial calls f(ctx).
func (f DialerFunc) Dial(ctx context.Context) (net.Conn, error) { return f(ctx) }

// Config configures a Client. ClientID is required, and, unless Dialer is
// set, Endpoint and a client certificate.
type Config struct {
	// Endpoint is the broker's address, host[:port]; the port defaults to
	// DefaultPort (8883). For AWS IoT Core: "xxxx-ats.iot.REGION.amazonaws.com".
	// On port 443 the TLS dialer offers ALPN "x-amzn-mqtt-ca". With Dialer
	// set it is only used in logs and errors.
	Endpoint string
	// ServerName is the name the server's certificate must carry; empty
	// means the Endpoint's host.
	ServerName string
	// ClientID is the MQTT client ID, required, at most 128 bytes. AWS IoT
	// policies usually require the thing name.
	ClientID string

	// Certificate is the client certificate and its key. Either it or
	// CertFile and KeyFile (PEM files) are required with the TLS dialer.
	Certificate *tls.Certificate
	// CertFile and KeyFile are PEM files of the client certificate (with
	// its chain, if any) and its private key.
	CertFile, KeyFile string
	// RootCAs are the certificate authorities the server's certificate
	// must chain to. Nil means CAFile, or the system's roots if CAFile is
	// empty too (they include Amazon Root CA 1).
	RootCAs *x509.CertPool
	// CAFile is a PEM file of certificate authorities, used when RootCAs
	// is nil (e.g. AmazonRootCA1.pem, or a test CA).
	CAFile string

	// Dialer, if set, replaces the TLS dialer: Endpoint (except in logs),
	// ServerName, the certificate fields, RootCAs and CAFile are then
	// unused. The SigV4 WebSocket transport plugs in here.
	Dialer Dialer

	// KeepAlive is the MQTT keep-alive, whole seconds from 30s to 1200s
	// (AWS IoT Core's range); zero means DefaultKeepAlive (60s). A request
	// not acknowledged within twice the keep-alive fails with ErrTimeout.
	KeepAlive time.Duration
	// SessionExpiry is how long the broker keeps the session (its
	// subscriptions and QoS 1 messages queued for the client) after the
	// connection drops, in whole seconds; zero ends the session with the
	// connection. Whatever it is, subscriptions are restored after every
	// reconnect.
	SessionExpiry time.Duration
	// CleanStart discards any session the broker holds for ClientID when
	// the Client first connects. Reconnects always ask to resume the
	// session, which matters only with a SessionExpiry.
	CleanStart bool

	// ConnectTimeout bounds one connection attempt: dial, TLS handshake,
	// CONNECT and CONNACK. Zero means DefaultConnectTimeout (10s).
	ConnectTimeout time.Duration
	// ReconnectMin and ReconnectMax bound the pause before each reconnect
	// attempt: the n-th attempt after a drop waits a random time between
	// ReconnectMin and min(ReconnectMax, ReconnectMin·2ⁿ). Zero values
	// mean DefaultReconnectMin (1s) and DefaultReconnectMax (2m);
	// ReconnectMax must not be below ReconnectMin.
	ReconnectMin, ReconnectMax time.Duration
	// ReceiveMaximum is how many QoS 1 messages the broker may send before
	// the client acknowledges them (it also sizes paho's inbound buffer);
	// zero means DefaultReceiveMaximum (64).
	ReceiveMaximum uint16
	// Limits bound what the client publishes and subscribes; the zero
	// value means AWS IoT Core's limits. The broker's maximum packet size,
	// from CONNACK, applies too.
	Limits ports.Limits

	// Logger receives the client's log (connections, reconnects,
	// restored subscriptions); nil discards it. Key material is never
	// logged.
	Logger *slog.Logger
	// OnConnectionChange, if set, is called when the client connects
	// (the first time included) and when it disconnects, with the reason.
	// It is called from one goroutine, one call at a time, in order, and
	// must not block for long: reconnecting waits for it. It may call
	// Close, which then does not wait for it.
	OnConnectionChange func(ConnectionEvent)
}

// ConnectionEvent reports a change of the connection to
// Config.OnConnectionChange.
type ConnectionEvent struct {
	// Connected is true when the client connected, false when it
	// disconnected.
	Connected bool
	// SessionPresent is the CONNACK's session present flag: the broker
	// resumed the session. Subscriptions are restored in any case.
	SessionPresent bool
	// Err is why the connection ended: a *DisconnectError when the broker
	// sent a DISCONNECT, an error matching ErrConnectionLost for a network
	// failure, or one matching ports.ErrClosed after Close. Nil when
	// Connected.
	Err error
	// At is when it happened.
	At time.Time
}

// settings is a validated Config with its defaults applied.
type settings struct {
	endpoint       string
	clientID       string
	keepAlive      uint16
	sessionExpiry  uint32
	cleanStart     bool
	connectTimeout time.Duration
	ackTimeout     time.Duration
	reconnectMin   time.Duration
	reconnectMax   time.Duration
	receiveMax     uint16
	limits         ports.Limits
	log            *slog.Logger
	onChange       func(ConnectionEvent)
	dialer         Dialer
}

// settings validates cfg and applies its defaults. It reads the
// certificate and CA files of the TLS dialer.
func (cfg Config) settings() (*settings, error) {
	s := &settings{
		endpoint:       cfg.Endpoint,
		clientID:       cfg.ClientID,
		cleanStart:     cfg.CleanStart,
		connectTimeout: cfg.ConnectTimeout,
		reconnectMin:   cfg.ReconnectMin,
		reconnectMax:   cfg.ReconnectMax,
		receiveMax:     cfg.ReceiveMaximum,
		limits:         cfg.Limits,
		log:            cfg.Logger,
		onChange:       cfg.OnConnectionChange,
		dialer:         cfg.Dialer,
	}
	switch {
	case cfg.ClientID == "":
		return nil, &ConfigError{Field: "ClientID", Reason: "required"}
	case len(cfg.ClientID) > MaxClientIDLength:
		return nil, &ConfigError{Field: "ClientID", Reason: fmt.Sprintf("%d bytes, more than %d", len(cfg.ClientID), MaxClientIDLength)}
	case !utf8.ValidString(cfg.ClientID) || strings.ContainsRune(cfg.ClientID, 0):
		return nil, &ConfigError{Field: "ClientID", Reason: "not UTF-8 without NUL"}
	}

	keepAlive := cfg.KeepAlive
	if keepAlive == 0 {
		keepAlive = DefaultKeepAlive
	}
	if keepAlive < MinKeepAlive || keepAlive > MaxKeepAlive {
		return nil, &ConfigError{Field: "KeepAlive", Reason: fmt.Sprintf("%v is outside %v–%v", keepAlive, MinKeepAlive, MaxKeepAlive)}
	}
	s.keepAlive = uint16(keepAlive / time.Second)
	s.ackTimeout = 2 * time.Duration(s.keepAlive) * time.Second

	if cfg.SessionExpiry < 0 || cfg.SessionExpiry/time.Second > math.MaxUint32 {
		return nil, &ConfigError{Field: "SessionExpiry", Reason: fmt.Sprintf("%v is outside 0–%ds", cfg.SessionExpiry, uint32(math.MaxUint32))}
	}
	s.sessionExpiry = uint32(cfg.SessionExpiry / time.Second)

	if s.connectTimeout < 0 {
		return nil, &ConfigError{Field: "ConnectTimeout", Reason: fmt.Sprintf("%v is negative", s.connectTimeout)}
	}
	if s.connectTimeout == 0 {
		s.connectTimeout = DefaultConnectTimeout
	}
	if s.reconnectMin < 0 || s.reconnectMax < 0 {
		return nil, &ConfigError{Field: "ReconnectMin", Reason: "negative backoff"}
	}
	if s.reconnectMin == 0 {
		s.reconnectMin = DefaultReconnectMin
	}
	if s.reconnectMax == 0 {
		s.reconnectMax = max(DefaultReconnectMax, s.reconnectMin)
	}
	if s.reconnectMax < s.reconnectMin {
		return nil, &ConfigError{Field: "ReconnectMax", Reason: fmt.Sprintf("%v is below ReconnectMin %v", s.reconnectMax, s.reconnectMin)}
	}
	if s.receiveMax == 0 {
		s.receiveMax = DefaultReceiveMaximum
	}
	if s.limits.MaxPayload < 0 || s.limits.MaxTopicLength < 0 {
		return nil, &ConfigError{Field: "Limits", Reason: "negative limit"}
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}

	if s.dialer == nil {
		d, err := cfg.tlsDialer()
		if err != nil {
			return nil, err
		}
		s.dialer = d
		s.endpoint = d.addr
	}
	if s.endpoint == "" {
		s.endpoint = "(dialer)"
	}
	s.log = s.log.With("client_id", s.clientID, "endpoint", s.endpoint)
	return s, nil
}

// tlsDialer dials TCP and completes a TLS handshake.
type tlsDialer struct {
	addr string
	cfg  *tls.Config
}

func (d *tlsDialer) Dial(ctx context.Context) (net.Conn, error) {
	td := tls.Dialer{Config: d.cfg}
	return td.DialContext(ctx, "tcp", d.addr)
}

func (cfg Config) tlsDialer() (*tlsDialer, error) {
	host, port, err := splitEndpoint(cfg.Endpoint)
	if err != nil {
		return nil, err
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: host, RootCAs: cfg.RootCAs}
	if cfg.ServerName != "" {
		tc.ServerName = cfg.ServerName
	}
	if port == ALPNPort {
		tc.NextProtos = []string{ALPNProtocol}
	}
	switch {
	case cfg.Certificate != nil && (cfg.CertFile != "" || cfg.KeyFile != ""):
		return nil, &ConfigError{Field: "Certificate", Reason: "set either Certificate or CertFile and KeyFile, not both"}
	case cfg.Certificate != nil:
		if len(cfg.Certificate.Certificate) == 0 || cfg.Certificate.PrivateKey == nil {
			return nil, &ConfigError{Field: "Certificate", Reason: "needs a certificate and its private key"}
		}
		tc.Certificates = []tls.Certificate{*cfg.Certificate}
	case cfg.CertFile == "" && cfg.KeyFile == "":
		return nil, &ConfigError{Field: "Certificate", Reason: "a client certificate is required (Certificate, or CertFile and KeyFile)"}
	case cfg.CertFile == "" || cfg.KeyFile == "":
		return nil, &ConfigError{Field: "CertFile", Reason: "CertFile and KeyFile go together"}
	default:
		cert, err := tls.LoadX509KeyPair(cfg.CertFile, cfg.KeyFile)
		if err != nil {
			// The error names the files and the problem, never key material.
			return nil, &ConfigError{Field: "CertFile", Reason: "cannot load the certificate and key", Err: err}
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	// Present the certificate whatever CA names the server asks for: the
	// broker, not the client, decides whether it is acceptable.
	cert := tc.Certificates[0]
	tc.Certificates = nil
	tc.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }
	if tc.RootCAs == nil && cfg.CAFile != "" {
		pem, err := readFile(cfg.CAFile)
		if err != nil {
			return nil, &ConfigError{Field: "CAFile", Reason: "cannot read it", Err: err}
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, &ConfigError{Field: "CAFile", Reason: fmt.Sprintf("%s holds no PEM certificate", cfg.CAFile)}
		}
		tc.RootCAs = pool
	}
	return &tlsDialer{addr: net.JoinHostPort(host, strconv.Itoa(port)), cfg: tc}, nil
}

// splitEndpoint splits host[:port], with DefaultPort when there is none.
func splitEndpoint(ep string) (host string, port int, err error) {
	if ep == "" {
		return "", 0, &ConfigError{Field: "Endpoint", Reason: "required"}
	}
	host, ps, err := net.SplitHostPort(ep)
	if err != nil {
		// No port: a host name, an IPv4 address, or an IPv6 one, bracketed
		// or not.
		host, ps = strings.TrimSuffix(strings.TrimPrefix(ep, "["), "]"), ""
	}
	if host == "" || strings.ContainsAny(host, " /[]") || (strings.Contains(host, ":") && net.ParseIP(host) == nil) {
		return "", 0, &ConfigError{Field: "Endpoint", Reason: fmt.Sprintf("%q is not host[:port]", ep)}
	}
	port = DefaultPort
	if ps != "" {
		port, err = strconv.Atoi(ps)
		if err != nil || port < 1 || port > 65535 {
			return "", 0, &ConfigError{Field: "Endpoint", Reason: fmt.Sprintf("%q: bad port", ep)}
		}
	}
	return host, port, nil
}

// readFile reads a small file (a PEM bundle), refusing anything over 1 MiB.
func readFile(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, 1<<20+1))
	if err != nil {
		return nil, err
	}
	if len(data) > 1<<20 {
		return nil, errors.New("larger than 1 MiB")
	}
	return data, nil
}
