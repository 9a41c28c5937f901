package sigv4ws_test

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/iotjobs/iotjobs/adapters/sigv4ws"
)

// wsPair returns a Conn on the client side of a WebSocket connection and
// the raw server side, to look at the frames.
func wsPair(t *testing.T) (*sigv4ws.Conn, *websocket.Conn) {
	t.Helper()
	server := make(chan *websocket.Conn, 1)
	up := websocket.Upgrader{Subprotocols: []string{"mqtt"}}
	done := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		server <- ws
		<-done // keep the handler until the test ends
	}))
	t.Cleanup(func() {
		close(done)
		srv.Close()
	})
	d := websocket.Dialer{Subprotocols: []string{"mqtt"}, HandshakeTimeout: 5 * time.Second}
	ws, _, err := d.Dial("ws"+strings.TrimPrefix(srv.URL, "http")+"/mqtt", nil)
	if err != nil {
		t.Fatal(err)
	}
	c := sigv4ws.NewConn(ws)
	s := <-server
	t.Cleanup(func() {
		c.Close()
		s.Close()
	})
	return c, s
}

// frame reads one message from the server side.
func frame(t *testing.T, s *websocket.Conn) []byte {
	t.Helper()
	s.SetReadDeadline(time.Now().Add(5 * time.Second))
	typ, p, err := s.ReadMessage()
	if err != nil {
		t.Fatalf("server read: %v", err)
	}
	if typ != websocket.BinaryMessage {
		t.Fatalf("message type %d, want binary", typ)
	}
	return p
}

// publish is a QoS 0 PUBLISH of "ab" to topic "t", as paho writes it: the
// fixed header's type byte, its remaining length, the rest, an empty
// payload write.
var publish = [][]byte{{0x30}, {5}, {0, 1, 't', 'a', 'b'}, {}}

func TestConnOneFramePerPacket(t *testing.T) {
	c, s := wsPair(t)
	// A packet written in pieces under the lock is one frame, sent as
	// soon as it is complete.
	c.Lock()
	for _, p := range publish[:3] {
		if n, err := c.Write(p); err != nil || n != len(p) {
			t.Fatalf("Write = %d, %v", n, err)
		}
	}
	if got := frame(t, s); !bytes.Equal(got, bytes.Join(publish, nil)) {
		t.Fatalf("frame % x, want % x", got, bytes.Join(publish, nil))
	}
	if _, err := c.Write(publish[3]); err != nil {
		t.Fatal(err)
	}
	c.Unlock()

	// Pieces that do not make a packet go out at Unlock, in one frame.
	c.Lock()
	c.Write([]byte{0xc0})
	c.Write([]byte{0x00, 0xd0}) // a PINGREQ and the start of another
	c.Unlock()
	if got := frame(t, s); !bytes.Equal(got, []byte{0xc0, 0x00, 0xd0}) {
		t.Fatalf("frame % x", got)
	}

	// A Write outside the lock is a frame; an empty one sends nothing.
	for _, p := range [][]byte{{1, 2}, {}, {3}} {
		if n, err := c.Write(p); err != nil || n != len(p) {
			t.Fatalf("Write = %d, %v", n, err)
		}
	}
	if got := frame(t, s); !bytes.Equal(got, []byte{1, 2}) {
		t.Fatalf("frame % x", got)
	}
	if got := frame(t, s); !bytes.Equal(got, []byte{3}) {
		t.Fatalf("frame % x", got)
	}

	// A large packet (two-byte remaining length) is one frame too.
	big := make([]byte, 200_000)
	rem := len(big) - 4
	big[0], big[1], big[2], big[3] = 0x30, byte(0x80|rem&0x7f), byte(0x80|(rem>>7)&0x7f), byte(rem>>14)
	c.Lock()
	c.Write(big[:4])
	c.Write(big[4:])
	c.Unlock()
	if got := frame(t, s); !bytes.Equal(got, big) {
		t.Fatalf("large frame of %d bytes, want %d", len(got), len(big))
	}
}

// TestConnConcurrentPackets checks that packets written by many
// goroutines under the lock arrive whole, one per frame.
func TestConnConcurrentPackets(t *testing.T) {
	c, s := wsPair(t)
	const writers, each = 8, 50
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				n := w*each + i
				c.Lock()
				c.Write([]byte{0x30})
				c.Write([]byte{5})
				c.Write([]byte{0, 1, 't'})
				c.Write([]byte{byte(n >> 8), byte(n)})
				c.Unlock()
			}
		})
	}
	seen := make(map[int]bool)
	for range writers * each {
		p := frame(t, s)
		if len(p) != 7 || p[0] != 0x30 || p[1] != 5 || string(p[2:5]) != "\x00\x01t" {
			t.Fatalf("frame % x is not one packet", p)
		}
		seen[int(p[5])<<8|int(p[6])] = true
	}
	wg.Wait()
	if len(seen) != writers*each {
		t.Errorf("saw %d distinct packets, want %d", len(seen), writers*each)
	}
}

