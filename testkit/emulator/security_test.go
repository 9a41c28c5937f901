package emulator_test

import (
	"bufio"
	"context"
	"encoding/hex"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/iotjobs/iotjobs/testkit/emulator"
)

// TestLoopbackByDefault: with zero Options, every listener of the emulator
// (MQTT over TLS, SigV4 WebSocket, control plane) binds 127.0.0.1, as the
// addresses it reports say and, on Linux, as the kernel's table of this
// process's listening sockets says.
func TestLoopbackByDefault(t *testing.T) {
	before := listening(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e, err := emulator.Start(ctx, emulator.Options{})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := e.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})

	ctl, err := url.Parse(e.ControlURL())
	if err != nil {
		t.Fatal(err)
	}
	for name, addr := range map[string]string{"MQTTAddr": e.MQTTAddr(), "WebSocketAddr": e.WebSocketAddr(), "ControlURL": ctl.Host} {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			t.Errorf("%s %q: %v", name, addr, err)
			continue
		}
		if host != "127.0.0.1" {
			t.Errorf("%s = %q, want 127.0.0.1", name, addr)
		}
	}

	if runtime.GOOS != "linux" {
		return
	}
	var added []string
	for inode, addr := range listening(t) {
		if _, ok := before[inode]; !ok {
			added = append(added, addr)
		}
	}
	t.Logf("listening: %v", added)
	if len(added) < 3 {
		t.Errorf("found %d new listening sockets (%v), want at least the 3 listeners", len(added), added)
	}
	for _, addr := range added {
		if !strings.HasPrefix(addr, "127.0.0.1:") {
			t.Errorf("listening on %s, want 127.0.0.1 only", addr)
		}
	}
}

// listening returns the TCP sockets this process listens on (Linux), by
// socket inode: the local address of each, as host:port. It returns nil
// elsewhere.
func listening(t *testing.T) map[string]string {
	t.Helper()
	if runtime.GOOS != "linux" {
		return nil
	}
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	mine := map[string]bool{}
	for _, fd := range fds {
		target, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name()))
		if inode, ok := strings.CutPrefix(target, "socket:["); err == nil && ok {
			mine[strings.TrimSuffix(inode, "]")] = true
		}
	}
	out := map[string]string{}
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		f, err := os.Open(table)
		if err != nil {
			continue
		}
		s := bufio.NewScanner(f)
		s.Scan() // header
		for s.Scan() {
			// sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
			fields := strings.Fields(s.Text())
			if len(fields) < 10 || fields[3] != "0A" || !mine[fields[9]] { // 0A: LISTEN
				continue
			}
			out[fields[9]] = procAddr(t, fields[1])
		}
		f.Close()
	}
	return out
}

// procAddr decodes an address of /proc/net/tcp{,6}: hex IP (32-bit words
// in host byte order, little-endian on x86 and arm64) and hex port.
func procAddr(t *testing.T, s string) string {
	t.Helper()
	hexIP, hexPort, _ := strings.Cut(s, ":")
	raw, err := hex.DecodeString(hexIP)
	port, perr := strconv.ParseUint(hexPort, 16, 16)
	if err != nil || perr != nil || len(raw)%4 != 0 {
		t.Fatalf("bad address %q", s)
	}
	ip := make(net.IP, len(raw))
	for w := 0; w < len(raw); w += 4 {
		ip[w], ip[w+1], ip[w+2], ip[w+3] = raw[w+3], raw[w+2], raw[w+1], raw[w]
	}
	return net.JoinHostPort(ip.String(), strconv.Itoa(int(port)))
}
