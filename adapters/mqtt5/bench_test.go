package mqtt5_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"

	"github.com/iotjobs/iotjobs/app/jobs"
	"github.com/iotjobs/iotjobs/domain/job"
	"github.com/iotjobs/iotjobs/testkit/brokertest"
	"github.com/iotjobs/iotjobs/testkit/jobstest"
)

// BenchmarkDescribeVsRaw compares, over one in-process mochi broker with
// TLS and client certificates, the round trip of a Jobs client's Describe
// answered by the fake service (sdk) with the round trip of a bare paho
// QoS 1 publication answered by a paho echo responder on the same broker
// (raw): what the adapter, the Jobs client and the fake service add to
// MQTT itself.
//
//	go test -run '^$' -bench BenchmarkDescribeVsRaw -benchtime 3s ./adapters/mqtt5/
func BenchmarkDescribeVsRaw(b *testing.B) {
	e := newEnv(b, brokertest.Options{})

	b.Run("sdk", func(b *testing.B) {
		ctx := context.Background()
		svcConn := connect(b, e.config(b, "bench-service"))
		svc := jobstest.New(jobstest.Options{})
		if err := svc.Start(ctx, svcConn); err != nil {
			b.Fatal(err)
		}
		defer svc.Close()
		err := svc.CreateJob(ctx, jobstest.JobSpec{JobID: "job-1", Document: json.RawMessage(`{"url":"https://example.com/fw.bin"}`), Targets: []string{"bench-thing"}})
		if err != nil {
			b.Fatal(err)
		}
		dev := connect(b, e.config(b, "bench-thing"))
		c, err := jobs.New(ctx, dev, jobs.Options{Thing: "bench-thing"})
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		b.ReportAllocs()
		for b.Loop() {
			if _, err := c.Describe(ctx, "job-1", job.DescribeRequest{}); err != nil {
				b.Fatal(err)
			}
		}
	})

	b.Run("raw", func(b *testing.B) {
		ctx := context.Background()
		// The echo responder answers each request on the reply topic.
		var responder *paho.Client
		responder = rawConnect(b, e, "bench-echo", func(p *paho.Publish) {
			_, err := responder.Publish(ctx, &paho.Publish{Topic: "bench/reply", QoS: 1, Payload: p.Payload})
			if err != nil {
				b.Error(err)
			}
		})
		rawSubscribe(b, responder, "bench/request")
		replies := make(chan []byte, 1)
		requester := rawConnect(b, e, "bench-raw", func(p *paho.Publish) { replies <- p.Payload })
		rawSubscribe(b, requester, "bench/reply")
		// About the size of a Describe request.
		request := []byte(`{"clientToken":"0123456789abcdef0123456789abcdef","includeJobDocument":true}`)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := requester.Publish(ctx, &paho.Publish{Topic: "bench/request", QoS: 1, Payload: request}); err != nil {
				b.Fatal(err)
			}
			select {
			case <-replies:
			case <-time.After(10 * time.Second):
				b.Fatal("no reply")
			}
		}
	})
}

// rawConnect connects a bare paho client with a certificate of the test CA;
// handle gets every message it receives.
func rawConnect(b *testing.B, e *env, clientID string, handle func(*paho.Publish)) *paho.Client {
	b.Helper()
	cert, err := e.ca.Client(clientID)
	if err != nil {
		b.Fatal(err)
	}
	conn, err := tls.Dial("tcp", e.broker.Addr(), e.ca.ClientTLS(cert))
	if err != nil {
		b.Fatal(err)
	}
	c := paho.NewClient(paho.ClientConfig{
		ClientID: clientID,
		Conn:     packets.NewThreadSafeConn(conn),
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			handle(pr.Packet)
			return true, nil
		}},
	})
	recvMax := uint16(64)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Connect(ctx, &paho.Connect{ClientID: clientID, KeepAlive: 60, CleanStart: true,
		Properties: &paho.ConnectProperties{ReceiveMaximum: &recvMax}}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Disconnect(&paho.Disconnect{}) })
	return c
}

func rawSubscribe(b *testing.B, c *paho.Client, filter string) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: filter, QoS: 1}}}); err != nil {
		b.Fatal(err)
	}
}
