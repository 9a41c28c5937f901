package brokertest

import (
	"crypto/tls"
	"net"
	"sync"

	"github.com/mochi-mqtt/server/v2/listeners"
)

// gate works around lock-order bugs of mochi v2.7.9 that deadlock the
// broker under concurrent load: Inflight.NextImmediate and
// Clients.GetByListener take a read lock twice, so a writer arriving in
// between (another client's goroutine delivering a QoS 1 message, or a
// client connecting) blocks all three for good.
//
// The gate is one lock that a client's goroutine holds while it processes
// the bytes it read, and releases whenever it goes back to read from its
// connection: the broker processes one client's packets at a time, so no
// writer can come between the two read locks. Deliveries, written by each
// client's own write goroutine, are not gated; a gated goroutine only ever
// waits for a peer to read, which MQTT clients always do. Close and
// Restart hold the gate while they disconnect the clients.
type gate struct {
	mu sync.Mutex
}

// listener gates the connections l accepts.
func (g *gate) listener(l listeners.Listener) listeners.Listener {
	return &gatedListener{Listener: l, g: g}
}

type gatedListener struct {
	listeners.Listener
	g *gate
}

func (l *gatedListener) Serve(establish listeners.EstablishFn) {
	l.Listener.Serve(func(id string, c net.Conn) error {
		// mochi serves the client on this goroutine until it is gone; it
		// may stop reading while it holds the gate (after a DISCONNECT or
		// an error), so release it then.
		gc := &gatedConn{Conn: c, g: l.g}
		err := establish(id, gc)
		if gc.held {
			gc.held = false
			l.g.mu.Unlock()
		}
		return err
	})
}

// gatedConn holds the gate between its Read calls. Read is called by one
// goroutine, the client's, which releases the gate when it is done.
type gatedConn struct {
	net.Conn
	g    *gate
	held bool
}

func (c *gatedConn) Read(p []byte) (int, error) {
	if c.held {
		c.held = false
		c.g.mu.Unlock()
	}
	n, err := c.Conn.Read(p)
	if err == nil {
		c.g.mu.Lock()
		c.held = true
	}
	return n, err
}

// ConnectionState returns the TLS state of a TLS connection, and the zero
// state otherwise.
func (c *gatedConn) ConnectionState() tls.ConnectionState {
	if tc, ok := c.Conn.(interface{ ConnectionState() tls.ConnectionState }); ok {
		return tc.ConnectionState()
	}
	return tls.ConnectionState{}
}
