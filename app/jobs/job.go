package jobs

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"

	"github.com/iotjobs/iotjobs/domain/job"
)

// Changed reports whether a notification arrived, or the subscription was
// restored after a loss, since the last call; it then clears the flag. It
// is false before the first notification: call List once at start to learn
// the jobs already pending.
func (c *Client) Changed() bool { return c.changed.Swap(false) }

// List reads the pending set and returns a handle for each execution: those
// in progress, then those queued, each oldest first as the service returns
// them. The handles are the client's (see Job): their fields are filled by
// their Describe and Update, not by List.
func (c *Client) List(ctx context.Context) (inProgress, queued []*Job, err error) {
	p, err := c.GetPending(ctx)
	if err != nil {
		return nil, nil, err
	}
	return c.handles(p.InProgressJobs), c.handles(p.QueuedJobs), nil
}

func (c *Client) handles(s []job.Summary) []*Job {
	if len(s) == 0 {
		return nil
	}
	js := make([]*Job, len(s))
	for i := range s {
		js[i] = c.Job(s[i].JobID)
	}
	return js
}

// Job returns the client's handle of the job execution id, making it on
// first use: there is one handle per id per client, so what one Describe
// or Update learns is seen by every holder. The id is validated by the
// handle's requests (job.NextJobID is refused: describe the next job with
// Client.Describe). Handles live as long as the client.
func (c *Client) Job(id string) *Job {
	c.jmu.Lock()
	defer c.jmu.Unlock()
	j, ok := c.jobs[id]
	if !ok {
		j = &Job{c: c, id: id, exec: job.Execution{JobID: id}}
		c.jobs[id] = j
	}
	return j
}

// Job is a handle on one job execution of the client's thing, with what the
// client last learned of it. Its methods are safe for concurrent use.
type Job struct {
	c  *Client
	id string

	mu           sync.Mutex
	versionKnown bool
	exec         job.Execution
}

// ID returns the job id.
func (j *Job) ID() string { return j.id }

// Describe reads the execution and fills Version, Status, Document,
// StatusDetails and Execution. An execution in a terminal state is rejected
// with job.ErrTerminalStateReached, one that does not exist with
// job.ErrResourceNotFound (test with errors.Is); the fields are then left
// as they were.
func (j *Job) Describe(ctx context.Context) error {
	if err := job.ValidateJobID(j.id); err != nil {
		return fmt.Errorf("jobs: describe: %w", err)
	}
	r, err := j.c.Describe(ctx, j.id, job.DescribeRequest{})
	if err != nil {
		return err
	}
	if r.Execution == nil {
		return fmt.Errorf("jobs: describe %s: %w: no execution", j.id, ErrInvalidReply)
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	j.exec = *r.Execution
	if j.exec.JobID == "" {
		j.exec.JobID = j.id
	}
	j.versionKnown = true
	return nil
}

// Update sets the execution's status, and its status details unless
// details is nil. When the handle knows the execution's version (from
// Describe or its previous Update) it sends it as expectedVersion, and it
// always asks for the new execution state so that it learns the new
// version: this avoids the VersionMismatch races of blind versions. On a
// rejection that carries the execution state (VersionMismatch,
// InvalidStateTransition) it records that state, so the caller can look at
// Status and Version and decide whether to update again.
func (j *Job) Update(ctx context.Context, status job.Status, details job.StatusDetails) error {
	if err := job.ValidateJobID(j.id); err != nil {
		return fmt.Errorf("jobs: update: %w", err)
	}
	req := job.UpdateRequest{Status: status, StatusDetails: details, IncludeJobExecutionState: true}
	j.mu.Lock()
	if j.versionKnown {
		v := j.exec.VersionNumber
		req.ExpectedVersion = &v
	}
	j.mu.Unlock()
	r, err := j.c.Update(ctx, j.id, req)
	var rej *job.RejectedError
	switch {
	case err == nil:
		j.mu.Lock()
		defer j.mu.Unlock()
		if s := r.ExecutionState; s != nil {
			j.record(s)
		} else {
			// The reply did not say the new version: forget the old one.
			j.exec.Status = status
			if details != nil {
				j.exec.StatusDetails = maps.Clone(details)
			}
			j.versionKnown = false
		}
	case errors.As(err, &rej) && rej.ExecutionState != nil:
		j.mu.Lock()
		defer j.mu.Unlock()
		j.record(rej.ExecutionState)
	}
	return err
}

// record stores an execution state sent by the service. j.mu is held.
func (j *Job) record(s *job.ExecutionState) {
	if s.Status != "" {
		j.exec.Status = s.Status
	}
	if s.StatusDetails != nil {
		j.exec.StatusDetails = s.StatusDetails
	}
	j.exec.VersionNumber = s.VersionNumber
	j.versionKnown = true
}

// Version returns the execution's version number as last learned, zero if
// none.
func (j *Job) Version() job.Version {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.exec.VersionNumber
}

// Status returns the execution's status as last learned, empty if none.
func (j *Job) Status() job.Status {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.exec.Status
}

// Document returns a copy of the job document as last described, nil if
// none.
func (j *Job) Document() job.Document {
	j.mu.Lock()
	defer j.mu.Unlock()
	return cloneDocument(j.exec.JobDocument)
}

// StatusDetails returns a copy of the status details as last learned.
func (j *Job) StatusDetails() job.StatusDetails {
	j.mu.Lock()
	defer j.mu.Unlock()
	return maps.Clone(j.exec.StatusDetails)
}

// Execution returns a copy of the execution as last learned: from the
// last Describe, updated by later Updates.
func (j *Job) Execution() job.Execution {
	j.mu.Lock()
	defer j.mu.Unlock()
	e := j.exec
	e.JobDocument = cloneDocument(e.JobDocument)
	e.StatusDetails = maps.Clone(e.StatusDetails)
	if e.ApproximateSecondsBeforeTimedOut != nil {
		s := *e.ApproximateSecondsBeforeTimedOut
		e.ApproximateSecondsBeforeTimedOut = &s
	}
	return e
}

func cloneDocument(d job.Document) job.Document {
	if d == nil {
		return nil
	}
	return append(job.Document(nil), d...)
}
