package jobs

import (
	"context"
	"testing"

	"github.com/iotjobs/iotjobs/adapters/membroker"
	"github.com/iotjobs/iotjobs/domain/job"
	"github.com/iotjobs/iotjobs/domain/jobtopic"
	"github.com/iotjobs/iotjobs/ports"
)

// BenchmarkDescribe measures one Describe round trip over membroker against
// a trivial responder that echoes the token with a small execution.
func BenchmarkDescribe(b *testing.B) {
	br := membroker.New(membroker.Options{})
	defer br.Close()
	dev, err := br.Connect("device")
	if err != nil {
		b.Fatal(err)
	}
	svc, err := br.Connect("service")
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	reply := jobtopic.Topic{Thing: thing, Kind: jobtopic.DescribeAccepted, JobID: "j1"}.String()
	_, err = svc.Subscribe(ctx, ports.Filter{Topic: jobtopic.AllThingsFilter, QoS: 1, NoLocal: true},
		ports.HandlerFuncs{Message: func(m ports.Message) {
			body := append([]byte(`{"clientToken":"`), tokenOf(m.Payload)...)
			body = append(body, `","timestamp":1,"execution":{"jobId":"j1","status":"IN_PROGRESS","versionNumber":2,"jobDocument":{"op":"x"}}}`...)
			svc.Publish(ctx, ports.Message{Topic: reply, Payload: body, QoS: 1})
		}})
	if err != nil {
		b.Fatal(err)
	}
	c, err := New(ctx, dev, Options{Thing: thing})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()

	b.Run("sequential", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := c.Describe(ctx, "j1", job.DescribeRequest{}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := c.Describe(ctx, "j1", job.DescribeRequest{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
}
