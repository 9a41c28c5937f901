package jobs

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/iotjobs/iotjobs/adapters/membroker"
	"github.com/iotjobs/iotjobs/domain/job"
	"github.com/iotjobs/iotjobs/domain/jobtopic"
	"github.com/iotjobs/iotjobs/ports"
)

func ptr[T any](v T) *T { return &v }

func TestNewInvalid(t *testing.T) {
	b := membroker.New(membroker.Options{})
	defer b.Close()
	ps, err := b.Connect("")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		ps   ports.PubSub
		opts Options
		is   error
	}{
		{"nil transport", nil, Options{Thing: thing}, nil},
		{"empty thing", ps, Options{}, job.ErrInvalidInput},
		{"bad thing", ps, Options{Thing: "a/b"}, job.ErrInvalidInput},
		{"long thing", ps, Options{Thing: strings.Repeat("a", 129)}, job.ErrInvalidInput},
		{"negative timeout", ps, Options{Thing: thing, Timeout: -time.Second}, job.ErrInvalidInput},
		{"QoS 2", ps, Options{Thing: thing, QoS: 2}, ports.ErrInvalidQoS},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := New(context.Background(), tt.ps, tt.opts)
			if err == nil {
				c.Close()
				t.Fatal("New: got nil error, want one")
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("New: got %v, want it to match %v", err, tt.is)
			}
			if !strings.HasPrefix(err.Error(), "jobs: new: ") {
				t.Errorf("New: got %q, want prefix %q", err, "jobs: new: ")
			}
		})
	}
	t.Run("subscribe fails", func(t *testing.T) {
		closed, err := b.Connect("")
		if err != nil {
			t.Fatal(err)
		}
		closed.Close()
		_, err = New(context.Background(), closed, Options{Thing: thing})
		if !errors.Is(err, ports.ErrClosed) {
			t.Errorf("New on a closed transport: got %v, want ports.ErrClosed", err)
		}
	})
}

func TestNewDefaults(t *testing.T) {
	e := newEnv(t, envOptions{opts: Options{Thing: "my:thing_1"}})
	if got := e.c.Thing(); got != "my:thing_1" {
		t.Errorf("Thing() = %q, want %q", got, "my:thing_1")
	}
	if e.c.timeout != DefaultTimeout {
		t.Errorf("timeout = %v, want %v", e.c.timeout, DefaultTimeout)
	}
	if e.c.qos != ports.AtLeastOnce {
		t.Errorf("qos = %v, want 1", e.c.qos)
	}
	if e.c.Changed() {
		t.Error("Changed() of a new client = true, want false")
	}
}

func TestQoS(t *testing.T) {
	for _, tt := range []struct {
		name string
		opts Options
		want ports.QoS
	}{
		{"zero means 1", Options{}, ports.AtLeastOnce},
		{"explicit 1", Options{QoS: ports.AtLeastOnce}, ports.AtLeastOnce},
		{"at most once", Options{AtMostOnce: true}, ports.AtMostOnce},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, envOptions{opts: tt.opts, script: func(r request) []ports.Message {
				return []ports.Message{accept(r, nil)}
			}})
			if _, err := e.c.GetPending(context.Background()); err != nil {
				t.Fatal(err)
			}
			reqs := e.requests()
			if len(reqs) != 1 || reqs[0].QoS != tt.want {
				t.Fatalf("published %+v, want one request with QoS %d", reqs, tt.want)
			}
		})
	}
}

// call is one request of each kind, as a test drives it.
type call struct {
	name  string
	kind  jobtopic.Kind
	jobID string
	do    func(ctx context.Context, c *Client, token string) (any, error)
}

var calls = []call{
	{"GetPending", jobtopic.GetPending, "", func(ctx context.Context, c *Client, _ string) (any, error) {
		return c.GetPending(ctx)
	}},
	{"StartNext", jobtopic.StartNext, "", func(ctx context.Context, c *Client, token string) (any, error) {
		return c.StartNext(ctx, job.StartNextRequest{StatusDetails: job.StatusDetails{"k": "v"}, ClientToken: token})
	}},
	{"Describe", jobtopic.Describe, "j1", func(ctx context.Context, c *Client, token string) (any, error) {
		return c.Describe(ctx, "j1", job.DescribeRequest{ClientToken: token})
	}},
	{"Describe $next", jobtopic.Describe, job.NextJobID, func(ctx context.Context, c *Client, token string) (any, error) {
		return c.Describe(ctx, job.NextJobID, job.DescribeRequest{ClientToken: token})
	}},
	{"Update", jobtopic.Update, "j1", func(ctx context.Context, c *Client, token string) (any, error) {
		return c.Update(ctx, "j1", job.UpdateRequest{Status: job.InProgress, ClientToken: token})
	}},
}

