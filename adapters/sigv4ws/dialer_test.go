package sigv4ws_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/gorilla/websocket"
	"github.com/mochi-mqtt/server/v2/listeners"

	"github.com/iotjobs/iotjobs/adapters/sigv4ws"
	"github.com/iotjobs/iotjobs/testkit/brokertest"
	"github.com/iotjobs/iotjobs/testkit/pki"
	"github.com/iotjobs/iotjobs/testkit/sigv4test"
)

// Credentials the test broker knows.
var (
	longCreds = aws.Credentials{AccessKeyID: "AKIDLONGTERM", SecretAccessKey: "long-term-secret"}
	tempCreds = aws.Credentials{AccessKeyID: "ASIATEMPORARY", SecretAccessKey: "temporary-secret", SessionToken: "temporary/token+=="}
)

// static is a provider of fixed credentials.
func static(c aws.Credentials) aws.CredentialsProvider {
	return aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) { return c, nil })
}

// testPKI is one certificate set for the whole package.
var testPKI = sync.OnceValue(func() *pki.Set {
	s, err := pki.NewSet("thing")
	if err != nil {
		panic(err)
	}
	return s
})

// sigv4Broker is a mochi broker behind the SigV4-checking listener, over
// TLS, in region us-east-1.
type sigv4Broker struct {
	*brokertest.Broker
	listener *sigv4test.Listener
	mu       sync.Mutex
	verified []string // access key ids accepted, in order
	refused  []string // reasons
}

type brokerOptions struct {
	lookup sigv4test.Lookup // nil: longCreds and tempCreds
	now    func() time.Time
}

