package agent_test

import (
	"context"
	"encoding/json"
	"strconv"
	"testing"

	"github.com/iotjobs/iotjobs/adapters/membroker"
	"github.com/iotjobs/iotjobs/app/agent"
	"github.com/iotjobs/iotjobs/domain/job"
	"github.com/iotjobs/iotjobs/testkit/jobstest"
)

// BenchmarkJobLifecycle measures one job through the agent on the
// in-memory broker: the service queues it and notifies, the agent takes it
// (Describe $next, IN_PROGRESS update), runs a handler that reports
// progress once, reports SUCCEEDED, and looks for the next job.
func BenchmarkJobLifecycle(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
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
	results := make(chan agent.Result, 1)
	a, err := agent.New(ctx, dev, "bench-thing", agent.Config{
		Handler: agent.HandlerFunc(func(_ context.Context, _ agent.Job, p agent.Progress) error {
			p.Report(job.StatusDetails{"step": "1"})
			return nil
		}),
		OnResult: func(r agent.Result) { results <- r },
	})
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close()
	runErr := make(chan error, 1)
	go func() { runErr <- a.Run(ctx) }()
	doc := json.RawMessage(`{"operation":"install","url":"https://example.com/fw.bin"}`)
	targets := []string{"bench-thing"}

	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		id := "job-" + strconv.Itoa(i)
		if err := svc.CreateJob(ctx, jobstest.JobSpec{JobID: id, Document: doc, Targets: targets}); err != nil {
			b.Fatal(err)
		}
		if r := <-results; r.JobID != id || r.Status != job.Succeeded {
			b.Fatalf("result %+v", r)
		}
	}
	b.StopTimer()
	cancel()
	if err := <-runErr; err != nil {
		b.Fatal(err)
	}
}
