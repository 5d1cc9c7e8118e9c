package stepca_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyless-dev/keyless/internal/testkit"
	"github.com/smallstep/certificates/api"
	"github.com/smallstep/certificates/ca"
	"go.step.sm/crypto/pemutil"
)

// These tests drive keyless's client commands (bootstrap, certificate,
// renew, revoke) as a subprocess, the way a runner uses them, against each
// CA in caStarters: the real step-ca and `keyless ca serve`.

// keylessCLI runs keyless with a HOME and XDG_CONFIG_HOME of its own, so
// what `keyless bootstrap` stores is the test's alone.
type keylessCLI struct {
	bin       string
	configDir string // $XDG_CONFIG_HOME
}

func newKeylessCLI(t *testing.T) *keylessCLI {
	t.Helper()
	bin := testkit.Keyless(t)
	requireClientCommands(t, bin)
	return &keylessCLI{bin: bin, configDir: filepath.Join(t.TempDir(), "config")}
}

// stored is the keyless configuration directory bootstrap writes to.
func (k *keylessCLI) stored() string { return filepath.Join(k.configDir, "keyless") }

type runResult struct {
	args           []string
	stdout, stderr string
	code           int
}

func (r runResult) String() string {
	return fmt.Sprintf("keyless %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(r.args, " "), r.code, r.stdout, r.stderr)
}

// run runs keyless with args and no stdin, for at most two minutes.
func (k *keylessCLI) run(t *testing.T, args ...string) runResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, k.bin, args...)
	home := filepath.Dir(k.configDir)
	cmd.Env = []string{"HOME=" + home, "XDG_CONFIG_HOME=" + k.configDir}
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		// Only the test decides keyless's flags and config: no KEYLESS_*
		// variable from outside, no step configuration.
		if name == "HOME" || name == "XDG_CONFIG_HOME" || name == "STEPPATH" || strings.HasPrefix(name, "KEYLESS_") {
			continue
		}
		cmd.Env = append(cmd.Env, kv)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := runResult{args: args, stdout: stdout.String(), stderr: stderr.String()}
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		r.code = exit.ExitCode()
	default:
		t.Fatalf("running keyless %s: %v", strings.Join(args, " "), err)
	}
	if ctx.Err() != nil {
		t.Fatalf("keyless %s did not finish within 2 minutes\n%s", strings.Join(args, " "), r)
	}
	return r
}

// ok runs keyless and fails the test at once unless it exits 0.
func (k *keylessCLI) ok(t *testing.T, args ...string) runResult {
	t.Helper()
	r := k.run(t, args...)
	if r.code != 0 {
		t.Fatalf("want exit 0; %s", r)
	}
	return r
}

// fail runs keyless and reports an error unless it exits non-zero.
func (k *keylessCLI) fail(t *testing.T, args ...string) runResult {
	t.Helper()
	r := k.run(t, args...)
	if r.code == 0 {
		t.Errorf("want a non-zero exit; %s", r)
	}
	return r
}

func (k *keylessCLI) bootstrap(t *testing.T, c *testCA) {
	t.Helper()
	k.ok(t, "bootstrap", "--ca-url", c.URL, "--fingerprint", c.Fingerprint)
}

// enroll gets a certificate for runner with the provisioner password,
// from the CA bootstrap stored.
func (k *keylessCLI) enroll(t *testing.T, c *testCA, crt, key string, extra ...string) runResult {
	t.Helper()
	args := append([]string{"certificate", runner, crt, key, "--provisioner", provisionerName, "--provisioner-password-file", c.PasswordFile}, extra...)
	return k.ok(t, args...)
}

// enrolledRunner is a keyless that bootstrapped c and enrolled runner
// into a fresh directory, with the files' paths.
func enrolledRunner(t *testing.T, c *testCA) (k *keylessCLI, crt, key string) {
	t.Helper()
	k = newKeylessCLI(t)
	k.bootstrap(t, c)
	dir := t.TempDir()
	crt, key = filepath.Join(dir, "runner.crt"), filepath.Join(dir, "runner.key")
	k.enroll(t, c, crt, key)
	return k, crt, key
}

var (
	commandsOnce sync.Once
	missing      []string
)

