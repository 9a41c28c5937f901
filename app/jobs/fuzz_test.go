package jobs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"

	"github.com/iotjobs/iotjobs/domain/job"
	"github.com/iotjobs/iotjobs/domain/jobtopic"
	"github.com/iotjobs/iotjobs/ports"
)

// replier is a transport that answers each request at once, on the
// transport's side of the Client, with one scripted reply: the body given,
// its "TOKEN" replaced by the request's client token. When the client drops
// the reply, it cancels the request, which would otherwise wait for its
// deadline.
type replier struct {
	mu       sync.Mutex
	h        ports.Handler
	c        *Client
	rejected bool
	body     []byte
	token    string // of the last request
	cancel   context.CancelFunc
}

func (r *replier) Subscribe(_ context.Context, _ ports.Filter, h ports.Handler) (ports.Subscription, error) {
	r.mu.Lock()
	r.h = h
	r.mu.Unlock()
	return r, nil
}

func (r *replier) Unsubscribe(context.Context) error { return nil }

func (r *replier) Publish(_ context.Context, m ports.Message) error {
	t, err := jobtopic.Parse(m.Topic)
	if err != nil || !t.Kind.IsRequest() {
		return errors.New("replier: not a request topic")
	}
	var req struct {
		ClientToken string `json:"clientToken"`
	}
	if err := json.Unmarshal(m.Payload, &req); err != nil {
		return err
	}
	k := t.Kind.Accepted()
	if r.rejected {
		k = t.Kind.Rejected()
	}
	r.token = req.ClientToken
	reply := jobtopic.Topic{Thing: t.Thing, Kind: k, JobID: t.JobID}.String()
	before := r.c.Stats().DroppedReplies
	r.mu.Lock()
	h := r.h
	r.mu.Unlock()
	h.HandleMessage(ports.Message{Topic: reply, Payload: bytes.ReplaceAll(r.body, []byte("TOKEN"), []byte(req.ClientToken)), QoS: 1})
	if r.c.Stats().DroppedReplies != before {
		r.cancel()
	}
	return nil
}

// FuzzReply answers a request of each kind with an arbitrary body on its
// accepted or rejected topic, as a hostile or broken service might: the
// request never panics and never hangs; an accepted reply succeeds exactly
// when its body decodes into the response type, else fails with
// ErrInvalidReply; a rejected reply always fails, with a *job.RejectedError
// that has a code or with ErrInvalidReply; a reply the client cannot match
// (no or another token) is dropped and counted; nothing stays waiting.
func FuzzReply(f *testing.F) {
	for _, s := range []struct {
		kind     uint8
		rejected bool
		body     string
	}{
		{0, false, `{"inProgressJobs":[{"jobId":"j1","queuedAt":1,"startedAt":2,"lastUpdatedAt":3,"versionNumber":2,"executionNumber":1}],"queuedJobs":[],"timestamp":1489096425,"clientToken":"TOKEN"}`},
		{1, false, `{"execution":{"jobId":"j1","status":"IN_PROGRESS","jobDocument":{"operation":"reboot"},"versionNumber":2},"timestamp":1,"clientToken":"TOKEN"}`},
		{1, false, `{"timestamp":1,"clientToken":"TOKEN"}`},
		{2, false, `{"execution":{"jobId":"j1","jobDocument":"{\"a\":1}","versionNumber":"3"},"clientToken":"TOKEN"}`},
		{3, false, `{"executionState":{"status":"SUCCEEDED","versionNumber":3},"jobDocument":{"x":1},"clientToken":"TOKEN"}`},
		{3, true, `{"code":"VersionMismatch","message":"m","clientToken":"TOKEN","executionState":{"status":"IN_PROGRESS","versionNumber":3}}`},
		{2, true, `{"code":"TerminalStateReached","clientToken":"TOKEN","timestamp":1}`},
		{0, true, `{"clientToken":"TOKEN"}`},
		{1, false, `{"clientToken":"TOKEN","execution":5}`},
		{2, false, `{"clientToken":"TOKEN","execution":{"versionNumber":"x"}}`},
		{3, false, `{"clientToken":"TOKEN","timestamp":{}}`},
		{0, false, `{"clientToken":"TOKEN","inProgressJobs":`},
		{0, false, `{"clientToken":"other"}`},
		{1, false, `[{"clientToken":"TOKEN"}]`},
	} {
		f.Add(s.kind, s.rejected, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, kind uint8, rejected bool, body []byte) {
		r := &replier{rejected: rejected, body: body}
		c, err := New(context.Background(), r, Options{Thing: thing})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		r.c = c
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		ctx, r.cancel = context.WithCancel(ctx)

		var out any
		switch kind % 4 {
		case 0:
			_, err = c.GetPending(ctx)
			out = new(job.GetPendingResponse)
		case 1:
			_, err = c.StartNext(ctx, job.StartNextRequest{})
			out = new(job.StartNextResponse)
		case 2:
			_, err = c.Describe(ctx, "j1", job.DescribeRequest{})
			out = new(job.DescribeResponse)
		case 3:
			_, err = c.Update(ctx, "j1", job.UpdateRequest{Status: job.InProgress})
			out = new(job.UpdateResponse)
		}
		st := c.Stats()
		if st.Waiting != 0 {
			t.Fatalf("%d requests still waiting", st.Waiting)
		}
		if st.DroppedReplies > 0 {
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("reply %q dropped, yet the request ended with %v", body, err)
			}
			return
		}
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
			t.Fatalf("reply %q neither dropped nor delivered: %v", body, err)
		}
		if rejected {
			var re *job.RejectedError
			switch {
			case errors.As(err, &re):
				if re.Code == "" {
					t.Fatalf("rejected reply %q gave a RejectedError without a code", body)
				}
			case !errors.Is(err, ErrInvalidReply):
				t.Fatalf("rejected reply %q gave %v, want a RejectedError or ErrInvalidReply", body, err)
			}
			return
		}
		decodes := json.Unmarshal(bytes.ReplaceAll(body, []byte("TOKEN"), []byte(r.token)), out) == nil
		switch {
		case decodes && err != nil:
			t.Fatalf("accepted reply %q decodes, yet the request failed: %v", body, err)
		case !decodes && !errors.Is(err, ErrInvalidReply):
			t.Fatalf("accepted reply %q does not decode, yet the request gave %v", body, err)
		}
	})
}

