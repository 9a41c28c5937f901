package jobstest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/iotjobs/iotjobs/domain/job"
)

// maxInProgressTimeout is AWS's upper bound of inProgressTimeoutInMinutes.
const maxInProgressTimeout = job.MaxStepTimeoutMinutes * time.Minute

// JobSpec describes a job to create.
type JobSpec struct {
	// JobID names the job: 1–64 characters of [a-zA-Z0-9_-].
	JobID string
	// Document is the job document: a JSON object of at most 32 KiB.
	Document json.RawMessage
	// Targets are the things to run the job on; at least one. A name
	// listed twice gets one execution.
	Targets []string
	// InProgressTimeout, if not zero, times an execution out that much
	// after it went IN_PROGRESS. AWS counts it in whole minutes (1 to
	// 10080); the fake takes any positive duration up to 10080 minutes.
	InProgressTimeout time.Duration
}

// Validate checks the spec as CreateJob does.
func (j JobSpec) Validate() error {
	if err := job.ValidateJobID(j.JobID); err != nil {
		return err
	}
	doc := bytes.TrimSpace(j.Document)
	switch {
	case len(j.Document) > job.MaxDocumentSize:
		return &job.ValidationError{Field: "document", Reason: fmt.Sprintf("%d bytes, at most %d", len(j.Document), job.MaxDocumentSize)}
	case len(doc) == 0 || doc[0] != '{' || !json.Valid(doc):
		return &job.ValidationError{Field: "document", Reason: "not a JSON object"}
	case len(j.Targets) == 0:
		return &job.ValidationError{Field: "targets", Reason: "empty"}
	case j.InProgressTimeout < 0 || j.InProgressTimeout > maxInProgressTimeout:
		return &job.ValidationError{Field: "inProgressTimeout", Reason: fmt.Sprintf("%v, want 0 (none) up to %v", j.InProgressTimeout, maxInProgressTimeout)}
	}
	for _, thing := range j.Targets {
		if err := job.ValidateThingName(thing); err != nil {
			return err
		}
	}
	return nil
}

// CreateJob creates a job and queues one execution of it for each target
// thing, QUEUED with version 1 and execution number 1, then publishes the
// notifications (notify to every target; notify-next where the new
// execution became next). It returns an error wrapping a
// *job.ValidationError (and so matching job.ErrInvalidInput) for an invalid
// spec, one wrapping ErrJobExists for a job id used before.
func (s *Service) CreateJob(ctx context.Context, spec JobSpec) error {
	if err := spec.Validate(); err != nil {
		return fmt.Errorf("jobstest: create job: %w", err)
	}
	doc := job.Document(slices.Clone(bytes.TrimSpace(spec.Document)))
	return s.control(ctx, func(now time.Time, tr *tracker) error {
		if _, ok := s.jobs[spec.JobID]; ok {
			return fmt.Errorf("jobstest: create job %s: %w", spec.JobID, ErrJobExists)
		}
		s.jobs[spec.JobID] = &jobRecord{doc: doc, progressTimeout: spec.InProgressTimeout}
		ts := job.TimestampOf(now)
		for _, thing := range spec.Targets {
			if s.things[thing].find(spec.JobID) != nil {
				continue // listed twice
			}
			tr.touch(thing)
			s.seq++
			e := &execution{
				thing: thing, jobID: spec.JobID, number: 1, seq: s.seq, queued: now,
				status: job.Queued, queuedAt: ts, updatedAt: ts, version: 1,
			}
			t := s.things[thing]
			if t == nil {
				t = newThingState()
				s.things[thing] = t
			}
			t.add(e)
			s.order = append(s.order, e)
		}
		s.logf("jobstest: created job %s for %d thing(s)", spec.JobID, len(spec.Targets))
		return nil
	})
}

// CancelJob cancels a job: its QUEUED executions become CANCELED, and its
// IN_PROGRESS ones too if force is set (else they may run to their end).
// Terminal executions stay as they are. It returns an error wrapping
// ErrNotFound for an unknown job.
func (s *Service) CancelJob(ctx context.Context, jobID string, force bool) error {
	return s.control(ctx, func(now time.Time, tr *tracker) error {
		if _, ok := s.jobs[jobID]; !ok {
			return fmt.Errorf("jobstest: cancel job %s: %w", jobID, ErrNotFound)
		}
		for _, e := range s.order {
			if e.jobID == jobID && (e.status == job.Queued || force && e.status == job.InProgress) {
				tr.touch(e.thing)
				e.set(job.Canceled, job.TimestampOf(now))
			}
		}
		s.logf("jobstest: canceled job %s (force %t)", jobID, force)
		return nil
	})
}

// execChange applies to the execution of jobID on thing the change of a
// control call named op.
func (s *Service) execChange(ctx context.Context, op, thing, jobID string, change func(e *execution, now time.Time, tr *tracker) error) error {
	return s.control(ctx, func(now time.Time, tr *tracker) error {
		e := s.things[thing].find(jobID)
		if e == nil {
			return fmt.Errorf("jobstest: %s %s on %s: %w", op, jobID, thing, ErrNotFound)
		}
		if err := change(e, now, tr); err != nil {
			return fmt.Errorf("jobstest: %s %s on %s: %w", op, jobID, thing, err)
		}
		s.logf("jobstest: %s %s on %s", op, jobID, thing)
		return nil
	})
}

// CancelExecution cancels the execution of jobID on thing: QUEUED becomes
// CANCELED, and IN_PROGRESS too if force is set. It returns an error
// wrapping ErrNotFound for an unknown execution, ErrInvalidState for a
// terminal one or an IN_PROGRESS one without force.
func (s *Service) CancelExecution(ctx context.Context, thing, jobID string, force bool) error {
	return s.execChange(ctx, "cancel execution", thing, jobID, func(e *execution, now time.Time, tr *tracker) error {
		if e.status.Terminal() || e.status == job.InProgress && !force {
			return fmt.Errorf("%w: %s (force %t)", ErrInvalidState, e.status, force)
		}
		tr.touch(thing)
		e.set(job.Canceled, job.TimestampOf(now))
		return nil
	})
}

// RemoveExecution marks the execution of jobID on thing REMOVED, as when the
// thing leaves the job's target group. It returns an error wrapping
// ErrNotFound for an unknown execution, ErrInvalidState for a terminal one.
func (s *Service) RemoveExecution(ctx context.Context, thing, jobID string) error {
	return s.execChange(ctx, "remove execution", thing, jobID, func(e *execution, now time.Time, tr *tracker) error {
		if e.status.Terminal() {
			return fmt.Errorf("%w: %s", ErrInvalidState, e.status)
		}
		tr.touch(thing)
		e.set(job.Removed, job.TimestampOf(now))
		return nil
	})
}

// DeleteExecution deletes the execution of jobID on thing, whatever its
// status (as AWS's DeleteJobExecution with force): later requests about it
// are rejected with ResourceNotFound. It returns an error wrapping
// ErrNotFound for an unknown execution.
func (s *Service) DeleteExecution(ctx context.Context, thing, jobID string) error {
	return s.execChange(ctx, "delete execution", thing, jobID, func(e *execution, _ time.Time, tr *tracker) error {
		tr.touch(thing)
		s.things[thing].remove(e)
		s.order = slices.DeleteFunc(s.order, func(x *execution) bool { return x == e })
		return nil
	})
}
