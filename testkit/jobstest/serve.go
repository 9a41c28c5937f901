package jobstest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/iotjobs/iotjobs/domain/job"
	"github.com/iotjobs/iotjobs/domain/jobtopic"
	"github.com/iotjobs/iotjobs/ports"
)

// serveLocked serves one message: it returns the reply and the
// notifications to publish, in order, or nothing for a message that is not
// a request. It never panics, whatever the message.
func (s *Service) serveLocked(m ports.Message) []ports.Message {
	t, err := jobtopic.Parse(m.Topic)
	switch {
	case err == nil && !t.Kind.IsRequest():
		return nil // a reply or notification: not for a service
	case err != nil && !answerable(m.Topic):
		return nil
	}
	now := s.clock.Now()
	out := s.sweepLocked(now)
	token := tokenOf(m.Payload)
	req := Request{
		Time: now, Topic: m.Topic, Thing: t.Thing, Kind: t.Kind, JobID: t.JobID,
		// The handler owns m.Payload (ports.Handler) and the service never
		// modifies it: the log keeps it without a copy.
		ClientToken: token, Body: m.Payload,
	}

	var (
		reply ports.Message
		rej   *job.RejectedError
		notes []ports.Message // caused by the request: after the reply
	)
	if err != nil {
		rej = reject(job.CodeInvalidTopic, fmt.Sprintf("no API for this topic: %v", err))
		reply.Topic = m.Topic + "/rejected"
	} else {
		tr := s.newTracker()
		var body any
		if len(s.faults) > 0 {
			rej = reject(s.faults[0], "injected fault")
			s.faults = s.faults[1:]
		} else {
			body, rej = s.dispatch(t, m.Payload, now, tr)
		}
		if rej == nil {
			req.Reply = t.Kind.Accepted()
			reply = message(t.Thing, req.Reply, t.JobID, body)
		} else {
			req.Reply = t.Kind.Rejected()
			reply.Topic = jobtopic.Topic{Thing: t.Thing, Kind: req.Reply, JobID: t.JobID}.String()
		}
		notes = tr.notifications(now)
	}
	if rej != nil {
		rej.ClientToken, rej.Timestamp = token, job.TimestampOf(now)
		payload, _ := json.Marshal(rej) // strings, numbers and a map of strings: cannot fail
		reply.Payload, reply.QoS = payload, ports.AtLeastOnce
		req.Code = rej.Code
	}
	req.ReplyTopic = reply.Topic
	s.requests.add(req)
	if rej != nil {
		s.logf("jobstest: %s: rejected %s: %s", m.Topic, string(rej.Code), rej.Message)
	} else {
		s.logf("jobstest: %s: accepted", m.Topic)
	}
	out = append(out, reply)
	return append(out, notes...)
}

// answerable reports whether a message on topic, which is none of the
// fourteen jobs topics, deserves an InvalidTopic reply: it must be under a
// thing's jobs topics and must not look like a reply or notification
// (whose answer could be answered in turn, forever).
func answerable(topic string) bool {
	rest, ok := strings.CutPrefix(topic, jobtopic.Prefix)
	if !ok {
		return false
	}
	_, rest, ok = strings.Cut(rest, "/")
	if !ok || (rest != "jobs" && !strings.HasPrefix(rest, "jobs/")) {
		return false
	}
	last := topic[strings.LastIndexByte(topic, '/')+1:]
	switch last {
	case "accepted", "rejected", "notify", "notify-next":
		return false
	}
	return true
}

func reject(code job.ErrorCode, msg string) *job.RejectedError {
	return &job.RejectedError{Code: code, Message: msg}
}

// tokenOf returns the clientToken of body, if body is a UTF-8 JSON object
// with a string clientToken; else "".
func tokenOf(body []byte) string {
	if !utf8.Valid(body) {
		return ""
	}
	if json.Valid(body) {
		if tok, ok := job.ScanClientToken(body); ok {
			return tok
		}
	}
	var v struct {
		ClientToken json.RawMessage `json:"clientToken"`
	}
	if json.Unmarshal(body, &v) != nil {
		return ""
	}
	var tok string
	if json.Unmarshal(v.ClientToken, &tok) != nil {
		return ""
	}
	return tok
}

// decode decodes and validates a request body into v.
func decode(body []byte, v interface{ Validate() error }) *job.RejectedError {
	if !utf8.Valid(body) {
		return reject(job.CodeInvalidJSON, "body is not UTF-8 JSON")
	}
	// Unmarshal checks the whole body is valid JSON before it decodes
	// anything: a syntax error means invalid JSON, as json.Valid would say.
	err := json.Unmarshal(body, v)
	var syntax *json.SyntaxError
	switch {
	case errors.As(err, &syntax):
		return reject(job.CodeInvalidJSON, "body is not UTF-8 JSON")
	case bytes.TrimSpace(body)[0] != '{':
		return reject(job.CodeInvalidRequest, "body is not a JSON object")
	case err != nil:
		return reject(job.CodeInvalidRequest, err.Error())
	}
	if err := v.Validate(); err != nil {
		return reject(job.CodeInvalidRequest, err.Error())
	}
	return nil
}

