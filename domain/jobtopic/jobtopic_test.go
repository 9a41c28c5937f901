package jobtopic_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/iotjobs/iotjobs/domain/job"
	"github.com/iotjobs/iotjobs/domain/jobtopic"
)

// kindTable describes every kind, and the invalid kinds 0 and 15, as the
// spec's topic table (§1) gives them.
var kindTable = []struct {
	k                                   jobtopic.Kind
	name                                string
	suffix                              string // after the prefix and job id
	valid, req, acc, rej, notif, hasJob bool
	request, accepted, rejected         jobtopic.Kind
}{
	{0, "Kind(0)", "", false, false, false, false, false, false, 0, 0, 0},
	{jobtopic.GetPending, "GetPending", "get", true, true, false, false, false, false, jobtopic.GetPending, jobtopic.GetPendingAccepted, jobtopic.GetPendingRejected},
	{jobtopic.GetPendingAccepted, "GetPendingAccepted", "get/accepted", true, false, true, false, false, false, jobtopic.GetPending, 0, 0},
	{jobtopic.GetPendingRejected, "GetPendingRejected", "get/rejected", true, false, false, true, false, false, jobtopic.GetPending, 0, 0},
	{jobtopic.StartNext, "StartNext", "start-next", true, true, false, false, false, false, jobtopic.StartNext, jobtopic.StartNextAccepted, jobtopic.StartNextRejected},
	{jobtopic.StartNextAccepted, "StartNextAccepted", "start-next/accepted", true, false, true, false, false, false, jobtopic.StartNext, 0, 0},
	{jobtopic.StartNextRejected, "StartNextRejected", "start-next/rejected", true, false, false, true, false, false, jobtopic.StartNext, 0, 0},
	{jobtopic.Describe, "Describe", "get", true, true, false, false, false, true, jobtopic.Describe, jobtopic.DescribeAccepted, jobtopic.DescribeRejected},
	{jobtopic.DescribeAccepted, "DescribeAccepted", "get/accepted", true, false, true, false, false, true, jobtopic.Describe, 0, 0},
	{jobtopic.DescribeRejected, "DescribeRejected", "get/rejected", true, false, false, true, false, true, jobtopic.Describe, 0, 0},
	{jobtopic.Update, "Update", "update", true, true, false, false, false, true, jobtopic.Update, jobtopic.UpdateAccepted, jobtopic.UpdateRejected},
	{jobtopic.UpdateAccepted, "UpdateAccepted", "update/accepted", true, false, true, false, false, true, jobtopic.Update, 0, 0},
	{jobtopic.UpdateRejected, "UpdateRejected", "update/rejected", true, false, false, true, false, true, jobtopic.Update, 0, 0},
	{jobtopic.Notify, "Notify", "notify", true, false, false, false, true, false, 0, 0, 0},
	{jobtopic.NotifyNext, "NotifyNext", "notify-next", true, false, false, false, true, false, 0, 0, 0},
	{15, "Kind(15)", "", false, false, false, false, false, false, 0, 0, 0},
	{255, "Kind(255)", "", false, false, false, false, false, false, 0, 0, 0},
}

func TestKindPredicates(t *testing.T) {
	for _, tt := range kindTable {
		t.Run(tt.name, func(t *testing.T) {
			k := tt.k
			checks := []struct {
				what      string
				got, want bool
			}{
				{"Valid", k.Valid(), tt.valid},
				{"IsRequest", k.IsRequest(), tt.req},
				{"IsAccepted", k.IsAccepted(), tt.acc},
				{"IsRejected", k.IsRejected(), tt.rej},
				{"IsNotification", k.IsNotification(), tt.notif},
				{"HasJobID", k.HasJobID(), tt.hasJob},
			}
			for _, c := range checks {
				if c.got != c.want {
					t.Errorf("%s.%s() = %v, want %v", tt.name, c.what, c.got, c.want)
				}
			}
			if got := k.String(); got != tt.name {
				t.Errorf("String() = %q, want %q", got, tt.name)
			}
			if got := k.Request(); got != tt.request {
				t.Errorf("Request() = %v, want %v", got, tt.request)
			}
			if got := k.Accepted(); got != tt.accepted {
				t.Errorf("Accepted() = %v, want %v", got, tt.accepted)
			}
			if got := k.Rejected(); got != tt.rejected {
				t.Errorf("Rejected() = %v, want %v", got, tt.rejected)
			}
			// A valid kind is exactly one of request, accepted, rejected,
			// notification.
			if tt.valid {
				n := 0
				for _, b := range []bool{tt.req, tt.acc, tt.rej, tt.notif} {
					if b {
						n++
					}
				}
				if n != 1 {
					t.Errorf("table: %s is %d of request/accepted/rejected/notification, want 1", tt.name, n)
				}
			}
		})
	}
}

