package job_test

import (
	"bytes"
	"encoding/json"
	"maps"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/iotjobs/iotjobs/domain/job"
)

func ptr[T any](v T) *T { return &v }

func TestTimestampVersionDecode(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want int64
		ok   bool
	}{
		{"seconds", `1489096425`, 1489096425, true},
		{"milliseconds", `1489096425123`, 1489096425123, true},
		{"zero", `0`, 0, true},
		{"negative", `-5`, -5, true},
		{"float drops fraction", `1489096425.789`, 1489096425, true},
		{"negative float", `-1.5`, -1, true},
		{"exponent", `1.489096425e9`, 1489096425, true},
		{"quoted", `"1489096425"`, 1489096425, true},
		{"quoted float", `"3.5"`, 3, true},
		{"quoted negative", `"-7"`, -7, true},
		{"quoted exponent", `"1e3"`, 1000, true},
		{"quoted escaped", `"\u0033"`, 3, true},
		{"null", `null`, 0, true},
		{"max int64", `9223372036854775807`, math.MaxInt64, true},
		{"min int64", `-9223372036854775808`, math.MinInt64, true},
		{"huge float in range", `9.1e18`, 9100000000000000000, true},
		{"huge integer", `92233720368547758070`, 0, false},
		{"huge float", `1e19`, 0, false},
		{"huge negative float", `-1e19`, 0, false},
		{"out of float range", `1e400`, 0, false},
		{"true", `true`, 0, false},
		{"object", `{}`, 0, false},
		{"array", `[1]`, 0, false},
		{"garbage string", `"soon"`, 0, false},
		{"empty string", `""`, 0, false},
		{"quoted null", `"null"`, 0, false},
		{"quoted NaN", `"NaN"`, 0, false},
		{"quoted Inf", `"Inf"`, 0, false},
		{"quoted Infinity", `"-Infinity"`, 0, false},
		{"quoted plus", `"+5"`, 0, false},
		{"quoted leading dot", `".5"`, 0, false},
		{"quoted trailing dot", `"5."`, 0, false},
		{"quoted underscore", `"1_000"`, 0, false},
		{"quoted hex float", `"0x1p4"`, 0, false},
		{"quoted spaces", `" 3 "`, 0, false},
		{"quoted huge", `"1e30"`, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ts job.Timestamp
			err := json.Unmarshal([]byte(tt.in), &ts)
			if (err == nil) != tt.ok {
				t.Fatalf("Timestamp from %s: err = %v, want ok = %v", tt.in, err, tt.ok)
			}
			if tt.ok && int64(ts) != tt.want {
				t.Errorf("Timestamp from %s = %d, want %d", tt.in, ts, tt.want)
			}
			var v job.Version
			err = json.Unmarshal([]byte(tt.in), &v)
			if (err == nil) != tt.ok {
				t.Fatalf("Version from %s: err = %v, want ok = %v", tt.in, err, tt.ok)
			}
			if tt.ok && int64(v) != tt.want {
				t.Errorf("Version from %s = %d, want %d", tt.in, v, tt.want)
			}
			if !tt.ok {
				for _, msg := range []string{"timestamp", "version"} {
					var err error
					if msg == "timestamp" {
						err = ts.UnmarshalJSON([]byte(tt.in))
					} else {
						err = v.UnmarshalJSON([]byte(tt.in))
					}
					if err == nil || !strings.Contains(err.Error(), msg) {
						t.Errorf("%s error = %v, want one naming %q", msg, err, msg)
					}
				}
			}
		})
	}
}

func TestTimestampUnmarshalDirect(t *testing.T) {
	// Direct calls may carry surrounding whitespace; bad quoted JSON fails.
	var ts job.Timestamp
	if err := ts.UnmarshalJSON([]byte(" 12 ")); err != nil || ts != 12 {
		t.Errorf("UnmarshalJSON(\" 12 \") = %d, %v; want 12, nil", ts, err)
	}
	if err := ts.UnmarshalJSON([]byte(`"12`)); err == nil {
		t.Errorf("UnmarshalJSON(%q) = nil error, want one", `"12`)
	}
}

