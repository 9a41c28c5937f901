package jobstest

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/iotjobs/iotjobs/domain/job"
	"github.com/iotjobs/iotjobs/domain/jobtopic"
)

func ids(l []job.Summary) []string {
	out := []string{}
	for _, s := range l {
		out = append(out, s.JobID)
	}
	return out
}

func TestGetPending(t *testing.T) {
	e := newEnv(t)
	d := e.device("dev-1")

	t.Run("empty lists are []", func(t *testing.T) {
		r := d.call(jobtopic.GetPending, "", nil)
		if r.Kind != jobtopic.GetPendingAccepted {
			t.Fatalf("reply on %s, want get/accepted", r.Topic)
		}
		if r.raw("inProgressJobs") != "[]" || r.raw("queuedJobs") != "[]" {
			t.Errorf("reply = %s, want empty lists as []", r.Payload)
		}
		if got, want := r.raw("timestamp"), fmt.Sprint(t0.Unix()); got != want {
			t.Errorf("timestamp = %s, want %s (seconds)", got, want)
		}
	})

	// Job j00 is queued first, ..., j11 last; j03 and j07 are started.
	for i := range 12 {
		e.create(fmt.Sprintf("j%02d", i), "dev-1")
		e.clock.Advance(time.Second)
	}
	for _, id := range []string{"j07", "j03"} {
		d.update(id, job.InProgress, nil)
	}

	t.Run("oldest first, in progress first, at most 10", func(t *testing.T) {
		resp := d.getPending()
		if got, want := ids(resp.InProgressJobs), []string{"j03", "j07"}; !slices.Equal(got, want) {
			t.Errorf("inProgressJobs = %v, want %v", got, want)
		}
		want := []string{"j00", "j01", "j02", "j04", "j05", "j06", "j08", "j09"}
		if got := ids(resp.QueuedJobs); !slices.Equal(got, want) {
			t.Errorf("queuedJobs = %v, want %v", got, want)
		}
		q := resp.QueuedJobs[0]
		if q.QueuedAt != job.TimestampOf(t0) || q.VersionNumber != 1 || q.ExecutionNumber != 1 || q.StartedAt != 0 {
			t.Errorf("summary of j00 = %+v", q)
		}
		ip := resp.InProgressJobs[0]
		if ip.VersionNumber != 2 || ip.StartedAt == 0 {
			t.Errorf("summary of j03 = %+v, want version 2 and startedAt", ip)
		}
	})

	t.Run("ties in queuedAt keep creation order", func(t *testing.T) {
		d2 := e.device("dev-2")
		for _, id := range []string{"zz", "aa", "mm"} {
			e.create(id, "dev-2") // same second
		}
		if got, want := ids(d2.getPending().QueuedJobs), []string{"zz", "aa", "mm"}; !slices.Equal(got, want) {
			t.Errorf("queuedJobs = %v, want %v", got, want)
		}
	})
}

func TestStartNext(t *testing.T) {
	e := newEnv(t)
	d := e.device("dev-1")

	if x := d.startNext(nil); x != nil {
		t.Fatalf("StartNext with nothing pending = %+v, want no execution", x)
	}
	r := d.call(jobtopic.StartNext, "", nil)
	if r.has("execution") {
		t.Errorf("reply %s has an execution", r.Payload)
	}

	e.create("first", "dev-1")
	e.clock.Advance(time.Minute)
	e.create("second", "dev-1")
	e.clock.Advance(time.Minute)

	x := d.startNext(map[string]any{"statusDetails": map[string]string{"step": "download"}})
	if x == nil || x.JobID != "first" || x.Status != job.InProgress || x.VersionNumber != 2 ||
		x.StartedAt != job.TimestampOf(e.clock.Now()) || x.StatusDetails["step"] != "download" ||
		string(x.JobDocument) != `{"op":"first"}` || x.ThingName != "dev-1" || x.ExecutionNumber != 1 {
		t.Fatalf("StartNext = %+v", x)
	}

	e.clock.Advance(time.Minute)
	again := d.startNext(map[string]any{"statusDetails": map[string]string{"step": "other"}})
	if again == nil || again.JobID != "first" || again.VersionNumber != 2 || again.StatusDetails["step"] != "download" ||
		again.StartedAt != x.StartedAt {
		t.Errorf("second StartNext = %+v, want the same execution unchanged", again)
	}

	// Without statusDetails: none set.
	d.update("first", job.Succeeded, nil)
	x = d.startNext(nil)
	if x == nil || x.JobID != "second" || x.StatusDetails != nil {
		t.Errorf("StartNext = %+v, want second without details", x)
	}
}

