package agent_test

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/iotjobs/iotjobs/app/agent"
	"github.com/iotjobs/iotjobs/domain/job"
)

func TestOperations(t *testing.T) {
	tests := []struct {
		doc     string
		want    []agent.Operation
		invalid string // a part of the error message; "" for none
	}{
		{doc: `{"operation":"install","version":"2"}`, want: []agent.Operation{{Name: "install"}}},
		{doc: ` {"operation":"x"} `, want: []agent.Operation{{Name: "x"}}},
		{doc: `{"version":"1.0","steps":[{"action":{"name":"Download","type":"runHandler","input":{"handler":"download-file.sh","args":["https://x","/tmp"]}}}]}`,
			want: []agent.Operation{{Name: "download-file.sh", Args: []string{"https://x", "/tmp"}, Action: "Download"}}},
		{doc: `{"version":"1.0","steps":[{"action":{"type":"runHandler","input":{"handler":"a"}}},{"action":{"name":"B","type":"runHandler","input":{"handler":"b","args":[]}}}]}`,
			want: []agent.Operation{{Name: "a"}, {Name: "b", Args: []string{}, Action: "B", Step: 1}}},
		// "operation" wins; "steps" is then the handler's own field.
		{doc: `{"operation":"op","steps":[{"action":{"type":"runHandler","input":{"handler":"s"}}}]}`, want: []agent.Operation{{Name: "op"}}},
		{doc: `{"operation":"install","steps":4}`, want: []agent.Operation{{Name: "install"}}},
		{doc: ``, invalid: "not a JSON object"},
		{doc: `["operation"]`, invalid: "not a JSON object"},
		{doc: `{"operation":`, invalid: "not a JSON object"},
		{doc: `{}`, invalid: `neither "operation" nor "steps"`},
		{doc: `{"operation":""}`, invalid: "not a non-empty string"},
		{doc: `{"operation":7}`, invalid: "not a non-empty string"},
		{doc: `{"steps":[]}`, invalid: "no steps"},
		{doc: `{"steps":null}`, invalid: "no steps"},
		{doc: `{"steps":4}`, invalid: `"steps" is not a list`},
		{doc: `{"steps":[{}]}`, invalid: "step 0 has no action"},
		{doc: `{"steps":[{"action":{"type":"runCommand","input":{"handler":"a"}}}]}`, invalid: `action type "runCommand"`},
		{doc: `{"steps":[{"action":{"type":"runHandler","input":{}}}]}`, invalid: "no input handler"},
		{doc: `{"steps":[{"action":{"type":"runHandler","input":{"handler":"a","args":[1]}}}]}`, invalid: `"steps" is not a list`},
	}
	for _, tt := range tests {
		t.Run(tt.doc, func(t *testing.T) {
			got, err := agent.Operations(job.Document(tt.doc))
			if tt.invalid != "" {
				if !errors.Is(err, agent.ErrInvalidDocument) || !strings.Contains(err.Error(), tt.invalid) {
					t.Errorf("error %v, want ErrInvalidDocument with %q", err, tt.invalid)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Operations = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

func TestMux(t *testing.T) {
	var ran []string
	rec := func(name string, err error) agent.HandlerFunc {
		return func(_ context.Context, j agent.Job, p agent.Progress) error {
			ran = append(ran, name+":"+j.Operation.Name)
			p.Report(job.StatusDetails{"op": name})
			return err
		}
	}
	boom := errors.New("boom")
	var m agent.Mux // the zero Mux works
	m.Handle("a", rec("a", nil))
	m.HandleFunc("b", rec("b", nil))
	m.Handle("bad", rec("bad", boom))
	m.Handle("gone", rec("gone", nil))
	m.Handle("gone", nil)
	m.HandleFunc("gone2", rec("gone2", nil))
	m.HandleFunc("gone2", nil)
	steps := func(names ...string) job.Document {
		var b strings.Builder
		b.WriteString(`{"version":"1.0","steps":[`)
		for i, n := range names {
			if i > 0 {
				b.WriteString(",")
			}
			b.WriteString(`{"action":{"type":"runHandler","input":{"handler":"` + n + `"}}}`)
		}
		b.WriteString("]}")
		return job.Document(b.String())
	}
	tests := []struct {
		name string
		doc  job.Document
		ran  []string
		err  func(error) bool
	}{
		{name: "operation", doc: job.Document(`{"operation":"a"}`), ran: []string{"a:a"}, err: isNil},
		{name: "steps", doc: steps("a", "b", "a"), ran: []string{"a:a", "b:b", "a:a"}, err: isNil},
		{name: "stops at the first error", doc: steps("a", "bad", "b"), ran: []string{"a:a", "bad:bad"},
			err: func(err error) bool { return err == boom }},
		{name: "unknown step runs nothing", doc: steps("a", "nope"),
			err: func(err error) bool { return isReject(err) && errors.Is(err, agent.ErrUnknownOperation) }},
		{name: "removed", doc: job.Document(`{"operation":"gone"}`),
			err: func(err error) bool { return isReject(err) && errors.Is(err, agent.ErrUnknownOperation) }},
		{name: "removed func", doc: job.Document(`{"operation":"gone2"}`),
			err: func(err error) bool { return isReject(err) && errors.Is(err, agent.ErrUnknownOperation) }},
		{name: "invalid", doc: job.Document(`nope`),
			err: func(err error) bool { return isReject(err) && errors.Is(err, agent.ErrInvalidDocument) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ran = nil
			var reports int
			err := m.HandleJob(context.Background(), agent.Job{ID: "j", Document: tt.doc},
				agent.ProgressFunc(func(job.StatusDetails) { reports++ }))
			if !tt.err(err) {
				t.Errorf("HandleJob: %v", err)
			}
			if !reflect.DeepEqual(ran, tt.ran) || reports != len(tt.ran) {
				t.Errorf("ran %q with %d reports, want %q", ran, reports, tt.ran)
			}
		})
	}
	if m.Handler("a") == nil || m.Handler("gone") != nil || agent.NewMux().Handler("a") != nil {
		t.Error("Handler does not return what was registered")
	}
}

func isNil(err error) bool { return err == nil }

func isReject(err error) bool {
	var rej *agent.RejectError
	return errors.As(err, &rej)
}

func TestErrors(t *testing.T) {
	boom := errors.New("boom")
	tests := []struct {
		err  error
		want string
	}{
		{agent.Reject(boom), "boom"},
		{&agent.RejectError{}, "rejected"},
		{&agent.PanicError{Value: 42}, "handler panicked: 42"},
		{&agent.JobEndedError{JobID: "j", Status: job.Canceled}, "agent: job j is CANCELED"},
		{&agent.JobEndedError{JobID: "j", Deleted: true}, "agent: job j was deleted"},
		{&agent.JobEndedError{JobID: "j"}, "agent: job j ended"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("%#v.Error() = %q, want %q", tt.err, got, tt.want)
		}
	}
	if agent.Reject(nil) != nil {
		t.Error("Reject(nil) is not nil")
	}
	if !errors.Is(agent.Reject(boom), boom) {
		t.Error("Reject does not wrap")
	}
	if !errors.Is(&agent.JobEndedError{}, agent.ErrJobCanceled) || errors.Is(&agent.JobEndedError{}, agent.ErrStopped) {
		t.Error("JobEndedError matches the wrong errors")
	}
}