func TestTimestampTime(t *testing.T) {
	tests := []struct {
		name string
		ts   job.Timestamp
		want time.Time
	}{
		{"zero", 0, time.Time{}},
		{"seconds", 1489096425, time.Unix(1489096425, 0)},
		{"milliseconds", 1489096425123, time.UnixMilli(1489096425123)},
		{"largest seconds", 1e11, time.Unix(1e11, 0)},
		{"smallest milliseconds", 1e11 + 1, time.UnixMilli(1e11 + 1)},
		{"negative", -10, time.Unix(-10, 0)},
		{"max", math.MaxInt64, time.UnixMilli(math.MaxInt64)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.ts.Time(); !got.Equal(tt.want) {
				t.Errorf("Timestamp(%d).Time() = %v, want %v", int64(tt.ts), got, tt.want)
			}
		})
	}
	// Seconds and milliseconds of the same instant give the same second.
	if s, ms := job.Timestamp(1489096425).Time(), job.Timestamp(1489096425000).Time(); !s.Equal(ms) {
		t.Errorf("seconds %v != milliseconds %v", s, ms)
	}
	now := time.Unix(1700000000, 999_000_000)
	if got := job.TimestampOf(now); got != 1700000000 {
		t.Errorf("TimestampOf(%v) = %d, want 1700000000", now, got)
	}
	if got := job.TimestampOf(now).Time(); !got.Equal(now.Truncate(time.Second)) {
		t.Errorf("TimestampOf(now).Time() = %v, want %v", got, now.Truncate(time.Second))
	}
}

func TestDocumentUnmarshal(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string // raw document; "" means empty
	}{
		{"object", `{"operation":"reboot","n":1}`, `{"operation":"reboot","n":1}`},
		{"string holding object", `"{\"operation\":\"reboot\"}"`, `{"operation":"reboot"}`},
		{"string holding object with spaces", `" {\"a\":1} "`, `{"a":1}`},
		{"plain string kept", `"reboot now"`, `"reboot now"`},
		{"string holding array kept", `"[1,2]"`, `"[1,2]"`},
		{"string holding broken object kept", `"{\"a\":"`, `"{\"a\":"`},
		{"empty string kept", `""`, `""`},
		{"array kept", `[1,2]`, `[1,2]`},
		{"number kept", `42`, `42`},
		{"null", `null`, ``},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var d job.Document
			if err := json.Unmarshal([]byte(tt.in), &d); err != nil {
				t.Fatalf("Unmarshal(%s): %v", tt.in, err)
			}
			if string(d) != tt.want {
				t.Errorf("Document from %s = %s, want %s", tt.in, d, tt.want)
			}
			if tt.want == "" && d != nil {
				t.Errorf("Document from %s = %#v, want nil", tt.in, d)
			}
		})
	}
	t.Run("copy", func(t *testing.T) {
		src := []byte(`{"a":1}`)
		var d job.Document
		if err := d.UnmarshalJSON(src); err != nil {
			t.Fatal(err)
		}
		src[2] = 'X'
		if string(d) != `{"a":1}` {
			t.Errorf("Document aliases its input: %s", d)
		}
	})
	t.Run("bad string", func(t *testing.T) {
		var d job.Document
		if err := d.UnmarshalJSON([]byte(`"abc`)); err == nil || !strings.Contains(err.Error(), "document") {
			t.Errorf("UnmarshalJSON(%q) error = %v, want a document error", `"abc`, err)
		}
	})
}

func TestDocumentDecode(t *testing.T) {
	var doc struct {
		Operation string `json:"operation"`
		Delay     int    `json:"delay"`
	}
	d := job.Document(`{"operation":"reboot","delay":5}`)
	if err := d.Decode(&doc); err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if doc.Operation != "reboot" || doc.Delay != 5 {
		t.Errorf("Decode = %+v, want reboot/5", doc)
	}
	for _, empty := range []job.Document{nil, {}} {
		if err := empty.Decode(&doc); err == nil || !strings.Contains(err.Error(), "empty") {
			t.Errorf("Decode of %#v: error = %v, want empty error", empty, err)
		}
	}
	if err := job.Document(`"reboot"`).Decode(&doc); err == nil || !strings.Contains(err.Error(), "decode document") {
		t.Errorf("Decode of a string into a struct: error = %v, want decode error", err)
	}
	var s string
	if err := job.Document(`"reboot"`).Decode(&s); err != nil || s != "reboot" {
		t.Errorf("Decode of a string into a string = %q, %v; want reboot, nil", s, err)
	}
}

