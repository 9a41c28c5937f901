package mqtt5_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/iotjobs/iotjobs/adapters/mqtt5"
	"github.com/iotjobs/iotjobs/ports"
	"github.com/iotjobs/iotjobs/testkit/brokertest"
	"github.com/iotjobs/iotjobs/testkit/pki"
)

// TestRefusals checks that every way the broker or the TLS handshake can
// refuse a connection ends Connect at once with a clear error.
func TestRefusals(t *testing.T) {
	e := newEnv(t, brokertest.Options{
		Authenticate: func(clientID string, certs []*x509.Certificate) bool {
			// As an AWS IoT policy would: the client ID is the certificate's thing.
			return len(certs) > 0 && certs[0].Subject.CommonName == clientID && clientID != "banned"
		},
	})
	other, err := pki.NewCA("another CA")
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := other.Client("thing-1")
	if err != nil {
		t.Fatal(err)
	}
	wrongName, err := e.ca.Server("wrong.example")
	if err != nil {
		t.Fatal(err)
	}
	wrongNameBroker, err := brokertest.Start(brokertest.Options{TLS: e.ca.ServerTLS(wrongName)})
	if err != nil {
		t.Fatal(err)
	}
	defer wrongNameBroker.Close()
	closed, err := brokertest.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name   string
		config func() mqtt5.Config
		check  func(t *testing.T, err error)
		want   string // in the message
	}{
		{
			name: "no client certificate",
			config: func() mqtt5.Config {
				cfg := e.config(t, "thing-1")
				tc := &tls.Config{RootCAs: e.ca.Pool(), ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
				cfg.Dialer = mqtt5.DialerFunc(func(ctx context.Context) (net.Conn, error) {
					d := tls.Dialer{Config: tc}
					return d.DialContext(ctx, "tcp", e.broker.Addr())
				})
				return cfg
			},
			want: "tls: certificate required",
		},
		{
			name: "client certificate from another CA",
			config: func() mqtt5.Config {
				cfg := e.config(t, "thing-1")
				cfg.Certificate = &foreign
				return cfg
			},
			want: "tls: unknown certificate authority",
		},
		{
			name: "server certificate with the wrong name",
			config: func() mqtt5.Config {
				cfg := e.config(t, "thing-1")
				_, port, _ := net.SplitHostPort(wrongNameBroker.Addr())
				cfg.Endpoint = "localhost:" + port
				return cfg
			},
			check: func(t *testing.T, err error) {
				var ve *tls.CertificateVerificationError
				if !errors.As(err, &ve) {
					t.Errorf("error %v is not a *tls.CertificateVerificationError", err)
				}
			},
			want: "certificate is valid for wrong.example, not localhost",
		},
		{
			name: "server certificate from an unknown CA",
			config: func() mqtt5.Config {
				cfg := e.config(t, "thing-1")
				cfg.RootCAs = other.Pool()
				return cfg
			},
			check: func(t *testing.T, err error) {
				var ve *tls.CertificateVerificationError
				if !errors.As(err, &ve) {
					t.Errorf("error %v is not a *tls.CertificateVerificationError", err)
				}
			},
			want: "certificate signed by unknown authority",
		},
		{
			name:   "refused in CONNACK",
			config: func() mqtt5.Config { return e.config(t, "banned") },
			check: func(t *testing.T, err error) {
				var ce *mqtt5.ConnectError
				if errors.As(err, &ce) && ce.ReasonCode != 0x86 {
					t.Errorf("ReasonCode = 0x%02X, want 0x86", ce.ReasonCode)
				}
			},
			want: "refused by the broker with reason 0x86 (bad user name or password)",
		},
		{
			name: "nothing listening",
			config: func() mqtt5.Config {
				cfg := e.config(t, "thing-1")
				cfg.Endpoint = closed
				return cfg
			},
			want: "connection refused",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.config()
			cfg.ConnectTimeout = 5 * time.Second
			ev := newEvents()
			cfg.OnConnectionChange = ev.record
			start := time.Now()
			c, err := mqtt5.Connect(context.Background(), cfg)
			if err == nil {
				c.Close()
				t.Fatal("Connect succeeded, want an error")
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("Connect took %v to fail, want it at once", d)
			}
			var ce *mqtt5.ConnectError
			if !errors.As(err, &ce) {
				t.Errorf("error %v (%T) is not a *mqtt5.ConnectError", err, err)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "mqtt5: connect to ") || !strings.Contains(msg, tt.want) {
				t.Errorf("error %q, want it to start with %q and contain %q", msg, "mqtt5: connect to ", tt.want)
			}
			if tt.check != nil {
				tt.check(t, err)
			}
			if evs := ev.all(); len(evs) != 0 {
				t.Errorf("a failed Connect reported events %+v", evs)
			}
		})
	}
}