func TestKindsList(t *testing.T) {
	var want []jobtopic.Kind
	for _, tt := range kindTable {
		if tt.valid {
			want = append(want, tt.k)
		}
	}
	if !slices.Equal(jobtopic.Kinds, want) {
		t.Errorf("Kinds = %v, want %v", jobtopic.Kinds, want)
	}
	for k := 0; k < 256; k++ {
		if got, want := jobtopic.Kind(k).Valid(), slices.Contains(jobtopic.Kinds, jobtopic.Kind(k)); got != want {
			t.Errorf("Kind(%d).Valid() = %v, want %v", k, got, want)
		}
	}
}

func TestBuildAndParse(t *testing.T) {
	const thing = "thing-1"
	for _, tt := range kindTable {
		if !tt.valid {
			continue
		}
		jobIDs := []string{""}
		if tt.hasJob {
			jobIDs = []string{"j1", "get", "update", "notify", "jobs", strings.Repeat("J", 64)}
			if tt.request == jobtopic.Describe {
				jobIDs = append(jobIDs, "$next")
			}
		}
		for _, id := range jobIDs {
			t.Run(tt.name+"/"+id, func(t *testing.T) {
				want := "$aws/things/" + thing + "/jobs/" + tt.suffix
				if id != "" {
					want = "$aws/things/" + thing + "/jobs/" + id + "/" + tt.suffix
				}
				top, err := jobtopic.New(thing, tt.k, id)
				if err != nil {
					t.Fatalf("New(%q, %s, %q): %v", thing, tt.k, id, err)
				}
				if got := top.String(); got != want {
					t.Errorf("String() = %q, want %q", got, want)
				}
				back, err := jobtopic.Parse(want)
				if err != nil {
					t.Fatalf("Parse(%q): %v", want, err)
				}
				if back != top {
					t.Errorf("Parse(%q) = %+v, want %+v", want, back, top)
				}
			})
		}
	}
}