func TestDocumentMarshal(t *testing.T) {
	tests := []struct {
		name string
		d    job.Document
		want string
	}{
		{"nil", nil, `null`},
		{"empty", job.Document{}, `null`},
		{"object", job.Document(`{"a": 1}`), `{"a":1}`},
		{"string", job.Document(`"x"`), `"x"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := json.Marshal(tt.d)
			if err != nil {
				t.Fatalf("Marshal: %v", err)
			}
			if string(b) != tt.want {
				t.Errorf("Marshal = %s, want %s", b, tt.want)
			}
		})
	}
	// Round trip in a struct, and omitted when empty.
	in := job.Execution{JobID: "j1", JobDocument: job.Document(`{"operation":"reboot"}`)}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"jobId":"j1","jobDocument":{"operation":"reboot"}}`; string(b) != want {
		t.Errorf("Marshal = %s, want %s", b, want)
	}
	var out job.Execution
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(out, in) {
		t.Errorf("round trip = %+v, want %+v", out, in)
	}
	b, _ = json.Marshal(job.Execution{JobID: "j1"})
	if want := `{"jobId":"j1"}`; string(b) != want {
		t.Errorf("Marshal without document = %s, want %s", b, want)
	}
}

// keys returns the sorted keys of the JSON object b.
func keys(t *testing.T, b []byte) []string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("not a JSON object: %s: %v", b, err)
	}
	return slices.Sorted(maps.Keys(m))
}

// subKeys returns the sorted keys of the object at key k of the JSON
// object b.
func subKeys(t *testing.T, b []byte, k string) []string {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("not a JSON object: %s: %v", b, err)
	}
	return keys(t, m[k])
}

func sorted(s ...string) []string { return slices.Sorted(slices.Values(s)) }

var (
	fullExecution = job.Execution{
		JobID:                            "j1",
		ThingName:                        "thing-1",
		JobDocument:                      job.Document(`{"operation":"reboot"}`),
		Status:                           job.InProgress,
		StatusDetails:                    job.StatusDetails{"step": "1"},
		QueuedAt:                         1489096123,
		StartedAt:                        1489096200,
		LastUpdatedAt:                    1489096300,
		VersionNumber:                    2,
		ExecutionNumber:                  1,
		ApproximateSecondsBeforeTimedOut: ptr(int64(50)),
	}
	executionKeys = sorted("jobId", "thingName", "jobDocument", "status", "statusDetails", "queuedAt",
		"startedAt", "lastUpdatedAt", "versionNumber", "executionNumber", "approximateSecondsBeforeTimedOut")
	fullSummary = job.Summary{JobID: "j2", QueuedAt: 1, StartedAt: 2, LastUpdatedAt: 3, VersionNumber: 4, ExecutionNumber: 5}
	summaryKeys = sorted("jobId", "queuedAt", "startedAt", "lastUpdatedAt", "versionNumber", "executionNumber")
	fullState   = job.ExecutionState{Status: job.InProgress, StatusDetails: job.StatusDetails{"a": "b"}, VersionNumber: 3}
	stateKeys   = sorted("status", "statusDetails", "versionNumber")
)

