package jobs

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/iotjobs/iotjobs/domain/job"
	"github.com/iotjobs/iotjobs/domain/jobtopic"
	"github.com/iotjobs/iotjobs/ports"
)

func TestNotifications(t *testing.T) {
	e := newEnv(t, envOptions{})
	if e.c.Changed() {
		t.Fatal("Changed() of a new client = true, want false")
	}
	e.publishAs(topicOf(jobtopic.Notify, ""), []byte(`{"timestamp":1,"jobs":{"QUEUED":[{"jobId":"j1","versionNumber":1}]}}`))
	ev := e.nextEvent()
	if ev.Kind != EventJobsChanged || ev.JobsChanged == nil {
		t.Fatalf("event = %+v, want JobsChanged", ev)
	}
	if q := ev.JobsChanged.Jobs[job.Queued]; len(q) != 1 || q[0].JobID != "j1" {
		t.Errorf("queued = %+v, want j1", q)
	}
	if ev.NextChanged != nil || ev.Pending != nil || ev.Err != nil {
		t.Errorf("event = %+v, want only JobsChanged set", ev)
	}
	if !e.c.Changed() {
		t.Error("Changed() after notify = false, want true")
	}
	if e.c.Changed() {
		t.Error("second Changed() = true, want false")
	}

	e.publishAs(topicOf(jobtopic.NotifyNext, ""), []byte(`{"timestamp":1,"execution":{"jobId":"j1","status":"QUEUED","jobDocument":{"a":1}}}`))
	ev = e.nextEvent()
	if ev.Kind != EventNextChanged || ev.NextChanged == nil || ev.NextChanged.Execution == nil ||
		ev.NextChanged.Execution.JobID != "j1" {
		t.Fatalf("event = %+v, want NextChanged j1", ev)
	}
	if !e.c.Changed() {
		t.Error("Changed() after notify-next = false, want true")
	}
	e.publishAs(topicOf(jobtopic.NotifyNext, ""), []byte(`{"timestamp":2}`))
	if ev = e.nextEvent(); ev.Kind != EventNextChanged || ev.NextChanged.Execution != nil {
		t.Fatalf("event = %+v, want NextChanged without execution", ev)
	}
	e.noEvent()
}

func TestNotificationOrder(t *testing.T) {
	e := newEnv(t, envOptions{})
	const n = 50
	for i := range n {
		topic := topicOf(jobtopic.Notify, "")
		if i%2 == 1 {
			topic = topicOf(jobtopic.NotifyNext, "")
		}
		e.publishAs(topic, fmt.Appendf(nil, `{"timestamp":%d}`, i))
	}
	for i := range n {
		ev := e.nextEvent()
		var ts job.Timestamp
		switch ev.Kind {
		case EventJobsChanged:
			ts = ev.JobsChanged.Timestamp
		case EventNextChanged:
			ts = ev.NextChanged.Timestamp
		}
		if int(ts) != i {
			t.Fatalf("event %d: %v with timestamp %d, want timestamp %d", i, ev.Kind, ts, i)
		}
	}
}

func TestDuplicateNotifications(t *testing.T) {
	tests := []struct {
		name string
		kind jobtopic.Kind
		want EventKind
	}{
		{"notify", jobtopic.Notify, EventJobsChanged},
		{"notify-next", jobtopic.NotifyNext, EventNextChanged},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, envOptions{})
			topic := topicOf(tt.kind, "")
			if err := e.b.DuplicateNext(topic, 2); err != nil {
				t.Fatal(err)
			}
			e.publishAs(topic, []byte(`{"timestamp":1,"jobs":{}}`))
			e.publishAs(topic, []byte(`{"timestamp":2,"jobs":{}}`))
			// The same message again, as after a reconnect.
			e.publishAs(topic, []byte(`{"timestamp":2,"jobs":{}}`))
			for i := range 2 {
				if ev := e.nextEvent(); ev.Kind != tt.want {
					t.Fatalf("event %d = %v, want %v", i, ev.Kind, tt.want)
				}
			}
			e.noEvent()
			if got := e.c.Stats().DuplicateNotifications; got != 3 {
				t.Errorf("DuplicateNotifications = %d, want 3", got)
			}
			if !e.c.Changed() || e.c.Changed() {
				t.Error("Changed() twice: want true then false")
			}
		})
	}
}

