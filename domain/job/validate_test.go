package job_test

import (
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/iotjobs/iotjobs/domain/job"
)

// checkInvalid fails unless err is a validation error naming field (when
// field is not empty) whose message contains reason.
func checkInvalid(t *testing.T, err error, field, reason string) {
	t.Helper()
	if err == nil {
		t.Fatalf("error = nil, want invalid %s (%s)", field, reason)
	}
	if !errors.Is(err, job.ErrInvalidInput) {
		t.Errorf("errors.Is(%v, ErrInvalidInput) = false, want true", err)
	}
	var ve *job.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("errors.As(%v, *ValidationError) = false, want true", err)
	}
	if field != "" && ve.Field != field {
		t.Errorf("Field = %q, want %q (error %v)", ve.Field, field, err)
	}
	if !strings.Contains(err.Error(), reason) {
		t.Errorf("error = %q, want it to contain %q", err, reason)
	}
}

type idCase struct {
	name, id string
	ok       bool
	reason   string
}

// idCases are common to thing names and job ids; colon differs.
func idCases(max int) []idCase {
	cs := []idCase{
		{"one char", "a", true, ""},
		{"all classes", "azAZ09_-", true, ""},
		{"at limit", strings.Repeat("a", max), true, ""},
		{"over limit", strings.Repeat("a", max+1), false, "characters, at most"},
		{"far over limit", strings.Repeat("a", 10*max), false, "characters, at most"},
		{"empty", "", false, "empty"},
		{"space", "a b", false, "not allowed"},
		{"slash", "a/b", false, "'/' not allowed"},
		{"plus wildcard", "a+b", false, "'+' not allowed"},
		{"hash wildcard", "#", false, "'#' not allowed"},
		{"dollar", "$aws", false, "'$' not allowed"},
		{"$next", "$next", false, "'$' not allowed"},
		{"dot", "a.b", false, "'.' not allowed"},
		{"at", "a@b", false, "'@' not allowed"},
		{"NUL", "a\x00b", false, "not allowed"},
		{"newline", "a\nb", false, "not allowed"},
		{"DEL", "a\x7fb", false, "not allowed"},
		{"non-ASCII", "caf\u00e9", false, "'é' not allowed"},
		{"invalid UTF-8", "a\xffb", false, "byte 0xff not allowed"},
		// A long non-ASCII name reports the character, not a byte count.
		{"long non-ASCII", strings.Repeat("é", max), false, "'é' not allowed"},
	}
	return cs
}

func TestValidateThingName(t *testing.T) {
	cases := append(idCases(job.MaxThingNameLength),
		idCase{"colon", "arn:thing:1", true, ""},
		idCase{"128", strings.Repeat("x", 128), true, ""},
		idCase{"129", strings.Repeat("x", 129), false, "129 characters, at most 128"},
	)
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			err := job.ValidateThingName(tt.id)
			if tt.ok {
				if err != nil {
					t.Fatalf("ValidateThingName(%.40q) = %v, want nil", tt.id, err)
				}
				return
			}
			checkInvalid(t, err, "thingName", tt.reason)
		})
	}
}

func TestValidateJobID(t *testing.T) {
	cases := append(idCases(job.MaxJobIDLength),
		idCase{"colon", "a:b", false, "':' not allowed"},
		idCase{"64", strings.Repeat("x", 64), true, ""},
		idCase{"65", strings.Repeat("x", 65), false, "65 characters, at most 64"},
	)
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			err := job.ValidateJobID(tt.id)
			if tt.ok {
				if err != nil {
					t.Fatalf("ValidateJobID(%.40q) = %v, want nil", tt.id, err)
				}
			} else {
				checkInvalid(t, err, "jobId", tt.reason)
			}
			// Describe accepts the same ids, and $next.
			err = job.ValidateDescribeJobID(tt.id)
			if tt.ok || tt.id == job.NextJobID {
				if err != nil {
					t.Fatalf("ValidateDescribeJobID(%.40q) = %v, want nil", tt.id, err)
				}
			} else {
				checkInvalid(t, err, "jobId", tt.reason)
			}
		})
	}
	for _, id := range []string{"$NEXT", "$next ", " $next", "$next/x", "$"} {
		if err := job.ValidateDescribeJobID(id); err == nil {
			t.Errorf("ValidateDescribeJobID(%q) = nil, want an error", id)
		}
	}
}