func TestNewRefused(t *testing.T) {
	tests := []struct {
		name   string
		thing  string
		k      jobtopic.Kind
		jobID  string
		reason string
	}{
		{"kind 0", "T", 0, "", "invalid kind 0"},
		{"kind 15", "T", 15, "", "invalid kind 15"},
		{"empty thing", "", jobtopic.GetPending, "", "thingName"},
		{"thing with slash", "a/b", jobtopic.Notify, "", "thingName"},
		{"thing with +", "+", jobtopic.Notify, "", "thingName"},
		{"thing with #", "#", jobtopic.Notify, "", "thingName"},
		{"thing too long", strings.Repeat("t", 129), jobtopic.Notify, "", "thingName"},
		{"job id where none", "T", jobtopic.GetPending, "j1", "GetPending takes no job id"},
		{"job id on notify", "T", jobtopic.NotifyNext, "j1", "NotifyNext takes no job id"},
		{"$next on get pending", "T", jobtopic.GetPending, "$next", "takes no job id"},
		{"empty job id", "T", jobtopic.Describe, "", "jobId"},
		{"empty job id update", "T", jobtopic.Update, "", "jobId"},
		{"$next on update", "T", jobtopic.Update, "$next", "'$' not allowed"},
		{"$next on update accepted", "T", jobtopic.UpdateAccepted, "$next", "'$' not allowed"},
		{"$next on update rejected", "T", jobtopic.UpdateRejected, "$next", "'$' not allowed"},
		{"job id with slash", "T", jobtopic.Describe, "a/b", "'/' not allowed"},
		{"job id with +", "T", jobtopic.Update, "+", "'+' not allowed"},
		{"job id with #", "T", jobtopic.DescribeAccepted, "#", "'#' not allowed"},
		{"job id with colon", "T", jobtopic.Update, "a:b", "':' not allowed"},
		{"job id too long", "T", jobtopic.Update, strings.Repeat("j", 65), "65 characters"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := jobtopic.New(tt.thing, tt.k, tt.jobID)
			if err == nil {
				t.Fatalf("New(%q, %d, %q) = nil error, want one", tt.thing, uint8(tt.k), tt.jobID)
			}
			if !strings.Contains(err.Error(), tt.reason) {
				t.Errorf("error = %q, want it to contain %q", err, tt.reason)
			}
			// Everything but an invalid kind is a validation error.
			if tt.k.Valid() {
				var ve *job.ValidationError
				if !errors.Is(err, job.ErrInvalidInput) || !errors.As(err, &ve) {
					t.Errorf("error %v is not a *job.ValidationError", err)
				}
			}
		})
	}
}

func TestParseRefused(t *testing.T) {
	notJobs := []struct{ name, topic string }{
		{"empty", ""},
		{"wrong prefix", "aws/things/T/jobs/get"},
		{"wrong prefix case", "$AWS/things/T/jobs/get"},
		{"shadow topic", "$aws/things/T/shadow/get"},
		{"no thing level", "$aws/things/"},
		{"missing jobs level", "$aws/things/T/get"},
		{"jobs without slash", "$aws/things/T/jobs"},
		{"jobs with trailing slash only", "$aws/things/T/jobs/"},
		{"unknown suffix", "$aws/things/T/jobs/list"},
		{"unknown reply", "$aws/things/T/jobs/get/done"},
		{"unknown job op", "$aws/things/T/jobs/j1/delete"},
		{"job op reply unknown", "$aws/things/T/jobs/j1/update/maybe"},
		{"extra level after reply", "$aws/things/T/jobs/get/accepted/x"},
		{"extra level after job reply", "$aws/things/T/jobs/j1/get/accepted/x"},
		{"extra level after notify", "$aws/things/T/jobs/notify/x"},
		{"notify-next reply", "$aws/things/T/jobs/notify-next/accepted"},
		{"start-next with id", "$aws/things/T/jobs/j1/start-next"},
		{"trailing slash", "$aws/things/T/jobs/get/"},
		{"trailing slash job", "$aws/things/T/jobs/j1/"},
		{"double slash", "$aws/things/T/jobs//get/accepted/x"},
		{"wildcard suffix", "$aws/things/T/jobs/#"},
		{"plus suffix", "$aws/things/T/jobs/+"},
		{"wildcard in op", "$aws/things/T/jobs/j1/+"},
		{"hash in op", "$aws/things/T/jobs/j1/get/#"},
		{"upper case suffix", "$aws/things/T/jobs/GET"},
		{"leading slash", "/$aws/things/T/jobs/get"},
		{"filter", jobtopic.AllThingsFilter},
	}
	for _, tt := range notJobs {
		t.Run(tt.name, func(t *testing.T) {
			top, err := jobtopic.Parse(tt.topic)
			if err == nil {
				t.Fatalf("Parse(%q) = %+v, want an error", tt.topic, top)
			}
			if !errors.Is(err, jobtopic.ErrNotJobsTopic) {
				t.Errorf("Parse(%q) error = %v, want ErrNotJobsTopic", tt.topic, err)
			}
			if top != (jobtopic.Topic{}) {
				t.Errorf("Parse(%q) returned %+v with the error, want zero", tt.topic, top)
			}
		})
	}
	invalidIDs := []struct{ name, topic, field string }{
		{"empty thing", "$aws/things//jobs/get", "thingName"},
		{"thing with +", "$aws/things/+/jobs/get", "thingName"},
		{"thing with #", "$aws/things/#/jobs/notify", "thingName"},
		{"thing with dot", "$aws/things/a.b/jobs/notify", "thingName"},
		{"thing with extra level", "$aws/things/a/b/jobs/get", "thingName"},
		{"thing too long", "$aws/things/" + strings.Repeat("t", 129) + "/jobs/get", "thingName"},
		{"empty job id", "$aws/things/T/jobs//get", "jobId"},
		{"empty job id update", "$aws/things/T/jobs//update/accepted", "jobId"},
		{"job id +", "$aws/things/T/jobs/+/get", "jobId"},
		{"job id #", "$aws/things/T/jobs/#/update", "jobId"},
		{"job id with colon", "$aws/things/T/jobs/a:b/get", "jobId"},
		{"job id too long", "$aws/things/T/jobs/" + strings.Repeat("j", 65) + "/get", "jobId"},
		{"$next update", "$aws/things/T/jobs/$next/update", "jobId"},
		{"$next update accepted", "$aws/things/T/jobs/$next/update/accepted", "jobId"},
		{"$next update rejected", "$aws/things/T/jobs/$next/update/rejected", "jobId"},
		{"$NEXT describe", "$aws/things/T/jobs/$NEXT/get", "jobId"},
	}
	for _, tt := range invalidIDs {
		t.Run(tt.name, func(t *testing.T) {
			top, err := jobtopic.Parse(tt.topic)
			if err == nil {
				t.Fatalf("Parse(%q) = %+v, want an error", tt.topic, top)
			}
			var ve *job.ValidationError
			if !errors.As(err, &ve) || ve.Field != tt.field {
				t.Errorf("Parse(%q) error = %v, want a *job.ValidationError for %s", tt.topic, err, tt.field)
			}
			if top != (jobtopic.Topic{}) {
				t.Errorf("Parse(%q) returned %+v with the error, want zero", tt.topic, top)
			}
		})
	}
}

