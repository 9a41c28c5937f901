package jobstest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iotjobs/iotjobs/adapters/membroker"
	"github.com/iotjobs/iotjobs/domain/job"
	"github.com/iotjobs/iotjobs/domain/jobtopic"
	"github.com/iotjobs/iotjobs/ports"
)

func TestCreateJobValidation(t *testing.T) {
	e := newEnv(t)
	e.create("exists", "dev-1")
	doc := json.RawMessage(`{"a":1}`)
	tests := []struct {
		name string
		spec JobSpec
		want error
	}{
		{"bad job id", JobSpec{JobID: "a b", Document: doc, Targets: []string{"t"}}, job.ErrInvalidInput},
		{"$next", JobSpec{JobID: "$next", Document: doc, Targets: []string{"t"}}, job.ErrInvalidInput},
		{"long job id", JobSpec{JobID: strings.Repeat("j", 65), Document: doc, Targets: []string{"t"}}, job.ErrInvalidInput},
		{"no document", JobSpec{JobID: "j", Targets: []string{"t"}}, job.ErrInvalidInput},
		{"document not an object", JobSpec{JobID: "j", Document: json.RawMessage(`[1]`), Targets: []string{"t"}}, job.ErrInvalidInput},
		{"document not JSON", JobSpec{JobID: "j", Document: json.RawMessage(`{"a":`), Targets: []string{"t"}}, job.ErrInvalidInput},
		{"document too large", JobSpec{JobID: "j", Document: json.RawMessage(`{"a":"` + strings.Repeat("x", job.MaxDocumentSize) + `"}`), Targets: []string{"t"}}, job.ErrInvalidInput},
		{"no targets", JobSpec{JobID: "j", Document: doc}, job.ErrInvalidInput},
		{"bad thing", JobSpec{JobID: "j", Document: doc, Targets: []string{"ok", "not/ok"}}, job.ErrInvalidInput},
		{"negative timeout", JobSpec{JobID: "j", Document: doc, Targets: []string{"t"}, InProgressTimeout: -time.Second}, job.ErrInvalidInput},
		{"timeout too long", JobSpec{JobID: "j", Document: doc, Targets: []string{"t"}, InProgressTimeout: 10081 * time.Minute}, job.ErrInvalidInput},
		{"job exists", JobSpec{JobID: "exists", Document: doc, Targets: []string{"t"}}, ErrJobExists},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := e.svc.CreateJob(ctx(t), tt.spec); !errors.Is(err, tt.want) {
				t.Errorf("CreateJob = %v, want %v", err, tt.want)
			}
		})
	}
	if got := len(e.svc.Executions()); got != 1 {
		t.Errorf("%d executions, want 1", got)
	}

	t.Run("largest document, duplicate target", func(t *testing.T) {
		big := json.RawMessage(`{"a":"` + strings.Repeat("x", job.MaxDocumentSize-8) + `"}`)
		e.createSpec(JobSpec{JobID: "big", Document: big, Targets: []string{"t1", "t2", "t1"}})
		xs := e.svc.Executions()
		if len(xs) != 3 || xs[1].ThingName != "t1" || xs[2].ThingName != "t2" || len(xs[1].JobDocument) != job.MaxDocumentSize {
			t.Errorf("executions = %d, want exists, big on t1, big on t2", len(xs))
		}
	})
}

func TestExecutionCopies(t *testing.T) {
	e := newEnv(t)
	d := e.device("dev-1")
	e.create("j", "dev-1")
	d.update("j", job.InProgress, map[string]any{"statusDetails": map[string]string{"k": "v"}})
	x, ok := e.svc.Execution("dev-1", "j")
	if !ok {
		t.Fatal("no execution")
	}
	x.StatusDetails["k"] = "changed"
	x.JobDocument[0] = 'X'
	xs := e.svc.Executions()
	xs[0].StatusDetails["k"] = "changed"
	y, _ := e.svc.Execution("dev-1", "j")
	if y.StatusDetails["k"] != "v" || string(y.JobDocument) != `{"op":"j"}` {
		t.Errorf("execution changed through a copy: %+v", y)
	}
	if _, ok := e.svc.Execution("dev-1", "nope"); ok {
		t.Error("Execution of an unknown job reported ok")
	}
	if _, ok := e.svc.Execution("nobody", "j"); ok {
		t.Error("Execution of an unknown thing reported ok")
	}
}