// TestConnectContext checks that Connect honours its context.
func TestConnectContext(t *testing.T) {
	e := newEnv(t, brokertest.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := mqtt5.Connect(ctx, e.config(t, "")); !errors.Is(err, context.Canceled) {
		t.Errorf("Connect with a canceled context: %v, want context.Canceled", err)
	}

	// A peer that accepts TCP and never answers: the attempt ends after
	// ConnectTimeout.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	cfg := e.config(t, "")
	cfg.Endpoint = ln.Addr().String()
	cfg.ConnectTimeout = 200 * time.Millisecond
	start := time.Now()
	_, err = mqtt5.Connect(context.Background(), cfg)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Connect to a silent peer: %v, want context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Connect to a silent peer took %v, want about 200ms", d)
	}
	if c := <-accepted; c != nil {
		c.Close()
	}
}

// TestConfigErrors checks that Connect refuses bad configurations with a
// *ConfigError, without panicking and without dialing.
func TestConfigErrors(t *testing.T) {
	set, err := pki.NewSet("thing-1")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	files, err := set.WriteFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	ok := func() mqtt5.Config {
		return mqtt5.Config{Endpoint: "127.0.0.1:1", ClientID: "thing-1", CertFile: files.ClientCert, KeyFile: files.ClientKey, CAFile: files.CA}
	}
	tests := []struct {
		name  string
		field string
		edit  func(*mqtt5.Config)
	}{
		{"no client ID", "ClientID", func(c *mqtt5.Config) { c.ClientID = "" }},
		{"long client ID", "ClientID", func(c *mqtt5.Config) { c.ClientID = strings.Repeat("x", 129) }},
		{"client ID not UTF-8", "ClientID", func(c *mqtt5.Config) { c.ClientID = "\xff" }},
		{"no endpoint", "Endpoint", func(c *mqtt5.Config) { c.Endpoint = "" }},
		{"bad port", "Endpoint", func(c *mqtt5.Config) { c.Endpoint = "example.com:http" }},
		{"port out of range", "Endpoint", func(c *mqtt5.Config) { c.Endpoint = "example.com:65536" }},
		{"not host:port", "Endpoint", func(c *mqtt5.Config) { c.Endpoint = "tls://example.com" }},
		{"no certificate", "Certificate", func(c *mqtt5.Config) { c.CertFile, c.KeyFile = "", "" }},
		{"certificate twice", "Certificate", func(c *mqtt5.Config) { c.Certificate = &set.Client }},
		{"empty certificate", "Certificate", func(c *mqtt5.Config) { c.CertFile, c.KeyFile, c.Certificate = "", "", &tls.Certificate{} }},
		{"no key file", "CertFile", func(c *mqtt5.Config) { c.KeyFile = "" }},
		{"missing cert file", "CertFile", func(c *mqtt5.Config) { c.CertFile = filepath.Join(dir, "missing.crt") }},
		{"key of another certificate", "CertFile", func(c *mqtt5.Config) { c.KeyFile = files.ServerKey }},
		{"missing CA file", "CAFile", func(c *mqtt5.Config) { c.CAFile = filepath.Join(dir, "missing.pem") }},
		{"CA file without PEM", "CAFile", func(c *mqtt5.Config) { c.CAFile = notPEM }},
		{"keep-alive too short", "KeepAlive", func(c *mqtt5.Config) { c.KeepAlive = 10 * time.Second }},
		{"keep-alive too long", "KeepAlive", func(c *mqtt5.Config) { c.KeepAlive = time.Hour }},
		{"negative session expiry", "SessionExpiry", func(c *mqtt5.Config) { c.SessionExpiry = -time.Second }},
		{"session expiry too long", "SessionExpiry", func(c *mqtt5.Config) { c.SessionExpiry = 1 << 62 }},
		{"negative connect timeout", "ConnectTimeout", func(c *mqtt5.Config) { c.ConnectTimeout = -1 }},
		{"negative backoff", "ReconnectMin", func(c *mqtt5.Config) { c.ReconnectMin = -1 }},
		{"backoff max below min", "ReconnectMax", func(c *mqtt5.Config) { c.ReconnectMin, c.ReconnectMax = time.Second, time.Millisecond }},
		{"negative limit", "Limits", func(c *mqtt5.Config) { c.Limits.MaxPayload = -1 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := ok()
			tt.edit(&cfg)
			_, err := mqtt5.Connect(context.Background(), cfg)
			var ce *mqtt5.ConfigError
			switch {
			case !errors.Is(err, mqtt5.ErrInvalidConfig):
				t.Fatalf("Connect: %v, want an error matching ErrInvalidConfig", err)
			case !errors.As(err, &ce):
				t.Fatalf("Connect: %v is not a *ConfigError", err)
			case ce.Field != tt.field:
				t.Errorf("ConfigError.Field = %q, want %q (%v)", ce.Field, tt.field, err)
			case !strings.HasPrefix(err.Error(), "mqtt5: invalid configuration: "):
				t.Errorf("message %q lacks the prefix", err)
			}
			if strings.Contains(err.Error(), "PRIVATE KEY") {
				t.Errorf("message %q shows key material", err)
			}
		})
	}

	// A Dialer replaces the TLS settings: no certificate needed.
	cfg := mqtt5.Config{ClientID: "thing-1", Dialer: mqtt5.DialerFunc(func(context.Context) (net.Conn, error) {
		return nil, errors.New("no network here")
	})}
	_, err = mqtt5.Connect(context.Background(), cfg)
	var ce *mqtt5.ConnectError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "no network here") {
		t.Errorf("Connect with a failing Dialer: %v, want a *ConnectError with its error", err)
	}
}

