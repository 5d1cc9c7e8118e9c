//go:build linux

// Command vendbench measures keyless agent and keyless serve against AWS's
// credential helper serve (v1.4.0, IMDSv2), side by side in one run, on
// loopback: each serves credentials it already holds, the agent to a
// caller whose GitLab job token it verifies (GitLab's answer cached, as
// configured by default), keyless serve and the helper to anyone holding
// their IMDSv2 session token.
//
// It starts, in this process, the Roles Anywhere emulator (the reference
// deployment, accepting session names), a throwaway CA and the runner's
// certificate and key, and the fake GitLab with one running job; then the
// three servers as processes: keyless agent --config agent.yaml (a
// container-credentials listener on 127.0.0.1, one rule for the job's
// project), and keyless serve and aws_signing_helper serve with the same
// session flags. Both IMDSv2 servers are measured by the same client
// path, as an SDK uses them: one token (PUT /latest/api/token), then GETs
// of the role's credentials with it. After one vend each (all then answer
// from their cache) and a short idle, it reads the processes' resident
// memory, then measures for each:
//
//   - throughput: -concurrency keep-alive connections, each sending a
//     vend as soon as the previous answer is in, for -duration;
//   - latency at -rate vends a second for -duration, open loop: every
//     request has a scheduled time on a fixed timeline and is measured
//     from it, so a stall counts for every request it delays; requests
//     sent more than -late after their time are counted as late.
//
// Every answer must be 200 with AccessKeyId, SecretAccessKey, Token and
// Expiration. It prints a markdown section (or JSON with -json), with the
// ratios of each keyless server's figures to the helper's. Run it with
// scripts/bench-agent; it is Linux-only (/proc, nanosleep).
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/keyless-dev/keyless/internal/gitlab/gitlabfake"
	"github.com/keyless-dev/keyless/internal/pki/pkitest"
)

// The job whose token the agent verifies.
const (
	jobID       = 1001
	projectID   = 42
	projectPath = "bench/app"
)

// env is what the test helpers (pkitest, emulatortest) need of a test:
// Fatalf stops the run after the cleanups.
type env struct{ cleanups []func() }

func (e *env) Cleanup(f func()) { e.cleanups = append(e.cleanups, f) }

func (e *env) Fatalf(format string, args ...any) {
	e.close()
	fmt.Fprintf(os.Stderr, "vendbench: "+format+"\n", args...)
	os.Exit(1)
}

func (e *env) close() {
	for i := len(e.cleanups) - 1; i >= 0; i-- {
		e.cleanups[i]()
	}
	e.cleanups = nil
}

// Result is the whole run, as -json prints it.
type Result struct {
	Machine     Machine `json:"machine"`
	Duration    string  `json:"duration"`
	Rate        float64 `json:"rate"`
	Concurrency int     `json:"concurrency"`
	Agent       *Side   `json:"keyless_agent"`
	Serve       *Side   `json:"keyless_serve"`
	Helper      *Side   `json:"aws_helper_serve"`
	// CreateSessions is the emulator's count during the measurements
	// (after the warm-up), of all three servers: it cannot tell them
	// apart, and none should need one.
	CreateSessions int64   `json:"create_sessions"`
	Targets        Targets `json:"targets"`
}

// Machine is where it ran.
type Machine struct {
	CPUs      int    `json:"cpus"`
	CPUModel  string `json:"cpu_model"`
	Kernel    string `json:"kernel"`
	GoVersion string `json:"go_version"`
	LoadAvg   string `json:"loadavg_before"`
}

// Side is one server's measurements.
type Side struct {
	Name        string      `json:"name"`
	Version     string      `json:"version"`
	Vend        string      `json:"vend"`
	IdleMemory  Memory      `json:"idle_memory"`
	AfterMemory Memory      `json:"memory_after_load"`
	Throughput  *Throughput `json:"throughput"`
	Latency     *Latency    `json:"latency"`
	// During the measurements (after the warm-up vend).
	GitLabJobCalls int64 `json:"gitlab_job_calls,omitempty"`
	LogBytes       int64 `json:"log_bytes"`

	target  *target
	log     string
	process *exec.Cmd
}

