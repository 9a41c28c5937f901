package pki_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/iotjobs/iotjobs/testkit/pki"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// handshake runs a TLS handshake over loopback TCP and returns the client's
// and the server's errors.
func handshake(t *testing.T, server, client *tls.Config) (clientErr, serverErr error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan error, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer conn.Close()
		s := tls.Server(conn, server)
		err = s.HandshakeContext(ctx)
		if err == nil {
			// TLS 1.3 verifies the client's certificate after the client's
			// handshake returned: read its first byte to be sure.
			_, err = s.Read(make([]byte, 1))
		}
		done <- err
	}()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := tls.Client(conn, client)
	clientErr = c.HandshakeContext(ctx)
	if clientErr == nil {
		_, clientErr = c.Write([]byte{1})
	}
	serverErr = <-done
	return clientErr, serverErr
}

func TestHandshake(t *testing.T) {
	set, err := pki.NewSet("thing-1")
	if err != nil {
		t.Fatal(err)
	}
	other, err := pki.NewCA("other CA")
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := other.Client("thing-1")
	if err != nil {
		t.Fatal(err)
	}
	wrongName, err := set.CA.Server("wrong.example")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name            string
		server, client  *tls.Config
		wantClientError bool
		wantServerError bool
	}{
		{"ok", set.CA.ServerTLS(set.Server), withName(set.CA.ClientTLS(set.Client), "localhost"), false, false},
		{"ok by IP", set.CA.ServerTLS(set.Server), withName(set.CA.ClientTLS(set.Client), "127.0.0.1"), false, false},
		{"no client certificate", set.CA.ServerTLS(set.Server), withName(&tls.Config{RootCAs: set.CA.Pool()}, "localhost"), false, true},
		{"client from another CA", set.CA.ServerTLS(set.Server), withName(set.CA.ClientTLS(foreign), "localhost"), false, true},
		{"server name wrong", set.CA.ServerTLS(wrongName), withName(set.CA.ClientTLS(set.Client), "localhost"), true, true},
		{"server from another CA", set.CA.ServerTLS(set.Server), withName(other.ClientTLS(set.Client), "localhost"), true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cerr, serr := handshake(t, tt.server, tt.client)
			if (serr != nil) != tt.wantServerError {
				t.Errorf("server error = %v, want error: %v", serr, tt.wantServerError)
			}
			if tt.wantClientError {
				var verr *tls.CertificateVerificationError
				if !errors.As(cerr, &verr) {
					t.Errorf("client error = %v, want a certificate verification error", cerr)
				}
			} else if !tt.wantServerError && cerr != nil {
				t.Errorf("client error = %v, want nil", cerr)
			}
		})
	}
}

func withName(c *tls.Config, name string) *tls.Config {
	c.ServerName = name
	return c
}

func TestCertificates(t *testing.T) {
	set, err := pki.NewSet("thing-1")
	if err != nil {
		t.Fatal(err)
	}
	if got := set.Client.Leaf.Subject.CommonName; got != "thing-1" {
		t.Errorf("client CN = %q, want thing-1", got)
	}
	if _, err := set.Client.Leaf.Verify(x509.VerifyOptions{Roots: set.CA.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("client certificate does not verify: %v", err)
	}
	if err := set.Server.Leaf.VerifyHostname("::1"); err != nil {
		t.Errorf("server certificate: %v", err)
	}
	if !set.CA.Certificate().IsCA {
		t.Error("CA certificate is not a CA")
	}
	if _, err := set.CA.Server(); err == nil {
		t.Error("Server() with no names: no error")
	}
	if _, err := set.CA.Client(""); err == nil {
		t.Error(`Client(""): no error`)
	}
}

func TestWriteFiles(t *testing.T) {
	set, err := pki.NewSet("thing-1")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	f, err := set.WriteFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []struct{ cert, key string }{{f.ServerCert, f.ServerKey}, {f.ClientCert, f.ClientKey}} {
		c, err := tls.LoadX509KeyPair(p.cert, p.key)
		if err != nil {
			t.Fatalf("LoadX509KeyPair(%s, %s): %v", p.cert, p.key, err)
		}
		if _, err := c.Leaf.Verify(x509.VerifyOptions{Roots: set.CA.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
			t.Errorf("%s does not verify: %v", p.cert, err)
		}
		st, err := os.Stat(p.key)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o644 {
			t.Errorf("%s mode = %v, want 0644", p.key, st.Mode().Perm())
		}
	}
	caPEM, err := os.ReadFile(f.CA)
	if err != nil {
		t.Fatal(err)
	}
	if !x509.NewCertPool().AppendCertsFromPEM(caPEM) {
		t.Error("ca.pem holds no certificate")
	}
	if _, _, err := pki.WritePEM(dir, "../x", set.Client); err == nil {
		t.Error("WritePEM with a path as name: no error")
	}
	if _, _, err := pki.WritePEM(dir, "x", tls.Certificate{}); err == nil {
		t.Error("WritePEM of an empty certificate: no error")
	}
	if _, _, err := pki.WritePEM(dir+"/missing", "x", set.Client); err == nil {
		t.Error("WritePEM into a missing directory: no error")
	}
	if key, err := pki.KeyPEM(set.Client); err != nil || !strings.Contains(string(key), "PRIVATE KEY") {
		t.Errorf("KeyPEM = %q, %v", key, err)
	}
}
