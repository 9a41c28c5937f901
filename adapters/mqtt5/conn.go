package mqtt5

import (
	"net"
	"sync"
)

// packetConn makes a net.Conn safe for paho's concurrent writers: it
// implements sync.Locker, which paho takes around the several Write calls
// of one packet, and gathers those writes into one Write on Unlock (one TLS
// record and one system call per packet instead of up to four).
//
// Every write paho makes holds the lock, so Write assumes it is held. A
// failed flush closes the connection, which paho's reader then reports;
// later writes return the error.
type packetConn struct {
	net.Conn
	mu  sync.Mutex
	buf []byte
	err error
}

func newPacketConn(c net.Conn) *packetConn { return &packetConn{Conn: c} }

// Lock starts a packet.
func (c *packetConn) Lock() { c.mu.Lock() }

// Unlock sends the packet written since Lock.
func (c *packetConn) Unlock() {
	if len(c.buf) > 0 && c.err == nil {
		if _, err := c.Conn.Write(c.buf); err != nil {
			c.err = err
			c.Conn.Close()
		}
	}
	if cap(c.buf) > 64<<10 {
		c.buf = nil // do not keep a large payload's buffer
	} else {
		c.buf = c.buf[:0]
	}
	c.mu.Unlock()
}

// Write adds p to the packet being written.
func (c *packetConn) Write(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	c.buf = append(c.buf, p...)
	return len(p), nil
}
