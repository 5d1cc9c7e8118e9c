package caapi_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/keyless-dev/keyless/internal/ca"
	"github.com/keyless-dev/keyless/internal/ca/caapi"
	"github.com/keyless-dev/keyless/internal/caproto"
	"github.com/keyless-dev/keyless/internal/pki"
	"github.com/keyless-dev/keyless/internal/store"
	"github.com/keyless-dev/keyless/internal/testkit"
)

// The fuzz targets below send arbitrary request bodies and tokens through
// the API handler to a CA whose keys and clock are fixed, so that the
// committed seeds (testdata/fuzz, written by fuzzseeds_test.go) hold
// tokens and certificates that stay valid: the fuzzer cannot forge a
// signature, so every signed token it gets to play with comes from a seed.

// fuzzNow is the fuzz CA's clock.
var fuzzNow = time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)

const (
	fuzzCAName      = "ca.test"
	fuzzLeafSubject = "gitlab-runner"
)

// fuzzProvisioners are the fuzz CA's provisioners: runners issued the
// fixture leaf and may issue gitlab-runner and gitlab-runner-* for at
// most 168h; admin may issue any name.
var fuzzProvisioners = []struct {
	name  string
	allow []string
	max   time.Duration
	min   time.Duration
}{
	{"runners", []string{"gitlab-runner", "gitlab-runner-*"}, 168 * time.Hour, ca.DefaultMinLifetime},
	{"admin", []string{"*"}, ca.DefaultMaxLifetime, ca.DefaultMinLifetime},
}

// fuzzCA is a CA whose every key is derived from a fixed label, and whose
// certificates are signed with Ed25519, which is deterministic: the same
// in every run, so committed seeds can hold its tokens and certificates.
// These are test fixtures, not secrets.
type fuzzCA struct {
	root, inter *x509.Certificate
	interKey    ed25519.PrivateKey
	prov        []*jose.JSONWebKey // private, in fuzzProvisioners' order
	cfg         *ca.Config
	// leaf is a certificate runners issued for gitlab-runner, valid
	// around fuzzNow, recorded in every fresh store.
	leaf    *x509.Certificate
	leafKey *ecdsa.PrivateKey
}

func fuzzEd25519(label string) ed25519.PrivateKey {
	seed := sha256.Sum256([]byte("keyless caapi fuzz " + label))
	return ed25519.NewKeyFromSeed(seed[:])
}

func fuzzECDSA(t testing.TB, label string) *ecdsa.PrivateKey {
	t.Helper()
	d := sha256.Sum256([]byte("keyless caapi fuzz " + label))
	k, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), d[:])
	if err != nil {
		t.Fatalf("deriving the %s key: %v", label, err)
	}
	return k
}

