package docs_test

import (
	"archive/tar"
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyless-dev/keyless/internal/testkit"
	"github.com/keyless-dev/keyless/interop/docs"
)

// The harness: where the documents' commands run.
//
// They write to /etc/keyless, /var/lib/keyless and /etc/systemd/system,
// add a user, serve the CA on 10.0.0.5:9000: none of that may touch the
// machine the test runs on. So each document gets a container of its own,
// from an image with nothing in it but a skeleton (an empty root with
// /bin, /lib, /lib64 and /sbin pointing into /usr, and the host's user and
// group lists, their passwords locked, so useradd works) and the host's
// /usr mounted read-only: bash, coreutils, openssl, curl, jq, python3,
// the AWS CLI, hyperfine, systemd-analyze and Go come from there, so
// there is no registry to reach and nothing to install. On top:
//
//   - /opt/keyless/bin/keyless: keyless as it ships (CGO_ENABLED=0),
//     built from this tree, first on PATH after the stand-ins;
//   - /root/keyless: a copy of this tree (committed history and the
//     working tree's changes, so blocks comparing with an old commit find
//     it), the working directory of every session, as for a reader in a
//     clone;
//   - 10.0.0.5 on the loopback interface: the documents' CA host. The CA
//     host and the runner are the same container;
//   - stand-ins, first on PATH, for what one container cannot be (see
//     testdata/shims, each says what it emulates and what it refuses):
//     ssh (runs the command here, since the CA host is here) and
//     systemctl (no systemd in the container: it verifies units with
//     systemd-analyze, and starts a service's ExecStart= as its User=,
//     waiting for READY=1 as systemd does);
//   - Go's build and module caches: volumes shared by the sessions of
//     one run, filled from the host's module cache (GOPROXY=file://...)
//     before the network.
//
// Each session is one bash -euo pipefail that sources the blocks in
// order (driver), and marks where each begins and ends on its output. As in
// any such script, a command that fails before && or in a condition does
// not stop it; one whose failure errexit sees does, and so does a block
// that ends with a failed status.

const (
	// blockLimit bounds one block; the measurement blocks of
	// docs/benchmarks.md are the longest.
	blockLimit = 5 * time.Minute
	// stopLimit bounds how long a block may take to stop after Ctrl-C.
	stopLimit = time.Minute
	// caHost is the CA host's address in the documents.
	caHost = "10.0.0.5"
	// work is the sessions' working directory.
	work = "/root/keyless"
)

type harness struct {
	nonce string   // names this run's image, volumes and containers, and its output markers
	image string   // the skeleton
	run   []string // docker run's arguments before the image
}