func TestConnReadAcrossFrames(t *testing.T) {
	c, s := wsPair(t)
	msgs := [][]byte{{0x30, 5}, {0, 1}, {}, {'t', 'a', 'b'}, bytes.Repeat([]byte{7}, 10_000)}
	for _, m := range msgs {
		if err := s.WriteMessage(websocket.BinaryMessage, m); err != nil {
			t.Fatal(err)
		}
	}
	want := bytes.Join(msgs, nil)
	got := make([]byte, len(want))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("ReadFull: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("bytes read differ from those sent")
	}
	if n, err := c.Read(nil); n != 0 || err != nil {
		t.Errorf("Read(nil) = %d, %v", n, err)
	}
	// A normal close reads as io.EOF, again and again.
	s.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	for range 3 {
		if _, err := c.Read(got); err != io.EOF {
			t.Fatalf("Read after close = %v, want io.EOF", err)
		}
	}
}

func TestConnTextFrame(t *testing.T) {
	c, s := wsPair(t)
	s.WriteMessage(websocket.TextMessage, []byte("hello"))
	buf := make([]byte, 10)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	// Many reads of the failed connection: gorilla would panic after
	// 1000 of them; Conn answers from the error it kept.
	for range 1500 {
		if _, err := c.Read(buf); !errors.Is(err, sigv4ws.ErrTextFrame) {
			t.Fatalf("Read = %v, want ErrTextFrame", err)
		}
	}
	// The peer is told why.
	s.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, _, err := s.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.CloseUnsupportedData {
		t.Fatalf("server read %v, want close 1003", err)
	}
}

func TestConnDeadlines(t *testing.T) {
	c, _ := wsPair(t)
	if c.LocalAddr() == nil || c.RemoteAddr() == nil {
		t.Fatal("nil address")
	}
	if err := c.SetDeadline(time.Now().Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	_, err := c.Read(make([]byte, 1))
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("Read past the deadline = %v, want a timeout", err)
	}
	if _, err := c.Write([]byte{1}); err == nil {
		t.Fatal("Write past the deadline succeeded")
	}
}

// TestConnBlockedWrite checks that a write blocked on a peer that does not
// read ends at its deadline, and that Close ends one with no deadline.
func TestConnBlockedWrite(t *testing.T) {
	for _, tt := range []struct {
		name     string
		deadline bool
	}{{"deadline", true}, {"close", false}} {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := wsPair(t)
			if tt.deadline {
				c.SetWriteDeadline(time.Now().Add(200 * time.Millisecond))
			}
			errc := make(chan error, 1)
			started := make(chan struct{})
			go func() {
				close(started)
				chunk := make([]byte, 1<<20)
				for {
					if _, err := c.Write(chunk); err != nil {
						errc <- err
						return
					}
				}
			}()
			if !tt.deadline {
				// The writer fills the socket buffers and blocks; Close
				// ends its write whether it comes before or after.
				<-started
				c.Close()
			}
			select {
			case err := <-errc:
				var ne net.Error
				if tt.deadline && (!errors.As(err, &ne) || !ne.Timeout()) {
					t.Fatalf("Write = %v, want a timeout", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the blocked Write did not end")
			}
		})
	}
}

func TestConnClose(t *testing.T) {
	c, s := wsPair(t)
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Read after Close = %v, want net.ErrClosed", err)
	}
	if _, err := c.Write([]byte{1}); err == nil {
		t.Error("Write after Close succeeded")
	}
	// A packet whose flush fails reports it on the Write that completes
	// it.
	c.Lock()
	c.Write([]byte{0x30})
	if _, err := c.Write([]byte{0}); err == nil {
		t.Error("Write completing a packet after Close succeeded")
	}
	c.Unlock()
	// The peer got a normal close.
	s.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, _, err := s.ReadMessage()
	if !websocket.IsCloseError(err, websocket.CloseNormalClosure) {
		t.Errorf("server read %v, want a normal close", err)
	}
}

// TestConnUnlockFailureCloses checks that a packet that cannot be sent at
// Unlock closes the connection, so that the reader notices.
func TestConnUnlockFailureCloses(t *testing.T) {
	c, _ := wsPair(t)
	c.SetWriteDeadline(time.Now().Add(-time.Second))
	c.Lock()
	c.Write([]byte{0x30, 9}) // incomplete: sent at Unlock, which fails
	c.Unlock()
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Read after a failed Unlock = %v, want net.ErrClosed", err)
	}
}
