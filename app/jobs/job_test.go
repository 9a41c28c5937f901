package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/iotjobs/iotjobs/domain/job"
	"github.com/iotjobs/iotjobs/domain/jobtopic"
	"github.com/iotjobs/iotjobs/ports"
)

func TestList(t *testing.T) {
	e := newEnv(t, envOptions{script: func(r request) []ports.Message {
		return []ports.Message{accept(r, map[string]any{
			"inProgressJobs": []any{map[string]any{"jobId": "p1"}, map[string]any{"jobId": "p2"}},
			"queuedJobs":     []any{map[string]any{"jobId": "q1"}, map[string]any{"jobId": "q2"}, map[string]any{"jobId": "q3"}},
		})}
	}})
	in, q, err := e.c.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ids := func(js []*Job) string {
		var s []string
		for _, j := range js {
			s = append(s, j.ID())
		}
		return strings.Join(s, ",")
	}
	if got := ids(in); got != "p1,p2" {
		t.Errorf("in progress = %s, want p1,p2", got)
	}
	if got := ids(q); got != "q1,q2,q3" {
		t.Errorf("queued = %s, want q1,q2,q3", got)
	}
	in2, _, err := e.c.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if in2[0] != in[0] || e.c.Job("p1") != in[0] {
		t.Error("List and Job return different handles for one id, want the same")
	}

	e.setScript(func(r request) []ports.Message {
		return []ports.Message{accept(r, map[string]any{"inProgressJobs": []any{}})}
	})
	in, q, err = e.c.List(context.Background())
	if err != nil || in != nil || q != nil {
		t.Errorf("List of nothing = %v, %v, %v; want nil, nil, nil", in, q, err)
	}
	e.setScript(func(r request) []ports.Message { return []ports.Message{reject(r, job.CodeInternalError, nil)} })
	if _, _, err := e.c.List(context.Background()); !errors.Is(err, job.ErrInternalError) {
		t.Errorf("List: got %v, want InternalError", err)
	}
}

// execution is the state of one job execution kept by statefulService.
type execution struct {
	status  job.Status
	details job.StatusDetails
	version job.Version
}

// statefulService is a scripted responder with one execution "j1" that
// checks expectedVersion like the service.
type statefulService struct {
	mu      sync.Mutex
	exec    execution
	updates []job.UpdateRequest
}

func (s *statefulService) script(r request) []ports.Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	state := &job.ExecutionState{Status: s.exec.status, StatusDetails: s.exec.details, VersionNumber: s.exec.version}
	switch r.topic.Kind {
	case jobtopic.Describe:
		if s.exec.status.Terminal() {
			return []ports.Message{reject(r, job.CodeTerminalStateReached, nil)}
		}
		return []ports.Message{accept(r, map[string]any{"execution": map[string]any{
			"jobId": r.topic.JobID, "status": s.exec.status, "statusDetails": s.exec.details,
			"versionNumber": s.exec.version, "executionNumber": 1, "jobDocument": map[string]any{"url": "x"},
			"approximateSecondsBeforeTimedOut": 60,
		}})}
	case jobtopic.Update:
		var u job.UpdateRequest
		if err := json.Unmarshal(r.body, &u); err != nil {
			panic(err)
		}
		s.updates = append(s.updates, u)
		if s.exec.status.Terminal() {
			return []ports.Message{reject(r, job.CodeInvalidStateTransition, state)}
		}
		if u.ExpectedVersion != nil && *u.ExpectedVersion != s.exec.version {
			return []ports.Message{reject(r, job.CodeVersionMismatch, state)}
		}
		s.exec.status = u.Status
		if u.StatusDetails != nil {
			s.exec.details = u.StatusDetails
		}
		s.exec.version++
		body := map[string]any{}
		if u.IncludeJobExecutionState {
			body["executionState"] = job.ExecutionState{Status: s.exec.status, StatusDetails: s.exec.details, VersionNumber: s.exec.version}
		}
		return []ports.Message{accept(r, body)}
	}
	return nil
}

func (s *statefulService) set(e execution) {
	s.mu.Lock()
	s.exec = e
	s.mu.Unlock()
}

func (s *statefulService) update(i int) job.UpdateRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.updates[i]
}

