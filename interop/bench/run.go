package bench

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Binaries are the programs scripts/bench builds once, by file name in
// Runner.Bin.
const (
	BinKeyless = "keyless"            // CGO_ENABLED=0 go build ./cmd/keyless
	BinHelper  = "aws_signing_helper" // AWS's helper v1.4.0, with cgo, as AWS ships it
	BinNetHTTP = "nethttp"            // static; links net/http and crypto/x509 (cmd/nethttp)
	BinHello   = "hello"              // Go hello world (cmd/hello)
)

// Runner runs sections' measurements into Out.
type Runner struct {
	Root  string    // the repository
	Out   string    // the results directory (docs/benchmarks)
	Bin   string    // the built binaries
	Quick bool      // reduced durations: checks the pipeline, measures little
	Large bool      // KEYLESS_BENCH_LARGE=1 for the Go benchmarks
	Log   io.Writer // progress

	m     *Manifest
	stage string
}

// Run measures section id and, if it succeeds, replaces its stored
// results (manifest and raw files) with the new ones. On failure the
// stored results stay as they were.
func (r *Runner) Run(ctx context.Context, id string) error {
	if SectionByID(id) == nil {
		return fmt.Errorf("no section %q", id)
	}
	stage, err := os.MkdirTemp(r.Out, ".new-"+id+"-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(stage)
	r.stage = stage
	commit, dirty := r.commit()
	r.m = &Manifest{Section: id, Date: time.Now().UTC().Format(time.RFC3339), Machine: machine(), Commit: commit, Dirty: dirty, Large: r.Large, Quick: r.Quick}
	start := time.Now()
	r.logf("== %s (load average %s)", id, r.m.Machine.LoadAvg)
	var run func(context.Context) error
	switch id {
	case "cp":
		run = r.runCP
	case "ca":
		run = r.runCA
	case "agent":
		run = func(ctx context.Context) error {
			if err := r.runVendbench(ctx); err != nil {
				return err
			}
			return r.runGoBenches(ctx, id)
		}
	case "dev":
		run = r.runDev
	case "ca-ops":
		run = r.runCAOps
	default:
		run = func(ctx context.Context) error { return r.runGoBenches(ctx, id) }
	}
	if err := run(ctx); err != nil {
		return err
	}
	r.m.Elapsed = float64(time.Since(start).Round(100*time.Millisecond)) / float64(time.Second)
	// Replace: the old section's files go, the new ones come in.
	old, _ := filepath.Glob(filepath.Join(r.Out, id+".*"))
	for _, f := range old {
		if err := os.Remove(f); err != nil {
			return err
		}
	}
	for _, st := range r.m.Steps {
		if st.Raw == "" {
			continue
		}
		if err := os.Rename(filepath.Join(stage, st.Raw), filepath.Join(r.Out, st.Raw)); err != nil {
			return err
		}
	}
	r.logf("== %s done in %.0f s", id, r.m.Elapsed)
	return WriteManifest(r.Out, r.m)
}

func (r *Runner) logf(format string, args ...any) { fmt.Fprintf(r.Log, "bench: "+format+"\n", args...) }

func (r *Runner) warnf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	r.m.Warnings = append(r.m.Warnings, msg)
	r.logf("warning: %s", msg)
}

// bin is the path of a built binary.
func (r *Runner) bin(name string) string { return filepath.Join(r.Bin, name) }

// show writes a command for the manifest: the binaries' directory as
// $bin, so it reads as a reader would type it.
func (r *Runner) show(args ...string) string {
	var out []string
	for _, a := range args {
		a = strings.ReplaceAll(a, r.Bin, "$bin")
		if a == "" || strings.ContainsAny(a, " \t\"'$|&;<>*?()") && !strings.HasPrefix(a, "$") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		} else if strings.ContainsAny(a, " \t") {
			a = `"` + a + `"`
		}
		out = append(out, a)
	}
	return strings.Join(out, " ")
}

// raw names a step's raw file.
func (r *Runner) raw(step, ext string) string { return r.m.Section + "." + step + "." + ext }

