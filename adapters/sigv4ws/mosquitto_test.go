package sigv4ws_test

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/iotjobs/iotjobs/adapters/mqtt5"
	"github.com/iotjobs/iotjobs/adapters/sigv4ws"
	"github.com/iotjobs/iotjobs/testkit/brokertest"
	"github.com/iotjobs/iotjobs/testkit/pubsubtest"
)

// TestMosquittoInterop runs the conformance suite over Debian's mosquitto
// WebSocket listener (wss; it checks no signature): the WebSocket framing
// and the MQTT over it work with an independent implementation. Skipped
// when mosquitto is not installed, unless IOTJOBS_REQUIRE_MOSQUITTO=1.
func TestMosquittoInterop(t *testing.T) {
	files, err := testPKI().WriteFiles(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	m := brokertest.StartMosquitto(t, brokertest.MosquittoOptions{
		CertFile:     files.ServerCert,
		KeyFile:      files.ServerKey,
		WebSocket:    true,
		WebSocketTLS: true,
	})
	wakeMosquitto(t, m.Addr())
	d := dialer(t, m.WebSocketAddr(), sigv4ws.Config{Credentials: static(tempCreds)})

	// The suite's Reconnect closes the client's current connection, which
	// the test keeps as the dialer returns it.
	var mu sync.Mutex
	conns := make(map[string]net.Conn)
	pubsubtest.Run(t, func(t *testing.T) pubsubtest.Client {
		id := "mosq-" + strconv.Itoa(int(clientSeq.Add(1)))
		record := mqtt5.DialerFunc(func(ctx context.Context) (net.Conn, error) {
			c, err := d.Dial(ctx)
			if err == nil {
				mu.Lock()
				conns[id] = c
				mu.Unlock()
			}
			return c, err
		})
		c, err := mqtt5.Connect(testCtx(t), mqtt5.Config{
			ClientID:       id,
			Endpoint:       d.Endpoint(),
			Dialer:         record,
			ReconnectMin:   connectBackoffMin,
			ReconnectMax:   connectBackoffMax,
			ReceiveMaximum: conformanceReceiveMaximum,
		})
		if err != nil {
			t.Fatalf("mqtt5.Connect: %v", err)
		}
		return c
	}, pubsubtest.Features{
		NoLocal:      true,
		DollarTopics: true,
		Reconnect: func(t testing.TB, c pubsubtest.Client) {
			mu.Lock()
			conn := conns[c.(*mqtt5.Client).ClientID()]
			mu.Unlock()
			conn.Close()
		},
	})
}

// wakeMosquitto keeps mosquitto's main loop busy until the test ends, with
// a PINGREQ every 5 ms from a client on its MQTT listener (TLS). Debian's
// mosquitto 2.0 serves its WebSocket listeners only when that loop wakes,
// which an idle broker does every 100 ms or so: each round trip over
// WebSocket would wait up to 100 ms (a connection takes 300 ms), and the
// suite would take ten times longer without testing anything more.
func wakeMosquitto(t *testing.T, addr string) {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: testPKI().CA.Pool(), MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatalf("wake mosquitto: %v", err)
	}
	// CONNECT, MQTT 3.1.1, clean session, keep-alive 60 s, client "waker".
	if _, err := c.Write([]byte{0x10, 18, 0, 4, 'M', 'Q', 'T', 'T', 4, 2, 0, 60, 0, 6, 'w', 'a', 'k', 'e', 'r', '0'}); err != nil {
		t.Fatalf("wake mosquitto: %v", err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { io.Copy(io.Discard, c) })
	wg.Go(func() {
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				if _, err := c.Write([]byte{0xc0, 0}); err != nil {
					return
				}
			}
		}
	})
	t.Cleanup(func() {
		close(stop)
		c.Close()
		wg.Wait()
	})
}
