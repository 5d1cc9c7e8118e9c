package cli_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/keyless-dev/keyless/internal/ca"
	"github.com/keyless-dev/keyless/internal/caproto"
	"github.com/keyless-dev/keyless/internal/pki"
	"github.com/keyless-dev/keyless/internal/store"
	"github.com/keyless-dev/keyless/internal/testkit"
)

// These tests run `keyless ca serve` as a real process (testscript.Main
// puts the keyless command on PATH for this test binary), to check what
// only a process shows: signals, and crashes.

const caPassword = "correct horse battery staple"

type caProcess struct {
	t       *testing.T
	dir     string
	pwFile  string
	url     string
	client  *http.Client
	key     *jose.JSONWebKey
	cmd     *exec.Cmd
	stderr  *testkit.Buffer
	notify  *testkit.Notifications
	exited  chan error
	cfgPath string
}

func run(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("keyless", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("keyless %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func newCAProcess(t *testing.T, allow ...string) *caProcess {
	t.Helper()
	if _, err := exec.LookPath("keyless"); err != nil {
		t.Fatalf("keyless is not on PATH: %v", err)
	}
	dir := t.TempDir()
	p := &caProcess{t: t, dir: filepath.Join(dir, "ca"), pwFile: filepath.Join(dir, "pw")}
	if err := os.WriteFile(p.pwFile, []byte(caPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := testkit.Addr(t)
	args := []string{"ca", "init", "--name", "Process CA", "--dns", "127.0.0.1", "--address", addr, "--provisioner", "runners", "--password-file", p.pwFile, "--dir", p.dir}
	for _, a := range allow {
		args = append(args, "--allow", a)
	}
	run(t, args...)
	p.url = "https://" + addr
	p.cfgPath = filepath.Join(p.dir, ca.ConfigFile)
	cfg, err := ca.LoadConfig(p.dir)
	if err != nil {
		t.Fatal(err)
	}
	if p.key, err = caproto.DecryptProvisionerKey(cfg.Provisioners[0].EncryptedKey, []byte(caPassword)); err != nil {
		t.Fatal(err)
	}
	root, err := os.ReadFile(filepath.Join(p.dir, ca.RootCertFile))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(root)
	p.client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, MaxIdleConnsPerHost: 32}}
	return p
}

// start runs keyless ca serve and waits until it says it is ready (the
// READY=1 it sends a service manager).
func (p *caProcess) start() {
	t := p.t
	t.Helper()
	p.cmd = exec.Command("keyless", "ca", "serve", "--dir", p.dir, "--password-file", p.pwFile)
	p.notify = testkit.ListenNotify(t)
	p.cmd.Env = append(os.Environ(), p.notify.Env)
	p.stderr = &testkit.Buffer{}
	p.cmd.Stderr = p.stderr
	p.cmd.Stdout = io.Discard
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p.exited = make(chan error, 1)
	cmd := p.cmd
	t.Cleanup(func() { cmd.Process.Kill() })
	go func() { p.exited <- cmd.Wait() }()
	if m := p.notify.WaitFor(t, "STATUS="); m != "STATUS=serving "+p.url {
		t.Fatalf("serve says %q; stderr:\n%s", m, p.stderr.String())
	}
}

func (p *caProcess) signal(sig os.Signal) {
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatal(err)
	}
}

func (p *caProcess) wait() error {
	select {
	case err := <-p.exited:
		return err
	case <-time.After(15 * time.Second):
		p.t.Fatalf("keyless ca serve did not exit")
		return nil
	}
}

// signRequest is a ready-made /sign body for cn.
func (p *caProcess) signRequest(cn string) []byte {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}}, key)
	if err != nil {
		p.t.Fatal(err)
	}
	tok, err := caproto.NewToken(caproto.TokenOptions{Provisioner: "runners", Key: p.key, Subject: cn, SANs: []string{cn}, Audience: p.url + "/1.0/sign"})
	if err != nil {
		p.t.Fatal(err)
	}
	body, _ := json.Marshal(map[string]string{"csr": string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})), "ott": tok})
	return body
}

// sign posts a sign request and returns the status and the serial.
func (p *caProcess) sign(body []byte) (int, string, error) {
	resp, err := p.client.Post(p.url+"/1.0/sign", "application/json", bytes.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	var out struct{ Crt, Message string }
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return resp.StatusCode, "", err
	}
	if resp.StatusCode != http.StatusCreated {
		return resp.StatusCode, out.Message, nil
	}
	certs, err := pki.ParseCertificates([]byte(out.Crt))
	if err != nil {
		return resp.StatusCode, "", err
	}
	return resp.StatusCode, certs[0].SerialNumber.String(), nil
}

