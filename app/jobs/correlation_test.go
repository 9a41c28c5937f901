package jobs

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iotjobs/iotjobs/domain/job"
	"github.com/iotjobs/iotjobs/domain/jobtopic"
	"github.com/iotjobs/iotjobs/ports"
)

// topicOf returns the topic of kind k for jobID on thing.
func topicOf(k jobtopic.Kind, jobID string) string {
	return jobtopic.Topic{Thing: thing, Kind: k, JobID: jobID}.String()
}

func TestReplyMatchedByTopicAndToken(t *testing.T) {
	// Each script sends decoys with the request's token on other topics,
	// or the right topic with another token, then the real reply. The
	// decoys must be dropped and the real reply returned.
	decoys := []struct {
		name  string
		decoy func(r request) ports.Message
	}{
		{"other job id", func(r request) ports.Message {
			return ports.Message{Topic: topicOf(jobtopic.DescribeAccepted, "j2"), Payload: mustJSON(map[string]any{"clientToken": r.token, "execution": map[string]any{"jobId": "wrong"}})}
		}},
		{"other kind", func(r request) ports.Message {
			return ports.Message{Topic: topicOf(jobtopic.UpdateAccepted, "j1"), Payload: mustJSON(map[string]any{"clientToken": r.token})}
		}},
		{"$next instead of the id", func(r request) ports.Message {
			return ports.Message{Topic: topicOf(jobtopic.DescribeAccepted, job.NextJobID), Payload: mustJSON(map[string]any{"clientToken": r.token, "execution": map[string]any{"jobId": "wrong"}})}
		}},
		{"get pending", func(r request) ports.Message {
			return ports.Message{Topic: topicOf(jobtopic.GetPendingAccepted, ""), Payload: mustJSON(map[string]any{"clientToken": r.token})}
		}},
		{"other thing", func(r request) ports.Message {
			return ports.Message{Topic: jobtopic.Topic{Thing: "thing-2", Kind: jobtopic.DescribeAccepted, JobID: "j1"}.String(), Payload: mustJSON(map[string]any{"clientToken": r.token, "execution": map[string]any{"jobId": "wrong"}})}
		}},
		{"other token", func(r request) ports.Message {
			return ports.Message{Topic: topicOf(jobtopic.DescribeAccepted, "j1"), Payload: mustJSON(map[string]any{"clientToken": "other", "execution": map[string]any{"jobId": "wrong"}})}
		}},
		{"no token", func(r request) ports.Message {
			return ports.Message{Topic: topicOf(jobtopic.DescribeRejected, "j1"), Payload: mustJSON(map[string]any{"code": "InvalidJson"})}
		}},
		{"not JSON", func(r request) ports.Message {
			return ports.Message{Topic: topicOf(jobtopic.DescribeAccepted, "j1"), Payload: []byte("garbage")}
		}},
	}
	for _, d := range decoys {
		t.Run(d.name, func(t *testing.T) {
			e := newEnv(t, envOptions{script: func(r request) []ports.Message {
				return []ports.Message{d.decoy(r), accept(r, map[string]any{"execution": map[string]any{"jobId": "j1"}})}
			}})
			got, err := e.c.Describe(context.Background(), "j1", job.DescribeRequest{})
			if err != nil {
				t.Fatal(err)
			}
			if got.Execution == nil || got.Execution.JobID != "j1" {
				t.Errorf("execution = %+v, want j1", got.Execution)
			}
			e.quiesce()
			s := e.c.Stats()
			if s.Waiting != 0 {
				t.Errorf("Waiting = %d, want 0", s.Waiting)
			}
			if d.name != "other thing" && s.DroppedReplies != 1 {
				t.Errorf("DroppedReplies = %d, want 1", s.DroppedReplies)
			}
		})
	}
}