// Job ids equal to a topic word ("get", "update", "notify", "start-next",
// "jobs", "accepted") never clash with the fixed topics: a job topic has a
// job id level followed by get or update, and no fixed topic has get or
// update as its second level.
func TestParseJobIDsThatAreTopicWords(t *testing.T) {
	tests := []struct {
		topic string
		want  jobtopic.Topic
	}{
		{"$aws/things/T/jobs/get", jobtopic.Topic{Thing: "T", Kind: jobtopic.GetPending}},
		{"$aws/things/T/jobs/get/accepted", jobtopic.Topic{Thing: "T", Kind: jobtopic.GetPendingAccepted}},
		{"$aws/things/T/jobs/get/get", jobtopic.Topic{Thing: "T", Kind: jobtopic.Describe, JobID: "get"}},
		{"$aws/things/T/jobs/get/get/accepted", jobtopic.Topic{Thing: "T", Kind: jobtopic.DescribeAccepted, JobID: "get"}},
		{"$aws/things/T/jobs/get/update", jobtopic.Topic{Thing: "T", Kind: jobtopic.Update, JobID: "get"}},
		{"$aws/things/T/jobs/update/update/rejected", jobtopic.Topic{Thing: "T", Kind: jobtopic.UpdateRejected, JobID: "update"}},
		{"$aws/things/T/jobs/notify/get", jobtopic.Topic{Thing: "T", Kind: jobtopic.Describe, JobID: "notify"}},
		{"$aws/things/T/jobs/notify-next/update", jobtopic.Topic{Thing: "T", Kind: jobtopic.Update, JobID: "notify-next"}},
		{"$aws/things/T/jobs/start-next/get/rejected", jobtopic.Topic{Thing: "T", Kind: jobtopic.DescribeRejected, JobID: "start-next"}},
		{"$aws/things/T/jobs/accepted/get", jobtopic.Topic{Thing: "T", Kind: jobtopic.Describe, JobID: "accepted"}},
		{"$aws/things/jobs/jobs/jobs/get", jobtopic.Topic{Thing: "jobs", Kind: jobtopic.Describe, JobID: "jobs"}},
		{"$aws/things/jobs/jobs/get", jobtopic.Topic{Thing: "jobs", Kind: jobtopic.GetPending}},
		{"$aws/things/T/jobs/$next/get/accepted", jobtopic.Topic{Thing: "T", Kind: jobtopic.DescribeAccepted, JobID: "$next"}},
	}
	for _, tt := range tests {
		t.Run(tt.topic, func(t *testing.T) {
			got, err := jobtopic.Parse(tt.topic)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if got != tt.want {
				t.Errorf("Parse = %+v, want %+v", got, tt.want)
			}
			if s := got.String(); s != tt.topic {
				t.Errorf("String() = %q, want %q", s, tt.topic)
			}
		})
	}
}