func TestCAServeReloadsAndStops(t *testing.T) {
	p := newCAProcess(t, "gitlab-runner")
	p.start()
	if status, msg, _ := p.sign(p.signRequest("builder")); status != http.StatusForbidden || !strings.Contains(msg, `may not issue certificates for "builder" (allowed: gitlab-runner)`) {
		t.Fatalf("before reload: %d %s", status, msg)
	}
	// While the CA runs, operator commands go through its API.
	out, err := exec.Command("keyless", "ca", "list", "--dir", p.dir).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "pass --password-file to list through its API") {
		t.Errorf("list while running, without the password: %v\n%s", err, out)
	}
	status, serial, err := p.sign(p.signRequest("gitlab-runner"))
	if err != nil || status != http.StatusCreated {
		t.Fatalf("sign: %d %s %v", status, serial, err)
	}
	run(t, "ca", "revoke", serial, "--dir", p.dir, "--password-file", p.pwFile, "--reason", "test")
	if out := run(t, "ca", "list", "--dir", p.dir, "--password-file", p.pwFile); !strings.Contains(out, serial) || !strings.Contains(out, "revoked") {
		t.Errorf("list through the API:\n%s", out)
	}
	// --expiring keeps valid certificates only, here through the API.
	if out := run(t, "ca", "list", "--dir", p.dir, "--password-file", p.pwFile, "--expiring", "8760h"); strings.Contains(out, serial) || strings.Count(out, "\n") != 1 {
		t.Errorf("list --expiring through the API listed the revoked certificate:\n%s", out)
	}
	// The running CA publishes its CRL to anyone: no password is needed
	// to fetch it (README: keyless ca crl --out ca.crl, then ImportCrl).
	for _, pw := range [][]string{{"--password-file", p.pwFile}, nil} {
		crl := run(t, append([]string{"ca", "crl", "--dir", p.dir, "--der"}, pw...)...)
		list, err := x509.ParseRevocationList([]byte(crl))
		if err != nil || len(list.RevokedCertificateEntries) != 1 || list.RevokedCertificateEntries[0].SerialNumber.String() != serial {
			t.Errorf("CRL from the running CA (%v): %v %+v", pw, err, list)
		}
	}

	// SIGHUP reloads the configuration.
	cfg, err := os.ReadFile(p.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	cfg = bytes.Replace(cfg, []byte("      - gitlab-runner\n"), []byte("      - gitlab-runner\n      - builder\n"), 1)
	if err := os.WriteFile(p.cfgPath, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	p.signal(syscall.SIGHUP)
	p.notify.WaitFor(t, "RELOADING=1")
	p.notify.WaitFor(t, "READY=1")
	status, builder, _ := p.sign(p.signRequest("builder"))
	if status != http.StatusCreated {
		t.Errorf("after reload: %d %s", status, builder)
	}

	// SIGTERM: a clean exit, and the database is free again.
	p.signal(syscall.SIGTERM)
	if err := p.wait(); err != nil {
		t.Errorf("exit: %v\n%s", err, p.stderr.String())
	}
	if out := run(t, "ca", "list", "--dir", p.dir); strings.Count(out, "\n") != 3 || !strings.Contains(out, "revoked") {
		t.Errorf("list after stop:\n%s", out)
	}
	if out := run(t, "ca", "list", "--dir", p.dir, "--expiring", "8760h"); !strings.Contains(out, builder) || strings.Contains(out, serial) || strings.Count(out, "\n") != 2 {
		t.Errorf("list --expiring 8760h after stop: want %s only:\n%s", builder, out)
	}
	if out := run(t, "ca", "list", "--dir", p.dir, "--expiring", "1s"); strings.Count(out, "\n") != 1 {
		t.Errorf("list --expiring 1s after stop: want none:\n%s", out)
	}
}

// TestCACrashSafety kills the CA with SIGKILL in the middle of a burst of
// signing requests, several times: every certificate a client received
// must be in the store, and the store must open cleanly each time.
func TestCACrashSafety(t *testing.T) {
	if testing.Short() {
		t.Skip("kills and restarts a CA several times")
	}
	p := newCAProcess(t)
	var received []string
	for round := range 3 {
		p.start()
		bodies := make(chan []byte, 4096)
		go func() {
			for range 4096 {
				bodies <- p.signRequest("gitlab-runner")
			}
			close(bodies)
		}()
		// The kill comes once the clients hold a number of certificates
		// that grows each round: an event, not a delay, so it falls in
		// the middle of the burst on any machine.
		var (
			mu     sync.Mutex
			got    []string
			wg     sync.WaitGroup
			enough = make(chan struct{})
			once   sync.Once
		)
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for body := range bodies {
					status, serial, err := p.sign(body)
					if err != nil {
						return // the server died mid-request
					}
					if status == http.StatusCreated {
						mu.Lock()
						got = append(got, serial)
						if len(got) >= 50*(round+1) {
							once.Do(func() { close(enough) })
						}
						mu.Unlock()
					}
				}
			}()
		}
		<-enough
		p.signal(syscall.SIGKILL)
		p.wait()
		wg.Wait()
		if len(got) == 0 {
			t.Fatalf("round %d: no certificate was issued before the kill\n%s", round, p.stderr.String())
		}
		received = append(received, got...)
		t.Logf("round %d: %d certificates received before SIGKILL", round, len(got))
	}
	// The CA starts again after the last crash, then the store is read.
	p.start()
	p.signal(syscall.SIGTERM)
	if err := p.wait(); err != nil {
		t.Fatalf("restart after the crashes: %v\n%s", err, p.stderr.String())
	}
	db, err := store.OpenBolt(filepath.Join(p.dir, ca.DatabaseFile), store.BoltOptions{ReadOnly: true})
	if err != nil {
		t.Fatalf("the store does not open after the crashes: %v", err)
	}
	defer db.Close()
	for _, serial := range received {
		if _, err := db.Certificate(serial); err != nil {
			t.Errorf("certificate %s was received by a client but is not in the store: %v", serial, err)
		}
	}
}
