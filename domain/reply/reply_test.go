package reply_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/iotjobs/iotjobs/domain/job"
	"github.com/iotjobs/iotjobs/domain/reply"
)

func TestNewToken(t *testing.T) {
	const n = 10000
	seen := make(map[string]bool, n)
	for i := 0; i < n; i++ {
		tok := reply.NewToken()
		if len(tok) != reply.TokenLength {
			t.Fatalf("len(%q) = %d, want %d", tok, len(tok), reply.TokenLength)
		}
		if len(tok) > job.MaxClientTokenLength {
			t.Fatalf("len(%q) = %d, want at most %d bytes", tok, len(tok), job.MaxClientTokenLength)
		}
		for _, c := range []byte(tok) {
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				t.Fatalf("token %q has %q, want only [A-Za-z0-9_-]", tok, c)
			}
		}
		if err := job.ValidateClientToken(tok); err != nil {
			t.Fatalf("ValidateClientToken(%q) = %v, want nil", tok, err)
		}
		if seen[tok] {
			t.Fatalf("token %q repeated after %d tokens", tok, i)
		}
		seen[tok] = true
	}
	if reply.TokenLength != 22 {
		t.Errorf("TokenLength = %d, want 22", reply.TokenLength)
	}
}

type key struct {
	token string
	kind  int
}

func TestDeliverBeforeWait(t *testing.T) {
	var tab reply.Table[key, string]
	k := key{"t1", 1}
	w, ok := tab.Register(k)
	if !ok || w == nil {
		t.Fatalf("Register = %v, %v; want a wait, true", w, ok)
	}
	if got := w.Key(); got != k {
		t.Errorf("Key() = %v, want %v", got, k)
	}
	if got := tab.Len(); got != 1 {
		t.Errorf("Len() = %d, want 1", got)
	}
	if !tab.Deliver(k, "reply") {
		t.Fatal("Deliver = false, want true")
	}
	if got := tab.Len(); got != 0 {
		t.Errorf("Len() after Deliver = %d, want 0", got)
	}
	v, err := w.Wait(context.Background())
	if err != nil || v != "reply" {
		t.Fatalf("Wait = %q, %v; want reply, nil", v, err)
	}
	if got := tab.Dropped(); got != 0 {
		t.Errorf("Dropped() = %d, want 0", got)
	}
	// A second delivery for the same key has nobody waiting.
	if tab.Deliver(k, "duplicate") {
		t.Error("duplicate Deliver = true, want false")
	}
	if got := tab.Dropped(); got != 1 {
		t.Errorf("Dropped() = %d, want 1", got)
	}
}

func TestWaitThenDeliver(t *testing.T) {
	var tab reply.Table[string, int]
	w, _ := tab.Register("t1")
	delivered := make(chan bool)
	go func() { delivered <- tab.Deliver("t1", 42) }()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	v, err := w.Wait(ctx)
	if err != nil || v != 42 {
		t.Fatalf("Wait = %d, %v; want 42, nil", v, err)
	}
	if !<-delivered {
		t.Error("Deliver = false, want true")
	}
	if got := tab.Len(); got != 0 {
		t.Errorf("Len() = %d, want 0", got)
	}
}

// TestWaitBlocks checks that Wait does block until the reply: the waiting
// goroutine reports it has started, the test sees no result yet, then
// delivers.
func TestWaitBlocks(t *testing.T) {
	var tab reply.Table[string, int]
	w, _ := tab.Register("t1")
	result := make(chan int)
	go func() {
		v, _ := w.Wait(context.Background())
		result <- v
	}()
	select {
	case v := <-result:
		t.Fatalf("Wait returned %d before any reply", v)
	default:
	}
	tab.Deliver("t1", 7)
	if v := <-result; v != 7 {
		t.Errorf("Wait = %d, want 7", v)
	}
}