// requireClientCommands fails the test when the keyless binary lacks one
// of the client commands under test.
func requireClientCommands(t *testing.T, bin string) {
	t.Helper()
	commandsOnce.Do(func() {
		for _, c := range []string{"bootstrap", "certificate", "renew", "revoke"} {
			out, err := exec.Command(bin, c, "--help").CombinedOutput()
			if err != nil || strings.Contains(string(out), "unknown command") {
				missing = append(missing, c)
			}
		}
	})
	if len(missing) > 0 {
		t.Fatalf("keyless has no command %s (the client of issue 5)", strings.Join(missing, ", "))
	}
}

// pair is a certificate file and a key file as keyless wrote them.
type pair struct {
	crtPEM, keyPEM []byte
	certs          []*x509.Certificate // the CRT file, in order
	leaf           *x509.Certificate
	tls            tls.Certificate
}

// readPair reads crt and key and checks that they parse and match.
func readPair(t *testing.T, crt, key string) pair {
	t.Helper()
	var p pair
	var err error
	if p.crtPEM, err = os.ReadFile(crt); err != nil {
		t.Fatal(err)
	}
	if p.keyPEM, err = os.ReadFile(key); err != nil {
		t.Fatal(err)
	}
	p.certs = parseCerts(t, crt, p.crtPEM)
	p.leaf = p.certs[0]
	if p.tls, err = tls.X509KeyPair(p.crtPEM, p.keyPEM); err != nil {
		t.Fatalf("%s and %s are not a matching certificate and key: %v", crt, key, err)
	}
	return p
}

func parseCerts(t *testing.T, file string, b []byte) []*x509.Certificate {
	t.Helper()
	var certs []*x509.Certificate
	for rest := b; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			t.Fatalf("%s holds a PEM block %q, want only CERTIFICATE", file, block.Type)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		t.Fatalf("%s holds no PEM certificate", file)
	}
	return certs
}

// checkIssued checks a pair keyless wrote: the key file is 0600, the CRT
// file is the leaf then the CA's intermediate, and the leaf verifies for
// client authentication against the root with Go's verifier.
func (c *testCA) checkIssued(t *testing.T, key string, p pair) {
	t.Helper()
	if fi, err := os.Stat(key); err != nil {
		t.Fatal(err)
	} else if m := fi.Mode().Perm(); m != 0o600 {
		t.Errorf("key file %s has mode %v, want 0600", key, m)
	}
	if len(p.certs) != 2 || !bytes.Equal(p.certs[1].Raw, c.Intermediate.Raw) {
		t.Errorf("CRT file holds %d certificates, want the leaf then the CA's intermediate", len(p.certs))
	}
	c.verifyLeaf(t, p.leaf)
}

func (c *testCA) verifyLeaf(t *testing.T, leaf *x509.Certificate) {
	t.Helper()
	roots, inters := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(c.Root)
	inters.AddCert(c.Intermediate)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inters, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("Go's verifier refuses the leaf for clientAuth against the root: %v", err)
	}
}

// signResponse presents a pair on disk as smallstep's client types
// present a sign or renew answer.
func signResponse(p pair) *api.SignResponse {
	r := &api.SignResponse{ServerPEM: api.NewCertificate(p.leaf)}
	for _, c := range p.certs {
		r.CertChainPEM = append(r.CertChainPEM, api.NewCertificate(c))
	}
	if len(p.certs) > 1 {
		r.CaPEM = api.NewCertificate(p.certs[1])
	}
	return r
}

func wrongFingerprint(fp string) string {
	b := []byte(fp)
	if b[0] == '0' {
		b[0] = '1'
	} else {
		b[0] = '0'
	}
	return string(b)
}

func noFile(t *testing.T, files ...string) {
	t.Helper()
	for _, f := range files {
		if _, err := os.Stat(f); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s exists after a refusal (stat: %v)", f, err)
		}
	}
}