// addStep records a step whose raw file is in the stage.
func (r *Runner) addStep(name, command, dir, raw, kind string) {
	r.m.Steps = append(r.m.Steps, Step{Name: name, Command: command, Dir: dir, Raw: raw, Kind: kind})
}

// exec runs a command in dir (relative to Root) with extra environment,
// its standard output to stdout (nil: the log), standard error to the log.
func (r *Runner) exec(ctx context.Context, dir string, env []string, stdout io.Writer, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = filepath.Join(r.Root, dir)
	cmd.Env = environ(env)
	cmd.Stdout, cmd.Stderr = stdout, r.Log
	if stdout == nil {
		cmd.Stdout = r.Log
	}
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s (in %s): %w", r.show(append([]string{name}, args...)...), cmd.Dir, err)
	}
	return nil
}

// timeV runs a command n times under /usr/bin/time -v (its report in
// tmp), and appends each report to tv after a "command: NAME" line.
func (r *Runner) timeV(ctx context.Context, tv *bytes.Buffer, tmp string, env []string, n int, name string, args ...string) error {
	out := filepath.Join(tmp, "time.out")
	for range n {
		fmt.Fprintf(tv, "command: %s\n", name)
		if err := r.exec(ctx, "", env, io.Discard, "/usr/bin/time", append([]string{"-v", "-o", out}, args...)...); err != nil {
			return err
		}
		b, err := os.ReadFile(out)
		if err != nil {
			return err
		}
		tv.Write(b)
	}
	return nil
}

// environ is this process's environment with env's changes: KEY=VALUE
// sets KEY, -KEY removes it.
func environ(env []string) []string {
	drop := map[string]bool{}
	var set []string
	for _, e := range env {
		if k, ok := strings.CutPrefix(e, "-"); ok {
			drop[k] = true
			continue
		}
		k, _, _ := strings.Cut(e, "=")
		drop[k] = true
		set = append(set, e)
	}
	var out []string
	for _, e := range os.Environ() {
		if k, _, _ := strings.Cut(e, "="); !drop[k] {
			out = append(out, e)
		}
	}
	return append(out, set...)
}

func (r *Runner) writeStage(name string, b []byte) error {
	return os.WriteFile(filepath.Join(r.stage, name), b, 0o644)
}

// header is the configuration lines a Go benchmark raw file starts with.
func (r *Runner) header(command string) string {
	m := r.m
	return fmt.Sprintf("keyless-commit: %s\ndate: %s\nmachine: %s\ncommand: %s\n", m.Commit, m.Date, m.Machine, command)
}

// runGoBenches runs the section's rows of GoBenches.
func (r *Runner) runGoBenches(ctx context.Context, id string) error {
	for _, spec := range GoBenches {
		if spec.Section != id {
			continue
		}
		if err := r.runGoBench(ctx, spec); err != nil {
			return err
		}
	}
	return nil
}

func (r *Runner) runGoBench(ctx context.Context, spec GoBenchSpec) error {
	pkgs, err := findBenchmarks(r.Root, spec.Funcs, goBenchPackages[spec.Section])
	if err != nil {
		return err
	}
	benchtime, count := spec.Benchtime, spec.Count
	if r.Quick {
		benchtime, count = quickBenchtime(benchtime), 1
	}
	var out bytes.Buffer
	var shown []string
	var missing []string
	for _, f := range spec.Funcs {
		if !slices.ContainsFunc(pkgs, func(p benchPackage) bool { return slices.Contains(p.funcs, f) }) {
			missing = append(missing, f)
		}
	}
	if len(missing) > 0 {
		r.warnf("no benchmark %s in the repository's tests: not measured", strings.Join(prefixed(missing), ", "))
	}
	if len(pkgs) == 0 {
		return nil // nothing ran: no step, no raw file
	}
	for _, p := range pkgs {
		args := []string{"test", "-run", "^$", "-bench", "^Benchmark(" + strings.Join(p.funcs, "|") + ")$", "-benchmem", "-benchtime", benchtime, "-count", strconv.Itoa(count), p.pkg}
		var env []string
		show := "go " + r.show(args...)
		if r.Large {
			env = append(env, "KEYLESS_BENCH_LARGE=1")
			show = "KEYLESS_BENCH_LARGE=1 " + show
		}
		if p.dir != "" {
			show = "(cd " + p.dir + " && " + show + ")"
		}
		shown = append(shown, show)
		r.logf("%s", show)
		out.WriteString(r.header(show))
		start := out.Len()
		if err := r.exec(ctx, p.dir, env, io.MultiWriter(&out, r.Log), "go", args...); err != nil {
			return err
		}
		// A benchmark that fails (b.Error in RunParallel) can leave go
		// test's status 0; its figures are not measurements.
		if i := bytes.Index(out.Bytes()[start:], []byte("--- FAIL")); i >= 0 {
			line, _, _ := bytes.Cut(out.Bytes()[start+i:], []byte("\n"))
			return fmt.Errorf("%s: a benchmark failed: %s", show, line)
		}
	}
	raw := r.raw(spec.Name, "txt")
	if err := r.writeStage(raw, out.Bytes()); err != nil {
		return err
	}
	r.addStep(spec.Name, strings.Join(shown, "\n"), "", raw, KindGoBench)
	return nil
}