func TestRegisterDuplicate(t *testing.T) {
	var tab reply.Table[string, int]
	w1, ok := tab.Register("t1")
	if !ok {
		t.Fatal("first Register = false, want true")
	}
	w2, ok := tab.Register("t1")
	if ok || w2 != nil {
		t.Fatalf("second Register = %v, %v; want nil, false", w2, ok)
	}
	if got := tab.Len(); got != 1 {
		t.Errorf("Len() = %d, want 1", got)
	}
	// The first entry still gets its reply.
	tab.Deliver("t1", 1)
	if v, err := w1.Wait(context.Background()); v != 1 || err != nil {
		t.Errorf("Wait = %d, %v; want 1, nil", v, err)
	}
	// Once answered the key may be used again.
	if _, ok := tab.Register("t1"); !ok {
		t.Error("Register after the reply = false, want true")
	}
}

func TestDeliverUnknown(t *testing.T) {
	var tab reply.Table[string, int] // the zero value is ready
	if tab.Deliver("nobody", 1) {
		t.Error("Deliver to an unknown key = true, want false")
	}
	if tab.Deliver("nobody", 2) {
		t.Error("Deliver to an unknown key = true, want false")
	}
	if got := tab.Dropped(); got != 2 {
		t.Errorf("Dropped() = %d, want 2", got)
	}
	if got := tab.Len(); got != 0 {
		t.Errorf("Len() = %d, want 0", got)
	}
}

func TestLateReplyAfterTimeout(t *testing.T) {
	var tab reply.Table[string, int]
	w, _ := tab.Register("t1")
	ctx, cancel := context.WithDeadline(context.Background(), time.Unix(0, 0)) // already past
	defer cancel()
	v, err := w.Wait(ctx)
	if !errors.Is(err, context.DeadlineExceeded) || v != 0 {
		t.Fatalf("Wait = %d, %v; want 0, DeadlineExceeded", v, err)
	}
	if got := tab.Len(); got != 0 {
		t.Errorf("Len() after timeout = %d, want 0", got)
	}
	if tab.Deliver("t1", 5) {
		t.Error("late Deliver = true, want false")
	}
	if got := tab.Dropped(); got != 1 {
		t.Errorf("Dropped() = %d, want 1", got)
	}
}

func TestContextCanceled(t *testing.T) {
	var tab reply.Table[string, int]
	w, _ := tab.Register("t1")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := w.Wait(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait error = %v, want context.Canceled", err)
	}
	if got := tab.Len(); got != 0 {
		t.Errorf("Len() = %d, want 0", got)
	}
}

// A reply already delivered wins over a context that has ended too, on
// either branch of Wait's select.
func TestDeliveredReplyWinsOverEndedContext(t *testing.T) {
	var tab reply.Table[int, int]
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for i := range 200 {
		w, _ := tab.Register(i)
		tab.Deliver(i, i)
		v, err := w.Wait(ctx)
		if err != nil || v != i {
			t.Fatalf("Wait = %d, %v; want %d, nil", v, err, i)
		}
	}
	if got := tab.Len(); got != 0 {
		t.Errorf("Len() = %d, want 0", got)
	}
}

func TestCancel(t *testing.T) {
	var tab reply.Table[string, int]
	w, _ := tab.Register("t1")
	w.Cancel()
	if got := tab.Len(); got != 0 {
		t.Errorf("Len() after Cancel = %d, want 0", got)
	}
	w.Cancel() // harmless
	if tab.Deliver("t1", 1) {
		t.Error("Deliver after Cancel = true, want false")
	}
	// Cancel after the reply is harmless too.
	w2, _ := tab.Register("t2")
	tab.Deliver("t2", 2)
	w2.Cancel()
	if v, err := w2.Wait(context.Background()); v != 2 || err != nil {
		t.Errorf("Wait after Deliver and Cancel = %d, %v; want 2, nil", v, err)
	}
}

