package benchtest

import (
	"context"
	"testing"
	"time"
)

// BenchmarkScale connects 1,000 things and rolls one job out to all of
// them; it reports the heap per client and the rollout time. Run it with
//
//	go test -run '^$' -bench Scale -benchtime 1x ./testkit/benchtest/
func BenchmarkScale(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for b.Loop() {
		r, err := Scale(ctx, 1000)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(r.HeapPerClient, "heapB/client")
		b.ReportMetric(float64(r.Rollout.Milliseconds()), "rollout-ms")
	}
}

// BenchmarkLifecycle is app/jobs BenchmarkLifecycle through Lifecycle.
func BenchmarkLifecycle(b *testing.B) {
	p, err := Lifecycle(context.Background(), b.N)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(p.AllocsPerOp, "allocs/lifecycle")
}
