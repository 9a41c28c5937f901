package job

import (
	"encoding/json"
	"fmt"
)

// ErrorCode is the code of a rejected reply. It is also an error, so that
// errors.Is(err, ErrVersionMismatch) matches a *RejectedError with that code.
type ErrorCode string

// The nine codes of rejected replies.
const (
	CodeInvalidTopic           ErrorCode = "InvalidTopic"
	CodeInvalidJSON            ErrorCode = "InvalidJson"
	CodeInvalidRequest         ErrorCode = "InvalidRequest"
	CodeInvalidStateTransition ErrorCode = "InvalidStateTransition"
	CodeResourceNotFound       ErrorCode = "ResourceNotFound"
	CodeVersionMismatch        ErrorCode = "VersionMismatch"
	CodeInternalError          ErrorCode = "InternalError"
	CodeRequestThrottled       ErrorCode = "RequestThrottled"
	CodeTerminalStateReached   ErrorCode = "TerminalStateReached"
)

// Errors to match a *RejectedError with errors.Is, one per code.
var (
	// ErrInvalidTopic: the request's topic maps to no API.
	ErrInvalidTopic error = CodeInvalidTopic
	// ErrInvalidJSON: the body is not UTF-8 JSON.
	ErrInvalidJSON error = CodeInvalidJSON
	// ErrInvalidRequest: the body's contents are invalid.
	ErrInvalidRequest error = CodeInvalidRequest
	// ErrInvalidStateTransition: the update is not allowed from the current
	// status (e.g. the execution is terminal).
	ErrInvalidStateTransition error = CodeInvalidStateTransition
	// ErrResourceNotFound: no such job execution.
	ErrResourceNotFound error = CodeResourceNotFound
	// ErrVersionMismatch: expectedVersion differs from the current version.
	ErrVersionMismatch error = CodeVersionMismatch
	// ErrInternalError: a service fault; retry with backoff.
	ErrInternalError error = CodeInternalError
	// ErrRequestThrottled: rate limited; retry with backoff.
	ErrRequestThrottled error = CodeRequestThrottled
	// ErrTerminalStateReached: describe of an execution in a terminal state.
	ErrTerminalStateReached error = CodeTerminalStateReached
)

// Codes lists the nine codes.
var Codes = []ErrorCode{
	CodeInvalidTopic, CodeInvalidJSON, CodeInvalidRequest, CodeInvalidStateTransition,
	CodeResourceNotFound, CodeVersionMismatch, CodeInternalError, CodeRequestThrottled,
	CodeTerminalStateReached,
}

// Error returns "job: rejected: " and the code.
func (c ErrorCode) Error() string { return "job: rejected: " + string(c) }

// Retryable reports whether a request rejected with c may be sent again
// unchanged after a backoff: InternalError and RequestThrottled.
func (c ErrorCode) Retryable() bool {
	return c == CodeInternalError || c == CodeRequestThrottled
}

// RejectedError is a rejected reply: the body of a .../rejected message.
// errors.Is(err, ErrX) matches on Code; errors.As gives the execution state
// sent with VersionMismatch and InvalidStateTransition.
type RejectedError struct {
	Code        ErrorCode `json:"code"`
	Message     string    `json:"message,omitempty"`
	ClientToken string    `json:"clientToken,omitempty"`
	Timestamp   Timestamp `json:"timestamp,omitempty"`
	// ExecutionState is set only with VersionMismatch and
	// InvalidStateTransition.
	ExecutionState *ExecutionState `json:"executionState,omitempty"`
}

// Error returns the code and the message.
func (e *RejectedError) Error() string {
	// string(e.Code): ErrorCode is an error, so %s alone would print its
	// Error() and repeat the prefix.
	if e.Message == "" {
		return "job: rejected: " + string(e.Code)
	}
	return "job: rejected: " + string(e.Code) + ": " + e.Message
}

// Is reports whether target is the ErrorCode of e.
func (e *RejectedError) Is(target error) bool {
	c, ok := target.(ErrorCode)
	return ok && c == e.Code
}

// Retryable reports whether the request may be retried after a backoff.
func (e *RejectedError) Retryable() bool { return e.Code.Retryable() }

// DecodeRejected decodes the body of a rejected reply. A body without a code
// is an error: a reply that cannot be understood must not pass for success.
func DecodeRejected(body []byte) (*RejectedError, error) {
	var e RejectedError
	if err := json.Unmarshal(body, &e); err != nil {
		return nil, fmt.Errorf("job: decode rejected reply: %w", err)
	}
	if e.Code == "" {
		return nil, fmt.Errorf("job: decode rejected reply: no code")
	}
	return &e, nil
}