func TestCancelJob(t *testing.T) {
	e := newEnv(t)
	d1, d2, d3 := e.device("dev-1"), e.device("dev-2"), e.device("dev-3")
	e.create("j", "dev-1", "dev-2", "dev-3")
	d2.startNext(nil)
	d3.update("j", job.Succeeded, nil)
	for _, d := range []*device{d1, d2, d3} {
		d.notes()
	}
	status := func(thing string) job.Status {
		x, _ := e.svc.Execution(thing, "j")
		return x.Status
	}

	if err := e.svc.CancelJob(ctx(t), "j", false); err != nil {
		t.Fatal(err)
	}
	if got := []job.Status{status("dev-1"), status("dev-2"), status("dev-3")}; got[0] != job.Canceled || got[1] != job.InProgress || got[2] != job.Succeeded {
		t.Errorf("after CancelJob: %v, want CANCELED IN_PROGRESS SUCCEEDED", got)
	}
	d1.expectNotes("notify", "next -")
	d2.expectNotes()
	d3.expectNotes()
	if rej := d1.call(jobtopic.Update, "j", map[string]any{"status": job.InProgress}).rejected(t); rej.Code != job.CodeInvalidStateTransition || rej.ExecutionState.Status != job.Canceled {
		t.Errorf("update of canceled: %+v", rej)
	}
	if rej := d1.call(jobtopic.Describe, "j", nil).rejected(t); rej.Code != job.CodeTerminalStateReached {
		t.Errorf("describe of canceled: %+v", rej)
	}

	// The device in progress may finish...
	d2.update("j", job.InProgress, nil)
	// ...unless forced.
	if err := e.svc.CancelJob(ctx(t), "j", true); err != nil {
		t.Fatal(err)
	}
	if got := status("dev-2"); got != job.Canceled {
		t.Errorf("after forced CancelJob: %s, want CANCELED", got)
	}
	if x, _ := e.svc.Execution("dev-2", "j"); x.VersionNumber != 4 {
		t.Errorf("version = %d, want 4 (queued, started, progress, canceled)", x.VersionNumber)
	}
	d2.expectNotes("notify", "next -")
	if rej := d2.call(jobtopic.Update, "j", map[string]any{"status": job.Succeeded}).rejected(t); rej.Code != job.CodeInvalidStateTransition {
		t.Errorf("update of canceled: %+v", rej)
	}
	if err := e.svc.CancelJob(ctx(t), "nope", true); !errors.Is(err, ErrNotFound) {
		t.Errorf("CancelJob(unknown) = %v, want ErrNotFound", err)
	}
}

func TestExecutionControls(t *testing.T) {
	type call func(s *Service, thing, jobID string) error
	cancel := func(force bool) call {
		return func(s *Service, thing, jobID string) error {
			return s.CancelExecution(context.Background(), thing, jobID, force)
		}
	}
	remove := func(s *Service, thing, jobID string) error {
		return s.RemoveExecution(context.Background(), thing, jobID)
	}
	del := func(s *Service, thing, jobID string) error {
		return s.DeleteExecution(context.Background(), thing, jobID)
	}
	tests := []struct {
		name    string
		from    job.Status // QUEUED, IN_PROGRESS or a device-set terminal status
		call    call
		want    job.Status // "" = deleted
		wantErr error
	}{
		{"cancel queued", job.Queued, cancel(false), job.Canceled, nil},
		{"cancel in progress", job.InProgress, cancel(false), job.InProgress, ErrInvalidState},
		{"cancel in progress with force", job.InProgress, cancel(true), job.Canceled, nil},
		{"cancel terminal", job.Succeeded, cancel(true), job.Succeeded, ErrInvalidState},
		{"remove queued", job.Queued, remove, job.Removed, nil},
		{"remove in progress", job.InProgress, remove, job.Removed, nil},
		{"remove terminal", job.Failed, remove, job.Failed, ErrInvalidState},
		{"delete queued", job.Queued, del, "", nil},
		{"delete in progress", job.InProgress, del, "", nil},
		{"delete terminal", job.Rejected, del, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			d := e.device("dev-1")
			e.create("j", "dev-1")
			if tt.from != job.Queued {
				d.update("j", tt.from, nil)
			}
			err := tt.call(e.svc, "dev-1", "j")
			if !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			x, ok := e.svc.Execution("dev-1", "j")
			if tt.want == "" {
				if ok {
					t.Fatalf("execution %+v still there", x)
				}
				for _, r := range []reply{
					d.call(jobtopic.Describe, "j", nil),
					d.call(jobtopic.Update, "j", map[string]any{"status": job.Succeeded}),
				} {
					if rej := r.rejected(t); rej.Code != job.CodeResourceNotFound {
						t.Errorf("%s: %s, want ResourceNotFound", r.Topic, rej.Code)
					}
				}
				if err := tt.call(e.svc, "dev-1", "j"); !errors.Is(err, ErrNotFound) {
					t.Errorf("second delete = %v, want ErrNotFound", err)
				}
				return
			}
			if x.Status != tt.want {
				t.Errorf("status = %s, want %s", x.Status, tt.want)
			}
			if err := tt.call(e.svc, "dev-1", "nope"); !errors.Is(err, ErrNotFound) {
				t.Errorf("on unknown job = %v, want ErrNotFound", err)
			}
			if err := tt.call(e.svc, "dev-2", "j"); !errors.Is(err, ErrNotFound) {
				t.Errorf("on unknown thing = %v, want ErrNotFound", err)
			}
		})
	}
}