func TestTopicStringUnvalidated(t *testing.T) {
	// String does not validate: it writes what it is given.
	tests := []struct {
		top  jobtopic.Topic
		want string
	}{
		{jobtopic.Topic{Thing: "T", Kind: 0}, "$aws/things/T/jobs/"},
		{jobtopic.Topic{Thing: "T", Kind: 15, JobID: "x"}, "$aws/things/T/jobs/"},
		{jobtopic.Topic{Thing: "T", Kind: jobtopic.Describe}, "$aws/things/T/jobs//get"},
		{jobtopic.Topic{Thing: "T", Kind: jobtopic.Notify, JobID: "x"}, "$aws/things/T/jobs/notify"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := tt.top.String(); got != tt.want {
				t.Errorf("String() = %q, want %q", got, tt.want)
			}
			if err := tt.top.Validate(); err == nil {
				t.Errorf("Validate(%+v) = nil, want an error", tt.top)
			}
		})
	}
}

func TestFilter(t *testing.T) {
	got, err := jobtopic.Filter("thing-1")
	if err != nil {
		t.Fatal(err)
	}
	if want := "$aws/things/thing-1/jobs/#"; got != want {
		t.Errorf("Filter = %q, want %q", got, want)
	}
	for _, bad := range []string{"", "+", "#", "a/b", strings.Repeat("x", 129)} {
		got, err := jobtopic.Filter(bad)
		if err == nil || got != "" {
			t.Errorf("Filter(%q) = %q, %v; want an error", bad, got, err)
		}
		if !errors.Is(err, job.ErrInvalidInput) {
			t.Errorf("Filter(%q) error = %v, want ErrInvalidInput", bad, err)
		}
	}
	if want := "$aws/things/+/jobs/#"; jobtopic.AllThingsFilter != want {
		t.Errorf("AllThingsFilter = %q, want %q", jobtopic.AllThingsFilter, want)
	}
	if jobtopic.Prefix != "$aws/things/" {
		t.Errorf("Prefix = %q", jobtopic.Prefix)
	}
	// Every topic of a thing matches its filter (prefix before "#").
	f, _ := jobtopic.Filter("T")
	for _, k := range jobtopic.Kinds {
		id := ""
		if k.HasJobID() {
			id = "j"
		}
		top, _ := jobtopic.New("T", k, id)
		if !strings.HasPrefix(top.String(), strings.TrimSuffix(f, "#")) {
			t.Errorf("%s does not match %s", top, f)
		}
	}
}

// The longest topic, for a 128-character thing and a 64-character job id,
// stays within AWS's 256-byte topic limit.
func TestLongestTopic(t *testing.T) {
	top, err := jobtopic.New(strings.Repeat("t", 128), jobtopic.UpdateRejected, strings.Repeat("j", 64))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(top.String()); n > 256 {
		t.Errorf("len = %d, want at most 256", n)
	}
}
