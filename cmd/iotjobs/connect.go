package main

import (
	"context"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync/atomic"
	"time"

	"github.com/iotjobs/iotjobs/adapters/mqtt5"
	"github.com/iotjobs/iotjobs/adapters/sigv4ws"
	"github.com/iotjobs/iotjobs/domain/job"
)

// Environment variables that stand in for connection flags.
const (
	envEndpoint = "IOTJOBS_ENDPOINT"
	envThing    = "IOTJOBS_THING"
)

// connFlags are the connection flags shared by the commands that talk to
// AWS IoT Core (or the emulator).
type connFlags struct {
	endpoint, thing, clientID string
	cert, key, ca             string
	iam                       bool
	region, profile           string
	connectTimeout            time.Duration
	logFormat                 string
}

func (c *connFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.endpoint, "endpoint", os.Getenv(envEndpoint), "AWS IoT data endpoint HOST[:PORT] (env "+envEndpoint+")")
	fs.StringVar(&c.thing, "thing", os.Getenv(envThing), "thing name (env "+envThing+")")
	fs.StringVar(&c.clientID, "client-id", "", "MQTT client id (default: the thing name)")
	fs.StringVar(&c.cert, "cert", "", "client certificate PEM file (MQTT 5 over TLS, port 8883 by default)")
	fs.StringVar(&c.key, "key", "", "private key PEM file of --cert")
	fs.BoolVar(&c.iam, "iam", false, "authenticate with IAM credentials over a SigV4 WebSocket (port 443 by default)")
	fs.StringVar(&c.region, "region", "", "AWS region for --iam (default: from the endpoint or the AWS configuration)")
	fs.StringVar(&c.profile, "profile", "", "AWS profile for --iam")
	fs.StringVar(&c.ca, "ca", "", "trust this CA PEM file instead of the system roots")
	fs.DurationVar(&c.connectTimeout, "connect-timeout", 10*time.Second, "give up connecting after this long")
	fs.StringVar(&c.logFormat, "log-format", "text", "log format: text or json (logs go to stderr)")
}

// check reports the first problem with the flags, as a one-line error that
// says what to fix.
func (c *connFlags) check() error {
	switch {
	case c.endpoint == "":
		return errors.New("missing --endpoint (or " + envEndpoint + "): your AWS IoT data endpoint, e.g. abc123-ats.iot.eu-west-1.amazonaws.com")
	case c.thing == "":
		return errors.New("missing --thing (or " + envThing + ")")
	case c.iam && (c.cert != "" || c.key != ""):
		return errors.New("give either --cert and --key, or --iam, not both")
	case !c.iam && (c.cert == "" || c.key == ""):
		return errors.New("give --cert and --key (a thing certificate), or --iam (IAM credentials)")
	case !c.iam && (c.region != "" || c.profile != ""):
		return errors.New("--region and --profile apply to --iam only")
	case c.connectTimeout <= 0:
		return errors.New("--connect-timeout must be positive")
	case c.logFormat != "text" && c.logFormat != "json":
		return fmt.Errorf("--log-format %q: want text or json", c.logFormat)
	}
	for _, f := range []struct{ flag, path string }{{"--cert", c.cert}, {"--key", c.key}, {"--ca", c.ca}} {
		if f.path == "" {
			continue
		}
		if _, err := os.Stat(f.path); err != nil {
			return fmt.Errorf("%s %s: %w", f.flag, f.path, errors.Unwrap(err))
		}
	}
	return job.ValidateThingName(c.thing)
}

// logger returns the logger the flags ask for, writing to w.
func (c *connFlags) logger(w io.Writer, level slog.Level) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if c.logFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// connect checks the flags and connects, within --connect-timeout. The
// warnings of the first connection attempt are dropped unless logger is at
// debug level: if it fails, the error returned says it all, in one line.
func (c *connFlags) connect(ctx context.Context, logger *slog.Logger) (*mqtt5.Client, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	connecting := new(atomic.Bool)
	if !logger.Enabled(ctx, slog.LevelDebug) {
		connecting.Store(true)
		logger = slog.New(quietWhile{logger.Handler(), connecting})
	}
	defer connecting.Store(false)
	cfg := mqtt5.Config{
		Endpoint: c.endpoint,
		ClientID: c.clientID,
		CAFile:   c.ca,
		Logger:   logger,
	}
	if cfg.ClientID == "" {
		cfg.ClientID = c.thing
	}
	if c.iam {
		var roots *x509.CertPool
		if c.ca != "" {
			pem, err := os.ReadFile(c.ca)
			if err != nil {
				return nil, fmt.Errorf("--ca: %w", err)
			}
			roots = x509.NewCertPool()
			if !roots.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("--ca %s: no PEM certificate in it", c.ca)
			}
		}
		d, err := sigv4ws.NewDialer(sigv4ws.Config{
			Endpoint: c.endpoint, Region: c.region, Profile: c.profile, RootCAs: roots, Logger: logger,
		})
		if err != nil {
			return nil, err
		}
		cfg.Dialer = d
	} else {
		cfg.CertFile, cfg.KeyFile = c.cert, c.key
	}
	ctx, cancel := context.WithTimeout(ctx, c.connectTimeout)
	defer cancel()
	conn, err := mqtt5.Connect(ctx, cfg)
	if errors.Is(err, context.DeadlineExceeded) {
		return nil, fmt.Errorf("could not connect to %s within %s: check the endpoint, the port and the network: %w", c.endpoint, c.connectTimeout, err)
	}
	return conn, err
}

// quietWhile drops records below slog.LevelError while its flag is set.
type quietWhile struct {
	slog.Handler
	quiet *atomic.Bool
}

func (h quietWhile) Enabled(ctx context.Context, level slog.Level) bool {
	return (level >= slog.LevelError || !h.quiet.Load()) && h.Handler.Enabled(ctx, level)
}

func (h quietWhile) Handle(ctx context.Context, r slog.Record) error {
	if r.Level < slog.LevelError && h.quiet.Load() {
		return nil
	}
	return h.Handler.Handle(ctx, r)
}

func (h quietWhile) WithAttrs(attrs []slog.Attr) slog.Handler {
	return quietWhile{h.Handler.WithAttrs(attrs), h.quiet}
}

func (h quietWhile) WithGroup(name string) slog.Handler {
	return quietWhile{h.Handler.WithGroup(name), h.quiet}
}