func startBroker(t testing.TB, o brokerOptions) *sigv4Broker {
	t.Helper()
	if o.lookup == nil {
		o.lookup = sigv4test.StaticLookup(longCreds, tempCreds)
	}
	sb := &sigv4Broker{}
	sb.listener = sigv4test.NewListener(sigv4test.Config{
		TLSConfig:   &tls.Config{Certificates: []tls.Certificate{testPKI().Server}, MinVersion: tls.VersionTLS12},
		Region:      "us-east-1",
		Credentials: o.lookup,
		Now:         o.now,
		OnVerify: func(id string, err error) {
			sb.mu.Lock()
			defer sb.mu.Unlock()
			if err != nil {
				sb.refused = append(sb.refused, err.Error())
			} else {
				sb.verified = append(sb.verified, id)
			}
		},
	})
	b, err := brokertest.Start(brokertest.Options{Listeners: []listeners.Listener{sb.listener}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	sb.Broker = b
	return sb
}

func (sb *sigv4Broker) endpoint() string { return sb.listener.Address() }

func (sb *sigv4Broker) accepted() []string {
	sb.mu.Lock()
	defer sb.mu.Unlock()
	return append([]string(nil), sb.verified...)
}

// dialer returns a Dialer for the endpoint with the test CA.
func dialer(t testing.TB, endpoint string, cfg sigv4ws.Config) *sigv4ws.Dialer {
	t.Helper()
	cfg.Endpoint = endpoint
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	if cfg.RootCAs == nil {
		cfg.RootCAs = testPKI().CA.Pool()
	}
	if cfg.Credentials == nil {
		cfg.Credentials = static(longCreds)
	}
	d, err := sigv4ws.NewDialer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// mqttConnect sends an MQTT 3.1.1 CONNECT for clientID and checks the
// CONNACK.
func mqttConnect(t testing.TB, c net.Conn, clientID string) {
	t.Helper()
	body := append([]byte{0, 4, 'M', 'Q', 'T', 'T', 4, 2, 0, 60, 0, byte(len(clientID))}, clientID...)
	c.(sync.Locker).Lock()
	c.Write([]byte{0x10, byte(len(body))})
	c.Write(body)
	c.(sync.Locker).Unlock()
	ack := make([]byte, 4)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(c, ack); err != nil {
		t.Fatalf("read CONNACK: %v", err)
	}
	c.SetReadDeadline(time.Time{})
	if !bytes.Equal(ack, []byte{0x20, 2, 0, 0}) {
		t.Fatalf("CONNACK % x", ack)
	}
}

func TestDial(t *testing.T) {
	b := startBroker(t, brokerOptions{})
	for _, creds := range []aws.Credentials{longCreds, tempCreds} {
		t.Run(creds.AccessKeyID, func(t *testing.T) {
			d := dialer(t, b.endpoint(), sigv4ws.Config{Credentials: static(creds)})
			c, err := d.Dial(testCtx(t))
			if err != nil {
				t.Fatalf("Dial: %v", err)
			}
			defer c.Close()
			mqttConnect(t, c, "dial-"+creds.AccessKeyID)
			if !b.Connected("dial-" + creds.AccessKeyID) {
				t.Error("the broker does not list the client")
			}
		})
	}
	if got := b.accepted(); len(got) != 2 || got[0] != longCreds.AccessKeyID || got[1] != tempCreds.AccessKeyID {
		t.Errorf("accepted %q", got)
	}
}

// TestDialAuthErrors checks that each way of getting SigV4 wrong is an
// *AuthError that carries the server's reason and says what to check.
func TestDialAuthErrors(t *testing.T) {
	now := time.Now()
	b := startBroker(t, brokerOptions{now: func() time.Time { return now }})
	wrongToken := tempCreds
	wrongToken.SessionToken = "another-token"
	tests := []struct {
		name   string
		cfg    sigv4ws.Config
		reason string
	}{
		{"wrong secret", sigv4ws.Config{Credentials: static(aws.Credentials{AccessKeyID: longCreds.AccessKeyID, SecretAccessKey: "wrong"})}, "signature does not match"},
		{"unknown key", sigv4ws.Config{Credentials: static(aws.Credentials{AccessKeyID: "AKIDUNKNOWN", SecretAccessKey: "x"})}, "unknown access key"},
		{"stale date", sigv4ws.Config{Now: func() time.Time { return now.Add(-6 * time.Minute) }}, "date out of range"},
		{"future date", sigv4ws.Config{Now: func() time.Time { return now.Add(6 * time.Minute) }}, "date out of range"},
		{"wrong region", sigv4ws.Config{Region: "eu-west-1"}, "wrong credential scope"},
		{"wrong token", sigv4ws.Config{Credentials: static(wrongToken)}, "invalid security token"},
		{"token missing", sigv4ws.Config{Credentials: static(aws.Credentials{AccessKeyID: tempCreds.AccessKeyID, SecretAccessKey: tempCreds.SecretAccessKey})}, "invalid security token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.cfg.Now == nil {
				tt.cfg.Now = func() time.Time { return now }
			}
			d := dialer(t, b.endpoint(), tt.cfg)
			start := time.Now()
			c, err := d.Dial(testCtx(t))
			if err == nil {
				c.Close()
				t.Fatal("Dial succeeded")
			}
			if time.Since(start) > 5*time.Second {
				t.Errorf("Dial took %v", time.Since(start))
			}
			var ae *sigv4ws.AuthError
			if !errors.Is(err, sigv4ws.ErrAuth) || !errors.As(err, &ae) {
				t.Fatalf("Dial = %v, want an *AuthError", err)
			}
			if ae.StatusCode != http.StatusForbidden || !strings.Contains(ae.Reason, tt.reason) {
				t.Errorf("AuthError %d %q, want 403 with %q", ae.StatusCode, ae.Reason, tt.reason)
			}
			for _, hint := range []string{"clock", "region", "IAM policy", "credentials"} {
				if !strings.Contains(err.Error(), hint) {
					t.Errorf("error %q does not mention %s", err, hint)
				}
			}
		})
	}
}

// tlsServer serves h over TLS with the test PKI's server certificate.
func tlsServer(t testing.TB, h http.Handler) string {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{testPKI().Server}}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

func TestDialFailures(t *testing.T) {
	upgrade := func(protocols []string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			up := websocket.Upgrader{Subprotocols: protocols}
			ws, err := up.Upgrade(w, r, nil)
			if err == nil {
				ws.Close()
			}
		})
	}
	tests := []struct {
		name    string
		handler http.Handler
		cfg     sigv4ws.Config
		want    string
	}{
		{"subprotocol not chosen", upgrade(nil), sigv4ws.Config{}, `did not accept WebSocket subprotocol "mqtt"`},
		{"other subprotocol", upgrade([]string{"mqttv3.1"}), sigv4ws.Config{}, `did not accept WebSocket subprotocol "mqtt"`},
		{"server error", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "broker down", http.StatusServiceUnavailable)
		}), sigv4ws.Config{}, "HTTP 503: broker down"},
		{"not found", http.NotFoundHandler(), sigv4ws.Config{}, "HTTP 404"},
		{"unknown authority", upgrade([]string{"mqtt"}), sigv4ws.Config{RootCAs: pkiOther(t).Pool()}, "certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := tlsServer(t, tt.handler)
			c, err := dialer(t, addr, tt.cfg).Dial(testCtx(t))
			if err == nil {
				c.Close()
				t.Fatal("Dial succeeded")
			}
			if errors.Is(err, sigv4ws.ErrAuth) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Dial = %v, want an error with %q, not ErrAuth", err, tt.want)
			}
		})
	}
}

