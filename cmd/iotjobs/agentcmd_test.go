package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/iotjobs/iotjobs/domain/job"
	"github.com/iotjobs/iotjobs/testkit/jobstest"
)

// writeHandlers writes handler scripts into a new directory.
func writeHandlers(t *testing.T, scripts map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range scripts {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// waitFile polls, with a deadline, until path exists.
func waitFile(t *testing.T, path string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(path); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never appeared", path)
		}
		time.Sleep(10 * time.Millisecond) // polling with a deadline
	}
}

func TestAgentCommand(t *testing.T) {
	e, conn := startEmulator(t, "agent-thing")
	work := t.TempDir()
	started := filepath.Join(work, "slow-started")
	handlers := writeHandlers(t, map[string]string{
		"ok":   `echo "$IOTJOBS_JOB_ID $IOTJOBS_THING_NAME $*" > "` + work + `/ok.out"`,
		"fail": `echo "disk full" >&2; exit 3`,
		"slow": `touch "` + started + `"; trap 'exit 143' TERM; while :; do sleep 0.05; done`,
	})
	ctx := context.Background()
	svc := e.Service()
	create := func(id, doc string) {
		t.Helper()
		if err := svc.CreateJob(ctx, jobstest.JobSpec{JobID: id, Document: json.RawMessage(doc), Targets: []string{"agent-thing"}}); err != nil {
			t.Fatal(err)
		}
	}
	create("job-ok", `{"operation":"ok","args":["a","b c"]}`)
	create("job-fail", `{"operation":"fail"}`)
	create("job-unknown", `{"operation":"format-disk"}`)
	create("job-template", `{"version":"1.0","steps":[{"action":{"name":"Run ok","type":"runHandler","input":{"handler":"ok","args":["x"]}}}]}`)
	create("job-slow", `{"operation":"slow"}`)

	var stdout, stderr bytes.Buffer
	done := make(chan error, 1)
	runCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	go func() {
		done <- run(runCtx, append([]string{"agent", "--once", "--handlers", handlers, "--grace", "2s"}, conn...), &stdout, &stderr)
	}()
	// The slow job runs last: cancel it once its handler started.
	waitFile(t, started)
	if err := svc.CancelExecution(ctx, "agent-thing", "job-slow", true); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("agent: %v\nstdout:\n%s\nstderr:\n%s", err, &stdout, &stderr)
	}

	want := map[string]job.Status{
		"job-ok": job.Succeeded, "job-template": job.Succeeded, "job-fail": job.Failed,
		"job-unknown": job.Rejected, "job-slow": job.Canceled,
	}
	for id, status := range want {
		ex, _ := svc.Execution("agent-thing", id)
		if ex.Status != status {
			t.Errorf("%s: %s (details %v), want %s", id, ex.Status, ex.StatusDetails, status)
		}
		if !strings.Contains(stdout.String(), id) {
			t.Errorf("output does not mention %s:\n%s", id, &stdout)
		}
	}
	fail, _ := svc.Execution("agent-thing", "job-fail")
	if fail.StatusDetails["exitCode"] != "3" || fail.StatusDetails["stderr"] != "disk full" {
		t.Errorf("job-fail details = %v, want exitCode 3 and stderr", fail.StatusDetails)
	}
	unknown, _ := svc.Execution("agent-thing", "job-unknown")
	if !strings.Contains(unknown.StatusDetails["reason"], "format-disk") {
		t.Errorf("job-unknown reason = %q", unknown.StatusDetails["reason"])
	}
	// The last run of "ok" was the template job's, with its args.
	out, err := os.ReadFile(filepath.Join(work, "ok.out"))
	if err != nil || strings.TrimSpace(string(out)) != "job-template agent-thing x" {
		t.Errorf("ok handler saw %q (%v), want the job id, thing and args", out, err)
	}
}

func TestAgentCommandErrors(t *testing.T) {
	_, conn := startEmulator(t, "agent-err")
	dir := t.TempDir()
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no handlers", append([]string{"agent"}, conn...), "missing --handlers"},
		{"handlers not a dir", append([]string{"agent", "--handlers", "/no/such/dir"}, conn...), "not a directory"},
		{"bad concurrency", append([]string{"agent", "--handlers", dir, "--concurrency", "0"}, conn...), "--concurrency"},
		{"extra argument", append([]string{"agent", "--handlers", dir, "extra"}, conn...), "unexpected"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := runCLI(t, tt.args...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want mention of %q\n%s", err, tt.want, out)
			}
		})
	}
}
