package jobstest

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/iotjobs/iotjobs/domain/job"
	"github.com/iotjobs/iotjobs/domain/jobtopic"
	"github.com/iotjobs/iotjobs/ports"
)

// FuzzHandle feeds arbitrary messages to the request handler: it must never
// panic, must answer every request exactly once with a JSON object on the
// request's accepted or rejected topic, and must keep its state sound.
func FuzzHandle(f *testing.F) {
	seeds := []struct{ topic, body string }{
		{"$aws/things/dev-1/jobs/get", `{"clientToken":"t"}`},
		{"$aws/things/dev-1/jobs/start-next", `{"statusDetails":{"a":"b"},"stepTimeoutInMinutes":5}`},
		{"$aws/things/dev-1/jobs/$next/get", `{"includeJobDocument":false}`},
		{"$aws/things/dev-1/jobs/a/get", `{"executionNumber":1}`},
		{"$aws/things/dev-1/jobs/a/update", `{"status":"IN_PROGRESS","expectedVersion":"1","includeJobExecutionState":true,"includeJobDocument":true,"stepTimeoutInMinutes":1}`},
		{"$aws/things/dev-1/jobs/b/update", `{"status":"SUCCEEDED","statusDetails":{}}`},
		{"$aws/things/dev-1/jobs/a/update/accepted", `{}`},
		{"$aws/things/dev-1/jobs/notify", `{}`},
		{"$aws/things/dev-1/jobs/x/y/z", `{`},
		{"$aws/things/dev-1/jobs", ``},
		{"$aws/things//jobs/get", `null`},
		{"$aws/things/dev-1/jobs/get", "\xff"},
		{"other/topic", `{}`},
	}
	for _, s := range seeds {
		f.Add(s.topic, []byte(s.body), uint8(0))
	}
	f.Fuzz(func(t *testing.T, topic string, body []byte, advance uint8) {
		clock := NewFakeClock(t0)
		s := New(Options{Clock: clock})
		for _, id := range []string{"a", "b"} {
			err := s.CreateJob(context.Background(), JobSpec{JobID: id, Document: []byte(`{"x":1}`), Targets: []string{"dev-1"}, InProgressTimeout: time.Hour})
			if err != nil {
				t.Fatal(err)
			}
		}
		for range 2 { // twice: the second sees the first's changes
			clock.Advance(time.Duration(advance) * time.Minute)
			s.mu.Lock()
			out := s.serveLocked(ports.Message{Topic: topic, Payload: body, QoS: ports.AtLeastOnce})
			s.mu.Unlock()
			checkOutput(t, topic, out)
		}
		for _, x := range s.Executions() {
			if !x.Status.Valid() || x.VersionNumber < 1 || x.ExecutionNumber != 1 {
				t.Errorf("unsound execution %+v", x)
			}
		}
	})
}

func checkOutput(t *testing.T, topic string, out []ports.Message) {
	t.Helper()
	var replies int
	for _, m := range out {
		if !json.Valid(m.Payload) || len(m.Payload) == 0 || m.Payload[0] != '{' {
			t.Fatalf("%s: payload %q is not a JSON object", m.Topic, m.Payload)
		}
		if m.QoS != ports.AtLeastOnce {
			t.Errorf("%s: QoS %d", m.Topic, m.QoS)
		}
		if m.Topic == topic+"/accepted" || m.Topic == topic+"/rejected" {
			replies++
			continue
		}
		pt, err := jobtopic.Parse(m.Topic)
		if err != nil || !pt.Kind.IsNotification() {
			t.Fatalf("published on %q for a message on %q", m.Topic, topic)
		}
	}
	pt, err := jobtopic.Parse(topic)
	wantReply := err == nil && pt.Kind.IsRequest() || err != nil && answerable(topic)
	if want := map[bool]int{true: 1}[wantReply]; replies != want {
		t.Fatalf("%d replies to %q, want %d: %v", replies, topic, want, out)
	}
	for _, m := range out {
		if strings.HasSuffix(m.Topic, "/rejected") {
			if rej, err := job.DecodeRejected(m.Payload); err != nil || (rej.ExecutionState != nil) !=
				(rej.Code == job.CodeVersionMismatch || rej.Code == job.CodeInvalidStateTransition) {
				t.Fatalf("bad rejection %s (%v)", m.Payload, err)
			}
		}
	}
}
