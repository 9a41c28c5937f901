package mqtt5_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iotjobs/iotjobs/adapters/mqtt5"
	"github.com/iotjobs/iotjobs/testkit/brokertest"
	"github.com/iotjobs/iotjobs/testkit/pki"
	"github.com/iotjobs/iotjobs/testkit/tlstest"
)

func securityCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestTLSBelow12Refused: a server that speaks at most TLS 1.1 is refused,
// though its certificate is trusted; the same server with TLS 1.2 gets a
// completed handshake.
func TestTLSBelow12Refused(t *testing.T) {
	ca, err := pki.NewCA("security CA")
	if err != nil {
		t.Fatal(err)
	}
	server, err := ca.Server("localhost", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	client, err := ca.Client("thing-1")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name     string
		min, max uint16
		refused  bool
	}{
		{"TLS 1.0", tls.VersionTLS10, tls.VersionTLS10, true},
		{"TLS 1.1", tls.VersionTLS10, tls.VersionTLS11, true},
		{"TLS 1.2", tls.VersionTLS12, tls.VersionTLS12, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := tlstest.StartProbe(t, &tls.Config{Certificates: []tls.Certificate{server}, MinVersion: tt.min, MaxVersion: tt.max})
			cfg := testConfig(p.Addr(), "thing-1", &client, ca)
			c, err := mqtt5.Connect(securityCtx(t), cfg)
			if err == nil {
				c.Close()
			}
			tlstest.CheckVersion(t, p, err, tt.refused)
		})
	}
}

// TestServerAlwaysVerified: a self-signed server is refused unless its
// certificate is in RootCAs, whatever else the Config says (system roots,
// another CA, a CAFile, a ServerName).
func TestServerAlwaysVerified(t *testing.T) {
	self := tlstest.SelfSigned(t)
	p := tlstest.StartProbe(t, &tls.Config{Certificates: []tls.Certificate{self}, MinVersion: tls.VersionTLS12})
	ca, err := pki.NewCA("security CA")
	if err != nil {
		t.Fatal(err)
	}
	client, err := ca.Client("thing-1")
	if err != nil {
		t.Fatal(err)
	}
	caFile, err := ca.WriteCA(t.TempDir(), "ca.pem")
	if err != nil {
		t.Fatal(err)
	}
	addr := p.Addr()
	base := func() mqtt5.Config {
		return mqtt5.Config{Endpoint: addr, ClientID: "thing-1", Certificate: &client, ConnectTimeout: 5 * time.Second}
	}
	tests := []struct {
		name string
		edit func(*mqtt5.Config)
	}{
		{"system roots", func(*mqtt5.Config) {}},
		{"another CA", func(c *mqtt5.Config) { c.RootCAs = ca.Pool() }},
		{"another CA file", func(c *mqtt5.Config) { c.CAFile = caFile }},
		{"server name of the certificate", func(c *mqtt5.Config) { c.ServerName = "localhost"; c.RootCAs = ca.Pool() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := base()
			tt.edit(&cfg)
			c, err := mqtt5.Connect(securityCtx(t), cfg)
			if err == nil {
				c.Close()
				t.Fatal("Connect succeeded")
			}
			var ve *tls.CertificateVerificationError
			var ua x509.UnknownAuthorityError
			if !errors.As(err, &ve) || !errors.As(err, &ua) {
				t.Errorf("Connect: %v, want an unknown authority verification error", err)
			}
			if herr := p.Handshake(t); herr == nil {
				t.Error("the server completed the handshake")
			}
		})
	}
	t.Run("trusted", func(t *testing.T) {
		cfg := base()
		cfg.RootCAs = x509.NewCertPool()
		cfg.RootCAs.AddCert(self.Leaf)
		if c, err := mqtt5.Connect(securityCtx(t), cfg); err == nil {
			c.Close()
		}
		if herr := p.Handshake(t); herr != nil {
			t.Errorf("handshake with the certificate trusted: %v", herr)
		}
	})
}

// TestNoInsecureOption: mqtt5.Config has no way to skip verifying the
// server. (Config.Dialer replaces the TLS dialer altogether; it is the seam
// of other transports, such as sigv4ws, which verify on their own.)
func TestNoInsecureOption(t *testing.T) {
	tlstest.NoInsecureOption(t, reflect.TypeFor[mqtt5.Config]())
}

// TestKeyNeverLogged connects, loses the connection and reconnects, and
// fails on a configuration error, with a debug logger: neither the log nor
// the errors show the client's private key.
func TestKeyNeverLogged(t *testing.T) {
	var mu sync.Mutex
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return logs.Write(p)
	}), &slog.HandlerOptions{Level: slog.LevelDebug}))

	e := newEnv(t, brokertest.Options{})
	cert, err := e.ca.Client("thing-1")
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := pki.KeyPEM(cert)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	secrets := []string{string(keyPEM), "PRIVATE KEY", base64.StdEncoding.EncodeToString(der)[20:60]}
	if k, ok := cert.PrivateKey.(*ecdsa.PrivateKey); ok {
		b, err := k.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		secrets = append(secrets, hex.EncodeToString(b), base64.StdEncoding.EncodeToString(b))
	}
	var errs []error

	cfg := testConfig(e.broker.Addr(), "thing-1", &cert, e.ca)
	cfg.Logger = logger
	c, err := mqtt5.Connect(securityCtx(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.broker.DropClient("thing-1"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "reconnect", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return strings.Contains(logs.String(), "mqtt5: reconnected")
	})
	c.Close()

	// Files: a key that does not match the certificate, and a key file
	// that is a certificate.
	dir := t.TempDir()
	other, err := e.ca.Client("other")
	if err != nil {
		t.Fatal(err)
	}
	certFile, _, err := pki.WritePEM(dir, "thing", cert)
	if err != nil {
		t.Fatal(err)
	}
	_, otherKey, err := pki.WritePEM(dir, "other", other)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "mine.key")
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, files := range [][2]string{{certFile, otherKey}, {keyFile, keyFile}, {certFile, certFile}} {
		cfg := testConfig(e.broker.Addr(), "thing-1", nil, e.ca)
		cfg.CertFile, cfg.KeyFile, cfg.Logger = files[0], files[1], logger
		c, err := mqtt5.Connect(securityCtx(t), cfg)
		if err == nil {
			c.Close()
			t.Fatalf("Connect with %v succeeded", files)
		}
		errs = append(errs, err)
	}
	// A server that refuses the handshake.
	p := tlstest.StartProbe(t, &tls.Config{Certificates: []tls.Certificate{tlstest.SelfSigned(t)}, MinVersion: tls.VersionTLS12})
	cfg = testConfig(p.Addr(), "thing-1", &cert, e.ca)
	cfg.Logger = logger
	if c, err := mqtt5.Connect(securityCtx(t), cfg); err == nil {
		c.Close()
	} else {
		errs = append(errs, err)
	}

	mu.Lock()
	logged := logs.String()
	mu.Unlock()
	if !strings.Contains(logged, "mqtt5: connected") {
		t.Fatalf("nothing logged: %q", logged)
	}
	for _, s := range secrets {
		if strings.Contains(logged, s) {
			t.Errorf("the log shows key material %.20q", s)
		}
		for _, err := range errs {
			if strings.Contains(err.Error(), s) {
				t.Errorf("error %q shows key material", err)
			}
		}
	}
}

type writerFunc func(p []byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