// TestWireRoundTrip marshals every request, reply and notification type
// with all its fields set, checks the JSON names against the spec, and
// decodes it back.
func TestWireRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		v    any
		keys []string
		sub  map[string][]string // keys of nested objects
	}{
		{"GetPendingRequest", &job.GetPendingRequest{ClientToken: "t"}, sorted("clientToken"), nil},
		{"GetPendingResponse", &job.GetPendingResponse{
			InProgressJobs: []job.Summary{fullSummary}, QueuedJobs: []job.Summary{{JobID: "j3"}},
			Timestamp: 10, ClientToken: "t",
		}, sorted("inProgressJobs", "queuedJobs", "timestamp", "clientToken"), nil},
		{"StartNextRequest", &job.StartNextRequest{
			StatusDetails: job.StatusDetails{"k": "v"}, StepTimeoutInMinutes: ptr(int64(5)), ClientToken: "t",
		}, sorted("statusDetails", "stepTimeoutInMinutes", "clientToken"), nil},
		{"StartNextResponse", &job.StartNextResponse{Execution: &fullExecution, Timestamp: 10, ClientToken: "t"},
			sorted("execution", "timestamp", "clientToken"), map[string][]string{"execution": executionKeys}},
		{"DescribeRequest", &job.DescribeRequest{ExecutionNumber: ptr(int64(2)), IncludeJobDocument: ptr(false), ClientToken: "t"},
			sorted("executionNumber", "includeJobDocument", "clientToken"), nil},
		{"DescribeResponse", &job.DescribeResponse{Execution: &fullExecution, Timestamp: 10, ClientToken: "t"},
			sorted("execution", "timestamp", "clientToken"), map[string][]string{"execution": executionKeys}},
		{"UpdateRequest", &job.UpdateRequest{
			Status: job.Succeeded, StatusDetails: job.StatusDetails{"k": "v"}, ExpectedVersion: ptr(job.Version(3)),
			ExecutionNumber: ptr(int64(1)), IncludeJobExecutionState: true, IncludeJobDocument: true,
			StepTimeoutInMinutes: ptr(int64(10)), ClientToken: "t",
		}, sorted("status", "statusDetails", "expectedVersion", "executionNumber", "includeJobExecutionState",
			"includeJobDocument", "stepTimeoutInMinutes", "clientToken"), nil},
		{"UpdateResponse", &job.UpdateResponse{
			ExecutionState: &fullState, JobDocument: job.Document(`{"a":1}`), Timestamp: 10, ClientToken: "t",
		}, sorted("executionState", "jobDocument", "timestamp", "clientToken"), map[string][]string{"executionState": stateKeys}},
		{"JobExecutionsChanged", &job.JobExecutionsChanged{
			Jobs: map[job.Status][]job.Summary{job.InProgress: {fullSummary}, job.Queued: {{JobID: "j3", QueuedAt: 7}}}, Timestamp: 10,
		}, sorted("jobs", "timestamp"), map[string][]string{"jobs": sorted("IN_PROGRESS", "QUEUED")}},
		{"NextJobExecutionChanged", &job.NextJobExecutionChanged{Execution: &fullExecution, Timestamp: 10},
			sorted("execution", "timestamp"), map[string][]string{"execution": executionKeys}},
		{"RejectedError", &job.RejectedError{
			Code: job.CodeVersionMismatch, Message: "m", ClientToken: "t", Timestamp: 10, ExecutionState: &fullState,
		}, sorted("code", "message", "clientToken", "timestamp", "executionState"), map[string][]string{"executionState": stateKeys}},
		{"Execution", &fullExecution, executionKeys, nil},
		{"Summary", &fullSummary, summaryKeys, nil},
		{"ExecutionState", &fullState, stateKeys, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := json.Marshal(tt.v)
			if err != nil {
				t.Fatalf("Marshal: %v", err)
			}
			if got := keys(t, b); !slices.Equal(got, tt.keys) {
				t.Errorf("JSON keys = %v, want %v\n%s", got, tt.keys, b)
			}
			for k, want := range tt.sub {
				if got := subKeys(t, b, k); !slices.Equal(got, want) {
					t.Errorf("JSON keys of %s = %v, want %v\n%s", k, got, want, b)
				}
			}
			out := reflect.New(reflect.TypeOf(tt.v).Elem())
			if err := json.Unmarshal(b, out.Interface()); err != nil {
				t.Fatalf("Unmarshal(%s): %v", b, err)
			}
			if !reflect.DeepEqual(out.Interface(), tt.v) {
				t.Errorf("round trip = %+v, want %+v", out.Elem().Interface(), reflect.ValueOf(tt.v).Elem().Interface())
			}
		})
	}
}