func TestLifecycle(t *testing.T) {
	b := membroker.New(membroker.Options{})
	defer b.Close()
	svc := New(Options{Clock: NewFakeClock(t0), Logf: t.Logf})

	// Before Start: state changes, nothing is published.
	if err := svc.CreateJob(ctx(t), JobSpec{JobID: "early", Document: []byte(`{}`), Targets: []string{"dev-1"}}); err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(ctx(t), nil); err == nil {
		t.Error("Start(nil) succeeded")
	}
	closed, _ := b.Connect("closed")
	closed.Close()
	if err := svc.Start(ctx(t), closed); !errors.Is(err, ports.ErrClosed) {
		t.Errorf("Start on a closed client = %v, want ErrClosed", err)
	}
	c, _ := b.Connect("svc")
	defer c.Close()
	if err := svc.Start(ctx(t), c); err != nil {
		t.Fatalf("Start after a failed Start: %v", err)
	}
	if err := svc.Start(ctx(t), c); !errors.Is(err, ErrStarted) {
		t.Errorf("second Start = %v, want ErrStarted", err)
	}
	e := &env{t: t, b: b, svc: svc}
	d := e.device("dev-1")
	if got := ids(d.getPending().QueuedJobs); len(got) != 1 || got[0] != "early" {
		t.Errorf("pending = %v, want [early]", got)
	}
	d.expectNotes()
	// The subscription is lost and restored: the service serves on.
	if err := b.Disconnect("svc"); err != nil {
		t.Fatal(err)
	}
	e.quiesce()
	d.getPending()

	if err := svc.Close(); err != nil {
		t.Fatal(err)
	}
	if err := svc.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
	if err := svc.Start(ctx(t), c); !errors.Is(err, ErrClosed) {
		t.Errorf("Start after Close = %v, want ErrClosed", err)
	}
	for name, err := range map[string]error{
		"CreateJob":       svc.CreateJob(ctx(t), JobSpec{JobID: "late", Document: []byte(`{}`), Targets: []string{"dev-1"}}),
		"CancelJob":       svc.CancelJob(ctx(t), "early", true),
		"CancelExecution": svc.CancelExecution(ctx(t), "dev-1", "early", true),
		"RemoveExecution": svc.RemoveExecution(ctx(t), "dev-1", "early"),
		"DeleteExecution": svc.DeleteExecution(ctx(t), "dev-1", "early"),
		"CheckTimeouts":   svc.CheckTimeouts(ctx(t)),
	} {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close = %v, want ErrClosed", name, err)
		}
	}
	// Requests go unanswered; the state stays readable.
	if err := d.c.Publish(ctx(t), publishMsg(d.topic(jobtopic.GetPending, ""), `{}`)); err != nil {
		t.Fatal(err)
	}
	e.quiesce()
	if got := d.in.takeAll(); len(got) != 0 {
		t.Errorf("closed service answered: %v", got)
	}
	if x, ok := svc.Execution("dev-1", "early"); !ok || x.Status != job.Queued {
		t.Errorf("Execution after Close = %+v, %t", x, ok)
	}
	if len(svc.Requests()) != 2 {
		t.Errorf("Requests() = %v, want the two before Close", svc.Requests())
	}
	// Closing a service never started is fine.
	if err := New(Options{}).Close(); err != nil {
		t.Errorf("Close of an unstarted service = %v", err)
	}
}

// TestCloseDuringStart checks the race of Close with a Start in progress.
func TestCloseDuringStart(t *testing.T) {
	b := membroker.New(membroker.Options{})
	defer b.Close()
	c, _ := b.Connect("svc")
	defer c.Close()
	svc := New(Options{Clock: NewFakeClock(t0)})
	ps := &hookPubSub{PubSub: c, beforeSubscribe: func() {
		if err := svc.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	}}
	if err := svc.Start(ctx(t), ps); !errors.Is(err, ErrClosed) {
		t.Errorf("Start = %v, want ErrClosed", err)
	}
}

