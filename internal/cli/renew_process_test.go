package cli_test

import (
	"bytes"
	"encoding/json"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keyless-dev/keyless/internal/caproto"
	"github.com/keyless-dev/keyless/internal/identity"
	"github.com/keyless-dev/keyless/internal/pki"
	"github.com/keyless-dev/keyless/internal/testkit"
)

// enrolled is a runner directory with a certificate from a running CA.
type enrolled struct {
	p            *caProcess
	dir          string
	crt, key     string
	rootFlag     []string
	serialBefore string
}

func enroll(t *testing.T) *enrolled {
	t.Helper()
	p := newCAProcess(t)
	p.start()
	e := &enrolled{p: p, dir: t.TempDir()}
	e.crt, e.key = filepath.Join(e.dir, "runner.crt"), filepath.Join(e.dir, "runner.key")
	e.rootFlag = []string{"--ca-url", p.url, "--root", filepath.Join(p.dir, "certs", "root_ca.crt")}
	e.keyless(t, append([]string{"certificate", "gitlab-runner", e.crt, e.key, "--provisioner-password-file", p.pwFile}, e.rootFlag...)...)
	e.serialBefore = e.serial(t)
	return e
}

func (e *enrolled) keyless(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("keyless", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("keyless %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// serial loads the pair as keyless does and returns the certificate's
// serial; it fails the test if the pair does not load or match.
func (e *enrolled) serial(t *testing.T) string {
	t.Helper()
	id, err := identity.Load(identity.Files{Certificate: e.crt, PrivateKey: e.key}, nil, time.Time{})
	if err != nil {
		t.Fatalf("the pair on disk does not load: %v", err)
	}
	return id.Certificate.SerialNumber.String()
}

// killAtRandom runs bin with args n times, each SIGKILLed at a random
// instant within the span of a whole run (timed first, so the kills cover
// it on any machine), and checks after each that the pair on disk loads
// and matches. It returns how many kills came after the new pair was in
// place.
func (e *enrolled) killAtRandom(t *testing.T, bin string, n int, args func() []string) int {
	t.Helper()
	start := time.Now()
	if out, err := exec.Command(bin, args()...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", args()[0], err, out)
	}
	span := time.Since(start) * 6 / 5
	e.serialBefore = e.serial(t)
	changed := 0
	for i := range n {
		cmd := exec.Command(bin, args()...)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(rand.Int64N(int64(span))))
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
		before := e.serialBefore
		e.serialBefore = e.serial(t) // fails the test on a torn or mismatched pair
		if e.serialBefore != before {
			changed++
		}
		if i%50 == 49 {
			t.Logf("%d kills, %d of them after the new pair was in place", i+1, changed)
		}
	}
	return changed
}

// TestRenewKilledAtRandomPoints SIGKILLs keyless renew at random instants,
// 200 times: the certificate and key on disk must always load as a
// matching pair.
func TestRenewKilledAtRandomPoints(t *testing.T) {
	if testing.Short() {
		t.Skip("200 renewals")
	}
	e := enroll(t)
	// The renewer is a normal build: the test binary, which provides
	// keyless on PATH, is built with -race in scripts/test and starts ten
	// times slower, which would make 200 kills take minutes.
	bin := testkit.Keyless(t)
	renewed := e.killAtRandom(t, bin, 200, func() []string {
		return append([]string{"renew", e.crt, e.key, "--force", "--method", "mtls"}, e.rootFlag...)
	})
	if renewed == 0 {
		t.Error("no renewal completed before its kill in 200 tries; the kills were all too early to test anything")
	}
	entries, _ := os.ReadDir(e.dir)
	for _, en := range entries {
		if strings.HasPrefix(en.Name(), ".tmp-") {
			// Temporary files of killed writers are harmless (never read)
			// but should be rare; there must be no pending certificate.
			continue
		}
		if strings.HasSuffix(en.Name(), identity.PendingSuffix) {
			t.Errorf("a pending certificate was left: %s", en.Name())
		}
	}
}

// TestRenewReadOnlyDirectory: renewal into a directory it cannot write
// fails with a clear error and leaves the old files as they were.
func TestRenewReadOnlyDirectory(t *testing.T) {
	e := enroll(t)
	before, _ := os.ReadFile(e.crt)
	beforeKey, _ := os.ReadFile(e.key)
	if os.Geteuid() == 0 {
		// Directory modes do not stop root; the immutable attribute does.
		chattr := testkit.LookPath(t, "chattr", "e2fsprogs")
		if out, err := exec.Command(chattr, "+i", e.dir).CombinedOutput(); err != nil {
			// Some filesystems (overlayfs, tmpfs) have no immutable flag.
			t.Skipf("chattr +i %s failed (%v: %s): this filesystem cannot make a directory read-only for root", e.dir, err, out)
		}
		t.Cleanup(func() { exec.Command(chattr, "-i", e.dir).Run() })
	} else {
		if err := os.Chmod(e.dir, 0o500); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Chmod(e.dir, 0o700) })
	}
	out, err := exec.Command("keyless", append([]string{"renew", e.crt, e.key, "--force"}, e.rootFlag...)...).CombinedOutput()
	if err == nil || !regexp.MustCompile(`keyless: error: writing .*runner\.crt: .*(permission denied|operation not permitted)`).Match(out) {
		t.Errorf("renew into a read-only directory: %v\n%s", err, out)
	}
	after, _ := os.ReadFile(e.crt)
	afterKey, _ := os.ReadFile(e.key)
	if !bytes.Equal(before, after) || !bytes.Equal(beforeKey, afterKey) {
		t.Error("the old files changed")
	}
}

