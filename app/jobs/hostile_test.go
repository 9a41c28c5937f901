package jobs_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iotjobs/iotjobs/adapters/membroker"
	"github.com/iotjobs/iotjobs/app/jobs"
	"github.com/iotjobs/iotjobs/domain/job"
	"github.com/iotjobs/iotjobs/ports"
	"github.com/iotjobs/iotjobs/testkit/jobstest"
)

// hostileEnv is a jobs Client of thing-1 and the fake service over
// membroker, with a third connection that publishes what a malicious peer
// (or a broken broker) would, and a count of what the device published.
type hostileEnv struct {
	t        *testing.T
	ctx      context.Context
	b        *membroker.Broker
	svc      *jobstest.Service
	c        *jobs.Client
	attacker *membroker.Client
	events   chan jobs.Event

	mu        sync.Mutex
	published int // by the device
}

func newHostileEnv(t *testing.T) *hostileEnv {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	e := &hostileEnv{t: t, ctx: ctx, events: make(chan jobs.Event, 1000)}
	e.b = membroker.New(membroker.Options{OnPublish: func(id string, _ ports.Message) {
		if id == "device" {
			e.mu.Lock()
			e.published++
			e.mu.Unlock()
		}
	}})
	t.Cleanup(func() { e.b.Close() })
	svcConn, err := e.b.Connect("service")
	if err != nil {
		t.Fatal(err)
	}
	e.svc = jobstest.New(jobstest.Options{Clock: jobstest.NewFakeClock(t0)})
	if err := e.svc.Start(ctx, svcConn); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.svc.Close() })
	if e.attacker, err = e.b.Connect("attacker"); err != nil {
		t.Fatal(err)
	}
	dev, err := e.b.Connect("device")
	if err != nil {
		t.Fatal(err)
	}
	e.c, err = jobs.New(ctx, dev, jobs.Options{Thing: "thing-1", OnEvent: func(ev jobs.Event) { e.events <- ev }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := e.c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return e
}

func (e *hostileEnv) devicePublished() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.published
}

func (e *hostileEnv) quiesce() {
	e.t.Helper()
	if err := e.b.Quiesce(e.ctx); err != nil {
		e.t.Fatal(err)
	}
}

// works checks that the client still works: a request to the service
// succeeds.
func (e *hostileEnv) works(t *testing.T) {
	t.Helper()
	if _, err := e.c.GetPending(e.ctx); err != nil {
		t.Fatalf("GetPending after hostile input: %v", err)
	}
}

const hostilePrefix = "$aws/things/thing-1/jobs/"