func prefixed(funcs []string) []string {
	var out []string
	for _, f := range funcs {
		out = append(out, "Benchmark"+f)
	}
	return out
}

// quickBenchtime shortens a benchtime for -quick.
func quickBenchtime(bt string) string {
	if strings.HasSuffix(bt, "x") {
		return bt
	}
	return "200ms"
}

// benchPackage is a package holding some of a spec's benchmarks.
type benchPackage struct {
	dir   string // its module's directory, relative to the root ("" for the main module)
	pkg   string // ./path/ relative to dir
	funcs []string
}

// findBenchmarks finds the packages whose tests define the benchmark
// functions (only under prefer, when it is not ""), searching every
// module of the repository.
func findBenchmarks(root string, funcs []string, prefer string) ([]benchPackage, error) {
	res := map[string]*regexp.Regexp{}
	for _, f := range funcs {
		res[f] = regexp.MustCompile(`(?m)^func Benchmark` + regexp.QuoteMeta(f) + `\(b \*testing\.B\)`)
	}
	var out []benchPackage
	byDir := map[string]int{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if n := d.Name(); path != root && (strings.HasPrefix(n, ".") || n == "testdata" || n == "vendor" || n == "node_modules") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		rel, _ := filepath.Rel(root, filepath.Dir(path))
		rel = filepath.ToSlash(rel)
		if prefer != "" && rel != prefer {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, f := range funcs {
			if !res[f].Match(b) {
				continue
			}
			i, ok := byDir[rel]
			if !ok {
				mod := moduleDir(root, rel)
				pkg := "./" + strings.TrimPrefix(strings.TrimPrefix(rel, mod), "/")
				if !strings.HasSuffix(pkg, "/") {
					pkg += "/"
				}
				out = append(out, benchPackage{dir: mod, pkg: pkg})
				i = len(out) - 1
				byDir[rel] = i
			}
			if !slices.Contains(out[i].funcs, f) {
				out[i].funcs = append(out[i].funcs, f)
			}
		}
		return nil
	})
	return out, err
}

// moduleDir is the directory (relative to root, "" for root) of the
// module holding the package directory rel.
func moduleDir(root, rel string) string {
	for d := rel; d != "." && d != ""; d = filepath.ToSlash(filepath.Dir(d)) {
		if _, err := os.Stat(filepath.Join(root, d, "go.mod")); err == nil {
			return d
		}
	}
	return ""
}

// ---- credential-process (cp)

// devStack is a running `keyless dev`: the endpoint for credential-process.
type devStack struct {
	cmd   *exec.Cmd
	dir   string
	flags []string // credential-process's flags, from its aws-config
	done  chan struct{}
}

