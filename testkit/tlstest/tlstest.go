// Package tlstest checks a transport's TLS security from its tests: a
// loopback server that only records the outcome of TLS handshakes (to see
// what a client accepts or refuses), a self-signed certificate, and a check
// that a configuration type offers no way to turn off verification.
package tlstest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// timeout bounds every handshake and every wait for one.
const timeout = 5 * time.Second

// Probe is a TLS server on loopback that completes handshakes and records
// their outcome, nothing more.
type Probe struct {
	ln      net.Listener
	results chan error
	wg      sync.WaitGroup
}

// StartProbe starts a Probe serving cfg on a free loopback port; it stops
// when the test ends.
func StartProbe(t testing.TB, cfg *tls.Config) *Probe {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Probe{ln: ln, results: make(chan error, 100)}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			tc := tls.Server(c, cfg)
			_ = tc.SetDeadline(time.Now().Add(timeout))
			err = tc.Handshake()
			c.Close()
			select {
			case p.results <- err:
			default: // nobody asks: drop it
			}
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		p.wg.Wait()
	})
	return p
}

// Addr returns the Probe's address, 127.0.0.1:PORT.
func (p *Probe) Addr() string { return p.ln.Addr().String() }

// Handshake returns the server's outcome of the next handshake: nil when
// it completed. It fails the test if none happens within 5 seconds.
func (p *Probe) Handshake(t testing.TB) error {
	t.Helper()
	select {
	case err := <-p.results:
		return err
	case <-time.After(timeout):
		t.Fatal("tlstest: no handshake within 5s")
		return nil
	}
}

// SelfSigned returns a self-signed server certificate for localhost and
// 127.0.0.1, trusted by nobody.
func SelfSigned(t testing.TB) tls.Certificate {
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

// insecureName matches field names that could switch verification off.
var insecureName = regexp.MustCompile(`(?i)insecure|skip|verif|noverify|trustall|tlsconfig`)

// NoInsecureOption fails the test if a field of typ, or of a struct of the
// module it holds, could disable certificate verification: a name like
// InsecureSkipVerify, or a *tls.Config, which carries its own.
func NoInsecureOption(t testing.TB, typ reflect.Type) {
	t.Helper()
	checkFields(t, typ, typ.Name())
}

func checkFields(t testing.TB, typ reflect.Type, path string) {
	t.Helper()
	for typ.Kind() == reflect.Pointer || typ.Kind() == reflect.Slice {
		typ = typ.Elem()
	}
	if typ == reflect.TypeFor[tls.Config]() {
		t.Errorf("%s is a tls.Config, which can disable verification", path)
		return
	}
	if typ.Kind() != reflect.Struct || typ.PkgPath() != "" && !strings.HasPrefix(typ.PkgPath(), "github.com/iotjobs/") {
		return // the standard library's types (tls.Certificate, ...) hold no switch
	}
	for f := range typ.Fields() {
		name := path + "." + f.Name
		if insecureName.MatchString(f.Name) {
			t.Errorf("%s: a field that may turn off certificate verification", name)
		}
		checkFields(t, f.Type, name)
	}
}

// CheckVersion checks the outcome of a client's connection to p, whose
// server speaks only the TLS versions the test chose: when refused, the
// handshake must have failed and clientErr must name the protocol version;
// otherwise the handshake must have completed. clientErr is the client's
// error, which is never nil: the probe speaks TLS and nothing more.
func CheckVersion(t testing.TB, p *Probe, clientErr error, refused bool) {
	t.Helper()
	if clientErr == nil {
		t.Fatal("tlstest: the client succeeded against a server that speaks only TLS")
	}
	herr := p.Handshake(t)
	switch {
	case !refused && herr != nil:
		t.Fatalf("TLS handshake failed: %v (client: %v)", herr, clientErr)
	case refused && herr == nil:
		t.Fatal("the handshake completed with a TLS version the client must refuse")
	case refused && !strings.Contains(clientErr.Error(), "protocol version"):
		t.Errorf("client error %v, want a protocol version error", clientErr)
	}
}