func TestDescribe(t *testing.T) {
	e := newEnv(t)
	d := e.device("dev-1")

	t.Run("$next with nothing pending", func(t *testing.T) {
		r := d.call(jobtopic.Describe, job.NextJobID, nil)
		if r.Topic != "$aws/things/dev-1/jobs/$next/get/accepted" || r.has("execution") {
			t.Errorf("reply on %s = %s, want $next/get/accepted without execution", r.Topic, r.Payload)
		}
	})

	e.create("a", "dev-1")
	e.clock.Advance(time.Second)
	e.create("b", "dev-1")
	e.create("done", "dev-1")
	d.update("done", job.Succeeded, nil)

	tests := []struct {
		name    string
		jobID   string
		fields  map[string]any
		wantJob string
		wantDoc bool
		code    job.ErrorCode
	}{
		{name: "by id", jobID: "b", wantJob: "b", wantDoc: true},
		{name: "$next is oldest queued", jobID: job.NextJobID, wantJob: "a", wantDoc: true},
		{name: "without document", jobID: "a", fields: map[string]any{"includeJobDocument": false}, wantJob: "a"},
		{name: "with document", jobID: "a", fields: map[string]any{"includeJobDocument": true}, wantJob: "a", wantDoc: true},
		{name: "$next without document", jobID: job.NextJobID, fields: map[string]any{"includeJobDocument": false}, wantJob: "a"},
		{name: "execution number", jobID: "a", fields: map[string]any{"executionNumber": 1}, wantJob: "a", wantDoc: true},
		{name: "unknown execution number", jobID: "a", fields: map[string]any{"executionNumber": 2}, code: job.CodeResourceNotFound},
		{name: "unknown job", jobID: "nope", code: job.CodeResourceNotFound},
		{name: "terminal", jobID: "done", code: job.CodeTerminalStateReached},
		{name: "bad execution number", jobID: "a", fields: map[string]any{"executionNumber": 0}, code: job.CodeInvalidRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := d.call(jobtopic.Describe, tt.jobID, tt.fields)
			if tt.code != "" {
				rej := r.rejected(t)
				if rej.Code != tt.code || rej.ExecutionState != nil {
					t.Errorf("rejected %+v, want code %s without executionState", rej, tt.code)
				}
				if want := d.topic(jobtopic.DescribeRejected, tt.jobID); r.Topic != want {
					t.Errorf("reply on %s, want %s", r.Topic, want)
				}
				return
			}
			var resp job.DescribeResponse
			r.accepted(t, &resp)
			x := resp.Execution
			if x == nil || x.JobID != tt.wantJob || x.Status != job.Queued || x.VersionNumber != 1 {
				t.Fatalf("execution = %+v, want %s QUEUED v1", x, tt.wantJob)
			}
			if got := len(x.JobDocument) > 0; got != tt.wantDoc {
				t.Errorf("jobDocument = %s, want present %t", x.JobDocument, tt.wantDoc)
			}
			if want := d.topic(jobtopic.DescribeAccepted, tt.jobID); r.Topic != want {
				t.Errorf("reply on %s, want %s", r.Topic, want)
			}
		})
	}

	t.Run("$next is first in progress", func(t *testing.T) {
		d.update("b", job.InProgress, nil)
		if x := d.describe(job.NextJobID); x == nil || x.JobID != "b" || x.Status != job.InProgress {
			t.Errorf("describe $next = %+v, want b IN_PROGRESS", x)
		}
	})
}