// acceptedBody returns a typical accepted body for a request of kind k.
func acceptedBody(k jobtopic.Kind, jobID string) map[string]any {
	exec := map[string]any{"jobId": jobID, "status": "IN_PROGRESS", "versionNumber": 2,
		"jobDocument": map[string]any{"op": "reboot"}}
	switch k {
	case jobtopic.GetPending:
		return map[string]any{"inProgressJobs": []any{map[string]any{"jobId": "a", "versionNumber": 1}},
			"queuedJobs": []any{map[string]any{"jobId": "b"}}, "timestamp": 7}
	case jobtopic.StartNext, jobtopic.Describe:
		if jobID == job.NextJobID || jobID == "" {
			exec["jobId"] = "n1"
		}
		return map[string]any{"execution": exec, "timestamp": 7}
	}
	return map[string]any{"executionState": map[string]any{"status": "IN_PROGRESS", "versionNumber": 3}, "timestamp": 7}
}

func TestRequestAccepted(t *testing.T) {
	for _, cl := range calls {
		t.Run(cl.name, func(t *testing.T) {
			e := newEnv(t, envOptions{script: func(r request) []ports.Message {
				return []ports.Message{accept(r, acceptedBody(r.topic.Kind, r.topic.JobID))}
			}})
			got, err := cl.do(context.Background(), e.c, "")
			if err != nil {
				t.Fatalf("got error %v, want none", err)
			}
			reqs := e.requests()
			if len(reqs) != 1 {
				t.Fatalf("published %d messages, want 1", len(reqs))
			}
			wantTopic := jobtopic.Topic{Thing: thing, Kind: cl.kind, JobID: cl.jobID}.String()
			if reqs[0].Topic != wantTopic {
				t.Errorf("request topic = %q, want %q", reqs[0].Topic, wantTopic)
			}
			token := tokenOf(reqs[0].Payload)
			if len(token) != 22 {
				t.Errorf("request token = %q, want a fresh 22-character token", token)
			}
			var gotToken string
			switch r := got.(type) {
			case *job.GetPendingResponse:
				gotToken = r.ClientToken
				if len(r.InProgressJobs) != 1 || r.InProgressJobs[0].JobID != "a" || len(r.QueuedJobs) != 1 {
					t.Errorf("response = %+v, want a in progress and b queued", r)
				}
			case *job.StartNextResponse:
				gotToken = r.ClientToken
				if r.Execution == nil || r.Execution.JobID != "n1" {
					t.Errorf("response = %+v, want execution n1", r)
				}
			case *job.DescribeResponse:
				gotToken = r.ClientToken
				want := "j1"
				if cl.jobID == job.NextJobID {
					want = "n1"
				}
				if r.Execution == nil || r.Execution.JobID != want || r.Execution.VersionNumber != 2 ||
					string(r.Execution.JobDocument) != `{"op":"reboot"}` {
					t.Errorf("response = %+v, want execution %s version 2", r, want)
				}
			case *job.UpdateResponse:
				gotToken = r.ClientToken
				if r.ExecutionState == nil || r.ExecutionState.VersionNumber != 3 {
					t.Errorf("response = %+v, want execution state version 3", r)
				}
			default:
				t.Fatalf("response of type %T", got)
			}
			if gotToken != token {
				t.Errorf("response token = %q, want %q", gotToken, token)
			}
			if s := e.c.Stats(); s.Waiting != 0 {
				t.Errorf("Stats().Waiting = %d, want 0", s.Waiting)
			}
		})
	}
}

func TestRequestRejected(t *testing.T) {
	state := &job.ExecutionState{Status: job.InProgress, VersionNumber: 5}
	for _, cl := range calls {
		for _, code := range job.Codes {
			t.Run(cl.name+"/"+string(code), func(t *testing.T) {
				e := newEnv(t, envOptions{script: func(r request) []ports.Message {
					return []ports.Message{reject(r, code, state)}
				}})
				_, err := cl.do(context.Background(), e.c, "")
				if !errors.Is(err, error(code)) {
					t.Fatalf("got %v, want it to match %v", err, code)
				}
				var rej *job.RejectedError
				if !errors.As(err, &rej) {
					t.Fatalf("got %T, want a *job.RejectedError in the chain", err)
				}
				if rej.ExecutionState == nil || rej.ExecutionState.VersionNumber != 5 {
					t.Errorf("ExecutionState = %+v, want version 5", rej.ExecutionState)
				}
				prefix := map[jobtopic.Kind]string{
					jobtopic.GetPending: "jobs: get pending: ", jobtopic.StartNext: "jobs: start next: ",
					jobtopic.Describe: "jobs: describe " + cl.jobID + ": ", jobtopic.Update: "jobs: update j1: ",
				}[cl.kind]
				want := prefix + "job: rejected: " + string(code) + ": scripted"
				if err.Error() != want {
					t.Errorf("message = %q, want %q", err, want)
				}
			})
		}
	}
}