// startDaemon starts keyless renew --daemon on the pair with extra
// flags, as a service manager would, waits until it is ready, and
// renews at once with SIGHUP.
func (e *enrolled) startDaemon(t *testing.T, stdout, stderr io.Writer, extra ...string) (*exec.Cmd, *testkit.Notifications) {
	t.Helper()
	n := testkit.ListenNotify(t)
	args := append(append([]string{"renew", e.crt, e.key, "--daemon"}, extra...), e.rootFlag...)
	d := exec.Command("keyless", args...)
	d.Stdout, d.Stderr, d.Env = stdout, stderr, append(os.Environ(), n.Env)
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Process.Kill() })
	n.WaitFor(t, "READY=1")
	if err := d.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	return d, n
}

// TestRenewDaemonSignals runs keyless renew --daemon as a service
// manager would: it says when it is ready, SIGHUP renews at once (and runs
// --exec), and SIGTERM stops it cleanly. The waits are on its notify
// messages. (internal/renewal tests the schedule, the backoff and a CA
// outage on a fake clock.)
func TestRenewDaemonSignals(t *testing.T) {
	e := enroll(t)
	var logs testkit.Buffer
	d, n := e.startDaemon(t, &logs, &logs, "--exec", "echo renewed-hook >&2")
	n.WaitFor(t, "STATUS=renewed")
	n.WaitFor(t, "STATUS=renewed serial") // and ran --exec
	if got := e.serial(t); got == e.serialBefore {
		t.Errorf("SIGHUP did not renew the certificate")
	}
	data, _ := os.ReadFile(e.crt)
	if certs, err := pki.ParseCertificates(data); err != nil || len(certs) != 2 {
		t.Errorf("renewed file: %d certificates, %v (want leaf and intermediate)", len(certs), err)
	}
	if err := d.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	n.WaitFor(t, "STOPPING=1")
	if err := d.Wait(); err != nil {
		t.Errorf("daemon exit: %v\n%s", err, logs.String())
	}
	if !strings.Contains(logs.String(), "renewed-hook") {
		t.Errorf("--exec printed nothing:\n%s", logs.String())
	}
}

// TestRenewDaemonJSONLog: with --log-format json every line the daemon
// writes on standard error is a JSON record with its time, level and
// message, the output of --exec included, and a hostile byte in that
// output arrives escaped.
func TestRenewDaemonJSONLog(t *testing.T) {
	e := enroll(t)
	var stderr testkit.Buffer
	d, n := e.startDaemon(t, io.Discard, &stderr, "--log-format", "json", "--exec", `echo hook-out; printf 'evil\033[31m\n' >&2`)
	n.WaitFor(t, "STATUS=renewed serial") // and ran --exec
	if err := d.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := d.Wait(); err != nil {
		t.Fatalf("daemon exit: %v\n%s", err, stderr.String())
	}
	if strings.Contains(stderr.String(), "\x1b") {
		t.Errorf("a raw escape reached the log:\n%q", stderr.String())
	}
	timeRE := regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`)
	var got []string
	for _, line := range strings.Split(strings.TrimSuffix(stderr.String(), "\n"), "\n") {
		var r struct{ Time, Level, Msg, Line, Serial string }
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("not a JSON record: %v: %q", err, line)
		}
		if !timeRE.MatchString(r.Time) || r.Level == "" || r.Msg == "" {
			t.Errorf("no time, level or msg: %q", line)
		}
		got = append(got, r.Level+" "+r.Msg+" "+r.Line)
	}
	for _, want := range []string{"INFO next renewal ", "INFO SIGHUP: renewing now ", "INFO renewed ",
		"INFO --exec output hook-out", "INFO --exec output evil\x1b[31m", "INFO stopping "} {
		if !slices.Contains(got, want) {
			t.Errorf("no record %q in:\n%s", want, strings.Join(got, "\n"))
		}
	}
}

// TestCertificateForceKilledAtRandomPoints SIGKILLs keyless certificate
// --force, which replaces the key too (the two-rename path), at random
// instants, 100 times: every reader's Load, and the next writer, must
// see a matching pair.
func TestCertificateForceKilledAtRandomPoints(t *testing.T) {
	if testing.Short() {
		t.Skip("100 enrolments")
	}
	e := enroll(t)
	bin := testkit.Keyless(t)
	args := func() []string {
		tok, err := caproto.NewToken(caproto.TokenOptions{Provisioner: "runners", Key: e.p.key, Subject: "gitlab-runner", SANs: []string{"gitlab-runner"}, Audience: e.p.url + "/1.0/sign"})
		if err != nil {
			t.Fatal(err)
		}
		tokFile := filepath.Join(t.TempDir(), "token")
		if err := os.WriteFile(tokFile, []byte(tok), 0o600); err != nil {
			t.Fatal(err)
		}
		return append([]string{"certificate", "gitlab-runner", e.crt, e.key, "--force", "--token-file", tokFile}, e.rootFlag...)
	}
	replaced := e.killAtRandom(t, bin, 100, args)
	t.Logf("100 kills, %d after the new pair was in place", replaced)
	// The next writer finishes or discards whatever a kill left.
	if out, err := exec.Command(bin, args()...).CombinedOutput(); err != nil {
		t.Fatalf("certificate after the kills: %v\n%s", err, out)
	}
	if _, err := os.Stat(e.crt + identity.PendingSuffix); !os.IsNotExist(err) {
		t.Errorf("a pending certificate is left after a complete write: %v", err)
	}
	e.serial(t)
}