func TestUpdate(t *testing.T) {
	type step struct {
		status job.Status
		fields map[string]any
		code   job.ErrorCode // "" = accepted
	}
	tests := []struct {
		name  string
		steps []step
		final job.Status
	}{
		{"QUEUED to IN_PROGRESS to SUCCEEDED", []step{{status: job.InProgress}, {status: job.Succeeded}}, job.Succeeded},
		{"QUEUED to SUCCEEDED", []step{{status: job.Succeeded}}, job.Succeeded},
		{"QUEUED to FAILED", []step{{status: job.Failed}}, job.Failed},
		{"QUEUED to REJECTED", []step{{status: job.Rejected}}, job.Rejected},
		{"IN_PROGRESS repeats", []step{{status: job.InProgress}, {status: job.InProgress}, {status: job.InProgress}}, job.InProgress},
		{"IN_PROGRESS to FAILED", []step{{status: job.InProgress}, {status: job.Failed}}, job.Failed},
		{"IN_PROGRESS to REJECTED", []step{{status: job.InProgress}, {status: job.Rejected}}, job.Rejected},
		{"SUCCEEDED to IN_PROGRESS", []step{{status: job.Succeeded}, {status: job.InProgress, code: job.CodeInvalidStateTransition}}, job.Succeeded},
		{"FAILED to SUCCEEDED", []step{{status: job.Failed}, {status: job.Succeeded, code: job.CodeInvalidStateTransition}}, job.Failed},
		{"REJECTED to REJECTED", []step{{status: job.Rejected}, {status: job.Rejected, code: job.CodeInvalidStateTransition}}, job.Rejected},
		{"device sets QUEUED", []step{{status: job.Queued, code: job.CodeInvalidRequest}}, job.Queued},
		{"device sets TIMED_OUT", []step{{status: job.TimedOut, code: job.CodeInvalidRequest}}, job.Queued},
		{"device sets CANCELED", []step{{status: job.Canceled, code: job.CodeInvalidRequest}}, job.Queued},
		{"device sets REMOVED", []step{{status: job.Removed, code: job.CodeInvalidRequest}}, job.Queued},
		{"unknown status", []step{{status: "DONE", code: job.CodeInvalidRequest}}, job.Queued},
		{"no status", []step{{status: "", code: job.CodeInvalidRequest}}, job.Queued},
		{"expected version matches", []step{{status: job.InProgress, fields: map[string]any{"expectedVersion": 1}}}, job.InProgress},
		{"expected version as string", []step{{status: job.InProgress, fields: map[string]any{"expectedVersion": "1"}}}, job.InProgress},
		{"expected version mismatch", []step{{status: job.InProgress, fields: map[string]any{"expectedVersion": 7}, code: job.CodeVersionMismatch}}, job.Queued},
		{"expected version string mismatch", []step{{status: job.InProgress, fields: map[string]any{"expectedVersion": "2"}, code: job.CodeVersionMismatch}}, job.Queued},
		{"terminal wins over version", []step{{status: job.Failed}, {status: job.InProgress, fields: map[string]any{"expectedVersion": 1}, code: job.CodeInvalidStateTransition}}, job.Failed},
		{"unknown execution number", []step{{status: job.InProgress, fields: map[string]any{"executionNumber": 3}, code: job.CodeResourceNotFound}}, job.Queued},
		{"execution number", []step{{status: job.InProgress, fields: map[string]any{"executionNumber": 1}}}, job.InProgress},
		{"bad step timeout", []step{{status: job.InProgress, fields: map[string]any{"stepTimeoutInMinutes": 0}, code: job.CodeInvalidRequest}}, job.Queued},
		{"step timeout too long", []step{{status: job.InProgress, fields: map[string]any{"stepTimeoutInMinutes": 10081}, code: job.CodeInvalidRequest}}, job.Queued},
		{"bad status details", []step{{status: job.InProgress, fields: map[string]any{"statusDetails": map[string]string{"bad key": "v"}}, code: job.CodeInvalidRequest}}, job.Queued},
		{"empty detail value", []step{{status: job.InProgress, fields: map[string]any{"statusDetails": map[string]string{"k": ""}}, code: job.CodeInvalidRequest}}, job.Queued},
		{"negative expected version", []step{{status: job.InProgress, fields: map[string]any{"expectedVersion": -1}, code: job.CodeInvalidRequest}}, job.Queued},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			d := e.device("dev-1")
			e.create("j", "dev-1")
			version := job.Version(1)
			for i, s := range tt.steps {
				e.clock.Advance(time.Second)
				fields := map[string]any{"status": s.status, "includeJobExecutionState": true}
				for k, v := range s.fields {
					fields[k] = v
				}
				r := d.call(jobtopic.Update, "j", fields)
				if s.code == "" {
					var resp job.UpdateResponse
					r.accepted(t, &resp)
					version++
					if st := resp.ExecutionState; st == nil || st.Status != s.status || st.VersionNumber != version {
						t.Fatalf("step %d: executionState = %+v, want %s v%d", i, st, s.status, version)
					}
					continue
				}
				rej := r.rejected(t)
				if rej.Code != s.code {
					t.Fatalf("step %d: code %s (%s), want %s", i, rej.Code, rej.Message, s.code)
				}
				withState := s.code == job.CodeInvalidStateTransition || s.code == job.CodeVersionMismatch
				if (rej.ExecutionState != nil) != withState {
					t.Errorf("step %d: executionState = %+v, want present %t", i, rej.ExecutionState, withState)
				}
				if withState && rej.ExecutionState.VersionNumber != version {
					t.Errorf("step %d: executionState version = %d, want %d", i, rej.ExecutionState.VersionNumber, version)
				}
			}
			x, ok := e.svc.Execution("dev-1", "j")
			if !ok || x.Status != tt.final || x.VersionNumber != version {
				t.Errorf("execution = %+v, want %s v%d", x, tt.final, version)
			}
		})
	}
}

