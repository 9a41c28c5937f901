package sigv4ws

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// ErrTextFrame is returned by Conn.Read when the peer sent a text frame:
// MQTT over WebSocket travels in binary frames only. The connection is
// closed.
var ErrTextFrame = errors.New("sigv4ws: text frame received; MQTT over WebSocket uses binary frames")

// closeWait bounds the goodbye messages (a DISCONNECT packet, a WebSocket
// close frame) sent before a connection is closed.
const closeWait = time.Second

// disconnect is an MQTT DISCONNECT packet with no payload: in MQTT 5 its
// reason code is 0, normal disconnection, so the broker does not publish
// the client's will.
var disconnect = []byte{0xe0, 0x00}

// Conn is a net.Conn over a WebSocket connection that carries MQTT: every
// byte travels in binary frames. The Dialer returns one; NewConn makes one
// from any gorilla/websocket connection (the test listener in
// testkit/sigv4test uses it on the server side).
//
// Writes: Conn implements sync.Locker, as paho expects of a connection it
// shares between goroutines. Between Lock and Unlock, Write buffers, and the
// buffered bytes go out as one binary message as soon as they make one
// complete MQTT packet (so the Write that completes it reports a failure),
// or at Unlock at the latest. paho takes the lock around the several Write
// calls that make one packet, so every packet is one WebSocket message. A
// Write outside Lock sends one message at once. If a writer uses Lock, every
// writer of the same Conn must: a Write outside Lock while another goroutine
// holds it would land in that goroutine's packet.
//
// Reads return the bytes of consecutive binary messages as one stream; a
// text message fails the connection with ErrTextFrame; a normal close by
// the peer reads as io.EOF.
//
// Deadlines map to the WebSocket's; SetWriteDeadline waits for a write in
// progress. As with any WebSocket connection, a read or write that timed
// out leaves the connection unusable: close it. Close ends a blocked read
// or write at once.
type Conn struct {
	ws  *websocket.Conn
	log *slog.Logger

	// pkt is the Locker paho takes around one packet. locked says that
	// someone holds it, so Write buffers into buf.
	pkt    sync.Mutex
	locked atomic.Bool
	buf    []byte

	// wmu serialises the writes and the write deadline of ws (gorilla
	// allows one writer). It is never pkt: Unlock takes wmu while pkt is
	// held.
	wmu sync.Mutex

	// rmu serialises reads (gorilla allows one reader); r is the message
	// being read and rerr the error that ended reading, returned again to
	// every later Read (gorilla panics after many reads of a failed
	// connection).
	rmu  sync.Mutex
	r    io.Reader
	rerr error

	closeOnce sync.Once
	closed    atomic.Bool
	closeErr  error

	timerMu sync.Mutex
	timer   *time.Timer // closes the connection before its credentials expire
}

// NewConn returns a Conn that reads and writes MQTT bytes over ws. It takes
// ws over: use ws through the Conn only.
func NewConn(ws *websocket.Conn) *Conn {
	return newConn(ws, nil)
}

func newConn(ws *websocket.Conn, log *slog.Logger) *Conn {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Conn{ws: ws, log: log}
}

// Lock starts one MQTT packet: until Unlock, Write buffers. It excludes the
// other goroutines that call Lock, not the readers.
func (c *Conn) Lock() {
	c.pkt.Lock()
	c.locked.Store(true)
}

// Unlock sends what Write buffered since Lock, if anything is left, as one
// binary message, and lets the next writer in. If sending fails, Unlock
// closes the connection, so that the reader notices the loss.
func (c *Conn) Unlock() {
	if len(c.buf) > 0 {
		if err := c.flush(); err != nil {
			c.log.Debug("sigv4ws: write failed; closing the connection", "error", err)
			_ = c.Close()
		}
	}
	c.locked.Store(false)
	c.pkt.Unlock()
}

