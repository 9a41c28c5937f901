package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/iotjobs/iotjobs/adapters/mqtt5"
	"github.com/iotjobs/iotjobs/app/agent"
	"github.com/iotjobs/iotjobs/app/jobs"
	"github.com/iotjobs/iotjobs/domain/job"
	"github.com/iotjobs/iotjobs/testkit/emulator"
	"github.com/iotjobs/iotjobs/testkit/jobstest"
)

// demoJob is a job the demo queues and the status it must end with.
type demoJob struct {
	id       string
	document string
	want     job.Status
	story    string
}

// demoJobs are queued in this order; the device takes them oldest first.
var demoJobs = []demoJob{
	{"install-firmware-2-4-1", `{"operation":"install","version":"2.4.1","stages":4}`, job.Succeeded, "runs with progress and succeeds"},
	{"collect-logs-1", `{"operation":"collect-logs","stages":2}`, job.Failed, "fails at its second step"},
	{"long-update-1", `{"operation":"long-update","stages":20}`, job.Canceled, "runs until the service cancels it"},
	{"factory-reset-1", `{"operation":"factory-reset"}`, job.Rejected, "asks for an operation the device does not have"},
}

// demoDocument is the job document the demo's handlers read.
type demoDocument struct {
	Version string `json:"version,omitempty"`
	Stages  int    `json:"stages"`
}

// demoPrinter serialises the demo's output, written from handlers and the
// agent's result callback.
type demoPrinter struct {
	mu sync.Mutex
	w  io.Writer
}

func (p *demoPrinter) printf(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, format, args...)
}

func progressBar(done, total int) string {
	const width = 20
	n := width * done / max(total, 1)
	return "[" + strings.Repeat("#", n) + strings.Repeat(".", width-n) + "]"
}

func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	thing := fs.String("thing", "demo-thing", "the thing name of the demo device")
	stepTime := fs.Duration("step-time", 150*time.Millisecond, "how long each simulated step of a job takes")
	timeout := fs.Duration("timeout", time.Minute, "give up after this long")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("demo: unexpected arguments %q", fs.Args())
	}
	if err := job.ValidateThingName(*thing); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	if *stepTime < 0 {
		return errors.New("demo: --step-time must not be negative")
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	out := &demoPrinter{w: stdout}

	// The emulator: a real MQTT 5 broker on loopback (TLS with client
	// certificates) and the fake AWS IoT Jobs service.
	emu, err := emulator.Start(ctx, emulator.Options{Thing: *thing})
	if err != nil {
		return err
	}
	defer emu.Close()
	out.printf("iotjobs demo: the emulator serves MQTT 5 over TLS on %s; the device %q connects with its certificate\n\n", emu.MQTTAddr(), *thing)

	svc := emu.Service()
	for _, j := range demoJobs {
		spec := jobstest.JobSpec{JobID: j.id, Document: json.RawMessage(j.document), Targets: []string{*thing}}
		if err := svc.CreateJob(ctx, spec); err != nil {
			return fmt.Errorf("demo: create job %s: %w", j.id, err)
		}
		out.printf("queued  %-24s %s: %s\n", j.id, j.document, j.story)
	}
	out.printf("\n")

	cert := emu.ClientCertificate()
	conn, err := mqtt5.Connect(ctx, mqtt5.Config{
		Endpoint: emu.MQTTAddr(), ClientID: *thing, Certificate: &cert, RootCAs: emu.RootCAs(),
	})
	if err != nil {
		return err
	}
	defer conn.Close()

	// The device's handlers. The long update tells the demo when it runs,
	// so that the demo can cancel it at the service, as an operator would.
	longStarted := make(chan string, 1)
	// steps runs a job's stages; it fails at stage failAt, and at stage
	// waitAt it waits until the service ends the job.
	steps := func(ctx context.Context, j agent.Job, p agent.Progress, failAt, waitAt int) error {
		var doc demoDocument
		if err := j.Document.Decode(&doc); err != nil || doc.Stages < 1 {
			return agent.Reject(fmt.Errorf("document needs stages: %v", err))
		}
		for step := 1; step <= doc.Stages; step++ {
			select {
			case <-ctx.Done():
				return context.Cause(ctx)
			case <-time.After(*stepTime): // the simulated work of one step
			}
			if step == failAt {
				return fmt.Errorf("step %d: upload failed: connection reset", step)
			}
			p.Report(job.StatusDetails{"step": fmt.Sprintf("%d/%d", step, doc.Stages)})
			out.printf("        %-24s %s %d/%d\n", j.ID, progressBar(step, doc.Stages), step, doc.Stages)
			if step == waitAt {
				longStarted <- j.ID
				<-ctx.Done()
				return context.Cause(ctx)
			}
		}
		return nil
	}
	mux := agent.NewMux()
	mux.HandleFunc("install", func(ctx context.Context, j agent.Job, p agent.Progress) error { return steps(ctx, j, p, 0, 0) })
	mux.HandleFunc("collect-logs", func(ctx context.Context, j agent.Job, p agent.Progress) error { return steps(ctx, j, p, 2, 0) })
	mux.HandleFunc("long-update", func(ctx context.Context, j agent.Job, p agent.Progress) error { return steps(ctx, j, p, 0, 2) })

	a, err := agent.New(ctx, conn, *thing, agent.Config{
		Handler:          mux,
		ProgressInterval: *stepTime / 2,
		Client:           jobs.Options{Thing: *thing},
		OnResult: func(r agent.Result) {
			line := fmt.Sprintf("end     %-24s %-10s after %s", r.JobID, r.Status, r.Duration.Round(time.Millisecond))
			if r.Err != nil {
				line += ": " + r.Err.Error()
			}
			out.printf("%s\n", line)
		},
	})
	if err != nil {
		return err
	}
	defer a.Close()

	canceled := make(chan error, 1)
	ran := make(chan struct{})
	go func() {
		select {
		case id := <-longStarted:
			out.printf("        the operator cancels %s at the service\n", id)
			canceled <- svc.CancelExecution(ctx, *thing, id, true)
		case <-ran: // the long job never started
			canceled <- nil
		}
	}()
	err = a.RunOnce(ctx)
	close(ran)
	// Wait for the cancellation to be done: its notifications may still be
	// on their way when the agent, which saw the job end, is done.
	if cerr := <-canceled; err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	return demoSummary(svc, *thing, out)
}

// demoSummary prints the final state of every execution as the service
// holds it, and checks it against what the demo set out to show.
func demoSummary(svc *jobstest.Service, thing string, out *demoPrinter) error {
	out.printf("\n%-24s %-10s %-10s %-8s %s\n", "JOB", "STATUS", "EXPECTED", "VERSION", "DETAILS")
	var mismatches []string
	for _, j := range demoJobs {
		e, ok := svc.Execution(thing, j.id)
		if !ok {
			return fmt.Errorf("demo: the service has no execution of %s", j.id)
		}
		mark := "ok"
		if e.Status != j.want {
			mark = "UNEXPECTED"
			mismatches = append(mismatches, fmt.Sprintf("%s is %s, want %s", j.id, e.Status, j.want))
		}
		out.printf("%-24s %-10s %-10s %-8s %s  %s\n", j.id, e.Status, j.want, strconv.FormatInt(int64(e.VersionNumber), 10), formatDetails(e.StatusDetails), mark)
	}
	if len(mismatches) > 0 {
		return errors.New("demo: " + strings.Join(mismatches, "; "))
	}
	out.printf("\nevery job ended as expected\n")
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