func TestIgnoredMessages(t *testing.T) {
	e := newEnv(t, envOptions{})
	h := handler{e.c}
	other := jobtopic.Topic{Thing: "thing-2", Kind: jobtopic.Notify}.String()
	tests := []struct {
		name  string
		topic string
		body  string
	}{
		{"other thing's notify", other, `{"jobs":{}}`},
		{"request topic", topicOf(jobtopic.Update, "j1"), `{"status":"SUCCEEDED","clientToken":"x"}`},
		{"get request topic", topicOf(jobtopic.GetPending, ""), `{"clientToken":"x"}`},
		{"not a jobs topic", "$aws/things/thing-1/shadow/update", `{}`},
		{"unknown suffix", "$aws/things/thing-1/jobs/j1/delete", `{}`},
		{"bad job id", "$aws/things/thing-1/jobs/a b/get/accepted", `{}`},
		{"notify not JSON", topicOf(jobtopic.Notify, ""), `nope`},
		{"notify-next wrong type", topicOf(jobtopic.NotifyNext, ""), `{"execution":"x"}`},
		{"empty", topicOf(jobtopic.Notify, ""), ``},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h.HandleMessage(ports.Message{Topic: tt.topic, Payload: []byte(tt.body), QoS: 1})
			if got := e.c.Stats().Ignored; got != uint64(i+1) {
				t.Errorf("Ignored = %d, want %d", got, i+1)
			}
		})
	}
	if e.c.Changed() {
		t.Error("Changed() = true, want false")
	}
	e.noEvent()
	// The other thing's topic over the broker: never delivered or ignored.
	e.publishAs(other, []byte(`{"jobs":{}}`))
	e.noEvent()
}

func TestResync(t *testing.T) {
	pending := map[string]any{"inProgressJobs": []any{map[string]any{"jobId": "a"}},
		"queuedJobs": []any{map[string]any{"jobId": "b"}, map[string]any{"jobId": "c"}}}
	e := newEnv(t, envOptions{script: func(r request) []ports.Message {
		return []ports.Message{accept(r, pending)}
	}})
	if err := e.b.Disconnect(deviceID); err != nil {
		t.Fatal(err)
	}
	if ev := e.nextEvent(); ev.Kind != EventLost {
		t.Fatalf("first event = %v, want Lost", ev.Kind)
	}
	ev := e.nextEvent()
	if ev.Kind != EventResynced || ev.Err != nil || ev.Pending == nil {
		t.Fatalf("second event = %+v, want Resynced without error", ev)
	}
	if len(ev.Pending.InProgressJobs) != 1 || len(ev.Pending.QueuedJobs) != 2 || ev.Pending.QueuedJobs[1].JobID != "c" {
		t.Errorf("pending = %+v, want a; b, c", ev.Pending)
	}
	if !e.c.Changed() {
		t.Error("Changed() after a resync = false, want true")
	}
	if r := e.requests(); len(r) != 1 || r[0].Topic != topicOf(jobtopic.GetPending, "") {
		t.Errorf("published %+v, want one GetPending", r)
	}

	// A resync that fails reports why.
	e.setScript(func(r request) []ports.Message {
		return []ports.Message{reject(r, job.CodeRequestThrottled, nil)}
	})
	if err := e.b.Disconnect(deviceID); err != nil {
		t.Fatal(err)
	}
	if ev := e.nextEvent(); ev.Kind != EventLost {
		t.Fatalf("event = %v, want Lost", ev.Kind)
	}
	ev = e.nextEvent()
	if ev.Kind != EventResynced || !errors.Is(ev.Err, job.ErrRequestThrottled) || ev.Pending != nil {
		t.Fatalf("event = %+v, want Resynced with RequestThrottled", ev)
	}
	e.noEvent()
}