func fuzzCertificate(t testing.TB, tmpl, parent *x509.Certificate, pub any, key ed25519.PrivateKey) *x509.Certificate {
	t.Helper()
	der, err := x509.CreateCertificate(nil, tmpl, parent, pub, key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func newFuzzCA(t testing.TB) *fuzzCA {
	t.Helper()
	fx := &fuzzCA{}
	rootKey := fuzzEd25519("root")
	caTmpl := func(serial int64, cn string) *x509.Certificate {
		return &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), NotAfter: time.Date(2126, 1, 1, 0, 0, 0, 0, time.UTC),
			KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign, BasicConstraintsValid: true, IsCA: true}
	}
	rootTmpl := caTmpl(1, "keyless fuzz root")
	fx.root = fuzzCertificate(t, rootTmpl, rootTmpl, rootKey.Public(), rootKey)
	fx.interKey = fuzzEd25519("intermediate")
	fx.inter = fuzzCertificate(t, caTmpl(2, "keyless fuzz intermediate"), fx.root, fx.interKey.Public(), rootKey)
	fx.leafKey = fuzzECDSA(t, "leaf")
	fx.leaf = fuzzCertificate(t, &x509.Certificate{
		SerialNumber: new(big.Int).SetBytes(bytes.Repeat([]byte{0x5a}, 16)), Subject: pkix.Name{CommonName: fuzzLeafSubject},
		DNSNames:  []string{fuzzLeafSubject},
		NotBefore: fuzzNow.Add(-12 * time.Hour), NotAfter: fuzzNow.Add(12 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, BasicConstraintsValid: true,
	}, fx.inter, fx.leafKey.Public(), fx.interKey)

	var yaml strings.Builder
	fmt.Fprintf(&yaml, "name: Fuzz CA\naddress: 127.0.0.1:0\ndnsNames: [%s, 127.0.0.1]\nroot: r\ncrt: c\nkey: k\ndb: d\nprovisioners:\n", fuzzCAName)
	for _, p := range fuzzProvisioners {
		priv := &jose.JSONWebKey{Key: fuzzECDSA(t, "provisioner "+p.name), Algorithm: string(jose.ES256), Use: "sig"}
		kid, err := caproto.Thumbprint(priv)
		if err != nil {
			t.Fatal(err)
		}
		priv.KeyID = kid
		pub, err := priv.Public().MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		fx.prov = append(fx.prov, priv)
		allow, _ := json.Marshal(p.allow)
		fmt.Fprintf(&yaml, "  - name: %s\n    type: JWK\n    key: '%s'\n    allow: %s\n    maxDuration: %s\n", p.name, pub, allow, p.max)
	}
	cfg, err := ca.ParseConfig([]byte(yaml.String()))
	if err != nil {
		t.Fatalf("%v\n%s", err, yaml.String())
	}
	fx.cfg = cfg
	return fx
}

// fuzzServer is a fresh CA on the fixed clock, with only the fixture leaf
// in its store, behind the API handler; logs collects what it logs.
type fuzzServer struct {
	fx    *fuzzCA
	h     *caapi.Handler
	a     *ca.Authority
	store store.Store
	logs  *testkit.Buffer
}

func (fx *fuzzCA) server(t testing.TB) *fuzzServer {
	t.Helper()
	st := store.NewMemory()
	l := fx.leaf
	if err := st.PutCertificate(&store.Certificate{Serial: l.SerialNumber.String(), Subject: l.Subject.CommonName, SANs: l.DNSNames,
		NotBefore: l.NotBefore, NotAfter: l.NotAfter, Provisioner: fuzzProvisioners[0].name, IssuedAt: l.NotBefore, DER: l.Raw}); err != nil {
		t.Fatal(err)
	}
	logs := &testkit.Buffer{}
	a, err := ca.New(ca.Options{Config: fx.cfg, Root: fx.root, Intermediate: fx.inter, Key: fx.interKey, Store: st,
		Now: func() time.Time { return fuzzNow }, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	return &fuzzServer{fx: fx, a: a, store: st, logs: logs, h: caapi.New(caapi.Config{Authority: a, Logger: slog.New(slog.NewTextHandler(logs, nil))})}
}

// do sends a request to the handler, as the fixture leaf over mTLS when
// mtls is set.
func (s *fuzzServer) do(method, path string, body []byte, authorization string, mtls bool) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, "https://"+fuzzCAName+path, bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	if authorization != "" {
		r.Header.Set("Authorization", authorization)
	}
	if mtls {
		r.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{s.fx.leaf, s.fx.inter}}
	}
	w := httptest.NewRecorder()
	s.h.ServeHTTP(w, r)
	return w
}

// certificates lists the serials in the store.
func (s *fuzzServer) certificates(t *testing.T) []*store.Certificate {
	t.Helper()
	var out []*store.Certificate
	if err := s.store.Certificates(func(c *store.Certificate) bool { out = append(out, c); return true }); err != nil {
		t.Fatal(err)
	}
	return out
}

// checkNoSecrets fails if a token of the request reached the log.
func (s *fuzzServer) checkNoSecrets(t *testing.T, tokens ...string) {
	t.Helper()
	for _, tok := range tokens {
		if len(tok) >= 16 && strings.Contains(s.logs.String(), tok) {
			t.Fatalf("a token reached the log:\n%s", s.logs.String())
		}
	}
}

var reasons = []caproto.Reason{"", caproto.ReasonTokenUsed, caproto.ReasonTokenExpired, caproto.ReasonTokenNotYetValid, caproto.ReasonTokenInvalid,
	caproto.ReasonNameNotAllowed, caproto.ReasonLifetimeTooLong, caproto.ReasonLifetimeTooShort, caproto.ReasonNotBeforeRange, caproto.ReasonNeedsCertificate,
	caproto.ReasonCertRevoked, caproto.ReasonCertExpired, caproto.ReasonCertUnknown, caproto.ReasonRenewalDisabled}

// checkRefusal checks a refusal: a status the client can act on (a
// client's input is never the CA's internal error), in step-ca's error
// shape, with a known reason, and a limit exactly with the lifetime
// reasons. It returns the decoded error.
func checkRefusal(t *testing.T, w *httptest.ResponseRecorder, statuses ...int) caproto.ErrorResponse {
	t.Helper()
	if !slices.Contains(statuses, w.Code) {
		t.Fatalf("status %d, want one of %v: %s", w.Code, statuses, w.Body)
	}
	var e caproto.ErrorResponse
	dec := json.NewDecoder(bytes.NewReader(w.Body.Bytes()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		t.Fatalf("the refusal is not step-ca's error shape: %v: %s", err, w.Body)
	}
	lifetime := e.Reason == caproto.ReasonLifetimeTooLong || e.Reason == caproto.ReasonLifetimeTooShort
	switch {
	case e.Status != w.Code || e.Message == "" || w.Header().Get("Content-Type") != "application/json":
		t.Fatalf("refusal %d with body %s", w.Code, w.Body)
	case !slices.Contains(reasons, e.Reason):
		t.Fatalf("unknown reason %q", e.Reason)
	case lifetime != (e.Limit > 0):
		t.Fatalf("reason %q with limit %s", e.Reason, time.Duration(e.Limit))
	}
	return e
}

// issued decodes and checks a sign or renew answer: the leaf, then the
// intermediate, chaining to the root, recorded in the store.
func (s *fuzzServer) issued(t *testing.T, w *httptest.ResponseRecorder) *x509.Certificate {
	t.Helper()
	var resp caproto.SignResponse
	if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil {
		t.Fatalf("answer: %v", err)
	}
	if len(resp.CertChain) != 2 || resp.Crt != resp.CertChain[0] || resp.CA != resp.CertChain[1] {
		t.Fatalf("certChain has %d certificates, crt and ca differ from it", len(resp.CertChain))
	}
	certs, err := pki.ParseCertificates([]byte(resp.Crt + resp.CA))
	if err != nil || len(certs) != 2 || !certs[1].Equal(s.fx.inter) {
		t.Fatalf("the answer's chain: %v", err)
	}
	leaf := certs[0]
	roots, inters := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(s.fx.root)
	inters.AddCert(s.fx.inter)
	// The chain is checked when the leaf becomes valid: a requested
	// notBefore lies between now and the token's expiry, which the
	// intermediate covers.
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inters, CurrentTime: leaf.NotBefore,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("the certificate does not verify: %v", err)
	}
	if leaf.IsCA || leaf.KeyUsage != x509.KeyUsageDigitalSignature {
		t.Fatalf("CA %v, key usage %v", leaf.IsCA, leaf.KeyUsage)
	}
	rec, err := s.store.Certificate(leaf.SerialNumber.String())
	if err != nil || !bytes.Equal(rec.DER, leaf.Raw) {
		t.Fatalf("the certificate is not recorded: %v", err)
	}
	return leaf
}

// checkSignedBy fails unless the provisioner's key signed tok and tok
// names it by key id.
func checkSignedBy(t *testing.T, tok *jwt.JSONWebToken, key *jose.JSONWebKey) {
	t.Helper()
	var c caproto.Claims
	if err := tok.Claims(key.Public().Key, &c); err != nil || tok.Headers[0].KeyID != key.KeyID {
		t.Fatalf("accepted a token its provisioner's key did not sign (%v) or with key id %q", err, tok.Headers[0].KeyID)
	}
}

// allowedBy matches name against an allow pattern: '*' is any run of
// characters (written out here from the configuration's documentation).
func allowedBy(patterns []string, name string) bool {
	for _, p := range patterns {
		parts := strings.Split(p, "*")
		for i := range parts {
			parts[i] = regexp.QuoteMeta(parts[i])
		}
		if regexp.MustCompile(`^(?s:` + strings.Join(parts, ".*") + `)$`).MatchString(name) {
			return true
		}
	}
	return false
}

func provisionerIndex(name string) int {
	for i, p := range fuzzProvisioners {
		if p.name == name {
			return i
		}
	}
	return -1
}

// certNames is every name of a certificate's SAN extension, as text.
func certNames(c *x509.Certificate) []string {
	out := slices.Clone(c.DNSNames)
	for _, ip := range c.IPAddresses {
		out = append(out, ip.String())
	}
	out = append(out, c.EmailAddresses...)
	for _, u := range c.URIs {
		out = append(out, u.String())
	}
	return out
}

// FuzzSign sends arbitrary bodies to POST /1.0/sign. A refusal is a 4xx
// in step-ca's error shape and records nothing. What is issued is for the
// CSR's key, chains to the root, names exactly what the token grants and
// the provisioner allows (and the token's subject as its common name),
// lives within the provisioner's bounds, is recorded, and its token is
// spent: the same request again is refused as tokenUsed. No token reaches
// the log.
func FuzzSign(f *testing.F) {
	fx := newFuzzCA(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		checkSign(t, fx.server(t), body)
	})
}

