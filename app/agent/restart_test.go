package agent_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/iotjobs/iotjobs/adapters/mqtt5"
	"github.com/iotjobs/iotjobs/app/agent"
	"github.com/iotjobs/iotjobs/app/jobs"
	"github.com/iotjobs/iotjobs/domain/job"
	"github.com/iotjobs/iotjobs/testkit/brokertest"
	"github.com/iotjobs/iotjobs/testkit/jobstest"
	"github.com/iotjobs/iotjobs/testkit/pki"
)

// restartThing is the thing of the restart tests: its client certificate's
// common name and its MQTT client id.
const restartThing = "restart-thing"

// restartBroker is a broker over TLS with client certificates that a test
// can restart, losing every connection and session.
type restartBroker struct {
	addr    string
	restart func(t *testing.T)
}

// TestBrokerRestart runs the agent over MQTT 5 (TLS, client certificates)
// with the fake service on its own connection, and restarts the broker
// while one job's handler runs and another job is queued. The broker
// forgets every session, so both clients reconnect, subscribe again, and
// the agent re-reads the pending jobs: it must see that the job IN_PROGRESS
// is the one it runs, not start it again (it resumes only executions it
// does not know), report its end, then take and run the queued job. Both
// jobs end SUCCEEDED, each handler ran once, and nothing hangs.
//
// The handler is released either once both clients are back ("after
// reconnect"), or at once ("during the outage"): the final report then
// meets a connection that is down and is retried, or, if the retries run
// out first, reported after the reconnect, before the next take.
//
// Brokers: the in-process mochi broker of brokertest, and mosquitto
// (brokertest.StartMosquitto, TLS with require_certificate), which is
// skipped when mosquitto is not installed unless IOTJOBS_REQUIRE_MOSQUITTO=1.
func TestBrokerRestart(t *testing.T) {
	brokers := []struct {
		name  string
		start func(t *testing.T, set *pki.Set) restartBroker
	}{
		{"mochi", startMochi},
		{"mosquitto", startMosquitto},
	}
	for _, br := range brokers {
		t.Run(br.name, func(t *testing.T) {
			for _, during := range []bool{false, true} {
				name := "after reconnect"
				if during {
					name = "during the outage"
				}
				t.Run(name, func(t *testing.T) {
					set, err := pki.NewSet(restartThing)
					if err != nil {
						t.Fatal(err)
					}
					runRestart(t, set, br.start(t, set), during)
				})
			}
		})
	}
}

