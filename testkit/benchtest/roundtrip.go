package benchtest

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"

	"github.com/iotjobs/iotjobs/adapters/mqtt5"
	"github.com/iotjobs/iotjobs/app/jobs"
	"github.com/iotjobs/iotjobs/domain/job"
)

// Side is what makes the requests of a round trip measurement.
type Side string

const (
	// SDK is a jobs.Client over an mqtt5.Client: Describe("job-1").
	SDK Side = "sdk"
	// Raw is a bare paho client publishing a request of the same size and
	// correlating the reply by a token, as little as a request/reply can
	// do over MQTT.
	Raw Side = "raw"
)

// describeReply is the accepted reply of both sides, after the client
// token: the size of a real Describe reply with a small document.
const describeReply = `","timestamp":1700000000,"execution":{"jobId":"job-1","thingName":"bench-thing","status":"IN_PROGRESS","versionNumber":2,"executionNumber":1,"queuedAt":1700000000,"lastUpdatedAt":1700000000,"jobDocument":{"operation":"install","url":"https://example.com/fw.bin"}}}`

// rawRequestPad makes the raw request as large as the SDK's Describe
// request ({"clientToken":"<22>"}), token included.
const rawTokenLen = 22

// RoundTrip makes n requests from side over broker, with inflight of them
// in flight at a time (1: sequential), and returns the elapsed time. Both
// sides publish QoS 1 and are answered by the same kind of responder: a
// bare paho client on the same broker that finds the token in the request
// and publishes a reply of the same size with QoS 1, from a goroutine per
// request.
func RoundTrip(ctx context.Context, broker *Broker, side Side, inflight, n int) (time.Duration, error) {
	if inflight < 1 {
		inflight = 1
	}
	id := fmt.Sprintf("bench-%s-%d", side, inflight)
	thing := "bench-thing-" + string(side) + strconv.Itoa(inflight)
	var requestFilter string
	var replyTopic func(reqTopic string) string
	if side == SDK {
		requestFilter = "$aws/things/" + thing + "/jobs/+/get"
		replyTopic = func(t string) string { return t + "/accepted" }
	} else {
		requestFilter = "bench/" + id + "/request"
		replyTopic = func(string) string { return "bench/" + id + "/reply" }
	}
	var responder *paho.Client
	var errs atomic.Value
	// The replies in flight end before the responder disconnects: paho
	// would leave their Publish waiting for a PUBACK that never comes.
	var replies sync.WaitGroup
	rctx, rcancel := context.WithCancel(ctx)
	defer rcancel()
	responder, err := rawConnect(ctx, broker, id+"-echo", func(p *paho.Publish) {
		tok := findToken(p.Payload)
		body := make([]byte, 0, len(`{"clientToken":"`)+len(tok)+len(describeReply))
		body = append(body, `{"clientToken":"`...)
		body = append(body, tok...)
		body = append(body, describeReply...)
		replies.Add(1)
		go func() {
			defer replies.Done()
			if _, err := responder.Publish(rctx, &paho.Publish{Topic: replyTopic(p.Topic), QoS: 1, Payload: body}); err != nil && rctx.Err() == nil {
				errs.Store(err)
			}
		}()
	})
	if err != nil {
		return 0, err
	}
	defer responder.Disconnect(&paho.Disconnect{})
	defer func() {
		stop := time.AfterFunc(5*time.Second, rcancel)
		replies.Wait()
		stop.Stop()
	}()
	if err := rawSubscribe(ctx, responder, requestFilter); err != nil {
		return 0, err
	}

	var one func() error
	switch side {
	case SDK:
		cert, _ := broker.PKI.CA.Client(thing)
		mc, err := mqtt5.Connect(ctx, mqtt5.Config{Endpoint: broker.Addr, ClientID: thing, Certificate: &cert, RootCAs: broker.PKI.CA.Pool(),
			ConnectTimeout: 5 * time.Second, ReceiveMaximum: receiveMaximum})
		if err != nil {
			return 0, err
		}
		defer mc.Close()
		c, err := jobs.New(ctx, mc, jobs.Options{Thing: thing})
		if err != nil {
			return 0, err
		}
		defer c.Close()
		one = func() error {
			_, err := c.Describe(ctx, "job-1", job.DescribeRequest{})
			return err
		}
	default:
		var mu sync.Mutex
		waiting := make(map[string]chan []byte)
		requester, err := rawConnect(ctx, broker, id, func(p *paho.Publish) {
			tok := findToken(p.Payload)
			mu.Lock()
			ch := waiting[string(tok)]
			delete(waiting, string(tok))
			mu.Unlock()
			if ch != nil {
				ch <- p.Payload
			}
		})
		if err != nil {
			return 0, err
		}
		defer requester.Disconnect(&paho.Disconnect{})
		if err := rawSubscribe(ctx, requester, replyTopic("")); err != nil {
			return 0, err
		}
		var seq atomic.Uint64
		one = func() error {
			tok := fmt.Sprintf("%0*d", rawTokenLen, seq.Add(1))
			ch := make(chan []byte, 1)
			mu.Lock()
			waiting[tok] = ch
			mu.Unlock()
			payload := []byte(`{"clientToken":"` + tok + `"}`)
			if _, err := requester.Publish(ctx, &paho.Publish{Topic: requestFilter, QoS: 1, Payload: payload}); err != nil {
				return err
			}
			select {
			case <-ch:
				return nil
			case <-time.After(10 * time.Second):
				return errors.New("benchtest: no reply in 10s")
			}
		}
	}
	// Warm up the connections.
	for range 10 {
		if err := one(); err != nil {
			return 0, err
		}
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	var firstErr atomic.Value
	start := time.Now()
	for range inflight {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) {
				if err := one(); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err, ok := firstErr.Load().(error); ok {
		return 0, err
	}
	if err, ok := errs.Load().(error); ok {
		return 0, err
	}
	return elapsed, nil
}

// findToken returns the value of the first "clientToken" member.
func findToken(p []byte) []byte {
	const key = `"clientToken":"`
	i := bytes.Index(p, []byte(key))
	if i < 0 {
		return nil
	}
	p = p[i+len(key):]
	if j := bytes.IndexByte(p, '"'); j >= 0 {
		return p[:j]
	}
	return nil
}

// receiveMaximum is the receive maximum of every client, SDK and raw. It
// is well above the requests in flight: mochi v2.7.9 may lose QoS 1
// messages it holds back from a client whose receive maximum is reached
// (with 64 in flight and the default of 64, a reply sent before the PUBACK
// of the previous one reaches the broker is held back), which would measure
// timeouts instead of round trips.
const receiveMaximum = 1024

// rawConnect connects a bare paho client with TLS and a client
// certificate, with receiveMaximum.
func rawConnect(ctx context.Context, broker *Broker, clientID string, handle func(*paho.Publish)) (*paho.Client, error) {
	cert, err := broker.PKI.CA.Client(clientID)
	if err != nil {
		return nil, err
	}
	conn, err := tls.Dial("tcp", broker.Addr, broker.PKI.CA.ClientTLS(cert))
	if err != nil {
		return nil, err
	}
	c := paho.NewClient(paho.ClientConfig{
		ClientID: clientID,
		Conn:     packets.NewThreadSafeConn(conn),
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			handle(pr.Packet)
			return true, nil
		}},
	})
	recvMax := uint16(receiveMaximum)
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := c.Connect(cctx, &paho.Connect{ClientID: clientID, KeepAlive: 60, CleanStart: true,
		Properties: &paho.ConnectProperties{ReceiveMaximum: &recvMax}}); err != nil {
		conn.Close()
		return nil, fmt.Errorf("benchtest: connect %s: %w", clientID, err)
	}
	return c, nil
}

func rawSubscribe(ctx context.Context, c *paho.Client, filter string) error {
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err := c.Subscribe(sctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: filter, QoS: 1}}})
	return err
}
