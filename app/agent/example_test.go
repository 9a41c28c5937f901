package agent_test

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/iotjobs/iotjobs/adapters/membroker"
	"github.com/iotjobs/iotjobs/app/agent"
	"github.com/iotjobs/iotjobs/domain/job"
	"github.com/iotjobs/iotjobs/testkit/jobstest"
)

// An agent runs the jobs of a thing against the fake AWS IoT Jobs service
// on the in-memory broker: an install it knows, and an operation it does
// not know, which it rejects.
func Example() {
	ctx := context.Background()
	broker := membroker.New(membroker.Options{})
	defer broker.Close()

	// The fake service, with two jobs queued for my-thing.
	serviceConn, _ := broker.Connect("jobs-service")
	svc := jobstest.New(jobstest.Options{Clock: jobstest.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))})
	if err := svc.Start(ctx, serviceConn); err != nil {
		fmt.Println(err)
		return
	}
	defer svc.Close()
	for _, j := range []struct{ id, doc string }{
		{"install-1", `{"operation":"install","version":"2.4.1"}`},
		{"dance-1", `{"operation":"dance"}`},
	} {
		spec := jobstest.JobSpec{JobID: j.id, Document: json.RawMessage(j.doc), Targets: []string{"my-thing"}}
		if err := svc.CreateJob(ctx, spec); err != nil {
			fmt.Println(err)
			return
		}
	}

	// The device: an agent with a handler per operation.
	mux := agent.NewMux()
	mux.HandleFunc("install", func(ctx context.Context, j agent.Job, progress agent.Progress) error {
		var doc struct{ Version string }
		if err := j.Document.Decode(&doc); err != nil {
			return agent.Reject(err)
		}
		progress.Report(job.StatusDetails{"installed": doc.Version})
		return nil
	})
	deviceConn, _ := broker.Connect("my-thing")
	a, err := agent.New(ctx, deviceConn, "my-thing", agent.Config{
		Handler: mux,
		OnResult: func(r agent.Result) {
			fmt.Printf("%s: %s (error: %v)\n", r.JobID, r.Status, r.Err)
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer a.Close()
	if err := a.RunOnce(ctx); err != nil { // until no job is left
		fmt.Println(err)
		return
	}

	// What the service holds.
	for _, x := range svc.Executions() {
		fmt.Println(x.JobID, x.Status, x.StatusDetails)
	}
	// Output:
	// install-1: SUCCEEDED (error: <nil>)
	// dance-1: REJECTED (error: agent: unknown operation "dance")
	// install-1 SUCCEEDED map[installed:2.4.1]
	// dance-1 REJECTED map[reason:agent: unknown operation "dance"]
}

// Operations reads both forms of job document a Mux routes.
func ExampleOperations() {
	for _, doc := range []string{
		`{"operation":"install","version":"2.4.1"}`,
		`{"version":"1.0","steps":[{"action":{"name":"Reboot","type":"runHandler","input":{"handler":"reboot.sh","args":["now"]}}}]}`,
		`{"url":"https://example.com/fw.bin"}`,
	} {
		ops, err := agent.Operations(job.Document(doc))
		fmt.Printf("%+v %v\n", ops, err)
	}
	// Output:
	// [{Name:install Args:[] Action: Step:0}] <nil>
	// [{Name:reboot.sh Args:[now] Action:Reboot Step:0}] <nil>
	// [] agent: invalid job document: neither "operation" nor "steps"
}

// SanitizeDetails makes status details acceptable to AWS.
func ExampleSanitizeDetails() {
	d := agent.SanitizeDetails(job.StatusDetails{
		"progress %": "50\n%",
		"empty":      "",
		"step":       "download",
	})
	fmt.Println(d)
	// Output:
	// map[progress__:50 % step:download]
}