// pkiOther is a CA that signed nothing the servers use.
func pkiOther(t testing.TB) *pki.CA {
	ca, err := pki.NewCA("other")
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// silentServer accepts TCP connections and never answers.
func silentServer(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	return ln.Addr().String()
}

func TestDialTimeouts(t *testing.T) {
	addr := silentServer(t)
	t.Run("handshake timeout", func(t *testing.T) {
		d := dialer(t, addr, sigv4ws.Config{HandshakeTimeout: 200 * time.Millisecond})
		start := time.Now()
		_, err := d.Dial(context.Background())
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Dial = %v, want context.DeadlineExceeded", err)
		}
		if el := time.Since(start); el > 3*time.Second {
			t.Errorf("Dial took %v", el)
		}
	})
	t.Run("context deadline", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		_, err := dialer(t, addr, sigv4ws.Config{}).Dial(ctx)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Dial = %v, want context.DeadlineExceeded", err)
		}
	})
	t.Run("context canceled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(100*time.Millisecond, cancel)
		start := time.Now()
		_, err := dialer(t, addr, sigv4ws.Config{}).Dial(ctx)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Dial = %v, want context.Canceled", err)
		}
		if el := time.Since(start); el > 3*time.Second {
			t.Errorf("Dial took %v after cancel", el)
		}
	})
}

// funcProvider is a credentials provider for tests, with an Invalidate
// like aws.CredentialsCache's.
type funcProvider struct {
	retrieve    func(n int) (aws.Credentials, error)
	calls       atomic.Int32
	invalidated atomic.Int32
}

func (p *funcProvider) Retrieve(context.Context) (aws.Credentials, error) {
	return p.retrieve(int(p.calls.Add(1)))
}

func (p *funcProvider) Invalidate() { p.invalidated.Add(1) }

func TestDialCredentials(t *testing.T) {
	b := startBroker(t, brokerOptions{})
	now := time.Now()
	soon := tempCreds
	soon.CanExpire, soon.Expires = true, now.Add(time.Minute) // within the default margin
	fresh := tempCreds
	fresh.CanExpire, fresh.Expires = true, now.Add(time.Hour)
	expired := tempCreds
	expired.CanExpire, expired.Expires = true, now.Add(-time.Second)

	t.Run("retrieve error", func(t *testing.T) {
		p := &funcProvider{retrieve: func(int) (aws.Credentials, error) { return aws.Credentials{}, errors.New("no way") }}
		_, err := dialer(t, b.endpoint(), sigv4ws.Config{Credentials: p}).Dial(testCtx(t))
		if !errors.Is(err, sigv4ws.ErrCredentials) || !strings.Contains(err.Error(), "no way") {
			t.Fatalf("Dial = %v, want ErrCredentials", err)
		}
	})
	t.Run("expired", func(t *testing.T) {
		p := &funcProvider{retrieve: func(int) (aws.Credentials, error) { return expired, nil }}
		_, err := dialer(t, b.endpoint(), sigv4ws.Config{Credentials: p}).Dial(testCtx(t))
		if !errors.Is(err, sigv4ws.ErrCredentials) || !strings.Contains(err.Error(), "expired") {
			t.Fatalf("Dial = %v, want ErrCredentials", err)
		}
	})
	t.Run("empty", func(t *testing.T) {
		_, err := dialer(t, b.endpoint(), sigv4ws.Config{Credentials: static(aws.Credentials{})}).Dial(testCtx(t))
		if !errors.Is(err, sigv4ws.ErrCredentials) {
			t.Fatalf("Dial = %v, want ErrCredentials", err)
		}
	})
	t.Run("refresh near expiry", func(t *testing.T) {
		p := &funcProvider{retrieve: func(n int) (aws.Credentials, error) {
			if n == 1 {
				return soon, nil
			}
			return fresh, nil
		}}
		c, err := dialer(t, b.endpoint(), sigv4ws.Config{Credentials: p, Now: func() time.Time { return now }}).Dial(testCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
		if p.invalidated.Load() != 1 || p.calls.Load() != 2 {
			t.Errorf("Invalidate called %d times, Retrieve %d; want 1 and 2", p.invalidated.Load(), p.calls.Load())
		}
	})
}

// frameServer is a TLS WebSocket server with subprotocol mqtt that
// reports every message and the close it receives.
func frameServer(t testing.TB) (string, <-chan []byte) {
	t.Helper()
	frames := make(chan []byte, 16)
	var wg sync.WaitGroup
	addr := tlsServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		up := websocket.Upgrader{Subprotocols: []string{"mqtt"}}
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		wg.Add(1)
		defer wg.Done()
		defer ws.Close()
		for {
			_, p, err := ws.ReadMessage()
			if err != nil {
				if websocket.IsCloseError(err, websocket.CloseNormalClosure) {
					frames <- []byte("close")
				}
				close(frames)
				return
			}
			frames <- p
		}
	}))
	t.Cleanup(wg.Wait)
	return addr, frames
}