func TestWrongTopicDoesNotComplete(t *testing.T) {
	e := newEnv(t, envOptions{script: func(r request) []ports.Message {
		return []ports.Message{{Topic: topicOf(jobtopic.UpdateAccepted, "j1"), Payload: mustJSON(map[string]any{"clientToken": r.token})}}
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := e.c.Describe(ctx, "j1", job.DescribeRequest{})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want a deadline error", err)
	}
	e.quiesce()
	if s := e.c.Stats(); s.Waiting != 0 || s.DroppedReplies != 1 {
		t.Errorf("Stats = %+v, want nothing waiting and 1 dropped", s)
	}
}

func TestDuplicateUnknownLateReplies(t *testing.T) {
	t.Run("duplicate", func(t *testing.T) {
		e := newEnv(t, envOptions{script: func(r request) []ports.Message {
			return []ports.Message{accept(r, nil)}
		}})
		if err := e.b.DuplicateNext(topicOf(jobtopic.GetPendingAccepted, ""), 1); err != nil {
			t.Fatal(err)
		}
		if _, err := e.c.GetPending(context.Background()); err != nil {
			t.Fatal(err)
		}
		e.quiesce()
		if s := e.c.Stats(); s.Waiting != 0 || s.DroppedReplies != 1 {
			t.Errorf("Stats = %+v, want nothing waiting and 1 dropped", s)
		}
	})
	t.Run("unknown", func(t *testing.T) {
		e := newEnv(t, envOptions{})
		e.publishAs(topicOf(jobtopic.UpdateAccepted, "j9"), []byte(`{"clientToken":"nobody"}`))
		e.publishAs(topicOf(jobtopic.StartNextRejected, ""), []byte(`{"clientToken":"nobody","code":"InternalError"}`))
		e.quiesce()
		if s := e.c.Stats(); s.Waiting != 0 || s.DroppedReplies != 2 {
			t.Errorf("Stats = %+v, want nothing waiting and 2 dropped", s)
		}
	})
	t.Run("late", func(t *testing.T) {
		e := newEnv(t, envOptions{}) // no replies
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		_, err := e.c.Update(ctx, "j1", job.UpdateRequest{Status: job.Succeeded})
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("got %v, want a deadline error", err)
		}
		r := e.nextRequest()
		e.publishAs(replyTo(r, true), mustJSON(map[string]any{"clientToken": r.token}))
		e.quiesce()
		if s := e.c.Stats(); s.Waiting != 0 || s.DroppedReplies != 1 {
			t.Errorf("Stats = %+v, want nothing waiting and 1 dropped", s)
		}
	})
}

func TestTimeout(t *testing.T) {
	tests := []struct {
		name    string
		timeout time.Duration // Options.Timeout
		ctx     time.Duration // the caller's deadline, 0 for none
	}{
		{"Options.Timeout applies without a deadline", 30 * time.Millisecond, 0},
		{"caller's deadline wins", time.Hour, 30 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, envOptions{opts: Options{Timeout: tt.timeout}})
			ctx := context.Background()
			if tt.ctx > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.ctx)
				defer cancel()
			}
			start := time.Now()
			_, err := e.c.GetPending(ctx)
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("got %v, want a deadline error", err)
			}
			if d := time.Since(start); d > waitFor {
				t.Errorf("returned after %v, want about 30ms", d)
			}
			if !strings.HasPrefix(err.Error(), "jobs: get pending: ") {
				t.Errorf("message = %q, want the prefix %q", err, "jobs: get pending: ")
			}
			if s := e.c.Stats(); s.Waiting != 0 {
				t.Errorf("Waiting = %d, want 0", s.Waiting)
			}
		})
	}
}

