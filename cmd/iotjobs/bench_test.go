package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// TestBenchQuick runs the bench command in quick mode: every measurement
// runs and the tables are printed.
func TestBenchQuick(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out, errOut bytes.Buffer
	start := time.Now()
	if err := runBench(ctx, []string{"-quick"}, &out, &errOut); err != nil {
		t.Fatalf("bench -quick: %v\n%s", err, errOut.String())
	}
	t.Logf("bench -quick took %v:\n%s%s", time.Since(start), out.String(), errOut.String())
	for _, want := range []string{"lifecycle:", "roundtrip:", "scale:", "mochi"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q", want)
		}
	}
}

func TestBenchFlags(t *testing.T) {
	var out, errOut bytes.Buffer
	if err := runBench(context.Background(), []string{"-only", "nope"}, &out, &errOut); err == nil {
		t.Error("bench -only nope: no error")
	}
	if err := runBench(context.Background(), []string{"extra"}, &out, &errOut); err == nil {
		t.Error("bench extra: no error")
	}
}