// Targets are issue 12's: at least the helper's throughput, p99 at most
// 1 ms at 5,000 vends a second, idle RSS at most 20 MB.
type Targets struct {
	Throughput bool `json:"throughput_at_least_helpers"`
	P99        bool `json:"p99_at_most_1ms"`
	IdleRSS    bool `json:"idle_rss_at_most_20mb"`
}

func main() {
	var (
		keylessBin  = flag.String("keyless", "", "the keyless binary (built with CGO_ENABLED=0 from this checkout when empty)")
		helperBin   = flag.String("aws-helper", "", "AWS's aws_signing_helper binary (built with cgo from this module's version when empty)")
		duration    = flag.Duration("duration", 10*time.Second, "how long each measurement runs")
		rate        = flag.Float64("rate", 5000, "vends a second in the latency measurement (open loop)")
		concurrency = flag.Int("concurrency", 64, "keep-alive clients in the throughput measurement (closed loop)")
		openConns   = flag.Int("open-conns", 64, "keep-alive connections the latency measurement sends on")
		late        = flag.Duration("late", time.Millisecond, "a request sent later than this after its scheduled time counts as late")
		idle        = flag.Duration("idle", 2*time.Second, "idle time after the warm-up (and after the load) before reading RSS")
		agentArgs   = flag.String("agent-args", "", "more arguments for keyless agent, space-separated (e.g. --log-level=warn)")
		asJSON      = flag.Bool("json", false, "print JSON instead of markdown")
		keep        = flag.Bool("keep", false, "keep the working directory (configuration, logs) and print its path")
	)
	flag.Parse()
	e := &env{}
	defer e.close()

	dir, err := os.MkdirTemp("", "vendbench-")
	if err != nil {
		e.Fatalf("%v", err)
	}
	if *keep {
		fmt.Fprintln(os.Stderr, "vendbench: working directory", dir)
	} else {
		e.Cleanup(func() { os.RemoveAll(dir) })
	}
	res := &Result{Machine: machine(), Duration: duration.String(), Rate: *rate, Concurrency: *concurrency}
	if *keylessBin == "" {
		*keylessBin = build(e, dir, "keyless", "github.com/keyless-dev/keyless/cmd/keyless", false)
	}
	if *helperBin == "" {
		*helperBin = build(e, dir, "aws_signing_helper", "github.com/aws/rolesanywhere-credential-helper", true)
	}

	f := newFixture(e, dir)
	agentAddr := freeAddr(e)
	agentConfig := pkitest.WriteFile(e, dir, "agent.yaml", []byte(f.agentYAML(agentAddr)))
	agent := &Side{Name: "keyless agent", Version: firstLine(e, *keylessBin, "version"),
		Vend: "GET /v1/credentials, Authorization: the job token (verified with GitLab, cached), rule, cached credentials",
		log:  filepath.Join(dir, "agent.log")}
	args := []string{"agent", "--config", agentConfig}
	if *agentArgs != "" {
		args = append(args, strings.Fields(*agentArgs)...)
	}
	agent.process = start(e, agent.log, *keylessBin, args...)
	agent.target = &target{name: agent.Name, addr: agentAddr, pid: agent.process.Process.Pid,
		req: []byte("GET /v1/credentials HTTP/1.1\r\nHost: " + agentAddr + "\r\nAuthorization: " + f.jobToken + "\r\nUser-Agent: vendbench\r\n\r\n")}

	// keyless serve and AWS's helper serve, IMDSv2, for the same role.
	serve := imdsSide(e, f, filepath.Join(dir, "serve.log"), *keylessBin, "keyless serve", firstLine(e, *keylessBin, "version"))
	helper := imdsSide(e, f, filepath.Join(dir, "helper.log"), *helperBin, "AWS helper serve", "aws_signing_helper "+helperVersion(e, *helperBin))
	res.Agent, res.Serve, res.Helper = agent, serve, helper
	sides := []*Side{agent, serve, helper}

	// Warm-up: one vend each, then both answer from their cache.
	for _, s := range sides {
		warm(e, s.target)
	}
	sessions0, jobCalls0 := f.sessions.Load(), int64(f.gitlab.Calls(gitlabfake.EndpointJob))
	time.Sleep(*idle)
	for _, s := range sides {
		s.IdleMemory = memory(s.target.pid)
	}

	pause := func() { time.Sleep(time.Second) }
	for _, s := range sides {
		progress("throughput: %s, %d clients, %s", s.Name, *concurrency, *duration)
		if s.Throughput, err = closedLoop(s.target, *concurrency, *duration); err != nil {
			e.Fatalf("%s: %v", s.Name, err)
		}
		pause()
	}
	// The other order for latency, so none always goes first.
	for _, s := range []*Side{helper, serve, agent} {
		progress("latency: %s, %.0f/s, %s", s.Name, *rate, *duration)
		if s.Latency, err = openLoop(s.target, *rate, *duration, *openConns, *late); err != nil {
			e.Fatalf("%s: %v", s.Name, err)
		}
		pause()
	}
	time.Sleep(*idle)
	for _, s := range sides {
		s.AfterMemory = memory(s.target.pid)
		s.LogBytes = fileSize(s.log)
	}
	// Only the agent calls GitLab.
	agent.GitLabJobCalls = int64(f.gitlab.Calls(gitlabfake.EndpointJob)) - jobCalls0
	res.CreateSessions = f.sessions.Load() - sessions0
	for _, s := range sides {
		if err := s.process.Process.Signal(syscall.Signal(0)); err != nil {
			e.Fatalf("%s exited during the run; its log:\n%s", s.Name, tail(s.log))
		}
	}

	a, h := agent, helper
	res.Targets = Targets{
		Throughput: a.Throughput.PerSecond >= h.Throughput.PerSecond,
		P99:        a.Latency.FromSchedule.P99 <= 1000 && a.Latency.Failed == 0,
		IdleRSS:    a.IdleMemory.RSS <= 20,
	}
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		enc.Encode(res)
	} else {
		printMarkdown(os.Stdout, res, *openConns, *late)
	}
	failed := 0
	for _, s := range sides {
		failed += s.Throughput.Failed + s.Latency.Failed
	}
	if failed > 0 {
		e.close()
		os.Exit(1)
	}
}

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "vendbench: "+format+"\n", args...)
}