// TestWireZeroValues checks which fields are always sent: the update's
// status, the job id, and the lists and map of the pending replies; the
// rest is omitted when zero.
func TestWireZeroValues(t *testing.T) {
	tests := []struct {
		v    any
		want string
	}{
		{job.GetPendingRequest{}, `{}`},
		{job.StartNextRequest{}, `{}`},
		{job.DescribeRequest{}, `{}`},
		{job.UpdateRequest{Status: job.InProgress}, `{"status":"IN_PROGRESS"}`},
		{job.StartNextResponse{}, `{}`},
		{job.DescribeResponse{}, `{}`},
		{job.UpdateResponse{}, `{}`},
		{job.NextJobExecutionChanged{}, `{}`},
		{job.Execution{}, `{"jobId":""}`},
		{job.Summary{}, `{"jobId":""}`},
		{job.ExecutionState{}, `{}`},
		{job.RejectedError{Code: job.CodeInternalError}, `{"code":"InternalError"}`},
		{job.GetPendingResponse{InProgressJobs: []job.Summary{}, QueuedJobs: []job.Summary{}}, `{"inProgressJobs":[],"queuedJobs":[]}`},
		{job.JobExecutionsChanged{Jobs: map[job.Status][]job.Summary{}}, `{"jobs":{}}`},
		// An explicit false and zero are sent when set through a pointer.
		{job.DescribeRequest{IncludeJobDocument: ptr(false)}, `{"includeJobDocument":false}`},
		{job.UpdateRequest{Status: job.InProgress, ExpectedVersion: ptr(job.Version(0))}, `{"status":"IN_PROGRESS","expectedVersion":0}`},
	}
	for _, tt := range tests {
		t.Run(reflect.TypeOf(tt.v).Name(), func(t *testing.T) {
			b, err := json.Marshal(tt.v)
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tt.want {
				t.Errorf("Marshal = %s, want %s", b, tt.want)
			}
		})
	}
}

