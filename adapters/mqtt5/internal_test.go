package mqtt5

import (
	"bytes"
	"crypto/tls"
	"errors"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/iotjobs/iotjobs/ports"
	"github.com/iotjobs/iotjobs/testkit/pki"
)

func TestSplitEndpoint(t *testing.T) {
	tests := []struct {
		in   string
		host string
		port int
		bad  bool
	}{
		{in: "abc-ats.iot.eu-west-1.amazonaws.com", host: "abc-ats.iot.eu-west-1.amazonaws.com", port: 8883},
		{in: "abc-ats.iot.eu-west-1.amazonaws.com:443", host: "abc-ats.iot.eu-west-1.amazonaws.com", port: 443},
		{in: "127.0.0.1:1883", host: "127.0.0.1", port: 1883},
		{in: "[::1]:8883", host: "::1", port: 8883},
		{in: "::1", host: "::1", port: 8883},
		{in: "[::1]", host: "::1", port: 8883},
		{in: "", bad: true},
		{in: ":8883", bad: true},
		{in: "host:0", bad: true},
		{in: "host:x", bad: true},
		{in: "a:b:c", bad: true},
		{in: "mqtts://host", bad: true},
		{in: "host name", bad: true},
	}
	for _, tt := range tests {
		host, port, err := splitEndpoint(tt.in)
		if tt.bad {
			if !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("splitEndpoint(%q) = %q, %d, %v; want an invalid configuration", tt.in, host, port, err)
			}
			continue
		}
		if err != nil || host != tt.host || port != tt.port {
			t.Errorf("splitEndpoint(%q) = %q, %d, %v; want %q, %d", tt.in, host, port, err, tt.host, tt.port)
		}
	}
}

// TestTLSSettings checks the TLS configuration the TLS dialer uses.
func TestTLSSettings(t *testing.T) {
	set, err := pki.NewSet("thing-1")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		endpoint, serverName string
		wantAddr, wantName   string
		wantALPN             []string
	}{
		{"abc-ats.iot.eu-west-1.amazonaws.com", "", "abc-ats.iot.eu-west-1.amazonaws.com:8883", "abc-ats.iot.eu-west-1.amazonaws.com", nil},
		{"abc-ats.iot.eu-west-1.amazonaws.com:443", "", "abc-ats.iot.eu-west-1.amazonaws.com:443", "abc-ats.iot.eu-west-1.amazonaws.com", []string{"x-amzn-mqtt-ca"}},
		{"127.0.0.1:8883", "localhost", "127.0.0.1:8883", "localhost", nil},
	}
	for _, tt := range tests {
		s, err := Config{Endpoint: tt.endpoint, ServerName: tt.serverName, ClientID: "thing-1", Certificate: &set.Client}.settings()
		if err != nil {
			t.Fatal(err)
		}
		d := s.dialer.(*tlsDialer)
		if d.addr != tt.wantAddr || d.cfg.ServerName != tt.wantName || !slices.Equal(d.cfg.NextProtos, tt.wantALPN) {
			t.Errorf("%s: dials %s as %q with ALPN %q; want %s as %q with %q", tt.endpoint, d.addr, d.cfg.ServerName, d.cfg.NextProtos, tt.wantAddr, tt.wantName, tt.wantALPN)
		}
		if d.cfg.MinVersion != tls.VersionTLS12 {
			t.Errorf("%s: MinVersion %x, want TLS 1.2", tt.endpoint, d.cfg.MinVersion)
		}
		if d.cfg.RootCAs != nil {
			t.Errorf("%s: RootCAs set, want the system roots", tt.endpoint)
		}
		cert, err := d.cfg.GetClientCertificate(&tls.CertificateRequestInfo{})
		if err != nil || !bytes.Equal(cert.Certificate[0], set.Client.Certificate[0]) {
			t.Errorf("%s: client certificate %v, %v", tt.endpoint, cert, err)
		}
		if s.keepAlive != 60 || s.connectTimeout != DefaultConnectTimeout || s.receiveMax != DefaultReceiveMaximum ||
			s.reconnectMin != DefaultReconnectMin || s.reconnectMax != DefaultReconnectMax || s.ackTimeout != 120*time.Second {
			t.Errorf("%s: defaults %+v", tt.endpoint, s)
		}
	}
}

func TestBackoff(t *testing.T) {
	c := &Client{s: &settings{reconnectMin: 100 * time.Millisecond, reconnectMax: time.Second}}
	for n, hi := range []time.Duration{100, 200, 400, 800, 1000, 1000} {
		hi *= time.Millisecond
		for range 50 {
			if d := c.backoff(n); d < c.s.reconnectMin || d > hi {
				t.Fatalf("backoff(%d) = %v, want %v–%v", n, d, c.s.reconnectMin, hi)
			}
		}
	}
	if d := c.backoff(1 << 30); d < c.s.reconnectMin || d > c.s.reconnectMax {
		t.Errorf("backoff(huge) = %v", d)
	}
	same := &Client{s: &settings{reconnectMin: time.Second, reconnectMax: time.Second}}
	if d := same.backoff(5); d != time.Second {
		t.Errorf("backoff with min = max = 1s: %v", d)
	}
}

func TestPublishSize(t *testing.T) {
	tests := []struct {
		m    ports.Message
		want int
	}{
		{ports.Message{Topic: "a"}, 1 + 1 + 2 + 1 + 1},
		{ports.Message{Topic: "a", QoS: 1}, 1 + 1 + 2 + 1 + 2 + 1},
		{ports.Message{Topic: "a", Payload: make([]byte, 200), QoS: 1}, 1 + 2 + 2 + 1 + 2 + 1 + 200},
		{ports.Message{Topic: "abcde", Payload: make([]byte, 20000)}, 1 + 3 + 2 + 5 + 1 + 20000},
	}
	for _, tt := range tests {
		if got := publishSize(tt.m); got != tt.want {
			t.Errorf("publishSize(%d-byte topic, %d-byte payload, QoS %d) = %d, want %d", len(tt.m.Topic), len(tt.m.Payload), tt.m.QoS, got, tt.want)
		}
	}
}

// TestPacketConn checks that a packet written under the lock leaves in one
// Write, and that a failed write closes the connection.
func TestPacketConn(t *testing.T) {
	a, b := net.Pipe()
	defer b.Close()
	pc := newPacketConn(a)
	got := make(chan []byte, 2)
	go func() {
		buf := make([]byte, 100)
		for {
			n, err := b.Read(buf)
			if err != nil {
				close(got)
				return
			}
			got <- bytes.Clone(buf[:n])
		}
	}()
	pc.Lock()
	pc.Write([]byte("he"))
	pc.Write(nil)
	pc.Write([]byte("llo"))
	pc.Unlock()
	if g := <-got; string(g) != "hello" {
		t.Errorf("one packet arrived as %q, want one read of hello", g)
	}
	b.Close()
	pc.Lock()
	pc.Write([]byte("lost"))
	pc.Unlock()
	pc.Lock()
	if _, err := pc.Write([]byte("x")); err == nil {
		t.Error("Write after a failed flush: nil error")
	}
	pc.Unlock()
	if _, ok := <-got; ok {
		t.Error("unexpected data")
	}
}

func TestReasonText(t *testing.T) {
	if got := reasonText(0x87); got != "reason 0x87 (not authorized)" {
		t.Errorf("reasonText(0x87) = %q", got)
	}
	if got := reasonText(0xF0); got != "reason 0xF0" {
		t.Errorf("reasonText(0xF0) = %q", got)
	}
}
