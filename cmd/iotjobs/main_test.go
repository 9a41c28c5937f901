package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		removeCLIBinary() // built by the end-to-end tests
		os.Exit(code)
	}))
}

func TestDemo(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"demo", "-thing", "test-thing", "-step-time", "1ms"}, &stdout, &stderr); err != nil {
		t.Fatalf("demo: %v\nstdout:\n%s\nstderr:\n%s", err, &stdout, &stderr)
	}
	out := stdout.String()
	for _, j := range demoJobs {
		// The summary row holds the status the service ended with.
		row := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(j.id) + `\s+(\S+)\s+(\S+)`).FindStringSubmatch(out)
		if row == nil {
			t.Errorf("no summary row for %s in:\n%s", j.id, out)
			continue
		}
		if row[1] != string(j.want) || row[2] != string(j.want) {
			t.Errorf("%s: status %s, expected column %s; want %s", j.id, row[1], row[2], j.want)
		}
		// The agent's own account of the job agrees.
		end := regexp.MustCompile(`(?m)^end\s+` + regexp.QuoteMeta(j.id) + `\s+(\S+)`).FindStringSubmatch(out)
		if end == nil || end[1] != string(j.want) {
			t.Errorf("agent's end line for %s = %q, want %s", j.id, end, j.want)
		}
	}
	var doc demoDocument
	json.Unmarshal([]byte(demoJobs[0].document), &doc)
	if bar := fmt.Sprintf("%s %d/%d", progressBar(doc.Stages, doc.Stages), doc.Stages, doc.Stages); !strings.Contains(out, bar) {
		t.Errorf("no full progress bar %q for %s:\n%s", bar, demoJobs[0].id, out)
	}
	if !strings.Contains(out, "every job ended as expected") {
		t.Errorf("no final verdict:\n%s", out)
	}
}

func TestProgressBar(t *testing.T) {
	for _, tt := range []struct{ done, total, hashes int }{{0, 4, 0}, {1, 4, 5}, {4, 4, 20}, {1, 0, 20}} {
		bar := progressBar(tt.done, tt.total)
		if got := strings.Count(bar, "#"); got != tt.hashes || len(bar) != 22 {
			t.Errorf("progressBar(%d, %d) = %q: %d hashes, want %d", tt.done, tt.total, bar, got, tt.hashes)
		}
	}
}

func TestRunErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no command", nil, "no command"},
		{"unknown command", []string{"frobnicate"}, "unknown command"},
		{"bad thing name", []string{"demo", "-thing", "bad thing"}, "thingName"},
		{"extra argument", []string{"demo", "extra"}, "unexpected arguments"},
		{"unknown flag", []string{"demo", "-nope"}, "not defined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), tt.args, &stdout, &stderr)
			if err == nil {
				t.Fatalf("run(%q) succeeded, want an error", tt.args)
			}
			if !strings.Contains(err.Error()+stderr.String(), tt.want) {
				t.Errorf("run(%q) = %v (stderr %q), want mention of %q", tt.args, err, &stderr, tt.want)
			}
		})
	}
}

func TestHelp(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"help"}, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stdout.String(), "demo") {
		t.Errorf("help does not list demo:\n%s", &stdout)
	}
}