func TestValidateClientToken(t *testing.T) {
	tests := []struct {
		name, token string
		ok          bool
		reason      string
	}{
		{"empty means none", "", true, ""},
		{"typical", "c8a0e7c2-2b1c-4b8b-9f7a-0d4c5e6f7a8b", true, ""},
		{"64 bytes", strings.Repeat("t", 64), true, ""},
		{"65 bytes", strings.Repeat("t", 65), false, "65 bytes, at most 64"},
		{"multi-byte within 64 bytes", strings.Repeat("é", 32), true, ""},
		{"multi-byte over 64 bytes", strings.Repeat("é", 33), false, "66 bytes, at most 64"},
		{"punctuation", "a b/c+#$%&:;", true, ""},
		{"U+FFFD itself", "a\uFFFDb", true, ""},
		{"NUL", "a\x00", false, "control or format character U+0000"},
		{"tab", "a\tb", false, "U+0009"},
		{"newline", "a\n", false, "U+000A"},
		{"DEL", "a\x7f", false, "U+007F"},
		{"C1", "a\u0085", false, "U+0085"},
		{"zero width space", "a\u200bb", false, "U+200B"},
		{"right-to-left override", "a\u202eb", false, "U+202E"},
		{"invalid UTF-8", "a\xffb", false, "not UTF-8"},
		{"truncated UTF-8", "a\xc3", false, "not UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := job.ValidateClientToken(tt.token)
			if tt.ok {
				if err != nil {
					t.Fatalf("ValidateClientToken(%q) = %v, want nil", tt.token, err)
				}
				return
			}
			checkInvalid(t, err, "clientToken", tt.reason)
		})
	}
}

func TestStatusDetailsValidate(t *testing.T) {
	long := func(s string, n int) string { return strings.Repeat(s, n) }
	tests := []struct {
		name   string
		d      job.StatusDetails
		ok     bool
		field  string
		reason string
	}{
		{"nil", nil, true, "", ""},
		{"empty", job.StatusDetails{}, true, "", ""},
		{"typical", job.StatusDetails{"progress": "50%", "step:name": "download image", "a-b_C9": "x"}, true, "", ""},
		{"key 128", job.StatusDetails{long("k", 128): "v"}, true, "", ""},
		{"key 129", job.StatusDetails{long("k", 129): "v"}, false, "statusDetails key", "129 characters, at most 128"},
		{"empty key", job.StatusDetails{"": "v"}, false, "statusDetails key", "empty"},
		{"key with space", job.StatusDetails{"a b": "v"}, false, "statusDetails key", "' ' not allowed"},
		{"key with dot", job.StatusDetails{"a.b": "v"}, false, "statusDetails key", "'.' not allowed"},
		{"key with slash", job.StatusDetails{"a/b": "v"}, false, "statusDetails key", "'/' not allowed"},
		{"key non-ASCII", job.StatusDetails{"ключ": "v"}, false, "statusDetails key", "'к' not allowed"},
		{"key invalid UTF-8", job.StatusDetails{"\xff": "v"}, false, "statusDetails key", "byte 0xff"},
		{"empty value", job.StatusDetails{"k": ""}, false, "statusDetails[k]", "empty value"},
		{"value 1024 ASCII", job.StatusDetails{"k": long("v", 1024)}, true, "", ""},
		{"value 1025 ASCII", job.StatusDetails{"k": long("v", 1025)}, false, "statusDetails[k]", "1025 characters, at most 1024"},
		{"value 1024 two-byte runes", job.StatusDetails{"k": long("é", 1024)}, true, "", ""},
		{"value 1025 two-byte runes", job.StatusDetails{"k": long("é", 1025)}, false, "statusDetails[k]", "1025 characters"},
		{"value 1024 four-byte runes", job.StatusDetails{"k": long("😀", 1024)}, true, "", ""},
		{"value 1025 four-byte runes", job.StatusDetails{"k": long("😀", 1025)}, false, "statusDetails[k]", "1025 characters"},
		{"value with spaces and symbols", job.StatusDetails{"k": `a "quoted" {json} <html> & 100%`}, true, "", ""},
		{"value newline", job.StatusDetails{"k": "a\nb"}, false, "statusDetails[k]", "U+000A"},
		{"value tab", job.StatusDetails{"k": "a\tb"}, false, "statusDetails[k]", "U+0009"},
		{"value NUL", job.StatusDetails{"k": "\x00"}, false, "statusDetails[k]", "U+0000"},
		{"value zero width space", job.StatusDetails{"k": "a\u200bb"}, false, "statusDetails[k]", "U+200B"},
		{"value RLO", job.StatusDetails{"k": "a\u202eb"}, false, "statusDetails[k]", "U+202E"},
		{"value BOM", job.StatusDetails{"k": "\ufeffa"}, false, "statusDetails[k]", "U+FEFF"},
		{"value private use", job.StatusDetails{"k": "\ue000"}, false, "statusDetails[k]", "U+E000"},
		{"value invalid UTF-8", job.StatusDetails{"k": "a\xffb"}, false, "statusDetails[k]", "not UTF-8"},
		{"value lone continuation", job.StatusDetails{"k": "\x80"}, false, "statusDetails[k]", "not UTF-8"},
		{"value encoded surrogate", job.StatusDetails{"k": "\xed\xa0\x80"}, false, "statusDetails[k]", "not UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.d.Validate()
			if tt.ok {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			checkInvalid(t, err, tt.field, tt.reason)
		})
	}
}

