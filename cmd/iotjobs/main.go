// Command iotjobs runs AWS IoT Jobs on a device.
//
// Usage:
//
//	iotjobs demo [-thing NAME]
//
// demo runs a device against the embedded emulator: the fake AWS IoT Jobs
// service on the in-memory broker queues a few jobs, and the Jobs client
// takes each one, reports progress and a result. It needs no AWS account.
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
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "iotjobs:", err)
		}
		os.Exit(2)
	}
}

const usage = `usage: iotjobs <command> [flags]

commands:
  demo    run a device against the embedded emulator (no AWS account needed)
`

// run executes the command line args, writing results to stdout and
// diagnostics to stderr.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("no command given")
	}
	switch args[0] {
	case "demo":
		return runDemo(ctx, args[1:], stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", args[0])
}
