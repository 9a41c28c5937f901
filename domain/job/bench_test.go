package job_test

import (
	"encoding/json"
	"testing"

	"github.com/iotjobs/iotjobs/domain/job"
)

var describeBody = []byte(`{"timestamp":1489096425,"clientToken":"Xq3v0nY8T2mK9pL4rW6sAb",` +
	`"execution":{"jobId":"firmware-update-42","status":"IN_PROGRESS","statusDetails":{"step":"download","progress":"40%"},` +
	`"queuedAt":1489096123,"startedAt":1489096200,"lastUpdatedAt":1489096300,"versionNumber":3,"executionNumber":1,` +
	`"jobDocument":{"operation":"update","url":"https://example.com/fw/1.2.3.bin","sha256":"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}}}`)

func BenchmarkDecodeDescribeResponse(b *testing.B) {
	b.ReportAllocs()
	b.SetBytes(int64(len(describeBody)))
	for b.Loop() {
		var r job.DescribeResponse
		if err := json.Unmarshal(describeBody, &r); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeRejected(b *testing.B) {
	body := []byte(`{"code":"VersionMismatch","message":"version mismatch","clientToken":"Xq3v0nY8T2mK9pL4rW6sAb",` +
		`"timestamp":1489096425,"executionState":{"status":"IN_PROGRESS","versionNumber":3}}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := job.DecodeRejected(body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodeUpdateRequest(b *testing.B) {
	v := job.Version(3)
	r := job.UpdateRequest{Status: job.InProgress, StatusDetails: job.StatusDetails{"progress": "40%"},
		ExpectedVersion: &v, ClientToken: "Xq3v0nY8T2mK9pL4rW6sAb"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := json.Marshal(&r); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkValidateUpdateRequest(b *testing.B) {
	v := job.Version(3)
	r := job.UpdateRequest{Status: job.InProgress, StatusDetails: job.StatusDetails{"progress": "40%", "step": "download"},
		ExpectedVersion: &v, ClientToken: "Xq3v0nY8T2mK9pL4rW6sAb"}
	b.ReportAllocs()
	for b.Loop() {
		if err := r.Validate(); err != nil {
			b.Fatal(err)
		}
	}
}
