package jobs

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/iotjobs/iotjobs/domain/job"
	"github.com/iotjobs/iotjobs/domain/jobtopic"
	"github.com/iotjobs/iotjobs/domain/reply"
	"github.com/iotjobs/iotjobs/ports"
)

// GetPending asks for the thing's pending job executions: those in
// progress and those queued, oldest first.
func (c *Client) GetPending(ctx context.Context) (*job.GetPendingResponse, error) {
	req := job.GetPendingRequest{ClientToken: reply.NewToken()}
	return roundTrip[job.GetPendingResponse](ctx, c, jobtopic.GetPending, "", req.ClientToken, &req)
}

// StartNext starts the next pending job execution: it returns the one in
// progress if there is one, else moves the oldest queued one to
// IN_PROGRESS with req's status details and step timeout. The response's
// Execution is nil when nothing is pending. An empty req.ClientToken is
// replaced by a fresh token.
func (c *Client) StartNext(ctx context.Context, req job.StartNextRequest) (*job.StartNextResponse, error) {
	if err := req.Validate(); err != nil {
		return nil, fmt.Errorf("jobs: start next: %w", err)
	}
	if req.ClientToken == "" {
		req.ClientToken = reply.NewToken()
	}
	return roundTrip[job.StartNextResponse](ctx, c, jobtopic.StartNext, "", req.ClientToken, &req)
}

// Describe asks for the job execution jobID, which may be job.NextJobID for
// the next pending one (the response's Execution is then nil when nothing
// is pending). An empty req.ClientToken is replaced by a fresh token. A
// terminal execution is rejected with job.ErrTerminalStateReached, an
// unknown one with job.ErrResourceNotFound.
func (c *Client) Describe(ctx context.Context, jobID string, req job.DescribeRequest) (*job.DescribeResponse, error) {
	if err := job.ValidateDescribeJobID(jobID); err != nil {
		return nil, fmt.Errorf("jobs: describe: %w", err)
	}
	if err := req.Validate(); err != nil {
		return nil, fmt.Errorf("jobs: describe %s: %w", jobID, err)
	}
	if req.ClientToken == "" {
		req.ClientToken = reply.NewToken()
	}
	return roundTrip[job.DescribeResponse](ctx, c, jobtopic.Describe, jobID, req.ClientToken, &req)
}

// Update updates the job execution jobID (not job.NextJobID) with req: a
// status a device may set, and optionally status details, the expected
// version, a step timeout and what the reply should include. An empty
// req.ClientToken is replaced by a fresh token. A stale ExpectedVersion is
// rejected with job.ErrVersionMismatch, an update of a terminal execution
// with job.ErrInvalidStateTransition; errors.As gives the
// *job.RejectedError and its ExecutionState.
func (c *Client) Update(ctx context.Context, jobID string, req job.UpdateRequest) (*job.UpdateResponse, error) {
	if err := job.ValidateJobID(jobID); err != nil {
		return nil, fmt.Errorf("jobs: update: %w", err)
	}
	if err := req.Validate(); err != nil {
		return nil, fmt.Errorf("jobs: update %s: %w", jobID, err)
	}
	if req.ClientToken == "" {
		req.ClientToken = reply.NewToken()
	}
	return roundTrip[job.UpdateResponse](ctx, c, jobtopic.Update, jobID, req.ClientToken, &req)
}

// roundTrip publishes body as a request of kind for jobID and waits for its
// reply, decoded into a Resp.
func roundTrip[Resp any](ctx context.Context, c *Client, kind jobtopic.Kind, jobID, token string, body any) (*Resp, error) {
	var out Resp
	if err := c.call(ctx, kind, jobID, token, body, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// call sends one request and waits for its reply. The inputs are valid.
func (c *Client) call(ctx context.Context, kind jobtopic.Kind, jobID, token string, body, out any) error {
	if c.closing.Err() != nil {
		return opError(kind, jobID, ErrClosed)
	}
	payload, err := marshalRequest(body)
	if err != nil {
		return opError(kind, jobID, err) // not reached: the bodies always marshal
	}
	// Register before publishing, so that a fast reply finds its entry.
	w, ok := c.table.Register(key{kind: kind, jobID: jobID, token: token})
	if !ok {
		return opError(kind, jobID, fmt.Errorf("%w: %q", ErrTokenInFlight, token))
	}
	rctx, cancel := c.requestContext(ctx)
	defer cancel()
	m := ports.Message{Topic: c.requestTopic(kind, jobID), Payload: payload, QoS: c.qos}
	if err := c.ps.Publish(rctx, m); err != nil {
		w.Cancel()
		return opError(kind, jobID, c.closedOr(ctx, rctx, err))
	}
	r, err := w.Wait(rctx)
	if err != nil {
		return opError(kind, jobID, c.closedOr(ctx, rctx, err))
	}
	if r.rejected {
		rej, err := job.DecodeRejected(r.payload)
		if err != nil {
			return opError(kind, jobID, fmt.Errorf("%w: %w", ErrInvalidReply, err))
		}
		return opError(kind, jobID, rej)
	}
	if err := json.Unmarshal(r.payload, out); err != nil {
		return opError(kind, jobID, fmt.Errorf("%w: %w", ErrInvalidReply, err))
	}
	return nil
}

// requestContext returns ctx with the client's timeout when it has none,
// canceled when the client is closed: one context, not one per concern.
func (c *Client) requestContext(ctx context.Context) (context.Context, context.CancelFunc) {
	var cancel context.CancelFunc
	if _, ok := ctx.Deadline(); ok {
		ctx, cancel = context.WithCancel(ctx)
	} else {
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
	}
	stop := context.AfterFunc(c.closing, cancel)
	return ctx, func() {
		stop()
		cancel()
	}
}

// closedOr returns ErrClosed if rctx, derived from the caller's ctx by
// requestContext, was canceled by Close; else err. rctx ended by Close when
// it was canceled (not timed out) while ctx had not ended and the client
// is closing.
func (c *Client) closedOr(ctx, rctx context.Context, err error) error {
	if rctx.Err() == context.Canceled && ctx.Err() == nil && c.closing.Err() != nil {
		return ErrClosed
	}
	return err
}

func (c *Client) requestTopic(kind jobtopic.Kind, jobID string) string {
	switch kind {
	case jobtopic.GetPending:
		return c.getPendingTopic
	case jobtopic.StartNext:
		return c.startNextTopic
	}
	return jobtopic.Topic{Thing: c.thing, Kind: kind, JobID: jobID}.String()
}

// opError prefixes err with the package and the operation, e.g.
// "jobs: update j1: job: rejected: VersionMismatch: ...".
func opError(kind jobtopic.Kind, jobID string, err error) error {
	switch kind {
	case jobtopic.GetPending:
		return fmt.Errorf("jobs: get pending: %w", err)
	case jobtopic.StartNext:
		return fmt.Errorf("jobs: start next: %w", err)
	case jobtopic.Describe:
		return fmt.Errorf("jobs: describe %s: %w", jobID, err)
	}
	return fmt.Errorf("jobs: update %s: %w", jobID, err)
}