func TestJobDescribe(t *testing.T) {
	svc := &statefulService{exec: execution{status: job.InProgress, details: job.StatusDetails{"step": "1"}, version: 4}}
	e := newEnv(t, envOptions{script: svc.script})
	j := e.c.Job("j1")
	if j.ID() != "j1" || j.Version() != 0 || j.Status() != "" || j.Document() != nil || j.StatusDetails() != nil {
		t.Errorf("new handle: %v %v %v %v %v, want only the id", j.ID(), j.Version(), j.Status(), j.Document(), j.StatusDetails())
	}
	if got := j.Execution().JobID; got != "j1" {
		t.Errorf("Execution().JobID = %q, want j1", got)
	}
	if err := j.Describe(context.Background()); err != nil {
		t.Fatal(err)
	}
	if j.Version() != 4 || j.Status() != job.InProgress || string(j.Document()) != `{"url":"x"}` || j.StatusDetails()["step"] != "1" {
		t.Errorf("after Describe: version %d status %s document %s details %v; want 4 IN_PROGRESS {\"url\":\"x\"} step=1",
			j.Version(), j.Status(), j.Document(), j.StatusDetails())
	}
	x := j.Execution()
	if x.JobID != "j1" || x.ExecutionNumber != 1 || x.ApproximateSecondsBeforeTimedOut == nil || *x.ApproximateSecondsBeforeTimedOut != 60 {
		t.Errorf("Execution() = %+v", x)
	}
	// Snapshots are copies.
	x.StatusDetails["step"] = "changed"
	x.JobDocument[0] = '['
	*x.ApproximateSecondsBeforeTimedOut = 1
	d := j.StatusDetails()
	d["step"] = "changed"
	doc := j.Document()
	doc[0] = '['
	if y := j.Execution(); y.StatusDetails["step"] != "1" || y.JobDocument[0] != '{' || *y.ApproximateSecondsBeforeTimedOut != 60 {
		t.Errorf("a snapshot's change reached the handle: %+v", y)
	}

	svc.set(execution{status: job.Canceled, version: 5})
	if err := j.Describe(context.Background()); !errors.Is(err, job.ErrTerminalStateReached) {
		t.Errorf("Describe of a canceled job: got %v, want TerminalStateReached", err)
	}
	if j.Version() != 4 {
		t.Errorf("Version() after a rejected Describe = %d, want 4 (unchanged)", j.Version())
	}
}

func TestJobDescribeNoExecution(t *testing.T) {
	e := newEnv(t, envOptions{script: func(r request) []ports.Message { return []ports.Message{accept(r, nil)} }})
	if err := e.c.Job("j1").Describe(context.Background()); !errors.Is(err, ErrInvalidReply) {
		t.Errorf("got %v, want ErrInvalidReply", err)
	}
}

func TestJobUpdate(t *testing.T) {
	svc := &statefulService{exec: execution{status: job.Queued, version: 1}}
	e := newEnv(t, envOptions{script: svc.script})
	ctx := context.Background()
	j := e.c.Job("j1")

	// Without a known version: no expectedVersion, and the reply tells it.
	if err := j.Update(ctx, job.InProgress, job.StatusDetails{"p": "10"}); err != nil {
		t.Fatal(err)
	}
	if u := svc.update(0); u.ExpectedVersion != nil || !u.IncludeJobExecutionState {
		t.Errorf("first update sent expectedVersion %v, includeJobExecutionState %v; want none, true", u.ExpectedVersion, u.IncludeJobExecutionState)
	}
	if j.Version() != 2 || j.Status() != job.InProgress || j.StatusDetails()["p"] != "10" {
		t.Errorf("after Update: version %d status %s details %v; want 2 IN_PROGRESS p=10", j.Version(), j.Status(), j.StatusDetails())
	}
	// Now the version is known and sent.
	if err := j.Update(ctx, job.InProgress, nil); err != nil {
		t.Fatal(err)
	}
	if u := svc.update(1); u.ExpectedVersion == nil || *u.ExpectedVersion != 2 {
		t.Errorf("second update sent expectedVersion %v, want 2", u.ExpectedVersion)
	}
	if j.Version() != 3 || j.StatusDetails()["p"] != "10" {
		t.Errorf("after Update: version %d details %v; want 3, p=10", j.Version(), j.StatusDetails())
	}

	// Someone else updated it: VersionMismatch records the state.
	svc.set(execution{status: job.InProgress, details: job.StatusDetails{"p": "50"}, version: 7})
	err := j.Update(ctx, job.Succeeded, nil)
	if !errors.Is(err, job.ErrVersionMismatch) {
		t.Fatalf("got %v, want VersionMismatch", err)
	}
	if want := "jobs: update j1: job: rejected: VersionMismatch: scripted"; err.Error() != want {
		t.Errorf("message = %q, want %q", err, want)
	}
	if j.Version() != 7 || j.StatusDetails()["p"] != "50" {
		t.Errorf("after VersionMismatch: version %d details %v; want 7, p=50", j.Version(), j.StatusDetails())
	}
	// The caller decides to go on: the retry sends the version learned.
	if err := j.Update(ctx, job.Succeeded, nil); err != nil {
		t.Fatal(err)
	}
	if j.Version() != 8 || j.Status() != job.Succeeded {
		t.Errorf("after retry: version %d status %s; want 8 SUCCEEDED", j.Version(), j.Status())
	}

	// Canceled meanwhile: InvalidStateTransition records the terminal status.
	svc.set(execution{status: job.Canceled, version: 9})
	if err := j.Update(ctx, job.InProgress, nil); !errors.Is(err, job.ErrInvalidStateTransition) {
		t.Fatalf("got %v, want InvalidStateTransition", err)
	}
	if j.Status() != job.Canceled || j.Version() != 9 {
		t.Errorf("after InvalidStateTransition: status %s version %d; want CANCELED 9", j.Status(), j.Version())
	}
}