// TestDialExpiry checks that a connection with temporary credentials ends
// itself ExpiryMargin before they expire, with a DISCONNECT and a
// WebSocket close.
func TestDialExpiry(t *testing.T) {
	tests := []struct {
		name     string
		lifetime time.Duration // of the credentials, from the dial
		margin   time.Duration
	}{
		{"before expiry", time.Hour + 200*time.Millisecond, time.Hour},
		// Within the margin and nothing fresher: at expiry.
		{"at expiry", 200 * time.Millisecond, time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr, frames := frameServer(t)
			base := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC) // the dialer's clock
			creds := tempCreds
			creds.CanExpire, creds.Expires = true, base.Add(tt.lifetime)
			var logs logBuffer
			d := dialer(t, addr, sigv4ws.Config{
				Credentials:  static(creds),
				ExpiryMargin: tt.margin,
				Now:          func() time.Time { return base },
				Logger:       logs.logger(),
			})
			start := time.Now()
			c, err := d.Dial(testCtx(t))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			readErr := make(chan error, 1)
			go func() {
				_, err := c.Read(make([]byte, 1))
				readErr <- err
			}()
			select {
			case f := <-frames:
				if !bytes.Equal(f, []byte{0xe0, 0}) {
					t.Fatalf("first frame % x, want DISCONNECT e0 00", f)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("the connection did not end itself")
			}
			if el := time.Since(start); el < 150*time.Millisecond {
				t.Errorf("ended after %v, want about 200ms", el)
			}
			if f := <-frames; string(f) != "close" {
				t.Errorf("then %q, want a normal close", f)
			}
			if err := <-readErr; err == nil {
				t.Error("Read on the ended connection: no error")
			}
			if !strings.Contains(logs.String(), "before its credentials expire") {
				t.Errorf("no log of the planned close:\n%s", logs.String())
			}
		})
	}
}

