package jobs_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iotjobs/iotjobs/adapters/membroker"
	"github.com/iotjobs/iotjobs/app/jobs"
	"github.com/iotjobs/iotjobs/ports"
)

// lockedBuffer is a bytes.Buffer safe for the client's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestDroppedMessagesLogged: every message the client drops is counted and
// logged with its reason and topic, never with its payload.
func TestDroppedMessagesLogged(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b := membroker.New(membroker.Options{})
	defer b.Close()
	dev, err := b.Connect("device")
	if err != nil {
		t.Fatal(err)
	}
	peer, err := b.Connect("peer")
	if err != nil {
		t.Fatal(err)
	}
	var logs lockedBuffer
	logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	c, err := jobs.New(ctx, dev, jobs.Options{Thing: "thing-1", Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	const secret = "payload-must-not-be-logged"
	notify := `{"timestamp":1,"jobs":{},"note":"` + secret + `"}`
	sends := []struct{ topic, payload, reason string }{
		{"$aws/things/thing-1/jobs/notify", `{"jobs":[` + secret, "undecodable notification"},
		{"$aws/things/thing-1/jobs/notify", notify, ""},
		{"$aws/things/thing-1/jobs/notify", notify, "duplicate notification"},
		{"$aws/things/thing-1/jobs/get/accepted", `{"clientToken":"` + secret + `"}`, "reply nobody waits for"},
		{"$aws/things/thing-1/jobs/get", `{"clientToken":"` + secret + `"}`, "not a reply or notification of this thing"},
	}
	for _, s := range sends {
		if err := peer.Publish(ctx, ports.Message{Topic: s.topic, Payload: []byte(s.payload), QoS: ports.AtLeastOnce}); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Quiesce(ctx); err != nil {
		t.Fatal(err)
	}

	var records []map[string]any
	for line := range strings.Lines(logs.String()) {
		var r map[string]any
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		records = append(records, r)
	}
	var want []string
	for _, s := range sends {
		if s.reason != "" {
			want = append(want, s.reason)
		}
	}
	if len(records) != len(want) {
		t.Fatalf("%d log records, want %d:\n%s", len(records), len(want), logs.String())
	}
	for i, r := range records {
		if r["reason"] != want[i] || r["thing"] != "thing-1" || r["topic"] == nil {
			t.Errorf("record %d = %v, want reason %q with thing and topic", i, r, want[i])
		}
	}
	if strings.Contains(logs.String(), secret) {
		t.Errorf("a payload reached the log:\n%s", logs.String())
	}
	st := c.Stats()
	if st.Ignored != 2 || st.DuplicateNotifications != 1 || st.DroppedReplies != 1 {
		t.Errorf("Stats = %+v, want 2 ignored, 1 duplicate, 1 dropped reply", st)
	}
}
