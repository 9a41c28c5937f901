package sigv4ws_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/iotjobs/iotjobs/adapters/mqtt5"
	"github.com/iotjobs/iotjobs/adapters/sigv4ws"
	"github.com/iotjobs/iotjobs/ports"
	"github.com/iotjobs/iotjobs/testkit/pubsubtest"
)

// The Dialer is the mqtt5 adapter's seam.
var _ mqtt5.Dialer = (*sigv4ws.Dialer)(nil)

var clientSeq atomic.Int32

// The reconnect backoff of the tests' clients: short, so that reconnects
// are quick.
const (
	connectBackoffMin = 20 * time.Millisecond
	connectBackoffMax = 200 * time.Millisecond
)

// connectMQTT connects an mqtt5 client through d, closed when the test
// ends.
func connectMQTT(t testing.TB, d *sigv4ws.Dialer, cfg mqtt5.Config) *mqtt5.Client {
	t.Helper()
	if cfg.ClientID == "" {
		cfg.ClientID = "sigv4-" + strconv.Itoa(int(clientSeq.Add(1)))
	}
	cfg.Endpoint = d.Endpoint()
	cfg.Dialer = d
	if cfg.ReconnectMin == 0 {
		cfg.ReconnectMin, cfg.ReconnectMax = connectBackoffMin, connectBackoffMax
	}
	c, err := mqtt5.Connect(testCtx(t), cfg)
	if err != nil {
		t.Fatalf("mqtt5.Connect: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// conformanceReceiveMaximum is the receive maximum of the conformance
// suite's clients. A client with as many QoS 1 messages in flight as its
// receive maximum allows gets further QoS 1 messages later but QoS 0 ones
// at once (mochi and mosquitto both do so; MQTT orders messages per topic
// and QoS only), while ConcurrentPublishers expects one order across QoS 0
// and 1 for 400 messages published at once.
const conformanceReceiveMaximum = 1024

// TestConformance runs the transport conformance suite over the mqtt5
// adapter on SigV4-signed WebSockets, through the listener that checks
// the signatures as AWS IoT Core does.
func TestConformance(t *testing.T) {
	b := startBroker(t, brokerOptions{})
	d := dialer(t, b.endpoint(), sigv4ws.Config{Credentials: static(tempCreds)})
	pubsubtest.Run(t, func(t *testing.T) pubsubtest.Client {
		return connectMQTT(t, d, mqtt5.Config{ReceiveMaximum: conformanceReceiveMaximum})
	}, pubsubtest.Features{
		NoLocal:      true,
		DollarTopics: true,
		Reconnect: func(t testing.TB, c pubsubtest.Client) {
			if err := b.DropClient(c.(*mqtt5.Client).ClientID()); err != nil {
				t.Fatal(err)
			}
		},
	})
}

// TestConnectAuthError checks that refused credentials make mqtt5.Connect
// fail at once with the authentication error.
func TestConnectAuthError(t *testing.T) {
	b := startBroker(t, brokerOptions{})
	wrong := longCreds
	wrong.SecretAccessKey = "not-the-secret"
	d := dialer(t, b.endpoint(), sigv4ws.Config{Credentials: static(wrong)})
	start := time.Now()
	c, err := mqtt5.Connect(testCtx(t), mqtt5.Config{ClientID: "refused", Endpoint: d.Endpoint(), Dialer: d})
	if err == nil {
		c.Close()
		t.Fatal("Connect succeeded")
	}
	var ae *sigv4ws.AuthError
	if !errors.Is(err, sigv4ws.ErrAuth) || !errors.As(err, &ae) || ae.StatusCode != 403 {
		t.Fatalf("Connect = %v, want a 403 *AuthError", err)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("Connect took %v", el)
	}
}

// rotating hands out credentials that expire soon, then, from the second
// retrieval on, credentials that last: as temporary credentials rotate.
type rotating struct {
	lifetime time.Duration // of the first credentials, after the margin
	margin   time.Duration
	calls    atomic.Int32
}

func rotCreds(n int) aws.Credentials {
	return aws.Credentials{
		AccessKeyID:     fmt.Sprintf("ASIAROT%03d", n),
		SecretAccessKey: fmt.Sprintf("rotating-secret-%d", n),
		SessionToken:    fmt.Sprintf("rotating-token-%d", n),
	}
}

func (r *rotating) Retrieve(context.Context) (aws.Credentials, error) {
	n := int(r.calls.Add(1))
	c := rotCreds(n)
	c.CanExpire = true
	c.Expires = time.Now().Add(r.margin + time.Hour)
	if n == 1 {
		c.Expires = time.Now().Add(r.margin + r.lifetime)
	}
	return c, nil
}

// rotLookup knows every credential rotCreds makes.
func rotLookup(id string) (aws.Credentials, bool) {
	n, err := strconv.Atoi(strings.TrimPrefix(id, "ASIAROT"))
	if err != nil || !strings.HasPrefix(id, "ASIAROT") {
		return aws.Credentials{}, false
	}
	return rotCreds(n), true
}

// states records a subscription's messages and state changes.
type states struct {
	mu     sync.Mutex
	events []string
	change chan struct{}
}

func newStates() *states { return &states{change: make(chan struct{}, 100)} }

func (s *states) HandleMessage(m ports.Message) { s.add("msg " + string(m.Payload)) }
func (s *states) HandleState(st ports.State)    { s.add(st.String()) }

func (s *states) add(e string) {
	s.mu.Lock()
	s.events = append(s.events, e)
	s.mu.Unlock()
	s.change <- struct{}{}
}

// wait waits until the events include want, in order.
func (s *states) wait(t testing.TB, want ...string) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		s.mu.Lock()
		i := 0
		for _, e := range s.events {
			if i < len(want) && e == want[i] {
				i++
			}
		}
		got := append([]string(nil), s.events...)
		s.mu.Unlock()
		if i == len(want) {
			return
		}
		select {
		case <-s.change:
		case <-deadline:
			t.Fatalf("events %q, want %q in order", got, want)
		}
	}
}

// TestReconnectBeforeExpiry checks that a connection whose temporary
// credentials are about to expire ends itself, that the client reconnects
// with credentials retrieved anew (presigned afresh) and that its
// subscriptions survive.
func TestReconnectBeforeExpiry(t *testing.T) {
	b := startBroker(t, brokerOptions{lookup: rotLookup})
	const margin = time.Minute
	var logs logBuffer
	d := dialer(t, b.endpoint(), sigv4ws.Config{
		// Long enough to connect, subscribe and publish on a loaded
		// machine before the first connection ends itself.
		Credentials:  &rotating{lifetime: time.Second, margin: margin},
		ExpiryMargin: margin,
		Logger:       logs.logger(),
	})
	var mu sync.Mutex
	var changes []mqtt5.ConnectionEvent
	c := connectMQTT(t, d, mqtt5.Config{ClientID: "rotating", OnConnectionChange: func(e mqtt5.ConnectionEvent) {
		mu.Lock()
		changes = append(changes, e)
		mu.Unlock()
	}})
	s := newStates()
	if _, err := c.Subscribe(testCtx(t), ports.Filter{Topic: "rot/t", QoS: ports.AtLeastOnce}, s); err != nil {
		t.Fatal(err)
	}
	if err := c.Publish(testCtx(t), ports.Message{Topic: "rot/t", Payload: []byte("before"), QoS: ports.AtLeastOnce}); err != nil {
		t.Fatal(err)
	}
	s.wait(t, "msg before", "lost", "restored")
	if err := c.Publish(testCtx(t), ports.Message{Topic: "rot/t", Payload: []byte("after"), QoS: ports.AtLeastOnce}); err != nil {
		t.Fatal(err)
	}
	s.wait(t, "msg before", "lost", "restored", "msg after")

	if got := b.accepted(); len(got) != 2 || got[0] != "ASIAROT001" || got[1] != "ASIAROT002" {
		t.Errorf("the broker accepted %q, want ASIAROT001 then ASIAROT002", got)
	}
	mu.Lock()
	defer mu.Unlock()
	// The first connection ended on the client's side, without a
	// DISCONNECT from the broker.
	if len(changes) < 3 || !changes[0].Connected || changes[1].Connected || !changes[2].Connected {
		t.Fatalf("connection changes %+v", changes)
	}
	var de *mqtt5.DisconnectError
	if errors.As(changes[1].Err, &de) {
		t.Errorf("the broker disconnected the client: %v", changes[1].Err)
	}
	if !strings.Contains(logs.String(), "before its credentials expire") {
		t.Errorf("no log of the planned reconnect:\n%s", logs.String())
	}
}
