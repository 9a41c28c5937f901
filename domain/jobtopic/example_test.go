package jobtopic_test

import (
	"errors"
	"fmt"

	"github.com/iotjobs/iotjobs/domain/job"
	"github.com/iotjobs/iotjobs/domain/jobtopic"
)

// Build the request topic, then recognize its replies.
func ExampleNew() {
	req, err := jobtopic.New("thing-1", jobtopic.Describe, job.NextJobID)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(req)
	accepted := jobtopic.Topic{Thing: req.Thing, Kind: req.Kind.Accepted(), JobID: req.JobID}
	fmt.Println(accepted)

	_, err = jobtopic.New("thing-1", jobtopic.Update, job.NextJobID)
	fmt.Println(errors.Is(err, job.ErrInvalidInput))
	// Output:
	// $aws/things/thing-1/jobs/$next/get
	// $aws/things/thing-1/jobs/$next/get/accepted
	// true
}

// Parse every incoming topic and check the thing and kind before acting.
func ExampleParse() {
	for _, name := range []string{
		"$aws/things/thing-1/jobs/j1/update/rejected",
		"$aws/things/thing-1/jobs/notify-next",
		"$aws/things/thing-1/shadow/update",
	} {
		t, err := jobtopic.Parse(name)
		if err != nil {
			fmt.Println(errors.Is(err, jobtopic.ErrNotJobsTopic), err)
			continue
		}
		fmt.Println(t.Thing, t.Kind, t.JobID, t.Kind.IsRejected(), t.Kind.Request())
	}
	// Output:
	// thing-1 UpdateRejected j1 true Update
	// thing-1 NotifyNext  false Kind(0)
	// true jobtopic: not a jobs topic: "$aws/things/thing-1/shadow/update"
}

func ExampleFilter() {
	f, _ := jobtopic.Filter("thing-1")
	fmt.Println(f)
	// Output: $aws/things/thing-1/jobs/#
}