// dispatch serves a request on a valid request topic. It returns the
// accepted body, or the rejection.
func (s *Service) dispatch(t jobtopic.Topic, body []byte, now time.Time, tr *tracker) (any, *job.RejectedError) {
	switch t.Kind {
	case jobtopic.GetPending:
		var r job.GetPendingRequest
		if rej := decode(body, &r); rej != nil {
			return nil, rej
		}
		return s.getPending(t.Thing, &r, now), nil
	case jobtopic.StartNext:
		var r job.StartNextRequest
		if rej := decode(body, &r); rej != nil {
			return nil, rej
		}
		return s.startNext(t.Thing, &r, now, tr), nil
	case jobtopic.Describe:
		var r job.DescribeRequest
		if rej := decode(body, &r); rej != nil {
			return nil, rej
		}
		return s.describe(t.Thing, t.JobID, &r, now)
	default: // jobtopic.Update: the only request left
		var r job.UpdateRequest
		if rej := decode(body, &r); rej != nil {
			return nil, rej
		}
		return s.update(t.Thing, t.JobID, &r, now, tr)
	}
}

func (s *Service) getPending(thing string, r *job.GetPendingRequest, now time.Time) *job.GetPendingResponse {
	ip, q := listed(s.things[thing].pending())
	return &job.GetPendingResponse{
		InProgressJobs: ip, QueuedJobs: q, Timestamp: job.TimestampOf(now), ClientToken: r.ClientToken,
	}
}

func (s *Service) startNext(thing string, r *job.StartNextRequest, now time.Time, tr *tracker) *job.StartNextResponse {
	resp := &job.StartNextResponse{Timestamp: job.TimestampOf(now), ClientToken: r.ClientToken}
	ip, q := s.things[thing].pending()
	switch {
	case len(ip) > 0:
		// Already started: returned as it is.
		resp.Execution = s.wire(ip[0], true, now)
	case len(q) > 0:
		e := q[0]
		tr.touch(thing)
		s.start(e, now)
		if r.StatusDetails != nil {
			e.details = maps.Clone(r.StatusDetails)
		}
		e.setStepTimer(now, r.StepTimeoutInMinutes)
		s.watch(e)
		resp.Execution = s.wire(e, true, now)
	}
	return resp
}

// start moves the QUEUED execution e to IN_PROGRESS and starts its
// in-progress timer.
func (s *Service) start(e *execution, now time.Time) {
	ts := job.TimestampOf(now)
	e.set(job.InProgress, ts)
	e.startedAt = ts
	if j := s.jobs[e.jobID]; j != nil {
		e.startProgressTimer(now, j.progressTimeout)
		s.watch(e)
	}
}

// lookup returns the execution of jobID on thing, if it has the asked
// execution number.
func (s *Service) lookup(thing, jobID string, number *int64) *execution {
	e := s.things[thing].find(jobID)
	if e == nil || number != nil && *number != e.number {
		return nil
	}
	return e
}

func notFound(thing, jobID string) *job.RejectedError {
	return reject(job.CodeResourceNotFound, fmt.Sprintf("no execution of job %s on thing %s", jobID, thing))
}

func (s *Service) describe(thing, jobID string, r *job.DescribeRequest, now time.Time) (any, *job.RejectedError) {
	resp := &job.DescribeResponse{Timestamp: job.TimestampOf(now), ClientToken: r.ClientToken}
	includeDoc := r.IncludeJobDocument == nil || *r.IncludeJobDocument
	if jobID == job.NextJobID {
		if e := s.things[thing].next(); e != nil {
			resp.Execution = s.wire(e, includeDoc, now)
		}
		return resp, nil
	}
	e := s.lookup(thing, jobID, r.ExecutionNumber)
	switch {
	case e == nil:
		return nil, notFound(thing, jobID)
	case e.status.Terminal():
		return nil, reject(job.CodeTerminalStateReached, fmt.Sprintf("job %s on thing %s is %s", jobID, thing, e.status))
	}
	resp.Execution = s.wire(e, includeDoc, now)
	return resp, nil
}

func (s *Service) update(thing, jobID string, r *job.UpdateRequest, now time.Time, tr *tracker) (any, *job.RejectedError) {
	e := s.lookup(thing, jobID, r.ExecutionNumber)
	if e == nil {
		return nil, notFound(thing, jobID)
	}
	if !e.status.CanBecome(r.Status) {
		rej := reject(job.CodeInvalidStateTransition, fmt.Sprintf("%s cannot become %s", e.status, r.Status))
		rej.ExecutionState = e.state()
		return nil, rej
	}
	if r.ExpectedVersion != nil && *r.ExpectedVersion != e.version {
		rej := reject(job.CodeVersionMismatch, fmt.Sprintf("expected version %d, current version %d", *r.ExpectedVersion, e.version))
		rej.ExecutionState = e.state()
		return nil, rej
	}
	tr.touch(thing)
	if e.status == job.Queued && r.Status == job.InProgress {
		s.start(e, now)
	} else {
		e.set(r.Status, job.TimestampOf(now))
	}
	if r.StatusDetails != nil {
		e.details = maps.Clone(r.StatusDetails)
	}
	if r.Status == job.InProgress {
		e.setStepTimer(now, r.StepTimeoutInMinutes)
		s.watch(e)
	}
	resp := &job.UpdateResponse{Timestamp: job.TimestampOf(now), ClientToken: r.ClientToken}
	if r.IncludeJobExecutionState {
		resp.ExecutionState = e.state()
	}
	if r.IncludeJobDocument {
		if j := s.jobs[jobID]; j != nil {
			resp.JobDocument = slices.Clone(j.doc)
		}
	}
	return resp, nil
}
