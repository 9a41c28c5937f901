package emulator

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/mochi-mqtt/server/v2/listeners"

	"github.com/iotjobs/iotjobs/adapters/mqtt5"
	"github.com/iotjobs/iotjobs/domain/job"
	"github.com/iotjobs/iotjobs/testkit/brokertest"
	"github.com/iotjobs/iotjobs/testkit/jobstest"
	"github.com/iotjobs/iotjobs/testkit/pki"
	"github.com/iotjobs/iotjobs/testkit/sigv4test"
)

// ServiceClientID is the client id of the fake Jobs service's own
// connection to the broker.
const ServiceClientID = "iotjobs-emulator-service"

// Options configure an Emulator. The zero value serves everything on free
// loopback ports with certificates in a temporary directory.
type Options struct {
	// Dir receives the certificates (pki.Set.WriteFiles: ca.pem,
	// server.crt/.key, client.crt/.key). Empty means a new temporary
	// directory, removed by Close.
	Dir string
	// Thing is the common name of the client certificate issued; empty
	// means "demo-thing". Any certificate from the emulator's CA may
	// connect, whatever its name.
	Thing string
	// MQTTAddr is the address of the MQTT 5 over TLS listener, which
	// requires a client certificate; empty means "127.0.0.1:0".
	MQTTAddr string
	// WebSocketAddr is the address of the MQTT over SigV4 WebSocket (wss)
	// listener; empty means "127.0.0.1:0".
	WebSocketAddr string
	// ControlAddr is the address of the HTTP control plane; empty means
	// "127.0.0.1:0".
	ControlAddr string
	// Credentials are the IAM credentials the WebSocket listener accepts.
	// Empty means one generated pair, which Credentials reports.
	Credentials []aws.Credentials
	// Region is the region requests must be signed for; empty means
	// "us-east-1".
	Region string
	// Clock drives the fake service's timestamps and timers; nil means the
	// real clock.
	Clock jobstest.Clock
	// Logger receives the broker's and the service's log; nil discards it.
	Logger *slog.Logger
}

// Emulator is a running stand-in for AWS IoT Core's Jobs on this machine.
type Emulator struct {
	set      *pki.Set
	files    pki.Files
	tempDir  string
	creds    []aws.Credentials
	region   string
	wsAddr   string
	broker   *brokertest.Broker
	svcConn  *mqtt5.Client
	svc      *jobstest.Service
	control  *http.Server
	ctlLn    net.Listener
	ctlDone  chan struct{}
	closeErr error
}

// Start starts the broker, its two listeners, the fake Jobs service and the
// control plane, and returns once all of them serve.
func Start(ctx context.Context, opts Options) (_ *Emulator, err error) {
	if opts.Thing == "" {
		opts.Thing = "demo-thing"
	}
	if err := job.ValidateThingName(opts.Thing); err != nil {
		return nil, fmt.Errorf("emulator: %w", err)
	}
	if opts.Region == "" {
		opts.Region = "us-east-1"
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	e := &Emulator{creds: opts.Credentials, region: opts.Region, ctlDone: make(chan struct{})}
	defer func() {
		if err != nil {
			e.Close()
		}
	}()

	if e.set, err = pki.NewSet(opts.Thing); err != nil {
		return nil, fmt.Errorf("emulator: certificates: %w", err)
	}
	dir := opts.Dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "iotjobs-emulator-"); err != nil {
			return nil, fmt.Errorf("emulator: %w", err)
		}
		e.tempDir = dir
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("emulator: %w", err)
	}
	if e.files, err = e.set.WriteFiles(dir); err != nil {
		return nil, fmt.Errorf("emulator: certificates: %w", err)
	}
	if len(e.creds) == 0 {
		e.creds = []aws.Credentials{generatedCredentials()}
	}

	// The WebSocket listener must be made anew after a broker restart: fix
	// its address on the first start.
	wsAddr := orLoopback(opts.WebSocketAddr)
	var ws *sigv4test.Listener
	newListeners := func() ([]listeners.Listener, error) {
		ws = sigv4test.NewListener(sigv4test.Config{
			Address:     wsAddr,
			TLSConfig:   &tls.Config{Certificates: []tls.Certificate{e.set.Server}, MinVersion: tls.VersionTLS12},
			Region:      e.region,
			Credentials: sigv4test.StaticLookup(e.creds...),
		})
		return []listeners.Listener{ws}, nil
	}
	e.broker, err = brokertest.Start(brokertest.Options{
		TLS:          e.set.CA.ServerTLS(e.set.Server),
		Addr:         orLoopback(opts.MQTTAddr),
		NewListeners: newListeners,
		Logger:       logger,
	})
	if err != nil {
		return nil, fmt.Errorf("emulator: broker: %w", err)
	}
	e.wsAddr = ws.Address()
	wsAddr = e.wsAddr

	// The fake service is a client of the broker like any device.
	serviceCert, err := e.set.CA.Client(ServiceClientID)
	if err != nil {
		return nil, fmt.Errorf("emulator: certificates: %w", err)
	}
	e.svcConn, err = mqtt5.Connect(ctx, mqtt5.Config{
		Endpoint:     e.broker.Addr(),
		ServerName:   "localhost",
		ClientID:     ServiceClientID,
		Certificate:  &serviceCert,
		RootCAs:      e.set.CA.Pool(),
		ReconnectMin: 100 * time.Millisecond,
		ReconnectMax: time.Second,
		Logger:       logger,
	})
	if err != nil {
		return nil, fmt.Errorf("emulator: service connection: %w", err)
	}
	e.svc = jobstest.New(jobstest.Options{Clock: opts.Clock})
	if err := e.svc.Start(ctx, e.svcConn); err != nil {
		return nil, fmt.Errorf("emulator: service: %w", err)
	}

	if e.ctlLn, err = net.Listen("tcp", orLoopback(opts.ControlAddr)); err != nil {
		return nil, fmt.Errorf("emulator: control plane: %w", err)
	}
	e.control = &http.Server{Handler: ControlHandler(e.svc), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		defer close(e.ctlDone)
		e.control.Serve(e.ctlLn) // returns http.ErrServerClosed at Close
	}()
	return e, nil
}

