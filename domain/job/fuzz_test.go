package job_test

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/iotjobs/iotjobs/domain/job"
)

var payloadSeeds = []string{
	`{"timestamp":1489096425,"execution":{"jobId":"j1","status":"QUEUED","queuedAt":1489096123,"lastUpdatedAt":1489096123,"versionNumber":1,"executionNumber":1,"jobDocument":{"operation":"reboot"}}}`,
	`{"timestamp":1489096425,"execution":{"jobId":"j1","status":"IN_PROGRESS","jobDocument":"{\"operation\":\"reboot\"}","startedAt":"1489096200","versionNumber":"2","approximateSecondsBeforeTimedOut":88}}`,
	`{"inProgressJobs":[{"jobId":"j1","queuedAt":1,"startedAt":2,"lastUpdatedAt":3,"versionNumber":2,"executionNumber":1}],"queuedJobs":[],"timestamp":1489096425,"clientToken":"c3"}`,
	`{"executionState":{"status":"SUCCEEDED","statusDetails":{"r":"ok"},"versionNumber":3},"jobDocument":{"operation":"reboot"},"timestamp":4,"clientToken":"c5"}`,
	`{"timestamp":1517016948,"jobs":{"QUEUED":[{"jobId":"j2","queuedAt":1517016947}],"IN_PROGRESS":[{"jobId":"j1"}]}}`,
	`{"timestamp":1517016948,"jobs":{}}`,
	`{"code":"VersionMismatch","message":"version mismatch","clientToken":"tok-1","timestamp":1489096425,"executionState":{"status":"IN_PROGRESS","statusDetails":{"step":"2"},"versionNumber":3}}`,
	`{"code":"InvalidStateTransition","executionState":{"status":"SUCCEEDED","versionNumber":"4"}}`,
	`{"status":"IN_PROGRESS","statusDetails":{"k":"v"},"expectedVersion":"3","executionNumber":1,"includeJobExecutionState":true,"stepTimeoutInMinutes":5,"clientToken":"t"}`,
	`{"executionNumber":2,"includeJobDocument":false,"clientToken":"t"}`,
	`{"timestamp":1489096425123.5}`,
	`{"timestamp":"1e3","execution":{"jobId":"x","jobDocument":" {\"a\":[1,2,{\"b\":null}]} "}}`,
	`{"execution":{"jobId":"x","jobDocument":"\"nested\""}}`,
	`{"execution":{"jobId":"x","jobDocument":{ "a" : "\u00e9\u2028<>&" }}}`,
	`{"code":"","message":"x"}`,
	`{"code":`,
	`null`,
	`[]`,
	`"{}"`,
	``,
}

// decodeTargets returns fresh values of every body type.
func decodeTargets() []any {
	return []any{
		new(job.GetPendingRequest), new(job.GetPendingResponse),
		new(job.StartNextRequest), new(job.StartNextResponse),
		new(job.DescribeRequest), new(job.DescribeResponse),
		new(job.UpdateRequest), new(job.UpdateResponse),
		new(job.JobExecutionsChanged), new(job.NextJobExecutionChanged),
		new(job.Execution), new(job.Summary), new(job.ExecutionState),
		new(job.RejectedError),
	}
}

// FuzzDecode decodes arbitrary bytes into every body type. It must never
// panic; what decodes must encode, and its encoding must be stable: decoding
// it again and encoding gives the same bytes.
func FuzzDecode(f *testing.F) {
	for _, s := range payloadSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, v := range decodeTargets() {
			if json.Unmarshal(data, v) != nil {
				continue
			}
			b1, err := json.Marshal(v)
			if err != nil {
				t.Fatalf("%T decoded from %q does not encode: %v", v, data, err)
			}
			v2 := reflect.New(reflect.TypeOf(v).Elem()).Interface()
			if err := json.Unmarshal(b1, v2); err != nil {
				t.Fatalf("%T: own encoding %s does not decode: %v", v, b1, err)
			}
			b2, err := json.Marshal(v2)
			if err != nil {
				t.Fatalf("%T: re-encode: %v", v, err)
			}
			if !bytes.Equal(b1, b2) {
				t.Fatalf("%T: encoding not stable:\nfrom %q\n1: %s\n2: %s", v, data, b1, b2)
			}
		}
	})
}

// FuzzDecodeRejected: DecodeRejected never panics, succeeds only with a
// code, and a decoded rejection survives a round trip.
func FuzzDecodeRejected(f *testing.F) {
	for _, s := range payloadSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		re, err := job.DecodeRejected(data)
		if err != nil {
			if re != nil {
				t.Fatalf("DecodeRejected(%q) = %+v with error %v", data, re, err)
			}
			return
		}
		if re.Code == "" {
			t.Fatalf("DecodeRejected(%q) succeeded without a code", data)
		}
		_ = re.Error()
		_ = re.Retryable()
		b, err := json.Marshal(re)
		if err != nil {
			t.Fatalf("encode %+v: %v", re, err)
		}
		re2, err := job.DecodeRejected(b)
		if err != nil {
			t.Fatalf("DecodeRejected(own encoding %s): %v", b, err)
		}
		if re2.Code != re.Code || re2.Timestamp != re.Timestamp {
			t.Fatalf("round trip: %+v, want %+v", re2, re)
		}
	})
}