// AWS-shaped payloads, written from the spec (§3, §4).
func TestDecodeAWSPayloads(t *testing.T) {
	t.Run("DescribeResponse", func(t *testing.T) {
		body := `{"timestamp":1489096425,"clientToken":"c1","execution":{"jobId":"j1","status":"QUEUED",` +
			`"queuedAt":1489096123,"lastUpdatedAt":1489096123,"versionNumber":1,"executionNumber":1,` +
			`"jobDocument":{"operation":"reboot"}}}`
		var r job.DescribeResponse
		if err := json.Unmarshal([]byte(body), &r); err != nil {
			t.Fatal(err)
		}
		want := job.DescribeResponse{Timestamp: 1489096425, ClientToken: "c1", Execution: &job.Execution{
			JobID: "j1", Status: job.Queued, QueuedAt: 1489096123, LastUpdatedAt: 1489096123,
			VersionNumber: 1, ExecutionNumber: 1, JobDocument: job.Document(`{"operation":"reboot"}`),
		}}
		if !reflect.DeepEqual(r, want) {
			t.Errorf("got %+v\nwant %+v", r, want)
		}
		if r.Execution.StartedAt != 0 {
			t.Errorf("StartedAt = %d, want 0 while QUEUED", r.Execution.StartedAt)
		}
	})
	t.Run("DescribeResponse document as string", func(t *testing.T) {
		body := `{"timestamp":1489096425,"execution":{"jobId":"j1","status":"IN_PROGRESS","jobDocument":"{\"operation\":\"reboot\"}",` +
			`"statusDetails":{"progress":"50%"},"startedAt":"1489096200","versionNumber":"2","approximateSecondsBeforeTimedOut":88}}`
		var r job.DescribeResponse
		if err := json.Unmarshal([]byte(body), &r); err != nil {
			t.Fatal(err)
		}
		e := r.Execution
		if string(e.JobDocument) != `{"operation":"reboot"}` || e.StartedAt != 1489096200 || e.VersionNumber != 2 ||
			e.StatusDetails["progress"] != "50%" || e.ApproximateSecondsBeforeTimedOut == nil || *e.ApproximateSecondsBeforeTimedOut != 88 {
			t.Errorf("got %+v", *e)
		}
	})
	t.Run("DescribeResponse $next nothing pending", func(t *testing.T) {
		var r job.DescribeResponse
		if err := json.Unmarshal([]byte(`{"timestamp":1489096425,"clientToken":"c2"}`), &r); err != nil {
			t.Fatal(err)
		}
		if r.Execution != nil || r.ClientToken != "c2" {
			t.Errorf("got %+v, want no execution", r)
		}
	})
	t.Run("DescribeResponse milliseconds", func(t *testing.T) {
		var r job.DescribeResponse
		if err := json.Unmarshal([]byte(`{"timestamp":1489096425123}`), &r); err != nil {
			t.Fatal(err)
		}
		if got, want := r.Timestamp.Time(), time.UnixMilli(1489096425123); !got.Equal(want) {
			t.Errorf("Time() = %v, want %v", got, want)
		}
	})
	t.Run("GetPendingResponse", func(t *testing.T) {
		body := `{"inProgressJobs":[{"jobId":"j1","queuedAt":1,"startedAt":2,"lastUpdatedAt":3,"versionNumber":2,"executionNumber":1}],` +
			`"queuedJobs":[{"jobId":"j2","queuedAt":4,"lastUpdatedAt":4,"versionNumber":1,"executionNumber":1},{"jobId":"j3","queuedAt":5}],` +
			`"timestamp":1489096425,"clientToken":"c3"}`
		var r job.GetPendingResponse
		if err := json.Unmarshal([]byte(body), &r); err != nil {
			t.Fatal(err)
		}
		want := job.GetPendingResponse{
			InProgressJobs: []job.Summary{{JobID: "j1", QueuedAt: 1, StartedAt: 2, LastUpdatedAt: 3, VersionNumber: 2, ExecutionNumber: 1}},
			QueuedJobs:     []job.Summary{{JobID: "j2", QueuedAt: 4, LastUpdatedAt: 4, VersionNumber: 1, ExecutionNumber: 1}, {JobID: "j3", QueuedAt: 5}},
			Timestamp:      1489096425, ClientToken: "c3",
		}
		if !reflect.DeepEqual(r, want) {
			t.Errorf("got %+v\nwant %+v", r, want)
		}
	})
	t.Run("GetPendingResponse empty", func(t *testing.T) {
		var r job.GetPendingResponse
		if err := json.Unmarshal([]byte(`{"inProgressJobs":[],"queuedJobs":[],"timestamp":1}`), &r); err != nil {
			t.Fatal(err)
		}
		if len(r.InProgressJobs) != 0 || len(r.QueuedJobs) != 0 {
			t.Errorf("got %+v, want empty lists", r)
		}
	})
	t.Run("StartNextResponse", func(t *testing.T) {
		body := `{"execution":{"jobId":"j1","thingName":"T","status":"IN_PROGRESS","statusDetails":{"a":"b"},` +
			`"queuedAt":1,"startedAt":2,"lastUpdatedAt":2,"versionNumber":2,"executionNumber":1,"jobDocument":{"x":1}},` +
			`"timestamp":3,"clientToken":"c4"}`
		var r job.StartNextResponse
		if err := json.Unmarshal([]byte(body), &r); err != nil {
			t.Fatal(err)
		}
		if r.Execution == nil || r.Execution.ThingName != "T" || r.Execution.Status != job.InProgress || r.ClientToken != "c4" {
			t.Errorf("got %+v", r)
		}
	})
	t.Run("UpdateResponse", func(t *testing.T) {
		body := `{"executionState":{"status":"SUCCEEDED","statusDetails":{"r":"ok"},"versionNumber":3},` +
			`"jobDocument":{"operation":"reboot"},"timestamp":4,"clientToken":"c5"}`
		var r job.UpdateResponse
		if err := json.Unmarshal([]byte(body), &r); err != nil {
			t.Fatal(err)
		}
		want := job.UpdateResponse{
			ExecutionState: &job.ExecutionState{Status: job.Succeeded, StatusDetails: job.StatusDetails{"r": "ok"}, VersionNumber: 3},
			JobDocument:    job.Document(`{"operation":"reboot"}`), Timestamp: 4, ClientToken: "c5",
		}
		if !reflect.DeepEqual(r, want) {
			t.Errorf("got %+v\nwant %+v", r, want)
		}
	})
	t.Run("notify", func(t *testing.T) {
		body := `{"timestamp":1517016948,"jobs":{"QUEUED":[{"jobId":"j2","queuedAt":1517016947,"lastUpdatedAt":1517016947,` +
			`"executionNumber":1,"versionNumber":1}],"IN_PROGRESS":[{"jobId":"j1","queuedAt":1,"startedAt":2,"lastUpdatedAt":2,` +
			`"executionNumber":1,"versionNumber":2}]}}`
		var n job.JobExecutionsChanged
		if err := json.Unmarshal([]byte(body), &n); err != nil {
			t.Fatal(err)
		}
		if len(n.Jobs) != 2 || len(n.Jobs[job.Queued]) != 1 || n.Jobs[job.Queued][0].JobID != "j2" ||
			len(n.Jobs[job.InProgress]) != 1 || n.Jobs[job.InProgress][0].StartedAt != 2 || n.Timestamp != 1517016948 {
			t.Errorf("got %+v", n)
		}
	})
	t.Run("notify nothing pending", func(t *testing.T) {
		var n job.JobExecutionsChanged
		if err := json.Unmarshal([]byte(`{"timestamp":1517016948,"jobs":{}}`), &n); err != nil {
			t.Fatal(err)
		}
		if len(n.Jobs) != 0 || n.Timestamp != 1517016948 {
			t.Errorf("got %+v, want no jobs", n)
		}
	})
	t.Run("notify-next", func(t *testing.T) {
		body := `{"timestamp":1517016948,"execution":{"jobId":"j2","status":"QUEUED","queuedAt":1517016947,` +
			`"lastUpdatedAt":1517016947,"versionNumber":1,"executionNumber":1,"jobDocument":{"operation":"update"}}}`
		var n job.NextJobExecutionChanged
		if err := json.Unmarshal([]byte(body), &n); err != nil {
			t.Fatal(err)
		}
		if n.Execution == nil || n.Execution.JobID != "j2" || n.Execution.Status != job.Queued {
			t.Errorf("got %+v", n)
		}
	})
	t.Run("notify-next queue empty", func(t *testing.T) {
		var n job.NextJobExecutionChanged
		if err := json.Unmarshal([]byte(`{"timestamp":1517016948}`), &n); err != nil {
			t.Fatal(err)
		}
		if n.Execution != nil {
			t.Errorf("Execution = %+v, want nil", n.Execution)
		}
	})
	t.Run("unknown fields ignored", func(t *testing.T) {
		var r job.DescribeResponse
		if err := json.Unmarshal([]byte(`{"timestamp":1,"future":{"x":[1]},"execution":{"jobId":"j","newField":true}}`), &r); err != nil {
			t.Fatal(err)
		}
		if r.Execution == nil || r.Execution.JobID != "j" {
			t.Errorf("got %+v", r)
		}
	})
	t.Run("garbage timestamp fails the decode", func(t *testing.T) {
		var r job.DescribeResponse
		if err := json.Unmarshal([]byte(`{"timestamp":"yesterday"}`), &r); err == nil {
			t.Error("Unmarshal = nil error, want one")
		}
	})
}