// FuzzHandleCounted delivers one arbitrary message to a fresh client: it is
// either a notification taken (Changed, one event queued) or counted,
// exactly once, as ignored, a dropped reply or a duplicate.
func FuzzHandleCounted(f *testing.F) {
	for _, s := range []struct{ topic, body string }{
		{"$aws/things/thing-1/jobs/notify", `{"timestamp":1517016948,"jobs":{"QUEUED":[{"jobId":"j2","queuedAt":1517016947}]}}`},
		{"$aws/things/thing-1/jobs/notify", `{"jobs":[]}`},
		{"$aws/things/thing-1/jobs/notify-next", `{"timestamp":1,"execution":{"jobId":"j1","status":"QUEUED","jobDocument":{"op":"x"},"versionNumber":1}}`},
		{"$aws/things/thing-1/jobs/notify-next", `{"execution":5}`},
		{"$aws/things/thing-1/jobs/notify-next", `[]`},
		{"$aws/things/thing-1/jobs/j1/update/accepted", `{"clientToken":"nobody"}`},
		{"$aws/things/thing-1/jobs/get/rejected", `{"code":"InternalError"}`},
		{"$aws/things/thing-1/jobs/start-next", `{"clientToken":"x"}`},
		{"$aws/things/thing-2/jobs/notify", `{"jobs":{}}`},
		{"$aws/things/thing-1/jobs/a/b/get/accepted", `{}`},
		{"$aws/things/thing-1/shadow/update", `{}`},
	} {
		f.Add(s.topic, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, topic string, body []byte) {
		c := &Client{thing: thing, wake: make(chan struct{}, 1), onEvent: func(Event) {}}
		handler{c}.HandleMessage(ports.Message{Topic: topic, Payload: body, QoS: 1})
		st := c.Stats()
		counted := st.Ignored + st.DroppedReplies + st.DuplicateNotifications
		taken := c.Changed()
		if taken != (len(c.queue) == 1) || len(c.queue) > 1 {
			t.Fatalf("%s %q: Changed %v with %d events queued", topic, body, taken, len(c.queue))
		}
		if taken == (counted == 1) || counted > 1 {
			t.Fatalf("%s %q: taken %v and counted %d times (%+v)", topic, body, taken, counted, st)
		}
		p, err := jobtopic.Parse(topic)
		switch {
		case taken && (err != nil || p.Thing != thing || !p.Kind.IsNotification()):
			t.Fatalf("%s %q taken as a notification", topic, body)
		case err == nil && p.Thing == thing && (p.Kind.IsAccepted() || p.Kind.IsRejected()) && st.DroppedReplies != 1:
			t.Fatalf("%s %q: a reply nobody waits for is not counted as dropped (%+v)", topic, body, st)
		}
	})
}

// FuzzClientToken: the token the handler reads from a reply is the one
// encoding/json reads (field names match case-insensitively, the last
// duplicate wins, escapes are decoded), and, for a body that is not JSON,
// the one a scan up to the first syntax error finds: whatever shortcut
// clientToken takes, it must not disagree with them.
func FuzzClientToken(f *testing.F) {
	for _, s := range []string{
		`{"clientToken":"abc"}`,
		`{"code":"X","clientToken":"abc","message":"m"}`,
		`{"clientToken":"a","clientToken":"b"}`,
		`{"ClientToken":"a"}`,
		`{"clienttoken":"a","clientToken":"b","CLIENTTOKEN":"c"}`,
		`{"client\u0054oken":"esc"}`,
		`{"clientToken":"a\"b\\c\u00e9"}`,
		`{"clientToken":5}`,
		`{"clientToken":null}`,
		`{"clientToken":"abc","execution":{`,
		`{"x":{"clientToken":"nested"},"clientToken":"top"}`,
		`["clientToken","abc"]`,
		"{\"clientToken\":\"\xff\"}",
		`{"clientToken":"abc"} {"clientToken":"x"}`,
		` { "clientToken" : "spaced" } `,
		``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		got := clientToken(payload)
		var b struct {
			ClientToken string `json:"clientToken"`
		}
		err := json.Unmarshal(payload, &b)
		want := b.ClientToken
		if _, syntax := err.(*json.SyntaxError); syntax {
			want = scanToken(payload)
		}
		if got != want {
			t.Fatalf("clientToken(%q) = %q, want %q", payload, got, want)
		}
	})
}