// checkSign is FuzzSign's check of one body; it returns the status.
func checkSign(t *testing.T, s *fuzzServer, body []byte) int {
	t.Helper()
	w := s.do(http.MethodPost, caproto.PathSign, body, "", false)
	var req caproto.SignRequest
	_ = json.Unmarshal(body, &req)
	defer s.checkNoSecrets(t, req.OTT)
	if w.Code != http.StatusCreated {
		checkRefusal(t, w, http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden)
		if n := len(s.certificates(t)); n != 1 {
			t.Fatalf("a refused request left %d certificates", n)
		}
		return w.Code
	}
	csr, err := pki.ParseCSR([]byte(req.CSR))
	if err != nil {
		t.Fatalf("issued for a CSR that does not parse: %v", err)
	}
	tok, err := jwt.ParseSigned(req.OTT, caproto.Algorithms)
	if err != nil {
		t.Fatalf("issued for a token that does not parse: %v", err)
	}
	var claims caproto.Claims
	if err := tok.UnsafeClaimsWithoutVerification(&claims); err != nil {
		t.Fatal(err)
	}
	pi := provisionerIndex(claims.Issuer)
	if pi < 0 {
		t.Fatalf("issued for a token of provisioner %q, which the CA does not have", claims.Issuer)
	}
	checkSignedBy(t, tok, s.fx.prov[pi])
	p := fuzzProvisioners[pi]
	leaf := s.issued(t, w)
	if pki.PublicKeyFingerprint(leaf.PublicKey) != pki.PublicKeyFingerprint(csr.PublicKey) {
		t.Fatal("the certificate is not for the CSR's key")
	}
	sans := claims.SANs
	if len(sans) == 0 {
		sans = []string{claims.Subject}
	}
	got, want := certNames(leaf), canonicalNames(sans)
	slices.Sort(got)
	slices.Sort(want)
	if leaf.Subject.CommonName != claims.Subject || !slices.Equal(slices.Compact(got), slices.Compact(want)) {
		t.Fatalf("issued CN %q names %q for a token with subject %q and names %q", leaf.Subject.CommonName, got, claims.Subject, sans)
	}
	for _, name := range append([]string{claims.Subject}, sans...) {
		if !allowedBy(p.allow, name) {
			t.Fatalf("provisioner %s issued %q", p.name, name)
		}
	}
	// Certificates hold whole seconds, and without a notBefore the CA
	// backdates by a minute.
	if d := leaf.NotAfter.Sub(leaf.NotBefore); d < p.min-time.Second || d > p.max+time.Minute {
		t.Fatalf("issued for %s, outside %s to %s", d, p.min, p.max)
	}
	again := s.do(http.MethodPost, caproto.PathSign, body, "", false)
	if e := checkRefusal(t, again, http.StatusUnauthorized); e.Reason != caproto.ReasonTokenUsed {
		t.Fatalf("the same request again: %d %s", again.Code, again.Body)
	}
	return w.Code
}

