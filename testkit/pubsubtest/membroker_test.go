package pubsubtest_test

import (
	"context"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/iotjobs/iotjobs/adapters/membroker"
	"github.com/iotjobs/iotjobs/ports"
	"github.com/iotjobs/iotjobs/testkit/pubsubtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestMembroker(t *testing.T) {
	tests := []struct {
		name   string
		limits ports.Limits
		full   bool // use every feature membroker has
	}{
		{name: "all features", full: true},
		{name: "small limits", limits: ports.Limits{MaxPayload: 1000, MaxTopicLength: 100}, full: true},
		// Without Settle, the suite relies on marker messages alone.
		{name: "no features"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := membroker.New(membroker.Options{Limits: tt.limits})
			t.Cleanup(func() { b.Close() })
			f := pubsubtest.Features{Limits: tt.limits}
			if tt.full {
				f.NoLocal = true
				f.DollarTopics = true
				f.Reconnect = func(t testing.TB, c pubsubtest.Client) {
					if err := b.Disconnect(c.(*membroker.Client).ID()); err != nil {
						t.Fatal(err)
					}
				}
				f.Settle = func(t testing.TB) {
					ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					defer cancel()
					if err := b.Quiesce(ctx); err != nil {
						t.Fatal(err)
					}
				}
			}
			pubsubtest.Run(t, func(t *testing.T) pubsubtest.Client {
				c, err := b.Connect("")
				if err != nil {
					t.Fatal(err)
				}
				return c
			}, f)
		})
	}
}