// FuzzNumber: a Timestamp and a Version decode alike from any bytes, and
// what decodes survives a round trip.
func FuzzNumber(f *testing.F) {
	for _, s := range []string{`1489096425`, `1489096425.789`, `"1489096425"`, `"3.5"`, `null`, `9223372036854775807`,
		`1e19`, `"soon"`, `"0x1p4"`, `"+5"`, `-0`, `"\u0033"`, `true`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var ts job.Timestamp
		var v job.Version
		errT, errV := ts.UnmarshalJSON(data), v.UnmarshalJSON(data)
		if (errT == nil) != (errV == nil) || int64(ts) != int64(v) {
			t.Fatalf("%q: Timestamp %d, %v; Version %d, %v", data, ts, errT, v, errV)
		}
		if errT != nil {
			return
		}
		_ = ts.Time()
		b, err := json.Marshal(ts)
		if err != nil {
			t.Fatal(err)
		}
		var back job.Timestamp
		if err := json.Unmarshal(b, &back); err != nil || back != ts {
			t.Fatalf("%q: round trip of %d via %s = %d, %v", data, ts, b, back, err)
		}
	})
}

// FuzzStatusDetails: Validate never panics; valid details survive a JSON
// round trip unchanged, and keep their validity.
func FuzzStatusDetails(f *testing.F) {
	f.Add("progress", "50%")
	f.Add("step:name", "download image")
	f.Add("", "v")
	f.Add("k", "")
	f.Add("a b", "v")
	f.Add("k", "a\u200bb")
	f.Add("k", "a\u202eb")
	f.Add("k", "a\xffb")
	f.Add("k", strings.Repeat("é", 1024))
	f.Add("k", strings.Repeat("é", 1025))
	f.Add("k", "\u2028<script>&")
	f.Fuzz(func(t *testing.T, k, v string) {
		d := job.StatusDetails{k: v}
		if err := d.Validate(); err != nil {
			return
		}
		if n := utf8.RuneCountInString(v); !utf8.ValidString(v) || n < 1 || n > job.MaxStatusDetailValueLength {
			t.Fatalf("Validate accepted value %q (%d runes)", v, n)
		}
		if job.ValidateThingName(k) != nil {
			t.Fatalf("Validate accepted key %q that is not of [a-zA-Z0-9:_-]{1,128}", k)
		}
		b, err := json.Marshal(job.UpdateRequest{Status: job.InProgress, StatusDetails: d})
		if err != nil {
			t.Fatal(err)
		}
		var back job.UpdateRequest
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("decode %s: %v", b, err)
		}
		if !reflect.DeepEqual(back.StatusDetails, d) {
			t.Fatalf("round trip of %q = %q via %s", d, back.StatusDetails, b)
		}
		if err := back.Validate(); err != nil {
			t.Fatalf("decoded request no longer valid: %v", err)
		}
	})
}

// FuzzValidateIDs: the validators never panic; what they accept survives a
// JSON round trip, and the rules nest as the spec says.
func FuzzValidateIDs(f *testing.F) {
	for _, s := range []string{"a", "azAZ09_-", "arn:thing:1", "$next", "$NEXT", "a/b", "a+b", "#", "a\x00b",
		"caf\u00e9", "a\xffb", strings.Repeat("a", 64), strings.Repeat("a", 65), strings.Repeat("x", 129),
		"c8a0e7c2-2b1c-4b8b-9f7a-0d4c5e6f7a8b", "a\u200bb", "\uFFFD", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		thingErr := job.ValidateThingName(s)
		jobErr := job.ValidateJobID(s)
		describeErr := job.ValidateDescribeJobID(s)
		tokenErr := job.ValidateClientToken(s)
		if jobErr == nil {
			if describeErr != nil {
				t.Fatalf("%q: valid job id refused by Describe: %v", s, describeErr)
			}
			if thingErr != nil {
				t.Fatalf("%q: valid job id is not a valid thing name: %v", s, thingErr)
			}
			if tokenErr != nil {
				t.Fatalf("%q: valid job id is not a valid client token: %v", s, tokenErr)
			}
		}
		if describeErr == nil && jobErr != nil && s != job.NextJobID {
			t.Fatalf("%q: Describe accepts what ValidateJobID refuses", s)
		}
		if thingErr == nil && (len(s) < 1 || len(s) > job.MaxThingNameLength) {
			t.Fatalf("%q: thing name of %d bytes accepted", s, len(s))
		}
		if tokenErr == nil && (len(s) > job.MaxClientTokenLength || !utf8.ValidString(s)) {
			t.Fatalf("%q: client token accepted", s)
		}
		for _, err := range []error{thingErr, jobErr, describeErr, tokenErr} {
			if err != nil {
				_ = err.Error()
			}
		}
		e := job.Execution{}
		if thingErr == nil {
			e.ThingName = s
		}
		if describeErr == nil {
			e.JobID = s
		}
		r := job.DescribeResponse{Execution: &e}
		if tokenErr == nil {
			r.ClientToken = s
		}
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		var back job.DescribeResponse
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("decode %s: %v", b, err)
		}
		if !reflect.DeepEqual(back, r) {
			t.Fatalf("round trip of %+v = %+v via %s", r, back, b)
		}
	})
}