func TestJobUpdateWithoutState(t *testing.T) {
	// A service that ignores includeJobExecutionState: the handle forgets
	// the version rather than keep a stale one.
	var mu sync.Mutex
	var sent []*job.Version
	e := newEnv(t, envOptions{script: func(r request) []ports.Message {
		if r.topic.Kind == jobtopic.Describe {
			return []ports.Message{accept(r, map[string]any{"execution": map[string]any{"jobId": "j1", "versionNumber": 3, "status": "QUEUED"}})}
		}
		var u job.UpdateRequest
		json.Unmarshal(r.body, &u)
		mu.Lock()
		sent = append(sent, u.ExpectedVersion)
		mu.Unlock()
		return []ports.Message{accept(r, nil)}
	}})
	ctx := context.Background()
	j := e.c.Job("j1")
	if err := j.Describe(ctx); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := j.Update(ctx, job.InProgress, job.StatusDetails{"a": "b"}); err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(sent) != 2 || sent[0] == nil || *sent[0] != 3 || sent[1] != nil {
		t.Errorf("expected versions sent = %v, want [3, none]", sent)
	}
	if j.Status() != job.InProgress || j.StatusDetails()["a"] != "b" {
		t.Errorf("status %s details %v, want IN_PROGRESS a=b", j.Status(), j.StatusDetails())
	}
}

func TestConcurrentRequests(t *testing.T) {
	e := newEnv(t, envOptions{script: func(r request) []ports.Message {
		return []ports.Message{accept(r, map[string]any{"execution": map[string]any{"jobId": r.topic.JobID}})}
	}})
	const n = 200
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			id := fmt.Sprintf("job-%d", i%50) // several requests per job id at once
			r, err := e.c.Describe(context.Background(), id, job.DescribeRequest{})
			if err != nil {
				t.Errorf("Describe %s: %v", id, err)
				return
			}
			if r.Execution == nil || r.Execution.JobID != id {
				t.Errorf("Describe %s: got %+v", id, r.Execution)
			}
		})
	}
	wg.Wait()
	e.quiesce()
	if s := e.c.Stats(); s.Waiting != 0 || s.DroppedReplies != 0 {
		t.Errorf("Stats = %+v, want nothing waiting or dropped", s)
	}
}

func TestConcurrentJobHandles(t *testing.T) {
	svc := &statefulService{exec: execution{status: job.InProgress, version: 1}}
	e := newEnv(t, envOptions{script: svc.script})
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			j := e.c.Job("j1")
			if err := j.Describe(context.Background()); err != nil {
				t.Error(err)
			}
			// Concurrent updates may race on the version: a mismatch is
			// the expected outcome for some, never anything else.
			if err := j.Update(context.Background(), job.InProgress, nil); err != nil && !errors.Is(err, job.ErrVersionMismatch) {
				t.Error(err)
			}
			_ = j.Execution()
		})
	}
	wg.Wait()
}
