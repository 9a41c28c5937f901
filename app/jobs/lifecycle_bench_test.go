package jobs_test

import (
	"context"
	"encoding/json"
	"strconv"
	"testing"

	"github.com/iotjobs/iotjobs/adapters/membroker"
	"github.com/iotjobs/iotjobs/app/jobs"
	"github.com/iotjobs/iotjobs/domain/job"
	"github.com/iotjobs/iotjobs/testkit/jobstest"
)

// BenchmarkLifecycle measures one full job lifecycle on the in-memory
// broker: the fake service creates a job, the client is notified, takes the
// next job the scalable way (Describe $next, Update IN_PROGRESS with the
// version read) and reports SUCCEEDED.
func BenchmarkLifecycle(b *testing.B) {
	ctx := context.Background()
	broker := membroker.New(membroker.Options{})
	defer broker.Close()
	svcConn, err := broker.Connect("service")
	if err != nil {
		b.Fatal(err)
	}
	svc := jobstest.New(jobstest.Options{Clock: jobstest.NewFakeClock(t0)})
	if err := svc.Start(ctx, svcConn); err != nil {
		b.Fatal(err)
	}
	defer svc.Close()
	dev, err := broker.Connect("bench-thing")
	if err != nil {
		b.Fatal(err)
	}
	next := make(chan *job.Execution, 16)
	c, err := jobs.New(ctx, dev, jobs.Options{Thing: "bench-thing", OnEvent: func(ev jobs.Event) {
		if ev.Kind == jobs.EventNextChanged && ev.NextChanged.Execution != nil {
			next <- ev.NextChanged.Execution
		}
	}})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	doc := json.RawMessage(`{"operation":"install","url":"https://example.com/fw.bin"}`)
	targets := []string{"bench-thing"}

	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		id := "job-" + strconv.Itoa(i)
		if err := svc.CreateJob(ctx, jobstest.JobSpec{JobID: id, Document: doc, Targets: targets}); err != nil {
			b.Fatal(err)
		}
		if e := <-next; e.JobID != id {
			b.Fatalf("notified of %s, want %s", e.JobID, id)
		}
		d, err := c.Describe(ctx, job.NextJobID, job.DescribeRequest{})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := c.Update(ctx, id, job.UpdateRequest{Status: job.InProgress, ExpectedVersion: &d.Execution.VersionNumber}); err != nil {
			b.Fatal(err)
		}
		if _, err := c.Update(ctx, id, job.UpdateRequest{Status: job.Succeeded}); err != nil {
			b.Fatal(err)
		}
	}
}
