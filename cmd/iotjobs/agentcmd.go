package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/iotjobs/iotjobs/app/agent"
	"github.com/iotjobs/iotjobs/app/jobs"
)

func runAgent(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("agent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var conn connFlags
	conn.register(fs)
	handlers := fs.String("handlers", "", "directory of handler executables: a job {\"operation\":\"NAME\",\"args\":[...]} runs DIR/NAME with the args")
	once := fs.Bool("once", false, "exit when no job is pending any more")
	concurrency := fs.Int("concurrency", 1, "how many jobs run at once")
	grace := fs.Duration("grace", 10*time.Second, "how long a canceled handler has between SIGTERM and SIGKILL")
	stepTimeout := fs.Duration("step-timeout", 0, "fail a job whose handler reports no progress for this long (0: none)")
	startNext := fs.Bool("start-next", false, "take jobs with StartNextPendingJobExecution instead of Describe $next + Update")
	verbose := fs.Bool("v", false, "log every request and event")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("agent: unexpected arguments %q", fs.Args())
	}
	if *handlers == "" {
		return errors.New("missing --handlers DIR: the directory of the executables that run jobs")
	}
	if fi, err := os.Stat(*handlers); err != nil || !fi.IsDir() {
		return fmt.Errorf("--handlers %s: not a directory", *handlers)
	}
	// Absolute: a handler runs in the directory, where a relative path
	// would name DIR/DIR/NAME.
	handlersDir, err := filepath.Abs(*handlers)
	if err != nil {
		return fmt.Errorf("--handlers %s: %w", *handlers, err)
	}
	if *concurrency < 1 {
		return errors.New("--concurrency must be at least 1")
	}
	if err := conn.check(); err != nil {
		return err
	}
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelDebug
	}
	logger := conn.logger(stderr, level)

	mc, err := conn.connect(ctx, logger)
	if err != nil {
		return err
	}
	defer mc.Close()
	report := newResultReporter(stdout, conn.logFormat == "json")
	a, err := agent.New(ctx, mc, conn.thing, agent.Config{
		Handler:      execHandler{dir: handlersDir, grace: *grace},
		Concurrency:  *concurrency,
		UseStartNext: *startNext,
		StepTimeout:  *stepTimeout,
		Logger:       logger,
		OnResult:     report.result,
		Client:       jobs.Options{Thing: conn.thing, Logger: logger},
	})
	if err != nil {
		return err
	}
	defer a.Close()
	report.started(conn.thing, conn.endpoint, *once)
	if *once {
		err = a.RunOnce(ctx)
	} else {
		err = a.Run(ctx)
	}
	report.finished()
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		return nil // interrupted: a normal end
	}
	return err
}

// resultReporter prints the agent's results: a line per job for people, or
// one JSON object per job with --log-format json.
type resultReporter struct {
	w      io.Writer
	json   *slog.Logger
	counts map[string]int
	start  time.Time
}

func newResultReporter(w io.Writer, asJSON bool) *resultReporter {
	r := &resultReporter{w: w, counts: map[string]int{}, start: time.Now()}
	if asJSON {
		r.json = slog.New(slog.NewJSONHandler(w, nil))
	}
	return r
}

func (r *resultReporter) started(thing, endpoint string, once bool) {
	if r.json != nil {
		r.json.Info("agent started", "thing", thing, "endpoint", endpoint, "once", once)
		return
	}
	fmt.Fprintf(r.w, "iotjobs agent: thing %s on %s\n", thing, endpoint)
}

func (r *resultReporter) result(res agent.Result) {
	status := string(res.Status)
	if status == "" {
		status = "DELETED"
	}
	r.counts[status]++
	if r.json != nil {
		attrs := []any{"job", res.JobID, "status", status, "duration", res.Duration.Round(time.Millisecond).String(), "resumed", res.Resumed}
		if res.Err != nil {
			attrs = append(attrs, "error", res.Err.Error())
		}
		if res.ReportErr != nil {
			attrs = append(attrs, "report_error", res.ReportErr.Error())
		}
		r.json.Info("job ended", attrs...)
		return
	}
	line := fmt.Sprintf("%-10s %-32s %6s", status, res.JobID, res.Duration.Round(time.Millisecond))
	if res.Resumed {
		line += " (resumed)"
	}
	if res.Err != nil {
		line += "  " + res.Err.Error()
	}
	if res.ReportErr != nil {
		line += "  (not reported yet: " + res.ReportErr.Error() + ")"
	}
	fmt.Fprintln(r.w, line)
}

func (r *resultReporter) finished() {
	total := 0
	for _, n := range r.counts {
		total += n
	}
	if r.json != nil {
		r.json.Info("agent stopped", "jobs", total)
		return
	}
	fmt.Fprintf(r.w, "iotjobs agent: %d job(s) in %s\n", total, time.Since(r.start).Round(time.Millisecond))
}
