// Command cabench measures keyless's CA and step-ca v0.30.2 as processes,
// side by side in one invocation so their ratios are comparable on a
// shared machine. It makes a CA with `keyless ca init` (a generated
// password, a JWK provisioner) and serves it with `keyless ca serve`, and
// runs step-ca (JWK provisioner, bbolt database) in a second process; then,
// for each client count and each operation, it drives keyless and step-ca
// in turn with smallstep's own Go client (github.com/smallstep/certificates/ca),
// one keep-alive TLS connection per client, tokens and P-256 CSRs made
// before the clock starts.
//
// Operations: op=sign is POST /1.0/sign with a one-time JWK token and a new
// CSR; op=renew is POST /1.0/renew over mTLS with the client's current
// certificate. Each server's CPU per certificate is the growth of its
// utime+stime (/proc/PID/stat, in clock ticks from AT_CLKTCK) over the
// timed window divided by the certificates issued in it. Every certificate
// must come back and chain to the server's root; any failure ends cabench
// with exit status 1 (bad flags: 2).
//
// Output is Go benchmark lines (golang.org/x/perf/benchfmt reads them):
//
//	BenchmarkCAProcess/op=sign/server=keyless/clients=16 N ns/op V certs/s V cpu-us/cert V client-cpu-us/cert V p50-ms V p99-ms V rss-MB
//
// where N is the certificates timed, ns/op the wall time per certificate
// (1/throughput), cpu-us/cert the server process's CPU, client-cpu-us/cert
// this process's (smallstep's clients), and rss-MB the server's resident
// set after the run.
//
// Usage (from interop/stepca):
//
//	go run ./cmd/cabench -keyless BIN [-step-ca BIN] [-duration 10s] [-clients 1,16] [-ops sign,renew]
//
// Flags:
//
//	-keyless BIN     the keyless binary to measure (required)
//	-step-ca BIN     a step-ca server taking -config and -password-file
//	                 (go build ./cmd/stepca-server); without it cabench
//	                 builds cmd/stepca-server itself (run it from interop/stepca)
//	-no-step-ca      measure keyless only
//	-baseline BIN    another keyless binary (an older build) measured in the
//	                 same run, reported as server=keyless-baseline
//	-duration D      about how long each timed run lasts (default 10s)
//	-clients LIST    comma-separated concurrent client counts (default 1,16)
//	-ops LIST        comma-separated operations: sign, renew (default sign,renew)
//	-count N         time exactly N certificates per run instead of -duration
//	-keep DIR        make the CAs in DIR and keep them (default: a temporary
//	                 directory, removed at the end)
//	-serve-arg ARG   one more argument for `keyless ca serve` (repeatable)
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/smallstep/certificates/ca"

	"github.com/keyless-dev/keyless/interop/stepca/cabench"
)

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, " ") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

