package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/iotjobs/iotjobs/app/agent"
	"github.com/iotjobs/iotjobs/domain/job"
)

// tailSize is how much of a handler's stdout and stderr goes into the
// status details of a failed job.
const tailSize = 512

// execHandler runs a job as an executable: {"operation":"NAME","args":[...]}
// (or the AWS managed-template form) runs DIR/NAME with the args. Exit 0 is
// SUCCEEDED; another exit code is FAILED with the code and the tails of
// stdout and stderr in the status details; a missing handler or an
// unreadable document is REJECTED.
type execHandler struct {
	dir string
	// grace is how long a canceled handler has between SIGTERM and SIGKILL.
	grace time.Duration
}

// HandleJob runs the executables the job document names, one after the
// other, and stops at the first that fails.
func (h execHandler) HandleJob(ctx context.Context, j agent.Job, progress agent.Progress) error {
	ops, err := agent.Operations(j.Document)
	if err != nil {
		return agent.Reject(err)
	}
	if len(ops) == 0 {
		return agent.Reject(errors.New("the job document names no operation"))
	}
	for _, op := range ops {
		if len(op.Args) == 0 && len(ops) == 1 {
			op.Args = documentArgs(j.Document)
		}
		if err := h.run(ctx, j, op, progress); err != nil {
			return err
		}
	}
	return nil
}

// run runs one operation's executable and waits for it.
func (h execHandler) run(ctx context.Context, j agent.Job, op agent.Operation, progress agent.Progress) error {
	if op.Name == "" || op.Name != filepath.Base(op.Name) || strings.HasPrefix(op.Name, ".") {
		return agent.Reject(fmt.Errorf("operation %q is not a handler name", op.Name))
	}
	path := filepath.Join(h.dir, op.Name)
	if fi, err := os.Stat(path); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		return agent.Reject(fmt.Errorf("no executable handler %q in %s", op.Name, h.dir))
	}
	cmd := exec.CommandContext(ctx, path, op.Args...)
	cmd.Dir = h.dir
	cmd.Env = append(os.Environ(),
		"IOTJOBS_JOB_ID="+j.ID,
		"IOTJOBS_THING_NAME="+j.Thing,
		"IOTJOBS_JOB_DOCUMENT="+string(j.Document),
	)
	// Canceled (the job ended at the service, or the agent stops): ask
	// politely, then kill after the grace period.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = h.grace
	var stdout, stderr tail
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		details := job.StatusDetails{"exitCode": strconv.Itoa(exit.ExitCode())}
		if s := stdout.String(); s != "" {
			details["stdout"] = s
		}
		if s := stderr.String(); s != "" {
			details["stderr"] = s
		}
		progress.Report(details)
		return fmt.Errorf("handler %s: %s", op.Name, exit.ProcessState)
	}
	if err != nil {
		return fmt.Errorf("handler %s: %w", op.Name, err)
	}
	return nil
}

// documentArgs returns the "args" of a plain {"operation","args"} document.
func documentArgs(doc job.Document) []string {
	var d struct {
		Args []string `json:"args"`
	}
	if doc.Decode(&d) != nil {
		return nil
	}
	return d.Args
}

// tail keeps the last tailSize bytes written to it.
type tail struct{ b []byte }

func (t *tail) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if over := len(t.b) - tailSize; over > 0 {
		t.b = append(t.b[:0], t.b[over:]...)
	}
	return len(p), nil
}

func (t *tail) String() string { return strings.TrimSpace(string(t.b)) }
