package main

// End-to-end tests of the CLI: the iotjobs binary, built once per test
// binary run, runs as a subprocess against the emulator (itself the binary's
// emulator command, as a user runs it) and against mosquitto with the fake
// Jobs service, over both transports, with real handler scripts.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iotjobs/iotjobs/adapters/mqtt5"
	"github.com/iotjobs/iotjobs/domain/job"
	"github.com/iotjobs/iotjobs/testkit/brokertest"
	"github.com/iotjobs/iotjobs/testkit/jobstest"
	"github.com/iotjobs/iotjobs/testkit/pki"
)

// cliBinary is the iotjobs binary the end-to-end tests run, built once.
var cliBinary struct {
	once sync.Once
	dir  string // removed by removeCLIBinary, from TestMain
	path string
	err  error
	skip string
}

// buildCLI returns the path of the iotjobs binary, building it on first
// use. It skips the test if the go command is not on $PATH.
func buildCLI(t *testing.T) string {
	t.Helper()
	b := &cliBinary
	b.once.Do(func() {
		gobin, err := exec.LookPath("go")
		if err != nil {
			b.skip = "end-to-end tests need the go command on $PATH to build iotjobs: " + err.Error()
			return
		}
		if b.dir, b.err = os.MkdirTemp("", "iotjobs-e2e-"); b.err != nil {
			return
		}
		b.path = filepath.Join(b.dir, "iotjobs")
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		// Without -race even under go test -race: a race-enabled binary
		// takes a second or more to start on a loaded machine.
		out, err := exec.CommandContext(ctx, gobin, "build", "-o", b.path, "github.com/iotjobs/iotjobs/cmd/iotjobs").CombinedOutput()
		if err != nil {
			b.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if b.skip != "" {
		t.Skip(b.skip)
	}
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

// removeCLIBinary removes what buildCLI built, if anything.
func removeCLIBinary() {
	if cliBinary.dir != "" {
		os.RemoveAll(cliBinary.dir)
	}
}

// cleanEnv is the test's environment without the variables that would
// change what the CLI does: the AWS configuration (the machine's must not be
// read) and the connection flags' stand-ins. extra is added to it.
func cleanEnv(t *testing.T, extra ...string) []string {
	t.Helper()
	empty := filepath.Join(t.TempDir(), "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	var env []string
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "AWS_") || k == envEndpoint || k == envThing {
			continue
		}
		env = append(env, kv)
	}
	env = append(env, "AWS_EC2_METADATA_DISABLED=true", "AWS_CONFIG_FILE="+empty, "AWS_SHARED_CREDENTIALS_FILE="+empty)
	return append(env, extra...)
}

// syncBuffer is a bytes.Buffer safe for a subprocess to write while the
// test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// cliResult is how a CLI subprocess ended.
type cliResult struct {
	stdout, stderr string
	code           int // the exit status; -1 if killed
	took           time.Duration
}

// runBinary runs the iotjobs binary with args in dir (the test's working
// directory if empty) and env, and waits for it, at most timeout.
func runBinary(t *testing.T, dir string, env []string, timeout time.Duration, args ...string) cliResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, buildCLI(t), args...)
	cmd.Dir, cmd.Env = dir, env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = time.Second // a handler that keeps the pipes open must not hang the test
	start := time.Now()
	err := cmd.Run()
	res := cliResult{stdout: stdout.String(), stderr: stderr.String(), took: time.Since(start)}
	var exit *exec.ExitError
	switch {
	case ctx.Err() != nil:
		t.Fatalf("iotjobs %q did not end within %s\nstdout:\n%s\nstderr:\n%s", args, timeout, res.stdout, res.stderr)
	case errors.As(err, &exit):
		res.code = exit.ExitCode()
	case err != nil:
		t.Fatalf("iotjobs %q: %v", args, err)
	}
	return res
}

// emulatorProc is `iotjobs emulator` running as a subprocess, with what its
// banner says.
type emulatorProc struct {
	cmd            *exec.Cmd
	done           chan error // cmd.Wait's result
	exited         bool       // done was received from
	stdout, stderr *syncBuffer

	thing            string
	ca, cert, key    string
	mqtt, ws, region string
	accessKey        string
	secretKey        string
	control          string // base URL
}

// startEmulatorProc starts `iotjobs emulator` on free loopback ports,
// issuing the client certificate for thing, and reads its banner. The
// emulator is killed when the test ends, unless stop stopped it.
func startEmulatorProc(t *testing.T, thing string) *emulatorProc {
	t.Helper()
	e := &emulatorProc{thing: thing, done: make(chan error, 1), stdout: new(syncBuffer), stderr: new(syncBuffer)}
	e.cmd = exec.Command(buildCLI(t), "emulator", "--dir", t.TempDir(), "--thing", thing,
		"--mqtt-addr", "127.0.0.1:0", "--ws-addr", "127.0.0.1:0", "--control-addr", "127.0.0.1:0")
	e.cmd.Env = cleanEnv(t)
	e.cmd.Stdout, e.cmd.Stderr = e.stdout, e.stderr
	if err := e.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { e.done <- e.cmd.Wait() }()
	t.Cleanup(func() {
		if !e.exited { // not stopped: the test failed
			e.cmd.Process.Kill()
			<-e.done
		}
		if t.Failed() {
			t.Logf("emulator stdout:\n%s\nemulator stderr:\n%s", e.stdout, e.stderr)
		}
	})

	// The banner ends with the example agent's line.
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(e.stdout.String(), "--handlers DIR\n") {
		select {
		case err := <-e.done:
			e.exited = true
			t.Fatalf("emulator exited early (%v):\n%s%s", err, e.stdout, e.stderr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no emulator banner within 10s:\n%s%s", e.stdout, e.stderr)
		}
		time.Sleep(10 * time.Millisecond) // polling with a deadline
	}
	banner := e.stdout.String()
	find := func(re string, into ...*string) {
		t.Helper()
		m := regexp.MustCompile(re).FindStringSubmatch(banner)
		if m == nil {
			t.Fatalf("emulator banner lacks %s:\n%s", re, banner)
		}
		for i, p := range into {
			*p = m[i+1]
		}
	}
	find(`--ca (\S+) --cert (\S+) --key (\S+)`, &e.ca, &e.cert, &e.key)
	find(`MQTT 5 over TLS:\s+--endpoint (\S+)`, &e.mqtt)
	find(`SigV4 WebSocket:\s+--endpoint (\S+) --iam --region (\S+)`, &e.ws, &e.region)
	find(`AWS_ACCESS_KEY_ID=(\S+) AWS_SECRET_ACCESS_KEY=(\S+)`, &e.accessKey, &e.secretKey)
	find(`control plane:\s+(http://\S+)`, &e.control)
	return e
}

// stop interrupts the emulator, as Ctrl-C does, and checks it exits 0.
func (e *emulatorProc) stop(t *testing.T) {
	t.Helper()
	if err := e.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	e.exited = true // one way or another, below
	select {
	case err := <-e.done:
		if err != nil {
			t.Errorf("emulator exited with %v on interrupt, want status 0", err)
		}
	case <-time.After(10 * time.Second):
		e.cmd.Process.Kill()
		<-e.done
		t.Fatal("emulator did not stop within 10s of SIGINT")
	}
	if !strings.Contains(e.stdout.String(), "iotjobs emulator: stopped") {
		t.Errorf("emulator did not say it stopped:\n%s", e.stdout)
	}
}

// tlsFlags are the connection flags of the thing certificate.
func (e *emulatorProc) tlsFlags(thing string) []string {
	return []string{"--endpoint", e.mqtt, "--thing", thing, "--ca", e.ca, "--cert", e.cert, "--key", e.key, "--connect-timeout", "5s"}
}

// iamFlags are the connection flags of the SigV4 WebSocket.
func (e *emulatorProc) iamFlags(thing string) []string {
	return []string{"--endpoint", e.ws, "--thing", thing, "--ca", e.ca, "--iam", "--region", e.region, "--connect-timeout", "5s"}
}

// controlCall makes one request to the control plane and decodes its JSON
// reply into out (if not nil), failing the test unless the status is want.
func (e *emulatorProc) controlCall(t *testing.T, method, path string, body any, want int, out any) {
	t.Helper()
	var in io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		in = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, e.control+path, in)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	reply, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	if resp.StatusCode != want {
		t.Fatalf("%s %s: %s %s, want %d", method, path, resp.Status, reply, want)
	}
	if out != nil {
		if err := json.Unmarshal(reply, out); err != nil {
			t.Fatalf("%s %s: %v in %s", method, path, err, reply)
		}
	}
}

// e2eJob is a job of the end-to-end tests and how it must end.
type e2eJob struct {
	id, document string
	want         job.Status
}

// e2eJobs returns the jobs every end-to-end run queues: one that succeeds,
// one whose handler fails and one naming no handler.
func e2eJobs(prefix string) []e2eJob {
	return []e2eJob{
		{prefix + "-ok", `{"operation":"ok","args":["a","b c"]}`, job.Succeeded},
		{prefix + "-fail", `{"operation":"fail"}`, job.Failed},
		{prefix + "-unknown", `{"operation":"format-disk"}`, job.Rejected},
	}
}

// writeE2EHandlers writes the handler scripts into DIR/handlers and returns
// DIR, where the agent runs with --handlers handlers (a relative path), and
// where the ok handler writes ok-THING.out.
func writeE2EHandlers(t *testing.T) string {
	t.Helper()
	work := t.TempDir()
	dir := filepath.Join(work, "handlers")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{
		"ok":   `printf '%s\n' "$IOTJOBS_JOB_ID $IOTJOBS_THING_NAME $*" > "` + work + `/ok-$IOTJOBS_THING_NAME.out"`,
		"fail": `echo "some output"; echo "disk full" >&2; exit 3`,
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return work
}

// checkAgentRun checks that `iotjobs agent --once` ran the jobs: it exited
// 0, printed a line per job, and the ok handler saw its job id, thing and
// arguments. execution returns a job's execution at the service.
func checkAgentRun(t *testing.T, res cliResult, work, thing string, jobs []e2eJob, execution func(id string) job.Execution) {
	t.Helper()
	if res.code != 0 {
		t.Fatalf("agent exited %d, want 0\nstdout:\n%s\nstderr:\n%s", res.code, res.stdout, res.stderr)
	}
	for _, j := range jobs {
		ex := execution(j.id)
		if ex.Status != j.want {
			t.Errorf("%s: %s %v, want %s", j.id, ex.Status, ex.StatusDetails, j.want)
		}
		if !regexp.MustCompile(`(?m)^` + string(j.want) + `\s+` + regexp.QuoteMeta(j.id) + `\s`).MatchString(res.stdout) {
			t.Errorf("agent's output has no %s line for %s:\n%s", j.want, j.id, res.stdout)
		}
		switch j.want {
		case job.Failed:
			d := ex.StatusDetails
			if d["exitCode"] != "3" || d["stderr"] != "disk full" || d["stdout"] != "some output" {
				t.Errorf("%s: status details %v, want exitCode 3, stdout and stderr", j.id, d)
			}
		case job.Rejected:
			if !strings.Contains(ex.StatusDetails["reason"], "format-disk") {
				t.Errorf("%s: reason %q does not name the operation", j.id, ex.StatusDetails["reason"])
			}
		}
	}
	if !strings.Contains(res.stdout, fmt.Sprintf("%d job(s)", len(jobs))) {
		t.Errorf("agent's summary does not count %d jobs:\n%s", len(jobs), res.stdout)
	}
	out, err := os.ReadFile(filepath.Join(work, "ok-"+thing+".out"))
	if want := jobs[0].id + " " + thing + " a b c"; err != nil || strings.TrimSpace(string(out)) != want {
		t.Errorf("ok handler saw %q (%v), want %q", out, err, want)
	}
	if strings.Contains(res.stderr, "goroutine ") || strings.Contains(res.stderr, "panic") {
		t.Errorf("agent's stderr holds a stack trace:\n%s", res.stderr)
	}
}

// TestE2EAgentEmulator runs `iotjobs agent --once` against `iotjobs
// emulator`, both as subprocesses, over TLS with the thing certificate and
// over the SigV4 WebSocket with the emulator's IAM credentials.
func TestE2EAgentEmulator(t *testing.T) {
	e := startEmulatorProc(t, "e2e-thing")
	work := writeE2EHandlers(t)
	for _, tt := range []struct {
		name, thing string
		flags       []string
		env         []string
	}{
		{"tls", "e2e-thing", e.tlsFlags("e2e-thing"), nil},
		{"iam", "e2e-iam-thing", e.iamFlags("e2e-iam-thing"), []string{"AWS_ACCESS_KEY_ID=" + e.accessKey, "AWS_SECRET_ACCESS_KEY=" + e.secretKey}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			jobs := e2eJobs(tt.name)
			for _, j := range jobs {
				e.controlCall(t, http.MethodPost, "/jobs", map[string]any{
					"jobId": j.id, "document": json.RawMessage(j.document), "targets": []string{tt.thing},
				}, http.StatusCreated, nil)
			}
			args := append([]string{"agent", "--once", "--handlers", "handlers", "--grace", "2s"}, tt.flags...)
			res := runBinary(t, work, cleanEnv(t, tt.env...), 20*time.Second, args...)
			checkAgentRun(t, res, work, tt.thing, jobs, func(id string) job.Execution {
				var ex job.Execution
				e.controlCall(t, http.MethodGet, "/things/"+tt.thing+"/jobs/"+id, nil, http.StatusOK, &ex)
				return ex
			})
			if strings.Contains(res.stdout+res.stderr, e.secretKey) {
				t.Errorf("the agent printed the secret key")
			}
			// Nothing is left for the thing.
			var left []job.Execution
			e.controlCall(t, http.MethodGet, "/executions?thing="+tt.thing, nil, http.StatusOK, &left)
			for _, ex := range left {
				if !ex.Status.Terminal() {
					t.Errorf("%s still %s", ex.JobID, ex.Status)
				}
			}
		})
	}
	e.stop(t)
}

// TestE2EAgentMosquitto runs `iotjobs agent --once` as a subprocess against
// mosquitto, an independent broker requiring client certificates, with the
// fake Jobs service on a connection of its own.
func TestE2EAgentMosquitto(t *testing.T) {
	buildCLI(t)
	const thing = "e2e-mosquitto-thing"
	set, err := pki.NewSet(thing)
	if err != nil {
		t.Fatal(err)
	}
	files, err := set.WriteFiles(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	m := brokertest.StartMosquitto(t, brokertest.MosquittoOptions{
		CAFile: files.CA, CertFile: files.ServerCert, KeyFile: files.ServerKey, RequireCertificate: true,
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cert, err := set.CA.Client("jobs-service")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := mqtt5.Connect(ctx, mqtt5.Config{Endpoint: m.Addr(), ClientID: "jobs-service", Certificate: &cert, RootCAs: set.CA.Pool()})
	if err != nil {
		t.Fatalf("service connection: %v", err)
	}
	defer conn.Close()
	svc := jobstest.New(jobstest.Options{Logf: t.Logf})
	if err := svc.Start(ctx, conn); err != nil {
		t.Fatal(err)
	}
	defer svc.Close() // before conn.Close, and before the test ends (Logf)

	jobs := e2eJobs("mosquitto")
	for _, j := range jobs {
		if err := svc.CreateJob(ctx, jobstest.JobSpec{JobID: j.id, Document: json.RawMessage(j.document), Targets: []string{thing}}); err != nil {
			t.Fatal(err)
		}
	}
	work := writeE2EHandlers(t)
	res := runBinary(t, work, cleanEnv(t), 20*time.Second, "agent", "--once", "--handlers", "handlers", "--grace", "2s",
		"--endpoint", m.Addr(), "--thing", thing, "--ca", files.CA, "--cert", files.ClientCert, "--key", files.ClientKey, "--connect-timeout", "5s")
	checkAgentRun(t, res, work, thing, jobs, func(id string) job.Execution {
		ex, ok := svc.Execution(thing, id)
		if !ok {
			t.Errorf("no execution of %s", id)
		}
		return ex
	})
}

// TestE2EBadInput checks that the binary refuses bad input at once, with
// one line on stderr: no usage dump, no log lines, no stack trace, no
// secret.
func TestE2EBadInput(t *testing.T) {
	e := startEmulatorProc(t, "e2e-bad-thing")
	handlers := t.TempDir()
	closed := closedAddr(t)
	const wrongSecret = "e2eWrongSecretKey0123456789abcdef"
	agent := func(flags ...string) []string {
		return append([]string{"agent", "--once", "--handlers", handlers}, flags...)
	}
	with := func(flags []string, replace ...string) []string { // flags with some values replaced
		out := append([]string(nil), flags...)
		for i := 0; i < len(replace); i += 2 {
			for j := range out {
				if out[j] == replace[i] && j+1 < len(out) {
					out[j+1] = replace[i+1]
				}
			}
		}
		return out
	}
	tlsFlags := e.tlsFlags("e2e-bad-thing")
	iamFlags := e.iamFlags("e2e-bad-thing")
	controlAddr := strings.TrimPrefix(e.control, "http://")
	tests := []struct {
		name string
		args []string
		env  []string
		want string // in the error line
	}{
		{"unknown flag", agent(append([]string{"--nope"}, tlsFlags...)...), nil, "flag provided but not defined: -nope"},
		{"bad flag value", agent(append([]string{"--concurrency", "many"}, tlsFlags...)...), nil, "invalid value"},
		{"unknown command", []string{"frobnicate"}, nil, `unknown command "frobnicate"`},
		{"missing certificate", agent(with(tlsFlags, "--cert", filepath.Join(handlers, "missing.crt"))...), nil, "missing.crt: no such file"},
		{"unreachable endpoint", agent(with(tlsFlags, "--endpoint", closed)...), nil, "connection refused"},
		{"not TLS", agent(with(tlsFlags, "--endpoint", controlAddr)...), nil, "TLS"},
		{"wrong IAM secret", agent(iamFlags...), []string{"AWS_ACCESS_KEY_ID=" + e.accessKey, "AWS_SECRET_ACCESS_KEY=" + wrongSecret}, "403"},
		{"no IAM credentials", agent(iamFlags...), nil, "credentials"},
		{"pending, not TLS", append([]string{"pending"}, with(tlsFlags, "--endpoint", controlAddr)...), nil, "TLS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			res := runBinary(t, "", cleanEnv(t, tt.env...), 15*time.Second, tt.args...)
			line := strings.TrimSuffix(res.stderr, "\n")
			switch {
			case res.code == 0:
				t.Errorf("exit status 0, want an error")
			case res.took > 5*time.Second:
				t.Errorf("took %s to fail, want a few seconds at most", res.took)
			case line == "" || strings.Contains(line, "\n"):
				t.Errorf("stderr is not one line:\n%s", res.stderr)
			case !strings.HasPrefix(line, "iotjobs: ") || !strings.Contains(line, tt.want):
				t.Errorf("stderr = %q, want iotjobs: ... %s", line, tt.want)
			}
			for _, bad := range []string{"goroutine ", "panic", wrongSecret, e.secretKey} {
				if strings.Contains(res.stdout+res.stderr, bad) {
					t.Errorf("output holds %q:\nstdout:\n%s\nstderr:\n%s", bad, res.stdout, res.stderr)
				}
			}
			t.Logf("exit %d in %s: %s", res.code, res.took.Round(time.Millisecond), line)
		})
	}
	t.Cleanup(func() { e.stop(t) }) // after the parallel subtests
}

// TestE2EHelp checks that -h prints a command's flags and exits 0.
func TestE2EHelp(t *testing.T) {
	for _, tt := range []struct {
		cmd  string
		want []string
	}{
		{"agent", []string{"-handlers", "-cert", "-iam"}},
		{"pending", []string{"usage: iotjobs pending", "-json"}},
		{"emulator", []string{"-control-addr"}},
	} {
		res := runBinary(t, "", cleanEnv(t), 10*time.Second, tt.cmd, "-h")
		if res.code != 0 {
			t.Errorf("%s -h: exit status %d, want 0\n%s", tt.cmd, res.code, res.stderr)
		}
		for _, w := range tt.want {
			if !strings.Contains(res.stderr, w) {
				t.Errorf("%s -h does not show %q:\n%s", tt.cmd, w, res.stderr)
			}
		}
	}
}

// closedAddr returns a loopback address where nothing listens.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}