func newHarness(t *testing.T, root string) *harness {
	t.Helper()
	testkit.LookPath(t, "docker", "Debian's docker.io, and start dockerd")
	if out, err := exec.Command("docker", "info", "--format", "{{.ServerVersion}}").CombinedOutput(); err != nil {
		testkit.Unavailable(t, "docker info: %v: %s (start dockerd)", err, bytes.TrimSpace(out))
	}
	testkit.LookPath(t, "git", "git")
	if l, err := os.Readlink("/bin"); err != nil || strings.TrimPrefix(l, "/") != "usr/bin" {
		testkit.Unavailable(t, "this machine's /bin is not a link to /usr/bin, so its /usr alone cannot run the documents' commands")
	}
	keyless := testkit.Keyless(t)
	nonce := make([]byte, 6)
	if _, err := rand.Read(nonce); err != nil {
		t.Fatal(err)
	}
	h := &harness{nonce: hex.EncodeToString(nonce)}
	src := filepath.Join(t.TempDir(), "src")
	copySource(t, root, src)
	h.image = "keyless-doctest:" + h.nonce
	skel, err := skeleton()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := docker(bytes.NewReader(skel), "import", "-", h.image); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := docker(nil, "rmi", "-f", h.image); err != nil {
			t.Errorf("removing the image: %v", err)
		}
	})
	var vols []string
	for _, v := range []string{"go-build", "mod"} {
		name := "keyless-doctest-" + h.nonce + "-" + v
		if _, err := docker(nil, "volume", "create", name); err != nil {
			t.Fatal(err)
		}
		// Cleanups run last first: the volumes go after the containers.
		t.Cleanup(func() {
			if _, err := docker(nil, "volume", "rm", "-f", name); err != nil {
				t.Errorf("removing a volume: %v", err)
			}
		})
		vols = append(vols, name)
	}
	shims, err := filepath.Abs(filepath.Join("testdata", "shims"))
	if err != nil {
		t.Fatal(err)
	}
	env := goEnv(t)
	path := []string{"/opt/doctest/shims", "/opt/keyless/bin", filepath.Join(env["GOROOT"], "bin"), "/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin"}
	h.run = []string{
		"--cap-add", "NET_ADMIN", // to put the CA host's address on lo
		"-v", "/usr:/usr:ro",
		"-v", keyless + ":/opt/keyless/bin/keyless:ro",
		"-v", shims + ":/opt/doctest/shims:ro",
		"-v", src + ":/opt/doctest/src:ro",
		"-v", vols[0] + ":/var/cache/doctest/go-build",
		"-v", vols[1] + ":/var/cache/doctest/mod",
		"-e", "PATH=" + strings.Join(path, ":"),
		"-e", "HOME=/root", "-e", "USER=root", "-e", "LOGNAME=root", "-e", "SHELL=/bin/bash", "-e", "LANG=C.UTF-8",
		"-e", "GOCACHE=/var/cache/doctest/go-build", "-e", "GOMODCACHE=/var/cache/doctest/mod",
		"-e", "GOTOOLCHAIN=local", "-e", "GOFLAGS=", "-e", "GOSUMDB=" + env["GOSUMDB"],
	}
	if !strings.HasPrefix(env["GOROOT"], "/usr/") {
		h.run = append(h.run, "-v", env["GOROOT"]+":"+env["GOROOT"]+":ro")
	}
	proxy := env["GOPROXY"]
	if dl := filepath.Join(env["GOMODCACHE"], "cache", "download"); isDir(dl) {
		h.run = append(h.run, "-v", dl+":/opt/doctest/goproxy:ro")
		proxy = "file:///opt/doctest/goproxy," + proxy
	}
	h.run = append(h.run, "-e", "GOPROXY="+proxy)
	return h
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

