package stepca_test

import (
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keyless-dev/keyless/interop/stepca/cabench"

	"github.com/keyless-dev/keyless/internal/testkit"
	"github.com/smallstep/certificates/api"
	"github.com/smallstep/certificates/authority/config"
	"github.com/smallstep/certificates/ca"
	"go.step.sm/crypto/jose"
	"go.step.sm/crypto/pemutil"
)

// stepDefaultMaxTLS is step-ca's own maximum TLS certificate lifetime
// (config.GlobalProvisionerClaims): what a CA whose claims nobody raised
// allows.
const stepDefaultMaxTLS = 24 * time.Hour

// startStepCA runs a real step-ca v0.30.2 inside the test process, made
// as `step ca init` makes one: a P-256 root and intermediate (the
// intermediate key encrypted with the password), a JWK provisioner named
// "admin" whose private key is stored encrypted with the same password, a
// bbolt database, dnsNames 127.0.0.1 and localhost, on 127.0.0.1 and a free
// port. maxTLS is the provisioner's maxTLSCertDuration claim; with
// stepDefaultMaxTLS the provisioner has no claims at all, so step's own
// defaults apply. The CA stops when the test ends.
func startStepCA(t *testing.T, maxTLS time.Duration) *testCA {
	t.Helper()
	tmp := t.TempDir()
	c := &testCA{
		Dir:          filepath.Join(tmp, "step"),
		PasswordFile: filepath.Join(tmp, "password"),
		Password:     []byte("step-" + strconv.FormatInt(time.Now().UnixNano(), 36)),
	}
	for _, d := range []string{"certs", "secrets", "config", "db"} {
		if err := os.MkdirAll(filepath.Join(c.Dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(c.PasswordFile, c.Password, 0o600); err != nil {
		t.Fatal(err)
	}

	// The PKI, with the shape `step ca init` gives it: a 10-year root with
	// pathlen 1 and an intermediate with pathlen 0, both P-256.
	rootKey, root := newCACert(t, "Interop Step Root CA", nil, nil, 1)
	interKey, inter := newCACert(t, "Interop Step Intermediate CA", root, rootKey, 0)
	c.Root, c.Intermediate = root, inter
	c.RootFile = writePEM(t, filepath.Join(c.Dir, "certs"), "root_ca.crt", root.Raw)
	interFile := writePEM(t, filepath.Join(c.Dir, "certs"), "intermediate_ca.crt", inter.Raw)
	block, err := pemutil.Serialize(interKey, pemutil.WithPassword(c.Password))
	if err != nil {
		t.Fatalf("encrypting the intermediate key: %v", err)
	}
	interKeyFile := filepath.Join(c.Dir, "secrets", "intermediate_ca_key")
	if err := os.WriteFile(interKeyFile, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(root.Raw)
	c.Fingerprint = hex.EncodeToString(sum[:])

	// The provisioner: its public JWK in the configuration, its private
	// JWK there too as a JWE encrypted with the password
	// (PBES2-HS256+A128KW), which clients fetch and decrypt.
	jwk, err := jose.GenerateJWK("EC", "P-256", "ES256", "sig", "", 0)
	if err != nil {
		t.Fatalf("generating the provisioner key: %v", err)
	}
	jwe, err := jose.EncryptJWK(jwk, c.Password)
	if err != nil {
		t.Fatalf("encrypting the provisioner key: %v", err)
	}
	encryptedKey, err := jwe.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	pub := jwk.Public()
	prov := map[string]any{
		"type":         "JWK",
		"name":         provisionerName,
		"key":          &pub,
		"encryptedKey": encryptedKey,
	}
	if maxTLS != stepDefaultMaxTLS {
		prov["claims"] = map[string]any{
			"maxTLSCertDuration":     maxTLS.String(),
			"defaultTLSCertDuration": "24h",
		}
	}

	addr := testkit.Addr(t)
	c.URL = "https://" + addr
	cfgFile := filepath.Join(c.Dir, "config", "ca.json")
	cfgJSON, err := json.MarshalIndent(map[string]any{
		"root":     c.RootFile,
		"crt":      interFile,
		"key":      interKeyFile,
		"address":  addr,
		"dnsNames": []string{"127.0.0.1", "localhost"},
		"db": map[string]any{
			"type":       "bbolt",
			"dataSource": filepath.Join(c.Dir, "db", "bolt.db"),
		},
		"authority": map[string]any{
			"provisioners": []any{prov},
		},
		"tls": map[string]any{
			"cipherSuites":  []string{"TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"},
			"minVersion":    1.2,
			"maxVersion":    1.3,
			"renegotiation": false,
		},
	}, "", "\t")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfgFile, cfgJSON, 0o600); err != nil {
		t.Fatal(err)
	}

	// As step-ca's main does: load, then build the CA with the password
	// for the intermediate key, then Run.
	cfg, err := config.LoadConfiguration(cfgFile)
	if err != nil {
		t.Fatalf("loading the step-ca configuration: %v", err)
	}
	logs := captureStepLog(t)
	srv, err := ca.New(cfg, ca.WithConfigFile(cfgFile), ca.WithPassword(c.Password), ca.WithQuiet(true))
	if err != nil {
		t.Fatalf("step-ca ca.New: %v\nstep-ca log:\n%s", err, logs.String())
	}
	exited := make(chan error, 1)
	go func() { exited <- srv.Run() }()
	stopped := false
	t.Cleanup(func() {
		if stopped {
			return
		}
		// Stop shuts the HTTPS server down (requests in flight finish),
		// then Run returns http.ErrServerClosed; the database is closed.
		if err := srv.Stop(); err != nil {
			t.Errorf("stopping step-ca: %v", err)
		}
		select {
		case err := <-exited:
			if !errors.Is(err, http.ErrServerClosed) {
				t.Errorf("step-ca Run returned %v after Stop, want http.ErrServerClosed", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("step-ca Run did not return within 30s of Stop")
		}
		if t.Failed() {
			t.Logf("step-ca log:\n%s", logs.String())
		}
	})

	// Ready when /health answers over TLS verified against the root.
	roots := x509.NewCertPool()
	roots.AddCert(root)
	hc := &http.Client{
		Timeout:   5 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}},
	}
	defer hc.CloseIdleConnections()
	// step-ca runs in this process and announces nothing: poll it.
	testkit.WaitFor(t, 30*time.Second, "step-ca at "+c.URL+" to be healthy", func() (bool, string) {
		select {
		case err := <-exited:
			// Run stops the CA itself when it cannot start.
			stopped = true
			t.Fatalf("step-ca stopped before serving: %v\nstep-ca log:\n%s", err, logs.String())
		default:
		}
		resp, err := hc.Get(c.URL + "/health")
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, fmt.Sprintf("HTTP %d", resp.StatusCode)
	})
	return c
}

// newCACert is cabench.NewCACert, failing the test on error.
func newCACert(t *testing.T, cn string, parent *x509.Certificate, parentKey *ecdsa.PrivateKey, maxPathLen int) (*ecdsa.PrivateKey, *x509.Certificate) {
	t.Helper()
	key, cert, err := cabench.NewCACert(cn, parent, parentKey, maxPathLen)
	if err != nil {
		t.Fatal(err)
	}
	return key, cert
}

// captureStepLog sends the standard logger, which step-ca writes to, into a
// buffer shown when the test fails, and restores it when the test ends.
// The tests in this package do not run in parallel.
func captureStepLog(t *testing.T) *testkit.Buffer {
	t.Helper()
	buf := new(testkit.Buffer)
	prevOut, prevFlags := log.Writer(), log.Flags()
	log.SetOutput(buf)
	t.Cleanup(func() {
		log.SetOutput(prevOut)
		log.SetFlags(prevFlags)
	})
	return buf
}

// startKeylessCA is startCA with the provisioner's maxDuration set to
// maxTLS in config/ca.yaml before `keyless ca serve` starts.
func startKeylessCA(t *testing.T, maxTLS time.Duration) *testCA {
	t.Helper()
	c := initCA(t)
	cfgFile := filepath.Join(c.Dir, "config", "ca.yaml")
	b, err := os.ReadFile(cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	const line = "maxDuration: 168h0m0s"
	if strings.Count(string(b), line) != 1 {
		t.Fatalf("config/ca.yaml of `keyless ca init` has no single line %q to change:\n%s", line, b)
	}
	b = []byte(strings.Replace(string(b), line, "maxDuration: "+maxTLS.String(), 1))
	if err := os.WriteFile(cfgFile, b, 0o600); err != nil {
		t.Fatal(err)
	}
	c.serve(t)
	return c
}

// caStarters are the CAs every keyless client test runs against: the real
// step-ca, in process, and `keyless ca serve`, as a subprocess.
var caStarters = []struct {
	name  string
	start func(t *testing.T, maxTLS time.Duration) *testCA
}{
	{"step-ca", startStepCA},
	{"keyless-ca", startKeylessCA},
}

// eachCA runs body once against each CA, started with a maximum TLS
// certificate lifetime of maxTLS.
func eachCA(t *testing.T, maxTLS time.Duration, body func(t *testing.T, c *testCA)) {
	t.Helper()
	for _, s := range caStarters {
		t.Run(s.name, func(t *testing.T) {
			body(t, s.start(t, maxTLS))
		})
	}
}

// TestStepCAHarness checks the in-process step-ca with smallstep's own
// client before keyless is tested against it: bootstrap by fingerprint, a
// certificate from the provisioner password, 168h allowed by the raised
// claim and refused by step's default, renewal over mTLS.
func TestStepCAHarness(t *testing.T) {
	t.Run("168h", func(t *testing.T) {
		c := startStepCA(t, 168*time.Hour)
		if fp, err := c.client(t).RootFingerprint(); err != nil || fp != c.Fingerprint {
			t.Fatalf("RootFingerprint() = %q, %v; want %s", fp, err, c.Fingerprint)
		}
		p := c.provisioner(t)
		sign, key := c.issue(t, p)
		c.checkChain(t, sign)
		if life := lifetime(sign.ServerPEM.Certificate); life < 24*time.Hour || life > 24*time.Hour+2*time.Minute {
			t.Errorf("default lifetime %v, want 24h", life)
		}

		ott, err := p.Token(runner)
		if err != nil {
			t.Fatal(err)
		}
		csr, _ := newCSR(t, runner)
		long, err := p.Sign(signRequest(t, csr, ott, "168h"))
		if err != nil {
			t.Fatalf("POST /sign notAfter 168h: %v (status %d)", err, statusOf(err))
		}
		if life := lifetime(long.ServerPEM.Certificate); life < 168*time.Hour || life > 168*time.Hour+2*time.Minute {
			t.Errorf("lifetime %v, want 168h", life)
		}

		cl, tr := c.mTLS(t, sign, key)
		renewed, err := cl.Renew(tr)
		if err != nil {
			t.Fatalf("POST /renew over mTLS: %v (status %d)", err, statusOf(err))
		}
		c.checkRenewed(t, sign.ServerPEM.Certificate, renewed)
	})
	t.Run("default-24h", func(t *testing.T) {
		c := startStepCA(t, stepDefaultMaxTLS)
		p := c.provisioner(t)
		ott, err := p.Token(runner)
		if err != nil {
			t.Fatal(err)
		}
		csr, _ := newCSR(t, runner)
		_, err = p.Sign(signRequest(t, csr, ott, "168h"))
		if err == nil {
			t.Fatal("step-ca with default claims signed a 168h certificate")
		}
		if s := statusOf(err); s != http.StatusForbidden || !strings.Contains(err.Error(), "24h") {
			t.Errorf("POST /sign notAfter 168h: status %d, %v; want 403 naming 24h", s, err)
		}
		t.Logf("step-ca refuses 168h: %v", err)
	})
}

// signRequest is a sign request with notAfter given as a duration, as
// `step ca certificate --not-after` sends it.
func signRequest(t *testing.T, csr *api.CertificateRequest, ott, notAfter string) *api.SignRequest {
	t.Helper()
	na, err := api.ParseTimeDuration(notAfter)
	if err != nil {
		t.Fatal(err)
	}
	return &api.SignRequest{CsrPEM: *csr, OTT: ott, NotAfter: na}
}

func lifetime(c *x509.Certificate) time.Duration { return c.NotAfter.Sub(c.NotBefore) }
