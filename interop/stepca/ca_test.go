package stepca_test

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/keyless-dev/keyless/internal/testkit"
	"github.com/smallstep/certificates/ca"
)

// These tests run the keyless binary, built from this tree with
// CGO_ENABLED=0 as it ships, as a CA (`keyless ca init`, `keyless ca serve`)
// and talk to it with smallstep's own Go client.

func TestMain(m *testing.M) {
	// smallstep's client loads an identity from $STEPPATH (~/.step) when one
	// is there; these tests must see only the CA they start.
	ca.DisableIdentity = true
	os.Exit(testkit.Main(m).Run())
}

// testCA is one `keyless ca serve` process over a CA made by `keyless ca
// init` in a temporary directory.
type testCA struct {
	keyless      string
	URL          string // https://127.0.0.1:PORT
	Dir          string
	PasswordFile string
	Password     []byte
	Fingerprint  string // as `keyless ca init` printed it
	Root         *x509.Certificate
	Intermediate *x509.Certificate
	RootFile     string
}

// provisionerName names the JWK provisioner `keyless ca init --provisioner` makes.
const provisionerName = "admin"

var fingerprintLine = regexp.MustCompile(`(?m)^Root fingerprint: ([0-9a-f]{64})\r?$`)

// startCA initializes a CA and serves it until the test ends, when it gets
// SIGTERM.
func startCA(t *testing.T) *testCA {
	t.Helper()
	c := initCA(t)
	c.serve(t)
	return c
}

// initCA runs `keyless ca init` in a temporary directory, without serving
// the CA, so a test can edit config/ca.yaml before c.serve.
func initCA(t *testing.T) *testCA {
	t.Helper()
	keyless := testkit.Keyless(t)
	tmp := t.TempDir()
	c := &testCA{
		keyless:      keyless,
		Dir:          filepath.Join(tmp, "ca"),
		PasswordFile: filepath.Join(tmp, "password"),
		Password:     []byte("interop-" + strconv.FormatInt(time.Now().UnixNano(), 36)),
	}
	if err := os.WriteFile(c.PasswordFile, c.Password, 0o600); err != nil {
		t.Fatal(err)
	}
	addr := testkit.Addr(t)
	c.URL = "https://" + addr

	var stdout, stderr bytes.Buffer
	initCmd := exec.Command(keyless, "ca", "init", "--name", "Test CA", "--dns", "127.0.0.1", "--dns", "localhost",
		"--address", addr, "--provisioner", provisionerName, "--password-file", c.PasswordFile, "--dir", c.Dir)
	initCmd.Stdout, initCmd.Stderr = &stdout, &stderr
	if err := initCmd.Run(); err != nil {
		t.Fatalf("keyless ca init: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.Bytes(), stderr.Bytes())
	}
	m := fingerprintLine.FindStringSubmatch(stdout.String())
	if m == nil {
		t.Fatalf("keyless ca init printed no line %q on stdout:\n%s", "Root fingerprint: <64 lowercase hex>", stdout.Bytes())
	}
	c.Fingerprint = m[1]
	for _, f := range []string{"certs/root_ca.crt", "certs/intermediate_ca.crt", "secrets/root_ca_key", "secrets/intermediate_ca_key", "config/ca.yaml"} {
		if _, err := os.Stat(filepath.Join(c.Dir, f)); err != nil {
			t.Errorf("keyless ca init did not write %s: %v", f, err)
		}
	}
	c.RootFile = filepath.Join(c.Dir, "certs", "root_ca.crt")
	c.Root = readCert(t, c.RootFile)
	c.Intermediate = readCert(t, filepath.Join(c.Dir, "certs", "intermediate_ca.crt"))
	if sum := sha256.Sum256(c.Root.Raw); hex.EncodeToString(sum[:]) != c.Fingerprint {
		t.Fatalf("printed root fingerprint %s is not the SHA-256 of certs/root_ca.crt (%x)", c.Fingerprint, sum)
	}
	return c
}

// serve starts `keyless ca serve` and waits until it says it serves (the
// READY and STATUS it sends a service manager).
func (c *testCA) serve(t *testing.T) {
	t.Helper()
	serve := exec.Command(c.keyless, "ca", "serve", "--dir", c.Dir, "--password-file", c.PasswordFile)
	out := new(testkit.Buffer)
	notify := testkit.ListenNotify(t)
	serve.Stdout, serve.Stderr, serve.Env = out, out, append(os.Environ(), notify.Env)
	if err := serve.Start(); err != nil {
		t.Fatalf("starting keyless ca serve: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- serve.Wait() }()
	t.Cleanup(func() {
		serve.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			if t.Failed() {
				t.Logf("keyless ca serve exited (%v) after SIGTERM; its output:\n%s", err, out.String())
			}
		case <-time.After(10 * time.Second):
			serve.Process.Kill()
			<-exited
			t.Errorf("keyless ca serve did not stop within 10s of SIGTERM; its output:\n%s", out.String())
		}
	})
	if got, want := notify.WaitFor(t, "STATUS="), "STATUS=serving "+c.URL; got != want {
		t.Fatalf("keyless ca serve says %q, want %q; its output:\n%s", got, want, out.String())
	}
}

func readCert(t *testing.T, file string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" {
		t.Fatalf("%s holds no PEM certificate", file)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return cert
}

// statusOf is the HTTP status smallstep's client reports for a CA error: the
// "status" of the JSON error body, which is all its callers (the step CLI
// among them) get to see; 0 when err carries none.
func statusOf(err error) int {
	var sc interface{ StatusCode() int }
	if errors.As(err, &sc) {
		return sc.StatusCode()
	}
	return 0
}
