package brokertest

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// RequireMosquittoEnv is the environment variable that, set to 1, makes
// StartMosquitto fail the test instead of skipping it when the mosquitto
// binary is missing (CI sets it after installing mosquitto).
const RequireMosquittoEnv = "IOTJOBS_REQUIRE_MOSQUITTO"

// MosquittoOptions configure a mosquitto broker. The zero value serves
// plain MQTT on a free loopback port.
type MosquittoOptions struct {
	// CAFile, CertFile and KeyFile are PEM files (as pki.WritePEM writes)
	// that make the MQTT listener serve TLS: the CA that client
	// certificates must chain to, the server's certificate and its key.
	// CertFile and KeyFile must both be set for TLS; CAFile is needed with
	// RequireCertificate. StartMosquitto copies them into a directory the
	// mosquitto user can read.
	CAFile, CertFile, KeyFile string
	// RequireCertificate makes the TLS listener refuse clients without a
	// certificate signed by CAFile (require_certificate true).
	RequireCertificate bool
	// WebSocket also opens a WebSocket listener (protocol websockets) on a
	// free port, which WebSocketAddr reports. It accepts every client;
	// mosquitto binds it on every interface.
	WebSocket bool
	// WebSocketTLS serves the WebSocket listener over TLS (wss) with
	// CertFile and KeyFile, without requiring a client certificate.
	WebSocketTLS bool
	// Config is appended to the generated configuration, for options this
	// struct does not cover.
	Config string
}

// Mosquitto is a mosquitto process started for a test. Its methods are
// safe for concurrent use.
type Mosquitto struct {
	t      testing.TB
	bin    string
	dir    string
	conf   string
	addr   string
	wsAddr string

	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{} // closed when cmd has been waited for
	log     *syncBuffer
	stopped bool
}

