package jobstest

import (
	"encoding/json"
	"maps"
	"slices"
	"time"

	"github.com/iotjobs/iotjobs/domain/job"
	"github.com/iotjobs/iotjobs/domain/jobtopic"
	"github.com/iotjobs/iotjobs/ports"
)

// jobRecord is a job created by CreateJob.
type jobRecord struct {
	doc             job.Document
	progressTimeout time.Duration
}

// execution is one job on one thing, as the service keeps it.
type execution struct {
	thing  string
	jobID  string
	number int64
	seq    uint64    // creation order, the tie-break of queuedAt
	queued time.Time // full precision, for ordering

	status    job.Status
	details   job.StatusDetails
	queuedAt  job.Timestamp
	startedAt job.Timestamp
	updatedAt job.Timestamp
	version   job.Version

	// Timers; zero means not running.
	stepDeadline     time.Time
	progressDeadline time.Time
	watched          bool // in Service.timed
}

// older orders executions oldest first: queuedAt, then creation order.
func older(a, b *execution) int {
	if c := a.queued.Compare(b.queued); c != 0 {
		return c
	}
	switch {
	case a.seq < b.seq:
		return -1
	case a.seq > b.seq:
		return 1
	}
	return 0
}

// deadline returns the earlier running timer of e, or the zero time.
func (e *execution) deadline() time.Time {
	switch {
	case e.stepDeadline.IsZero():
		return e.progressDeadline
	case e.progressDeadline.IsZero() || e.stepDeadline.Before(e.progressDeadline):
		return e.stepDeadline
	}
	return e.progressDeadline
}

// startProgressTimer starts the in-progress timer of e, which has just gone
// IN_PROGRESS, if its job has one.
func (e *execution) startProgressTimer(now time.Time, timeout time.Duration) {
	if timeout > 0 {
		e.progressDeadline = now.Add(timeout)
	}
}

// setStepTimer starts or replaces the step timer; it never outlasts the
// in-progress timer.
func (e *execution) setStepTimer(now time.Time, minutes *int64) {
	if minutes == nil {
		return
	}
	d := now.Add(time.Duration(*minutes) * time.Minute)
	if !e.progressDeadline.IsZero() && e.progressDeadline.Before(d) {
		d = e.progressDeadline
	}
	e.stepDeadline = d
}

// set moves e to status at time ts and raises its version. A terminal
// status stops the timers.
func (e *execution) set(status job.Status, ts job.Timestamp) {
	e.status = status
	e.version++
	e.updatedAt = ts
	if status.Terminal() {
		e.stepDeadline, e.progressDeadline = time.Time{}, time.Time{}
	}
}

func (e *execution) state() *job.ExecutionState {
	return &job.ExecutionState{Status: e.status, StatusDetails: maps.Clone(e.details), VersionNumber: e.version}
}

func (e *execution) summary() job.Summary {
	return job.Summary{
		JobID: e.jobID, QueuedAt: e.queuedAt, StartedAt: e.startedAt, LastUpdatedAt: e.updatedAt,
		VersionNumber: e.version, ExecutionNumber: e.number,
	}
}

// thingState holds the executions of one thing.
type thingState struct {
	byID map[string]*execution
	// live holds the pending executions, and executions that left the
	// pending list since the last call of pending, which drops them: a
	// thing's requests cost what its pending list holds, not its history.
	live []*execution
}

func newThingState() *thingState {
	return &thingState{byID: map[string]*execution{}}
}

// find returns the execution of jobID, or nil.
func (t *thingState) find(jobID string) *execution {
	if t == nil {
		return nil
	}
	return t.byID[jobID]
}

// add records a new execution.
func (t *thingState) add(e *execution) {
	t.byID[e.jobID] = e
	t.live = append(t.live, e)
}

// remove forgets e.
func (t *thingState) remove(e *execution) {
	delete(t.byID, e.jobID)
	t.live = slices.DeleteFunc(t.live, func(x *execution) bool { return x == e })
}

// pending returns the IN_PROGRESS and QUEUED executions, each oldest first.
func (t *thingState) pending() (inProgress, queued []*execution) {
	if t == nil {
		return nil, nil
	}
	t.live = slices.DeleteFunc(t.live, func(e *execution) bool { return !e.status.Pending() })
	for _, e := range t.live {
		if e.status == job.InProgress {
			inProgress = append(inProgress, e)
		} else {
			queued = append(queued, e)
		}
	}
	slices.SortStableFunc(inProgress, older)
	slices.SortStableFunc(queued, older)
	return inProgress, queued
}

// next returns the next execution: the first IN_PROGRESS one, else the
// oldest QUEUED one, else nil.
func (t *thingState) next() *execution {
	ip, q := t.pending()
	switch {
	case len(ip) > 0:
		return ip[0]
	case len(q) > 0:
		return q[0]
	}
	return nil
}