// hookPubSub calls a function before subscribing, and can fail publishes.
type hookPubSub struct {
	ports.PubSub
	beforeSubscribe func()
}

func (h *hookPubSub) Subscribe(ctx context.Context, f ports.Filter, hd ports.Handler) (ports.Subscription, error) {
	if h.beforeSubscribe != nil {
		h.beforeSubscribe()
	}
	return h.PubSub.Subscribe(ctx, f, hd)
}

func TestPublishFailure(t *testing.T) {
	// Topics over 40 bytes are refused: a long thing name's notify topic.
	e := newEnvOpts(t, membroker.Options{Limits: ports.Limits{MaxTopicLength: 40}})
	thing := strings.Repeat("t", 20)
	err := e.svc.CreateJob(ctx(t), JobSpec{JobID: "j", Document: []byte(`{}`), Targets: []string{thing}})
	if !errors.Is(err, ports.ErrTooLarge) {
		t.Errorf("CreateJob = %v, want an error wrapping ErrTooLarge", err)
	}
	if _, ok := e.svc.Execution(thing, "j"); !ok {
		t.Error("the job was not created")
	}
}

// TestControlContextEnds checks that a control call whose context ends
// returns, and its notifications are published all the same.
func TestControlContextEnds(t *testing.T) {
	e := newEnv(t)
	d := e.device("dev-1")
	c, cancel := context.WithCancel(context.Background())
	cancel()
	if err := e.svc.CreateJob(c, JobSpec{JobID: "j", Document: []byte(`{}`), Targets: []string{"dev-1"}}); err != nil && !errors.Is(err, context.Canceled) {
		t.Errorf("CreateJob = %v, want nil or context.Canceled", err)
	}
	d.in.waitFor(t, "notify-next", func(m ports.Message) bool { return strings.HasSuffix(m.Topic, "/notify-next") })
	d.in.waitFor(t, "notify", func(m ports.Message) bool { return strings.HasSuffix(m.Topic, "/notify") })
}

// TestControlWaitsForBusyPublisher checks a control call that finds another
// goroutine publishing: it waits for its own notifications.
func TestControlWaitsForBusyPublisher(t *testing.T) {
	b := membroker.New(membroker.Options{})
	defer b.Close()
	c, _ := b.Connect("svc")
	defer c.Close()
	release := make(chan struct{})
	entered := make(chan struct{})
	var once sync.Once
	ps := &slowPubSub{PubSub: c, hook: func(m ports.Message) {
		if strings.HasSuffix(m.Topic, "/notify") && strings.Contains(m.Topic, "slow") {
			once.Do(func() { close(entered); <-release })
		}
	}}
	svc := New(Options{Clock: NewFakeClock(t0)})
	if err := svc.Start(ctx(t), ps); err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	e := &env{t: t, b: b, svc: svc}
	d := e.device("fast")

	first := make(chan error, 1)
	go func() {
		first <- svc.CreateJob(context.Background(), JobSpec{JobID: "a", Document: []byte(`{}`), Targets: []string{"slow"}})
	}()
	<-entered
	second := make(chan error, 1)
	go func() {
		second <- svc.CreateJob(context.Background(), JobSpec{JobID: "b", Document: []byte(`{}`), Targets: []string{"fast"}})
	}()
	waitOutbox(t, svc, 1)
	// A waiting control call whose context ends returns.
	short, stop := context.WithTimeout(context.Background(), time.Millisecond)
	defer stop()
	if err := svc.CreateJob(short, JobSpec{JobID: "c", Document: []byte(`{}`), Targets: []string{"fast"}}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("CreateJob with a short deadline = %v, want DeadlineExceeded", err)
	}
	close(release)
	for _, ch := range []chan error{first, second} {
		if err := <-ch; err != nil {
			t.Errorf("CreateJob = %v", err)
		}
	}
	d.expectNotes("notify QUEUED:[b]", "next b", "notify QUEUED:[b c]")
}

// slowPubSub calls hook before each publish.
type slowPubSub struct {
	ports.PubSub
	hook func(ports.Message)
}

func (s *slowPubSub) Publish(ctx context.Context, m ports.Message) error {
	s.hook(m)
	return s.PubSub.Publish(ctx, m)
}

