package tlstest

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestProbeAndSelfSigned(t *testing.T) {
	cert := SelfSigned(t)
	p := StartProbe(t, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})

	// Not trusted: the client refuses, and the server sees the handshake fail.
	c, err := tls.Dial("tcp", p.Addr(), &tls.Config{MinVersion: tls.VersionTLS12})
	if err == nil {
		c.Close()
		t.Fatal("a self-signed certificate was accepted with the system roots")
	}
	if p.Handshake(t) == nil {
		t.Error("the probe recorded a completed handshake")
	}

	// Trusted: the handshake completes.
	pool := x509.NewCertPool()
	pool.AddCert(cert.Leaf)
	c, err = tls.Dial("tcp", p.Addr(), &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if err := p.Handshake(t); err != nil {
		t.Errorf("trusted handshake: %v", err)
	}
}

// recorder is a testing.TB that keeps the errors reported to it.
type recorder struct {
	testing.TB
	errs  []string
	fatal bool
}

// Fatal records the failure without stopping the test, as Fatal would
// stop it only after CheckVersion returns.
func (r *recorder) Fatal(args ...any) { r.fatal = true; r.errs = append(r.errs, fmt.Sprint(args...)) }

// Fatalf records the failure like Fatal.
func (r *recorder) Fatalf(format string, args ...any) { r.Fatal(fmt.Sprintf(format, args...)) }

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

func TestNoInsecureOption(t *testing.T) {
	type inner struct{ SkipVerify bool }
	type unsafe struct {
		Endpoint string
		TLS      *tls.Config
		Nested   inner
		Certs    []tls.Certificate
	}
	type safe struct {
		Endpoint string
		Certs    []tls.Certificate
		RootCAs  *x509.CertPool
	}
	r := &recorder{TB: t}
	NoInsecureOption(r, reflect.TypeFor[unsafe]())
	if got := strings.Join(r.errs, "\n"); len(r.errs) != 2 || !strings.Contains(got, "unsafe.TLS") || !strings.Contains(got, "unsafe.Nested.SkipVerify") {
		t.Errorf("unsafe struct: errors %q, want TLS and Nested.SkipVerify", r.errs)
	}
	r = &recorder{TB: t}
	NoInsecureOption(r, reflect.TypeFor[safe]())
	if len(r.errs) != 0 {
		t.Errorf("safe struct: errors %q", r.errs)
	}
}

func TestCheckVersion(t *testing.T) {
	cert := SelfSigned(t)
	pool := x509.NewCertPool()
	pool.AddCert(cert.Leaf)
	dial := func(p *Probe) error {
		c, err := tls.Dial("tcp", p.Addr(), &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})
		if err == nil {
			c.Close()
			return fmt.Errorf("no MQTT here") // what a transport's client would say
		}
		return err
	}
	old := StartProbe(t, &tls.Config{Certificates: []tls.Certificate{cert}, MaxVersion: tls.VersionTLS11})
	CheckVersion(t, old, dial(old), true)

	current := StartProbe(t, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	CheckVersion(t, current, dial(current), false)

	// The check fails when the outcome contradicts the expectation.
	r := &recorder{TB: t}
	again := StartProbe(t, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	CheckVersion(r, again, dial(again), true) // TLS 1.2 completed: not a refusal
	if len(r.errs) == 0 && !r.fatal {
		t.Error("CheckVersion accepted a completed handshake as refused")
	}
}