func TestValidateStepTimeout(t *testing.T) {
	tests := []struct {
		minutes *int64
		ok      bool
	}{
		{nil, true},
		{ptr(int64(-1)), false},
		{ptr(int64(0)), false},
		{ptr(int64(1)), true},
		{ptr(int64(60)), true},
		{ptr(int64(10080)), true},
		{ptr(int64(10081)), false},
	}
	for _, tt := range tests {
		name := "nil"
		if tt.minutes != nil {
			name = strconv.FormatInt(*tt.minutes, 10)
		}
		t.Run(name, func(t *testing.T) {
			err := job.ValidateStepTimeout(tt.minutes)
			if tt.ok {
				if err != nil {
					t.Fatalf("ValidateStepTimeout(%s) = %v, want nil", name, err)
				}
				return
			}
			checkInvalid(t, err, "stepTimeoutInMinutes", "want 1 to 10080")
		})
	}
	if job.MinStepTimeoutMinutes != 1 || job.MaxStepTimeoutMinutes != 10080 {
		t.Errorf("step timeout bounds = %d..%d, want 1..10080", job.MinStepTimeoutMinutes, job.MaxStepTimeoutMinutes)
	}
}

// validation errors a request's Validate must report: one field each.
type wantField struct {
	field, reason string
}

func checkRequest(t *testing.T, err error, want []wantField) {
	t.Helper()
	if len(want) == 0 {
		if err != nil {
			t.Fatalf("Validate() = %v, want nil", err)
		}
		return
	}
	if err == nil {
		t.Fatalf("Validate() = nil, want errors for %v", want)
	}
	if !errors.Is(err, job.ErrInvalidInput) {
		t.Errorf("errors.Is(%v, ErrInvalidInput) = false, want true", err)
	}
	var ve *job.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("errors.As(%v, *ValidationError) = false, want true", err)
	}
	if ve.Field != want[0].field {
		t.Errorf("first ValidationError field = %q, want %q", ve.Field, want[0].field)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w.field) || !strings.Contains(err.Error(), w.reason) {
			t.Errorf("error = %q, want it to name %q: %q", err, w.field, w.reason)
		}
	}
	// Joined errors list one validation error per field.
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		if n := len(j.Unwrap()); n != len(want) {
			t.Errorf("joined errors = %d, want %d: %v", n, len(want), err)
		}
		for _, e := range j.Unwrap() {
			if !errors.As(e, &ve) || !errors.Is(e, job.ErrInvalidInput) {
				t.Errorf("joined error %v is not a *ValidationError", e)
			}
		}
	} else if len(want) != 1 {
		t.Errorf("error %v is not joined, want %d errors", err, len(want))
	}
}

func TestGetPendingRequestValidate(t *testing.T) {
	checkRequest(t, (&job.GetPendingRequest{}).Validate(), nil)
	checkRequest(t, (&job.GetPendingRequest{ClientToken: "tok"}).Validate(), nil)
	checkRequest(t, (&job.GetPendingRequest{ClientToken: strings.Repeat("t", 65)}).Validate(),
		[]wantField{{"clientToken", "65 bytes"}})
}

