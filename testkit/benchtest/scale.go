package benchtest

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/iotjobs/iotjobs/adapters/membroker"
	"github.com/iotjobs/iotjobs/app/jobs"
	"github.com/iotjobs/iotjobs/domain/job"
	"github.com/iotjobs/iotjobs/testkit/jobstest"
)

// ScaleResult is what Scale measured.
type ScaleResult struct {
	// Things is the number of things, each with its own connection and
	// Jobs client.
	Things int
	// HeapPerClient is the live heap (runtime.MemStats.HeapAlloc after a
	// GC) the connected clients add, divided by Things.
	HeapPerClient float64
	// StackPerClient is the goroutine stack memory (MemStats.StackInuse)
	// they add, divided by Things: not part of the heap, but memory too.
	StackPerClient float64
	// Goroutines is the number of goroutines they add.
	Goroutines int
	// Connect is the time to connect every thing and make its client.
	Connect time.Duration
	// Rollout is the time from one CreateJob targeting every thing until
	// every execution is SUCCEEDED: each client, notified, takes the job
	// (Describe $next, Update IN_PROGRESS) and reports SUCCEEDED.
	Rollout time.Duration
}

// Scale connects things things to the in-memory broker, each with its own
// membroker connection and Jobs client, and rolls one job out to all.
func Scale(ctx context.Context, things int) (ScaleResult, error) {
	res := ScaleResult{Things: things}
	broker := membroker.New(membroker.Options{})
	defer broker.Close()
	svcConn, err := broker.Connect("service")
	if err != nil {
		return res, err
	}
	svc := jobstest.New(jobstest.Options{Clock: jobstest.NewFakeClock(time.Unix(1700000000, 0))})
	if err := svc.Start(ctx, svcConn); err != nil {
		return res, err
	}
	defer svc.Close()

	var wg sync.WaitGroup
	errs := make(chan error, things)
	work := func(c *jobs.Client, id string) {
		defer wg.Done()
		d, err := c.Describe(ctx, job.NextJobID, job.DescribeRequest{})
		if err == nil && (d.Execution == nil || d.Execution.JobID != id) {
			err = fmt.Errorf("%s: next job is not %s", c.Thing(), id)
		}
		if err == nil {
			_, err = c.Update(ctx, id, job.UpdateRequest{Status: job.InProgress, ExpectedVersion: &d.Execution.VersionNumber})
		}
		if err == nil {
			_, err = c.Update(ctx, id, job.UpdateRequest{Status: job.Succeeded})
		}
		if err != nil {
			errs <- err
		}
	}

	names := make([]string, things)
	for i := range names {
		names[i] = "thing-" + strconv.Itoa(i)
	}
	clients := make([]*jobs.Client, 0, things)
	defer func() {
		for _, c := range clients {
			c.Close()
		}
	}()
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	g0 := runtime.NumGoroutine()
	start := time.Now()
	for i, name := range names {
		conn, err := broker.Connect(name)
		if err != nil {
			return res, err
		}
		c, err := jobs.New(ctx, conn, jobs.Options{Thing: name, OnEvent: func(ev jobs.Event) {
			// Each thing takes the job it is notified of, off the event
			// goroutine so that events keep flowing.
			if ev.Kind == jobs.EventNextChanged && ev.NextChanged.Execution != nil && ev.NextChanged.Execution.Status == job.Queued {
				// No event comes before CreateJob, when clients is
				// complete.
				go work(clients[i], ev.NextChanged.Execution.JobID)
			}
		}})
		if err != nil {
			return res, err
		}
		clients = append(clients, c)
	}
	res.Connect = time.Since(start)
	runtime.GC()
	runtime.ReadMemStats(&after)
	res.HeapPerClient = float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / float64(things)
	res.StackPerClient = float64(int64(after.StackInuse)-int64(before.StackInuse)) / float64(things)
	res.Goroutines = runtime.NumGoroutine() - g0

	doc := json.RawMessage(`{"operation":"install","url":"https://example.com/fw.bin"}`)
	wg.Add(things)
	start = time.Now()
	if err := svc.CreateJob(ctx, jobstest.JobSpec{JobID: "rollout", Document: doc, Targets: names}); err != nil {
		return res, err
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case err := <-errs:
		return res, err
	case <-ctx.Done():
		return res, ctx.Err()
	}
	res.Rollout = time.Since(start)
	select {
	case err := <-errs:
		return res, err
	default:
	}
	for _, name := range names {
		e, ok := svc.Execution(name, "rollout")
		if !ok || e.Status != job.Succeeded {
			return res, fmt.Errorf("benchtest: %s: rollout is %s", name, e.Status)
		}
	}
	return res, nil
}