func TestUpdateFields(t *testing.T) {
	e := newEnv(t)
	d := e.device("dev-1")
	e.create("j", "dev-1")

	t.Run("nothing included by default", func(t *testing.T) {
		r := d.call(jobtopic.Update, "j", map[string]any{"status": job.InProgress, "statusDetails": map[string]string{"p": "1"}})
		if r.Kind != jobtopic.UpdateAccepted || r.has("executionState") || r.has("jobDocument") {
			t.Errorf("reply %s: %s, want accepted without state or document", r.Topic, r.Payload)
		}
		x, _ := e.svc.Execution("dev-1", "j")
		if x.StartedAt != job.TimestampOf(t0) || x.StatusDetails["p"] != "1" {
			t.Errorf("execution = %+v", x)
		}
	})
	t.Run("details omitted are unchanged", func(t *testing.T) {
		e.clock.Advance(time.Minute)
		resp := d.update("j", job.InProgress, map[string]any{"includeJobExecutionState": true, "includeJobDocument": true})
		if st := resp.ExecutionState; st == nil || st.StatusDetails["p"] != "1" {
			t.Errorf("executionState = %+v, want details kept", st)
		}
		if string(resp.JobDocument) != `{"op":"j"}` {
			t.Errorf("jobDocument = %s", resp.JobDocument)
		}
		x, _ := e.svc.Execution("dev-1", "j")
		if x.LastUpdatedAt != job.TimestampOf(e.clock.Now()) || x.StartedAt != job.TimestampOf(t0) {
			t.Errorf("execution = %+v, want lastUpdatedAt now and startedAt kept", x)
		}
	})
	t.Run("details replaced", func(t *testing.T) {
		resp := d.update("j", job.InProgress, map[string]any{"statusDetails": map[string]string{"q": "2"}, "includeJobExecutionState": true})
		if st := resp.ExecutionState; len(st.StatusDetails) != 1 || st.StatusDetails["q"] != "2" {
			t.Errorf("statusDetails = %v, want {q:2}", st.StatusDetails)
		}
	})
	t.Run("unknown job", func(t *testing.T) {
		rej := d.call(jobtopic.Update, "nope", map[string]any{"status": job.Succeeded}).rejected(t)
		if rej.Code != job.CodeResourceNotFound || rej.ExecutionState != nil {
			t.Errorf("rejected %+v, want ResourceNotFound", rej)
		}
	})
}

