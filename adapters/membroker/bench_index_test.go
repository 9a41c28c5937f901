package membroker

import (
	"context"
	"strconv"
	"testing"

	"github.com/iotjobs/iotjobs/ports"
)

// TestIndexFindsEveryMatch checks that the subscription index never hides a
// matching subscription: for every filter and topic below, the candidates
// Publish visits include the subscription whenever ports.Match says the
// filter matches.
func TestIndexFindsEveryMatch(t *testing.T) {
	filters := []string{"#", "+", "+/#", "a", "a/#", "a/+", "a/b", "a/+/c", "a/b/#", "/+", "/#", "+/+",
		"$aws/things/t/jobs/#", "$aws/things/+/jobs/#", "$aws/#", "a//b", "a/+/+/#", "+/b/#"}
	topics := []string{"a", "a/b", "a/b/c", "a/x/c", "/a", "/", "a//b", "b", "$aws/things/t/jobs/notify",
		"$aws/things/t/jobs/j1/get/accepted", "$aws", "x/b/y", "a/b/c/d"}
	for _, f := range filters {
		b := New(Options{})
		c, err := b.Connect("c")
		if err != nil {
			t.Fatal(err)
		}
		sub, err := c.Subscribe(context.Background(), ports.Filter{Topic: f}, ports.HandlerFuncs{Message: func(ports.Message) {}})
		if err != nil {
			t.Fatalf("subscribe %q: %v", f, err)
		}
		for _, topic := range topics {
			found := false
			b.mu.Lock()
			b.forCandidatesLocked(topic, func(s *subscription) { found = found || s == sub })
			b.mu.Unlock()
			if ports.Match(f, topic) && !found {
				t.Errorf("filter %q matches %q but is not a candidate (prefix %+v)", f, topic, literalPrefix(f))
			}
		}
		b.Close()
		b.mu.Lock()
		if len(b.subs) != 0 {
			t.Errorf("filter %q: index not empty after Close: %v", f, b.subs)
		}
		b.mu.Unlock()
	}
}

// BenchmarkPublishManyClients publishes to one of 1,000 clients each
// subscribed to its own thing's jobs topics, with a service subscribed to
// every thing's: what a fleet costs each publication.
func BenchmarkPublishManyClients(b *testing.B) {
	br := New(Options{})
	defer br.Close()
	ctx := context.Background()
	h := ports.HandlerFuncs{Message: func(ports.Message) {}}
	svc, _ := br.Connect("service")
	if _, err := svc.Subscribe(ctx, ports.Filter{Topic: "$aws/things/+/jobs/#"}, h); err != nil {
		b.Fatal(err)
	}
	for i := range 1000 {
		c, _ := br.Connect("thing-" + strconv.Itoa(i))
		if _, err := c.Subscribe(ctx, ports.Filter{Topic: "$aws/things/thing-" + strconv.Itoa(i) + "/jobs/#"}, h); err != nil {
			b.Fatal(err)
		}
	}
	m := ports.Message{Topic: "$aws/things/thing-500/jobs/notify-next", Payload: []byte(`{"timestamp":1}`)}
	b.ReportAllocs()
	for b.Loop() {
		if err := svc.Publish(ctx, m); err != nil {
			b.Fatal(err)
		}
	}
}