// TestHostileInput publishes to the client's topics what a malicious peer
// or broker could: each message must be counted in Stats (the client has no
// log to write it to), must not be taken as a notification or complete a
// request, and must leave the client working.
func TestHostileInput(t *testing.T) {
	e := newHostileEnv(t)
	nested := func(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }
	type counts struct{ ignored, dropped, dups uint64 }
	tests := []struct {
		name    string
		topic   string // after hostilePrefix unless it starts with $aws/
		payload string
		want    counts
	}{
		// Notifications that cannot be decoded: ignored.
		{"notify malformed JSON", "notify", `{"jobs":{"QUEUED":[`, counts{ignored: 1}},
		{"notify body is an array", "notify", `[{"jobs":{}}]`, counts{ignored: 1}},
		{"notify-next body is an array", "notify-next", `[]`, counts{ignored: 1}},
		{"notify-next execution is a number", "notify-next", `{"execution":5}`, counts{ignored: 1}},
		{"notify-next versionNumber not a number", "notify-next", `{"execution":{"jobId":"j1","versionNumber":"x"}}`, counts{ignored: 1}},
		{"notify timestamp is an object", "notify", `{"timestamp":{"seconds":1},"jobs":{}}`, counts{ignored: 1}},
		{"notify-next timestamp is an object", "notify-next", `{"timestamp":{},"execution":{"jobId":"j1","queuedAt":[1]}}`, counts{ignored: 1}},
		{"notify jobs is a string", "notify", `{"jobs":"QUEUED"}`, counts{ignored: 1}},
		{"notify nested beyond the decoder's depth", "notify", `{"x":` + nested(10001) + `}`, counts{ignored: 1}},
		{"notify invalid UTF-8 outside strings", "notify", "{\"jobs\":{}}\xff", counts{ignored: 1}},
		{"notify empty", "notify", ``, counts{ignored: 1}},
		{"notify garbage at the size limit", "notify", strings.Repeat("\xff", ports.MaxPayload), counts{ignored: 1}},
		// Replies nobody waits for: dropped.
		{"reply with an unknown token", "get/accepted", `{"inProgressJobs":[],"queuedJobs":[],"clientToken":"forged"}`, counts{dropped: 1}},
		{"reply without a token", "start-next/accepted", `{"execution":{"jobId":"j1","status":"IN_PROGRESS"}}`, counts{dropped: 1}},
		{"rejected reply with an unknown token", "j1/update/rejected", `{"code":"VersionMismatch","clientToken":"forged","executionState":{"versionNumber":9}}`, counts{dropped: 1}},
		{"reply with wrong types", "$next/get/accepted", `{"execution":5,"timestamp":{},"clientToken":"forged"}`, counts{dropped: 1}},
		{"reply truncated", "get/rejected", `{"clientToken":"forged","code":`, counts{dropped: 1}},
		{"reply token not a string", "get/accepted", `{"clientToken":{"$ne":""}}`, counts{dropped: 1}},
		{"reply deeply nested", "j1/get/accepted", `{"clientToken":"forged","x":` + nested(10001) + `}`, counts{dropped: 1}},
		{"reply with invalid UTF-8", "j1/get/accepted", "{\"clientToken\":\"forged\xff\",\"execution\":{\"jobId\":\"\xc3\"}}", counts{dropped: 1}},
		{"reply at the size limit", "get/accepted", `{"clientToken":"forged","x":"` + strings.Repeat("a", ports.MaxPayload-31) + `"}`, counts{dropped: 1}},
		// Topics that are not replies or notifications of thing-1: ignored.
		// A request topic is also answered by the service, with the forged
		// token: that reply is dropped.
		{"reply body on a request topic", "get", `{"inProgressJobs":[],"queuedJobs":[],"clientToken":"forged"}`, counts{ignored: 1, dropped: 1}},
		{"update on a request topic", "j1/update", `{"status":"SUCCEEDED","clientToken":"forged"}`, counts{ignored: 1, dropped: 1}},
		{"extra topic level", "j1/x/get/accepted", `{"clientToken":"forged"}`, counts{ignored: 1}},
		{"bad job id in the topic", "a b/get/accepted", `{"clientToken":"forged"}`, counts{ignored: 1}},
		// The service answers an unknown topic on topic/rejected
		// (InvalidTopic), which is ignored too.
		{"unknown suffix", "j1/get/accepted/more", `{}`, counts{ignored: 2}},
		// Not delivered at all: other things' topics.
		{"reply for another thing", "$aws/things/thing-2/jobs/get/accepted", `{"clientToken":"forged"}`, counts{}},
		{"notify for another thing", "$aws/things/thing-10/jobs/notify", `{"jobs":{}}`, counts{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			topic := tt.topic
			if !strings.HasPrefix(topic, "$aws/") {
				topic = hostilePrefix + topic
			}
			before := e.c.Stats()
			if err := e.attacker.Publish(e.ctx, ports.Message{Topic: topic, Payload: []byte(tt.payload), QoS: 1}); err != nil {
				t.Fatalf("publish: %v", err)
			}
			e.quiesce()
			after := e.c.Stats()
			got := counts{after.Ignored - before.Ignored, after.DroppedReplies - before.DroppedReplies,
				after.DuplicateNotifications - before.DuplicateNotifications}
			if got != tt.want {
				t.Errorf("counted %+v, want %+v", got, tt.want)
			}
			if e.c.Changed() {
				t.Error("taken as a notification")
			}
			if after.Waiting != 0 {
				t.Errorf("%d requests waiting", after.Waiting)
			}
			e.works(t)
		})
	}

	t.Run("over the size limit", func(t *testing.T) {
		err := e.attacker.Publish(e.ctx, ports.Message{Topic: hostilePrefix + "notify", Payload: make([]byte, ports.MaxPayload+1), QoS: 1})
		if !errors.Is(err, ports.ErrTooLarge) {
			t.Fatalf("publish: %v, want ports.ErrTooLarge", err)
		}
		e.works(t)
	})

	t.Run("duplicate notification", func(t *testing.T) {
		body := []byte(`{"timestamp":1,"jobs":{"QUEUED":[{"jobId":"forged"}]}}`)
		before := e.c.Stats()
		for range 3 {
			if err := e.attacker.Publish(e.ctx, ports.Message{Topic: hostilePrefix + "notify", Payload: body, QoS: 1}); err != nil {
				t.Fatal(err)
			}
		}
		e.quiesce()
		if got := e.c.Stats().DuplicateNotifications - before.DuplicateNotifications; got != 2 {
			t.Errorf("DuplicateNotifications +%d, want +2", got)
		}
		if ev := e.event(t); ev.Kind != jobs.EventJobsChanged {
			t.Errorf("event %v, want JobsChanged", ev.Kind)
		}
		e.c.Changed()
		e.works(t)
	})

	// A well-formed notification with garbage inside strings is taken:
	// encoding/json replaces invalid UTF-8 by U+FFFD. What it names cannot
	// make the client publish anything invalid: the id is refused before
	// any request is sent.
	t.Run("notification with invalid UTF-8 in a job id", func(t *testing.T) {
		before := e.devicePublished()
		if err := e.attacker.Publish(e.ctx, ports.Message{Topic: hostilePrefix + "notify-next",
			Payload: []byte("{\"execution\":{\"jobId\":\"a\xffb/../#\",\"status\":\"QUEUED\",\"jobDocument\":{\"operation\":\"x\"}}}"), QoS: 1}); err != nil {
			t.Fatal(err)
		}
		ev := e.event(t)
		if ev.Kind != jobs.EventNextChanged || ev.NextChanged.Execution == nil {
			t.Fatalf("event %+v, want NextChanged with an execution", ev)
		}
		id := ev.NextChanged.Execution.JobID
		if id != "a\uFFFDb/../#" {
			t.Errorf("job id %q", id)
		}
		e.c.Changed()
		if err := e.c.Job(id).Describe(e.ctx); !errors.Is(err, job.ErrInvalidInput) {
			t.Errorf("Describe(%q): %v, want job.ErrInvalidInput", id, err)
		}
		if _, err := e.c.Update(e.ctx, id, job.UpdateRequest{Status: job.Succeeded}); !errors.Is(err, job.ErrInvalidInput) {
			t.Errorf("Update(%q): %v, want job.ErrInvalidInput", id, err)
		}
		if n := e.devicePublished() - before; n != 0 {
			t.Errorf("device published %d messages", n)
		}
		e.works(t)
	})

	// After all of it, a whole job runs.
	t.Run("a job runs afterwards", func(t *testing.T) {
		if err := e.svc.CreateJob(e.ctx, jobstest.JobSpec{JobID: "j1", Document: json.RawMessage(`{"op":"x"}`), Targets: []string{"thing-1"}}); err != nil {
			t.Fatal(err)
		}
		r, err := e.c.StartNext(e.ctx, job.StartNextRequest{})
		if err != nil || r.Execution == nil || r.Execution.JobID != "j1" {
			t.Fatalf("StartNext = %+v, %v; want j1", r, err)
		}
		if _, err := e.c.Update(e.ctx, "j1", job.UpdateRequest{Status: job.Succeeded}); err != nil {
			t.Fatal(err)
		}
		if x, _ := e.svc.Execution("thing-1", "j1"); x.Status != job.Succeeded {
			t.Errorf("j1 is %s, want SUCCEEDED", x.Status)
		}
	})
}

