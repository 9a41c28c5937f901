package job

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// Timestamp is a time as AWS IoT Jobs sends it: a number of seconds since
// the Unix epoch. Decoding keeps whatever number arrives (some AWS examples
// show milliseconds) and accepts a quoted number; Time interprets it.
type Timestamp int64

// UnmarshalJSON accepts a JSON number (a fraction is dropped), a quoted
// number, or null (zero).
func (t *Timestamp) UnmarshalJSON(b []byte) error {
	n, err := decodeNumber(b, "timestamp")
	*t = Timestamp(n)
	return err
}

// Time returns t as a time. Values too large to be seconds (after year
// 5000) are read as milliseconds. Zero is the zero time.
func (t Timestamp) Time() time.Time {
	switch {
	case t == 0:
		return time.Time{}
	case t > 1e11:
		return time.UnixMilli(int64(t))
	}
	return time.Unix(int64(t), 0)
}

// TimestampOf returns the Timestamp of tm, in seconds.
func TimestampOf(tm time.Time) Timestamp { return Timestamp(tm.Unix()) }

// Version is an execution's version number, the optimistic-concurrency token
// of updates. It is encoded as a number and decoded from a number or a
// quoted number (as some documents and the embedded C library send it).
type Version int64

// UnmarshalJSON accepts a JSON number, a quoted number, or null (zero).
func (v *Version) UnmarshalJSON(b []byte) error {
	n, err := decodeNumber(b, "version")
	*v = Version(n)
	return err
}

func decodeNumber(b []byte, what string) (int64, error) {
	b = bytes.TrimSpace(b)
	if string(b) == "null" {
		return 0, nil
	}
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return 0, fmt.Errorf("job: %s: %w", what, err)
		}
		b = []byte(s)
		if !isJSONNumber(b) {
			return 0, fmt.Errorf("job: %s: not a number: %.40q", what, b)
		}
	}
	if n, err := strconv.ParseInt(string(b), 10, 64); err == nil {
		return n, nil
	}
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil || f != f || f > 9.2e18 || f < -9.2e18 {
		return 0, fmt.Errorf("job: %s: not a number: %.40q", what, b)
	}
	return int64(f), nil
}

// isJSONNumber reports whether b is a JSON number (as opposed to forms that
// strconv also accepts: "+1", ".5", "1_000", "0x1p4", "Inf", "NaN").
func isJSONNumber(b []byte) bool {
	return len(b) > 0 && (b[0] == '-' || '0' <= b[0] && b[0] <= '9') && json.Valid(b)
}

// Document is a job document: raw JSON, normally an object. AWS sends it as
// an object over MQTT although its documentation says string; a string that
// holds a JSON object is unwrapped when decoding.
type Document json.RawMessage

// MarshalJSON returns the raw JSON, or null when d is empty.
func (d Document) MarshalJSON() ([]byte, error) {
	if len(d) == 0 {
		return []byte("null"), nil
	}
	return d, nil
}

// UnmarshalJSON keeps a copy of b; a JSON string whose content is a JSON
// object is replaced by that object. null gives an empty Document.
func (d *Document) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case string(b) == "null":
		*d = nil
		return nil
	case len(b) > 0 && b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return fmt.Errorf("job: document: %w", err)
		}
		if inner := bytes.TrimSpace([]byte(s)); len(inner) > 0 && inner[0] == '{' && json.Valid(inner) {
			b = inner
		}
	}
	*d = append(Document(nil), b...)
	return nil
}

// Decode unmarshals the document into v.
func (d Document) Decode(v any) error {
	if len(d) == 0 {
		return fmt.Errorf("job: document is empty")
	}
	if err := json.Unmarshal(d, v); err != nil {
		return fmt.Errorf("job: decode document: %w", err)
	}
	return nil
}

// StatusDetails are the string pairs a device attaches to a status. See
// Validate for AWS's rules.
type StatusDetails map[string]string

// Execution is a job execution: one job on one thing.
type Execution struct {
	JobID string `json:"jobId"`
	// ThingName is often absent from the service's messages.
	ThingName     string        `json:"thingName,omitempty"`
	JobDocument   Document      `json:"jobDocument,omitempty"`
	Status        Status        `json:"status,omitempty"`
	StatusDetails StatusDetails `json:"statusDetails,omitempty"`
	QueuedAt      Timestamp     `json:"queuedAt,omitempty"`
	// StartedAt is absent while the execution is QUEUED.
	StartedAt       Timestamp `json:"startedAt,omitempty"`
	LastUpdatedAt   Timestamp `json:"lastUpdatedAt,omitempty"`
	VersionNumber   Version   `json:"versionNumber,omitempty"`
	ExecutionNumber int64     `json:"executionNumber,omitempty"`
	// ApproximateSecondsBeforeTimedOut is sometimes sent for an execution
	// with a running timer.
	ApproximateSecondsBeforeTimedOut *int64 `json:"approximateSecondsBeforeTimedOut,omitempty"`
}

