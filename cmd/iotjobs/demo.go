package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/iotjobs/iotjobs/adapters/membroker"
	"github.com/iotjobs/iotjobs/app/jobs"
	"github.com/iotjobs/iotjobs/domain/job"
	"github.com/iotjobs/iotjobs/testkit/jobstest"
)

// demoJob is a job the demo queues and what the device makes of it.
type demoJob struct {
	id       string
	document string
	// want is the status the demo device ends the job with.
	want job.Status
}

// demoJobs are queued in this order; the device takes them oldest first.
var demoJobs = []demoJob{
	{"install-firmware-2-4-1", `{"operation":"install","version":"2.4.1","steps":3}`, job.Succeeded},
	{"reboot-1", `{"operation":"reboot","steps":1}`, job.Succeeded},
	{"collect-logs-1", `{"operation":"collect-logs","steps":2,"failAtStep":2}`, job.Failed},
	{"factory-reset-1", `{"operation":"factory-reset"}`, job.Rejected},
}

// demoDocument is the job document the demo device understands.
type demoDocument struct {
	Operation  string `json:"operation"`
	Version    string `json:"version,omitempty"`
	Steps      int    `json:"steps"`
	FailAtStep int    `json:"failAtStep,omitempty"`
}

var supportedOperations = []string{"install", "reboot", "collect-logs"}

func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	thing := fs.String("thing", "demo-thing", "the thing name of the demo device")
	timeout := fs.Duration("timeout", 30*time.Second, "give up after this long")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("demo: unexpected arguments %q", fs.Args())
	}
	if err := job.ValidateThingName(*thing); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()

	// The emulator: the fake AWS IoT Jobs service on an in-memory broker.
	broker := membroker.New(membroker.Options{})
	defer broker.Close()
	serviceConn, err := broker.Connect("iotjobs-service")
	if err != nil {
		return err
	}
	svc := jobstest.New(jobstest.Options{})
	if err := svc.Start(ctx, serviceConn); err != nil {
		return err
	}
	defer svc.Close()

	// The device: a Jobs client on its own connection.
	deviceConn, err := broker.Connect(*thing)
	if err != nil {
		return err
	}
	client, err := jobs.New(ctx, deviceConn, jobs.Options{Thing: *thing})
	if err != nil {
		return err
	}
	defer client.Close()

	fmt.Fprintf(stdout, "iotjobs demo: thing %q on the embedded emulator (fake AWS IoT Jobs service, in-memory broker)\n", *thing)
	for _, j := range demoJobs {
		spec := jobstest.JobSpec{JobID: j.id, Document: json.RawMessage(j.document), Targets: []string{*thing}}
		if err := svc.CreateJob(ctx, spec); err != nil {
			return fmt.Errorf("demo: create job %s: %w", j.id, err)
		}
		fmt.Fprintf(stdout, "queued   %-24s %s\n", j.id, j.document)
	}

	inProgress, queued, err := client.List(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "pending: %d in progress, %d queued\n", len(inProgress), len(queued))

	ran := 0
	for {
		next, err := client.Describe(ctx, job.NextJobID, job.DescribeRequest{})
		if err != nil {
			return err
		}
		if next.Execution == nil {
			break
		}
		if err := runDemoJob(ctx, client, next.Execution, stdout); err != nil {
			return err
		}
		ran++
	}
	fmt.Fprintf(stdout, "no more pending jobs after %d\n", ran)
	return demoSummary(svc, *thing, stdout)
}

// runDemoJob takes one execution the scalable way (IN_PROGRESS with the
// version just read), runs it step by step with progress reports, and
// reports the result.
func runDemoJob(ctx context.Context, client *jobs.Client, e *job.Execution, stdout io.Writer) error {
	j := client.Job(e.JobID)
	update := func(status job.Status, details job.StatusDetails) error {
		if err := j.Update(ctx, status, details); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "  %-11s %s (version %d)\n", status, formatDetails(details), j.Version())
		return nil
	}

	if err := j.Describe(ctx); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "take     %-24s version %d\n", j.ID(), j.Version())
	var doc demoDocument
	if err := j.Document().Decode(&doc); err != nil {
		return update(job.Rejected, job.StatusDetails{"reason": "unreadable job document"})
	}
	if !slices.Contains(supportedOperations, doc.Operation) {
		return update(job.Rejected, job.StatusDetails{"reason": "unsupported operation " + doc.Operation})
	}
	if err := update(job.InProgress, job.StatusDetails{"operation": doc.Operation}); err != nil {
		return err
	}
	for step := 1; step <= doc.Steps; step++ {
		if step == doc.FailAtStep {
			return update(job.Failed, job.StatusDetails{"failedStep": fmt.Sprint(step), "reason": "simulated failure"})
		}
		if err := update(job.InProgress, job.StatusDetails{"step": fmt.Sprintf("%d/%d", step, doc.Steps)}); err != nil {
			return err
		}
	}
	return update(job.Succeeded, job.StatusDetails{"operation": doc.Operation, "result": "done"})
}

// demoSummary prints the final state of every execution as the service
// holds it, and checks it against what the demo set out to do.
func demoSummary(svc *jobstest.Service, thing string, stdout io.Writer) error {
	counts := map[job.Status]int{}
	var mismatches []string
	for _, j := range demoJobs {
		e, ok := svc.Execution(thing, j.id)
		if !ok {
			return fmt.Errorf("demo: the service has no execution of %s", j.id)
		}
		counts[e.Status]++
		fmt.Fprintf(stdout, "result   %-24s %-10s version %d\n", j.id, e.Status, e.VersionNumber)
		if e.Status != j.want {
			mismatches = append(mismatches, fmt.Sprintf("%s is %s, want %s", j.id, e.Status, j.want))
		}
	}
	var parts []string
	for _, s := range job.Statuses {
		if counts[s] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[s], strings.ToLower(string(s))))
		}
	}
	fmt.Fprintf(stdout, "summary: %d jobs: %s\n", len(demoJobs), strings.Join(parts, ", "))
	if len(mismatches) > 0 {
		return errors.New("demo: " + strings.Join(mismatches, "; "))
	}
	return nil
}

func formatDetails(d job.StatusDetails) string {
	keys := make([]string, 0, len(d))
	for k := range d {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s=%q", k, d[k])
	}
	return b.String()
}