func (e *hostileEnv) event(t *testing.T) jobs.Event {
	t.Helper()
	select {
	case ev := <-e.events:
		return ev
	case <-e.ctx.Done():
		t.Fatal("no event")
		return jobs.Event{}
	}
}

// TestInvalidInputTyped: input refused by the client is a
// *job.ValidationError naming the field (errors.As), matches
// job.ErrInvalidInput (errors.Is), and publishes nothing. (The cases of
// TestInvalidInputPublishesNothing check errors.Is over more inputs; these
// check the field named.)
func TestInvalidInputTyped(t *testing.T) {
	e := newHostileEnv(t)
	ctx := e.ctx
	long := strings.Repeat("x", 65)
	tests := []struct {
		name  string
		field string
		do    func() error
	}{
		{"describe id with a slash", "jobId", func() error { _, err := e.c.Describe(ctx, "a/b", job.DescribeRequest{}); return err }},
		{"describe id with a wildcard", "jobId", func() error { _, err := e.c.Describe(ctx, "#", job.DescribeRequest{}); return err }},
		{"describe execution number 0", "executionNumber", func() error {
			_, err := e.c.Describe(ctx, "j1", job.DescribeRequest{ExecutionNumber: new(int64)})
			return err
		}},
		{"describe long token", "clientToken", func() error {
			_, err := e.c.Describe(ctx, "j1", job.DescribeRequest{ClientToken: long})
			return err
		}},
		{"update $next", "jobId", func() error {
			_, err := e.c.Update(ctx, job.NextJobID, job.UpdateRequest{Status: job.Succeeded})
			return err
		}},
		{"update invalid UTF-8 id", "jobId", func() error {
			_, err := e.c.Update(ctx, "j\xff", job.UpdateRequest{Status: job.Succeeded})
			return err
		}},
		{"update status QUEUED", "status", func() error { _, err := e.c.Update(ctx, "j1", job.UpdateRequest{Status: job.Queued}); return err }},
		{"update negative version", "expectedVersion", func() error {
			v := job.Version(-1)
			_, err := e.c.Update(ctx, "j1", job.UpdateRequest{Status: job.Failed, ExpectedVersion: &v})
			return err
		}},
		{"update empty detail value", "statusDetails[k]", func() error {
			_, err := e.c.Update(ctx, "j1", job.UpdateRequest{Status: job.Failed, StatusDetails: job.StatusDetails{"k": ""}})
			return err
		}},
		{"update token with a control character", "clientToken", func() error {
			_, err := e.c.Update(ctx, "j1", job.UpdateRequest{Status: job.Failed, ClientToken: "a\x00b"})
			return err
		}},
		{"start next step timeout too long", "stepTimeoutInMinutes", func() error {
			m := int64(job.MaxStepTimeoutMinutes + 1)
			_, err := e.c.StartNext(ctx, job.StartNextRequest{StepTimeoutInMinutes: &m})
			return err
		}},
		{"job handle update $next", "jobId", func() error { return e.c.Job(job.NextJobID).Update(ctx, job.Succeeded, nil) }},
		{"new with a wildcard thing", "thingName", func() error {
			dev, err := e.b.Connect("device-2")
			if err != nil {
				return err
			}
			defer dev.Close()
			c, err := jobs.New(ctx, dev, jobs.Options{Thing: "thing/#"})
			if err == nil {
				c.Close()
			}
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := e.devicePublished()
			err := tt.do()
			var ve *job.ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("got %v, want a *job.ValidationError", err)
			}
			if !errors.Is(err, job.ErrInvalidInput) {
				t.Errorf("%v does not match job.ErrInvalidInput", err)
			}
			if !strings.HasPrefix(ve.Field, tt.field) || ve.Reason == "" {
				t.Errorf("field %q reason %q, want field %q and a reason", ve.Field, ve.Reason, tt.field)
			}
			if n := e.devicePublished() - before; n != 0 {
				t.Errorf("device published %d messages", n)
			}
		})
	}
	e.works(t)
	if n := e.devicePublished(); n != 1 {
		t.Errorf("device published %d messages, want the one request of works", n)
	}
}
