package pubsubtest_test

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/iotjobs/iotjobs/adapters/membroker"
	"github.com/iotjobs/iotjobs/ports"
	"github.com/iotjobs/iotjobs/testkit/pubsubtest"
)

// bugs maps a bug, planted in a transport, to the check that must catch it.
var bugs = map[string]string{
	"ignores NoLocal":          "NoLocal",
	"delivers with QoS 1":      "PublishReceive",
	"checks no limits":         "Limits",
	"accepts invalid topics":   "InvalidPublish",
	"unsubscribe does nothing": "Unsubscribe",
	"close does nothing":       "Close",
	"ignores the context":      "CanceledContext",
	"hides state changes":      "Reconnect",
	"calls handlers at once":   "Order",
}

// TestSuiteCatchesBugs runs the suite, in a child process, on transports
// with a bug planted and checks that the right check fails.
func TestSuiteCatchesBugs(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the suite in child processes")
	}
	for bug, check := range bugs {
		t.Run(bug, func(t *testing.T) {
			t.Parallel()
			cmd := exec.Command(os.Args[0], "-test.run=^TestBrokenTransport$", "-test.timeout=2m")
			cmd.Env = append(os.Environ(), "PUBSUBTEST_BUG="+bug)
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("the suite passed a transport that %s", bug)
			}
			if !strings.Contains(string(out), "--- FAIL: TestBrokenTransport/"+check+" ") {
				t.Errorf("the suite did not fail %s for a transport that %s; output:\n%s", check, bug, out)
			}
		})
	}
}

// TestBrokenTransport is run by TestSuiteCatchesBugs.
func TestBrokenTransport(t *testing.T) {
	bug := os.Getenv("PUBSUBTEST_BUG")
	if bug == "" {
		t.Skip("run by TestSuiteCatchesBugs")
	}
	limits := ports.Limits{MaxPayload: 1000}
	opts := membroker.Options{Limits: limits}
	if bug == "checks no limits" {
		opts.Limits.MaxPayload *= 2
	}
	b := membroker.New(opts)
	t.Cleanup(func() { b.Close() })
	pubsubtest.Run(t, func(t *testing.T) pubsubtest.Client {
		c, err := b.Connect("")
		if err != nil {
			t.Fatal(err)
		}
		return &brokenClient{Client: c, bug: bug}
	}, pubsubtest.Features{
		NoLocal:      true,
		DollarTopics: true,
		Limits:       limits,
		Timeout:      time.Second,
		Reconnect: func(t testing.TB, c pubsubtest.Client) {
			b.Disconnect(c.(*brokenClient).ID())
		},
		Settle: func(t testing.TB) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			b.Quiesce(ctx)
		},
	})
}

// brokenClient is a membroker client with a bug.
type brokenClient struct {
	*membroker.Client
	bug string
}

func (c *brokenClient) Publish(ctx context.Context, m ports.Message) error {
	switch c.bug {
	case "ignores the context":
		ctx = context.Background()
	case "accepts invalid topics":
		if ports.ValidateTopic(m.Topic) != nil {
			return nil
		}
	}
	return c.Client.Publish(ctx, m)
}

func (c *brokenClient) Subscribe(ctx context.Context, f ports.Filter, h ports.Handler) (ports.Subscription, error) {
	inner := h
	switch c.bug {
	case "ignores NoLocal":
		f.NoLocal = false
	case "delivers with QoS 1":
		h = ports.HandlerFuncs{
			Message: func(m ports.Message) { m.QoS = 1; inner.HandleMessage(m) },
			State:   inner.HandleState,
		}
	case "hides state changes":
		h = ports.HandlerFuncs{Message: inner.HandleMessage}
	case "calls handlers at once":
		h = ports.HandlerFuncs{
			Message: func(m ports.Message) { go inner.HandleMessage(m) },
			State:   inner.HandleState,
		}
	}
	sub, err := c.Client.Subscribe(ctx, f, h)
	if err == nil && c.bug == "unsubscribe does nothing" {
		return ignoredSubscription{}, nil
	}
	return sub, err
}

func (c *brokenClient) Close() error {
	if c.bug == "close does nothing" {
		return nil
	}
	return c.Client.Close()
}

type ignoredSubscription struct{}

func (ignoredSubscription) Unsubscribe(context.Context) error { return nil }
