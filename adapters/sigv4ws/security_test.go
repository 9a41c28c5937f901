package sigv4ws_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"reflect"
	"testing"

	"github.com/iotjobs/iotjobs/adapters/sigv4ws"
	"github.com/iotjobs/iotjobs/testkit/tlstest"
)

// The secrets of this package are checked by TestSecretsNeverShown.

// TestTLSBelow12Refused: a server that speaks at most TLS 1.1 is refused,
// though its certificate is trusted; with TLS 1.2 the handshake completes.
func TestTLSBelow12Refused(t *testing.T) {
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
			p := tlstest.StartProbe(t, &tls.Config{Certificates: []tls.Certificate{testPKI().Server}, MinVersion: tt.min, MaxVersion: tt.max})
			c, err := dialer(t, p.Addr(), sigv4ws.Config{}).Dial(testCtx(t))
			if err == nil {
				c.Close()
			}
			tlstest.CheckVersion(t, p, err, tt.refused)
		})
	}
}

// TestServerAlwaysVerified: a self-signed server is refused unless its
// certificate is in RootCAs: with the system's roots (RootCAs nil) and with
// another CA.
func TestServerAlwaysVerified(t *testing.T) {
	self := tlstest.SelfSigned(t)
	p := tlstest.StartProbe(t, &tls.Config{Certificates: []tls.Certificate{self}, MinVersion: tls.VersionTLS12})
	addr := p.Addr()
	trusted := x509.NewCertPool()
	trusted.AddCert(self.Leaf)
	for _, tt := range []struct {
		name  string
		roots *x509.CertPool
		ok    bool
	}{
		{"system roots", nil, false},
		{"another CA", testPKI().CA.Pool(), false},
		{"trusted", trusted, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d, err := sigv4ws.NewDialer(sigv4ws.Config{Endpoint: addr, Region: "us-east-1", Credentials: static(longCreds), RootCAs: tt.roots})
			if err != nil {
				t.Fatal(err)
			}
			c, err := d.Dial(testCtx(t))
			if err == nil {
				c.Close()
				t.Fatal("Dial succeeded against a server that speaks no WebSocket")
			}
			herr := p.Handshake(t)
			if tt.ok {
				if herr != nil {
					t.Errorf("handshake with the certificate trusted: %v", herr)
				}
				return
			}
			var ua x509.UnknownAuthorityError
			if !errors.As(err, &ua) {
				t.Errorf("Dial: %v, want an unknown authority error", err)
			}
			if herr == nil {
				t.Error("the server completed the handshake")
			}
		})
	}
}

// TestNoInsecureOption: sigv4ws.Config has no way to skip verifying the
// server: no field named like InsecureSkipVerify and no *tls.Config.
func TestNoInsecureOption(t *testing.T) {
	tlstest.NoInsecureOption(t, reflect.TypeFor[sigv4ws.Config]())
}
