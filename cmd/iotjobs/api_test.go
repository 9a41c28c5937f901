package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/iotjobs/iotjobs/domain/job"
	"github.com/iotjobs/iotjobs/testkit/emulator"
	"github.com/iotjobs/iotjobs/testkit/jobstest"
)

// startEmulator starts an emulator for thing and returns it with the
// connection flags a user would pass to reach it with the certificate.
func startEmulator(t *testing.T, thing string) (*emulator.Emulator, []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e, err := emulator.Start(ctx, emulator.Options{Thing: thing, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	f := e.Files()
	return e, []string{"--endpoint", e.MQTTAddr(), "--thing", thing, "--ca", f.CA, "--cert", f.ClientCert, "--key", f.ClientKey}
}

func runCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	err := run(ctx, args, &stdout, &stderr)
	return stdout.String() + stderr.String(), err
}

func TestAPICommands(t *testing.T) {
	e, conn := startEmulator(t, "cli-thing")
	ctx := context.Background()
	err := e.Service().CreateJob(ctx, jobstest.JobSpec{JobID: "job-a", Document: json.RawMessage(`{"operation":"reboot"}`), Targets: []string{"cli-thing"}})
	if err != nil {
		t.Fatal(err)
	}
	with := func(args ...string) []string { return append(args, conn...) }

	out, err := runCLI(t, with("pending")...)
	if err != nil || !strings.Contains(out, "QUEUED") || !strings.Contains(out, "job-a") {
		t.Fatalf("pending: %v\n%s", err, out)
	}
	out, err = runCLI(t, with("describe", "job-a", "--json")...)
	var ex job.Execution
	if err != nil || json.Unmarshal([]byte(out), &ex) != nil || ex.JobID != "job-a" || ex.VersionNumber != 1 {
		t.Fatalf("describe --json: %v\n%s", err, out)
	}
	// Flags after the positional arguments work too.
	out, err = runCLI(t, append([]string{"update"}, append(conn, "job-a", "in_progress", "--detail", "step=1", "--detail", "of=2")...)...)
	if err != nil || !strings.Contains(out, "IN_PROGRESS") {
		t.Fatalf("update: %v\n%s", err, out)
	}
	got, _ := e.Service().Execution("cli-thing", "job-a")
	if got.Status != job.InProgress || got.StatusDetails["step"] != "1" || got.StatusDetails["of"] != "2" {
		t.Errorf("after update: %+v", got)
	}
	// A stale expected version is refused with the service's words.
	out, err = runCLI(t, with("update", "job-a", "SUCCEEDED", "--expected-version", "1")...)
	if err == nil || !strings.Contains(err.Error(), "VersionMismatch") {
		t.Errorf("stale update: %v\n%s", err, out)
	}
	out, err = runCLI(t, with("update", "job-a", "SUCCEEDED", "--expected-version", "2")...)
	if err != nil {
		t.Fatalf("update: %v\n%s", err, out)
	}
	out, err = runCLI(t, with("describe", "$next")...)
	if err == nil || !strings.Contains(err.Error(), "no pending job") {
		t.Errorf("describe $next with nothing pending: %v\n%s", err, out)
	}
	out, err = runCLI(t, with("pending")...)
	if err != nil || !strings.Contains(out, "no pending jobs") {
		t.Errorf("pending when empty: %v\n%s", err, out)
	}
}

// TestAPICommandErrors checks that bad input ends at once with a one-line
// error that says what to fix.
func TestAPICommandErrors(t *testing.T) {
	e, conn := startEmulator(t, "err-thing")
	f := e.Files()
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no endpoint", []string{"pending", "--thing", "x", "--cert", f.ClientCert, "--key", f.ClientKey, "--endpoint", ""}, "missing --endpoint"},
		{"no thing", []string{"pending", "--endpoint", e.MQTTAddr(), "--cert", f.ClientCert, "--key", f.ClientKey, "--thing", ""}, "missing --thing"},
		{"no credentials", []string{"pending", "--endpoint", e.MQTTAddr(), "--thing", "x"}, "give --cert and --key"},
		{"both", []string{"pending", "--endpoint", e.MQTTAddr(), "--thing", "x", "--iam", "--cert", f.ClientCert, "--key", f.ClientKey}, "not both"},
		{"missing file", []string{"pending", "--endpoint", e.MQTTAddr(), "--thing", "x", "--cert", "/no/such.crt", "--key", f.ClientKey}, "--cert /no/such.crt"},
		{"system roots", []string{"pending", "--endpoint", e.MQTTAddr(), "--thing", "x", "--cert", f.ClientCert, "--key", f.ClientKey}, "certificate signed by unknown authority"},
		{"not TLS", []string{"pending", "--endpoint", strings.TrimPrefix(e.ControlURL(), "http://"), "--thing", "x", "--ca", f.CA, "--cert", f.ClientCert, "--key", f.ClientKey}, "TLS"},
		{"bad thing", append([]string{"pending"}, append(conn, "--thing", "bad thing")...), "thingName"},
		{"missing argument", append([]string{"describe"}, conn...), "want 1 argument"},
		{"bad status", append([]string{"update", "job-x", "DONE"}, conn...), "status"},
		{"bad version", append([]string{"update", "job-x", "SUCCEEDED", "--expected-version", "x"}, conn...), "not a number"},
		{"bad detail", append([]string{"update", "job-x", "SUCCEEDED", "--detail", "novalue"}, conn...), "KEY=VALUE"},
		{"bad log format", append([]string{"pending", "--log-format", "xml"}, conn...), "--log-format"},
		{"region without iam", append([]string{"pending", "--region", "us-east-1"}, conn...), "--iam only"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			out, err := runCLI(t, tt.args...)
			if err == nil {
				t.Fatalf("succeeded:\n%s", out)
			}
			if msg := err.Error(); !strings.Contains(msg, tt.want) || strings.Contains(msg, "\n") {
				t.Errorf("error %q: want one line mentioning %q", msg, tt.want)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("took %v to fail", d)
			}
		})
	}
}