func (r *Runner) startDev(ctx context.Context, dir string) (*devStack, error) {
	logf, err := os.Create(filepath.Join(dir, "dev.log"))
	if err != nil {
		return nil, err
	}
	stack := filepath.Join(dir, "dev")
	cmd := exec.CommandContext(ctx, r.bin(BinKeyless), "dev", "--dir", stack)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	d := &devStack{cmd: cmd, dir: stack, done: make(chan struct{})}
	go func() { cmd.Wait(); logf.Close(); close(d.done) }()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		b, _ := os.ReadFile(filepath.Join(dir, "dev.log"))
		if bytes.Contains(b, []byte("keyless dev: serving")) {
			break
		}
		select {
		case <-d.done:
			return nil, fmt.Errorf("keyless dev exited before serving:\n%s", b)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			d.stop()
			return nil, fmt.Errorf("keyless dev did not serve within 2 minutes:\n%s", b)
		}
	}
	cfg, err := os.ReadFile(filepath.Join(stack, "aws-config"))
	if err != nil {
		d.stop()
		return nil, err
	}
	re := regexp.MustCompile(`(?m)^credential_process = \S+ credential-process (.*)$`)
	m := re.FindSubmatch(cfg)
	if m == nil {
		d.stop()
		return nil, fmt.Errorf("%s has no credential_process line", filepath.Join(stack, "aws-config"))
	}
	d.flags = strings.Fields(string(m[1]))
	return d, nil
}

func (d *devStack) stop() {
	d.cmd.Process.Signal(os.Interrupt)
	select {
	case <-d.done:
	case <-time.After(10 * time.Second):
		d.cmd.Process.Kill()
		<-d.done
	}
}

// systemBundle is Debian's bundle of trusted CA certificates, what
// AWS_CA_BUNDLE names in the second credential-process run.
const systemBundle = "/etc/ssl/certs/ca-certificates.crt"

// cpCommand is one command of the credential-process hyperfine run.
type cpCommand struct {
	name string
	args []string
}

