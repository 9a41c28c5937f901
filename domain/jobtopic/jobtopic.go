// Package jobtopic builds and parses the fourteen MQTT topics of AWS IoT
// Jobs for one thing, under $aws/things/{thingName}/jobs/.
//
// Builders validate the thing name and job id (which may be $next only for
// Describe); Parse accepts exactly the fourteen shapes and refuses the rest,
// so a device can check the thing name and kind of every message it receives
// before acting on it.
package jobtopic

import (
	"errors"
	"fmt"
	"strings"

	"github.com/iotjobs/iotjobs/domain/job"
)

// Kind is one of the fourteen topics.
type Kind uint8

// The fourteen topics. Requests are published by the device; their accepted
// and rejected replies and the two notifications by the service.
const (
	GetPending Kind = iota + 1
	GetPendingAccepted
	GetPendingRejected
	StartNext
	StartNextAccepted
	StartNextRejected
	Describe
	DescribeAccepted
	DescribeRejected
	Update
	UpdateAccepted
	UpdateRejected
	Notify
	NotifyNext
)

// Kinds lists the fourteen kinds.
var Kinds = []Kind{
	GetPending, GetPendingAccepted, GetPendingRejected,
	StartNext, StartNextAccepted, StartNextRejected,
	Describe, DescribeAccepted, DescribeRejected,
	Update, UpdateAccepted, UpdateRejected,
	Notify, NotifyNext,
}

// suffixes of the topic after the thing's prefix (and the job id for the
// kinds that have one).
var suffixes = [...]string{
	GetPending: "get", GetPendingAccepted: "get/accepted", GetPendingRejected: "get/rejected",
	StartNext: "start-next", StartNextAccepted: "start-next/accepted", StartNextRejected: "start-next/rejected",
	Describe: "get", DescribeAccepted: "get/accepted", DescribeRejected: "get/rejected",
	Update: "update", UpdateAccepted: "update/accepted", UpdateRejected: "update/rejected",
	Notify: "notify", NotifyNext: "notify-next",
}

var names = [...]string{
	GetPending: "GetPending", GetPendingAccepted: "GetPendingAccepted", GetPendingRejected: "GetPendingRejected",
	StartNext: "StartNext", StartNextAccepted: "StartNextAccepted", StartNextRejected: "StartNextRejected",
	Describe: "Describe", DescribeAccepted: "DescribeAccepted", DescribeRejected: "DescribeRejected",
	Update: "Update", UpdateAccepted: "UpdateAccepted", UpdateRejected: "UpdateRejected",
	Notify: "Notify", NotifyNext: "NotifyNext",
}

// Valid reports whether k is one of the fourteen kinds.
func (k Kind) Valid() bool { return k >= GetPending && k <= NotifyNext }

// String returns the kind's Go name, e.g. "DescribeAccepted".
func (k Kind) String() string {
	if !k.Valid() {
		return fmt.Sprintf("Kind(%d)", uint8(k))
	}
	return names[k]
}

// HasJobID reports whether topics of kind k carry a job id (Describe and
// Update and their replies).
func (k Kind) HasJobID() bool { return k >= Describe && k <= UpdateRejected }

// IsRequest reports whether k is one of the four requests.
func (k Kind) IsRequest() bool {
	return k == GetPending || k == StartNext || k == Describe || k == Update
}

// IsAccepted reports whether k is an accepted reply.
func (k Kind) IsAccepted() bool { return k.Valid() && k < Notify && k%3 == 2 }

// IsRejected reports whether k is a rejected reply.
func (k Kind) IsRejected() bool { return k.Valid() && k < Notify && k%3 == 0 }

// IsNotification reports whether k is notify or notify-next.
func (k Kind) IsNotification() bool { return k == Notify || k == NotifyNext }

// Request returns the request a reply answers, k itself for a request, and 0
// for a notification.
func (k Kind) Request() Kind {
	if !k.Valid() || k.IsNotification() {
		return 0
	}
	return k - (k-1)%3
}

// Accepted returns the accepted reply of request k, or 0.
func (k Kind) Accepted() Kind {
	if !k.IsRequest() {
		return 0
	}
	return k + 1
}

// Rejected returns the rejected reply of request k, or 0.
func (k Kind) Rejected() Kind {
	if !k.IsRequest() {
		return 0
	}
	return k + 2
}

