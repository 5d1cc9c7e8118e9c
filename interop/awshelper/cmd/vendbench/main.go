//go:build linux

// Command vendbench measures keyless agent against AWS's credential helper
// serve (v1.4.0, IMDSv2), side by side in one run, on loopback: each
// serves credentials it already holds, the agent to a caller whose GitLab
// job token it verifies (GitLab's answer cached, as configured by
// default), the helper to anyone holding its IMDSv2 session token.
//
// It starts, in this process, the Roles Anywhere emulator (the reference
// deployment, accepting session names), a throwaway CA and the runner's
// certificate and key, and the fake GitLab with one running job; then the
// two servers as processes: keyless agent --config agent.yaml (a
// container-credentials listener on 127.0.0.1, one rule for the job's
// project) and aws_signing_helper serve. After one vend each (both then
// answer from their cache) and a short idle, it reads both processes'
// resident memory, then measures for each:
//
//   - throughput: -concurrency keep-alive connections, each sending a
//     vend as soon as the previous answer is in, for -duration;
//   - latency at -rate vends a second for -duration, open loop: every
//     request has a scheduled time on a fixed timeline and is measured
//     from it, so a stall counts for every request it delays; requests
//     sent more than -late after their time are counted as late.
//
// Every answer must be 200 with AccessKeyId, SecretAccessKey, Token and
// Expiration. It prints a markdown section (or JSON with -json). Run it
// with scripts/bench-agent; it is Linux-only (/proc, nanosleep).
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
	Helper      *Side   `json:"aws_helper_serve"`
	Targets     Targets `json:"targets"`
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
	CreateSessions int64 `json:"create_sessions"`
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

	// AWS's helper serve, IMDSv2, for the same role.
	helperAddr := freeAddr(e)
	_, port, _ := net.SplitHostPort(helperAddr)
	helper := &Side{Name: "AWS helper serve", Version: "aws_signing_helper " + helperVersion(e, *helperBin),
		Vend: "GET /latest/meta-data/iam/security-credentials/ROLE, x-aws-ec2-metadata-token (fetched once), cached credentials",
		log:  filepath.Join(dir, "helper.log")}
	helper.process = start(e, helper.log, *helperBin, "serve", "--certificate", f.certFile, "--private-key", f.keyFile,
		"--trust-anchor-arn", f.anchorARN, "--profile-arn", f.profileARN, "--role-arn", f.roleARN, "--endpoint", f.emulatorURL, "--port", port)
	roleName := f.roleARN[strings.LastIndexByte(f.roleARN, '/')+1:]
	imdsToken := imdsv2Token(e, helperAddr)
	helper.target = &target{name: helper.Name, addr: helperAddr, pid: helper.process.Process.Pid,
		req: []byte("GET /latest/meta-data/iam/security-credentials/" + roleName + " HTTP/1.1\r\nHost: " + helperAddr +
			"\r\nx-aws-ec2-metadata-token: " + imdsToken + "\r\nUser-Agent: vendbench\r\n\r\n")}
	res.Agent, res.Helper = agent, helper
	sides := []*Side{agent, helper}

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
	// The other order for latency, so neither always goes first.
	for _, s := range []*Side{helper, agent} {
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
	// Only the agent calls GitLab; the emulator cannot tell the two apart,
	// and neither should need a CreateSession during the run.
	agent.GitLabJobCalls = int64(f.gitlab.Calls(gitlabfake.EndpointJob)) - jobCalls0
	agent.CreateSessions = f.sessions.Load() - sessions0
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

// imdsv2Token waits for the helper to listen and gets a session token
// (PUT /latest/api/token), as SDKs do once.
func imdsv2Token(e *env, addr string) string {
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
			e.Fatalf("AWS's helper serve did not give an IMDSv2 token on %s: %v", addr, err)
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

// printMarkdown prints the section for docs/benchmarks.md.
func printMarkdown(w io.Writer, r *Result, openConns int, late time.Duration) {
	a, h := r.Agent, r.Helper
	ms := func(us float64) string { return strconv.FormatFloat(us/1000, 'f', 3, 64) }
	mb := func(m float64) string { return strconv.FormatFloat(m, 'f', 1, 64) + " MB" }
	n := func(f float64) string { return group(int64(f + 0.5)) }
	yes := func(ok bool) string {
		if ok {
			return "met"
		}
		return "**missed**"
	}
	row := func(name, av, hv string) { fmt.Fprintf(w, "| %s | %s | %s |\n", name, av, hv) }
	fmt.Fprintf(w, "### keyless agent and AWS's helper `serve`: vending cached credentials on loopback\n\n")
	fmt.Fprintf(w, "%s; %s (IMDSv2); %d CPUs (%s), shared by both servers, the load generator and the emulator; %s, load average before the run %s.\n\n",
		a.Version, h.Version, r.Machine.CPUs, r.Machine.CPUModel, r.Machine.GoVersion, r.Machine.LoadAvg)
	row("", "keyless agent", "AWS helper serve")
	fmt.Fprintln(w, "|---|---:|---:|")
	row(fmt.Sprintf("throughput, %d keep-alive clients, %s (vends/s)", r.Concurrency, r.Duration), n(a.Throughput.PerSecond), n(h.Throughput.PerSecond))
	row("server CPU per vend (µs), throughput run", n(a.Throughput.ServerCPUPerOp), n(h.Throughput.ServerCPUPerOp))
	row(fmt.Sprintf("latency at %s vends/s for %s, p50 (ms)", group(int64(r.Rate)), r.Duration), ms(a.Latency.FromSchedule.P50), ms(h.Latency.FromSchedule.P50))
	row("p99 (ms)", ms(a.Latency.FromSchedule.P99), ms(h.Latency.FromSchedule.P99))
	row("p99.9 (ms)", ms(a.Latency.FromSchedule.P999), ms(h.Latency.FromSchedule.P999))
	row("max (ms)", ms(a.Latency.FromSchedule.Max), ms(h.Latency.FromSchedule.Max))
	row(fmt.Sprintf("failed / late (sent > %s after schedule)", late), fmt.Sprintf("%d / %d", a.Latency.Failed+a.Throughput.Failed, a.Latency.Late),
		fmt.Sprintf("%d / %d", h.Latency.Failed+h.Throughput.Failed, h.Latency.Late))
	row(fmt.Sprintf("server CPU per vend (µs), at %s/s", group(int64(r.Rate))), n(a.Latency.ServerCPUPerOp), n(h.Latency.ServerCPUPerOp))
	row("idle RSS after the warm-up", mb(a.IdleMemory.RSS), mb(h.IdleMemory.RSS))
	row("RSS after the load / peak", mb(a.AfterMemory.RSS)+" / "+mb(a.AfterMemory.Peak), mb(h.AfterMemory.RSS)+" / "+mb(h.AfterMemory.Peak))
	fmt.Fprintln(w)
	fmt.Fprintf(w, "Targets (issue 12): throughput at least the helper's: %s; p99 ≤ 1 ms at %s/s: %s; idle RSS ≤ 20 MB: %s.\n\n",
		yes(r.Targets.Throughput), group(int64(r.Rate)), yes(r.Targets.P99), yes(r.Targets.IdleRSS))
	fmt.Fprintf(w, "A vend is, for the agent, %s; for the helper, %s. Latency is open loop on %d connections: each request has its time on a fixed timeline "+
		"and is measured from it to the last byte of its answer, so a stall counts against every request it delays (service time alone, from the write: "+
		"agent p99 %s ms, helper p99 %s ms; the generator's own lag p99 %s / %s ms). During the measurements the agent made %d GitLab job API call(s) "+
		"(a confirmed job token is trusted for 30 s) and %d CreateSession call(s); the agent wrote %s of audit log (one line a vend). "+
		"Every answer was checked: 200, with AccessKeyId, SecretAccessKey, Token and Expiration.\n",
		a.Vend, h.Vend, openConns, ms(a.Latency.Service.P99), ms(h.Latency.Service.P99), ms(a.Latency.Lag.P99), ms(h.Latency.Lag.P99),
		a.GitLabJobCalls, a.CreateSessions, mb(float64(a.LogBytes)/(1<<20)))
	for _, s := range []*Side{a, h} {
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