func (r *Runner) runCP(ctx context.Context) error {
	tmp, err := os.MkdirTemp("", "bench-cp-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	dev, err := r.startDev(ctx, tmp)
	if err != nil {
		return err
	}
	defer dev.stop()
	cache := filepath.Join(tmp, "cache")
	// The main run has no AWS_CA_BUNDLE (the reference setup sets none);
	// a second hyperfine run sets it to the system's bundle, which both
	// keyless and AWS's helper then read.
	env := []string{"XDG_CACHE_HOME=" + cache, "-AWS_CA_BUNDLE"}
	kl, helper := r.bin(BinKeyless), r.bin(BinHelper)
	cp := append([]string{"credential-process"}, dev.flags...)
	cmds := []cpCommand{
		{"keyless-hit", append([]string{kl}, cp...)},
		{"keyless-no-cache", append(append([]string{kl}, cp...), "--no-cache")},
		{"aws-helper", append([]string{helper}, cp...)},
		{"nethttp-baseline", []string{r.bin(BinNetHTTP)}},
		{"hello", []string{r.bin(BinHello)}},
		{"keyless-version", []string{kl, "version"}},
		{"true", []string{"true"}},
	}
	// Each command once: it works, and the cache is warm.
	for _, c := range cmds {
		if err := r.exec(ctx, "", env, io.Discard, c.args[0], c.args[1:]...); err != nil {
			return fmt.Errorf("%s: %w", c.name, err)
		}
	}
	// $A in the commands shown: credential-process and its flags.
	cpLine := strings.Join(cp, " ")
	showA := func(s string) string { return strings.ReplaceAll(strings.ReplaceAll(s, cpLine, "$A"), tmp, "$tmp") }
	r.m.Steps = append(r.m.Steps, Step{Name: "endpoint", Command: r.show(kl, "dev", "--dir", "$tmp/dev") + " &   # the endpoint, then, from its aws-config:\nA='" + strings.ReplaceAll(r.show(cp...), tmp, "$tmp") + "'", Kind: KindNote})
	runs, warmup := 300, 20
	if r.Quick {
		runs, warmup = 30, 3
	}
	raw := r.raw("hyperfine", "json")
	args := []string{"-N", "--warmup", strconv.Itoa(warmup), "-r", strconv.Itoa(runs), "--export-json", filepath.Join(r.stage, raw)}
	for _, c := range cmds {
		args = append(args, "-n", c.name, strings.Join(c.args, " "))
	}
	shown := "XDG_CACHE_HOME=$tmp/cache " + strings.ReplaceAll(r.show(append([]string{"hyperfine"}, args...)...), filepath.Join(r.stage, raw), raw)
	shown = showA(shown)
	r.logf("%s", shown)
	if err := r.exec(ctx, "", env, nil, "hyperfine", args...); err != nil {
		return err
	}
	r.addStep("hyperfine", shown, "", raw, KindHyperfine)

	if _, err := os.Stat(systemBundle); err == nil {
		benv := []string{"XDG_CACHE_HOME=" + cache, "AWS_CA_BUNDLE=" + systemBundle}
		var bcmds []cpCommand
		for _, c := range cmds {
			if c.name == "keyless-hit" || c.name == "keyless-no-cache" || c.name == "aws-helper" || c.name == "nethttp-baseline" {
				bcmds = append(bcmds, c)
			}
		}
		for _, c := range bcmds {
			if err := r.exec(ctx, "", benv, io.Discard, c.args[0], c.args[1:]...); err != nil {
				return fmt.Errorf("%s with AWS_CA_BUNDLE: %w", c.name, err)
			}
		}
		raw := r.raw("hyperfine-bundle", "json")
		args := []string{"-N", "--warmup", strconv.Itoa(warmup), "-r", strconv.Itoa(runs), "--export-json", filepath.Join(r.stage, raw)}
		for _, c := range bcmds {
			args = append(args, "-n", c.name, strings.Join(c.args, " "))
		}
		shown := "XDG_CACHE_HOME=$tmp/cache AWS_CA_BUNDLE=" + systemBundle + " " + strings.ReplaceAll(r.show(append([]string{"hyperfine"}, args...)...), filepath.Join(r.stage, raw), raw)
		shown = showA(shown)
		r.logf("%s", shown)
		if err := r.exec(ctx, "", benv, nil, "hyperfine", args...); err != nil {
			return err
		}
		r.addStep("hyperfine-bundle", shown, "", raw, KindHyperfine)
	}

	// Memory and page faults, a few runs each.
	n := 5
	if r.Quick {
		n = 2
	}
	var tv bytes.Buffer
	for _, c := range cmds {
		if err := r.timeV(ctx, &tv, tmp, env, n, c.name, c.args...); err != nil {
			return err
		}
	}
	raw = r.raw("time", "txt")
	if err := r.writeStage(raw, tv.Bytes()); err != nil {
		return err
	}
	r.addStep("time", fmt.Sprintf("for each command above, %d runs: XDG_CACHE_HOME=$tmp/cache /usr/bin/time -v COMMAND", n), "", raw, KindTimeV)

	// Package initialisation of a cache hit.
	n = 10
	if r.Quick {
		n = 3
	}
	var it bytes.Buffer
	for i := range n {
		fmt.Fprintf(&it, "run: %d\n", i+1)
		var stderr bytes.Buffer
		cmd := exec.CommandContext(ctx, kl, cp...)
		cmd.Env = environ(append(env, "GODEBUG=inittrace=1"))
		cmd.Stdout, cmd.Stderr = io.Discard, &stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("GODEBUG=inittrace=1 keyless credential-process: %w\n%s", err, stderr.Bytes())
		}
		it.Write(stderr.Bytes())
	}
	raw = r.raw("inittrace", "txt")
	if err := r.writeStage(raw, it.Bytes()); err != nil {
		return err
	}
	r.addStep("inittrace", fmt.Sprintf("%d runs: XDG_CACHE_HOME=$tmp/cache GODEBUG=inittrace=1 %s", n, showA(r.show(append([]string{kl}, cp...)...))), "", raw, KindInitTrace)

	// Binary sizes.
	var sz bytes.Buffer
	sz.WriteString(r.header("stat -c %s $bin/*"))
	for _, b := range []string{BinKeyless, BinHelper, BinNetHTTP, BinHello} {
		fi, err := os.Stat(r.bin(b))
		if err != nil {
			return err
		}
		fmt.Fprintf(&sz, "BenchmarkBinarySize/binary=%s 1 %d bytes\n", b, fi.Size())
	}
	raw = r.raw("sizes", "txt")
	if err := r.writeStage(raw, sz.Bytes()); err != nil {
		return err
	}
	r.addStep("sizes", "stat -c %s $bin/keyless $bin/aws_signing_helper $bin/nethttp $bin/hello", "", raw, KindGoBench)
	return nil
}

