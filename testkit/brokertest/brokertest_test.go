package brokertest_test

import (
	"context"
	"crypto/x509"
	"errors"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/iotjobs/iotjobs/adapters/mqtt5"
	"github.com/iotjobs/iotjobs/ports"
	"github.com/iotjobs/iotjobs/testkit/brokertest"
	"github.com/iotjobs/iotjobs/testkit/pki"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// client connects an mqtt5 client to addr, over TLS with a certificate of
// set's CA, or over plain TCP if set is nil.
func client(t *testing.T, addr, id string, set *pki.Set, events func(mqtt5.ConnectionEvent)) *mqtt5.Client {
	t.Helper()
	cfg := mqtt5.Config{Endpoint: addr, ClientID: id, ReconnectMin: 10 * time.Millisecond, ReconnectMax: 50 * time.Millisecond, OnConnectionChange: events}
	if set != nil {
		cert, err := set.CA.Client(id)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Certificate, cfg.RootCAs = &cert, set.CA.Pool()
	} else {
		cfg.Dialer = mqtt5.DialerFunc(func(ctx context.Context) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "tcp", addr)
		})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := mqtt5.Connect(ctx, cfg)
	if err != nil {
		t.Fatalf("connect %s: %v", id, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// roundTrip subscribes sub to topic, publishes on pub and waits for the
// message.
func roundTrip(t *testing.T, pub, sub *mqtt5.Client, filter, topic string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got := make(chan ports.Message, 10)
	s, err := sub.Subscribe(ctx, ports.Filter{Topic: filter, QoS: 1}, ports.HandlerFuncs{Message: func(m ports.Message) { got <- m }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Unsubscribe(ctx)
	if err := pub.Publish(ctx, ports.Message{Topic: topic, Payload: []byte("ping"), QoS: 1}); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-got:
		if m.Topic != topic {
			t.Errorf("received on %s, want %s", m.Topic, topic)
		}
	case <-ctx.Done():
		t.Fatalf("no message on %s for %s", topic, filter)
	}
}

func TestPlainTCP(t *testing.T) {
	b, err := brokertest.Start(brokertest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if !strings.HasPrefix(b.Addr(), "127.0.0.1:") || strings.HasSuffix(b.Addr(), ":0") {
		t.Errorf("Addr() = %q, want 127.0.0.1 and the bound port", b.Addr())
	}
	a, c := client(t, b.Addr(), "a", nil, nil), client(t, b.Addr(), "c", nil, nil)
	roundTrip(t, a, c, "x/#", "x/y")
	// The repaired match of "+/#" with its parent level.
	roundTrip(t, a, c, "p/+/+/#", "p/a/b")
	roundTrip(t, a, c, "+/#", "solo")
	if !b.Connected("a") || b.Connected("nobody") {
		t.Error("Connected reports wrongly")
	}
	if err := b.DropClient("nobody"); !errors.Is(err, brokertest.ErrUnknownClient) {
		t.Errorf("DropClient of an unknown client: %v", err)
	}
}

func TestTLSAuthenticateACL(t *testing.T) {
	set, err := pki.NewSet("thing-1")
	if err != nil {
		t.Fatal(err)
	}
	var sawCN atomic.Value
	b, err := brokertest.Start(brokertest.Options{
		TLS: set.CA.ServerTLS(set.Server),
		Authenticate: func(id string, certs []*x509.Certificate) bool {
			if len(certs) > 0 {
				sawCN.Store(certs[0].Subject.CommonName)
			}
			return id != "refused"
		},
		ACL: func(id, topic string, write bool) bool { return !(write && topic == "ro") },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	c := client(t, b.Addr(), "thing-1", set, nil)
	if cn, _ := sawCN.Load().(string); cn != "thing-1" {
		t.Errorf("Authenticate saw certificate %q, want thing-1", cn)
	}
	var pe *mqtt5.PublishError
	if err := c.Publish(context.Background(), ports.Message{Topic: "ro", QoS: 1}); !errors.As(err, &pe) || pe.ReasonCode != 0x87 {
		t.Errorf("publish refused by the ACL: %v, want reason 0x87", err)
	}
	cert, _ := set.CA.Client("refused")
	_, err = mqtt5.Connect(context.Background(), mqtt5.Config{Endpoint: b.Addr(), ClientID: "refused", Certificate: &cert, RootCAs: set.CA.Pool()})
	var ce *mqtt5.ConnectError
	if !errors.As(err, &ce) || ce.ReasonCode < 0x80 {
		t.Errorf("connect refused by Authenticate: %v, want a CONNACK refusal", err)
	}
}

// TestDropRestart checks the ways the broker ends a client's connection,
// and that the client comes back each time.
func TestDropRestart(t *testing.T) {
	b, err := brokertest.Start(brokertest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	reasons := make(chan error, 10)
	ups := make(chan struct{}, 10)
	c := client(t, b.Addr(), "c", nil, func(ev mqtt5.ConnectionEvent) {
		if ev.Connected {
			ups <- struct{}{}
		} else {
			reasons <- ev.Err
		}
	})
	other := client(t, b.Addr(), "other", nil, nil)
	<-ups
	addr := b.Addr()
	for _, tt := range []struct {
		name   string
		do     func() error
		reason byte // of the DISCONNECT; 0 for none
	}{
		{"DropClient", func() error { return b.DropClient("c") }, 0},
		{"DisconnectClient", func() error { return b.DisconnectClient("c", 0x98) }, 0x98},
		{"Restart", b.Restart, 0x8B},
	} {
		if err := tt.do(); err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		select {
		case err := <-reasons:
			var de *mqtt5.DisconnectError
			switch {
			case tt.reason == 0 && errors.As(err, &de):
				t.Errorf("%s: %v, want a network error", tt.name, err)
			case tt.reason != 0 && (!errors.As(err, &de) || de.ReasonCode != tt.reason):
				t.Errorf("%s: %v, want a DISCONNECT with reason 0x%02X", tt.name, err, tt.reason)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: the client did not notice", tt.name)
		}
		select {
		case <-ups:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: the client did not reconnect", tt.name)
		}
	}
	if b.Addr() != addr {
		t.Errorf("address changed on Restart: %s, then %s", addr, b.Addr())
	}
	waitFor(t, "both clients back", func() bool { return b.Connected("c") && b.Connected("other") && other.Connected() })
	roundTrip(t, other, c, "after/#", "after/restart")

	b.Close()
	if err := b.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := b.Restart(); !errors.Is(err, brokertest.ErrClosed) {
		t.Errorf("Restart after Close: %v", err)
	}
	if err := b.DropClient("c"); !errors.Is(err, brokertest.ErrClosed) {
		t.Errorf("DropClient after Close: %v", err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}

func TestMosquitto(t *testing.T) {
	set, err := pki.NewSet("thing-1")
	if err != nil {
		t.Fatal(err)
	}
	files, err := set.WriteFiles(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	m := brokertest.StartMosquitto(t, brokertest.MosquittoOptions{
		CAFile: files.CA, CertFile: files.ServerCert, KeyFile: files.ServerKey,
		RequireCertificate: true,
		WebSocket:          true,
	})
	if m.WebSocketAddr() == "" {
		t.Fatal("no WebSocket address")
	}
	// The WebSocket listener accepts TCP connections (a WebSocket client
	// is the SigV4 transport's business).
	conn, err := net.DialTimeout("tcp", m.WebSocketAddr(), 5*time.Second)
	if err != nil {
		t.Fatalf("WebSocket listener: %v", err)
	}
	conn.Close()

	ups := make(chan struct{}, 10)
	c := client(t, m.Addr(), "thing-1", set, func(ev mqtt5.ConnectionEvent) {
		if ev.Connected {
			ups <- struct{}{}
		}
	})
	<-ups
	roundTrip(t, c, c, "m/#", "m/1")
	m.Restart()
	select {
	case <-ups:
	case <-time.After(10 * time.Second):
		t.Fatal("no reconnect after Restart")
	}
	roundTrip(t, c, c, "m/#", "m/2")
	if !strings.Contains(m.Log(), "thing-1") {
		t.Errorf("mosquitto's log does not mention the client:\n%s", m.Log())
	}

	// Without a client certificate mosquitto refuses the TLS handshake.
	_, err = mqtt5.Connect(context.Background(), mqtt5.Config{
		ClientID: "anon",
		Dialer: mqtt5.DialerFunc(func(ctx context.Context) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "tcp", m.Addr())
		}),
		ConnectTimeout: 2 * time.Second,
	})
	if err == nil {
		t.Error("plain MQTT to the TLS listener succeeded")
	}
	m.Stop()
	m.Stop()
}

func TestMosquittoMissing(t *testing.T) {
	if os.Getenv(brokertest.RequireMosquittoEnv) == "1" {
		t.Skip("mosquitto is required here")
	}
	t.Setenv("PATH", t.TempDir())
	if _, err := os.Stat("/usr/sbin/mosquitto"); err == nil {
		t.Skip("mosquitto is installed in /usr/sbin")
	}
	ran := false
	t.Run("skips", func(t *testing.T) {
		defer func() { ran = true }()
		brokertest.StartMosquitto(t, brokertest.MosquittoOptions{})
		t.Error("StartMosquitto returned without mosquitto")
	})
	if !ran {
		t.Error("the subtest did not end")
	}
}

func TestFreeAddr(t *testing.T) {
	a, err := brokertest.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", a)
	if err != nil {
		t.Fatalf("FreeAddr %s is not free: %v", a, err)
	}
	l.Close()
}
