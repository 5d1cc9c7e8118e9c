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
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/keyless-dev/keyless/internal/ca"
	"github.com/keyless-dev/keyless/internal/ca/caapi"
	"github.com/keyless-dev/keyless/internal/caproto"
	"github.com/keyless-dev/keyless/internal/pki"
	"github.com/keyless-dev/keyless/internal/pki/pkitest"
	"github.com/keyless-dev/keyless/internal/store"
)

const testPassword = "correct horse battery staple"

// provisionerKeys are made once per process: each costs a 600,000-round
// PBKDF2.
var (
	provOnce sync.Once
	provKeys [2]*caproto.ProvisionerKey
	provPriv [2]*jose.JSONWebKey
)

func provisionerKeys(t testing.TB) ([2]*caproto.ProvisionerKey, [2]*jose.JSONWebKey) {
	provOnce.Do(func() {
		for i := range provKeys {
			k, err := caproto.NewProvisionerKey([]byte(testPassword), nil)
			if err != nil {
				panic(err)
			}
			priv, err := caproto.DecryptProvisionerKey(k.EncryptedKey, []byte(testPassword))
			if err != nil {
				panic(err)
			}
			provKeys[i], provPriv[i] = k, priv
		}
	})
	return provKeys, provPriv
}

// env is a CA behind an httptest TLS server, with two provisioners:
// "admin" (any name) and "runners" (gitlab-runner and gitlab-runner-*,
// at most 168h).
type env struct {
	t      testing.TB
	root   *pkitest.CA
	inter  *pkitest.CA
	auth   *ca.Authority
	store  store.Store
	srv    *http.Server
	url    string
	client *http.Client
	keys   [2]*jose.JSONWebKey
	logs   *bytes.Buffer
	// configYAML is the configuration the CA started with.
	configYAML []byte
	mu         sync.Mutex
	clock      time.Time
}

func (e *env) now() time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.clock
}

func (e *env) advance(d time.Duration) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.clock = e.clock.Add(d)
}

type envOptions struct {
	store          store.Store
	renewAfter     string // admin's renewAfterExpiry
	disableRenewal bool
}

func newEnv(t testing.TB, o envOptions) *env {
	t.Helper()
	pub, priv := provisionerKeys(t)
	e := &env{t: t, keys: priv, logs: &bytes.Buffer{}, clock: time.Now().Truncate(time.Second)}
	e.root = pkitest.NewRoot(t, "caapi-root")
	e.inter = e.root.Intermediate(t, "caapi-int")
	keyJSON := func(k *caproto.ProvisionerKey) string {
		b, err := k.Public.MarshalJSON()
		if err != nil {
			t.Fatalf("%v", err)
		}
		return string(b)
	}
	extra := ""
	if o.renewAfter != "" {
		extra += "\n    renewAfterExpiry: " + o.renewAfter
	}
	if o.disableRenewal {
		extra += "\n    disableRenewal: true"
	}
	cfgYAML := fmt.Sprintf(`name: Test CA
address: 127.0.0.1:0
dnsNames: [127.0.0.1, localhost]
root: root.crt
crt: int.crt
key: int.key
db: db
provisioners:
  - name: admin
    type: JWK
    key: '%s'
    encryptedKey: %s
    allow: ["*"]%s
  - name: runners
    type: JWK
    key: '%s'
    encryptedKey: %s
    allow: [gitlab-runner, gitlab-runner-*]
    maxDuration: 168h
`, keyJSON(pub[0]), pub[0].EncryptedKey, extra, keyJSON(pub[1]), pub[1].EncryptedKey)
	e.configYAML = []byte(cfgYAML)
	cfg, err := ca.ParseConfig([]byte(cfgYAML))
	if err != nil {
		t.Fatalf("config: %v\n%s", err, cfgYAML)
	}
	e.store = o.store
	if e.store == nil {
		e.store = store.NewMemory()
	}
	logger := slog.New(slog.NewTextHandler(&syncWriter{w: e.logs}, nil))
	e.auth, err = ca.New(ca.Options{Config: cfg, Root: e.root.Cert, Intermediate: e.inter.Cert, Key: e.inter.Key, Store: e.store, Now: e.now, Logger: logger})
	if err != nil {
		t.Fatalf("ca.New: %v", err)
	}
	// Served as keyless ca serve serves it (httptest's StartTLS would
	// put its own certificate first).
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("%v", err)
	}
	e.srv = &http.Server{Handler: caapi.New(caapi.Config{Authority: e.auth, Logger: logger}), TLSConfig: caapi.TLSConfig(e.auth, nil),
		ErrorLog: log.New(io.Discard, "", 0)}
	go e.srv.ServeTLS(ln, "", "")
	t.Cleanup(func() { e.srv.Close() })
	e.url = "https://" + ln.Addr().String()
	e.client = e.clientWith(nil)
	return e
}

type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// clientWith trusts the CA's root and presents cert (mTLS) when given.
func (e *env) clientWith(cert *tls.Certificate) *http.Client {
	pool := x509.NewCertPool()
	pool.AddCert(e.root.Cert)
	cfg := &tls.Config{RootCAs: pool}
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
