package benchtest

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/iotjobs/iotjobs/testkit/brokertest"
	"github.com/iotjobs/iotjobs/testkit/pki"
)

// ErrNoMosquitto is returned by StartMosquitto when the binary is missing.
var ErrNoMosquitto = errors.New("benchtest: mosquitto not installed")

// Broker is a broker on loopback with TLS that requires a client
// certificate of PKI's CA.
type Broker struct {
	// Name is "mochi" or "mosquitto".
	Name string
	// Addr is the TLS listener, host:port.
	Addr string
	// PKI signed the server certificate and Client.
	PKI *pki.Set
	// Close stops the broker.
	Close func()
}

// StartMochi starts the in-process mochi broker (brokertest.Start).
func StartMochi(set *pki.Set) (*Broker, error) {
	b, err := brokertest.Start(brokertest.Options{TLS: set.CA.ServerTLS(set.Server)})
	if err != nil {
		return nil, err
	}
	return &Broker{Name: "mochi", Addr: b.Addr(), PKI: set, Close: func() { b.Close() }}, nil
}

// StartMosquitto starts Debian's mosquitto with a TLS listener that
// requires a client certificate and set_tcp_nodelay true (without it a
// sequential request/reply stalls on delayed ACKs). It returns an error
// wrapping ErrNoMosquitto when the binary is missing.
func StartMosquitto(set *pki.Set) (*Broker, error) {
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/mosquitto"); serr != nil {
			return nil, ErrNoMosquitto
		}
		bin = "/usr/sbin/mosquitto"
	}
	// mosquitto started as root drops to the mosquitto user: everything it
	// reads must be readable by anybody.
	dir, err := os.MkdirTemp("", "iotjobs-bench-mosquitto-")
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*Broker, error) {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("benchtest: mosquitto: %w", err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return fail(err)
	}
	files, err := set.WriteFiles(dir)
	if err != nil {
		return fail(err)
	}
	for _, f := range []string{files.CA, files.ServerCert, files.ServerKey} {
		if err := os.Chmod(f, 0o644); err != nil {
			return fail(err)
		}
	}
	addr, err := brokertest.FreeAddr()
	if err != nil {
		return fail(err)
	}
	host, port, _ := net.SplitHostPort(addr)
	conf := filepath.Join(dir, "mosquitto.conf")
	var b strings.Builder
	b.WriteString("per_listener_settings false\nallow_anonymous true\npersistence false\nlog_dest stderr\nlog_type error\nset_tcp_nodelay true\n")
	b.WriteString("max_inflight_messages 0\nmax_queued_messages 0\n")
	fmt.Fprintf(&b, "listener %s %s\ncertfile %s\nkeyfile %s\ncafile %s\nrequire_certificate true\n", port, host, files.ServerCert, files.ServerKey, files.CA)
	if err := os.WriteFile(conf, []byte(b.String()), 0o644); err != nil {
		return fail(err)
	}
	cmd := exec.Command(bin, "-c", conf)
	var log strings.Builder
	cmd.Stderr = &log
	if err := cmd.Start(); err != nil {
		return fail(err)
	}
	stop := func() {
		cmd.Process.Kill()
		cmd.Wait()
		os.RemoveAll(dir)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			stop()
			return nil, fmt.Errorf("benchtest: mosquitto did not listen on %s: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return &Broker{Name: "mosquitto", Addr: addr, PKI: set, Close: stop}, nil
}
