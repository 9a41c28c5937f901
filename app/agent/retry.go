package agent

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/iotjobs/iotjobs/domain/job"
	"github.com/iotjobs/iotjobs/ports"
)

// Clock tells the agent the time and makes its timers: progress intervals,
// step timeouts, retry backoff and durations. Config.Clock lets a test
// drive them. Timers are set for a time, not a duration, so that a clock
// that moves while the agent sets one does not move its deadline.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// NewTimer returns a timer that fires once, when the clock reaches at
	// (at once if it has).
	NewTimer(at time.Time) Timer
}

// Timer is a one-shot timer made by a Clock.
type Timer interface {
	// C returns the channel on which the timer sends the time once it
	// fires.
	C() <-chan time.Time
	// Stop stops the timer; it reports whether that prevented it from
	// firing.
	Stop() bool
}

// systemClock is the real clock.
type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

func (systemClock) NewTimer(at time.Time) Timer { return systemTimer{time.NewTimer(time.Until(at))} }

type systemTimer struct{ t *time.Timer }

func (t systemTimer) C() <-chan time.Time { return t.t.C }
func (t systemTimer) Stop() bool          { return t.t.Stop() }

// RetryPolicy says how the agent retries a request that the service
// throttled (RequestThrottled) or failed (InternalError), or whose reply
// did not come in time, or that the transport could not send while
// disconnected. Other errors are not retried. Every update the agent
// sends carries the version it expects, so a retried update cannot
// overwrite a change it did not see. The delay before retry n (from 1) is
// Initial·2ⁿ⁻¹ capped at Max, less a random part of up to half of it
// (jitter), so that a fleet does not retry in step.
type RetryPolicy struct {
	// Initial is the delay before the first retry; zero means
	// DefaultRetry.Initial.
	Initial time.Duration
	// Max caps the delay; zero means DefaultRetry.Max (or Initial, if that
	// is more). A take that failed is tried again after Max.
	Max time.Duration
	// Attempts is how many times a request is sent at most, the first
	// included; zero means DefaultRetry.Attempts, 1 means no retry.
	Attempts int
	// Seed seeds the jitter; zero means a random seed.
	Seed uint64
}

// DefaultRetry is the RetryPolicy used for zero fields.
var DefaultRetry = RetryPolicy{Initial: 500 * time.Millisecond, Max: 30 * time.Second, Attempts: 6}

// backoff computes the delays of a RetryPolicy.
type backoff struct {
	initial, max time.Duration
	attempts     int

	mu  sync.Mutex
	rng *rand.Rand
}

func newBackoff(p RetryPolicy) *backoff {
	b := &backoff{initial: p.Initial, max: p.Max, attempts: p.Attempts}
	if b.initial == 0 {
		b.initial = DefaultRetry.Initial
	}
	if b.max == 0 {
		b.max = max(DefaultRetry.Max, b.initial)
	}
	if b.attempts == 0 {
		b.attempts = DefaultRetry.Attempts
	}
	seed := p.Seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	b.rng = rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	return b
}

// delay returns the delay before retry n (n ≥ 1).
func (b *backoff) delay(n int) time.Duration {
	d := b.initial
	for i := 1; i < n && d < b.max; i++ {
		d *= 2
	}
	d = min(d, b.max)
	b.mu.Lock()
	defer b.mu.Unlock()
	return d - time.Duration(b.rng.Int64N(int64(d/2)+1))
}

// retryable reports whether err, returned by a request made with ctx, may
// be retried.
func retryable(ctx context.Context, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	var rej *job.RejectedError
	if errors.As(err, &rej) {
		return rej.Retryable()
	}
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ports.ErrNotConnected)
}

// retry calls f until it succeeds, fails with an error that may not be
// retried, or has been called Attempts times, and returns its last error.
// Between calls it waits the backoff delay; the wait ends early, returning
// the last error, when ctx or stop ends.
func (a *Agent) retry(ctx, stop context.Context, what string, f func(context.Context) error) error {
	for n := 1; ; n++ {
		err := f(ctx)
		if err == nil || n >= a.backoff.attempts || !retryable(ctx, err) {
			return err
		}
		d := a.backoff.delay(n)
		a.log.Debug("agent: retrying", "request", what, "attempt", n+1, "delay", d, "error", err)
		if !a.sleep(ctx, stop, d) {
			return err
		}
	}
}

// sleep waits d on the agent's clock; it returns false if ctx or stop ended
// first.
func (a *Agent) sleep(ctx, stop context.Context, d time.Duration) bool {
	t := a.clock.NewTimer(a.clock.Now().Add(d))
	defer t.Stop()
	select {
	case <-t.C():
		return true
	case <-ctx.Done():
	case <-stop.Done():
	}
	return false
}
