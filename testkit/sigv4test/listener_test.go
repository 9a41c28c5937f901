package sigv4test_test

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/gorilla/websocket"
	"github.com/mochi-mqtt/server/v2/listeners"

	"github.com/iotjobs/iotjobs/adapters/sigv4ws"
	"github.com/iotjobs/iotjobs/testkit/brokertest"
	"github.com/iotjobs/iotjobs/testkit/pki"
	"github.com/iotjobs/iotjobs/testkit/sigv4test"
)

var testCreds = aws.Credentials{AccessKeyID: "AKIDLISTENER", SecretAccessKey: "listener-secret"}

// verified records the OnVerify calls of a listener.
type verified struct {
	mu    sync.Mutex
	calls []string
}

func (v *verified) record(id string, err error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	res := "ok"
	if err != nil {
		res = err.Error()
	}
	v.calls = append(v.calls, id+": "+res)
}

func (v *verified) get() []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]string(nil), v.calls...)
}

// start runs a mochi broker with a SigV4 listener, over TLS if ca is set.
func start(t *testing.T, set *pki.Set, v *verified) (*sigv4test.Listener, *brokertest.Broker) {
	t.Helper()
	cfg := sigv4test.Config{Credentials: sigv4test.StaticLookup(testCreds), OnVerify: v.record}
	if set != nil {
		cfg.TLSConfig = &tls.Config{Certificates: []tls.Certificate{set.Server}, MinVersion: tls.VersionTLS12}
	}
	l := sigv4test.NewListener(cfg)
	b, err := brokertest.Start(brokertest.Options{Listeners: []listeners.Listener{l}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return l, b
}

func TestListenerAddress(t *testing.T) {
	l, _ := start(t, nil, &verified{})
	host, port, err := net.SplitHostPort(l.Address())
	if err != nil || host != "127.0.0.1" || port == "0" {
		t.Fatalf("Address() = %q, want 127.0.0.1 with the bound port", l.Address())
	}
	if l.Protocol() != "ws" || l.ID() != "sigv4ws" {
		t.Errorf("Protocol, ID = %q, %q", l.Protocol(), l.ID())
	}
}

// connect and connack are an MQTT 3.1.1 CONNECT for client "c" and the
// CONNACK that accepts it.
var (
	connect = []byte{0x10, 13, 0, 4, 'M', 'Q', 'T', 'T', 4, 2, 0, 60, 0, 1, 'c'}
	connack = []byte{0x20, 2, 0, 0}
)

// TestListenerAccepts connects through the listener with the adapter's
// dialer over TLS and exchanges CONNECT/CONNACK with the broker.
func TestListenerAccepts(t *testing.T) {
	set, err := pki.NewSet("thing")
	if err != nil {
		t.Fatal(err)
	}
	v := &verified{}
	l, b := start(t, set, v)
	if l.Protocol() != "wss" {
		t.Errorf("Protocol() = %q, want wss", l.Protocol())
	}
	d, err := sigv4ws.NewDialer(sigv4ws.Config{
		Endpoint:    l.Address(),
		Region:      "us-east-1",
		Credentials: credentials.StaticCredentialsProvider{Value: testCreds},
		RootCAs:     set.CA.Pool(),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := d.Dial(ctx)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer c.Close()
	// One packet in three writes under the lock, as paho writes it.
	locker := c.(sync.Locker)
	locker.Lock()
	for _, part := range [][]byte{connect[:2], connect[2:9], {}, connect[9:]} {
		if _, err := c.Write(part); err != nil {
			t.Fatal(err)
		}
	}
	locker.Unlock()
	got := make([]byte, len(connack))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("read CONNACK: %v", err)
	}
	if string(got) != string(connack) {
		t.Fatalf("CONNACK = % x, want % x", got, connack)
	}
	if calls := v.get(); len(calls) != 1 || calls[0] != "AKIDLISTENER: ok" {
		t.Errorf("OnVerify calls = %q", calls)
	}
	if !b.Connected("c") {
		t.Error("the broker does not know client c")
	}
	// Closing the broker closes the connection.
	b.Close()
	if _, err := io.ReadFull(c, got); err == nil {
		t.Fatal("read after the broker closed: no error")
	}
}

func TestListenerRefuses(t *testing.T) {
	v := &verified{}
	l, _ := start(t, nil, v)
	good, err := sigv4ws.Presign(l.Address(), "us-east-1", testCreds, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	good = "ws" + strings.TrimPrefix(good, "wss")
	bad, err := sigv4ws.Presign(l.Address(), "us-east-1", aws.Credentials{AccessKeyID: testCreds.AccessKeyID, SecretAccessKey: "wrong"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	bad = "ws" + strings.TrimPrefix(bad, "wss")
	tests := []struct {
		name       string
		url        string
		protocols  []string
		wantStatus int
		wantBody   string
	}{
		{"bad signature", bad, []string{"mqtt"}, http.StatusForbidden, "signature does not match"},
		{"no query", "ws://" + l.Address() + "/mqtt", []string{"mqtt"}, http.StatusForbidden, "missing X-Amz-Algorithm"},
		{"no subprotocol", good, nil, http.StatusBadRequest, "subprotocol"},
		{"other subprotocol", good, []string{"mqttv3.1"}, http.StatusBadRequest, "subprotocol"},
		{"other path", strings.Replace(good, "/mqtt?", "/other?", 1), []string{"mqtt"}, http.StatusNotFound, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := websocket.Dialer{Subprotocols: tt.protocols, HandshakeTimeout: 5 * time.Second}
			ws, resp, err := d.Dial(tt.url, nil)
			if err == nil {
				ws.Close()
				t.Fatal("Dial succeeded")
			}
			if resp == nil {
				t.Fatalf("Dial: %v, no response", err)
			}
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.wantStatus || !strings.Contains(string(body), tt.wantBody) {
				t.Fatalf("HTTP %d %q, want %d with %q", resp.StatusCode, body, tt.wantStatus, tt.wantBody)
			}
		})
	}
}

// TestListenerRefusesSignedToken checks, over a real connection, that the
// listener refuses what a generic presigner sends for temporary
// credentials (the session token signed), as AWS IoT Core does.
func TestListenerRefusesSignedToken(t *testing.T) {
	temp := withToken(testCreds, "listener-token")
	l := sigv4test.NewListener(sigv4test.Config{Credentials: sigv4test.StaticLookup(temp)})
	b, err := brokertest.Start(brokertest.Options{Listeners: []listeners.Listener{l}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	d := websocket.Dialer{Subprotocols: []string{"mqtt"}, HandshakeTimeout: 5 * time.Second}
	for _, tt := range []struct {
		signToken bool
		want      int
	}{{false, http.StatusSwitchingProtocols}, {true, http.StatusForbidden}} {
		u := presignAWS(t, l.Address(), temp, time.Now(), "", tt.signToken)
		ws, resp, _ := d.Dial("ws"+strings.TrimPrefix(u, "wss"), nil)
		if ws != nil {
			ws.Close()
		}
		if resp == nil || resp.StatusCode != tt.want {
			t.Fatalf("token signed %v: response %v, want HTTP %d", tt.signToken, resp, tt.want)
		}
		if tt.signToken {
			body, _ := io.ReadAll(resp.Body)
			if !strings.Contains(string(body), "X-Amz-Security-Token was signed") {
				t.Errorf("reason %q does not say the token was signed", body)
			}
		}
	}
}

// TestListenerClock checks that the listener's clock decides what is stale.
func TestListenerClock(t *testing.T) {
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	l := sigv4test.NewListener(sigv4test.Config{
		Credentials: sigv4test.StaticLookup(testCreds),
		Region:      "eu-west-1",
		Now:         func() time.Time { return now },
	})
	b, err := brokertest.Start(brokertest.Options{Listeners: []listeners.Listener{l}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for _, tt := range []struct {
		at   time.Time
		want int
	}{
		{now.Add(-4 * time.Minute), http.StatusSwitchingProtocols},
		{now.Add(-6 * time.Minute), http.StatusForbidden},
		{time.Now(), http.StatusForbidden},
	} {
		u, err := sigv4ws.Presign(l.Address(), "eu-west-1", testCreds, tt.at)
		if err != nil {
			t.Fatal(err)
		}
		d := websocket.Dialer{Subprotocols: []string{"mqtt"}, HandshakeTimeout: 5 * time.Second}
		ws, resp, err := d.Dial("ws"+strings.TrimPrefix(u, "wss"), nil)
		if resp == nil {
			t.Fatalf("signed at %v: %v, no response", tt.at, err)
		}
		if resp.StatusCode != tt.want {
			t.Errorf("signed at %v: HTTP %d, want %d", tt.at, resp.StatusCode, tt.want)
		}
		if ws != nil {
			ws.Close()
		}
	}
}

// TestListenerCloseBeforeServe checks that a listener closed before the
// broker served it does not block.
func TestListenerCloseBeforeServe(t *testing.T) {
	l := sigv4test.NewListener(sigv4test.Config{})
	if err := l.Init(nil); err != nil {
		t.Fatal(err)
	}
	var closed []string
	l.Close(func(id string) { closed = append(closed, id) })
	l.Close(func(id string) { closed = append(closed, id) })
	l.Serve(func(string, net.Conn) error { return errors.New("unexpected") })
	if len(closed) != 1 {
		t.Errorf("closeClients called %d times, want 1", len(closed))
	}
}