// Summary is an execution in a pending list: no status (the list gives it)
// and no document.
type Summary struct {
	JobID           string    `json:"jobId"`
	QueuedAt        Timestamp `json:"queuedAt,omitempty"`
	StartedAt       Timestamp `json:"startedAt,omitempty"`
	LastUpdatedAt   Timestamp `json:"lastUpdatedAt,omitempty"`
	VersionNumber   Version   `json:"versionNumber,omitempty"`
	ExecutionNumber int64     `json:"executionNumber,omitempty"`
}

// ExecutionState is the state of an execution sent with an update reply or
// a rejection.
type ExecutionState struct {
	Status        Status        `json:"status,omitempty"`
	StatusDetails StatusDetails `json:"statusDetails,omitempty"`
	VersionNumber Version       `json:"versionNumber,omitempty"`
}

// GetPendingRequest is the body of a GetPendingJobExecutions request.
type GetPendingRequest struct {
	ClientToken string `json:"clientToken,omitempty"`
}

// GetPendingResponse is the accepted reply to GetPendingRequest.
type GetPendingResponse struct {
	InProgressJobs []Summary `json:"inProgressJobs"`
	QueuedJobs     []Summary `json:"queuedJobs"`
	Timestamp      Timestamp `json:"timestamp,omitempty"`
	ClientToken    string    `json:"clientToken,omitempty"`
}

// StartNextRequest is the body of a StartNextPendingJobExecution request.
type StartNextRequest struct {
	StatusDetails        StatusDetails `json:"statusDetails,omitempty"`
	StepTimeoutInMinutes *int64        `json:"stepTimeoutInMinutes,omitempty"`
	ClientToken          string        `json:"clientToken,omitempty"`
}

// StartNextResponse is the accepted reply to StartNextRequest. Execution is
// nil when nothing is pending.
type StartNextResponse struct {
	Execution   *Execution `json:"execution,omitempty"`
	Timestamp   Timestamp  `json:"timestamp,omitempty"`
	ClientToken string     `json:"clientToken,omitempty"`
}

// DescribeRequest is the body of a DescribeJobExecution request.
type DescribeRequest struct {
	// ExecutionNumber selects an execution; nil means the latest.
	ExecutionNumber *int64 `json:"executionNumber,omitempty"`
	// IncludeJobDocument defaults to true when nil.
	IncludeJobDocument *bool  `json:"includeJobDocument,omitempty"`
	ClientToken        string `json:"clientToken,omitempty"`
}

// DescribeResponse is the accepted reply to DescribeRequest. Execution is nil
// for $next when nothing is pending.
type DescribeResponse struct {
	Execution   *Execution `json:"execution,omitempty"`
	Timestamp   Timestamp  `json:"timestamp,omitempty"`
	ClientToken string     `json:"clientToken,omitempty"`
}

// UpdateRequest is the body of an UpdateJobExecution request.
type UpdateRequest struct {
	Status Status `json:"status"`
	// StatusDetails nil leaves the details unchanged.
	StatusDetails StatusDetails `json:"statusDetails,omitempty"`
	// ExpectedVersion, when set, makes the update fail with VersionMismatch
	// unless it equals the execution's current version.
	ExpectedVersion          *Version `json:"expectedVersion,omitempty"`
	ExecutionNumber          *int64   `json:"executionNumber,omitempty"`
	IncludeJobExecutionState bool     `json:"includeJobExecutionState,omitempty"`
	IncludeJobDocument       bool     `json:"includeJobDocument,omitempty"`
	StepTimeoutInMinutes     *int64   `json:"stepTimeoutInMinutes,omitempty"`
	ClientToken              string   `json:"clientToken,omitempty"`
}

// UpdateResponse is the accepted reply to UpdateRequest.
type UpdateResponse struct {
	// ExecutionState is set when the request asked for it.
	ExecutionState *ExecutionState `json:"executionState,omitempty"`
	// JobDocument is set when the request asked for it.
	JobDocument Document  `json:"jobDocument,omitempty"`
	Timestamp   Timestamp `json:"timestamp,omitempty"`
	ClientToken string    `json:"clientToken,omitempty"`
}

// JobExecutionsChanged is the body of a notify message: the pending list
// changed. Jobs maps IN_PROGRESS and QUEUED to their summaries and is empty
// when nothing is pending.
type JobExecutionsChanged struct {
	Jobs      map[Status][]Summary `json:"jobs"`
	Timestamp Timestamp            `json:"timestamp,omitempty"`
}

// NextJobExecutionChanged is the body of a notify-next message: the next
// execution changed. Execution is nil when nothing is pending.
type NextJobExecutionChanged struct {
	Execution *Execution `json:"execution,omitempty"`
	Timestamp Timestamp  `json:"timestamp,omitempty"`
}
