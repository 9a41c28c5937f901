package job

import (
	"errors"
	"fmt"
	"unicode"
	"unicode/utf8"
)

// Limits of identifiers and fields, from AWS IoT's API reference.
const (
	MaxThingNameLength         = 128
	MaxJobIDLength             = 64
	MaxClientTokenLength       = 64
	MaxStatusDetailKeyLength   = 128
	MaxStatusDetailValueLength = 1024
	MinStepTimeoutMinutes      = 1
	MaxStepTimeoutMinutes      = 10080
	// MaxDocumentSize is the largest job document, 32 KiB.
	MaxDocumentSize = 32 * 1024
	// MaxPendingListed is how many executions a pending list or notify
	// carries at most (15 with scheduling).
	MaxPendingListed = 10
)

// NextJobID is the job id that Describe accepts for "the next pending
// execution". It is valid nowhere else.
const NextJobID = "$next"

// ErrInvalidInput matches every *ValidationError: input refused before
// anything is sent.
var ErrInvalidInput = errors.New("job: invalid input")

// ValidationError reports an invalid field. errors.Is(err, ErrInvalidInput)
// is true for it.
type ValidationError struct {
	// Field names what is invalid, e.g. "thingName" or "statusDetails[key]".
	Field string
	// Reason says why.
	Reason string
}

func (e *ValidationError) Error() string {
	return fmt.Sprintf("job: invalid %s: %s", e.Field, e.Reason)
}

// Is reports whether target is ErrInvalidInput.
func (e *ValidationError) Is(target error) bool { return target == ErrInvalidInput }

func invalid(field, format string, args ...any) error {
	return &ValidationError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// idChar reports whether c may appear in a job id; colon is also allowed in
// thing names and status detail keys.
func idChar(c byte, colon bool) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '_' || c == '-' || colon && c == ':'
}

func checkID(field, s string, max int, colon bool) error {
	if s == "" {
		return invalid(field, "empty")
	}
	for i := 0; i < len(s); i++ {
		if !idChar(s[i], colon) {
			return invalid(field, "%.40q: character %s not allowed", s, charAt(s, i))
		}
	}
	// Only ASCII is left: bytes are characters.
	if len(s) > max {
		return invalid(field, "%d characters, at most %d", len(s), max)
	}
	return nil
}

// charAt quotes the character that starts at s[i], or names the byte there
// when it does not start valid UTF-8.
func charAt(s string, i int) string {
	r, size := utf8.DecodeRuneInString(s[i:])
	if r == utf8.RuneError && size <= 1 {
		return fmt.Sprintf("byte %#02x", s[i])
	}
	return fmt.Sprintf("%q", r)
}

// ValidateThingName checks a thing name: 1–128 characters of [a-zA-Z0-9:_-].
func ValidateThingName(name string) error {
	return checkID("thingName", name, MaxThingNameLength, true)
}

// ValidateJobID checks a job id: 1–64 characters of [a-zA-Z0-9_-]. It
// refuses "$next"; see ValidateDescribeJobID.
func ValidateJobID(id string) error {
	return checkID("jobId", id, MaxJobIDLength, false)
}

// ValidateDescribeJobID checks the job id of a Describe: a job id or
// "$next".
func ValidateDescribeJobID(id string) error {
	if id == NextJobID {
		return nil
	}
	return ValidateJobID(id)
}

// ValidateClientToken checks a client token: at most 64 bytes of UTF-8
// without control characters. Empty means none.
func ValidateClientToken(token string) error {
	if len(token) > MaxClientTokenLength {
		return invalid("clientToken", "%d bytes, at most %d", len(token), MaxClientTokenLength)
	}
	if err := checkText(token); err != "" {
		return invalid("clientToken", "%s", err)
	}
	return nil
}

// checkText returns why s is not printable UTF-8 text, or "".
func checkText(s string) string {
	for i, r := range s {
		if r == utf8.RuneError {
			if _, size := utf8.DecodeRuneInString(s[i:]); size == 1 {
				return "not UTF-8"
			}
		}
		if unicode.In(r, unicode.C) {
			return fmt.Sprintf("control or format character %U", r)
		}
	}
	return ""
}

// Validate checks the rules AWS applies: keys of 1–128 characters of
// [a-zA-Z0-9:_-], values of 1–1024 characters without control or format
// characters. A nil or empty map is valid.
func (d StatusDetails) Validate() error {
	for k, v := range d {
		if err := checkID("statusDetails key", k, MaxStatusDetailKeyLength, true); err != nil {
			return err
		}
		switch n := utf8.RuneCountInString(v); {
		case n == 0:
			return invalid(detailField(k), "empty value")
		case n > MaxStatusDetailValueLength:
			return invalid(detailField(k), "%d characters, at most %d", n, MaxStatusDetailValueLength)
		}
		if err := checkText(v); err != "" {
			return invalid(detailField(k), "%s", err)
		}
	}
	return nil
}

// detailField names the value of key k in a ValidationError.
func detailField(k string) string { return "statusDetails[" + k + "]" }

// ValidateStepTimeout checks a step timeout in minutes: nil (none) or
// 1–10080.
func ValidateStepTimeout(minutes *int64) error {
	if minutes != nil && (*minutes < MinStepTimeoutMinutes || *minutes > MaxStepTimeoutMinutes) {
		return invalid("stepTimeoutInMinutes", "%d, want %d to %d", *minutes, MinStepTimeoutMinutes, MaxStepTimeoutMinutes)
	}
	return nil
}

// Validate checks the request's client token.
func (r *GetPendingRequest) Validate() error { return ValidateClientToken(r.ClientToken) }

// Validate checks the request's fields.
func (r *StartNextRequest) Validate() error {
	return errors.Join(r.StatusDetails.Validate(), ValidateStepTimeout(r.StepTimeoutInMinutes),
		ValidateClientToken(r.ClientToken))
}

// Validate checks the request's fields.
func (r *DescribeRequest) Validate() error {
	if r.ExecutionNumber != nil && *r.ExecutionNumber < 1 {
		return invalid("executionNumber", "%d, want 1 or more", *r.ExecutionNumber)
	}
	return ValidateClientToken(r.ClientToken)
}

// Validate checks the request's fields: a status a device may set, valid
// details, step timeout, version, execution number and client token.
func (r *UpdateRequest) Validate() error {
	if !r.Status.DeviceSettable() {
		return invalid("status", "%.40q: a device may set only IN_PROGRESS, SUCCEEDED, FAILED or REJECTED", r.Status)
	}
	if r.ExpectedVersion != nil && *r.ExpectedVersion < 0 {
		return invalid("expectedVersion", "%d is negative", *r.ExpectedVersion)
	}
	if r.ExecutionNumber != nil && *r.ExecutionNumber < 1 {
		return invalid("executionNumber", "%d, want 1 or more", *r.ExecutionNumber)
	}
	return errors.Join(r.StatusDetails.Validate(), ValidateStepTimeout(r.StepTimeoutInMinutes),
		ValidateClientToken(r.ClientToken))
}