func TestRejectedRequests(t *testing.T) {
	e := newEnv(t)
	d := e.device("dev-1")
	e.create("j", "dev-1")
	long := strings.Repeat("x", 65)
	tests := []struct {
		name      string
		topic     string
		body      string
		code      job.ErrorCode
		token     string // echoed; "" = none
		replyOn   string // default topic + "/rejected"
		wantState bool
	}{
		{name: "unknown suffix", topic: "$aws/things/dev-1/jobs/frobnicate", body: `{"clientToken":"t1"}`, code: job.CodeInvalidTopic, token: "t1"},
		{name: "unknown operation", topic: "$aws/things/dev-1/jobs/j/delete", body: `{}`, code: job.CodeInvalidTopic},
		{name: "$next update", topic: "$aws/things/dev-1/jobs/$next/update", body: `{"status":"SUCCEEDED","clientToken":"t2"}`, code: job.CodeInvalidTopic, token: "t2"},
		{name: "bad job id", topic: "$aws/things/dev-1/jobs/a.b/get", body: `{}`, code: job.CodeInvalidTopic},
		{name: "too deep", topic: "$aws/things/dev-1/jobs/j/get/more", body: `{}`, code: job.CodeInvalidTopic},
		{name: "jobs level only", topic: "$aws/things/dev-1/jobs", body: `{}`, code: job.CodeInvalidTopic, replyOn: "$aws/things/dev-1/jobs/rejected"},
		{name: "not JSON", topic: "$aws/things/dev-1/jobs/get", body: `{"clientToken":`, code: job.CodeInvalidJSON},
		{name: "empty body", topic: "$aws/things/dev-1/jobs/start-next", body: ``, code: job.CodeInvalidJSON},
		{name: "not UTF-8", topic: "$aws/things/dev-1/jobs/j/get", body: "{\"clientToken\":\"\xff\"}", code: job.CodeInvalidJSON},
		{name: "array", topic: "$aws/things/dev-1/jobs/get", body: `[1]`, code: job.CodeInvalidRequest},
		{name: "null", topic: "$aws/things/dev-1/jobs/get", body: `null`, code: job.CodeInvalidRequest},
		{name: "wrong type", topic: "$aws/things/dev-1/jobs/j/update", body: `{"status":5,"clientToken":"t3"}`, code: job.CodeInvalidRequest, token: "t3"},
		{name: "version not a number", topic: "$aws/things/dev-1/jobs/j/update", body: `{"status":"IN_PROGRESS","expectedVersion":"x","clientToken":"t4"}`, code: job.CodeInvalidRequest, token: "t4"},
		{name: "include flag not bool", topic: "$aws/things/dev-1/jobs/j/get", body: `{"includeJobDocument":"yes","clientToken":"t5"}`, code: job.CodeInvalidRequest, token: "t5"},
		{name: "token too long", topic: "$aws/things/dev-1/jobs/get", body: `{"clientToken":"` + long + `"}`, code: job.CodeInvalidRequest, token: long},
		{name: "start-next bad details", topic: "$aws/things/dev-1/jobs/start-next", body: `{"statusDetails":{"k":"a\u0007"},"clientToken":"t6"}`, code: job.CodeInvalidRequest, token: "t6"},
		{name: "start-next bad step", topic: "$aws/things/dev-1/jobs/start-next", body: `{"stepTimeoutInMinutes":10081}`, code: job.CodeInvalidRequest},
		{name: "version mismatch", topic: "$aws/things/dev-1/jobs/j/update", body: `{"status":"IN_PROGRESS","expectedVersion":9,"clientToken":"t7"}`, code: job.CodeVersionMismatch, token: "t7", wantState: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := d.send(tt.topic, tt.body)
			want := tt.topic + "/rejected"
			if tt.replyOn != "" {
				want = tt.replyOn
			}
			if r.Topic != want {
				t.Fatalf("reply on %s: %s, want %s", r.Topic, r.Payload, want)
			}
			rej, err := job.DecodeRejected(r.Payload)
			if err != nil {
				t.Fatal(err)
			}
			if rej.Code != tt.code || rej.ClientToken != tt.token || rej.Message == "" || rej.Timestamp != job.TimestampOf(t0) {
				t.Errorf("rejected %+v, want code %s, token %q, a message and the timestamp", rej, tt.code, tt.token)
			}
			if (rej.ExecutionState != nil) != tt.wantState {
				t.Errorf("executionState = %+v, want present %t", rej.ExecutionState, tt.wantState)
			}
		})
	}
	if x, _ := e.svc.Execution("dev-1", "j"); x.Status != job.Queued || x.VersionNumber != 1 {
		t.Errorf("after rejected requests: %+v, want unchanged", x)
	}
}