func machine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		f := strings.Fields(string(b))
		if len(f) >= 3 {
			m.LoadAvg = strings.Join(f[:3], " ")
		}
	}
	return m
}

// build builds pkg from this module's build list into dir.
func build(e *env, dir, name, pkg string, cgo bool) string {
	out := filepath.Join(dir, name)
	progress("building %s", pkg)
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED="+map[bool]string{true: "1", false: "0"}[cgo])
	if b, err := cmd.CombinedOutput(); err != nil {
		e.Fatalf("go build %s (run from interop/awshelper; AWS's helper needs cgo and a C compiler): %v\n%s", pkg, err, b)
	}
	return out
}

func firstLine(e *env, bin string, args ...string) string {
	b, err := exec.Command(bin, args...).Output()
	if err != nil {
		e.Fatalf("%s %s: %v", bin, strings.Join(args, " "), err)
	}
	l, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	return l
}

// helperVersion is what the helper says, or (built without AWS's
// ldflags, it says nothing) its module's version in this build list.
func helperVersion(e *env, bin string) string {
	if v := firstLine(e, bin, "version"); v != "" {
		return v
	}
	b, err := exec.Command("go", "list", "-m", "-f", "{{.Version}}", "github.com/aws/rolesanywhere-credential-helper").Output()
	if err != nil {
		return "(version unknown)"
	}
	return strings.TrimSpace(string(b))
}

// freeAddr is a loopback address with a port nothing listens on now.
func freeAddr(e *env) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		e.Fatalf("%v", err)
	}
	defer l.Close()
	return l.Addr().String()
}