// docker runs a docker command and returns its output.
func docker(stdin io.Reader, args ...string) (string, error) {
	cmd := exec.Command("docker", args...)
	cmd.Stdin = stdin
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("docker %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return string(out), nil
}

func goEnv(t *testing.T) map[string]string {
	t.Helper()
	out, err := exec.Command("go", "env", "-json", "GOROOT", "GOMODCACHE", "GOPROXY", "GOSUMDB").Output()
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	if err := json.Unmarshal(out, &env); err != nil {
		t.Fatal(err)
	}
	return env
}

func git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// copySource makes dst what a reader's clone of root would be: HEAD's
// history (so blocks can build old commits) and the working tree as it is
// now (tracked files and untracked ones git does not ignore), so the test
// runs the documents being edited.
func copySource(t *testing.T, root, dst string) {
	t.Helper()
	git(t, "", "init", "-q", dst)
	git(t, dst, "fetch", "-q", "--no-tags", root, "HEAD")
	git(t, dst, "update-ref", "--no-deref", "HEAD", "FETCH_HEAD")
	git(t, dst, "reset", "-q")
	for _, f := range strings.Split(git(t, root, "ls-files", "-z", "--cached", "--others", "--exclude-standard"), "\x00") {
		if f == "" {
			continue
		}
		from, to := filepath.Join(root, f), filepath.Join(dst, f)
		fi, err := os.Lstat(from)
		if err != nil {
			continue // deleted in the working tree
		}
		if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
			t.Fatal(err)
		}
		if fi.Mode()&os.ModeSymlink != 0 {
			l, err := os.Readlink(from)
			if err == nil {
				err = os.Symlink(l, to)
			}
			if err != nil {
				t.Fatal(err)
			}
			continue
		}
		b, err := os.ReadFile(from)
		if err == nil {
			err = os.WriteFile(to, b, fi.Mode().Perm())
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// skeleton is the image's file system, as a tar archive for docker
// import.
func skeleton() ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(h *tar.Header, data []byte) error {
		h.Size = int64(len(data))
		h.ModTime = time.Unix(0, 0)
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	for _, d := range []struct {
		name string
		mode int64
	}{
		{"usr", 0o755}, {"etc", 0o755}, {"etc/systemd", 0o755}, {"etc/systemd/system", 0o755}, {"etc/ssl", 0o755},
		{"etc/ssl/certs", 0o755}, {"etc/alternatives", 0o755}, {"tmp", 0o1777}, {"root", 0o700}, {"home", 0o755},
		{"opt", 0o755}, {"run", 0o755}, {"var", 0o755}, {"var/tmp", 0o1777}, {"var/lib", 0o755}, {"var/log", 0o755},
		{"var/cache", 0o755},
	} {
		if err := add(&tar.Header{Typeflag: tar.TypeDir, Name: d.name + "/", Mode: d.mode}, nil); err != nil {
			return nil, err
		}
	}
	for _, l := range []string{"bin", "lib", "lib64", "sbin"} {
		if err := add(&tar.Header{Typeflag: tar.TypeSymlink, Name: l, Linkname: "usr/" + l, Mode: 0o777}, nil); err != nil {
			return nil, err
		}
	}
	// The host's user and group lists, so that useradd picks free ids and
	// the users /usr's files belong to exist. Passwords are not copied:
	// shadow and gshadow are made with every password locked.
	var shadow, gshadow bytes.Buffer
	for _, f := range []string{"passwd", "group", "login.defs", "nsswitch.conf", "ld.so.cache", "services", "protocols", "ssl/openssl.cnf", "ssl/certs/ca-certificates.crt"} {
		b, err := os.ReadFile(filepath.Join("/etc", f))
		if err != nil {
			if f == "passwd" || f == "group" {
				return nil, err
			}
			continue
		}
		for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			fields := strings.Split(line, ":")
			switch {
			case f == "passwd" && len(fields) > 1:
				fmt.Fprintf(&shadow, "%s:!*:19000:0:99999:7:::\n", fields[0])
			case f == "group" && len(fields) > 3:
				fmt.Fprintf(&gshadow, "%s:!*::%s\n", fields[0], fields[3])
			}
		}
		if err := add(&tar.Header{Typeflag: tar.TypeReg, Name: "etc/" + f, Mode: 0o644}, b); err != nil {
			return nil, err
		}
	}
	for name, data := range map[string][]byte{"etc/shadow": shadow.Bytes(), "etc/gshadow": gshadow.Bytes()} {
		if err := add(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o640}, data); err != nil {
			return nil, err
		}
	}
	// Debian's alternatives (awk, editor, ...) are links through /etc.
	alts, _ := os.ReadDir("/etc/alternatives")
	for _, a := range alts {
		if l, err := os.Readlink(filepath.Join("/etc/alternatives", a.Name())); err == nil {
			if err := add(&tar.Header{Typeflag: tar.TypeSymlink, Name: "etc/alternatives/" + a.Name(), Linkname: l, Mode: 0o777}, nil); err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// shellQuote quotes s for bash, keeping a leading ~/ as $HOME.
func shellQuote(s string) string {
	q := func(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
	if rest, ok := strings.CutPrefix(s, "~/"); ok {
		return `"$HOME"/` + q(rest)
	}
	return q(s)
}

// driver writes a session's script, and the files its steps source or
// copy, into dir (mounted at /opt/doctest/session).
func (h *harness) driver(dir string, steps []docs.Step) error {
	var b strings.Builder
	fmt.Fprintf(&b, `# One document's session in the docs test (interop/docs/harness_test.go).
set -euo pipefail
exec 2>&1
doctest_mark() { printf '@@doctest-%s %%s\n' "$*"; }
trap 'doctest_mark exit $?' EXIT
trap 'doctest_mark failed $LINENO $BASH_COMMAND' ERR
cd %s
`, h.nonce, work)
	for i, s := range steps {
		name := filepath.Join(dir, strconv.Itoa(i))
		in := "/opt/doctest/session/" + strconv.Itoa(i)
		switch s.Kind {
		case docs.Skip, docs.Self:
			continue
		case docs.Write:
			if err := os.WriteFile(name, []byte(s.Block.Text), 0o644); err != nil {
				return err
			}
			p := shellQuote(s.Block.Directive.Arg)
			fmt.Fprintf(&b, "doctest_mark begin %d\nmkdir -p -- \"$(dirname -- %s)\"\ncp -- %s %s\n", i, p, in, p)
		case docs.Run:
			if err := os.WriteFile(name, []byte(s.Block.Script()), 0o644); err != nil {
				return err
			}
			// Standard input is /dev/null: a block reads no terminal.
			fmt.Fprintf(&b, "doctest_mark begin %d\nsource %s </dev/null\n", i, in)
		case docs.RunInterrupt:
			if err := os.WriteFile(name, []byte(s.Block.Script()), 0o644); err != nil {
				return err
			}
			// A process group of its own, as a terminal's foreground job
			// has, so Ctrl-C (SIGINT to the group) reaches all of it.
			fmt.Fprintf(&b, `doctest_mark begin %d
setsid bash -euo pipefail %s </dev/null &
doctest_pid=$!
doctest_mark pid $doctest_pid
doctest_status=0
wait $doctest_pid || doctest_status=$?
doctest_left=0
if kill -0 -- -$doctest_pid 2>/dev/null; then doctest_left=1; kill -KILL -- -$doctest_pid; fi
doctest_mark stopped $doctest_status $doctest_left
`, i, in)
		}
		fmt.Fprintf(&b, "doctest_mark end %d\n", i)
	}
	return os.WriteFile(filepath.Join(dir, "driver.sh"), []byte(b.String()), 0o644)
}

// session runs one document's steps in a container of its own and reports
// each.
func (h *harness) session(t *testing.T, doc string, steps []docs.Step) {
	dir := t.TempDir()
	if err := h.driver(dir, steps); err != nil {
		t.Fatal(err)
	}
	name, kill := h.container(t, doc, dir)
	start := time.Now()
	s := &run{h: h, t: t, name: name, kill: kill, steps: steps, res: make([]result, len(steps)), cur: -1, exit: -1}
	s.drive()
	s.report(doc)
	t.Logf("%s: the session took %s", doc, time.Since(start).Round(time.Second))
}

// container starts doc's container, with the session's files from dir,
// and returns its name and a function that removes it (safe to call
// concurrently: every call returns once it is gone). It is removed when t
// ends.
func (h *harness) container(t *testing.T, doc, dir string) (string, func()) {
	t.Helper()
	name := "keyless-doctest-" + h.nonce + "-" + strings.NewReplacer("/", "-", ".", "-").Replace(doc)
	args := append([]string{"run", "-d", "--name", name, "-v", dir + ":/opt/doctest/session:ro"}, h.run...)
	// PID 1 reaps the processes blocks leave behind.
	args = append(args, h.image, "bash", "-c", `trap "exit 0" TERM; while :; do sleep 3600 & wait $!; done`)
	if _, err := docker(nil, args...); err != nil {
		t.Fatal(err)
	}
	kill := sync.OnceFunc(func() {
		if _, err := docker(nil, "rm", "-f", name); err != nil {
			t.Errorf("removing the container: %v", err)
		}
	})
	t.Cleanup(kill)
	if _, err := docker(nil, "exec", name, "bash", "-ec", fmt.Sprintf("ip addr add %s/32 dev lo; cp -R /opt/doctest/src %s", caHost, work)); err != nil {
		t.Fatal(err)
	}
	return name, kill
}

type state int

const (
	notRun state = iota
	running
	passed
	failed
)

type result struct {
	state       state
	why         string // for failed
	out         []string
	began       time.Time
	took        time.Duration
	pid         string    // the process group of a RunInterrupt step
	interrupted time.Time // when it got Ctrl-C
}

// run is one session under way.
type run struct {
	h    *harness
	t    *testing.T
	name string // the container
	// kill removes it, and with it what blocks left running (a CA, an
	// emulator, services); the session's output then ends.
	kill     func()
	steps    []docs.Step
	res      []result
	cur      int      // the step under way, -1 before the first
	preamble []string // output before the first step
	exit     int      // the driver's exit status, -1 until it exits
	limit    *time.Timer
	timedOut bool
}

// event is a line of the session's output, or a mark of its driver.
type event struct {
	line   string
	marker bool
}

// drive runs the driver in the container and follows its marks until it
// exits, or a step overruns its limit.
func (s *run) drive() {
	cmd := exec.Command("docker", "exec", s.name, "bash", "--norc", "--noprofile", "/opt/doctest/session/driver.sh")
	r, w, err := os.Pipe()
	if err != nil {
		s.t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	w.Close()
	events := make(chan event)
	go func() {
		defer close(events)
		prefix := "@@doctest-" + s.h.nonce + " "
		lines(bufio.NewReader(r), func(l string) {
			if i := strings.Index(l, prefix); i >= 0 {
				if i > 0 { // a background process's unfinished line
					events <- event{line: l[:i]}
				}
				events <- event{line: l[i+len(prefix):], marker: true}
				return
			}
			events <- event{line: l}
		})
	}()
	s.limit = time.NewTimer(time.Hour)
	s.limit.Stop()
	for {
		select {
		case <-s.limit.C:
			s.timedOut = true
			r := &s.res[s.cur]
			r.state, r.took = failed, time.Since(r.began)
			r.why = fmt.Sprintf("it did not end within %s", r.took.Round(time.Second))
			go s.kill()
		case ev, ok := <-events:
			if !ok {
				cmd.Wait()
				if s.exit < 0 && !s.timedOut {
					s.t.Errorf("the session ended without its driver's exit (docker exec: %v):\n%s", cmd.ProcessState, tail(s.preamble))
					if s.cur >= 0 && s.res[s.cur].state == running {
						s.res[s.cur].state, s.res[s.cur].why = failed, "the session ended under it"
					}
				}
				return
			}
			if ev.marker {
				s.mark(strings.Fields(ev.line))
			} else {
				s.output(ev.line)
			}
		}
	}
}

// arm starts the limit of the step under way, within the test's deadline.
func (s *run) arm(d time.Duration) {
	if deadline, ok := s.t.Deadline(); ok {
		d = min(d, time.Until(deadline)-20*time.Second)
	}
	s.limit.Reset(d)
}

func (s *run) output(line string) {
	if s.cur < 0 {
		s.preamble = append(s.preamble, line)
		return
	}
	r := &s.res[s.cur]
	r.out = append(r.out, line)
	text := s.steps[s.cur].Block.Directive.Arg
	if r.pid != "" && r.interrupted.IsZero() && strings.Contains(line, text) {
		r.interrupted = time.Now()
		r.out = append(r.out, fmt.Sprintf("[docs test: %q printed, so Ctrl-C (SIGINT to the block's process group)]", text))
		s.arm(stopLimit)
		go docker(nil, "exec", s.name, "kill", "-INT", "--", "-"+r.pid)
	}
}

// mark follows the driver's marks: begin N, pid PGID, stopped STATUS LEFT,
// failed LINE COMMAND, end N, exit STATUS.
func (s *run) mark(f []string) {
	if len(f) < 2 || (s.cur < 0 && f[0] != "begin" && f[0] != "exit") {
		return
	}
	var r *result
	if s.cur >= 0 {
		r = &s.res[s.cur]
	}
	switch f[0] {
	case "begin":
		s.cur, _ = strconv.Atoi(f[1])
		s.res[s.cur].state, s.res[s.cur].began = running, time.Now()
		s.arm(blockLimit)
	case "pid":
		r.pid = f[1]
	case "stopped":
		r.out = append(r.out, fmt.Sprintf("[docs test: it ended with status %s]", f[1]))
		if len(f) > 2 && f[2] != "0" {
			r.state, r.why = failed, "processes of its group still ran after it ended: Ctrl-C did not stop everything"
		}
	case "failed":
		// The ERR trap: errexit is about to end the session. The line
		// counts from the block's first line.
		if r.state == running && r.why == "" && len(f) > 2 {
			n, _ := strconv.Atoi(f[1])
			b := s.steps[s.cur].Block
			r.why = fmt.Sprintf("line %d (%s:%d) failed: %s", n, b.File, b.Line+n, strings.Join(f[2:], " "))
		}
	case "end":
		s.limit.Stop()
		r.took = time.Since(r.began)
		if r.state == running {
			r.state = passed
		}
		if r.pid != "" {
			checkInterrupted(s.steps[s.cur], r)
		}
	case "exit":
		s.exit, _ = strconv.Atoi(f[1])
		s.limit.Stop()
		if r != nil && r.state == running {
			why := fmt.Sprintf("exit status %d", s.exit)
			if r.why != "" {
				why = r.why + ", " + why
			}
			r.state, r.why, r.took = failed, why, time.Since(r.began)
		}
		go s.kill()
	}
}

// report logs each step: its result, and the output of a failure (or,
// with -v, of every block).
func (s *run) report(doc string) {
	t := s.t
	if len(s.preamble) > 0 && s.exit != 0 {
		t.Logf("%s: the session's output before its first block:\n%s", doc, tail(s.preamble))
	}
	for i, step := range s.steps {
		r := s.res[i]
		took := r.took.Round(100 * time.Millisecond)
		switch {
		case step.Kind == docs.Skip || step.Kind == docs.Self:
			t.Logf("%s: not run: %s", step.Label(), step.Why)
		case step.Kind == docs.Write && r.state == passed:
			t.Logf("%s: saved as %s", step.Label(), step.Block.Directive.Arg)
		case r.state == passed && testing.Verbose() && len(r.out) > 0:
			t.Logf("%s: ok (%s); its output:\n%s", step.Label(), took, tail(r.out))
		case r.state == passed:
			t.Logf("%s: ok (%s)", step.Label(), took)
		case r.state == failed:
			t.Errorf("%s: failed: %s, after %s; its output:\n%s", step.Label(), redact(r.why), took, tail(r.out))
		default:
			t.Logf("%s: not run: an earlier block failed", step.Label())
		}
	}
}

// checkInterrupted holds a RunInterrupt step to what Ctrl-C promises: it
// ran until the test pressed Ctrl-C, then stopped cleanly. Its exit status
// is reported, not checked: `go run` exits 1 after SIGINT even when the
// program exits 0 (cmd/go's builder sets status 1 once interrupted); go
// run's own "exit status N" line, or a panic, is what shows that the
// program did not stop cleanly.
func checkInterrupted(s docs.Step, r *result) {
	if r.state != passed {
		return
	}
	if r.interrupted.IsZero() {
		r.state, r.why = failed, fmt.Sprintf("it ended before printing %q", s.Block.Directive.Arg)
		return
	}
	after := false
	for _, l := range r.out {
		after = after || strings.HasPrefix(l, "[docs test: ")
		if after && (strings.HasPrefix(l, "panic: ") || strings.HasPrefix(l, "exit status ")) {
			r.state, r.why = failed, fmt.Sprintf("it did not stop cleanly after Ctrl-C: %q", l)
			return
		}
	}
}