// canonicalNames is how names come back out of a certificate: IPs and
// URIs in their canonical form.
func canonicalNames(names []string) []string {
	out := make([]string, 0, len(names))
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			n = ip.String()
		} else if u, err := url.Parse(n); err == nil && u.Scheme != "" && strings.Contains(n, "://") {
			n = u.String()
		}
		out = append(out, n)
	}
	return out
}

// FuzzRevoke sends arbitrary bodies to POST /1.0/revoke, with or without
// the fixture leaf over mTLS. A refusal is a 4xx (or 501 for active
// revocation) in step-ca's error shape and records nothing. A revocation
// is of a certificate the CA issued, by the token's provisioner or by the
// certificate itself, with the asked reason; it is on the next CRL, and
// the certificate can no longer renew.
func FuzzRevoke(f *testing.F) {
	fx := newFuzzCA(f)
	f.Fuzz(func(t *testing.T, body []byte, mtls bool) {
		checkRevoke(t, fx.server(t), body, mtls)
	})
}

func checkRevoke(t *testing.T, s *fuzzServer, body []byte, mtls bool) int {
	t.Helper()
	w := s.do(http.MethodPost, caproto.PathRevoke, body, "", mtls)
	var req caproto.RevokeRequest
	_ = json.Unmarshal(body, &req)
	defer s.checkNoSecrets(t, req.OTT)
	revs, err := s.store.Revocations()
	if err != nil {
		t.Fatal(err)
	}
	if w.Code != http.StatusOK {
		checkRefusal(t, w, http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden, http.StatusNotImplemented)
		if len(revs) != 0 {
			t.Fatalf("a refused request revoked %s", revs[0].Serial)
		}
		return w.Code
	}
	serial := s.fx.leaf.SerialNumber.String()
	if len(revs) != 1 || revs[0].Serial != serial || revs[0].ReasonCode != req.ReasonCode || revs[0].Reason != req.Reason || !req.Passive {
		t.Fatalf("revocations %+v for request %+v", revs, req)
	}
	if asked, ok := new(big.Int).SetString(req.Serial, 0); !ok || asked.String() != serial {
		t.Fatalf("asked to revoke %q, revoked %s", req.Serial, serial)
	}
	wantVia := "mtls"
	if req.OTT != "" {
		tok, err := jwt.ParseSigned(req.OTT, caproto.Algorithms)
		if err != nil {
			t.Fatal(err)
		}
		var claims caproto.Claims
		if err := tok.UnsafeClaimsWithoutVerification(&claims); err != nil {
			t.Fatal(err)
		}
		if claims.Subject != serial {
			t.Fatalf("a token for %q revoked %s", claims.Subject, serial)
		}
		if pi := provisionerIndex(claims.Issuer); pi < 0 {
			t.Fatalf("revoked with a token of provisioner %q, which the CA does not have", claims.Issuer)
		} else {
			checkSignedBy(t, tok, s.fx.prov[pi])
		}
		wantVia = "token:" + claims.Issuer
	} else if !mtls {
		t.Fatal("revoked with neither a token nor the certificate")
	}
	if revs[0].Via != wantVia || wantVia != "mtls" && wantVia != "token:"+fuzzProvisioners[0].name {
		t.Fatalf("revoked via %q, want %q by the provisioner that issued it", revs[0].Via, wantVia)
	}
	crl := s.do(http.MethodGet, caproto.PathCRL, nil, "", false)
	list, err := x509.ParseRevocationList(crl.Body.Bytes())
	if err != nil || list.CheckSignatureFrom(s.fx.inter) != nil {
		t.Fatalf("CRL: %v", err)
	}
	if len(list.RevokedCertificateEntries) != 1 || list.RevokedCertificateEntries[0].SerialNumber.String() != serial ||
		list.RevokedCertificateEntries[0].ReasonCode != req.ReasonCode {
		t.Fatalf("the CRL lists %+v", list.RevokedCertificateEntries)
	}
	renew := s.do(http.MethodPost, caproto.PathRenew, nil, "", true)
	if e := checkRefusal(t, renew, http.StatusUnauthorized); e.Reason != caproto.ReasonCertRevoked {
		t.Fatalf("the revoked certificate renews: %d %s", renew.Code, renew.Body)
	}
	return w.Code
}

