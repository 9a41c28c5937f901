package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/iotjobs/iotjobs/testkit/benchtest"
	"github.com/iotjobs/iotjobs/testkit/pki"
)

// runBench measures the SDK (docs/performance.md): request round trips
// against raw paho over mochi and mosquitto, one job lifecycle on the
// in-memory broker, and a fleet of things in one process. It prints one
// table per measurement, with the ratios and targets.
func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	only := fs.String("only", "lifecycle,roundtrip,scale", "comma-separated measurements to run: lifecycle, roundtrip, scale")
	quick := fs.Bool("quick", false, "few iterations, 100 things: proves it works, figures are rough")
	things := fs.Int("things", 1000, "things of the scale measurement (quick: 100)")
	requests := fs.Int("n", 3000, "requests per round trip measurement (quick: 100)")
	lifecycles := fs.Int("lifecycles", 20000, "lifecycles measured (quick: 300)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: iotjobs bench [-only lifecycle,roundtrip,scale] [-quick] [-things N] [-n N] [-lifecycles N]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("bench: unexpected argument %q", fs.Arg(0))
	}
	if *quick {
		*things, *requests, *lifecycles = min(*things, 100), min(*requests, 100), min(*lifecycles, 300)
	}
	want := map[string]bool{}
	for _, m := range strings.Split(*only, ",") {
		switch m = strings.TrimSpace(m); m {
		case "lifecycle", "roundtrip", "scale":
			want[m] = true
		case "":
		default:
			return fmt.Errorf("bench: unknown measurement %q (want lifecycle, roundtrip or scale)", m)
		}
	}

	fmt.Fprintf(stdout, "iotjobs bench: %s, %d CPUs (GOMAXPROCS %d), %s %s/%s, load average %s\n\n", cpuModel(), runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.Version(), runtime.GOOS, runtime.GOARCH, loadAverage())
	if want["lifecycle"] {
		if err := benchLifecycle(ctx, stdout, *lifecycles); err != nil {
			return fmt.Errorf("bench: lifecycle: %w", err)
		}
	}
	if want["roundtrip"] {
		if err := benchRoundTrip(ctx, stdout, stderr, *requests); err != nil {
			return fmt.Errorf("bench: roundtrip: %w", err)
		}
	}
	if want["scale"] {
		if err := benchScale(ctx, stdout, *things); err != nil {
			return fmt.Errorf("bench: scale: %w", err)
		}
	}
	return nil
}

func metOrMissed(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}

func benchLifecycle(ctx context.Context, w io.Writer, n int) error {
	p, err := benchtest.Lifecycle(ctx, n)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "lifecycle: one job, fake service, in-memory broker")
	fmt.Fprintln(tw, "lifecycles\tns/op\tCPU ns/op\tB/op\tallocs/op\ttarget\t")
	fmt.Fprintf(tw, "%d\t%.0f\t%.0f\t%.0f\t%.1f\t≤50000 ns, ≤300 allocs: %s, %s\t\n", p.N, p.NsPerOp, p.CPUNsPerOp, p.BytesPerOp, p.AllocsPerOp,
		metOrMissed(p.NsPerOp <= 50000), metOrMissed(p.AllocsPerOp <= 300))
	tw.Flush()
	fmt.Fprintln(w)
	return nil
}

func benchRoundTrip(ctx context.Context, w, stderr io.Writer, n int) error {
	set, err := pki.NewSet("bench")
	if err != nil {
		return err
	}
	starts := []func(*pki.Set) (*benchtest.Broker, error){benchtest.StartMochi, benchtest.StartMosquitto}
	fmt.Fprintln(w, "roundtrip: Describe (sdk) vs paho publish + echo (raw), QoS 1, TLS on loopback")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "broker\tin flight\tsdk µs/op\traw µs/op\tsdk/raw time\tsdk/raw throughput\ttarget\t")
	for _, start := range starts {
		b, err := start(set)
		if errors.Is(err, benchtest.ErrNoMosquitto) {
			if os.Getenv("IOTJOBS_REQUIRE_MOSQUITTO") == "1" {
				return err
			}
			fmt.Fprintf(stderr, "bench: %v: skipped\n", err)
			continue
		}
		if err != nil {
			return err
		}
		for _, inflight := range []int{1, 64} {
			// Alternate the sides, three times, and keep the better of each,
			// so that both see the same machine.
			best := map[benchtest.Side]time.Duration{}
			for range 3 {
				for _, side := range []benchtest.Side{benchtest.Raw, benchtest.SDK} {
					d, err := benchtest.RoundTrip(ctx, b, side, inflight, n)
					if err != nil {
						b.Close()
						return fmt.Errorf("%s %s in flight %d: %w", b.Name, side, inflight, err)
					}
					if best[side] == 0 || d < best[side] {
						best[side] = d
					}
				}
			}
			sdk, raw := best[benchtest.SDK], best[benchtest.Raw]
			ratio := float64(sdk) / float64(raw)
			target := fmt.Sprintf("time ≤1.15×: %s", metOrMissed(ratio <= 1.15))
			if inflight > 1 {
				target = fmt.Sprintf("throughput ≥0.85×: %s", metOrMissed(1/ratio >= 0.85))
			}
			fmt.Fprintf(tw, "%s\t%d\t%.1f\t%.1f\t%.2f\t%.2f\t%s\t\n", b.Name, inflight,
				float64(sdk.Nanoseconds())/float64(n)/1e3, float64(raw.Nanoseconds())/float64(n)/1e3, ratio, 1/ratio, target)
		}
		b.Close()
	}
	tw.Flush()
	fmt.Fprintln(w)
	return nil
}

func benchScale(ctx context.Context, w io.Writer, things int) error {
	r, err := benchtest.Scale(ctx, things)
	if err != nil {
		return err
	}
	fmt.Fprintln(w, "scale: things in one process, each with its own membroker connection and Jobs client")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "things\theap/client\tstacks/client\tgoroutines/client\tconnect all\trollout to SUCCEEDED\ttarget\t")
	fmt.Fprintf(tw, "%d\t%.1f KiB\t%.1f KiB\t%.1f\t%v\t%v\theap ≤64 KiB: %s\t\n", r.Things, r.HeapPerClient/1024, r.StackPerClient/1024, float64(r.Goroutines)/float64(r.Things),
		r.Connect.Round(time.Microsecond), r.Rollout.Round(time.Microsecond), metOrMissed(r.HeapPerClient <= 64*1024))
	tw.Flush()
	fmt.Fprintln(w)
	return nil
}

// cpuModel returns the CPU model from /proc/cpuinfo, or GOARCH.
func cpuModel() string {
	data, err := os.ReadFile("/proc/cpuinfo")
	if err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if name, ok := strings.CutPrefix(line, "model name"); ok {
				return strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(name), ":"))
			}
		}
	}
	return runtime.GOARCH
}

// loadAverage returns the 1-minute load average from /proc/loadavg, or "?":
// other processes stretch every wall-clock figure.
func loadAverage() string {
	data, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(data)); err == nil && len(f) > 0 {
		return f[0]
	}
	return "?"
}