// Write sends p as one binary message, or, between Lock and Unlock, buffers
// it (see Conn).
func (c *Conn) Write(p []byte) (int, error) {
	if c.locked.Load() {
		c.buf = append(c.buf, p...)
		if onePacket(c.buf) {
			if err := c.flush(); err != nil {
				return 0, err
			}
		}
		return len(p), nil
	}
	if len(p) == 0 {
		return 0, nil
	}
	if err := c.send(p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// flush sends the buffered packet and empties the buffer, dropping a large
// one so that an idle connection holds little memory.
func (c *Conn) flush() error {
	err := c.send(c.buf)
	if cap(c.buf) > 16<<10 {
		c.buf = nil
	} else {
		c.buf = c.buf[:0]
	}
	return err
}

// send writes p as one binary message.
func (c *Conn) send(p []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.ws.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return c.mapErr(err)
	}
	return nil
}

// onePacket reports whether b holds exactly one complete MQTT packet: a
// fixed header (type byte, remaining length as a variable byte integer)
// followed by that many bytes.
func onePacket(b []byte) bool {
	n, mul := 0, 1
	for i := 1; i < len(b) && i <= 4; i++ {
		n += int(b[i]&0x7f) * mul
		if b[i]&0x80 == 0 {
			return len(b) == 1+i+n
		}
		mul *= 128
	}
	return false
}

// Read reads MQTT bytes, across message boundaries.
func (c *Conn) Read(p []byte) (int, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if len(p) == 0 {
		return 0, c.rerr
	}
	for {
		if c.rerr != nil {
			return 0, c.rerr
		}
		if c.r == nil {
			typ, r, err := c.ws.NextReader()
			if err != nil {
				c.rerr = c.mapErr(err)
				return 0, c.rerr
			}
			if typ != websocket.BinaryMessage {
				c.rerr = ErrTextFrame
				c.log.Debug("sigv4ws: text frame received; closing the connection")
				_ = c.ws.WriteControl(websocket.CloseMessage,
					websocket.FormatCloseMessage(websocket.CloseUnsupportedData, "binary frames only"),
					time.Now().Add(closeWait))
				_ = c.Close()
				return 0, c.rerr
			}
			c.r = r
		}
		n, err := c.r.Read(p)
		switch {
		case errors.Is(err, io.EOF):
			c.r = nil
			if n > 0 {
				return n, nil
			}
		case err != nil:
			c.r = nil
			c.rerr = c.mapErr(err)
			return n, c.rerr
		default:
			return n, nil
		}
	}
}

// mapErr turns a normal WebSocket close into io.EOF and any error after
// Close into net.ErrClosed.
func (c *Conn) mapErr(err error) error {
	if c.closed.Load() {
		return net.ErrClosed
	}
	var ce *websocket.CloseError
	if errors.As(err, &ce) && (ce.Code == websocket.CloseNormalClosure || ce.Code == websocket.CloseGoingAway) {
		return io.EOF
	}
	return err
}

// Close sends a WebSocket close frame (waiting at most a second for a
// writer in progress) and closes the connection. A second call returns the
// first one's result.
func (c *Conn) Close() error {
	c.closeOnce.Do(func() {
		c.closed.Store(true)
		c.timerMu.Lock()
		if c.timer != nil {
			c.timer.Stop()
		}
		c.timerMu.Unlock()
		_ = c.ws.WriteControl(websocket.CloseMessage,
			websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(closeWait))
		c.closeErr = c.ws.Close()
	})
	return c.closeErr
}

// closeAfter makes the connection end itself after d with a DISCONNECT
// packet, unless it is closed first. reason is logged.
func (c *Conn) closeAfter(d time.Duration, logArgs ...any) {
	c.timerMu.Lock()
	defer c.timerMu.Unlock()
	if c.closed.Load() {
		return
	}
	c.timer = time.AfterFunc(d, func() { c.expire(logArgs...) })
}

// expire ends the connection as a client leaving: an MQTT DISCONNECT (so
// the broker keeps the session and publishes no will), a WebSocket close
// frame, then the socket. The goodbye is bounded: a stuck connection is
// cut.
func (c *Conn) expire(logArgs ...any) {
	if c.closed.Load() {
		return
	}
	c.log.Info("sigv4ws: closing the connection before its credentials expire; the client reconnects with fresh ones", logArgs...)
	cut := time.AfterFunc(2*closeWait, func() { _ = c.Close() })
	defer cut.Stop()
	c.wmu.Lock()
	if err := c.ws.SetWriteDeadline(time.Now().Add(closeWait)); err == nil {
		_ = c.ws.WriteMessage(websocket.BinaryMessage, disconnect)
	}
	c.wmu.Unlock()
	_ = c.Close()
}

// LocalAddr returns the local network address.
func (c *Conn) LocalAddr() net.Addr { return c.ws.LocalAddr() }

// RemoteAddr returns the remote network address.
func (c *Conn) RemoteAddr() net.Addr { return c.ws.RemoteAddr() }

// SetDeadline sets the read and write deadlines.
func (c *Conn) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.SetWriteDeadline(t)
}

// SetReadDeadline sets the deadline of reads, the one in progress
// included.
func (c *Conn) SetReadDeadline(t time.Time) error { return c.ws.SetReadDeadline(t) }

// SetWriteDeadline sets the deadline of the writes that follow. gorilla
// allows no change while a message is being written, so it waits for a
// write in progress to end; Close ends a stuck one at once.
func (c *Conn) SetWriteDeadline(t time.Time) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.ws.SetWriteDeadline(t)
}
