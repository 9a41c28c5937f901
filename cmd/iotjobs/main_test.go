package main

import (
	"bytes"
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestDemo(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"demo", "-thing", "test-thing"}, &stdout, &stderr); err != nil {
		t.Fatalf("demo: %v\nstdout:\n%s\nstderr:\n%s", err, &stdout, &stderr)
	}
	out := stdout.String()
	counts := map[string]int{}
	for _, j := range demoJobs {
		// Each job's final line reports the status the service holds.
		re := regexp.MustCompile(`(?m)^result\s+` + regexp.QuoteMeta(j.id) + `\s+(\S+)`)
		m := re.FindStringSubmatch(out)
		if m == nil {
			t.Errorf("no result line for %s in:\n%s", j.id, out)
			continue
		}
		if m[1] != string(j.want) {
			t.Errorf("%s ended %s, want %s", j.id, m[1], j.want)
		}
		counts[strings.ToLower(string(j.want))]++
		if !strings.Contains(out, "take     "+j.id) {
			t.Errorf("the device never took %s", j.id)
		}
	}
	if want := fmt.Sprintf("summary: %d jobs:", len(demoJobs)); !strings.Contains(out, want) {
		t.Errorf("output lacks %q:\n%s", want, out)
	}
	for status, n := range counts {
		if want := fmt.Sprintf("%d %s", n, status); !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
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
