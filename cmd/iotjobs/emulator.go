package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/iotjobs/iotjobs/testkit/emulator"
)

func runEmulator(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("emulator", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var opts emulator.Options
	fs.StringVar(&opts.Dir, "dir", "", "write the certificates here (default: a temporary directory, removed on exit)")
	fs.StringVar(&opts.Thing, "thing", "demo-thing", "issue the client certificate for this thing")
	fs.StringVar(&opts.MQTTAddr, "mqtt-addr", "127.0.0.1:8883", "address of the MQTT 5 over TLS listener (client certificate required)")
	fs.StringVar(&opts.WebSocketAddr, "ws-addr", "127.0.0.1:8443", "address of the MQTT over SigV4 WebSocket (wss) listener")
	fs.StringVar(&opts.ControlAddr, "control-addr", "127.0.0.1:8080", "address of the HTTP control plane")
	fs.StringVar(&opts.Region, "region", "us-east-1", "region that IAM requests must be signed for")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("emulator: unexpected arguments %q", fs.Args())
	}
	e, err := emulator.Start(ctx, opts)
	if err != nil {
		return err
	}
	defer e.Close()
	f := e.Files()
	creds := e.Credentials()
	fmt.Fprintf(stdout, `iotjobs emulator: a local stand-in for AWS IoT Jobs (stop with Ctrl-C)

certificates (thing %[1]q):
  --ca %[2]s --cert %[3]s --key %[4]s

MQTT 5 over TLS:    --endpoint %[5]s
SigV4 WebSocket:    --endpoint %[6]s --iam --region %[7]s
  with AWS_ACCESS_KEY_ID=%[8]s AWS_SECRET_ACCESS_KEY=%[9]s
  (throw-away credentials made for this emulator; it accepts no others)

control plane:      %[10]s
  curl -X POST %[10]s/jobs -d '{"jobId":"job-1","document":{"operation":"reboot"},"targets":["%[1]s"]}'
  curl %[10]s/executions
  curl -X POST '%[10]s/jobs/job-1/cancel?force=true'

example agent:
  iotjobs agent --endpoint %[5]s --thing %[1]s --ca %[2]s --cert %[3]s --key %[4]s --handlers DIR
`, opts.Thing, f.CA, f.ClientCert, f.ClientKey, e.MQTTAddr(), e.WebSocketAddr(), e.Region(),
		creds.AccessKeyID, creds.SecretAccessKey, e.ControlURL())
	<-ctx.Done()
	fmt.Fprintln(stdout, "iotjobs emulator: stopped")
	return nil
}
