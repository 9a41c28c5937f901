// Package jobs is the AWS IoT Jobs client of one thing, over any transport
// that implements ports.PubSub.
//
// A Client offers the four requests of the Jobs MQTT API (GetPending,
// StartNext, Describe, including Describe of job.NextJobID, and Update), the
// two notification streams (notify and notify-next) as Events, and the
// simple surface of the embedded library it ports: Changed, List and Job
// handles with Describe and Update.
//
//	c, err := jobs.New(ctx, transport, jobs.Options{Thing: "sensor-1", OnEvent: onEvent})
//	if err != nil { ... }
//	defer c.Close()
//	next, err := c.Describe(ctx, job.NextJobID, job.DescribeRequest{})
//
// # Requests
//
// Every request validates its input before anything is sent: an invalid
// thing name, job id or request field yields an error matching
// job.ErrInvalidInput and publishes nothing. A request without a client
// token gets a fresh one (reply.NewToken); a reply completes the request only
// if it arrives on that request's reply topic (kind and job id) and carries
// its token. Unknown, late and duplicate replies are dropped. A rejected
// reply is returned as an error wrapping a *job.RejectedError, so
// errors.Is(err, job.ErrVersionMismatch) and errors.As work.
//
// # Deadlines
//
// A request waits until its reply arrives or its context ends. When the
// context has no deadline, Options.Timeout (DefaultTimeout when zero) is
// applied, so no request waits forever for a reply that was lost. A request
// that times out or is canceled returns an error wrapping the context's
// error and leaves nothing behind. A request in flight when the subscription
// is lost keeps waiting until its deadline: the reply may still come.
//
// # Concurrency
//
// A Client and its Job handles are safe for concurrent use; any number of
// requests may be in flight. The transport calls the client's subscription
// handler on its own goroutine; the client does only minimal work there
// (parse, check, decode, hand over) and never blocks it. Events are queued
// without bound, in arrival order, and passed to Options.OnEvent from one
// goroutine owned by the client: one call at a time, never after Close
// returns. OnEvent may make requests on the client, but must not call Close.
//
// # Reconnects and duplicates
//
// QoS 1 may deliver a message twice: a notification whose payload equals the
// previous one of its stream is dropped. When the transport reports that the
// subscription was lost, the client emits EventLost; when it is restored,
// notifications may have been missed, so the client sets the Changed flag
// and, if OnEvent is set, re-reads the pending set and emits EventResynced.
package jobs