func TestInvalidThingName(t *testing.T) {
	e := newEnv(t)
	d := e.deviceFilter("bad!name", "$aws/things/bad!name/jobs/#")
	r := d.send("$aws/things/bad!name/jobs/get", `{"clientToken":"x"}`)
	if rej := r.rejected(t); rej.Code != job.CodeInvalidTopic || rej.ClientToken != "x" {
		t.Errorf("rejected %+v, want InvalidTopic", rej)
	}
	if got := e.svc.Requests(); len(got) != 1 || got[0].Kind != 0 || got[0].Thing != "" || got[0].Code != job.CodeInvalidTopic {
		t.Errorf("Requests() = %+v", got)
	}
}

func TestIgnoredTopics(t *testing.T) {
	e := newEnv(t)
	e.create("j", "dev-1")
	spy := e.deviceFilter("dev-1", "$aws/things/+/jobs/#")
	other, err := e.b.Connect("other")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	topics := []string{
		"$aws/things/dev-1/jobs/get/accepted",
		"$aws/things/dev-1/jobs/get/rejected",
		"$aws/things/dev-1/jobs/start-next/accepted",
		"$aws/things/dev-1/jobs/j/get/accepted",
		"$aws/things/dev-1/jobs/$next/get/rejected",
		"$aws/things/dev-1/jobs/j/update/rejected",
		"$aws/things/dev-1/jobs/notify",
		"$aws/things/dev-1/jobs/notify-next",
		"$aws/things/dev-1/jobs/unknown/rejected",
		"$aws/things/dev-1/jobs/x/y/accepted",
		"$aws/things/bad!/jobs/get/accepted",
	}
	for _, topic := range topics {
		if err := other.Publish(ctx(t), publishMsg(topic, `{"clientToken":"t"}`)); err != nil {
			t.Fatal(err)
		}
	}
	e.quiesce()
	// The spy sees exactly what was published: the service answered nothing.
	if got := spy.in.takeAll(); len(got) != len(topics) {
		t.Errorf("spy received %d messages, want %d: %v", len(got), len(topics), got)
	}
	if r := e.svc.Requests(); len(r) != 0 {
		t.Errorf("Requests() = %+v, want none", r)
	}
}

func TestInjectError(t *testing.T) {
	e := newEnv(t)
	d := e.device("dev-1")
	d2 := e.device("dev-2")
	e.create("j", "dev-1", "dev-2")
	d.notes()
	d2.notes()

	e.svc.InjectError(job.CodeRequestThrottled, 2)
	e.svc.InjectError(job.CodeInternalError, 1)
	calls := []struct {
		d     *device
		kind  jobtopic.Kind
		jobID string
		code  job.ErrorCode
	}{
		{d, jobtopic.StartNext, "", job.CodeRequestThrottled},
		{d2, jobtopic.Update, "j", job.CodeRequestThrottled},
		{d, jobtopic.GetPending, "", job.CodeInternalError},
		{d, jobtopic.Describe, "j", ""},
	}
	for i, c := range calls {
		fields := map[string]any{}
		if c.kind == jobtopic.Update {
			fields["status"] = job.Succeeded
		}
		r := c.d.call(c.kind, c.jobID, fields)
		if c.code == "" {
			if r.Kind != c.kind.Accepted() {
				t.Errorf("call %d: reply on %s, want accepted", i, r.Topic)
			}
			continue
		}
		rej := r.rejected(t)
		if rej.Code != c.code || rej.ExecutionState != nil || r.Kind != c.kind.Rejected() {
			t.Errorf("call %d: %s: %+v, want %s", i, r.Topic, rej, c.code)
		}
	}
	for _, x := range e.svc.Executions() {
		if x.Status != job.Queued || x.VersionNumber != 1 {
			t.Errorf("faulted requests changed %+v", x)
		}
	}
	d.expectNotes()
	d2.expectNotes()
	var codes []job.ErrorCode
	for _, r := range e.svc.Requests() {
		codes = append(codes, r.Code)
	}
	if want := []job.ErrorCode{job.CodeRequestThrottled, job.CodeRequestThrottled, job.CodeInternalError, ""}; !slices.Equal(codes, want) {
		t.Errorf("logged codes = %q, want %q", codes, want)
	}

	t.Run("cleared", func(t *testing.T) {
		e.svc.InjectError(job.CodeInternalError, 5)
		e.svc.InjectError(job.CodeInternalError, 0)
		if r := d.call(jobtopic.GetPending, "", nil); r.Kind != jobtopic.GetPendingAccepted {
			t.Errorf("reply on %s, want accepted after clearing", r.Topic)
		}
	})
	t.Run("not consumed by invalid topics", func(t *testing.T) {
		e.svc.InjectError(job.CodeInternalError, 1)
		if rej := d.send("$aws/things/dev-1/jobs/nothing", `{}`).rejected(t); rej.Code != job.CodeInvalidTopic {
			t.Errorf("code %s, want InvalidTopic", rej.Code)
		}
		if rej := d.call(jobtopic.GetPending, "", nil).rejected(t); rej.Code != job.CodeInternalError {
			t.Errorf("code %s, want InternalError", rej.Code)
		}
	})
}