// TestKeylessBootstrap: keyless bootstrap trusts the CA from the root
// fingerprint alone and refuses a wrong one.
func TestKeylessBootstrap(t *testing.T) {
	eachCA(t, 168*time.Hour, func(t *testing.T, c *testCA) {
		k := newKeylessCLI(t)

		r := k.fail(t, "bootstrap", "--ca-url", c.URL, "--fingerprint", wrongFingerprint(c.Fingerprint))
		if !strings.Contains(strings.ToLower(r.stderr), "fingerprint") {
			t.Errorf("refusal of a wrong fingerprint does not mention the fingerprint; %s", r)
		}
		noFile(t, filepath.Join(k.stored(), "root_ca.crt"), filepath.Join(k.stored(), "ca.yaml"))
		t.Logf("wrong fingerprint:\n%s", r.stderr)

		k.bootstrap(t, c)
		rootFile := filepath.Join(k.stored(), "root_ca.crt")
		if got := readCert(t, rootFile); !bytes.Equal(got.Raw, c.Root.Raw) {
			t.Errorf("%s is not the CA's root", rootFile)
		}
		cfg, err := os.ReadFile(filepath.Join(k.stored(), "ca.yaml"))
		if err != nil {
			t.Fatalf("keyless bootstrap stored no ca.yaml: %v", err)
		}
		if !strings.Contains(string(cfg), c.URL) {
			t.Errorf("ca.yaml does not hold the CA URL %s:\n%s", c.URL, cfg)
		}
	})
}

// TestKeylessCertificatePassword: keyless certificate with the provisioner
// password, from what bootstrap stored: the provisioner's encrypted key is
// fetched and decrypted, and the token keyless makes is accepted.
func TestKeylessCertificatePassword(t *testing.T) {
	eachCA(t, 168*time.Hour, func(t *testing.T, c *testCA) {
		k := newKeylessCLI(t)
		k.bootstrap(t, c)
		dir := t.TempDir()
		crt, key := filepath.Join(dir, "runner.crt"), filepath.Join(dir, "runner.key")
		const extra = "runner.interop.test"
		before := time.Now()
		k.enroll(t, c, crt, key, "--san", runner, "--san", extra)
		p := readPair(t, crt, key)
		c.checkIssued(t, key, p)
		if p.leaf.Subject.CommonName != runner {
			t.Errorf("CN %q, want %q", p.leaf.Subject.CommonName, runner)
		}
		if got := slices.Sorted(slices.Values(p.leaf.DNSNames)); !slices.Equal(got, []string{runner, extra}) {
			t.Errorf("DNS SANs %v, want [%s %s]", got, runner, extra)
		}
		if life := lifetime(p.leaf); life < 24*time.Hour || life > 24*time.Hour+2*time.Minute {
			t.Errorf("lifetime %v without --not-after, want the CA's default 24h", life)
		}
		if p.leaf.NotAfter.Before(before.Add(24*time.Hour - 2*time.Minute)) {
			t.Errorf("NotAfter %v, want about %v", p.leaf.NotAfter, before.Add(24*time.Hour))
		}

		t.Run("existing-files", func(t *testing.T) {
			r := k.fail(t, "certificate", runner, crt, key, "--provisioner", provisionerName, "--provisioner-password-file", c.PasswordFile)
			if !strings.Contains(r.stderr, "--force") {
				t.Errorf("refusing to replace files does not point to --force; %s", r)
			}
			if now := readPair(t, crt, key); !bytes.Equal(now.crtPEM, p.crtPEM) || !bytes.Equal(now.keyPEM, p.keyPEM) {
				t.Errorf("files changed without --force")
			}
			k.enroll(t, c, crt, key, "--force")
			now := readPair(t, crt, key)
			c.checkIssued(t, key, now)
			if now.leaf.SerialNumber.Cmp(p.leaf.SerialNumber) == 0 || bytes.Equal(now.keyPEM, p.keyPEM) {
				t.Errorf("--force did not replace the certificate and key")
			}
		})

		t.Run("chain-file", func(t *testing.T) {
			crt, key, chain := filepath.Join(dir, "leaf.crt"), filepath.Join(dir, "leaf.key"), filepath.Join(dir, "chain.crt")
			k.enroll(t, c, crt, key, "--chain-file", chain)
			p := readPair(t, crt, key)
			if len(p.certs) != 1 {
				t.Errorf("with --chain-file the CRT file holds %d certificates, want the leaf alone", len(p.certs))
			}
			b, err := os.ReadFile(chain)
			if err != nil {
				t.Fatal(err)
			}
			if got := parseCerts(t, chain, b); len(got) != 1 || !bytes.Equal(got[0].Raw, c.Intermediate.Raw) {
				t.Errorf("the chain file holds %d certificates, want the intermediate alone", len(got))
			}
			c.verifyLeaf(t, p.leaf)
		})

		t.Run("rsa", func(t *testing.T) {
			crt, key := filepath.Join(dir, "rsa.crt"), filepath.Join(dir, "rsa.key")
			k.enroll(t, c, crt, key, "--kty", "RSA", "--size", "2048")
			p := readPair(t, crt, key)
			c.checkIssued(t, key, p)
			if k, ok := p.leaf.PublicKey.(*rsa.PublicKey); !ok || k.N.BitLen() != 2048 {
				t.Errorf("--kty RSA --size 2048 gave a %T key", p.leaf.PublicKey)
			}
		})

		t.Run("wrong-password", func(t *testing.T) {
			pw := filepath.Join(t.TempDir(), "pw")
			if err := os.WriteFile(pw, []byte("not the password"), 0o600); err != nil {
				t.Fatal(err)
			}
			crt, key := filepath.Join(dir, "wrong.crt"), filepath.Join(dir, "wrong.key")
			r := k.fail(t, "certificate", runner, crt, key, "--provisioner", provisionerName, "--provisioner-password-file", pw)
			noFile(t, crt, key)
			t.Logf("wrong provisioner password:\n%s", r.stderr)
		})
	})
}