// listed caps the pending lists at job.MaxPendingListed in total,
// IN_PROGRESS first.
func listed(inProgress, queued []*execution) (ip, q []job.Summary) {
	ip, q = []job.Summary{}, []job.Summary{}
	for _, e := range inProgress {
		if len(ip) == job.MaxPendingListed {
			break
		}
		ip = append(ip, e.summary())
	}
	for _, e := range queued {
		if len(ip)+len(q) == job.MaxPendingListed {
			break
		}
		q = append(q, e.summary())
	}
	return ip, q
}

// snapshot is what a thing's notifications depend on.
type snapshot struct {
	pending map[*execution]bool
	next    *execution
}

func (t *thingState) snapshot() snapshot {
	ip, q := t.pending()
	s := snapshot{pending: make(map[*execution]bool, len(ip)+len(q))}
	for _, e := range ip {
		s.pending[e] = true
	}
	for _, e := range q {
		s.pending[e] = true
	}
	s.next = t.next()
	return s
}

// tracker records the snapshots of the things a change touches, so that
// the notifications follow from one rule: compare before and after.
type tracker struct {
	s      *Service
	before map[string]snapshot
	order  []string
}

func (s *Service) newTracker() *tracker {
	return &tracker{s: s} // before is made by the first touch
}

// touch records thing's state before it changes. Call it before changing
// any of the thing's executions.
func (tr *tracker) touch(thing string) {
	if _, ok := tr.before[thing]; ok {
		return
	}
	if tr.before == nil {
		tr.before = make(map[string]snapshot, 1)
	}
	tr.before[thing] = tr.s.things[thing].snapshot()
	tr.order = append(tr.order, thing)
}

// notifications returns notify and notify-next for every touched thing
// whose pending list or next execution changed.
func (tr *tracker) notifications(now time.Time) []ports.Message {
	var out []ports.Message
	ts := job.TimestampOf(now)
	for _, thing := range tr.order {
		before, t := tr.before[thing], tr.s.things[thing]
		after := t.snapshot()
		if !maps.Equal(before.pending, after.pending) {
			ipList, qList := listed(t.pending())
			body := job.JobExecutionsChanged{Jobs: map[job.Status][]job.Summary{}, Timestamp: ts}
			if len(ipList) > 0 {
				body.Jobs[job.InProgress] = ipList
			}
			if len(qList) > 0 {
				body.Jobs[job.Queued] = qList
			}
			out = append(out, message(thing, jobtopic.Notify, "", body))
		}
		if before.next != after.next {
			body := job.NextJobExecutionChanged{Timestamp: ts}
			if after.next != nil {
				body.Execution = tr.s.wire(after.next, true, now)
			}
			out = append(out, message(thing, jobtopic.NotifyNext, "", body))
		}
	}
	return out
}

// wire returns e as the protocol shows it.
func (s *Service) wire(e *execution, includeDoc bool, now time.Time) *job.Execution {
	x := &job.Execution{
		JobID: e.jobID, ThingName: e.thing, Status: e.status, StatusDetails: maps.Clone(e.details),
		QueuedAt: e.queuedAt, StartedAt: e.startedAt, LastUpdatedAt: e.updatedAt,
		VersionNumber: e.version, ExecutionNumber: e.number,
	}
	if includeDoc {
		if j := s.jobs[e.jobID]; j != nil {
			x.JobDocument = slices.Clone(j.doc)
		}
	}
	if d := e.deadline(); e.status == job.InProgress && !d.IsZero() {
		secs := max(0, int64(d.Sub(now)/time.Second)) // 0: expired, not yet applied
		x.ApproximateSecondsBeforeTimedOut = &secs
	}
	return x
}

// message encodes body for the topic of kind k.
func message(thing string, k jobtopic.Kind, jobID string, body any) ports.Message {
	payload, err := json.Marshal(body)
	if err != nil {
		// The bodies are the domain's types with valid contents: encoding
		// cannot fail. Say so on the wire rather than panic.
		payload = []byte(`{"code":"InternalError","message":"jobstest: encode reply"}`)
	}
	topic := jobtopic.Topic{Thing: thing, Kind: k, JobID: jobID}
	return ports.Message{Topic: topic.String(), Payload: payload, QoS: ports.AtLeastOnce}
}

// watch adds e to the executions sweepLocked checks, if a timer of e runs.
func (s *Service) watch(e *execution) {
	if !e.watched && !e.deadline().IsZero() {
		e.watched = true
		s.timed = append(s.timed, e)
	}
}

// sweepLocked moves the executions whose timer expired by now to TIMED_OUT
// and returns the notifications. It looks only at executions with a
// running timer, and forgets those whose timers stopped.
func (s *Service) sweepLocked(now time.Time) []ports.Message {
	if len(s.timed) == 0 {
		return nil // no timer runs: the usual case, without a tracker
	}
	tr := s.newTracker()
	s.timed = slices.DeleteFunc(s.timed, func(e *execution) bool {
		d := e.deadline()
		if e.status != job.InProgress || d.IsZero() {
			e.watched = false
			return true
		}
		if now.Before(d) {
			return false
		}
		tr.touch(e.thing)
		e.set(job.TimedOut, job.TimestampOf(d))
		s.logf("jobstest: %s/%s timed out", e.thing, e.jobID)
		e.watched = false
		return true
	})
	return tr.notifications(now)
}