// TestDialCloseStopsExpiry checks that closing a connection stops its
// expiry timer: no DISCONNECT follows.
func TestDialCloseStopsExpiry(t *testing.T) {
	addr, frames := frameServer(t)
	creds := tempCreds
	creds.CanExpire, creds.Expires = true, time.Now().Add(time.Hour)
	c, err := dialer(t, addr, sigv4ws.Config{Credentials: static(creds), ExpiryMargin: time.Hour - 100*time.Millisecond}).Dial(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if f := <-frames; string(f) != "close" {
		t.Fatalf("frame %q, want only a close", f)
	}
}

func TestNewDialer(t *testing.T) {
	isolateAWSConfig(t)
	tests := []struct {
		name string
		cfg  sigv4ws.Config
		env  map[string]string
		want error // nil: accepted
		host string
		reg  string
	}{
		{name: "no endpoint", cfg: sigv4ws.Config{Credentials: static(longCreds), Region: "us-east-1"}, want: sigv4ws.ErrConfig},
		{name: "bad endpoint", cfg: sigv4ws.Config{Endpoint: "https://x", Credentials: static(longCreds), Region: "us-east-1"}, want: sigv4ws.ErrConfig},
		{name: "negative timeout", cfg: sigv4ws.Config{Endpoint: "h:1", Credentials: static(longCreds), Region: "us-east-1", HandshakeTimeout: -1}, want: sigv4ws.ErrConfig},
		{name: "bad region", cfg: sigv4ws.Config{Endpoint: "h:1", Credentials: static(longCreds), Region: "mars"}, want: sigv4ws.ErrConfig},
		{name: "no region anywhere", cfg: sigv4ws.Config{Endpoint: "localhost:9443", Credentials: static(longCreds)}, want: sigv4ws.ErrConfig},
		{name: "region from endpoint", cfg: sigv4ws.Config{Endpoint: "X-ATS.iot.eu-west-3.amazonaws.com:443", Credentials: static(longCreds)},
			host: "x-ats.iot.eu-west-3.amazonaws.com", reg: "eu-west-3"},
		{name: "region from environment", cfg: sigv4ws.Config{Endpoint: "localhost:9443", Credentials: static(longCreds)},
			env: map[string]string{"AWS_REGION": "ap-south-1"}, host: "localhost:9443", reg: "ap-south-1"},
		{name: "explicit region wins", cfg: sigv4ws.Config{Endpoint: "x.iot.eu-west-3.amazonaws.com", Region: "eu-west-1", Credentials: static(longCreds)},
			env: map[string]string{"AWS_REGION": "ap-south-1"}, host: "x.iot.eu-west-3.amazonaws.com", reg: "eu-west-1"},
		{name: "endpoint before environment", cfg: sigv4ws.Config{Endpoint: "x.iot.eu-west-3.amazonaws.com"},
			env: map[string]string{"AWS_REGION": "ap-south-1"}, host: "x.iot.eu-west-3.amazonaws.com", reg: "eu-west-3"},
		{name: "default chain", cfg: sigv4ws.Config{Endpoint: "localhost:9443"},
			env: map[string]string{"AWS_REGION": "ca-central-1"}, host: "localhost:9443", reg: "ca-central-1"},
		{name: "unknown profile", cfg: sigv4ws.Config{Endpoint: "localhost:9443", Profile: "nope"}, want: sigv4ws.ErrCredentials},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			d, err := sigv4ws.NewDialer(tt.cfg)
			if tt.want != nil {
				if !errors.Is(err, tt.want) {
					t.Fatalf("NewDialer = %v, want %v", err, tt.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d.Endpoint() != tt.host || d.Region() != tt.reg {
				t.Errorf("Endpoint, Region = %q, %q; want %q, %q", d.Endpoint(), d.Region(), tt.host, tt.reg)
			}
		})
	}
}

// isolateAWSConfig keeps the machine's AWS configuration out of a test:
// empty shared files, no instance metadata, no environment keys.
func isolateAWSConfig(t *testing.T) {
	t.Helper()
	dir := t.TempDir()
	for _, name := range []string{"config", "credentials"} {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "credentials"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	for _, k := range []string{"AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID",
		"AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN",
		"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
}

func TestLoadDefaultCredentials(t *testing.T) {
	isolateAWSConfig(t)
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDENV")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "env-secret")
	t.Setenv("AWS_SESSION_TOKEN", "env-token")
	t.Setenv("AWS_REGION", "eu-north-1")
	p, region, err := sigv4ws.LoadDefaultCredentials(context.Background(), "", "")
	if err != nil {
		t.Fatal(err)
	}
	c, err := p.Retrieve(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if region != "eu-north-1" || c.AccessKeyID != "AKIDENV" || c.SecretAccessKey != "env-secret" || c.SessionToken != "env-token" {
		t.Errorf("got region %q, credentials %s", region, c.AccessKeyID)
	}
	_, region, err = sigv4ws.LoadDefaultCredentials(context.Background(), "sa-east-1", "")
	if err != nil || region != "sa-east-1" {
		t.Errorf("with a region: %q, %v", region, err)
	}

	// A profile of the shared files.
	cfgFile := os.Getenv("AWS_CONFIG_FILE")
	if err := os.WriteFile(cfgFile, []byte("[profile dev]\nregion = us-west-2\naws_access_key_id = AKIDPROFILE\naws_secret_access_key = profile-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Unsetenv("AWS_ACCESS_KEY_ID")
	os.Unsetenv("AWS_SECRET_ACCESS_KEY")
	os.Unsetenv("AWS_SESSION_TOKEN")
	os.Unsetenv("AWS_REGION")
	p, region, err = sigv4ws.LoadDefaultCredentials(context.Background(), "", "dev")
	if err != nil {
		t.Fatal(err)
	}
	if c, err = p.Retrieve(context.Background()); err != nil || c.AccessKeyID != "AKIDPROFILE" || region != "us-west-2" {
		t.Errorf("profile dev: %q, %q, %v", c.AccessKeyID, region, err)
	}
}

// logBuffer collects log lines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// echoServer answers every request with its own request line: as a 403
// body, a 500 body, or in place of the status line (a malformed response
// that net/http quotes in its error).
func echoServer(t testing.TB, mode string) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{testPKI().Server}})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				line, err := bufio.NewReader(c).ReadString('\n')
				if err != nil {
					return
				}
				line = strings.TrimSpace(line)
				switch mode {
				case "status":
					fmt.Fprintf(c, "HTTP/1.1 %s\r\n\r\n", strings.TrimPrefix(line, "GET "))
				case "403", "500":
					body := "refused " + line
					fmt.Fprintf(c, "HTTP/1.1 %s No\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", mode, len(body), body)
				}
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return ln.Addr().String()
}

// TestSecretsNeverShown runs the dialer's paths with sentinel secrets and
// fails if a secret, a token or a signature shows up in a log line or an
// error message, even when the server echoes the signed URL back.
func TestSecretsNeverShown(t *testing.T) {
	const secret, token = "SENTINELSECRETxyz", "SENTINELTOKEN/xyz+=="
	sentinels := []string{secret, token, "SENTINELTOKEN%2Fxyz", "SENTINELTOKEN"}
	creds := aws.Credentials{AccessKeyID: "ASIASENTINEL", SecretAccessKey: secret, SessionToken: token}
	now := time.Now()
	b := startBroker(t, brokerOptions{lookup: sigv4test.StaticLookup(creds)})
	var logs logBuffer
	var errs []error
	check := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	soon := creds
	soon.CanExpire, soon.Expires = true, now.Add(time.Hour+100*time.Millisecond)
	cfg := func(c aws.Credentials) sigv4ws.Config {
		return sigv4ws.Config{Credentials: static(c), Logger: logs.logger(), ExpiryMargin: time.Hour, Now: func() time.Time { return now }}
	}

	// Success, with an expiry close.
	c, err := dialer(t, b.endpoint(), cfg(soon)).Dial(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.ReadFull(c, make([]byte, 1)) // ends when the connection closes itself
	check(err)
	c.Close()

	// Refusals and failures of every kind.
	wrong := creds
	wrong.SecretAccessKey = secret + "2"
	_, err = dialer(t, b.endpoint(), cfg(wrong)).Dial(testCtx(t))
	check(err)
	stale := cfg(creds)
	stale.Now = func() time.Time { return now.Add(-time.Hour) }
	_, err = dialer(t, b.endpoint(), stale).Dial(testCtx(t))
	check(err)
	for _, mode := range []string{"403", "500", "status"} {
		_, err = dialer(t, echoServer(t, mode), cfg(creds)).Dial(testCtx(t))
		if err == nil {
			t.Fatalf("echo %s: Dial succeeded", mode)
		}
		check(err)
	}
	_, err = dialer(t, silentServer(t), sigv4ws.Config{Credentials: static(creds), Logger: logs.logger(), HandshakeTimeout: 100 * time.Millisecond}).Dial(context.Background())
	check(err)
	_, err = dialer(t, b.endpoint(), sigv4ws.Config{Credentials: static(creds), RootCAs: pkiOther(t).Pool(), Logger: logs.logger()}).Dial(testCtx(t))
	check(err)
	expired := creds
	expired.CanExpire, expired.Expires = true, now.Add(-time.Minute)
	_, err = dialer(t, b.endpoint(), cfg(expired)).Dial(testCtx(t))
	check(err)
	_, err = sigv4ws.Presign("bad/endpoint", "us-east-1", creds, now)
	check(err)
	_, err = sigv4ws.Presign("localhost:1", "bad", creds, now)
	check(err)

	if len(errs) < 10 {
		t.Fatalf("only %d errors collected", len(errs))
	}
	for _, err := range errs {
		for _, s := range sentinels {
			if strings.Contains(err.Error(), s) || strings.Contains(fmt.Sprintf("%+v", err), s) {
				t.Errorf("error shows a secret: %v", err)
			}
		}
		if strings.Contains(strings.ToLower(err.Error()), "x-amz-signature=") {
			t.Errorf("error shows a signature: %v", err)
		}
	}
	out := logs.String()
	if !strings.Contains(out, "ASIASENTINEL") {
		t.Errorf("the logs do not even name the access key:\n%s", out)
	}
	for _, line := range strings.Split(out, "\n") {
		for _, s := range sentinels {
			if strings.Contains(line, s) {
				t.Errorf("log line shows a secret: %s", line)
			}
		}
		if strings.Contains(strings.ToLower(line), "x-amz-signature") {
			t.Errorf("log line shows a signature: %s", line)
		}
	}
	t.Logf("%d errors checked, e.g. %v", len(errs), errs[len(errs)-6])
}
