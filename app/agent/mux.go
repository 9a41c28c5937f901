package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/iotjobs/iotjobs/domain/job"
)

// ErrInvalidDocument is wrapped by the errors of Operations for a job
// document it cannot route.
var ErrInvalidDocument = errors.New("agent: invalid job document")

// ErrUnknownOperation is wrapped by the error of a Mux for an operation no
// handler is registered for.
var ErrUnknownOperation = errors.New("agent: unknown operation")

// RunHandlerAction is the action type of the steps a Mux understands in
// the AWS managed-template form of a job document.
const RunHandlerAction = "runHandler"

// Operation is what a job document asks a device to do, as Operations reads
// it.
type Operation struct {
	// Name is the handler to run: the document's "operation" field, or the
	// step's action input "handler".
	Name string
	// Args are the step's action input "args" (template form only).
	Args []string
	// Action is the step's action name (template form only).
	Action string
	// Step is the index of the step in the document's steps (template form
	// only; zero otherwise).
	Step int
}

// templateStep is one step of an AWS managed job template.
type templateStep struct {
	Action *struct {
		Name  string `json:"name"`
		Type  string `json:"type"`
		Input *struct {
			Handler string   `json:"handler"`
			Args    []string `json:"args"`
		} `json:"input"`
	} `json:"action"`
}

// Operations reads what doc asks to do, in one of two forms:
//
//   - a document with an "operation" string, e.g.
//     {"operation":"install","version":"2.4.1"}: one Operation of that name
//     (the other fields are the handler's to read);
//   - the form of AWS managed job templates, with "steps" whose action is of
//     type "runHandler", e.g.
//     {"version":"1.0","steps":[{"action":{"name":"reboot","type":"runHandler","input":{"handler":"reboot.sh","args":["now"]}}}]}:
//     one Operation per step, named by its input's handler, in order.
//
// A document with both reads as the first form. Anything else (not a JSON
// object, neither form, an empty name, another action type) is an error
// wrapping ErrInvalidDocument.
func Operations(doc job.Document) ([]Operation, error) {
	var d map[string]json.RawMessage
	if err := json.Unmarshal(doc, &d); err != nil || d == nil {
		return nil, fmt.Errorf("%w: not a JSON object", ErrInvalidDocument)
	}
	// "operation" wins: the other fields, "steps" included, are then the
	// handler's to read.
	if raw, ok := d["operation"]; ok {
		var name string
		if err := json.Unmarshal(raw, &name); err != nil || name == "" {
			return nil, fmt.Errorf("%w: \"operation\" is not a non-empty string", ErrInvalidDocument)
		}
		return []Operation{{Name: name}}, nil
	}
	raw, ok := d["steps"]
	if !ok {
		return nil, fmt.Errorf("%w: neither \"operation\" nor \"steps\"", ErrInvalidDocument)
	}
	var steps []templateStep
	if err := json.Unmarshal(raw, &steps); err != nil {
		return nil, fmt.Errorf("%w: \"steps\" is not a list of steps with actions", ErrInvalidDocument)
	}
	if len(steps) == 0 {
		return nil, fmt.Errorf("%w: no steps", ErrInvalidDocument)
	}
	ops := make([]Operation, len(steps))
	for i, s := range steps {
		switch {
		case s.Action == nil:
			return nil, fmt.Errorf("%w: step %d has no action", ErrInvalidDocument, i)
		case s.Action.Type != RunHandlerAction:
			return nil, fmt.Errorf("%w: step %d: action type %q, want %q", ErrInvalidDocument, i, s.Action.Type, RunHandlerAction)
		case s.Action.Input == nil || s.Action.Input.Handler == "":
			return nil, fmt.Errorf("%w: step %d: no input handler", ErrInvalidDocument, i)
		}
		ops[i] = Operation{Name: s.Action.Input.Handler, Args: s.Action.Input.Args, Action: s.Action.Name, Step: i}
	}
	return ops, nil
}

// Mux is a Handler that routes a job to the handler registered for the
// operation its document names (see Operations). A job whose document
// cannot be read, or names an operation nobody handles, is rejected
// (REJECTED, with the reason) without running anything. A document of
// several steps runs their handlers one after the other, each with
// Job.Operation set to its step, and stops at the first error.
//
// The zero Mux is ready to use; it is safe for concurrent use.
type Mux struct {
	mu       sync.RWMutex
	handlers map[string]Handler
}

// NewMux returns an empty Mux.
func NewMux() *Mux { return &Mux{} }

// Handle registers h for the operation name, replacing the handler
// registered before; a nil h removes it.
func (m *Mux) Handle(name string, h Handler) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if h == nil {
		delete(m.handlers, name)
		return
	}
	if m.handlers == nil {
		m.handlers = make(map[string]Handler)
	}
	m.handlers[name] = h
}

// HandleFunc registers f for the operation name, as Handle does.
func (m *Mux) HandleFunc(name string, f func(ctx context.Context, j Job, progress Progress) error) {
	if f == nil {
		m.Handle(name, nil)
		return
	}
	m.Handle(name, HandlerFunc(f))
}

// Handler returns the handler registered for the operation name, or nil.
func (m *Mux) Handler(name string) Handler {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.handlers[name]
}

// HandleJob routes j: it rejects a document Operations cannot read and an
// operation without handler (the error wraps ErrInvalidDocument or
// ErrUnknownOperation inside a *RejectError), else runs the handler of each
// operation in turn.
func (m *Mux) HandleJob(ctx context.Context, j Job, progress Progress) error {
	ops, err := Operations(j.Document)
	if err != nil {
		return Reject(err)
	}
	hs := make([]Handler, len(ops))
	for i, op := range ops {
		if hs[i] = m.Handler(op.Name); hs[i] == nil {
			return Reject(fmt.Errorf("%w %q", ErrUnknownOperation, op.Name))
		}
	}
	for i, h := range hs {
		j.Operation = ops[i]
		if err := h.HandleJob(ctx, j, progress); err != nil {
			return err
		}
	}
	return nil
}