// ---- CA against step-ca (ca)

func (r *Runner) runCA(ctx context.Context) error {
	if _, err := os.Stat(filepath.Join(r.Root, "interop/stepca/cmd/cabench")); err != nil {
		r.warnf("interop/stepca/cmd/cabench is not in this tree: the CA process against step-ca is not measured")
		return r.runGoBenches(ctx, "ca")
	}
	duration := "10s"
	if r.Quick {
		duration = "2s"
	}
	args := []string{"run", "./cmd/cabench", "-keyless", r.bin(BinKeyless), "-duration", duration, "-clients", "1,16"}
	show := "(cd interop/stepca && go " + r.show(args...) + ")"
	r.logf("%s", show)
	var out bytes.Buffer
	out.WriteString(r.header(show))
	if err := r.exec(ctx, "interop/stepca", nil, io.MultiWriter(&out, r.Log), "go", args...); err != nil {
		return err
	}
	raw := r.raw("cabench", "txt")
	if err := r.writeStage(raw, out.Bytes()); err != nil {
		return err
	}
	r.addStep("cabench", show, "", raw, KindGoBench)
	return r.runGoBenches(ctx, "ca")
}

// ---- agent (vendbench)

func (r *Runner) runVendbench(ctx context.Context) error {
	duration := "10s"
	if r.Quick {
		duration = "2s"
	}
	raw := r.raw("vendbench", "json")
	args := []string{"run", "./cmd/vendbench", "-keyless", r.bin(BinKeyless), "-aws-helper", r.bin(BinHelper), "-duration", duration, "-json"}
	show := "(cd interop/awshelper && go " + r.show(args...) + ")"
	r.logf("%s", show)
	var out bytes.Buffer
	if err := r.exec(ctx, "interop/awshelper", nil, &out, "go", args...); err != nil {
		return err
	}
	if err := r.writeStage(raw, out.Bytes()); err != nil {
		return err
	}
	r.addStep("vendbench", show, "", raw, KindVendbench)
	return nil
}

// ---- keyless dev --once (dev)