// TestKeylessCertificateToken: keyless certificate with a token made by
// smallstep's own client, given the CA URL and root on the command line
// instead of through bootstrap.
func TestKeylessCertificateToken(t *testing.T) {
	eachCA(t, 168*time.Hour, func(t *testing.T, c *testCA) {
		k := newKeylessCLI(t)
		tok, err := c.provisioner(t).Token(runner)
		if err != nil {
			t.Fatalf("smallstep's provisioner token: %v", err)
		}
		dir := t.TempDir()
		// A token is a bearer secret: keyless takes it from a file only
		// this user can read, never from the command line.
		tokFile := filepath.Join(dir, "token")
		if err := os.WriteFile(tokFile, []byte(tok+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		crt, key := filepath.Join(dir, "runner.crt"), filepath.Join(dir, "runner.key")
		k.ok(t, "certificate", runner, crt, key, "--token-file", tokFile, "--ca-url", c.URL, "--root", c.RootFile)
		p := readPair(t, crt, key)
		c.checkIssued(t, key, p)
		if p.leaf.Subject.CommonName != runner || !slices.Equal(p.leaf.DNSNames, []string{runner}) {
			t.Errorf("CN %q DNS SANs %v, want %q and [%s]", p.leaf.Subject.CommonName, p.leaf.DNSNames, runner, runner)
		}

		// The token is single use; keyless says so without echoing it.
		crt2, key2 := filepath.Join(dir, "again.crt"), filepath.Join(dir, "again.key")
		r := k.fail(t, "certificate", runner, crt2, key2, "--token-file", tokFile, "--ca-url", c.URL, "--root", c.RootFile)
		if strings.Contains(r.stdout+r.stderr, tok) {
			t.Errorf("keyless printed the token")
		}
		noFile(t, crt2, key2)
		t.Logf("token reused:\n%s", r.stderr)
	})
}

// hintRaise matches a hint naming the setting that raises the maximum
// lifetime: maxTLSCertDuration on step-ca, maxDuration on keyless ca.
var hintRaise = regexp.MustCompile(`(?i)maxTLSCertDuration|maxDuration`)

// TestKeylessCertificateNotAfter: a 168h certificate from a CA that allows
// it; from one with step's default maximum (24h), an error that names the
// maximum and says how to raise it.
func TestKeylessCertificateNotAfter(t *testing.T) {
	t.Run("max-168h", func(t *testing.T) {
		eachCA(t, 168*time.Hour, func(t *testing.T, c *testCA) {
			k := newKeylessCLI(t)
			k.bootstrap(t, c)
			dir := t.TempDir()
			crt, key := filepath.Join(dir, "runner.crt"), filepath.Join(dir, "runner.key")
			k.enroll(t, c, crt, key, "--not-after", "168h")
			p := readPair(t, crt, key)
			c.checkIssued(t, key, p)
			if life := lifetime(p.leaf); life < 168*time.Hour || life > 168*time.Hour+2*time.Minute {
				t.Errorf("--not-after 168h gave a lifetime of %v", life)
			}
		})
	})
	t.Run("max-24h", func(t *testing.T) {
		eachCA(t, stepDefaultMaxTLS, func(t *testing.T, c *testCA) {
			k := newKeylessCLI(t)
			k.bootstrap(t, c)
			dir := t.TempDir()
			crt, key := filepath.Join(dir, "runner.crt"), filepath.Join(dir, "runner.key")
			r := k.fail(t, "certificate", runner, crt, key, "--provisioner", provisionerName, "--provisioner-password-file", c.PasswordFile, "--not-after", "168h")
			if !strings.Contains(r.stderr, "24h") {
				t.Errorf("the refusal does not name the CA's maximum, 24h; %s", r)
			}
			if !hintRaise.MatchString(r.stderr) {
				t.Errorf("the refusal does not say how to raise the maximum (maxTLSCertDuration / maxDuration); %s", r)
			}
			noFile(t, crt, key)
			t.Logf("keyless's refusal:\n%s", r.stderr)
		})
	})
}

// TestKeylessRenew: renewal over mTLS and with the x5c token, forced.
func TestKeylessRenew(t *testing.T) {
	eachCA(t, 168*time.Hour, func(t *testing.T, c *testCA) {
		k, crt, key := enrolledRunner(t, c)
		for _, method := range []string{"mtls", "token", "auto"} {
			t.Run(method, func(t *testing.T) {
				old := readPair(t, crt, key)
				k.ok(t, "renew", crt, key, "--method", method, "--force")
				renewed := readPair(t, crt, key)
				c.checkIssued(t, key, renewed)
				// Serial, subject, SANs, usages, key and lifetime.
				c.checkRenewed(t, old.leaf, signResponse(renewed))
				if bytes.Equal(renewed.crtPEM, old.crtPEM) {
					t.Errorf("%s was not replaced", crt)
				}
			})
		}
	})
}

// TestKeylessRenewWindow: without --force, keyless renews only inside the
// renewal window (the last third of the lifetime, or --expires-in).
func TestKeylessRenewWindow(t *testing.T) {
	eachCA(t, 168*time.Hour, func(t *testing.T, c *testCA) {
		k, crt, key := enrolledRunner(t, c)
		p := readPair(t, crt, key)
		opens := p.leaf.NotAfter.Add(-lifetime(p.leaf) / 3)

		r := k.ok(t, "renew", crt, key)
		if now := readPair(t, crt, key); !bytes.Equal(now.crtPEM, p.crtPEM) {
			t.Errorf("a fresh certificate was renewed without --force")
		}
		out := r.stdout + r.stderr
		if !mentionsTime(out, opens) {
			t.Errorf("the message does not say when the renewal window opens (%v); %s", opens, r)
		}
		t.Logf("keyless renew on a fresh certificate:\n%s", out)

		k.ok(t, "renew", crt, key, "--expires-in", "1h")
		if now := readPair(t, crt, key); !bytes.Equal(now.crtPEM, p.crtPEM) {
			t.Errorf("--expires-in 1h renewed a certificate with 24h left")
		}
		k.ok(t, "renew", crt, key, "--expires-in", "30h")
		now := readPair(t, crt, key)
		if now.leaf.SerialNumber.Cmp(p.leaf.SerialNumber) == 0 {
			t.Errorf("--expires-in 30h did not renew a certificate with 24h left")
		} else {
			c.checkRenewed(t, p.leaf, signResponse(now))
		}
	})
}

// mentionsTime reports whether s names the time at, to the minute, in UTC
// or local time in a usual layout, or the time left until it in hours.
func mentionsTime(s string, at time.Time) bool {
	for _, tt := range []time.Time{at.UTC(), at.Local()} {
		for _, layout := range []string{"2006-01-02T15:04", "2006-01-02 15:04", time.Stamp[:12], "Jan 2 15:04", "02 Jan 06 15:04"} {
			if strings.Contains(s, tt.Format(layout)) {
				return true
			}
		}
	}
	left := time.Until(at).Round(time.Hour)
	for _, d := range []time.Duration{left - time.Hour, left, left + time.Hour} {
		if regexp.MustCompile(fmt.Sprintf(`\b%dh`, int(d.Hours()))).MatchString(s) {
			return true
		}
	}
	return false
}

// TestKeylessRevoke: keyless revoke revokes a certificate with itself, and
// it no longer renews.
func TestKeylessRevoke(t *testing.T) {
	eachCA(t, 168*time.Hour, func(t *testing.T, c *testCA) {
		k, crt, key := enrolledRunner(t, c)
		p := readPair(t, crt, key)

		k.ok(t, "revoke", crt, key, "--reason", "key compromise")

		// The CA itself now refuses the certificate.
		cl, tr := c.mTLS(t, signResponse(p), p.tls.PrivateKey, ca.AddRootCA(c.Root))
		if _, err := cl.Renew(tr); err == nil {
			t.Errorf("after keyless revoke, smallstep's client still renews the certificate over mTLS")
		} else if s := statusOf(err); s != http.StatusUnauthorized {
			t.Errorf("after keyless revoke, renewing over mTLS: status %d (%v), want 401", s, err)
		}

		revoked := regexp.MustCompile(`(?i)revoked|401`)
		for _, method := range []string{"auto", "mtls", "token"} {
			r := k.fail(t, "renew", crt, key, "--force", "--method", method)
			if !revoked.MatchString(r.stderr) {
				t.Errorf("renewing a revoked certificate (--method %s): stderr mentions neither revoked nor 401; %s", method, r)
			}
			t.Logf("renewing the revoked certificate, --method %s:\n%s", method, r.stderr)
		}
		if now := readPair(t, crt, key); !bytes.Equal(now.crtPEM, p.crtPEM) || !bytes.Equal(now.keyPEM, p.keyPEM) {
			t.Errorf("a refused renewal changed the files")
		}
	})
}

// TestKeylessRenewBehindProxy: behind a TLS-terminating proxy the client
// certificate never reaches the CA, so --method mtls fails, --method token
// renews with the Bearer x5c token, and auto falls back to it.
func TestKeylessRenewBehindProxy(t *testing.T) {
	eachCA(t, 168*time.Hour, func(t *testing.T, c *testCA) {
		k, crt, key := enrolledRunner(t, c)
		proxy, bearers := c.startProxy(t)

		old := readPair(t, crt, key)
		r := k.fail(t, "renew", crt, key, "--force", "--method", "mtls", "--ca-url", proxy)
		t.Logf("--method mtls behind the proxy:\n%s", r.stderr)
		if n := bearers(); n != 0 {
			t.Errorf("--method mtls sent %d Authorization: Bearer requests", n)
		}
		if now := readPair(t, crt, key); !bytes.Equal(now.crtPEM, old.crtPEM) {
			t.Errorf("a failed renewal changed %s", crt)
		}
		for _, method := range []string{"token", "auto"} {
			t.Run(method, func(t *testing.T) {
				old := readPair(t, crt, key)
				before := bearers()
				k.ok(t, "renew", crt, key, "--force", "--method", method, "--ca-url", proxy)
				if bearers() == before {
					t.Errorf("--method %s renewed through the proxy without an Authorization: Bearer request", method)
				}
				renewed := readPair(t, crt, key)
				c.checkIssued(t, key, renewed)
				c.checkRenewed(t, old.leaf, signResponse(renewed))
			})
		}
	})
}

// startProxy serves a TLS-terminating reverse proxy to the CA on
// 127.0.0.1, as a load balancer in front of a CA does: client certificates
// stop there. Its server certificate, for 127.0.0.1, is signed with the
// CA's intermediate key (keyless ca issues client certificates only). It
// returns the proxy's URL and a count of the requests it forwarded with an
// Authorization: Bearer header.
func (c *testCA) startProxy(t *testing.T) (string, func() int) {
	t.Helper()
	signer, err := pemutil.Read(filepath.Join(c.Dir, "secrets", "intermediate_ca_key"), pemutil.WithPassword(c.Password))
	if err != nil {
		t.Fatalf("reading the intermediate key: %v", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
		SerialNumber: big.NewInt(now.UnixNano()),
		Subject:      pkix.Name{CommonName: "interop proxy"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    now.Add(-time.Minute),
		NotAfter:     now.Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, c.Intermediate, key.Public(), signer)
	if err != nil {
		t.Fatalf("signing the proxy's certificate with the intermediate key: %v", err)
	}
	cert := &tls.Certificate{Certificate: [][]byte{der, c.Intermediate.Raw}, PrivateKey: key}

	target, err := url.Parse(c.URL)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(c.Root)
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}
	var bearers atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") {
			bearers.Add(1)
		}
		rp.ServeHTTP(w, r)
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{*cert}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv.URL, func() int { return int(bearers.Load()) }
}