// Topic is a parsed jobs topic.
type Topic struct {
	// Thing is the thing name.
	Thing string
	// Kind says which of the fourteen topics it is.
	Kind Kind
	// JobID is set for the kinds where HasJobID is true; it may be $next
	// for Describe and its replies.
	JobID string
}

// Prefix is the start of every jobs topic, before the thing name.
const Prefix = "$aws/things/"

const jobsLevel = "/jobs/"

// ErrNotJobsTopic is returned by Parse for a topic that is none of the
// fourteen jobs topics.
var ErrNotJobsTopic = errors.New("jobtopic: not a jobs topic")

// New returns the topic of kind k for thing (and jobID where the kind has
// one), after validating them. jobID must be empty for kinds without one.
func New(thing string, k Kind, jobID string) (Topic, error) {
	t := Topic{Thing: thing, Kind: k, JobID: jobID}
	return t, t.Validate()
}

// Validate checks the kind, the thing name and the job id.
func (t Topic) Validate() error {
	if !t.Kind.Valid() {
		return fmt.Errorf("jobtopic: invalid kind %d", uint8(t.Kind))
	}
	if err := job.ValidateThingName(t.Thing); err != nil {
		return err
	}
	switch {
	case !t.Kind.HasJobID():
		if t.JobID != "" {
			return fmt.Errorf("jobtopic: %s takes no job id: %w", t.Kind, &job.ValidationError{Field: "jobId", Reason: "not allowed here"})
		}
		return nil
	case t.Kind.Request() == Describe:
		return job.ValidateDescribeJobID(t.JobID)
	}
	return job.ValidateJobID(t.JobID)
}

// String returns the topic name. It does not validate t.
func (t Topic) String() string {
	var b strings.Builder
	b.Grow(len(Prefix) + len(t.Thing) + len(jobsLevel) + len(t.JobID) + 20)
	b.WriteString(Prefix)
	b.WriteString(t.Thing)
	b.WriteString(jobsLevel)
	if t.Kind.HasJobID() {
		b.WriteString(t.JobID)
		b.WriteByte('/')
	}
	if t.Kind.Valid() {
		b.WriteString(suffixes[t.Kind])
	}
	return b.String()
}

// Filter returns the one MQTT filter that covers every reply and both
// notifications of thing: $aws/things/{thing}/jobs/#.
func Filter(thing string) (string, error) {
	if err := job.ValidateThingName(thing); err != nil {
		return "", err
	}
	return Prefix + thing + "/jobs/#", nil
}

// AllThingsFilter is the filter a service subscribes to in order to receive
// the requests of every thing: $aws/things/+/jobs/#.
const AllThingsFilter = Prefix + "+/jobs/#"

// Parse returns the Topic of name, or an error wrapping ErrNotJobsTopic (or
// a *job.ValidationError for an invalid thing name or job id).
func Parse(name string) (Topic, error) {
	rest, ok := strings.CutPrefix(name, Prefix)
	if !ok {
		return Topic{}, fmt.Errorf("%w: %.80q", ErrNotJobsTopic, name)
	}
	thing, rest, ok := strings.Cut(rest, jobsLevel)
	if !ok {
		return Topic{}, fmt.Errorf("%w: %.80q", ErrNotJobsTopic, name)
	}
	t := Topic{Thing: thing}
	switch rest {
	case "get":
		t.Kind = GetPending
	case "get/accepted":
		t.Kind = GetPendingAccepted
	case "get/rejected":
		t.Kind = GetPendingRejected
	case "start-next":
		t.Kind = StartNext
	case "start-next/accepted":
		t.Kind = StartNextAccepted
	case "start-next/rejected":
		t.Kind = StartNextRejected
	case "notify":
		t.Kind = Notify
	case "notify-next":
		t.Kind = NotifyNext
	default:
		id, op, ok := strings.Cut(rest, "/")
		if !ok {
			return Topic{}, fmt.Errorf("%w: %.80q", ErrNotJobsTopic, name)
		}
		t.JobID = id
		switch op {
		case "get":
			t.Kind = Describe
		case "get/accepted":
			t.Kind = DescribeAccepted
		case "get/rejected":
			t.Kind = DescribeRejected
		case "update":
			t.Kind = Update
		case "update/accepted":
			t.Kind = UpdateAccepted
		case "update/rejected":
			t.Kind = UpdateRejected
		default:
			return Topic{}, fmt.Errorf("%w: %.80q", ErrNotJobsTopic, name)
		}
	}
	if err := t.Validate(); err != nil {
		return Topic{}, err
	}
	return t, nil
}
