package mqtt5_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"

	"github.com/iotjobs/iotjobs/testkit/benchtest"
	"github.com/iotjobs/iotjobs/testkit/brokertest"
	"github.com/iotjobs/iotjobs/testkit/pki"
)

// BenchmarkDescribeVsRawMatrix extends BenchmarkDescribeVsRaw to the full
// comparison of docs/performance.md: broker (mochi in process, mosquitto
// when installed) × sequential or 64 requests in flight × sdk (a Jobs
// client's Describe) or raw (a bare paho publish and its reply). Both sides
// use TLS with client certificates, QoS 1 both ways, the same payload sizes
// and the same echo responder (benchtest.RoundTrip). Compare sdk with raw
// in the same sub-benchmark group:
//
//	go test -run '^$' -bench DescribeVsRawMatrix -benchtime 3000x ./adapters/mqtt5/
func BenchmarkDescribeVsRawMatrix(b *testing.B) {
	set, err := pki.NewSet("bench")
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	for _, start := range []func(*pki.Set) (*benchtest.Broker, error){benchtest.StartMochi, benchtest.StartMosquitto} {
		br, err := start(set)
		if errors.Is(err, benchtest.ErrNoMosquitto) {
			if os.Getenv(brokertest.RequireMosquittoEnv) == "1" {
				b.Fatal(err)
			}
			b.Log(err)
			continue
		}
		if err != nil {
			b.Fatal(err)
		}
		for _, mode := range []struct {
			name     string
			inflight int
		}{{"sequential", 1}, {"inflight64", 64}} {
			for _, side := range []benchtest.Side{benchtest.SDK, benchtest.Raw} {
				b.Run(fmt.Sprintf("%s/%s/%s", br.Name, mode.name, side), func(b *testing.B) {
					d, err := benchtest.RoundTrip(ctx, br, side, mode.inflight, b.N)
					if err != nil {
						b.Fatal(err)
					}
					b.ReportMetric(float64(d.Nanoseconds())/float64(b.N), "ns/req")
					b.ReportMetric(float64(b.N)/d.Seconds(), "req/s")
				})
			}
		}
		br.Close()
	}
}