// TestCloseWhilePublishing checks that Close ends a publication in progress
// and fails the control calls waiting for theirs.
func TestCloseWhilePublishing(t *testing.T) {
	b := membroker.New(membroker.Options{})
	defer b.Close()
	c, _ := b.Connect("svc")
	defer c.Close()
	entered := make(chan struct{})
	var once sync.Once
	ps := &blockingPubSub{PubSub: c, entered: func() { once.Do(func() { close(entered) }) }}
	svc := New(Options{Clock: NewFakeClock(t0)})
	if err := svc.Start(ctx(t), ps); err != nil {
		t.Fatal(err)
	}
	first := make(chan error, 1)
	go func() {
		first <- svc.CreateJob(context.Background(), JobSpec{JobID: "a", Document: []byte(`{}`), Targets: []string{"t"}})
	}()
	<-entered
	second := make(chan error, 1)
	go func() {
		second <- svc.CreateJob(context.Background(), JobSpec{JobID: "b", Document: []byte(`{}`), Targets: []string{"t"}})
	}()
	waitOutbox(t, svc, 1)
	if err := svc.Close(); err != nil {
		t.Fatal(err)
	}
	for i, ch := range []chan error{first, second} {
		if err := <-ch; !errors.Is(err, ErrClosed) {
			t.Errorf("CreateJob %d = %v, want ErrClosed", i, err)
		}
	}
}

// blockingPubSub blocks every publish until its context ends.
type blockingPubSub struct {
	ports.PubSub
	entered func()
}

func (b *blockingPubSub) Publish(ctx context.Context, m ports.Message) error {
	b.entered()
	<-ctx.Done()
	return ctx.Err()
}

func TestFakeClock(t *testing.T) {
	c := NewFakeClock(t0)
	if !c.Now().Equal(t0) {
		t.Errorf("Now = %v, want %v", c.Now(), t0)
	}
	c.Advance(time.Hour)
	if want := t0.Add(time.Hour); !c.Now().Equal(want) {
		t.Errorf("after Advance: %v, want %v", c.Now(), want)
	}
	c.Set(t0)
	if !c.Now().Equal(t0) {
		t.Errorf("after Set: %v, want %v", c.Now(), t0)
	}
	if d := time.Since(realClock{}.Now()); d < 0 || d > time.Minute {
		t.Errorf("real clock is %v off", d)
	}
}

// TestConcurrentUse drives many things and the control plane at once, for
// the race detector.
func TestConcurrentUse(t *testing.T) {
	e := newEnv(t)
	const things, jobs = 8, 5
	devs := make([]*device, things)
	for i := range devs {
		devs[i] = e.device(fmt.Sprintf("dev-%d", i))
	}
	var wg sync.WaitGroup
	for j := range jobs {
		wg.Go(func() {
			var targets []string
			for i := range things {
				targets = append(targets, fmt.Sprintf("dev-%d", i))
			}
			if err := e.svc.CreateJob(context.Background(), JobSpec{JobID: fmt.Sprintf("job-%d", j), Document: []byte(`{}`), Targets: targets}); err != nil {
				t.Errorf("CreateJob: %v", err)
			}
		})
	}
	wg.Wait()
	for _, d := range devs {
		wg.Go(func() {
			for j := range jobs {
				for _, status := range []job.Status{job.InProgress, job.Succeeded} {
					body := fmt.Sprintf(`{"status":%q,"clientToken":"%s-%d-%s"}`, status, d.thing, j, status)
					if err := d.c.Publish(context.Background(), publishMsg(d.topic(jobtopic.Update, fmt.Sprintf("job-%d", j)), body)); err != nil {
						t.Errorf("publish: %v", err)
					}
				}
			}
		})
	}
	wg.Go(func() {
		for range 20 {
			e.svc.Executions()
			e.svc.Requests()
			if err := e.svc.CheckTimeouts(context.Background()); err != nil {
				t.Errorf("CheckTimeouts: %v", err)
			}
		}
	})
	wg.Wait()
	e.quiesce()
	for _, x := range e.svc.Executions() {
		if x.Status != job.Succeeded || x.VersionNumber != 3 {
			t.Errorf("%s/%s: %s v%d, want SUCCEEDED v3", x.ThingName, x.JobID, x.Status, x.VersionNumber)
		}
	}
	if got, want := len(e.svc.Requests()), things*jobs*2; got != want {
		t.Errorf("%d requests, want %d", got, want)
	}
}

// waitOutbox polls, with a deadline, until n batches wait to be published.
func waitOutbox(t *testing.T, svc *Service, n int) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		svc.mu.Lock()
		got := len(svc.outbox)
		svc.mu.Unlock()
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d batches queued, want %d", got, n)
		}
		time.Sleep(time.Millisecond) // polling with a deadline
	}
}