func (r *Runner) runDev(ctx context.Context) error {
	tmp, err := os.MkdirTemp("", "bench-dev-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	runs := 10
	if r.Quick {
		runs = 3
	}
	kl := r.bin(BinKeyless)
	raw := r.raw("hyperfine", "json")
	args := []string{"-N", "--warmup", "1", "-r", strconv.Itoa(runs), "--export-json", filepath.Join(r.stage, raw), "-n", "dev-once", kl + " dev --once"}
	show := strings.ReplaceAll(r.show(append([]string{"hyperfine"}, args...)...), filepath.Join(r.stage, raw), raw)
	r.logf("%s", show)
	if err := r.exec(ctx, "", nil, nil, "hyperfine", args...); err != nil {
		return err
	}
	r.addStep("hyperfine", show, "", raw, KindHyperfine)
	var tv bytes.Buffer
	n := 3
	if err := r.timeV(ctx, &tv, tmp, nil, n, "dev-once", kl, "dev", "--once"); err != nil {
		return err
	}
	raw = r.raw("time", "txt")
	if err := r.writeStage(raw, tv.Bytes()); err != nil {
		return err
	}
	r.addStep("time", fmt.Sprintf("%d runs: /usr/bin/time -v $bin/keyless dev --once", n), "", raw, KindTimeV)
	return nil
}

// ---- CA idle RSS and keyless ca list (ca-ops)

func (r *Runner) runCAOps(ctx context.Context) error {
	tmp, err := os.MkdirTemp("", "bench-ca-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	kl := r.bin(BinKeyless)
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	pw, dir := filepath.Join(tmp, "pw"), filepath.Join(tmp, "ca")
	if err := r.exec(ctx, "", nil, io.Discard, kl, "ca", "init", "--name", "Bench CA", "--dns", "127.0.0.1", "--address", addr,
		"--provisioner", "admin", "--password-file", pw, "--generate-password", "--dir", dir); err != nil {
		return err
	}
	logf, err := os.Create(filepath.Join(tmp, "serve.log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	serve := exec.CommandContext(ctx, kl, "ca", "serve", "--dir", dir, "--password-file", pw)
	serve.Stdout, serve.Stderr = logf, logf
	if err := serve.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() { serve.Wait(); close(done) }()
	defer func() {
		serve.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			serve.Process.Kill()
			<-done
		}
	}()
	if err := waitHealth(ctx, addr, filepath.Join(dir, "certs", "root_ca.crt"), done); err != nil {
		b, _ := os.ReadFile(filepath.Join(tmp, "serve.log"))
		return fmt.Errorf("keyless ca serve: %w\n%s", err, b)
	}
	time.Sleep(3 * time.Second)
	rss, err := vmRSS(serve.Process.Pid)
	if err != nil {
		return err
	}
	var idle bytes.Buffer
	show := "keyless ca init ... && keyless ca serve & until /health answers; sleep 3; grep VmRSS /proc/$pid/status"
	idle.WriteString(r.header(show))
	fmt.Fprintf(&idle, "BenchmarkCAIdleRSS 1 %.1f rss-MB\n", rss)
	raw := r.raw("idle", "txt")
	if err := r.writeStage(raw, idle.Bytes()); err != nil {
		return err
	}
	r.addStep("idle", r.show(kl, "ca", "init", "--name", "Bench CA", "--dns", "127.0.0.1", "--address", "127.0.0.1:PORT", "--provisioner", "admin",
		"--password-file", "$tmp/pw", "--generate-password", "--dir", "$tmp/ca")+"\n"+r.show(kl, "ca", "serve", "--dir", "$tmp/ca", "--password-file", "$tmp/pw")+
		" &   # then, once https://127.0.0.1:PORT/health answers: sleep 3; grep VmRSS /proc/$!/status", "", raw, KindGoBench)

	runs := 10
	if r.Quick {
		runs = 3
	}
	raw = r.raw("list", "json")
	list := strings.Join([]string{kl, "ca", "list", "--dir", dir, "--password-file", pw}, " ")
	args := []string{"-N", "--warmup", "2", "-r", strconv.Itoa(runs), "--export-json", filepath.Join(r.stage, raw), "-n", "ca-list", list}
	if err := r.exec(ctx, "", nil, nil, "hyperfine", args...); err != nil {
		return err
	}
	shown := strings.ReplaceAll(strings.ReplaceAll(r.show(append([]string{"hyperfine"}, args...)...), filepath.Join(r.stage, raw), raw), tmp, "$tmp")
	r.addStep("list", shown, "", raw, KindHyperfine)
	return nil
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func waitHealth(ctx context.Context, addr, rootFile string, done <-chan struct{}) error {
	pem, err := os.ReadFile(rootFile)
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	defer client.CloseIdleConnections()
	deadline := time.Now().Add(time.Minute)
	for {
		resp, err := client.Get("https://" + addr + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		select {
		case <-done:
			return fmt.Errorf("exited before /health answered")
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("https://%s/health: %v", addr, err)
		}
	}
}

// vmRSS is a process's resident memory in MiB.
func vmRSS(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb / 1024, err
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// ---- where

func machine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), Go: runtime.Version()}
	if out, err := exec.Command("go", "env", "GOVERSION").Output(); err == nil {
		m.Go = strings.TrimSpace(string(out))
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int
		if _, err := fmt.Sscanf(string(b), "MemTotal: %d kB", &kb); err == nil {
			m.MemoryMB = kb / 1024
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(b)); len(f) >= 3 {
			m.LoadAvg = strings.Join(f[:3], " ")
		}
	}
	return m
}

// commit is the repository's HEAD and whether tracked files differ from it.
func (r *Runner) commit() (string, bool) {
	out, err := exec.Command("git", "-C", r.Root, "rev-parse", "--short=12", "HEAD").Output()
	if err != nil {
		return "unknown", false
	}
	dirty := exec.Command("git", "-C", r.Root, "diff", "--quiet", "HEAD", "--", ".", ":!docs/benchmarks.md", ":!docs/benchmarks").Run() != nil
	return strings.TrimSpace(string(out)), dirty
}