func TestStartNextRequestValidate(t *testing.T) {
	tests := []struct {
		name string
		r    job.StartNextRequest
		want []wantField
	}{
		{"zero", job.StartNextRequest{}, nil},
		{"full", job.StartNextRequest{StatusDetails: job.StatusDetails{"k": "v"}, StepTimeoutInMinutes: ptr(int64(10)), ClientToken: "t"}, nil},
		{"bad details", job.StartNextRequest{StatusDetails: job.StatusDetails{"k": ""}}, []wantField{{"statusDetails[k]", "empty value"}}},
		{"bad timeout", job.StartNextRequest{StepTimeoutInMinutes: ptr(int64(0))}, []wantField{{"stepTimeoutInMinutes", "0"}}},
		{"bad token", job.StartNextRequest{ClientToken: "\n"}, []wantField{{"clientToken", "U+000A"}}},
		{"all bad", job.StartNextRequest{
			StatusDetails: job.StatusDetails{"a b": "v"}, StepTimeoutInMinutes: ptr(int64(10081)), ClientToken: "\xff",
		}, []wantField{{"statusDetails key", "not allowed"}, {"stepTimeoutInMinutes", "10081"}, {"clientToken", "not UTF-8"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { checkRequest(t, tt.r.Validate(), tt.want) })
	}
}

func TestDescribeRequestValidate(t *testing.T) {
	tests := []struct {
		name string
		r    job.DescribeRequest
		want []wantField
	}{
		{"zero", job.DescribeRequest{}, nil},
		{"full", job.DescribeRequest{ExecutionNumber: ptr(int64(1)), IncludeJobDocument: ptr(true), ClientToken: "t"}, nil},
		{"execution number 0", job.DescribeRequest{ExecutionNumber: ptr(int64(0))}, []wantField{{"executionNumber", "want 1 or more"}}},
		{"execution number negative", job.DescribeRequest{ExecutionNumber: ptr(int64(-3))}, []wantField{{"executionNumber", "-3"}}},
		{"bad token", job.DescribeRequest{ClientToken: strings.Repeat("x", 100)}, []wantField{{"clientToken", "100 bytes"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { checkRequest(t, tt.r.Validate(), tt.want) })
	}
}

func TestUpdateRequestValidate(t *testing.T) {
	tests := []struct {
		name string
		r    job.UpdateRequest
		want []wantField
	}{
		{"in progress", job.UpdateRequest{Status: job.InProgress}, nil},
		{"succeeded full", job.UpdateRequest{
			Status: job.Succeeded, StatusDetails: job.StatusDetails{"k": "v"}, ExpectedVersion: ptr(job.Version(0)),
			ExecutionNumber: ptr(int64(1)), IncludeJobExecutionState: true, IncludeJobDocument: true,
			StepTimeoutInMinutes: ptr(int64(1)), ClientToken: "t",
		}, nil},
		{"failed", job.UpdateRequest{Status: job.Failed}, nil},
		{"rejected", job.UpdateRequest{Status: job.Rejected}, nil},
		{"queued", job.UpdateRequest{Status: job.Queued}, []wantField{{"status", "a device may set only"}}},
		{"timed out", job.UpdateRequest{Status: job.TimedOut}, []wantField{{"status", "TIMED_OUT"}}},
		{"removed", job.UpdateRequest{Status: job.Removed}, []wantField{{"status", "REMOVED"}}},
		{"canceled", job.UpdateRequest{Status: job.Canceled}, []wantField{{"status", "CANCELED"}}},
		{"empty status", job.UpdateRequest{}, []wantField{{"status", `""`}}},
		{"unknown status", job.UpdateRequest{Status: "done"}, []wantField{{"status", `"done"`}}},
		{"negative version", job.UpdateRequest{Status: job.InProgress, ExpectedVersion: ptr(job.Version(-1))}, []wantField{{"expectedVersion", "-1 is negative"}}},
		{"execution number 0", job.UpdateRequest{Status: job.InProgress, ExecutionNumber: ptr(int64(0))}, []wantField{{"executionNumber", "want 1 or more"}}},
		{"bad details", job.UpdateRequest{Status: job.InProgress, StatusDetails: job.StatusDetails{"k": "\u200b"}}, []wantField{{"statusDetails[k]", "U+200B"}}},
		{"bad timeout", job.UpdateRequest{Status: job.InProgress, StepTimeoutInMinutes: ptr(int64(-5))}, []wantField{{"stepTimeoutInMinutes", "-5"}}},
		{"bad token", job.UpdateRequest{Status: job.InProgress, ClientToken: "\x00"}, []wantField{{"clientToken", "U+0000"}}},
		{"joined", job.UpdateRequest{
			Status: job.InProgress, StatusDetails: job.StatusDetails{"k": strings.Repeat("v", 1025)},
			StepTimeoutInMinutes: ptr(int64(0)), ClientToken: strings.Repeat("c", 65),
		}, []wantField{{"statusDetails[k]", "1025 characters"}, {"stepTimeoutInMinutes", "0"}, {"clientToken", "65 bytes"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { checkRequest(t, tt.r.Validate(), tt.want) })
	}
}

func TestLimits(t *testing.T) {
	for _, tt := range []struct {
		name      string
		got, want int
	}{
		{"MaxThingNameLength", job.MaxThingNameLength, 128},
		{"MaxJobIDLength", job.MaxJobIDLength, 64},
		{"MaxClientTokenLength", job.MaxClientTokenLength, 64},
		{"MaxStatusDetailKeyLength", job.MaxStatusDetailKeyLength, 128},
		{"MaxStatusDetailValueLength", job.MaxStatusDetailValueLength, 1024},
		{"MaxDocumentSize", job.MaxDocumentSize, 32 * 1024},
		{"MaxPendingListed", job.MaxPendingListed, 10},
	} {
		if tt.got != tt.want {
			t.Errorf("%s = %d, want %d", tt.name, tt.got, tt.want)
		}
	}
	if job.NextJobID != "$next" {
		t.Errorf("NextJobID = %q, want $next", job.NextJobID)
	}
}
