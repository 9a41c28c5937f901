package jobs

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/iotjobs/iotjobs/domain/job"
)

// TestMarshalRequest checks that marshalRequest writes exactly what
// json.Marshal does.
func TestMarshalRequest(t *testing.T) {
	n, v, yes, no := int64(3), job.Version(7), true, false
	bodies := []any{
		&job.GetPendingRequest{},
		&job.GetPendingRequest{ClientToken: "tok"},
		&job.GetPendingRequest{ClientToken: "a<b&c>\"\\\n é"},
		&job.DescribeRequest{},
		&job.DescribeRequest{ClientToken: "tok"},
		&job.DescribeRequest{ExecutionNumber: &n, IncludeJobDocument: &no, ClientToken: "tok"},
		&job.DescribeRequest{IncludeJobDocument: &yes},
		&job.DescribeRequest{ExecutionNumber: &n},
		&job.UpdateRequest{Status: job.InProgress},
		&job.UpdateRequest{Status: job.Succeeded, ClientToken: "tok"},
		&job.UpdateRequest{Status: job.InProgress, ExpectedVersion: &v, ExecutionNumber: &n, IncludeJobExecutionState: true, IncludeJobDocument: true, StepTimeoutInMinutes: &n, ClientToken: "tok"},
		&job.UpdateRequest{Status: job.Failed, StatusDetails: job.StatusDetails{"a": "b"}, ClientToken: "tok"},
		&job.UpdateRequest{Status: "we<ird", ClientToken: "tok"},
		&job.StartNextRequest{ClientToken: "tok"},
	}
	for _, body := range bodies {
		want, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		got, err := marshalRequest(body)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("marshalRequest(%+v) = %s, %v; want %s", body, got, err, want)
		}
	}
}

func BenchmarkMarshalRequest(b *testing.B) {
	v := job.Version(2)
	req := &job.UpdateRequest{Status: job.InProgress, ExpectedVersion: &v, ClientToken: "0123456789abcdefghijkl"}
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			marshalRequest(req)
		}
	})
	b.Run("reflect", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			json.Marshal(req)
		}
	})
}