// StartMosquitto starts mosquitto with a generated configuration on free
// loopback ports, waits until it accepts connections and stops it when the
// test ends (t.Cleanup). The configuration sets set_tcp_nodelay true (no
// delayed-ACK stalls), persistence false, allow_anonymous true and
// log_dest stderr; the log is shown if the test fails.
//
// If the mosquitto binary is not found (in $PATH or /usr/sbin), the test
// is skipped, unless the environment variable IOTJOBS_REQUIRE_MOSQUITTO is
// 1, which makes it fail. Any other problem fails the test.
func StartMosquitto(t testing.TB, opts MosquittoOptions) *Mosquitto {
	t.Helper()
	bin, err := findMosquitto()
	if err != nil {
		if os.Getenv(RequireMosquittoEnv) == "1" {
			t.Fatalf("brokertest: %v (and %s=1)", err, RequireMosquittoEnv)
		}
		t.Skipf("brokertest: %v; install mosquitto or set %s=1 to fail instead", err, RequireMosquittoEnv)
	}
	if (opts.CertFile == "") != (opts.KeyFile == "") {
		t.Fatal("brokertest: MosquittoOptions need both CertFile and KeyFile, or neither")
	}
	if opts.RequireCertificate && (opts.CAFile == "" || opts.CertFile == "") {
		t.Fatal("brokertest: MosquittoOptions.RequireCertificate needs CAFile, CertFile and KeyFile")
	}
	if opts.WebSocketTLS && opts.CertFile == "" {
		t.Fatal("brokertest: MosquittoOptions.WebSocketTLS needs CertFile and KeyFile")
	}

	// mosquitto started as root drops privileges to the mosquitto user, so
	// everything it reads lives in a directory anybody may enter.
	dir, err := os.MkdirTemp("", "iotjobs-mosquitto-")
	if err != nil {
		t.Fatalf("brokertest: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatalf("brokertest: %v", err)
	}
	files := map[string]*string{"ca.pem": &opts.CAFile, "server.crt": &opts.CertFile, "server.key": &opts.KeyFile}
	for name, path := range files {
		if *path == "" {
			continue
		}
		data, err := os.ReadFile(*path)
		if err != nil {
			t.Fatalf("brokertest: %v", err)
		}
		*path = filepath.Join(dir, name)
		if err := os.WriteFile(*path, data, 0o644); err != nil {
			t.Fatalf("brokertest: %v", err)
		}
	}

	m := &Mosquitto{t: t, bin: bin, dir: dir, conf: filepath.Join(dir, "mosquitto.conf")}
	t.Cleanup(func() {
		m.Stop()
		if t.Failed() {
			t.Logf("mosquitto log:\n%s", m.Log())
		}
	})
	// A free port may be taken by the time mosquitto binds it: try again
	// with new ports a few times.
	var lastErr error
	for range 3 {
		if lastErr = m.configure(opts); lastErr != nil {
			break
		}
		if lastErr = m.start(); lastErr == nil {
			return m
		}
	}
	t.Fatalf("brokertest: start mosquitto: %v\n%s", lastErr, m.Log())
	return nil
}

func findMosquitto() (string, error) {
	if p, err := exec.LookPath("mosquitto"); err == nil {
		return p, nil
	}
	const sbin = "/usr/sbin/mosquitto"
	if _, err := os.Stat(sbin); err == nil {
		return sbin, nil
	}
	return "", errors.New("mosquitto binary not found")
}

// configure picks ports and writes the configuration file.
func (m *Mosquitto) configure(opts MosquittoOptions) error {
	var err error
	if m.addr, err = FreeAddr(); err != nil {
		return err
	}
	var b strings.Builder
	b.WriteString("# generated by brokertest\n")
	b.WriteString("per_listener_settings false\nallow_anonymous true\npersistence false\n")
	b.WriteString("log_dest stderr\nlog_type error\nlog_type warning\nlog_type notice\nlog_type information\nconnection_messages true\nlog_timestamp_format %H:%M:%S\n")
	b.WriteString("set_tcp_nodelay true\n")
	host, port, _ := net.SplitHostPort(m.addr)
	fmt.Fprintf(&b, "\nlistener %s %s\n", port, host)
	if opts.CertFile != "" {
		fmt.Fprintf(&b, "certfile %s\nkeyfile %s\n", opts.CertFile, opts.KeyFile)
		if opts.CAFile != "" {
			fmt.Fprintf(&b, "cafile %s\n", opts.CAFile)
		}
		fmt.Fprintf(&b, "require_certificate %t\n", opts.RequireCertificate)
	}
	m.wsAddr = ""
	if opts.WebSocket {
		if m.wsAddr, err = FreeAddr(); err != nil {
			return err
		}
		_, wsPort, _ := net.SplitHostPort(m.wsAddr)
		fmt.Fprintf(&b, "\nlistener %s\nprotocol websockets\n", wsPort)
		if opts.WebSocketTLS {
			fmt.Fprintf(&b, "certfile %s\nkeyfile %s\nrequire_certificate false\n", opts.CertFile, opts.KeyFile)
		}
	}
	if opts.Config != "" {
		b.WriteString("\n" + opts.Config + "\n")
	}
	return os.WriteFile(m.conf, []byte(b.String()), 0o644)
}

// start runs mosquitto and waits until its ports accept connections, or it
// exits, or 10 seconds pass.
func (m *Mosquitto) start() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	log := &syncBuffer{}
	cmd := exec.Command(m.bin, "-c", m.conf)
	cmd.Stdout = log
	cmd.Stderr = log
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	m.cmd, m.exited, m.log, m.stopped = cmd, exited, log, false

	addrs := []string{m.addr}
	if m.wsAddr != "" {
		addrs = append(addrs, m.wsAddr)
	}
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for _, a := range addrs {
		for {
			c, err := net.DialTimeout("tcp", a, time.Second)
			if err == nil {
				c.Close()
				break
			}
			if time.Now().After(deadline) {
				m.stopLocked()
				return fmt.Errorf("mosquitto does not listen on %s after 10s", a)
			}
			select {
			case <-exited:
				return fmt.Errorf("mosquitto exited: %v", cmd.ProcessState)
			case <-tick.C:
			}
		}
	}
	return nil
}

// Addr returns the address of the MQTT listener, host:port.
func (m *Mosquitto) Addr() string { return m.addr }

// WebSocketAddr returns the address of the WebSocket listener
// (127.0.0.1:port), or "" without MosquittoOptions.WebSocket. Its URL is
// ws://ADDR/ (wss:// with WebSocketTLS); mosquitto accepts any path.
func (m *Mosquitto) WebSocketAddr() string { return m.wsAddr }

// Log returns what mosquitto logged so far (of its current run).
func (m *Mosquitto) Log() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.log == nil {
		return ""
	}
	return m.log.String()
}

// Stop stops mosquitto (SIGTERM, then SIGKILL after 5 seconds) and waits
// for it to exit. Clients lose their connections. Stopping a stopped
// broker does nothing.
func (m *Mosquitto) Stop() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.stopLocked()
}

func (m *Mosquitto) stopLocked() {
	if m.cmd == nil || m.stopped {
		return
	}
	m.stopped = true
	m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.exited:
	case <-time.After(5 * time.Second):
		m.cmd.Process.Kill()
		<-m.exited
	}
}

// Restart stops mosquitto and starts it again on the same ports with the
// same configuration: every connection drops and every session is lost
// (persistence is off). It fails the test if mosquitto does not come back.
func (m *Mosquitto) Restart() {
	m.t.Helper()
	m.Stop()
	if err := m.start(); err != nil {
		m.t.Fatalf("brokertest: restart mosquitto: %v\n%s", err, m.Log())
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
