// Command iotjobs runs AWS IoT Jobs on a device, calls the Jobs API from a
// shell, and serves a local emulator of AWS IoT Jobs.
//
// Usage:
//
//	iotjobs demo                       a device runs jobs on the embedded emulator
//	iotjobs agent [connection] --handlers DIR [--once] [--concurrency N]
//	iotjobs pending [connection] [--json]
//	iotjobs describe JOB_ID|$next [connection] [--json]
//	iotjobs update JOB_ID STATUS [--detail K=V]... [--expected-version N] [connection]
//	iotjobs emulator [--dir DIR] [--thing NAME]
//	iotjobs presign --endpoint HOST[:PORT] [--region R] [--profile P]
//
// The connection flags are --endpoint, --thing, and either --cert and --key
// (MQTT 5 over TLS) or --iam (SigV4 WebSocket), with --ca, --region,
// --profile and --client-id; docs/agent.md describes them all.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0) // -h: the usage was printed, as asked
		}
		fmt.Fprintln(os.Stderr, "iotjobs:", err)
		os.Exit(2)
	}
}

// command is one subcommand of the CLI.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

// commands lists the subcommands, in the order usage shows them. Each lives
// in a file of its own name.
var commands = []command{
	{"demo", "run a device against the embedded emulator (no AWS account needed)", runDemo},
	{"agent", "run the thing's jobs with handler executables", runAgent},
	{"emulator", "serve a local stand-in for AWS IoT Jobs (TLS, SigV4 WebSocket, HTTP control)", runEmulator},
	{"pending", "list the thing's pending jobs (GetPendingJobExecutions)", runPending},
	{"describe", "describe a job execution, or $next (DescribeJobExecution)", runDescribe},
	{"update", "update a job execution's status (UpdateJobExecution)", runUpdate},
	{"presign", "print a SigV4-presigned WebSocket URL for an endpoint (debug IAM auth)", runPresign},
	{"bench", "measure round trips, a job lifecycle and a fleet of things (docs/performance.md)", runBench},
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: iotjobs <command> [flags]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "commands:")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Run 'iotjobs <command> -h' for the flags of a command.")
}

// run executes the command line args, writing results to stdout and
// diagnostics to stderr.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		usage(stderr)
		return errors.New("no command given")
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		usage(stdout)
		return nil
	}
	for _, c := range commands {
		if c.name == args[0] {
			return c.run(ctx, args[1:], stdout, stderr)
		}
	}
	return fmt.Errorf("unknown command %q ('iotjobs help' lists the commands)", args[0])
}
