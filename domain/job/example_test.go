package job_test

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/iotjobs/iotjobs/domain/job"
)

// A rejected reply decodes to a *RejectedError: match its code with
// errors.Is and read the execution state it carries with errors.As.
func ExampleDecodeRejected() {
	body := []byte(`{"code":"VersionMismatch","message":"expected version 2, have 3","clientToken":"c1",
		"timestamp":1489096425,"executionState":{"status":"IN_PROGRESS","versionNumber":3}}`)
	rej, err := job.DecodeRejected(body)
	if err != nil {
		fmt.Println("undecodable:", err)
		return
	}
	err = fmt.Errorf("update j1: %w", rej)

	fmt.Println(err)
	fmt.Println("version mismatch:", errors.Is(err, job.ErrVersionMismatch))
	fmt.Println("retry as is:", rej.Retryable())
	var re *job.RejectedError
	if errors.As(err, &re) && re.ExecutionState != nil {
		fmt.Println("current:", re.ExecutionState.Status, "version", re.ExecutionState.VersionNumber)
	}
	// Output:
	// update j1: job: rejected: VersionMismatch: expected version 2, have 3
	// version mismatch: true
	// retry as is: false
	// current: IN_PROGRESS version 3
}

// A job document arrives as an object, or as a string holding one; both
// decode into the device's own type.
func ExampleDocument_Decode() {
	var r job.DescribeResponse
	_ = json.Unmarshal([]byte(`{"timestamp":1489096425,"execution":{"jobId":"j1","status":"QUEUED",
		"jobDocument":"{\"operation\":\"reboot\"}","versionNumber":"1"}}`), &r)

	var doc struct {
		Operation string `json:"operation"`
	}
	if err := r.Execution.JobDocument.Decode(&doc); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(r.Execution.JobID, r.Execution.Status, r.Execution.VersionNumber, doc.Operation)
	fmt.Println(r.Timestamp.Time().UTC())
	// Output:
	// j1 QUEUED 1 reboot
	// 2017-03-09 21:53:45 +0000 UTC
}

// Validate refuses a request before anything is sent; every problem is a
// *ValidationError matching ErrInvalidInput.
func ExampleUpdateRequest_Validate() {
	r := job.UpdateRequest{Status: job.Succeeded, StatusDetails: job.StatusDetails{"result": ""}}
	err := r.Validate()
	fmt.Println(err)
	fmt.Println(errors.Is(err, job.ErrInvalidInput))
	var ve *job.ValidationError
	if errors.As(err, &ve) {
		fmt.Println("field:", ve.Field)
	}
	// Output:
	// job: invalid statusDetails[result]: empty value
	// true
	// field: statusDetails[result]
}

func ExampleStatus_CanBecome() {
	fmt.Println(job.Queued.CanBecome(job.InProgress))
	fmt.Println(job.InProgress.CanBecome(job.InProgress))
	fmt.Println(job.Succeeded.CanBecome(job.InProgress))
	fmt.Println(job.InProgress.CanBecome(job.Queued))
	// Output:
	// true
	// true
	// false
	// false
}
