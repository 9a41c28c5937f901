package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestEmulatorCommand(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	var stderr bytes.Buffer
	done := make(chan error, 1)
	go func() {
		err := run(ctx, []string{"emulator", "-mqtt-addr", "127.0.0.1:0", "-ws-addr", "127.0.0.1:0", "-control-addr", "127.0.0.1:0"}, pw, &stderr)
		pw.Close()
		done <- err
	}()
	lines := make(chan string, 100)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	// Read the banner up to its last section, with a deadline.
	var out strings.Builder
	timeout := time.After(10 * time.Second)
	for !strings.Contains(out.String(), "example agent:") {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatalf("emulator ended early: %v\n%s%s", <-done, out.String(), stderr.String())
			}
			out.WriteString(line + "\n")
		case <-timeout:
			t.Fatalf("no banner within 10s:\n%s", out.String())
		}
	}
	for _, re := range []string{
		`--endpoint 127\.0\.0\.1:\d+ --iam --region us-east-1`,
		`--ca \S+ca\.pem --cert \S+client\.crt --key \S+client\.key`,
		`control plane:\s+http://127\.0\.0\.1:\d+`,
	} {
		if !regexp.MustCompile(re).MatchString(out.String()) {
			t.Errorf("banner lacks %s:\n%s", re, out.String())
		}
	}
	cancel()
	for range lines { // drain until the command closed its output
	}
	if err := <-done; err != nil {
		t.Errorf("emulator: %v", err)
	}
}

func TestEmulatorCommandBadFlags(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"emulator", "extra"}, &stdout, &stderr); err == nil {
		t.Error("emulator accepted an extra argument")
	}
	if err := run(context.Background(), []string{"emulator", "-thing", "bad thing", "-mqtt-addr", "127.0.0.1:0", "-ws-addr", "127.0.0.1:0", "-control-addr", "127.0.0.1:0"}, &stdout, &stderr); err == nil {
		t.Error("emulator accepted an invalid thing name")
	}
}