// A stale entry's Cancel must not remove a newer entry with the same key.
func TestStaleCancelKeepsNewEntry(t *testing.T) {
	var tab reply.Table[string, int]
	old, _ := tab.Register("t1")
	old.Cancel()
	w, ok := tab.Register("t1")
	if !ok {
		t.Fatal("Register after Cancel = false, want true")
	}
	old.Cancel()
	if got := tab.Len(); got != 1 {
		t.Fatalf("Len() after stale Cancel = %d, want 1", got)
	}
	if !tab.Deliver("t1", 3) {
		t.Fatal("Deliver = false, want true")
	}
	if v, _ := w.Wait(context.Background()); v != 3 {
		t.Errorf("Wait = %d, want 3", v)
	}
}

// TestDeliverRacingContextEnd is the regression test for a reply lost when
// Deliver and the end of Wait's context race: Deliver took the entry and
// reported true, but sent on the channel only after Wait had canceled and
// given up, so nobody ever read the reply and it was not counted as dropped
// either. Invariant: Deliver reports true exactly when Wait returns the
// reply.
func TestDeliverRacingContextEnd(t *testing.T) {
	n := 20000
	if testing.Short() {
		n = 2000
	}
	var tab reply.Table[int, int]
	for i := range n {
		w, _ := tab.Register(i)
		ctx, cancel := context.WithCancel(context.Background())
		delivered := make(chan bool, 1)
		go func() { delivered <- tab.Deliver(i, i) }()
		go cancel()
		v, err := w.Wait(ctx)
		ok := <-delivered
		switch {
		case ok && err != nil:
			t.Fatalf("iteration %d: Deliver = true but Wait = %v: reply lost", i, err)
		case !ok && err == nil:
			t.Fatalf("iteration %d: Deliver = false but Wait = %d, nil", i, v)
		case ok && v != i:
			t.Fatalf("iteration %d: Wait = %d, want %d", i, v, i)
		}
		cancel()
	}
	if got := tab.Len(); got != 0 {
		t.Errorf("Len() = %d, want 0", got)
	}
}

// Many goroutines register, deliver (from other goroutines), wait and
// cancel at once; run with -race. Nothing leaks and every reply reaches
// its own waiter.
func TestConcurrent(t *testing.T) {
	const workers, perWorker = 32, 200
	var tab reply.Table[string, string]
	ctxCanceled, cancel := context.WithCancel(context.Background())
	cancel()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var lateOK int
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for i := range perWorker {
				tok := fmt.Sprintf("%d-%d-%s", w, i, reply.NewToken())
				wait, ok := tab.Register(tok)
				if !ok {
					errs <- fmt.Errorf("Register(%s) = false", tok)
					return
				}
				switch i % 3 {
				case 0: // answered from another goroutine
					go tab.Deliver(tok, tok)
					v, err := wait.Wait(context.Background())
					if err != nil || v != tok {
						errs <- fmt.Errorf("Wait(%s) = %q, %v", tok, v, err)
						return
					}
				case 1: // abandoned: the reply comes too late
					if _, err := wait.Wait(ctxCanceled); err == nil {
						errs <- fmt.Errorf("Wait(%s) with a canceled context = nil error", tok)
						return
					}
					if tab.Deliver(tok, tok) {
						mu.Lock()
						lateOK++
						mu.Unlock()
					}
				case 2: // never sent
					wait.Cancel()
					wait.Cancel()
				}
				_ = tab.Len()
				_ = tab.Dropped()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// The deliveries of case 0 run in their own goroutines; they have all
	// happened once every Wait returned. Nothing is left waiting.
	if got := tab.Len(); got != 0 {
		t.Errorf("Len() = %d, want 0", got)
	}
	if lateOK != 0 {
		t.Errorf("%d late replies delivered, want 0", lateOK)
	}
	var want uint64
	for i := range perWorker {
		if i%3 == 1 {
			want++
		}
	}
	if got := tab.Dropped(); got != want*workers {
		t.Errorf("Dropped() = %d, want %d", got, want*workers)
	}
}
