package emulator

import (
	"context"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"go.uber.org/goleak"

	"github.com/iotjobs/iotjobs/adapters/mqtt5"
	"github.com/iotjobs/iotjobs/adapters/sigv4ws"
	"github.com/iotjobs/iotjobs/app/jobs"
	"github.com/iotjobs/iotjobs/domain/job"
	"github.com/iotjobs/iotjobs/ports"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func startEmulator(t *testing.T, opts Options) *Emulator {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e, err := Start(ctx, opts)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := e.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return e
}

// runDevice queues a job through the HTTP control plane and takes it to
// SUCCEEDED with a Jobs client over conn.
func runDevice(t *testing.T, e *Emulator, conn ports.PubSub, thing, jobID string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := jobs.New(ctx, conn, jobs.Options{Thing: thing})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	body := `{"jobId":"` + jobID + `","document":{"operation":"reboot"},"targets":["` + thing + `"]}`
	resp, err := http.Post(e.ControlURL()+"/jobs", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST /jobs: %s", resp.Status)
	}

	next, err := c.Describe(ctx, job.NextJobID, job.DescribeRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if next.Execution == nil || next.Execution.JobID != jobID {
		t.Fatalf("next = %+v, want %s", next.Execution, jobID)
	}
	if _, err := c.Update(ctx, jobID, job.UpdateRequest{Status: job.Succeeded, ExpectedVersion: &next.Execution.VersionNumber}); err != nil {
		t.Fatal(err)
	}
	if ex, _ := e.Service().Execution(thing, jobID); ex.Status != job.Succeeded {
		t.Errorf("the service holds %s, want SUCCEEDED", ex.Status)
	}
}

func TestEmulatorCertificates(t *testing.T) {
	dir := t.TempDir()
	e := startEmulator(t, Options{Dir: dir, Thing: "cert-thing"})
	if !strings.HasPrefix(e.Files().CA, dir) {
		t.Errorf("CA file %s not in %s", e.Files().CA, dir)
	}
	// Connect as a user would: with the files the emulator wrote.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := mqtt5.Connect(ctx, mqtt5.Config{
		Endpoint: e.MQTTAddr(), ServerName: "localhost", ClientID: "cert-thing",
		CertFile: e.Files().ClientCert, KeyFile: e.Files().ClientKey, CAFile: e.Files().CA,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	runDevice(t, e, conn, "cert-thing", "job-over-tls")
}

func TestEmulatorRefusesUnknownCertificate(t *testing.T) {
	e := startEmulator(t, Options{})
	other := startEmulator(t, Options{}) // another CA
	cert := other.ClientCertificate()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := mqtt5.Connect(ctx, mqtt5.Config{
		Endpoint: e.MQTTAddr(), ServerName: "localhost", ClientID: "demo-thing",
		Certificate: &cert, RootCAs: e.RootCAs(),
	})
	if err == nil {
		conn.Close()
		t.Fatal("a certificate from another CA connected")
	}
}

func TestEmulatorIAM(t *testing.T) {
	e := startEmulator(t, Options{Region: "eu-west-1"})
	dial := func(creds aws.Credentials) (*mqtt5.Client, error) {
		d, err := sigv4ws.NewDialer(sigv4ws.Config{
			Endpoint:    e.WebSocketAddr(),
			Region:      e.Region(),
			Credentials: credentials.StaticCredentialsProvider{Value: creds},
			RootCAs:     e.RootCAs(),
		})
		if err != nil {
			return nil, err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return mqtt5.Connect(ctx, mqtt5.Config{ClientID: "iam-thing", Dialer: d})
	}
	conn, err := dial(e.Credentials())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	runDevice(t, e, conn, "iam-thing", "job-over-iam")

	wrong := e.Credentials()
	wrong.SecretAccessKey = "not-the-secret"
	if c, err := dial(wrong); err == nil {
		c.Close()
		t.Fatal("a wrong secret connected")
	}
}

func TestEmulatorTempDirRemoved(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e, err := Start(ctx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ca := e.Files().CA
	if _, err := os.Stat(ca); err != nil {
		t.Fatalf("CA file: %v", err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(ca); !os.IsNotExist(err) {
		t.Errorf("CA file still there after Close: %v", err)
	}
	if err := e.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestEmulatorBadOptions(t *testing.T) {
	ctx := context.Background()
	if _, err := Start(ctx, Options{Thing: "bad thing"}); err == nil {
		t.Error("Start accepted an invalid thing name")
	}
	if _, err := Start(ctx, Options{ControlAddr: "256.0.0.1:1"}); err == nil {
		t.Error("Start accepted an invalid control address")
	}
}
