package agent_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	"github.com/iotjobs/iotjobs/app/agent"
	"github.com/iotjobs/iotjobs/domain/job"
)

// FuzzOperations reads arbitrary job documents, as they arrive from the
// network: Operations never panics; it either fails with an error wrapping
// ErrInvalidDocument and no operations, or returns at least one operation,
// each with a name, steps numbered in order; and reading the document again
// gives the same operations.
func FuzzOperations(f *testing.F) {
	for _, s := range []string{
		`{"operation":"install","version":"2.4.1"}`,
		`{"version":"1.0","steps":[{"action":{"name":"reboot","type":"runHandler","input":{"handler":"reboot.sh","args":["now"]}}}]}`,
		`{"operation":"op","steps":[{"action":{"type":"runHandler","input":{"handler":"s"}}}]}`,
		`{"steps":[{"action":{"type":"runCommand","input":{"handler":"a"}}}]}`,
		`{"steps":[{"action":null}]}`,
		`{"operation":"\u0000"}`,
		`{"operation":"a","operation":""}`,
		`{"steps":{}}`,
		`[]`,
		`null`,
		``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		ops, err := agent.Operations(job.Document(doc))
		if err != nil {
			if !errors.Is(err, agent.ErrInvalidDocument) {
				t.Fatalf("Operations(%q): error %v does not wrap ErrInvalidDocument", doc, err)
			}
			if ops != nil {
				t.Fatalf("Operations(%q) = %+v with error %v", doc, ops, err)
			}
			return
		}
		if len(ops) == 0 {
			t.Fatalf("Operations(%q): no operations and no error", doc)
		}
		if !json.Valid(doc) {
			t.Fatalf("Operations(%q) read a document that is not JSON", doc)
		}
		for i, op := range ops {
			if op.Name == "" {
				t.Fatalf("Operations(%q): operation %d has no name", doc, i)
			}
			if len(ops) > 1 && op.Step != i {
				t.Fatalf("Operations(%q): operation %d is step %d", doc, i, op.Step)
			}
		}
		again, err := agent.Operations(job.Document(doc))
		if err != nil || !reflect.DeepEqual(again, ops) {
			t.Fatalf("Operations(%q) not deterministic: %+v then %+v, %v", doc, ops, again, err)
		}
	})
}
