package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/iotjobs/iotjobs/adapters/sigv4ws"
)

// presignTimeout bounds the retrieval of credentials (SSO, STS, instance
// metadata may be slow or unreachable).
const presignTimeout = 30 * time.Second

// runPresign prints the presigned WebSocket URL that connects to an AWS IoT
// Core endpoint with the credentials of the default AWS chain, to debug IAM
// authentication with another client (see docs/connect-iam.md).
func runPresign(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("presign", flag.ContinueOnError)
	fs.SetOutput(stderr)
	endpoint := fs.String("endpoint", "", "the AWS IoT Core data endpoint, `HOST[:PORT]` (required)")
	region := fs.String("region", "", "the `region` to sign for (default: the endpoint's, else AWS_REGION or the profile's)")
	profile := fs.String("profile", "", "the shared configuration `profile` (default: AWS_PROFILE, else default)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: iotjobs presign --endpoint HOST[:PORT] [--region R] [--profile P]")
		fmt.Fprintln(stderr)
		fmt.Fprintln(stderr, "Prints the wss:// URL, presigned with SigV4 by the default AWS credentials chain,")
		fmt.Fprintln(stderr, "that opens an MQTT WebSocket connection to AWS IoT Core. It is valid for about")
		fmt.Fprintln(stderr, "5 minutes and holds a signature (and a session token): treat it as a secret.")
		fmt.Fprintln(stderr)
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("presign: unexpected arguments %q", fs.Args())
	}
	if *endpoint == "" {
		fs.Usage()
		return errors.New("presign: --endpoint is required")
	}

	d, err := sigv4ws.NewDialer(sigv4ws.Config{Endpoint: *endpoint, Region: *region, Profile: *profile})
	if err != nil {
		return fmt.Errorf("presign: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, presignTimeout)
	defer cancel()
	p, err := d.Presign(ctx)
	if err != nil {
		return fmt.Errorf("presign: %w", err)
	}
	fmt.Fprintln(stdout, p.URL)

	kind := "long-term"
	if p.Temporary {
		kind = "temporary"
	}
	if !p.Expires.IsZero() {
		kind += ", expiring " + p.Expires.UTC().Format(time.RFC3339)
	}
	fmt.Fprintf(stderr, "presign: signed for region %s at %s with access key %s (%s credentials, from %s); valid for about 5 minutes\n",
		p.Region, p.SignedAt.UTC().Format(time.RFC3339), p.AccessKeyID, kind, source(p.Source))
	return nil
}

// source names where the credentials came from.
func source(s string) string {
	if s == "" {
		return "the default chain"
	}
	return s
}
