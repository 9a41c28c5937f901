package mqtt5_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/iotjobs/iotjobs/adapters/mqtt5"
	"github.com/iotjobs/iotjobs/app/jobs"
	"github.com/iotjobs/iotjobs/testkit/brokertest"
	"github.com/iotjobs/iotjobs/testkit/pki"
	"github.com/iotjobs/iotjobs/testkit/pubsubtest"
)

// mosquittoEnv is Debian's mosquitto with a TLS listener that requires a
// client certificate from the test CA.
type mosquittoEnv struct {
	set *pki.Set
	m   *brokertest.Mosquitto
	n   atomic.Int64
}

func newMosquittoEnv(t *testing.T) *mosquittoEnv {
	t.Helper()
	set, err := pki.NewSet("mosquitto-client")
	if err != nil {
		t.Fatal(err)
	}
	files, err := set.WriteFiles(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	m := brokertest.StartMosquitto(t, brokertest.MosquittoOptions{
		CAFile:             files.CA,
		CertFile:           files.ServerCert,
		KeyFile:            files.ServerKey,
		RequireCertificate: true,
	})
	return &mosquittoEnv{set: set, m: m}
}

func (e *mosquittoEnv) config(t testing.TB, clientID string) mqtt5.Config {
	t.Helper()
	if clientID == "" {
		clientID = fmt.Sprintf("mosquitto-client-%d", e.n.Add(1))
	}
	cert, err := e.set.CA.Client(clientID)
	if err != nil {
		t.Fatal(err)
	}
	return testConfig(e.m.Addr(), clientID, &cert, e.set.CA)
}

// kick takes the session of cfg.ClientID over with a second connection,
// which the broker answers by disconnecting the first (reason 0x8E), and
// closes the second one at once.
func kick(t testing.TB, cfg mqtt5.Config) {
	t.Helper()
	cfg.OnConnectionChange = nil
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := mqtt5.Connect(ctx, cfg)
	if err != nil {
		t.Fatalf("kick %s: %v", cfg.ClientID, err)
	}
	c.Close()
}

// TestConformanceMosquitto runs the conformance suite over mosquitto, an
// independent broker, with an mTLS listener (require_certificate true).
func TestConformanceMosquitto(t *testing.T) {
	e := newMosquittoEnv(t)
	var mu sync.Mutex
	configs := make(map[*mqtt5.Client]mqtt5.Config)
	pubsubtest.Run(t, func(t *testing.T) pubsubtest.Client {
		cfg := conformanceConfig(e.config(t, ""))
		c := connect(t, cfg)
		mu.Lock()
		configs[c] = cfg
		mu.Unlock()
		return c
	}, pubsubtest.Features{
		NoLocal:      true,
		DollarTopics: true,
		Reconnect: func(t testing.TB, c pubsubtest.Client) {
			mu.Lock()
			cfg := configs[c.(*mqtt5.Client)]
			mu.Unlock()
			kick(t, cfg)
		},
	})
}

// TestJobsEndToEndMosquitto runs a job with the Jobs client and the fake
// service, each on its own connection to mosquitto.
func TestJobsEndToEndMosquitto(t *testing.T) {
	e := newMosquittoEnv(t)
	runJobsEndToEnd(t, newJobsEnv(t, e.config, 10*time.Millisecond))
}

// TestJobsReconnectMosquitto restarts mosquitto under an idle Jobs client:
// the client reconnects, restores its subscription and re-reads its
// pending set.
func TestJobsReconnectMosquitto(t *testing.T) {
	e := newMosquittoEnv(t)
	je := newJobsEnv(t, e.config, 300*time.Millisecond)
	je.createJob(t, "job-1")
	e.m.Restart()
	je.events.waitKind(t, jobs.EventLost, 1)
	ev := je.events.waitKind(t, jobs.EventResynced, 1)
	if ev.Err != nil {
		t.Fatalf("resync after a restart: %v", ev.Err)
	}
	if q := ev.Pending.QueuedJobs; len(q) != 1 || q[0].JobID != "job-1" {
		t.Errorf("pending set %+v, want job-1 queued", ev.Pending)
	}
}

// TestNoMatchingSubscribers checks that a QoS 1 publication nobody
// subscribed to succeeds: mosquitto acknowledges it with reason 0x10.
func TestNoMatchingSubscribers(t *testing.T) {
	e := newMosquittoEnv(t)
	c := connect(t, e.config(t, ""))
	publish(t, c, "nobody/listens", "hello", 1)
}