func TestResyncWithoutOnEvent(t *testing.T) {
	e := newEnv(t, envOptions{noEvents: true})
	if err := e.b.Disconnect(deviceID); err != nil {
		t.Fatal(err)
	}
	e.quiesce()
	if !e.c.Changed() {
		t.Error("Changed() after a reconnect = false, want true")
	}
	e.publishAs(topicOf(jobtopic.Notify, ""), []byte(`{"jobs":{}}`))
	e.quiesce()
	if !e.c.Changed() {
		t.Error("Changed() after notify = false, want true")
	}
	if r := e.requests(); len(r) != 0 {
		t.Errorf("published %d messages, want none (nobody to tell)", len(r))
	}
}

func TestRequestSurvivesLoss(t *testing.T) {
	e := newEnv(t, envOptions{})
	errc := make(chan error, 1)
	go func() {
		_, err := e.c.Describe(context.Background(), "j1", job.DescribeRequest{})
		errc <- err
	}()
	r := e.nextRequest()
	if err := e.b.DropConnection(deviceID); err != nil {
		t.Fatal(err)
	}
	if ev := e.nextEvent(); ev.Kind != EventLost {
		t.Fatalf("event = %v, want Lost", ev.Kind)
	}
	if err := e.b.Reconnect(deviceID); err != nil {
		t.Fatal(err)
	}
	e.publishAs(replyTo(r, true), mustJSON(map[string]any{"clientToken": r.token, "execution": map[string]any{"jobId": "j1"}}))
	if err := <-errc; err != nil {
		t.Errorf("request in flight across a loss: %v", err)
	}
	// The resync's GetPending gets no reply; Close ends it.
}

func TestCloseDuringOnEvent(t *testing.T) {
	entered := make(chan struct{})
	release := make(chan struct{})
	var mu sync.Mutex
	var calls int
	closed := false
	e := newEnv(t, envOptions{opts: Options{OnEvent: func(ev Event) {
		mu.Lock()
		calls++
		if closed {
			t.Error("OnEvent called after Close returned")
		}
		first := calls == 1
		mu.Unlock()
		if first {
			close(entered)
			<-release
		}
	}}})
	for i := range 3 {
		e.publishAs(topicOf(jobtopic.Notify, ""), fmt.Appendf(nil, `{"timestamp":%d}`, i))
	}
	<-entered
	e.quiesce() // the other two are queued
	closeDone := make(chan error)
	go func() { closeDone <- e.c.Close() }()
	<-e.c.closing.Done() // Close has started
	select {
	case <-closeDone:
		t.Fatal("Close returned while OnEvent was running")
	default:
	}
	close(release)
	if err := <-closeDone; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	closed = true
	if calls != 1 {
		t.Errorf("OnEvent called %d times, want 1 (queued events are discarded)", calls)
	}
	mu.Unlock()
}

func TestOnEventMakesRequests(t *testing.T) {
	got := make(chan []*Job, 1)
	var e *env
	e = newEnv(t, envOptions{
		opts: Options{OnEvent: func(ev Event) {
			if ev.Kind == EventJobsChanged {
				in, q, err := e.c.List(context.Background())
				if err != nil {
					t.Error(err)
				}
				got <- append(in, q...)
			}
		}},
		script: func(r request) []ports.Message {
			return []ports.Message{accept(r, map[string]any{"queuedJobs": []any{map[string]any{"jobId": "q1"}}})}
		},
	})
	e.publishAs(topicOf(jobtopic.Notify, ""), []byte(`{"jobs":{"QUEUED":[{"jobId":"q1"}]}}`))
	if js := <-got; len(js) != 1 || js[0].ID() != "q1" {
		t.Errorf("List from OnEvent = %v, want [q1]", js)
	}
}

func TestEventKindString(t *testing.T) {
	for k, want := range map[EventKind]string{
		EventJobsChanged: "JobsChanged", EventNextChanged: "NextChanged", EventLost: "Lost",
		EventResynced: "Resynced", 0: "EventKind(0)", 9: "EventKind(9)",
	} {
		if got := k.String(); got != want {
			t.Errorf("EventKind(%d).String() = %q, want %q", int(k), got, want)
		}
	}
}
