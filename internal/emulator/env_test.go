package emulator_test

import (
	"crypto"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keyless-dev/keyless/internal/emulator"
	"github.com/keyless-dev/keyless/internal/pki"
	"github.com/keyless-dev/keyless/internal/pki/pkitest"
	"github.com/keyless-dev/keyless/internal/rolesanywhere"
	"github.com/keyless-dev/keyless/internal/sigv4"
	"github.com/keyless-dev/keyless/internal/testkit"
)

// referencePolicy is the reference setup's trust policy.
const referencePolicy = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow",
  "Principal":{"Service":"rolesanywhere.amazonaws.com"},
  "Action":["sts:AssumeRole","sts:TagSession","sts:SetSourceIdentity"],
  "Condition":{"ArnEquals":{"aws:SourceArn":"${trustAnchors.gitlab-runner-ca.arn}"},
               "StringEquals":{"aws:PrincipalTag/x509Subject/CN":"gitlab-runner"}}}]}`

// setup shapes the seed of a test environment; the zero value is the
// reference deployment.
type setup struct {
	anchorDisabled, profileDisabled  bool
	acceptSessionName, requireProps  bool
	profileDuration, roleMaxDuration int
	policy                           string // default referencePolicy
	revoked                          []*big.Int
	bundleIntermediate               bool      // bundle holds the intermediate instead of the root
	log                              io.Writer // default: a buffer shown when the test fails
	maxCredentials                   int
	// policyAt, when set, makes the trust policy from the clock's start,
	// for policies that name dates.
	policyAt func(now time.Time) string
}

// env is an emulator behind httptest with a CA the trust anchor
// "gitlab-runner-ca" trusts and a second anchor "other-ca" with its own CA.
type env struct {
	t           testing.TB
	dir         string
	root, inter *pkitest.CA
	other       *pkitest.CA // intermediate under other-ca's root
	emu         *emulator.Emulator
	srv         *httptest.Server
	out         emulator.Outputs
	logs        *testkit.Buffer
	clock       *testkit.Clock
}

func (e *env) now() time.Time { return e.clock.Now() }

func (e *env) advance(d time.Duration) { e.clock.Advance(d) }

func newEnv(t testing.TB, s setup) *env {
	t.Helper()
	e := &env{t: t, dir: t.TempDir(), clock: testkit.NewClock(time.Now().Truncate(time.Second)), logs: &testkit.Buffer{}}
	e.root = pkitest.NewRoot(t, "runner-root")
	e.inter = e.root.Intermediate(t, "runner-int")
	otherRoot := pkitest.NewRootWithKey(t, "other-root", pkitest.Key(t, "p256#other"))
	e.other = otherRoot.Intermediate(t, "other-int")

	bundle := e.root.Cert
	if s.bundleIntermediate {
		bundle = e.inter.Cert
	}
	pkitest.WriteFile(t, e.dir, "bundle.pem", pki.EncodeCertificates(bundle))
	crls := ""
	if s.revoked != nil {
		pkitest.WriteFile(t, e.dir, "int.crl", e.inter.CRL(t, s.revoked...))
		crls = "\n    crls: [int.crl]"
	}
	if s.policyAt != nil {
		s.policy = s.policyAt(e.now())
	}
	if s.policy == "" {
		s.policy = referencePolicy
	}
	if s.profileDuration == 0 {
		s.profileDuration = 3600
	}
	if s.roleMaxDuration == 0 {
		s.roleMaxDuration = 3600
	}
	seed := fmt.Sprintf(`account: "111122223333"
region: us-east-1
operators:
  - name: admin
    accessKeyId: `+operatorKeyID+`
    secretAccessKey: `+operatorSecret+`
trustAnchors:
  - name: gitlab-runner-ca
    id: 3f7c1a0e-0000-4000-8000-000000000001
    enabled: %t
    certificateBundle: bundle.pem%s
  - name: other-ca
    certificateBundlePem: |
%s
roles:
  - name: ci-deployer
    maxSessionDuration: %d
    assumeRolePolicyFile: policy.json
  - name: not-in-profile
    assumeRolePolicyFile: policy.json
profiles:
  - name: homelab-profile
    enabled: %t
    roles: [ci-deployer]
    durationSeconds: %d
    acceptRoleSessionName: %t
    requireInstanceProperties: %t
