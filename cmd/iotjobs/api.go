package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"

	"github.com/iotjobs/iotjobs/app/jobs"
	"github.com/iotjobs/iotjobs/domain/job"
)

// parseInterleaved parses flags that may come before, between or after the
// positional arguments, and returns the positional ones.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := parseFlags(fs, args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return positional, nil
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// detailFlags collects repeated --detail k=v flags.
type detailFlags job.StatusDetails

func (d detailFlags) String() string { return "" }

func (d detailFlags) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok {
		return fmt.Errorf("%q: want KEY=VALUE", v)
	}
	d[k] = val
	return nil
}

// apiCall makes one request with the positional arguments and returns the
// reply to print.
type apiCall func(ctx context.Context, c *jobs.Client, args []string) (any, error)

// apiCommand runs one Jobs API call from the shell: it parses the
// connection flags and the command's own (setup registers them and returns
// the call that reads them), connects, and prints the reply: with human,
// or as JSON with --json.
func apiCommand(name, usage string, nargs int, setup func(fs *flag.FlagSet) apiCall, human func(w io.Writer, reply any)) func(context.Context, []string, io.Writer, io.Writer) error {
	return func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
		fs := flag.NewFlagSet(name, flag.ContinueOnError)
		fs.SetOutput(stderr)
		fs.Usage = func() {
			fmt.Fprintf(stderr, "usage: iotjobs %s %s [connection flags]\n", name, usage)
			fs.PrintDefaults()
		}
		var conn connFlags
		conn.register(fs)
		asJSON := fs.Bool("json", false, "print the reply as JSON")
		call := setup(fs)
		pos, err := parseInterleaved(fs, args)
		if err != nil {
			return err
		}
		if len(pos) != nargs {
			fs.Usage()
			return fmt.Errorf("%s: want %d argument(s) (%s), got %d", name, nargs, usage, len(pos))
		}
		if err := conn.check(); err != nil {
			return err
		}
		logger := conn.logger(stderr, slog.LevelError) // the error returned says it all
		mc, err := conn.connect(ctx, logger)
		if err != nil {
			return err
		}
		defer mc.Close()
		c, err := jobs.New(ctx, mc, jobs.Options{Thing: conn.thing})
		if err != nil {
			return err
		}
		defer c.Close()
		reply, err := call(ctx, c, pos)
		if err != nil {
			return err
		}
		if *asJSON || human == nil {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(reply)
		}
		human(stdout, reply)
		return nil
	}
}

var runPending = apiCommand("pending", "", 0,
	func(*flag.FlagSet) apiCall {
		return func(ctx context.Context, c *jobs.Client, _ []string) (any, error) { return c.GetPending(ctx) }
	},
	func(w io.Writer, reply any) {
		r := reply.(*job.GetPendingResponse)
		for _, l := range []struct {
			status job.Status
			list   []job.Summary
		}{{job.InProgress, r.InProgressJobs}, {job.Queued, r.QueuedJobs}} {
			for _, s := range l.list {
				fmt.Fprintf(w, "%-11s %-40s version %d\n", l.status, s.JobID, s.VersionNumber)
			}
		}
		if len(r.InProgressJobs)+len(r.QueuedJobs) == 0 {
			fmt.Fprintln(w, "no pending jobs")
		}
	})

var runDescribe = apiCommand("describe", "JOB_ID|$next", 1,
	func(*flag.FlagSet) apiCall {
		return func(ctx context.Context, c *jobs.Client, args []string) (any, error) {
			r, err := c.Describe(ctx, args[0], job.DescribeRequest{})
			if err != nil {
				return nil, err
			}
			if r.Execution == nil {
				return nil, errors.New("describe: no pending job")
			}
			return r.Execution, nil
		}
	},
	func(w io.Writer, reply any) {
		e := reply.(*job.Execution)
		fmt.Fprintf(w, "job       %s\nstatus    %s\nversion   %d\nexecution %d\n", e.JobID, e.Status, e.VersionNumber, e.ExecutionNumber)
		if len(e.StatusDetails) > 0 {
			fmt.Fprintf(w, "details   %s\n", formatDetails(e.StatusDetails))
		}
		if len(e.JobDocument) > 0 {
			fmt.Fprintf(w, "document  %s\n", e.JobDocument)
		}
	})

var runUpdate = apiCommand("update", "JOB_ID STATUS", 2,
	func(fs *flag.FlagSet) apiCall {
		details := detailFlags{}
		fs.Var(details, "detail", "a status detail KEY=VALUE (repeatable)")
		expected := fs.String("expected-version", "", "fail unless the execution has this version")
		return func(ctx context.Context, c *jobs.Client, args []string) (any, error) {
			req := job.UpdateRequest{Status: job.Status(strings.ToUpper(args[1])), IncludeJobExecutionState: true}
			if len(details) > 0 {
				req.StatusDetails = job.StatusDetails(details)
			}
			if *expected != "" {
				v, err := strconv.ParseInt(*expected, 10, 64)
				if err != nil {
					return nil, fmt.Errorf("--expected-version %q: not a number", *expected)
				}
				ev := job.Version(v)
				req.ExpectedVersion = &ev
			}
			return c.Update(ctx, args[0], req)
		}
	},
	func(w io.Writer, reply any) {
		r := reply.(*job.UpdateResponse)
		if s := r.ExecutionState; s != nil {
			fmt.Fprintf(w, "status %s, version %d\n", s.Status, s.VersionNumber)
			return
		}
		fmt.Fprintln(w, "accepted")
	})
