package job_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/iotjobs/iotjobs/domain/job"
)

var allCodes = []struct {
	code      job.ErrorCode
	err       error
	wire      string
	retryable bool
}{
	{job.CodeInvalidTopic, job.ErrInvalidTopic, "InvalidTopic", false},
	{job.CodeInvalidJSON, job.ErrInvalidJSON, "InvalidJson", false},
	{job.CodeInvalidRequest, job.ErrInvalidRequest, "InvalidRequest", false},
	{job.CodeInvalidStateTransition, job.ErrInvalidStateTransition, "InvalidStateTransition", false},
	{job.CodeResourceNotFound, job.ErrResourceNotFound, "ResourceNotFound", false},
	{job.CodeVersionMismatch, job.ErrVersionMismatch, "VersionMismatch", false},
	{job.CodeInternalError, job.ErrInternalError, "InternalError", true},
	{job.CodeRequestThrottled, job.ErrRequestThrottled, "RequestThrottled", true},
	{job.CodeTerminalStateReached, job.ErrTerminalStateReached, "TerminalStateReached", false},
}

func TestErrorCodes(t *testing.T) {
	if len(job.Codes) != len(allCodes) {
		t.Fatalf("len(Codes) = %d, want %d", len(job.Codes), len(allCodes))
	}
	for i, tt := range allCodes {
		t.Run(tt.wire, func(t *testing.T) {
			if job.Codes[i] != tt.code {
				t.Errorf("Codes[%d] = %q, want %q", i, job.Codes[i], tt.code)
			}
			if string(tt.code) != tt.wire {
				t.Errorf("code = %q, want wire form %q", tt.code, tt.wire)
			}
			if got, want := tt.code.Error(), "job: rejected: "+tt.wire; got != want {
				t.Errorf("Error() = %q, want %q", got, want)
			}
			if got := tt.code.Retryable(); got != tt.retryable {
				t.Errorf("Retryable() = %v, want %v", got, tt.retryable)
			}
			if tt.err != error(tt.code) {
				t.Errorf("Err var = %v, want the code %v", tt.err, tt.code)
			}
		})
	}
	if job.ErrorCode("Unknown").Retryable() {
		t.Error(`ErrorCode("Unknown").Retryable() = true, want false`)
	}
}

func TestRejectedErrorIs(t *testing.T) {
	for _, tt := range allCodes {
		t.Run(tt.wire, func(t *testing.T) {
			var err error = &job.RejectedError{Code: tt.code, Message: "m"}
			wrapped := fmt.Errorf("update j1: %w", err)
			for _, other := range allCodes {
				want := other.code == tt.code
				if got := errors.Is(err, other.err); got != want {
					t.Errorf("errors.Is(%s, %s) = %v, want %v", tt.code, other.code, got, want)
				}
				if got := errors.Is(wrapped, other.err); got != want {
					t.Errorf("errors.Is(wrapped %s, %s) = %v, want %v", tt.code, other.code, got, want)
				}
			}
			if errors.Is(err, job.ErrInvalidInput) {
				t.Error("errors.Is(rejected, ErrInvalidInput) = true, want false")
			}
			if errors.Is(err, errors.New(tt.wire)) {
				t.Error("errors.Is(rejected, unrelated error) = true, want false")
			}
			if got := err.(*job.RejectedError).Retryable(); got != tt.retryable {
				t.Errorf("Retryable() = %v, want %v", got, tt.retryable)
			}
		})
	}
}