`, !s.anchorDisabled, crls, indent(string(pki.EncodeCertificates(otherRoot.Cert)), 6),
		s.roleMaxDuration, !s.profileDisabled, s.profileDuration, s.acceptSessionName, s.requireProps)
	pkitest.WriteFile(t, e.dir, "policy.json", []byte(s.policy))
	path := pkitest.WriteFile(t, e.dir, "emulator.yaml", []byte(seed))
	parsed, err := emulator.LoadSeed(path)
	if err != nil {
		t.Fatalf("LoadSeed: %v\n%s", err, seed)
	}
	var logTo io.Writer = e.logs
	if s.log != nil {
		logTo = s.log
	}
	e.emu, err = emulator.New(emulator.Config{
		Seed:           parsed,
		Now:            e.now,
		MaxCredentials: s.maxCredentials,
		Logger:         slog.New(slog.NewTextHandler(logTo, &slog.HandlerOptions{Level: slog.LevelInfo})),
	})
	if err != nil {
		t.Fatal(err)
	}
	e.srv = httptest.NewServer(e.emu)
	t.Cleanup(e.srv.Close)
	e.out = parsed.Outputs(e.srv.URL)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("emulator log:\n%s", e.logs.String())
		}
	})
	return e
}

func indent(s string, n int) string {
	pad := strings.Repeat(" ", n)
	return pad + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n"+pad)
}

// call is one CreateSession request; zero fields take the reference
// values: a P-256 gitlab-runner leaf from the intermediate, sent with the
// intermediate, signed now, asking for 3600 seconds.
type call struct {
	key        crypto.Signer
	leaf       *x509.Certificate
	chain      []*x509.Certificate
	noChain    bool
	ta         string
	profile    string
	role       string
	body       string
	inBody     bool // ARNs in the JSON body instead of the query string
	date       time.Time
	beforeSign func(*http.Request)
	afterSign  func(*http.Request)
}

type answer struct {
	status  int
	code    string
	message string
	session rolesanywhere.SessionResponse
}

func (e *env) leaf(o pkitest.LeafOptions) *x509.Certificate {
	return e.inter.Leaf(e.t, o)
}

func (e *env) createSession(c call) answer {
	t := e.t
	t.Helper()
	if c.key == nil {
		c.key = pkitest.Key(t, pkitest.P256)
	}
	if c.leaf == nil {
		c.leaf = e.leaf(pkitest.LeafOptions{Key: c.key})
	}
	if c.chain == nil && !c.noChain {
		c.chain = []*x509.Certificate{e.inter.Cert}
	}
	if c.ta == "" {
		c.ta = e.out.TrustAnchors["gitlab-runner-ca"]
	}
	if c.profile == "" {
		c.profile = e.out.Profiles["homelab-profile"]
	}
	if c.role == "" {
		c.role = e.out.Roles["ci-deployer"]
	}
	if c.body == "" {
		c.body = `{"durationSeconds":3600}`
	}
	if c.date.IsZero() {
		c.date = e.now()
	}
	target := e.srv.URL + "/sessions"
	if c.inBody {
		var m map[string]any
		if err := json.Unmarshal([]byte(c.body), &m); err != nil {
			t.Fatal(err)
		}
		m["profileArn"], m["roleArn"], m["trustAnchorArn"] = c.profile, c.role, c.ta
		b, _ := json.Marshal(m)
		c.body = string(b)
	} else {
		q := url.Values{"profileArn": {c.profile}, "roleArn": {c.role}, "trustAnchorArn": {c.ta}}
		target += "?" + strings.ReplaceAll(q.Encode(), "+", "%20")
	}
	req, err := http.NewRequest(http.MethodPost, target, strings.NewReader(c.body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if c.beforeSign != nil {
		c.beforeSign(req)
	}
	signer := sigv4.X509Signer{Key: c.key, Certificate: c.leaf, Intermediates: c.chain}
	if err := signer.Sign(req, []byte(c.body), "us-east-1", c.date); err != nil {
		t.Fatal(err)
	}
	if c.afterSign != nil {
		c.afterSign(req)
	}
	resp, data := testkit.Do(t, e.srv.Client(), req)
	a := answer{status: resp.StatusCode, code: resp.Header.Get("X-Amzn-ErrorType")}
	if resp.StatusCode == http.StatusCreated {
		if err := json.Unmarshal(data, &a.session); err != nil {
			t.Fatalf("decoding 201 body %s: %v", data, err)
		}
		return a
	}
	var msg struct{ Message string }
	if err := json.Unmarshal(data, &msg); err != nil {
		t.Fatalf("decoding %d body %s: %v", resp.StatusCode, data, err)
	}
	a.message = msg.Message
	return a
}

func writeFile(t *testing.T, path string, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}
