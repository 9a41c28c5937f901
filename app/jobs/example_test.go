package jobs_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"

	"github.com/iotjobs/iotjobs/adapters/membroker"
	"github.com/iotjobs/iotjobs/app/jobs"
	"github.com/iotjobs/iotjobs/domain/job"
	"github.com/iotjobs/iotjobs/testkit/jobstest"
)

// A user's test: the fake Jobs service and the device's client share an
// in-memory broker; the device lists its jobs, runs the queued one and
// reports; the test checks what the service recorded.
func Example() {
	ctx := context.Background()
	b := membroker.New(membroker.Options{})
	defer b.Close()

	// The fake AWS IoT Jobs service, with one job for the thing.
	svcConn, err := b.Connect("jobs-service")
	if err != nil {
		log.Fatal(err)
	}
	svc := jobstest.New(jobstest.Options{})
	if err := svc.Start(ctx, svcConn); err != nil {
		log.Fatal(err)
	}
	defer svc.Close()
	err = svc.CreateJob(ctx, jobstest.JobSpec{
		JobID:    "firmware-42",
		Document: json.RawMessage(`{"url":"https://example.com/fw.bin"}`),
		Targets:  []string{"sensor-1"},
	})
	if err != nil {
		log.Fatal(err)
	}

	// The device.
	dev, err := b.Connect("sensor-1")
	if err != nil {
		log.Fatal(err)
	}
	c, err := jobs.New(ctx, dev, jobs.Options{Thing: "sensor-1"})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	_, queued, err := c.List(ctx)
	if err != nil {
		log.Fatal(err)
	}
	for _, j := range queued {
		if err := j.Describe(ctx); err != nil {
			log.Fatal(err)
		}
		fmt.Println(j.ID(), j.Status(), string(j.Document()))
		if err := j.Update(ctx, job.InProgress, job.StatusDetails{"step": "download"}); err != nil {
			log.Fatal(err)
		}
		if err := j.Update(ctx, job.Succeeded, nil); err != nil {
			log.Fatal(err)
		}
		fmt.Println(j.ID(), j.Status(), "version", j.Version())
	}

	// What the service saw.
	e, _ := svc.Execution("sensor-1", "firmware-42")
	fmt.Println("service:", e.Status, e.StatusDetails)
	// Output:
	// firmware-42 QUEUED {"url":"https://example.com/fw.bin"}
	// firmware-42 SUCCEEDED version 3
	// service: SUCCEEDED map[step:download]
}

// Notifications arrive as Events, passed to OnEvent from the client's own
// goroutine; Changed tells a polling loop that something arrived.
func ExampleOptions_onEvent() {
	ctx := context.Background()
	b := membroker.New(membroker.Options{})
	defer b.Close()
	svcConn, _ := b.Connect("jobs-service")
	svc := jobstest.New(jobstest.Options{})
	if err := svc.Start(ctx, svcConn); err != nil {
		log.Fatal(err)
	}
	defer svc.Close()

	dev, _ := b.Connect("sensor-1")
	events := make(chan jobs.Event, 10)
	c, err := jobs.New(ctx, dev, jobs.Options{
		Thing:   "sensor-1",
		OnEvent: func(ev jobs.Event) { events <- ev }, // must not block for long
	})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	err = svc.CreateJob(ctx, jobstest.JobSpec{JobID: "reboot-1", Document: json.RawMessage(`{}`), Targets: []string{"sensor-1"}})
	if err != nil {
		log.Fatal(err)
	}
	for range 2 {
		switch ev := <-events; ev.Kind {
		case jobs.EventJobsChanged:
			fmt.Println("pending list changed:", len(ev.JobsChanged.Jobs[job.Queued]), "queued")
		case jobs.EventNextChanged:
			fmt.Println("next job:", ev.NextChanged.Execution.JobID)
		}
	}
	fmt.Println("changed:", c.Changed())
	fmt.Println("changed again:", c.Changed())
	// Output:
	// pending list changed: 1 queued
	// next job: reboot-1
	// changed: true
	// changed again: false
}

// Describe job.NextJobID, then take the job with an update that expects the
// version described: the scalable way AWS recommends. A rejection is a
// *job.RejectedError, matched with errors.Is on its code.
func ExampleClient_Describe() {
	ctx := context.Background()
	b := membroker.New(membroker.Options{})
	defer b.Close()
	svcConn, _ := b.Connect("jobs-service")
	svc := jobstest.New(jobstest.Options{})
	if err := svc.Start(ctx, svcConn); err != nil {
		log.Fatal(err)
	}
	defer svc.Close()
	err := svc.CreateJob(ctx, jobstest.JobSpec{JobID: "reboot-1", Document: json.RawMessage(`{"op":"reboot"}`), Targets: []string{"sensor-1"}})
	if err != nil {
		log.Fatal(err)
	}
	dev, _ := b.Connect("sensor-1")
	c, err := jobs.New(ctx, dev, jobs.Options{Thing: "sensor-1"})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	next, err := c.Describe(ctx, job.NextJobID, job.DescribeRequest{})
	if err != nil {
		log.Fatal(err)
	}
	x := next.Execution
	fmt.Println("next:", x.JobID, x.Status, "version", x.VersionNumber)
	took, err := c.Update(ctx, x.JobID, job.UpdateRequest{
		Status:                   job.InProgress,
		ExpectedVersion:          &x.VersionNumber,
		IncludeJobExecutionState: true,
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("took it:", took.ExecutionState.Status, "version", took.ExecutionState.VersionNumber)

	// The same stale version again is refused.
	_, err = c.Update(ctx, x.JobID, job.UpdateRequest{Status: job.Succeeded, ExpectedVersion: &x.VersionNumber})
	var rej *job.RejectedError
	if errors.Is(err, job.ErrVersionMismatch) && errors.As(err, &rej) {
		fmt.Println("version mismatch; current version", rej.ExecutionState.VersionNumber)
	}
	// Output:
	// next: reboot-1 QUEUED version 1
	// took it: IN_PROGRESS version 2
	// version mismatch; current version 2
}