// FuzzRenew sends arbitrary Authorization headers to POST /1.0/renew,
// with or without the fixture leaf over mTLS. A refusal is a 4xx in
// step-ca's error shape and issues nothing. A renewal is of the fixture
// leaf (the only certificate this CA issued): the same key, subject and
// names, the same lifetime, recorded as renewed from it; a renewal token
// is spent, so the same header again is refused as tokenUsed.
func FuzzRenew(f *testing.F) {
	fx := newFuzzCA(f)
	f.Fuzz(func(t *testing.T, authorization string, mtls bool) {
		checkRenew(t, fx.server(t), authorization, mtls)
	})
}

func checkRenew(t *testing.T, s *fuzzServer, authorization string, mtls bool) int {
	t.Helper()
	w := s.do(http.MethodPost, caproto.PathRenew, nil, authorization, mtls)
	defer s.checkNoSecrets(t, strings.TrimPrefix(authorization, "Bearer "))
	certs := s.certificates(t)
	if w.Code != http.StatusCreated {
		checkRefusal(t, w, http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden)
		if len(certs) != 1 {
			t.Fatalf("a refused renewal left %d certificates", len(certs))
		}
		return w.Code
	}
	old := s.fx.leaf
	leaf := s.issued(t, w)
	if len(certs) != 2 || !pki.KeyMatchesCertificate(s.fx.leafKey, leaf) || leaf.Subject.CommonName != old.Subject.CommonName ||
		!slices.Equal(certNames(leaf), certNames(old)) || leaf.NotAfter.Sub(leaf.NotBefore) != old.NotAfter.Sub(old.NotBefore) {
		t.Fatalf("renewed %s %q for %s, key match %v", leaf.Subject, certNames(leaf), leaf.NotAfter.Sub(leaf.NotBefore), pki.KeyMatchesCertificate(s.fx.leafKey, leaf))
	}
	if rec, err := s.store.Certificate(leaf.SerialNumber.String()); err != nil || rec.RenewedFrom != old.SerialNumber.String() {
		t.Fatalf("record %+v, %v", rec, err)
	}
	token, bearer := strings.CutPrefix(authorization, "Bearer ")
	if !bearer && !mtls {
		t.Fatal("renewed with neither a renewal token nor the certificate")
	}
	if bearer {
		tok, err := jwt.ParseSigned(strings.TrimSpace(token), caproto.Algorithms)
		if err != nil {
			t.Fatalf("renewed with a token that does not parse: %v", err)
		}
		var c jwt.Claims
		if err := tok.Claims(s.fx.leafKey.Public(), &c); err != nil {
			t.Fatalf("renewed with a token the certificate's key did not sign: %v", err)
		}
		again := s.do(http.MethodPost, caproto.PathRenew, nil, authorization, mtls)
		if e := checkRefusal(t, again, http.StatusUnauthorized); e.Reason != caproto.ReasonTokenUsed {
			t.Fatalf("the same renewal token again: %d %s", again.Code, again.Body)
		}
	}
	return w.Code
}