// start runs bin with its output in logFile, and stops it (SIGTERM, then
// SIGKILL) at the end.
func start(e *env, logFile, bin string, args ...string) *exec.Cmd {
	f, err := os.Create(logFile)
	if err != nil {
		e.Fatalf("%v", err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		e.Fatalf("starting %s: %v", bin, err)
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		f.Close()
		close(done)
	}()
	e.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	return cmd
}

// imdsSide starts an IMDSv2 server, keyless serve or AWS's helper serve
// (both take the subcommand serve and the same flags), for the fixture's
// role on a free loopback port, logging to logFile, and targets it as an
// SDK does: one session token, then GETs of the role's credentials.
func imdsSide(e *env, f *fixture, logFile, bin, name, version string) *Side {
	addr := freeAddr(e)
	_, port, _ := net.SplitHostPort(addr)
	s := &Side{Name: name, Version: version, log: logFile,
		Vend: "GET /latest/meta-data/iam/security-credentials/ROLE, x-aws-ec2-metadata-token (fetched once), cached credentials"}
	s.process = start(e, s.log, bin, "serve", "--certificate", f.certFile, "--private-key", f.keyFile,
		"--trust-anchor-arn", f.anchorARN, "--profile-arn", f.profileARN, "--role-arn", f.roleARN, "--endpoint", f.emulatorURL, "--port", port)
	roleName := f.roleARN[strings.LastIndexByte(f.roleARN, '/')+1:]
	token := imdsv2Token(e, name, addr)
	s.target = &target{name: name, addr: addr, pid: s.process.Process.Pid,
		req: []byte("GET /latest/meta-data/iam/security-credentials/" + roleName + " HTTP/1.1\r\nHost: " + addr +
			"\r\nx-aws-ec2-metadata-token: " + token + "\r\nUser-Agent: vendbench\r\n\r\n")}
	return s
}

// imdsv2Token waits for an IMDSv2 server to listen and gets a session
// token (PUT /latest/api/token), as SDKs do once.
func imdsv2Token(e *env, name, addr string) string {
	deadline := time.Now().Add(30 * time.Second)
	for {
		req, _ := http.NewRequest(http.MethodPut, "http://"+addr+"/latest/api/token", nil)
		req.Header.Set("X-aws-ec2-metadata-token-ttl-seconds", "21600")
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 && len(b) > 0 {
				return string(b)
			}
			err = fmt.Errorf("status %d: %s", resp.StatusCode, b)
		}
		if time.Now().After(deadline) {
			e.Fatalf("%s did not give an IMDSv2 token on %s: %v", name, addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// warm waits for t to answer and has it vend once.
func warm(e *env, t *target) {
	deadline := time.Now().Add(30 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		c, err := dial(t.addr)
		if err != nil {
			last = err
			time.Sleep(50 * time.Millisecond)
			continue
		}
		last = c.vend(t.req)
		c.close()
		if last == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	e.Fatalf("%s gave no credentials: %v", t.name, last)
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// printMarkdown prints the section for docs/benchmarks.md: one row a
// server, each keyless figure followed by its ratio to the helper's.
func printMarkdown(w io.Writer, r *Result, openConns int, late time.Duration) {
	a, sv, h := r.Agent, r.Serve, r.Helper
	sides := []*Side{a, sv, h}
	ms := func(us float64) string { return strconv.FormatFloat(us/1000, 'f', 3, 64) }
	mb := func(m float64) string { return strconv.FormatFloat(m, 'f', 1, 64) + " MB" }
	n := func(f float64) string { return group(int64(f + 0.5)) }
	size := func(b int64) string {
		if b < 1<<20 {
			return group(b) + " bytes"
		}
		return mb(float64(b) / (1 << 20))
	}
	yes := func(ok bool) string {
		if ok {
			return "met"
		}
		return "**missed**"
	}
	// cell is s's figure (by get) as format writes it, with its ratio to
	// the helper's unless s is the helper.
	cell := func(s *Side, get func(*Side) float64, format func(float64) string) string {
		v, hv := get(s), get(h)
		if s == h || hv == 0 {
			return format(v)
		}
		return fmt.Sprintf("%s (%.2f×)", format(v), v/hv)
	}
	table := func(header []string, cells func(*Side) []string) {
		fmt.Fprintf(w, "| | %s |\n|---|%s\n", strings.Join(header, " | "), strings.Repeat("---:|", len(header)))
		for _, s := range sides {
			fmt.Fprintf(w, "| %s | %s |\n", s.Name, strings.Join(cells(s), " | "))
		}
		fmt.Fprintln(w)
	}
	rate := group(int64(r.Rate))
	fmt.Fprintf(w, "### keyless agent, keyless serve and AWS's helper `serve`: vending cached credentials on loopback\n\n")
	fmt.Fprintf(w, "%s (agent and serve); %s (IMDSv2); %d CPUs (%s), shared by the three servers, the load generator and the emulator; %s, load average before the run %s.\n\n",
		a.Version, h.Version, r.Machine.CPUs, r.Machine.CPUModel, r.Machine.GoVersion, r.Machine.LoadAvg)
	fmt.Fprintf(w, "Throughput (closed loop, %d keep-alive clients, %s) and memory:\n\n", r.Concurrency, r.Duration)
	table([]string{"vends/s", "server CPU per vend (µs)", "idle RSS after the warm-up", "RSS after the load / peak"}, func(s *Side) []string {
		return []string{
			cell(s, func(s *Side) float64 { return s.Throughput.PerSecond }, n),
			cell(s, func(s *Side) float64 { return s.Throughput.ServerCPUPerOp }, n),
			cell(s, func(s *Side) float64 { return s.IdleMemory.RSS }, mb),
			mb(s.AfterMemory.RSS) + " / " + mb(s.AfterMemory.Peak),
		}
	})
	fmt.Fprintf(w, "Latency at %s vends/s for %s (open loop, %d connections), in ms:\n\n", rate, r.Duration, openConns)
	table([]string{"p50", "p99", "p99.9", "max", fmt.Sprintf("failed / late (sent > %s after schedule)", late), "server CPU per vend (µs)"}, func(s *Side) []string {
		l := func(get func(Percentiles) float64) string {
			return cell(s, func(s *Side) float64 { return get(s.Latency.FromSchedule) }, ms)
		}
		return []string{
			l(func(p Percentiles) float64 { return p.P50 }),
			l(func(p Percentiles) float64 { return p.P99 }),
			l(func(p Percentiles) float64 { return p.P999 }),
			l(func(p Percentiles) float64 { return p.Max }),
			fmt.Sprintf("%d / %d", s.Latency.Failed+s.Throughput.Failed, s.Latency.Late),
			cell(s, func(s *Side) float64 { return s.Latency.ServerCPUPerOp }, n),
		}
	})
	fmt.Fprintf(w, "In parentheses, the figure over the helper's (above 1: more vends, or more time, CPU or memory). "+
		"Issue 12's targets for the agent: throughput at least the helper's: %s; p99 ≤ 1 ms at %s/s: %s; idle RSS ≤ 20 MB: %s.\n\n",
		yes(r.Targets.Throughput), rate, yes(r.Targets.P99), yes(r.Targets.IdleRSS))
	fmt.Fprintf(w, "A vend is, for the agent, %s; for keyless serve and the helper, the same request: %s. Latency is open loop: each request has its time on a fixed timeline "+
		"and is measured from it to the last byte of its answer, so a stall counts against every request it delays (service time alone, from the write: "+
		"p99 %s / %s / %s ms for agent / keyless serve / helper; the generator's own lag p99 %s / %s / %s ms). During the measurements the agent made %d GitLab job API call(s) "+
		"(a confirmed job token is trusted for 30 s), the three servers together %d CreateSession call(s); the agent wrote %s of audit log (one line a vend), keyless serve %s of log. "+
		"Every answer was checked: 200, with AccessKeyId, SecretAccessKey, Token and Expiration.\n",
		a.Vend, h.Vend, ms(a.Latency.Service.P99), ms(sv.Latency.Service.P99), ms(h.Latency.Service.P99),
		ms(a.Latency.Lag.P99), ms(sv.Latency.Lag.P99), ms(h.Latency.Lag.P99),
		a.GitLabJobCalls, r.CreateSessions, size(a.LogBytes), size(sv.LogBytes))
	for _, s := range sides {
		for _, err := range append(s.Throughput.Errors, s.Latency.Errors...) {
			fmt.Fprintf(w, "\n%s error: %s", s.Name, err)
		}
	}
}

// group writes n with thousands separators.
func group(n int64) string {
	s := strconv.FormatInt(n, 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