// TestConnectionEvents checks the events of a connection's life: connected,
// dropped (network), disconnected by the broker (DISCONNECT with a reason
// code), connected again each time, and closed.
func TestConnectionEvents(t *testing.T) {
	e := newEnv(t, brokertest.Options{})
	ev := newEvents()
	cfg := e.config(t, "")
	cfg.OnConnectionChange = ev.record
	c := connect(t, cfg)
	ev.wait(t, "connected", func(evs []mqtt5.ConnectionEvent) bool { return count(evs, true) == 1 })
	if !c.Connected() {
		t.Error("Connected() = false after connecting")
	}

	if err := e.broker.DropClient(cfg.ClientID); err != nil {
		t.Fatal(err)
	}
	evs := ev.wait(t, "dropped and reconnected", func(evs []mqtt5.ConnectionEvent) bool { return count(evs, true) == 2 })
	if lost := evs[1]; lost.Connected || !errors.Is(lost.Err, mqtt5.ErrConnectionLost) || lost.At.IsZero() {
		t.Errorf("event after a drop: %+v, want disconnected with an error matching ErrConnectionLost", lost)
	}

	if err := e.broker.DisconnectClient(cfg.ClientID, 0x98); err != nil {
		t.Fatal(err)
	}
	evs = ev.wait(t, "disconnected and reconnected", func(evs []mqtt5.ConnectionEvent) bool { return count(evs, true) == 3 })
	var de *mqtt5.DisconnectError
	if lost := evs[3]; lost.Connected || !errors.As(lost.Err, &de) || de.ReasonCode != 0x98 || !errors.Is(lost.Err, mqtt5.ErrConnectionLost) {
		t.Errorf("event after a DISCONNECT: %+v, want a *DisconnectError with reason 0x98", lost)
	} else if want := "mqtt5: disconnected by the broker with reason 0x98 (administrative action)"; !strings.HasPrefix(de.Error(), want) {
		t.Errorf("DisconnectError %q, want it to start with %q", de, want)
	}

	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	evs = ev.all()
	if last := evs[len(evs)-1]; last.Connected || !errors.Is(last.Err, ports.ErrClosed) {
		t.Errorf("last event %+v, want disconnected with ports.ErrClosed", last)
	}
	for i, want := range []bool{true, false, true, false, true, false} {
		if i >= len(evs) || evs[i].Connected != want {
			t.Fatalf("events %+v: want connected and disconnected in turn, six of them", evs)
		}
	}
	if c.Connected() {
		t.Error("Connected() = true after Close")
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestCloseFromCallback checks that OnConnectionChange may call Close.
func TestCloseFromCallback(t *testing.T) {
	e := newEnv(t, brokertest.Options{})
	cfg := e.config(t, "")
	closed := make(chan error, 1)
	var c *mqtt5.Client
	ready := make(chan struct{})
	cfg.OnConnectionChange = func(ev mqtt5.ConnectionEvent) {
		<-ready
		if !ev.Connected && !errors.Is(ev.Err, ports.ErrClosed) {
			closed <- c.Close()
		}
	}
	c = connect(t, cfg)
	close(ready)
	if err := e.broker.DropClient(cfg.ClientID); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-closed:
		if err != nil {
			t.Errorf("Close from OnConnectionChange: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close from OnConnectionChange did not return")
	}
	if err := c.Publish(context.Background(), ports.Message{Topic: "t"}); !errors.Is(err, ports.ErrClosed) {
		t.Errorf("Publish after Close: %v, want ports.ErrClosed", err)
	}
}