func TestUpdateRequestExpectedVersion(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want *job.Version
	}{
		{`{"status":"IN_PROGRESS","expectedVersion":3}`, ptr(job.Version(3))},
		{`{"status":"IN_PROGRESS","expectedVersion":"3"}`, ptr(job.Version(3))},
		{`{"status":"IN_PROGRESS","expectedVersion":null}`, nil},
		{`{"status":"IN_PROGRESS"}`, nil},
	} {
		t.Run(tt.in, func(t *testing.T) {
			var r job.UpdateRequest
			if err := json.Unmarshal([]byte(tt.in), &r); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(r.ExpectedVersion, tt.want) {
				t.Errorf("ExpectedVersion = %v, want %v", r.ExpectedVersion, tt.want)
			}
		})
	}
	// Sent as a number.
	b, err := json.Marshal(job.UpdateRequest{Status: job.InProgress, ExpectedVersion: ptr(job.Version(3))})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte(`"expectedVersion":3`)) {
		t.Errorf("Marshal = %s, want expectedVersion as the number 3", b)
	}
	var r job.UpdateRequest
	if err := json.Unmarshal([]byte(`{"status":"IN_PROGRESS","expectedVersion":"three"}`), &r); err == nil {
		t.Error(`expectedVersion "three": nil error, want one`)
	}
}

// A timestamp encodes as the plain number it holds.
func TestTimestampEncodes(t *testing.T) {
	for _, n := range []int64{1, 1489096425, 1489096425123, math.MaxInt64} {
		b, err := json.Marshal(job.Timestamp(n))
		if err != nil || string(b) != strconv.FormatInt(n, 10) {
			t.Errorf("Marshal(Timestamp(%d)) = %s, %v; want %d", n, b, err, n)
		}
	}
}
