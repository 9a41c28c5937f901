package jobstest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"time"

	"github.com/iotjobs/iotjobs/adapters/membroker"
	"github.com/iotjobs/iotjobs/domain/job"
	"github.com/iotjobs/iotjobs/ports"
	"github.com/iotjobs/iotjobs/testkit/jobstest"
)

// start runs a broker with the fake service attached and connects a
// device. stop closes everything.
func start(ctx context.Context, thing string) (svc *jobstest.Service, dev *membroker.Client, stop func()) {
	broker := membroker.New(membroker.Options{})
	conn, err := broker.Connect("jobs-service")
	if err != nil {
		log.Fatal(err)
	}
	clock := jobstest.NewFakeClock(time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC))
	svc = jobstest.New(jobstest.Options{Clock: clock})
	if err := svc.Start(ctx, conn); err != nil {
		log.Fatal(err)
	}
	dev, err = broker.Connect(thing)
	if err != nil {
		log.Fatal(err)
	}
	return svc, dev, func() {
		dev.Close()
		svc.Close()
		conn.Close()
		broker.Close()
	}
}

// request publishes body on topic and returns the reply (the device must
// subscribe to the reply topics before it sends).
func request(ctx context.Context, dev *membroker.Client, topic, body string) ports.Message {
	replies := make(chan ports.Message, 1)
	sub, err := dev.Subscribe(ctx, ports.Filter{Topic: topic + "/+", QoS: ports.AtLeastOnce},
		ports.HandlerFuncs{Message: func(m ports.Message) { replies <- m }})
	if err != nil {
		log.Fatal(err)
	}
	defer sub.Unsubscribe(ctx)
	if err := dev.Publish(ctx, ports.Message{Topic: topic, Payload: []byte(body), QoS: ports.AtLeastOnce}); err != nil {
		log.Fatal(err)
	}
	return <-replies
}

// A test creates a job, lets the device (here: raw MQTT requests) take it,
// and checks what the service saw.
func Example() {
	ctx := context.Background()
	svc, dev, stop := start(ctx, "thermostat-1")
	defer stop()

	err := svc.CreateJob(ctx, jobstest.JobSpec{
		JobID:    "firmware-2",
		Document: json.RawMessage(`{"url":"https://example.com/fw-2.bin"}`),
		Targets:  []string{"thermostat-1"},
	})
	if err != nil {
		log.Fatal(err)
	}

	reply := request(ctx, dev, "$aws/things/thermostat-1/jobs/start-next", `{"clientToken":"tok-1"}`)
	var resp job.StartNextResponse
	if err := json.Unmarshal(reply.Payload, &resp); err != nil {
		log.Fatal(err)
	}
	fmt.Println(reply.Topic)
	fmt.Println(resp.ClientToken, resp.Execution.JobID, resp.Execution.Status, string(resp.Execution.JobDocument))

	x, _ := svc.Execution("thermostat-1", "firmware-2")
	fmt.Println(x.Status, "version", x.VersionNumber)
	// Output:
	// $aws/things/thermostat-1/jobs/start-next/accepted
	// tok-1 firmware-2 IN_PROGRESS {"url":"https://example.com/fw-2.bin"}
	// IN_PROGRESS version 2
}

// Faults are injected for the next requests, whichever thing sends them.
func ExampleService_InjectError() {
	ctx := context.Background()
	svc, dev, stop := start(ctx, "thermostat-1")
	defer stop()

	svc.InjectError(job.CodeRequestThrottled, 1)
	for _, token := range []string{"a", "b"} {
		reply := request(ctx, dev, "$aws/things/thermostat-1/jobs/get", `{"clientToken":"`+token+`"}`)
		fmt.Println(reply.Topic, string(reply.Payload))
	}
	// Output:
	// $aws/things/thermostat-1/jobs/get/rejected {"code":"RequestThrottled","message":"injected fault","clientToken":"a","timestamp":1740830400}
	// $aws/things/thermostat-1/jobs/get/accepted {"inProgressJobs":[],"queuedJobs":[],"timestamp":1740830400,"clientToken":"b"}
}