func startMochi(t *testing.T, set *pki.Set) restartBroker {
	b, err := brokertest.Start(brokertest.Options{TLS: set.CA.ServerTLS(set.Server)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return restartBroker{addr: b.Addr(), restart: func(t *testing.T) {
		if err := b.Restart(); err != nil {
			t.Fatalf("restart: %v", err)
		}
	}}
}

func startMosquitto(t *testing.T, set *pki.Set) restartBroker {
	files, err := set.WriteFiles(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	m := brokertest.StartMosquitto(t, brokertest.MosquittoOptions{
		CAFile: files.CA, CertFile: files.ServerCert, KeyFile: files.ServerKey, RequireCertificate: true,
	})
	return restartBroker{addr: m.Addr(), restart: func(*testing.T) { m.Restart() }}
}

// connections counts the connections of one mqtt5 client.
type connections struct {
	mu   sync.Mutex
	up   int // connections made, the first included
	down int
}

func (c *connections) record(ev mqtt5.ConnectionEvent) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ev.Connected {
		c.up++
	} else {
		c.down++
	}
}

func (c *connections) counts() (up, down int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.up, c.down
}

// connectMQTT connects clientID to addr with a certificate of set's CA,
// closed when the test ends.
func connectMQTT(t *testing.T, set *pki.Set, addr, clientID string, conns *connections) *mqtt5.Client {
	t.Helper()
	cert, err := set.CA.Client(clientID)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	c, err := mqtt5.Connect(ctx, mqtt5.Config{
		Endpoint: addr, ClientID: clientID, Certificate: &cert, RootCAs: set.CA.Pool(),
		ConnectTimeout: 5 * time.Second, ReconnectMin: 50 * time.Millisecond, ReconnectMax: 500 * time.Millisecond,
		OnConnectionChange: conns.record,
	})
	if err != nil {
		t.Fatalf("connect %s to %s: %v", clientID, addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func runRestart(t *testing.T, set *pki.Set, br restartBroker, during bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*waitFor)
	defer cancel()

	var svcConns, devConns connections
	svcConn := connectMQTT(t, set, br.addr, "jobs-service", &svcConns)
	svc := jobstest.New(jobstest.Options{Clock: jobstest.NewFakeClock(t0), Logf: t.Logf})
	if err := svc.Start(ctx, svcConn); err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	for _, id := range []string{"job-1", "job-2"} {
		if err := svc.CreateJob(ctx, jobstest.JobSpec{JobID: id, Document: []byte(`{"operation":"op"}`), Targets: []string{restartThing}}); err != nil {
			t.Fatal(err)
		}
	}

	var (
		mu    sync.Mutex
		calls = map[string]int{}
	)
	started := make(chan string, 10)
	release := make(chan struct{})
	handler := agent.HandlerFunc(func(ctx context.Context, j agent.Job, _ agent.Progress) error {
		mu.Lock()
		calls[j.ID]++
		mu.Unlock()
		started <- j.ID
		if j.ID != "job-1" {
			return nil
		}
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return fmt.Errorf("job-1 canceled: %w", context.Cause(ctx))
		}
	})
	var resyncs atomic.Int32 // after a reconnect, successful or not
	results := make(chan agent.Result, 10)
	devConn := connectMQTT(t, set, br.addr, restartThing, &devConns)
	a, err := agent.New(ctx, devConn, restartThing, agent.Config{
		Handler: handler,
		// Retries outlast the reconnect (at most ReconnectMax, 500 ms)
		// most of the time; when they do not, the end is reported after it.
		Retry:    agent.RetryPolicy{Initial: 20 * time.Millisecond, Max: 200 * time.Millisecond, Attempts: 8, Seed: 1},
		Logger:   testLogger(t),
		OnResult: func(r agent.Result) { results <- r },
		// A request whose reply the restart lost is sent again soon.
		Client: jobs.Options{Timeout: time.Second, OnEvent: func(ev jobs.Event) {
			if ev.Kind == jobs.EventResynced {
				resyncs.Add(1)
			}
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	runErr := make(chan error, 1)
	go func() { runErr <- a.Run(runCtx) }()

	next := func(want string) {
		t.Helper()
		select {
		case id := <-started:
			if id != want {
				t.Fatalf("handler started for %s, want %s", id, want)
			}
		case <-time.After(waitFor):
			t.Fatalf("timed out waiting for the handler of %s", want)
		}
	}
	next("job-1")
	t.Log("restarting the broker while job-1 runs and job-2 is queued")
	br.restart(t)
	if during {
		close(release)
	}
	poll(t, "both clients to reconnect", func() bool {
		s, _ := svcConns.counts()
		d, _ := devConns.counts()
		return s >= 2 && d >= 2
	})
	if _, down := devConns.counts(); down < 1 {
		t.Fatal("the agent's connection did not drop")
	}
	if !during {
		// The agent has re-read the pending jobs and seen job-1
		// IN_PROGRESS while its handler still runs.
		poll(t, "the agent's resync", func() bool { return resyncs.Load() >= 1 })
		close(release)
	}

	got := map[string]agent.Result{}
	for range 2 {
		select {
		case r := <-results:
			got[r.JobID] = r
		case <-time.After(waitFor):
			t.Fatalf("timed out waiting for results; have %+v", got)
		}
	}
	next("job-2")
	for _, id := range []string{"job-1", "job-2"} {
		poll(t, id+" SUCCEEDED at the service", func() bool {
			x, ok := svc.Execution(restartThing, id)
			return ok && x.Status == job.Succeeded
		})
	}
	stopRun()
	select {
	case err := <-runErr:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(waitFor):
		t.Fatal("Run did not return")
	}

	if r := got["job-1"]; !(r.Status == job.Succeeded && r.ReportErr == nil || during && r.Status == job.InProgress && r.ReportErr != nil) || r.Err != nil || r.Resumed {
		t.Errorf("job-1 result %+v, want SUCCEEDED (or, released during the outage, not reported yet), not resumed", r)
	}
	if r := got["job-2"]; r.Status != job.Succeeded || r.ReportErr != nil || r.Err != nil {
		t.Errorf("job-2 result %+v, want SUCCEEDED", r)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, id := range []string{"job-1", "job-2"} {
		if calls[id] != 1 {
			t.Errorf("%s: handler ran %d times, want once", id, calls[id])
		}
	}
	select {
	case id := <-started:
		t.Errorf("a handler started again for %s", id)
	default:
	}
}