func orLoopback(addr string) string {
	if addr == "" {
		return "127.0.0.1:0"
	}
	return addr
}

// generatedCredentials returns a fresh access key pair for the emulator
// alone.
func generatedCredentials() aws.Credentials {
	var b [20]byte
	rand.Read(b[:])
	return aws.Credentials{
		AccessKeyID:     "AKIAEMULATOR" + hex.EncodeToString(b[:4]),
		SecretAccessKey: hex.EncodeToString(b[4:]),
		Source:          "iotjobs emulator",
	}
}

// MQTTAddr returns the address of the MQTT 5 over TLS listener.
func (e *Emulator) MQTTAddr() string { return e.broker.Addr() }

// WebSocketAddr returns the address of the SigV4 WebSocket listener: the
// endpoint is wss://ADDR/mqtt.
func (e *Emulator) WebSocketAddr() string { return e.wsAddr }

// ControlURL returns the base URL of the HTTP control plane.
func (e *Emulator) ControlURL() string { return "http://" + e.ctlLn.Addr().String() }

// Files returns the paths of the certificates: the CA to trust, the
// server's, and the thing's client certificate and key.
func (e *Emulator) Files() pki.Files { return e.files }

// RootCAs returns a pool holding the emulator's CA, for clients.
func (e *Emulator) RootCAs() *x509.CertPool { return e.set.CA.Pool() }

// ClientCertificate returns the client certificate of Options.Thing.
func (e *Emulator) ClientCertificate() tls.Certificate { return e.set.Client }

// IssueClientCertificate returns a new client certificate for thing from
// the emulator's CA.
func (e *Emulator) IssueClientCertificate(thing string) (tls.Certificate, error) {
	return e.set.CA.Client(thing)
}

// Credentials returns the first IAM credentials the WebSocket listener
// accepts.
func (e *Emulator) Credentials() aws.Credentials { return e.creds[0] }

// Region returns the region WebSocket requests must be signed for.
func (e *Emulator) Region() string { return e.region }

// Service returns the fake Jobs service, to drive from Go.
func (e *Emulator) Service() *jobstest.Service { return e.svc }

// Broker returns the in-process broker, for fault injection in tests.
func (e *Emulator) Broker() *brokertest.Broker { return e.broker }

// Close stops everything Start started and removes the temporary
// certificate directory, if Start made it. A second Close returns nil.
func (e *Emulator) Close() error {
	if e.control != nil {
		e.closeErr = e.control.Close()
		<-e.ctlDone
		e.control = nil
	} else if e.ctlLn != nil {
		e.ctlLn.Close()
	}
	if e.svc != nil {
		e.svc.Close()
		e.svc = nil
	}
	if e.svcConn != nil {
		e.svcConn.Close()
		e.svcConn = nil
	}
	if e.broker != nil {
		e.broker.Close()
		e.broker = nil
	}
	if e.tempDir != "" {
		if err := os.RemoveAll(e.tempDir); err != nil && e.closeErr == nil {
			e.closeErr = err
		}
		e.tempDir = ""
	}
	err := e.closeErr
	e.closeErr = nil
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}