func TestRejectedErrorMessage(t *testing.T) {
	tests := []struct {
		err  *job.RejectedError
		want string
	}{
		{&job.RejectedError{Code: job.CodeVersionMismatch}, "job: rejected: VersionMismatch"},
		{&job.RejectedError{Code: job.CodeInvalidRequest, Message: "bad details"}, "job: rejected: InvalidRequest: bad details"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := tt.err.Error(); got != tt.want {
				t.Errorf("Error() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestDecodeRejected(t *testing.T) {
	t.Run("VersionMismatch with state", func(t *testing.T) {
		body := `{"code":"VersionMismatch","message":"version mismatch","clientToken":"tok-1","timestamp":1489096425,
			"executionState":{"status":"IN_PROGRESS","statusDetails":{"step":"2"},"versionNumber":3}}`
		re, err := job.DecodeRejected([]byte(body))
		if err != nil {
			t.Fatalf("DecodeRejected: %v", err)
		}
		want := job.RejectedError{Code: job.CodeVersionMismatch, Message: "version mismatch", ClientToken: "tok-1", Timestamp: 1489096425}
		if re.Code != want.Code || re.Message != want.Message || re.ClientToken != want.ClientToken || re.Timestamp != want.Timestamp {
			t.Errorf("got %+v, want %+v", *re, want)
		}
		var err2 error = fmt.Errorf("update: %w", re)
		if !errors.Is(err2, job.ErrVersionMismatch) {
			t.Errorf("errors.Is(err, ErrVersionMismatch) = false, want true")
		}
		var rej *job.RejectedError
		if !errors.As(err2, &rej) {
			t.Fatalf("errors.As(*RejectedError) = false, want true")
		}
		st := rej.ExecutionState
		if st == nil {
			t.Fatal("ExecutionState = nil, want set")
		}
		if st.Status != job.InProgress || st.VersionNumber != 3 || st.StatusDetails["step"] != "2" {
			t.Errorf("ExecutionState = %+v, want IN_PROGRESS v3 step=2", *st)
		}
	})
	t.Run("InvalidStateTransition", func(t *testing.T) {
		re, err := job.DecodeRejected([]byte(`{"code":"InvalidStateTransition","executionState":{"status":"SUCCEEDED","versionNumber":"4"}}`))
		if err != nil {
			t.Fatalf("DecodeRejected: %v", err)
		}
		if !errors.Is(re, job.ErrInvalidStateTransition) || re.ExecutionState == nil ||
			re.ExecutionState.Status != job.Succeeded || re.ExecutionState.VersionNumber != 4 {
			t.Errorf("got %+v, want InvalidStateTransition with SUCCEEDED v4", re)
		}
	})
	t.Run("without state", func(t *testing.T) {
		re, err := job.DecodeRejected([]byte(`{"code":"ResourceNotFound","message":"no such job","clientToken":"x"}`))
		if err != nil {
			t.Fatalf("DecodeRejected: %v", err)
		}
		if re.ExecutionState != nil {
			t.Errorf("ExecutionState = %+v, want nil", re.ExecutionState)
		}
		if !errors.Is(re, job.ErrResourceNotFound) {
			t.Errorf("errors.Is(ResourceNotFound) = false, want true")
		}
	})
	t.Run("unknown code kept", func(t *testing.T) {
		re, err := job.DecodeRejected([]byte(`{"code":"SomethingNew"}`))
		if err != nil {
			t.Fatalf("DecodeRejected: %v", err)
		}
		if re.Code != "SomethingNew" || re.Retryable() {
			t.Errorf("got %+v, want code SomethingNew, not retryable", re)
		}
		for _, c := range allCodes {
			if errors.Is(re, c.err) {
				t.Errorf("errors.Is(SomethingNew, %s) = true, want false", c.code)
			}
		}
	})
	bad := []struct{ name, body, want string }{
		{"missing code", `{"message":"x"}`, "no code"},
		{"empty code", `{"code":""}`, "no code"},
		{"null", `null`, "no code"},
		{"empty object", `{}`, "no code"},
		{"bad JSON", `{"code":`, "decode rejected reply"},
		{"not JSON", `rejected`, "decode rejected reply"},
		{"empty body", ``, "decode rejected reply"},
		{"code not string", `{"code":5}`, "decode rejected reply"},
		{"bad timestamp", `{"code":"InternalError","timestamp":"soon"}`, "timestamp"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			re, err := job.DecodeRejected([]byte(tt.body))
			if err == nil {
				t.Fatalf("DecodeRejected(%q) = %+v, nil; want error", tt.body, re)
			}
			if re != nil {
				t.Errorf("DecodeRejected(%q) returned %+v with the error, want nil", tt.body, re)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %q, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestValidationErrorIs(t *testing.T) {
	var err error = &job.ValidationError{Field: "jobId", Reason: "empty"}
	if got, want := err.Error(), "job: invalid jobId: empty"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if !errors.Is(err, job.ErrInvalidInput) {
		t.Error("errors.Is(ValidationError, ErrInvalidInput) = false, want true")
	}
	if errors.Is(err, job.ErrInvalidRequest) {
		t.Error("errors.Is(ValidationError, ErrInvalidRequest) = true, want false")
	}
}
