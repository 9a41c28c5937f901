package jobs

import (
	"testing"

	"github.com/iotjobs/iotjobs/ports"
)

func TestTokenOfReply(t *testing.T) {
	tests := []struct {
		body string
		want string
	}{
		{`{"clientToken":"abc"}`, "abc"},
		{`{"code":"X","clientToken":"abc","message":"m"}`, "abc"},
		{`{"execution":{"jobId":1},"clientToken":"abc"}`, "abc"}, // type error elsewhere
		{`{"clientToken":"abc","execution":{`, "abc"},            // truncated
		{`{"timestamp":1,"execution":{"a":[1,2]},"clientToken":"abc",`, "abc"},
		{`{"clientToken":5}`, ""},
		{`{"clientToken":5,`, ""},
		{`{"timestamp":}`, ""},
		{`{"timestamp":1 "clientToken":"abc"}`, ""},
		{`{"a":1,"b":`, ""},
		{`{"a"`, ""},
		{`{`, ""},
		{`[1]`, ""},
		{`[`, ""},
		{`"abc"`, ""},
		{``, ""},
		{`garbage`, ""},
		{`{}`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.body, func(t *testing.T) {
			if got := clientToken([]byte(tt.body)); got != tt.want {
				t.Errorf("clientToken(%s) = %q, want %q", tt.body, got, tt.want)
			}
		})
	}
}

// FuzzHandleMessage checks that nothing from the network panics the
// handler, whatever the topic and payload.
func FuzzHandleMessage(f *testing.F) {
	for _, s := range []struct{ topic, body string }{
		{"$aws/things/thing-1/jobs/notify", `{"jobs":{"QUEUED":[{"jobId":"a"}]}}`},
		{"$aws/things/thing-1/jobs/notify-next", `{"execution":{"jobId":"a","jobDocument":"{\"x\":1}"}}`},
		{"$aws/things/thing-1/jobs/j1/get/accepted", `{"clientToken":"t","execution":{"versionNumber":"3"}}`},
		{"$aws/things/thing-1/jobs/get/rejected", `{"clientToken":"t","code":`},
		{"$aws/things/thing-1/jobs/$next/get/accepted", `{"clientToken":"t"}`},
		{"$aws/things/other/jobs/notify", `{}`},
		{"$aws/things/thing-1/jobs/j1/update", `{"status":"SUCCEEDED"}`},
	} {
		f.Add(s.topic, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, topic string, body []byte) {
		c := &Client{thing: thing, wake: make(chan struct{}, 1), onEvent: func(Event) {}}
		h := handler{c}
		h.HandleMessage(ports.Message{Topic: topic, Payload: body})
		h.HandleMessage(ports.Message{Topic: topic, Payload: body})
		h.HandleState(ports.StateLost)
		h.HandleState(ports.StateRestored)
	})
}