func TestRequestsLog(t *testing.T) {
	e := newEnv(t)
	d := e.device("dev-1")
	e.create("j", "dev-1")
	e.clock.Advance(time.Minute)
	d.send(d.topic(jobtopic.Update, "j"), `{"status":"IN_PROGRESS","clientToken":"tok"}`)
	d.send(d.topic(jobtopic.Describe, "nope"), `{"clientToken":"tok2"}`)
	got := e.svc.Requests()
	want := []Request{
		{Time: t0.Add(time.Minute), Topic: "$aws/things/dev-1/jobs/j/update", Thing: "dev-1", Kind: jobtopic.Update, JobID: "j",
			ClientToken: "tok", Body: []byte(`{"status":"IN_PROGRESS","clientToken":"tok"}`), Reply: jobtopic.UpdateAccepted, ReplyTopic: "$aws/things/dev-1/jobs/j/update/accepted"},
		{Time: t0.Add(time.Minute), Topic: "$aws/things/dev-1/jobs/nope/get", Thing: "dev-1", Kind: jobtopic.Describe, JobID: "nope",
			ClientToken: "tok2", Body: []byte(`{"clientToken":"tok2"}`), Reply: jobtopic.DescribeRejected, ReplyTopic: "$aws/things/dev-1/jobs/nope/get/rejected", Code: job.CodeResourceNotFound},
	}
	if len(got) != len(want) {
		t.Fatalf("Requests() = %+v, want %d", got, len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if !g.Time.Equal(w.Time) || g.Topic != w.Topic || g.Thing != w.Thing || g.Kind != w.Kind || g.JobID != w.JobID ||
			g.ClientToken != w.ClientToken || string(g.Body) != string(w.Body) || g.Reply != w.Reply || g.ReplyTopic != w.ReplyTopic || g.Code != w.Code {
			t.Errorf("request %d:\n got %+v\nwant %+v", i, g, w)
		}
		if g.Accepted() != (w.Code == "") {
			t.Errorf("request %d: Accepted() = %t", i, g.Accepted())
		}
	}
	got[0].Body[0] = 'X'
	if e.svc.Requests()[0].Body[0] != '{' {
		t.Error("Requests() shares its bodies")
	}
}

func TestRequestOrder(t *testing.T) {
	e := newEnv(t)
	d := e.device("dev-1")
	e.create("j", "dev-1")
	// Publish many updates without waiting; each expects the version the
	// previous one left.
	const n = 50
	for i := range n {
		body, _ := json.Marshal(map[string]any{"status": job.InProgress, "expectedVersion": i + 1, "clientToken": fmt.Sprint(i)})
		if err := d.c.Publish(ctx(t), publishMsg(d.topic(jobtopic.Update, "j"), string(body))); err != nil {
			t.Fatal(err)
		}
	}
	e.quiesce()
	for i, r := range e.svc.Requests() {
		if r.Code != "" || r.ClientToken != fmt.Sprint(i) {
			t.Errorf("request %d: token %s code %s, want accepted in order", i, r.ClientToken, r.Code)
		}
	}
	var tokens []string
	for _, m := range d.in.takeAll() {
		tokens = append(tokens, tokenOf(m.Payload))
	}
	for i := range n {
		if i >= len(tokens) || tokens[len(tokens)-n+i] != fmt.Sprint(i) {
			t.Fatalf("replies out of order: %v", tokens)
		}
	}
	if x, _ := e.svc.Execution("dev-1", "j"); x.VersionNumber != n+1 {
		t.Errorf("version = %d, want %d", x.VersionNumber, n+1)
	}
}
