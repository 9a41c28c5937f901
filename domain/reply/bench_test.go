package reply_test

import (
	"context"
	"strconv"
	"testing"

	"github.com/iotjobs/iotjobs/domain/reply"
)

var sinkToken string

func BenchmarkNewToken(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		sinkToken = reply.NewToken()
	}
}

// BenchmarkTableRoundTrip is one request's correlation: Register, Deliver,
// Wait.
func BenchmarkTableRoundTrip(b *testing.B) {
	var tab reply.Table[string, []byte]
	body := []byte(`{}`)
	ctx := context.Background()
	keys := make([]string, 1024)
	for i := range keys {
		keys[i] = "tok-" + strconv.Itoa(i)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		k := keys[i%len(keys)]
		i++
		w, ok := tab.Register(k)
		if !ok {
			b.Fatal("Register failed")
		}
		tab.Deliver(k, body)
		if _, err := w.Wait(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTableRoundTripParallel runs round trips from all Ps at once, with
// many entries in flight.
func BenchmarkTableRoundTripParallel(b *testing.B) {
	var tab reply.Table[string, []byte]
	body := []byte(`{}`)
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		k := reply.NewToken()
		for pb.Next() {
			w, ok := tab.Register(k)
			if !ok {
				b.Error("Register failed")
				return
			}
			tab.Deliver(k, body)
			if _, err := w.Wait(ctx); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
