package mqtt5_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/iotjobs/iotjobs/adapters/mqtt5"
	"github.com/iotjobs/iotjobs/testkit/brokertest"
	"github.com/iotjobs/iotjobs/testkit/pki"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// env is a broker that requires client certificates from one test CA.
type env struct {
	ca     *pki.CA
	broker *brokertest.Broker
	n      atomic.Int64
}

// newEnv starts an in-process broker with TLS that requires a client
// certificate, closed when the test ends.
func newEnv(t testing.TB, opts brokertest.Options) *env {
	t.Helper()
	ca, err := pki.NewCA("mqtt5 test CA")
	if err != nil {
		t.Fatal(err)
	}
	server, err := ca.Server("localhost", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	opts.TLS = ca.ServerTLS(server)
	b, err := brokertest.Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return &env{ca: ca, broker: b}
}

// config returns a Config for a new client of the broker, with a
// certificate for clientID ("" picks a unique one) and short backoffs.
func (e *env) config(t testing.TB, clientID string) mqtt5.Config {
	t.Helper()
	if clientID == "" {
		clientID = fmt.Sprintf("client-%d", e.n.Add(1))
	}
	cert, err := e.ca.Client(clientID)
	if err != nil {
		t.Fatal(err)
	}
	return testConfig(e.broker.Addr(), clientID, &cert, e.ca)
}

func testConfig(addr, clientID string, cert *tls.Certificate, ca *pki.CA) mqtt5.Config {
	return mqtt5.Config{
		Endpoint:       addr,
		ClientID:       clientID,
		Certificate:    cert,
		RootCAs:        ca.Pool(),
		ConnectTimeout: 5 * time.Second,
		ReconnectMin:   10 * time.Millisecond,
		ReconnectMax:   100 * time.Millisecond,
	}
}

// connect connects a client closed when the test ends.
func connect(t testing.TB, cfg mqtt5.Config) *mqtt5.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := mqtt5.Connect(ctx, cfg)
	if err != nil {
		t.Fatalf("Connect(%s as %s): %v", cfg.Endpoint, cfg.ClientID, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// events records ConnectionEvents.
type events struct {
	mu      sync.Mutex
	list    []mqtt5.ConnectionEvent
	changed chan struct{}
}

func newEvents() *events { return &events{changed: make(chan struct{}, 1)} }

func (e *events) record(ev mqtt5.ConnectionEvent) {
	e.mu.Lock()
	e.list = append(e.list, ev)
	e.mu.Unlock()
	select {
	case e.changed <- struct{}{}:
	default:
	}
}

func (e *events) all() []mqtt5.ConnectionEvent {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]mqtt5.ConnectionEvent(nil), e.list...)
}

// wait waits until done reports true for the events so far.
func (e *events) wait(t testing.TB, what string, done func([]mqtt5.ConnectionEvent) bool) []mqtt5.ConnectionEvent {
	t.Helper()
	timer := time.NewTimer(10 * time.Second)
	defer timer.Stop()
	for {
		if evs := e.all(); done(evs) {
			return evs
		}
		select {
		case <-e.changed:
		case <-timer.C:
			t.Fatalf("timed out waiting for %s; events: %+v", what, e.all())
		}
	}
}

// count returns how many events have Connected == connected.
func count(evs []mqtt5.ConnectionEvent, connected bool) int {
	n := 0
	for _, ev := range evs {
		if ev.Connected == connected {
			n++
		}
	}
	return n
}

// waitFor polls cond every few milliseconds until it is true or 10
// seconds pass.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}
