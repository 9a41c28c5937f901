package benchtest

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/iotjobs/iotjobs/testkit/brokertest"
	"github.com/iotjobs/iotjobs/testkit/pki"
)

// TestSmoke runs every measurement briefly: they work, whatever the figures.
func TestSmoke(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := Lifecycle(ctx, 200)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("lifecycle %+v", p)
	s, err := Scale(ctx, 50)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("scale %+v", s)
	set, err := pki.NewSet("bench")
	if err != nil {
		t.Fatal(err)
	}
	for _, start := range []func(*pki.Set) (*Broker, error){StartMochi, StartMosquitto} {
		b, err := start(set)
		if errors.Is(err, ErrNoMosquitto) {
			if os.Getenv(brokertest.RequireMosquittoEnv) == "1" {
				t.Fatal(err)
			}
			t.Log(err)
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, side := range []Side{SDK, Raw} {
			for _, inflight := range []int{1, 64} {
				d, err := RoundTrip(ctx, b, side, inflight, 200)
				if err != nil {
					t.Fatalf("%s %s %d: %v", b.Name, side, inflight, err)
				}
				t.Logf("%s %s inflight %d: %v/op", b.Name, side, inflight, d/200)
			}
		}
		b.Close()
	}
}
