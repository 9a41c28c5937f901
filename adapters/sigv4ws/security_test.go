package sigv4ws_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iotjobs/iotjobs/adapters/sigv4ws"
)

// The secrets of this package are checked by TestSecretsNeverShown.

// tlsProbe is a TLS server on loopback that only completes handshakes and
// records their outcome.
type tlsProbe struct {
	ln      net.Listener
	results chan error
	wg      sync.WaitGroup
}

func startTLSProbe(t *testing.T, cfg *tls.Config) *tlsProbe {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tlsProbe{ln: ln, results: make(chan error, 100)}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			tc := tls.Server(c, cfg)
			_ = tc.SetDeadline(time.Now().Add(5 * time.Second))
			err = tc.Handshake()
			c.Close()
			select {
			case p.results <- err:
			default:
			}
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		p.wg.Wait()
	})
	return p
}

func (p *tlsProbe) handshake(t *testing.T) error {
	t.Helper()
	select {
	case err := <-p.results:
		return err
	case <-time.After(5 * time.Second):
		t.Fatal("no handshake")
		return nil
	}
}

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
			p := startTLSProbe(t, &tls.Config{Certificates: []tls.Certificate{testPKI().Server}, MinVersion: tt.min, MaxVersion: tt.max})
			c, err := dialer(t, p.ln.Addr().String(), sigv4ws.Config{}).Dial(testCtx(t))
			if err == nil {
				c.Close()
				t.Fatal("Dial succeeded against a server that speaks no WebSocket")
			}
			herr := p.handshake(t)
			if !tt.refused {
				if herr != nil {
					t.Fatalf("TLS 1.2 handshake failed: %v (client: %v)", herr, err)
				}
				return
			}
			if herr == nil {
				t.Fatalf("handshake completed with %s", tt.name)
			}
			if !strings.Contains(err.Error(), "protocol version") {
				t.Errorf("Dial: %v, want a protocol version error", err)
			}
		})
	}
}

// TestServerAlwaysVerified: a self-signed server is refused unless its
// certificate is in RootCAs: with the system's roots (RootCAs nil) and with
// another CA.
func TestServerAlwaysVerified(t *testing.T) {
	self := selfSigned(t)
	p := startTLSProbe(t, &tls.Config{Certificates: []tls.Certificate{self}, MinVersion: tls.VersionTLS12})
	addr := p.ln.Addr().String()
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
			herr := p.handshake(t)
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
	insecure := regexp.MustCompile(`(?i)insecure|skip|verif|noverify|trustall|tlsconfig`)
	tlsConfig := reflect.TypeFor[tls.Config]()
	for f := range reflect.TypeFor[sigv4ws.Config]().Fields() {
		typ := f.Type
		for typ.Kind() == reflect.Pointer || typ.Kind() == reflect.Slice {
			typ = typ.Elem()
		}
		if insecure.MatchString(f.Name) || typ == tlsConfig {
			t.Errorf("Config.%s (%s) may turn off certificate verification", f.Name, f.Type)
		}
	}
}

// selfSigned returns a self-signed server certificate for 127.0.0.1 and
// localhost.
func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "self-signed"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}