func main() {
	fs := flag.NewFlagSet("cabench", flag.ContinueOnError)
	keyless := fs.String("keyless", "", "the keyless binary to measure (required)")
	stepCA := fs.String("step-ca", "", "a step-ca server binary taking -config and -password-file (go build ./cmd/stepca-server); built from this module when empty")
	noStep := fs.Bool("no-step-ca", false, "measure keyless only")
	baseline := fs.String("baseline", "", "another keyless binary (an older build) measured in the same run as server=keyless-baseline")
	duration := fs.Duration("duration", 10*time.Second, "about how long each timed run lasts")
	clientsFlag := fs.String("clients", "1,16", "comma-separated concurrent client counts")
	opsFlag := fs.String("ops", "sign,renew", "comma-separated operations: sign, renew")
	count := fs.Int("count", 0, "time exactly this many certificates per run instead of -duration")
	keep := fs.String("keep", "", "make the CAs in this directory and keep them (default: a temporary directory, removed at the end)")
	var serveArgs listFlag
	fs.Var(&serveArgs, "serve-arg", "one more argument for keyless ca serve, such as --log-level=warn (repeatable)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: go run ./cmd/cabench -keyless BIN [-step-ca BIN] [-duration 10s] [-clients 1,16] [-ops sign,renew]\n\n"+
			"Measures `keyless ca serve` and step-ca as processes with smallstep's client: certificates/s,\n"+
			"p50/p99 latency, and each server's CPU per certificate (from /proc/PID/stat), as Go benchmark lines.\n\n"+
			"Example (from interop/stepca):\n"+
			"  CGO_ENABLED=0 go build -o /tmp/keyless ../../cmd/keyless && go run ./cmd/cabench -keyless /tmp/keyless -duration 10s -clients 1,16\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(os.Args[1:]); err != nil {
		if err == flag.ErrHelp {
			os.Exit(0)
		}
		os.Exit(2)
	}
	usage := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "cabench: "+format+"\n", args...)
		os.Exit(2)
	}
	if *keyless == "" {
		usage("-keyless is required: the keyless binary to measure (CGO_ENABLED=0 go build -o /tmp/keyless ./cmd/keyless)")
	}
	if fs.NArg() > 0 {
		usage("unexpected argument %q", fs.Arg(0))
	}
	var clients []int
	for f := range strings.SplitSeq(*clientsFlag, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			usage("-clients %q: %q is not a positive number", *clientsFlag, f)
		}
		clients = append(clients, n)
	}
	var ops []string
	for f := range strings.SplitSeq(*opsFlag, ",") {
		if f = strings.TrimSpace(f); !slices.Contains(cabench.Ops, f) {
			usage("-ops %q: %q is not one of %s", *opsFlag, f, strings.Join(cabench.Ops, ", "))
		}
		ops = append(ops, f)
	}
	if *duration <= 0 && *count <= 0 {
		usage("-duration must be positive (or give -count)")
	}
	if *count < 0 {
		usage("-count must be positive")
	}
	// smallstep's client loads an identity from $STEPPATH (~/.step) when
	// one is there; cabench must see only the CAs it starts.
	ca.DisableIdentity = true

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *keyless, *baseline, *stepCA, *noStep, *keep, serveArgs, clients, ops, *duration, *count); err != nil {
		fmt.Fprintln(os.Stderr, "cabench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, keyless, baseline, stepCA string, noStep bool, keep string, serveArgs []string, clients []int, ops []string, d time.Duration, count int) error {
	dir := keep
	if dir == "" {
		tmp, err := os.MkdirTemp("", "cabench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	} else if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	var servers []*cabench.Server
	defer func() {
		for _, s := range servers {
			if err := s.Stop(); err != nil {
				fmt.Fprintln(os.Stderr, "cabench:", err)
			}
		}
	}()
	k, err := cabench.StartKeyless(ctx, keyless, dir, serveArgs...)
	if err != nil {
		return err
	}
	servers = append(servers, k)
	if baseline != "" {
		b, err := cabench.StartKeyless(ctx, baseline, filepath.Join(dir, "baseline"), serveArgs...)
		if err != nil {
			return err
		}
		b.Name = "keyless-baseline"
		servers = append(servers, b)
	}
	if !noStep {
		if stepCA == "" {
			if stepCA, err = cabench.BuildStepCA(ctx, dir); err != nil {
				return err
			}
		}
		s, err := cabench.StartStepCA(ctx, stepCA, dir)
		if err != nil {
			return err
		}
		servers = append(servers, s)
	}
	fmt.Printf("goos: linux\ngoarch: %s\npkg: github.com/keyless-dev/keyless/interop/stepca/cmd/cabench\n", runtime.GOARCH)
	// Servers alternate within each (clients, op) so a burst of load from
	// elsewhere on the machine falls on both rather than one.
	for _, c := range clients {
		for _, op := range ops {
			for _, s := range servers {
				var r *cabench.Result
				if count > 0 {
					r, err = s.Run(ctx, op, c, count)
				} else {
					r, err = s.Measure(ctx, op, c, d)
				}
				if err != nil {
					return fmt.Errorf("op=%s server=%s clients=%d: %w\n%s output (last lines):\n%s", op, s.Name, c, err, s.Name, tail(s.Output(), 20))
				}
				fmt.Println(r.Line())
			}
		}
	}
	return nil
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