func TestInvalidInputPublishesNothing(t *testing.T) {
	e := newEnv(t, envOptions{script: func(r request) []ports.Message {
		return []ports.Message{accept(r, acceptedBody(r.topic.Kind, r.topic.JobID))}
	}})
	ctx := context.Background()
	long := strings.Repeat("x", 65)
	tests := []struct {
		name string
		do   func() error
	}{
		{"describe empty id", func() error { _, err := e.c.Describe(ctx, "", job.DescribeRequest{}); return err }},
		{"describe bad id", func() error { _, err := e.c.Describe(ctx, "a/b", job.DescribeRequest{}); return err }},
		{"describe long id", func() error { _, err := e.c.Describe(ctx, long, job.DescribeRequest{}); return err }},
		{"describe bad execution number", func() error {
			_, err := e.c.Describe(ctx, "j1", job.DescribeRequest{ExecutionNumber: ptr[int64](0)})
			return err
		}},
		{"describe long token", func() error {
			_, err := e.c.Describe(ctx, "j1", job.DescribeRequest{ClientToken: long})
			return err
		}},
		{"update $next", func() error {
			_, err := e.c.Update(ctx, job.NextJobID, job.UpdateRequest{Status: job.Succeeded})
			return err
		}},
		{"update bad id", func() error { _, err := e.c.Update(ctx, "a b", job.UpdateRequest{Status: job.Succeeded}); return err }},
		{"update status QUEUED", func() error { _, err := e.c.Update(ctx, "j1", job.UpdateRequest{Status: job.Queued}); return err }},
		{"update status CANCELED", func() error { _, err := e.c.Update(ctx, "j1", job.UpdateRequest{Status: job.Canceled}); return err }},
		{"update empty status", func() error { _, err := e.c.Update(ctx, "j1", job.UpdateRequest{}); return err }},
		{"update bad details", func() error {
			_, err := e.c.Update(ctx, "j1", job.UpdateRequest{Status: job.Failed, StatusDetails: job.StatusDetails{"k": ""}})
			return err
		}},
		{"update negative version", func() error {
			_, err := e.c.Update(ctx, "j1", job.UpdateRequest{Status: job.Failed, ExpectedVersion: ptr[job.Version](-1)})
			return err
		}},
		{"update control character in token", func() error {
			_, err := e.c.Update(ctx, "j1", job.UpdateRequest{Status: job.Failed, ClientToken: "a\nb"})
			return err
		}},
		{"start next step timeout", func() error {
			_, err := e.c.StartNext(ctx, job.StartNextRequest{StepTimeoutInMinutes: ptr[int64](0)})
			return err
		}},
		{"start next bad details key", func() error {
			_, err := e.c.StartNext(ctx, job.StartNextRequest{StatusDetails: job.StatusDetails{"a b": "v"}})
			return err
		}},
		{"job describe $next", func() error { return e.c.Job(job.NextJobID).Describe(ctx) }},
		{"job update $next", func() error { return e.c.Job(job.NextJobID).Update(ctx, job.Succeeded, nil) }},
		{"job update bad status", func() error { return e.c.Job("j1").Update(ctx, job.TimedOut, nil) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.do()
			if !errors.Is(err, job.ErrInvalidInput) {
				t.Errorf("got %v, want an error matching job.ErrInvalidInput", err)
			}
			if err != nil && !strings.HasPrefix(err.Error(), "jobs: ") {
				t.Errorf("got %q, want the prefix %q", err, "jobs: ")
			}
		})
	}
	// A marker request after all the invalid ones: it must be the only one.
	if _, err := e.c.Describe(ctx, "marker", job.DescribeRequest{}); err != nil {
		t.Fatal(err)
	}
	if r := e.nextRequest(); r.topic.JobID != "marker" {
		t.Errorf("first request received: %+v, want the marker", r.topic)
	}
	if got := e.requests(); len(got) != 1 {
		t.Errorf("device published %d messages, want only the marker", len(got))
	}
}
