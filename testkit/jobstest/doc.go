// Package jobstest is a fake AWS IoT Jobs service for tests, modelled on
// net/http/httptest: the device side talks to it over a real transport (any
// ports.PubSub, usually the in-memory broker adapters/membroker), with the
// real topics and JSON bodies of the MQTT protocol, while a control plane in
// Go creates, cancels and deletes jobs, injects faults and moves a clock.
//
// A test typically connects two clients to one in-memory broker, starts the
// service on one and hands the other to the code under test:
//
//	broker := membroker.New(membroker.Options{})
//	defer broker.Close()
//	conn, _ := broker.Connect("jobs-service")
//	defer conn.Close()
//	svc := jobstest.New(jobstest.Options{Clock: jobstest.NewFakeClock(t0), Logf: t.Logf})
//	if err := svc.Start(ctx, conn); err != nil { ... }
//	defer svc.Close()
//	svc.CreateJob(ctx, jobstest.JobSpec{JobID: "update-1", Document: doc, Targets: []string{"thing-1"}})
//	device, _ := broker.Connect("thing-1")
//	// ... run the device code on device; broker.Quiesce(ctx) waits until
//	// every request was answered and every notification delivered ...
//	x, _ := svc.Execution("thing-1", "update-1") // assert on the final state
//	svc.Requests()                               // or on what the device sent
//
// # Behaviour
//
// The service follows the reference in the repository's spec
// (aws-iot-jobs-mqtt.md). It subscribes to $aws/things/+/jobs/# (QoS 1,
// NoLocal) and answers GetPendingJobExecutions, StartNextPendingJobExecution,
// DescribeJobExecution (including $next) and UpdateJobExecution on the
// request's .../accepted or .../rejected topic, echoing the clientToken and
// stamping every reply with the Clock's time in seconds. It publishes notify
// whenever an execution joins or leaves a thing's pending list, and
// notify-next whenever the identity of the thing's next execution changes,
// each computed by comparing the state before and after a change; they follow
// the reply to the request that caused them. Everything is published with
// QoS 1, in the order the state changed.
//
// Choices where the spec is silent:
//
//   - A message on a jobs topic that is no request and no reply or
//     notification (an unknown suffix, an invalid thing name or job id, $next
//     outside Describe) is answered with InvalidTopic on the message's own
//     topic followed by "/rejected". Messages on reply and notification
//     topics (any topic whose last level is accepted, rejected, notify or
//     notify-next) are ignored, whoever sent them, so two services never
//     answer each other.
//   - A body must be UTF-8 JSON (else InvalidJson; an empty body is not
//     JSON) holding an object whose fields have the right types and pass the
//     domain's validation (else InvalidRequest). The clientToken is echoed
//     whenever it can be read, even from a rejected body.
//   - An update of a terminal execution is rejected with
//     InvalidStateTransition before expectedVersion is compared.
//   - StartNext that finds an execution already IN_PROGRESS returns it
//     unchanged: no new version, statusDetails and timers kept.
//   - Every change of an execution, by the device or by the service
//     (cancel, removal, time-out), raises its versionNumber by one.
//   - Each job has one execution per thing, with executionNumber 1.
//   - Injected faults are consumed by requests on valid request topics,
//     before their bodies are decoded.
//
// # Time
//
// Timestamps and the step and in-progress timers follow Options.Clock. With
// a FakeClock, nothing times out by itself: expired timers are applied
// lazily before each request and control call, or by CheckTimeouts. With the
// real clock (Options.Clock nil) the service also checks the timers every
// second while it runs.
//
// # Concurrency
//
// A Service is safe for concurrent use. Its state sits behind one mutex;
// replies and notifications are computed under it and published afterwards,
// in order, without the mutex held (so a transport may deliver
// synchronously). Requests are served in the order the transport delivers
// them, and the reply and notifications of a request are published before
// the transport's handler returns (or, if a control call is publishing at
// the time, before that call returns): a broker that waits for its
// handlers, as membroker's Quiesce does, has delivered them when it is
// quiet. Control
// calls return after the notifications they caused were published; if their
// context ends first they return its error, but the change stands and its
// notifications are published by a goroutine of the service. (So a
// control call made from a message handler of a transport that delivers
// synchronously may wait for a publication that waits for that handler;
// with such a transport, make control calls from another goroutine.)
//
// Control calls take the thing before the job id, as the topics do:
// $aws/things/{thing}/jobs/{jobId}.
package jobstest
