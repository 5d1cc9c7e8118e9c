package caapi_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/keyless-dev/keyless/internal/ca"
	"github.com/keyless-dev/keyless/internal/ca/catest"
	"github.com/keyless-dev/keyless/internal/caproto"
	"github.com/keyless-dev/keyless/internal/pki"
	"github.com/keyless-dev/keyless/internal/pki/pkitest"
	"github.com/keyless-dev/keyless/internal/store"
	"github.com/keyless-dev/keyless/internal/testkit"
)

// env is a CA behind HTTPS (catest), on a fake clock, with two
// provisioners: "admin" (any name) and "runners" (gitlab-runner and
// gitlab-runner-*, at most 168h).
type env struct {
	t          testing.TB
	root       *pkitest.CA
	inter      *pkitest.CA
	auth       *ca.Authority
	store      store.Store
	url        string
	client     *http.Client
	keys       [2]*jose.JSONWebKey
	logs       *testkit.Buffer
	configYAML []byte // the configuration the CA started with
	clock      *testkit.Clock
}

func (e *env) now() time.Time { return e.clock.Now() }

func (e *env) advance(d time.Duration) { e.clock.Advance(d) }

type envOptions struct {
	store          store.Store
	renewAfter     string // admin's renewAfterExpiry
	disableRenewal bool
}

func newEnv(t testing.TB, o envOptions) *env {
	t.Helper()
	e := &env{t: t, logs: &testkit.Buffer{}, clock: testkit.NewClock(time.Now().Truncate(time.Second)), store: o.store}
	if e.store == nil {
		e.store = store.NewMemory()
	}
	c := catest.Start(t, catest.Options{Clock: e.clock, Store: e.store, RenewAfterExpiry: o.renewAfter, DisableRenewal: o.disableRenewal,
		Logger: slog.New(slog.NewTextHandler(e.logs, nil))})
	e.root, e.inter, e.auth, e.url, e.keys, e.configYAML = c.Root, c.Intermediate, c.Authority, c.URL, c.Keys, c.ConfigYAML
	e.client = e.clientWith(nil)
	return e
}

// clientWith trusts the CA's root and presents cert (mTLS) when given.
func (e *env) clientWith(cert *tls.Certificate) *http.Client {
	pool := x509.NewCertPool()
	pool.AddCert(e.root.Cert)
	// The CA's TLS certificate is made on the fake clock.
	cfg := &tls.Config{RootCAs: pool, Time: e.now}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}
}

// token makes a one-time token; zero options give a sign token for
// gitlab-runner from admin.
type tokenOpts struct {
	prov     int // 0 admin, 1 runners
	name     string
	sub      string
	sans     []string
	aud      string
	now      time.Time
	lifetime time.Duration
}

func (e *env) token(o tokenOpts) string {
	e.t.Helper()
	names := []string{"admin", "runners"}
	if o.name == "" {
		o.name = names[o.prov]
	}
	if o.sub == "" {
		o.sub = "gitlab-runner"
	}
	if o.aud == "" {
		o.aud = e.url + "/1.0/sign"
	}
	if o.now.IsZero() {
		o.now = e.now()
	}
	tok, err := caproto.NewToken(caproto.TokenOptions{Provisioner: o.name, Key: e.keys[o.prov], Subject: o.sub, SANs: o.sans,
		Audience: o.aud, Now: o.now, Lifetime: o.lifetime})
	if err != nil {
		e.t.Fatalf("token: %v", err)
	}
	return tok
}

// csr makes a key and a CSR for cn with the given DNS names.
func csr(t testing.TB, cn string, dns ...string) (crypto.Signer, string) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("%v", err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}, DNSNames: dns}, key)
	if err != nil {
		t.Fatalf("%v", err)
	}
	return key, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
}

type reply struct {
	status  int
	message string
	crt     *x509.Certificate
	chain   []*x509.Certificate
	raw     []byte
}

func (e *env) post(client *http.Client, path string, body any, header http.Header) reply {
	e.t.Helper()
	var data []byte
	switch b := body.(type) {
	case string:
		data = []byte(b)
	default:
		var err error
		if data, err = json.Marshal(b); err != nil {
			e.t.Fatalf("%v", err)
		}
	}
	req, err := http.NewRequest(http.MethodPost, e.url+path, bytes.NewReader(data))
	if err != nil {
		e.t.Fatalf("%v", err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		e.t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := reply{status: resp.StatusCode, raw: raw}
	var out struct {
		Crt       string   `json:"crt"`
		CA        string   `json:"ca"`
		CertChain []string `json:"certChain"`
		Status    any      `json:"status"`
		Message   string   `json:"message"`
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		e.t.Fatalf("POST %s answered %d with non-JSON %q", path, resp.StatusCode, raw)
	}
	r.message = out.Message
	if code, _ := out.Status.(float64); resp.StatusCode >= 400 && int(code) != resp.StatusCode {
		e.t.Errorf("error body status %d differs from HTTP status %d", out.Status, resp.StatusCode)
	}
	if out.Crt != "" {
		certs, err := pki.ParseCertificates([]byte(out.Crt))
		if err != nil {
			e.t.Fatalf("crt: %v", err)
		}
		r.crt = certs[0]
		for _, c := range out.CertChain {
			cs, err := pki.ParseCertificates([]byte(c))
			if err != nil {
				e.t.Fatalf("certChain: %v", err)
			}
			r.chain = append(r.chain, cs...)
		}
	}
	return r
}

// sign asks for a certificate for cn with a fresh token and returns it
// with its key as a tls.Certificate for mTLS.
func (e *env) sign(cn string) (*x509.Certificate, *tls.Certificate) {
	e.t.Helper()
	return e.signFor(cn, "")
}

// signFor is sign with a notAfter ("1h", or "" for the default).
func (e *env) signFor(cn, notAfter string) (*x509.Certificate, *tls.Certificate) {
	e.t.Helper()
	key, req := csr(e.t, cn)
	r := e.post(e.client, "/sign", map[string]string{"csr": req, "ott": e.token(tokenOpts{sub: cn}), "notAfter": notAfter}, nil)
	if r.status != http.StatusCreated {
		e.t.Fatalf("sign %s: %d %s", cn, r.status, r.message)
	}
	return r.crt, &tls.Certificate{Certificate: [][]byte{r.crt.Raw, e.inter.Cert.Raw}, PrivateKey: key, Leaf: r.crt}
}

func expect(t testing.TB, r reply, status int, msg string) {
	t.Helper()
	if r.status != status || !strings.Contains(r.message, msg) {
		t.Errorf("got %d %q, want %d with %q", r.status, r.message, status, msg)
	}
}
