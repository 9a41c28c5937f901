package benchtest

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"strconv"
	"time"

	"github.com/iotjobs/iotjobs/adapters/membroker"
	"github.com/iotjobs/iotjobs/app/jobs"
	"github.com/iotjobs/iotjobs/domain/job"
	"github.com/iotjobs/iotjobs/testkit/jobstest"
)

// PerOp is the cost of one operation, as go test -benchmem reports it.
type PerOp struct {
	N       int
	NsPerOp float64
	// CPUNsPerOp is the process's CPU time (user and system, every
	// goroutine) per operation: on a loaded machine the wall time
	// stretches, this much less. Zero where it is not measured.
	CPUNsPerOp  float64
	BytesPerOp  float64
	AllocsPerOp float64
}

// Lifecycle runs n full job lifecycles through the fake service on the
// in-memory broker, as app/jobs BenchmarkLifecycle does: CreateJob, the
// client notified of its next job, Describe $next, Update IN_PROGRESS with
// the version read, Update SUCCEEDED.
func Lifecycle(ctx context.Context, n int) (PerOp, error) {
	broker := membroker.New(membroker.Options{})
	defer broker.Close()
	svcConn, err := broker.Connect("service")
	if err != nil {
		return PerOp{}, err
	}
	svc := jobstest.New(jobstest.Options{Clock: jobstest.NewFakeClock(time.Unix(1700000000, 0))})
	if err := svc.Start(ctx, svcConn); err != nil {
		return PerOp{}, err
	}
	defer svc.Close()
	dev, err := broker.Connect("bench-thing")
	if err != nil {
		return PerOp{}, err
	}
	next := make(chan *job.Execution, 16)
	c, err := jobs.New(ctx, dev, jobs.Options{Thing: "bench-thing", OnEvent: func(ev jobs.Event) {
		if ev.Kind == jobs.EventNextChanged && ev.NextChanged.Execution != nil {
			next <- ev.NextChanged.Execution
		}
	}})
	if err != nil {
		return PerOp{}, err
	}
	defer c.Close()
	doc := json.RawMessage(`{"operation":"install","url":"https://example.com/fw.bin"}`)
	targets := []string{"bench-thing"}
	i := 0
	one := func() error {
		id := "job-" + strconv.Itoa(i)
		i++
		if err := svc.CreateJob(ctx, jobstest.JobSpec{JobID: id, Document: doc, Targets: targets}); err != nil {
			return err
		}
		if e := <-next; e.JobID != id {
			return fmt.Errorf("notified of %s, want %s", e.JobID, id)
		}
		d, err := c.Describe(ctx, job.NextJobID, job.DescribeRequest{})
		if err != nil {
			return err
		}
		if _, err := c.Update(ctx, id, job.UpdateRequest{Status: job.InProgress, ExpectedVersion: &d.Execution.VersionNumber}); err != nil {
			return err
		}
		_, err = c.Update(ctx, id, job.UpdateRequest{Status: job.Succeeded})
		return err
	}
	for range min(n, 100) { // warm up
		if err := one(); err != nil {
			return PerOp{}, err
		}
	}
	return measure(n, one)
}

// measure runs op n times and reports its cost per call.
func measure(n int, op func() error) (PerOp, error) {
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	start, cpu := time.Now(), cpuTime()
	for range n {
		if err := op(); err != nil {
			return PerOp{}, err
		}
	}
	elapsed, cpu := time.Since(start), cpuTime()-cpu
	runtime.ReadMemStats(&after)
	return PerOp{
		N:           n,
		NsPerOp:     float64(elapsed.Nanoseconds()) / float64(n),
		CPUNsPerOp:  float64(cpu.Nanoseconds()) / float64(n),
		BytesPerOp:  float64(after.TotalAlloc-before.TotalAlloc) / float64(n),
		AllocsPerOp: float64(after.Mallocs-before.Mallocs) / float64(n),
	}, nil
}