func TestCancel(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := e.c.Describe(ctx, "j1", job.DescribeRequest{})
		errc <- err
	}()
	e.nextRequest() // it is in flight
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	if s := e.c.Stats(); s.Waiting != 0 {
		t.Errorf("Waiting = %d, want 0", s.Waiting)
	}
	// Canceled before it starts: nothing is published.
	_, err := e.c.Describe(ctx, "j2", job.DescribeRequest{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	if n := len(e.requests()); n != 1 {
		t.Errorf("published %d requests, want 1", n)
	}
	if s := e.c.Stats(); s.Waiting != 0 {
		t.Errorf("Waiting = %d, want 0", s.Waiting)
	}
}

func TestClose(t *testing.T) {
	e := newEnv(t, envOptions{})
	const n = 5
	errc := make(chan error, n)
	for i := range n {
		go func() {
			_, err := e.c.Update(context.Background(), "j"+string(rune('0'+i)), job.UpdateRequest{Status: job.InProgress})
			errc <- err
		}()
	}
	for range n {
		e.nextRequest()
	}
	start := time.Now()
	if err := e.c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for range n {
		if err := <-errc; !errors.Is(err, ErrClosed) {
			t.Errorf("in flight at Close: got %v, want ErrClosed", err)
		}
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("requests failed %v after Close, want at once", d)
	}
	if s := e.c.Stats(); s.Waiting != 0 {
		t.Errorf("Waiting = %d, want 0", s.Waiting)
	}
	if _, err := e.c.GetPending(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("after Close: got %v, want ErrClosed", err)
	}
	if _, _, err := e.c.List(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("List after Close: got %v, want ErrClosed", err)
	}
	if err := e.c.Close(); err != nil {
		t.Errorf("second Close: got %v, want nil", err)
	}
	// Closed: a notification is no longer received.
	e.publishAs(topicOf(jobtopic.Notify, ""), []byte(`{"jobs":{}}`))
	e.quiesce()
	if e.c.Changed() {
		t.Error("Changed() after Close and a notification = true, want false")
	}
}

func TestCloseConcurrent(t *testing.T) {
	e := newEnv(t, envOptions{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			if err := e.c.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
	}
	wg.Wait()
}

func TestCloseTransportClosedFirst(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.dev.Close()
	if err := e.c.Close(); err != nil {
		t.Errorf("Close after the transport closed: got %v, want nil", err)
	}
	if _, err := New(context.Background(), e.dev, Options{Thing: thing}); !errors.Is(err, ports.ErrClosed) {
		t.Errorf("New on a closed transport: got %v, want ports.ErrClosed", err)
	}
}

func TestPublishFails(t *testing.T) {
	e := newEnv(t, envOptions{})
	if err := e.b.DropConnection(deviceID); err != nil {
		t.Fatal(err)
	}
	_, err := e.c.StartNext(context.Background(), job.StartNextRequest{})
	if !errors.Is(err, ports.ErrNotConnected) {
		t.Fatalf("got %v, want ports.ErrNotConnected", err)
	}
	if s := e.c.Stats(); s.Waiting != 0 {
		t.Errorf("Waiting = %d, want 0", s.Waiting)
	}
	if err := e.b.Reconnect(deviceID); err != nil {
		t.Fatal(err)
	}
}

func TestUndecodableReply(t *testing.T) {
	tests := []struct {
		name    string
		rejects bool
		body    func(token string) string
	}{
		{"wrong type", false, func(tok string) string { return `{"clientToken":"` + tok + `","execution":5}` }},
		{"bad version", false, func(tok string) string {
			return `{"clientToken":"` + tok + `","execution":{"jobId":"j1","versionNumber":"x"}}`
		}},
		{"truncated", false, func(tok string) string { return `{"clientToken":"` + tok + `","execution":{"jobId":` }},
		{"token after garbage value", false, func(tok string) string { return `{"timestamp":1,"clientToken":"` + tok + `",` }},
		{"array", false, func(tok string) string { return `{"clientToken":"` + tok + `"} trailing` }},
		{"rejected without code", true, func(tok string) string { return `{"clientToken":"` + tok + `"}` }},
		{"rejected truncated", true, func(tok string) string { return `{"clientToken":"` + tok + `","code":` }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, envOptions{script: func(r request) []ports.Message {
				return []ports.Message{{Topic: replyTo(r, !tt.rejects), Payload: []byte(tt.body(r.token))}}
			}})
			got, err := e.c.Describe(context.Background(), "j1", job.DescribeRequest{})
			if !errors.Is(err, ErrInvalidReply) {
				t.Fatalf("got %+v, %v; want an error matching ErrInvalidReply", got, err)
			}
			if got != nil {
				t.Errorf("response = %+v, want nil", got)
			}
		})
	}
}

func TestClientToken(t *testing.T) {
	t.Run("user token used", func(t *testing.T) {
		e := newEnv(t, envOptions{script: func(r request) []ports.Message { return []ports.Message{accept(r, nil)} }})
		got, err := e.c.Update(context.Background(), "j1", job.UpdateRequest{Status: job.Succeeded, ClientToken: "my-token"})
		if err != nil {
			t.Fatal(err)
		}
		if got.ClientToken != "my-token" {
			t.Errorf("reply token = %q, want my-token", got.ClientToken)
		}
		if tok := tokenOf(e.requests()[0].Payload); tok != "my-token" {
			t.Errorf("request token = %q, want my-token", tok)
		}
	})
	t.Run("token in flight", func(t *testing.T) {
		e := newEnv(t, envOptions{})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			e.c.Describe(ctx, "j1", job.DescribeRequest{ClientToken: "same"})
		}()
		e.nextRequest()
		_, err := e.c.Describe(context.Background(), "j1", job.DescribeRequest{ClientToken: "same"})
		if !errors.Is(err, ErrTokenInFlight) {
			t.Errorf("got %v, want ErrTokenInFlight", err)
		}
		cancel()
		<-done
		if n := len(e.requests()); n != 1 {
			t.Errorf("published %d requests, want 1", n)
		}
	})
}
