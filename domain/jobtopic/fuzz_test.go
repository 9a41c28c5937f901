package jobtopic_test

import (
	"strings"
	"testing"

	"github.com/iotjobs/iotjobs/domain/jobtopic"
)

var topicSeeds = []string{
	"$aws/things/T/jobs/get",
	"$aws/things/T/jobs/get/accepted",
	"$aws/things/T/jobs/get/rejected",
	"$aws/things/T/jobs/start-next",
	"$aws/things/T/jobs/start-next/accepted",
	"$aws/things/T/jobs/start-next/rejected",
	"$aws/things/thing-1/jobs/j1/get",
	"$aws/things/thing-1/jobs/$next/get/accepted",
	"$aws/things/thing-1/jobs/j1/get/rejected",
	"$aws/things/arn:x:y/jobs/j1/update",
	"$aws/things/T/jobs/j1/update/accepted",
	"$aws/things/T/jobs/j1/update/rejected",
	"$aws/things/T/jobs/notify",
	"$aws/things/T/jobs/notify-next",
	"$aws/things/T/jobs/get/get",
	"$aws/things/jobs/jobs/jobs/get",
	"$aws/things/T/jobs/$next/update",
	"$aws/things/+/jobs/#",
	"$aws/things//jobs/get",
	"$aws/things/T/jobs/get/accepted/x",
	"$aws/things/T/jobs//get",
	"$aws/things/T/get",
	"aws/things/T/jobs/get",
	"",
}

// FuzzParse: Parse never panics, and a parsed topic is valid and writes
// back to exactly the name it came from.
func FuzzParse(f *testing.F) {
	for _, s := range topicSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		top, err := jobtopic.Parse(name)
		if err != nil {
			if top != (jobtopic.Topic{}) {
				t.Fatalf("Parse(%q) = %+v with error %v", name, top, err)
			}
			return
		}
		if err := top.Validate(); err != nil {
			t.Fatalf("Parse(%q) = %+v, which is invalid: %v", name, top, err)
		}
		s := top.String()
		if s != name {
			t.Fatalf("Parse(%q).String() = %q", name, s)
		}
		back, err := jobtopic.Parse(s)
		if err != nil || back != top {
			t.Fatalf("Parse(%q) = %+v, %v; want %+v", s, back, err, top)
		}
		if strings.ContainsAny(name, "+#") {
			t.Fatalf("Parse(%q) accepted a wildcard", name)
		}
	})
}

// FuzzNew: a topic New accepts parses back to itself.
func FuzzNew(f *testing.F) {
	f.Add("T", uint8(jobtopic.Describe), "$next")
	f.Add("T", uint8(jobtopic.Update), "get")
	f.Add("jobs", uint8(jobtopic.DescribeAccepted), "jobs")
	f.Add("T", uint8(jobtopic.Notify), "")
	f.Add("T", uint8(0), "")
	f.Add("a/b", uint8(jobtopic.GetPending), "")
	f.Add("T", uint8(jobtopic.Update), "$next")
	f.Fuzz(func(t *testing.T, thing string, kind uint8, jobID string) {
		top, err := jobtopic.New(thing, jobtopic.Kind(kind), jobID)
		if err != nil {
			return
		}
		back, err := jobtopic.Parse(top.String())
		if err != nil || back != top {
			t.Fatalf("Parse(%q) = %+v, %v; want %+v", top.String(), back, err, top)
		}
	})
}
