package ca_test

// These tests drive the Authority directly, without HTTP, on a fake
// clock: each refusal test starts from a request the CA grants and breaks
// exactly one thing about it, then checks the typed refusal (Kind, and
// the caproto reason code clients branch on).

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/keyless-dev/keyless/internal/ca"
	"github.com/keyless-dev/keyless/internal/caproto"
	"github.com/keyless-dev/keyless/internal/pki"
	"github.com/keyless-dev/keyless/internal/pki/pkitest"
	"github.com/keyless-dev/keyless/internal/store"
	"github.com/keyless-dev/keyless/internal/testkit"
)

const caHost = "ca.test"

// Provisioners of the test CA.
const (
	admin   = 0 // any name, the default policy
	runners = 1 // gitlab-runner and gitlab-runner-*, 10m to 168h, 1h by default
	servers = 2 // *.svc.test, with serverAuth
)

var provNames = []string{"admin", "runners", "servers"}

// authority is an Authority on a fake clock with a memory store, and what
// a test needs to make its tokens and check its certificates.
type authority struct {
	t     *testing.T
	a     *ca.Authority
	store store.Store
	clock *testkit.Clock
	root  *pkitest.CA
	inter *pkitest.CA
	keys  []*jose.JSONWebKey // provisioners' private keys, by index
	yaml  string
	leafs int // keys sign has made
}

type authorityOptions struct {
	renewAfterExpiry string // admin's
	disableRenewal   bool   // admin's
	crlValidity      string
	store            store.Store // default: a memory store
}

// provisionerKey makes a provisioner key without the 600,000-round
// encryption of a real one: the CA only ever sees the public half.
func provisionerKey(t *testing.T) *jose.JSONWebKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	jwk := &jose.JSONWebKey{Key: k, Algorithm: string(jose.ES256), Use: "sig"}
	if jwk.KeyID, err = caproto.Thumbprint(jwk); err != nil {
		t.Fatal(err)
	}
	return jwk
}

func publicJSON(t *testing.T, k *jose.JSONWebKey) string {
	t.Helper()
	b, err := k.Public().MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func newAuthority(t *testing.T, o authorityOptions) *authority {
	t.Helper()
	e := &authority{t: t, store: o.store, clock: testkit.NewClock(time.Now().Truncate(time.Second))}
	if e.store == nil {
		e.store = store.NewMemory()
	}
	e.root = pkitest.NewLongLivedRoot(t, "direct-root")
	e.inter = e.root.Intermediate(t, "direct-int")
	for range provNames {
		e.keys = append(e.keys, provisionerKey(t))
	}
	extra := ""
	if o.renewAfterExpiry != "" {
		extra += "\n    renewAfterExpiry: " + o.renewAfterExpiry
	}
	if o.disableRenewal {
		extra += "\n    disableRenewal: true"
	}
	crl := ""
	if o.crlValidity != "" {
		crl = "crlValidity: " + o.crlValidity + "\n"
	}
	e.yaml = fmt.Sprintf(`name: Direct CA
address: 127.0.0.1:0
dnsNames: [%s, 127.0.0.1]
root: r
crt: c
key: k
db: d
%sprovisioners:
  - name: admin
    type: JWK
    key: '%s'
    allow: ["*"]%s
  - name: runners
    type: JWK
    key: '%s'
    allow: [gitlab-runner, gitlab-runner-*]
    minDuration: 10m
    defaultDuration: 1h
    maxDuration: 168h
  - name: servers
    type: JWK
    key: '%s'
    allow: ["*.svc.test"]
    serverAuth: true
`, caHost, crl, publicJSON(t, e.keys[admin]), extra, publicJSON(t, e.keys[runners]), publicJSON(t, e.keys[servers]))
	cfg, err := ca.ParseConfig([]byte(e.yaml))
	if err != nil {
		t.Fatalf("%v\n%s", err, e.yaml)
	}
	e.a, err = ca.New(ca.Options{Config: cfg, Root: e.root.Cert, Intermediate: e.inter.Cert, Key: e.inter.Key, Store: e.store, Now: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *authority) now() time.Time { return e.clock.Now() }

// tok describes a one-time token; the zero value is a sign token for
// gitlab-runner from admin, valid now for five minutes.
type tok struct {
	prov     int
	iss, kid string
	key      *jose.JSONWebKey // signs instead of the provisioner's key
	sub      string
	sans     []string
	aud      string // a path (/1.0/sign) or a whole URL
	at       time.Time
	lifetime time.Duration
	alg      jose.SignatureAlgorithm
	// claims, when set, is signed instead of the claims above.
	claims map[string]any
}

func (e *authority) token(o tok) string {
	e.t.Helper()
	if o.iss == "" {
		o.iss = provNames[o.prov]
	}
	if o.kid == "" {
		o.kid = e.keys[o.prov].KeyID
	}
	key := e.keys[o.prov]
	if o.key != nil {
		key = o.key
	}
	if o.sub == "" {
		o.sub = "gitlab-runner"
	}
	if o.aud == "" {
		o.aud = caproto.PathSign
	}
	if strings.HasPrefix(o.aud, "/") {
		o.aud = "https://" + caHost + o.aud
	}
	if o.at.IsZero() {
		o.at = e.now()
	}
	if o.lifetime == 0 {
		o.lifetime = 5 * time.Minute
	}
	if o.alg == "" {
		o.alg = jose.ES256
	}
	var claims any = caproto.Claims{Claims: jwt.Claims{Issuer: o.iss, Subject: o.sub, Audience: jwt.Audience{o.aud}, ID: randomHex(e.t),
		IssuedAt: jwt.NewNumericDate(o.at), NotBefore: jwt.NewNumericDate(o.at), Expiry: jwt.NewNumericDate(o.at.Add(o.lifetime))}, SANs: o.sans}
	if o.claims != nil {
		claims = o.claims
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: o.alg, Key: key.Key}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", o.kid))
	if err != nil {
		e.t.Fatal(err)
	}
	s, err := jwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		e.t.Fatal(err)
	}
	return s
}

// baseClaims are the claims of a valid sign token, for tests that take
// one away.
func (e *authority) baseClaims() map[string]any {
	now := e.now().Unix()
	return map[string]any{"iss": "admin", "sub": "gitlab-runner", "aud": "https://" + caHost + caproto.PathSign, "jti": randomHex(e.t),
		"iat": now, "nbf": now, "exp": now + 300}
}

func randomHex(t *testing.T) string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// csr is a PEM CSR for key (a fresh P-256 key when nil) with a common
// name and DNS names.
func csr(t *testing.T, key crypto.Signer, cn string, dns ...string) []byte {
	t.Helper()
	if key == nil {
		key = pkitest.Key(t, pkitest.P256+"#csr")
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}, DNSNames: dns}, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

// sign issues a certificate for cn from admin, with notAfter ("" for the
// default), and returns it with its key.
func (e *authority) sign(cn, notAfter string) (*x509.Certificate, crypto.Signer) {
	e.t.Helper()
	// A key of its own: a revocation takes every certificate of its key.
	e.leafs++
	key := pkitest.Key(e.t, fmt.Sprintf("%s#leaf-%d", pkitest.P256, e.leafs))
	iss, err := e.a.Sign(ca.SignRequest{CSR: csr(e.t, key, cn), Token: e.token(tok{sub: cn}), NotAfter: notAfter})
	if err != nil {
		e.t.Fatalf("sign %s: %v", cn, err)
	}
	return iss.Certificate, key
}

func (e *authority) chain(c *x509.Certificate) []*x509.Certificate {
	return []*x509.Certificate{c, e.inter.Cert}
}

// renewToken is step's renewal token for cert, signed by key.
func (e *authority) renewToken(cert *x509.Certificate, key crypto.Signer, aud string, at time.Time) string {
	e.t.Helper()
	if aud == "" {
		aud = "https://" + caHost + caproto.PathRenew
	}
	tok, err := caproto.NewRenewToken(tls.Certificate{Certificate: [][]byte{cert.Raw, e.inter.Cert.Raw}, PrivateKey: key, Leaf: cert}, aud, at)
	if err != nil {
		e.t.Fatal(err)
	}
	return tok
}

// verify checks that c chains to the root at its notBefore.
func (e *authority) verify(c *x509.Certificate, usage x509.ExtKeyUsage) {
	e.t.Helper()
	roots, inters := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(e.root.Cert)
	inters.AddCert(e.inter.Cert)
	if _, err := c.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inters, CurrentTime: c.NotBefore, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
		e.t.Errorf("the certificate does not verify: %v", err)
	}
}

// refused checks that err is a refusal of kind with reason.
func refused(t *testing.T, err error, kind ca.Kind, reason caproto.Reason) *ca.Error {
	t.Helper()
	var ce *ca.Error
	if !errors.As(err, &ce) {
		t.Fatalf("got %v, want a *ca.Error of kind %d, reason %q", err, kind, reason)
	}
	if ce.Kind != kind || ce.Reason != reason || ca.KindOf(err) != kind || ce.Message == "" {
		t.Fatalf("got kind %d reason %q (%v), want kind %d reason %q", ce.Kind, ce.Reason, err, kind, reason)
	}
	return ce
}

func (e *authority) certificateCount() int {
	e.t.Helper()
	n := 0
	if err := e.store.Certificates(func(*store.Certificate) bool { n++; return true }); err != nil {
		e.t.Fatal(err)
	}
	return n
}

func TestSignIssuesFromAValidToken(t *testing.T) {
	e := newAuthority(t, authorityOptions{})
	key := pkitest.Key(t, pkitest.P256+"#leaf")
	iss, err := e.a.Sign(ca.SignRequest{CSR: csr(t, key, "gitlab-runner", "gitlab-runner"), Token: e.token(tok{})})
	if err != nil {
		t.Fatal(err)
	}
	c := iss.Certificate
	if c.Subject.CommonName != "gitlab-runner" || !slices.Equal(c.DNSNames, []string{"gitlab-runner"}) || !pki.KeyMatchesCertificate(key, c) {
		t.Errorf("subject %s, DNS %v, key match %v", c.Subject, c.DNSNames, pki.KeyMatchesCertificate(key, c))
	}
	// Admin has the default policy: 24h, backdated a minute.
	if !c.NotBefore.Equal(e.now().Add(-time.Minute)) || !c.NotAfter.Equal(e.now().Add(ca.DefaultLifetime)) {
		t.Errorf("valid %s to %s, now %s", c.NotBefore, c.NotAfter, e.now())
	}
	if c.IsCA || c.KeyUsage != x509.KeyUsageDigitalSignature || !slices.Equal(c.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}) ||
		c.SerialNumber.BitLen() != 128 || c.SignatureAlgorithm != x509.ECDSAWithSHA256 {
		t.Errorf("CA %v, key usage %v, EKU %v, serial of %d bits, %s", c.IsCA, c.KeyUsage, c.ExtKeyUsage, c.SerialNumber.BitLen(), c.SignatureAlgorithm)
	}
	if err := pki.CheckLeaf(c, e.now()); err != nil {
		t.Errorf("not fit for Roles Anywhere: %v", err)
	}
	e.verify(c, x509.ExtKeyUsageClientAuth)
	if len(iss.Intermediates) != 1 || !iss.Intermediates[0].Equal(e.inter.Cert) {
		t.Errorf("intermediates %v", iss.Intermediates)
	}
	rec, err := e.store.Certificate(c.SerialNumber.String())
	if err != nil || rec.Provisioner != "admin" || rec.Subject != "gitlab-runner" || !slices.Equal(rec.SANs, []string{"gitlab-runner"}) ||
		!rec.IssuedAt.Equal(e.now()) || !bytes.Equal(rec.DER, c.Raw) || rec.RenewedFrom != "" {
		t.Errorf("record %+v, %v", rec, err)
	}
}

func TestSignNamesAndUsages(t *testing.T) {
	e := newAuthority(t, authorityOptions{})
	names := []string{"build.example.org", "10.0.0.7", "2001:db8::7", "spiffe://example.org/ci", "ci@example.org"}
	iss, err := e.a.Sign(ca.SignRequest{CSR: csr(t, nil, ""), Token: e.token(tok{sub: "build.example.org", sans: names})})
	if err != nil {
		t.Fatal(err)
	}
	c := iss.Certificate
	if !slices.Equal(c.DNSNames, names[:1]) || len(c.IPAddresses) != 2 || !c.IPAddresses[0].Equal(net.ParseIP("10.0.0.7")) ||
		!c.IPAddresses[1].Equal(net.ParseIP("2001:db8::7")) || len(c.URIs) != 1 || c.URIs[0].String() != names[3] || !slices.Equal(c.EmailAddresses, names[4:]) {
		t.Errorf("DNS %v, IP %v, URI %v, email %v", c.DNSNames, c.IPAddresses, c.URIs, c.EmailAddresses)
	}
	// Without sans, the subject is the one name.
	iss, err = e.a.Sign(ca.SignRequest{CSR: csr(t, nil, ""), Token: e.token(tok{prov: servers, sub: "api.svc.test"})})
	if err != nil {
		t.Fatal(err)
	}
	c = iss.Certificate
	if !slices.Equal(c.DNSNames, []string{"api.svc.test"}) || !slices.Equal(c.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth}) {
		t.Errorf("servers: DNS %v, EKU %v", c.DNSNames, c.ExtKeyUsage)
	}
	e.verify(c, x509.ExtKeyUsageServerAuth)
	// An RSA key and a P-384 key are what Roles Anywhere accepts besides P-256.
	for _, kind := range []string{pkitest.RSA2048, pkitest.P384} {
		if _, err := e.a.Sign(ca.SignRequest{CSR: csr(t, pkitest.Key(t, kind), "gitlab-runner"), Token: e.token(tok{})}); err != nil {
			t.Errorf("%s CSR: %v", kind, err)
		}
	}
}

// TestSignLifetimes checks the policy's durations against the bounds a
// request asks for.
func TestSignLifetimes(t *testing.T) {
	e := newAuthority(t, authorityOptions{})
	now := e.now()
	for _, tt := range []struct {
		name             string
		prov             int
		notBefore, after string
		wantNB, wantNA   time.Time
	}{
		{"provisioner default", runners, "", "", now.Add(-time.Minute), now.Add(time.Hour)},
		{"duration", runners, "", "168h", now.Add(-time.Minute), now.Add(168 * time.Hour)},
		{"the minimum exactly", runners, "", "10m", now.Add(-time.Minute), now.Add(10 * time.Minute)},
		{"RFC 3339 notAfter", runners, "", now.Add(2 * time.Hour).Format(time.RFC3339), now.Add(-time.Minute), now.Add(2 * time.Hour)},
		// A notAfter duration counts from notBefore, as step-ca counts it,
		// and an asked-for notBefore is not backdated.
		{"notBefore and duration", runners, "2m", "2h", now.Add(2 * time.Minute), now.Add(2*time.Hour + 2*time.Minute)},
		{"RFC 3339 both", runners, now.Add(3 * time.Minute).Format(time.RFC3339), now.Add(90 * time.Minute).Format(time.RFC3339), now.Add(3 * time.Minute), now.Add(90 * time.Minute)},
		{"default policy maximum", admin, "", "168h", now.Add(-time.Minute), now.Add(ca.DefaultMaxLifetime)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sub := []string{"gitlab-runner"}
			iss, err := e.a.Sign(ca.SignRequest{CSR: csr(t, nil, sub[0]), Token: e.token(tok{prov: tt.prov}), NotBefore: tt.notBefore, NotAfter: tt.after})
			if err != nil {
				t.Fatal(err)
			}
			if c := iss.Certificate; !c.NotBefore.Equal(tt.wantNB) || !c.NotAfter.Equal(tt.wantNA) {
				t.Errorf("valid %s to %s, want %s to %s", c.NotBefore, c.NotAfter, tt.wantNB, tt.wantNA)
			}
		})
	}
}

// TestSignRefuses breaks one condition of a request the CA grants.
func TestSignRefuses(t *testing.T) {
	e := newAuthority(t, authorityOptions{})
	goodCSR := csr(t, nil, "gitlab-runner", "gitlab-runner")
	if _, err := e.a.Sign(ca.SignRequest{CSR: goodCSR, Token: e.token(tok{})}); err != nil {
		t.Fatalf("the baseline request is refused: %v", err)
	}
	now := e.now()
	foreign := provisionerKey(t)
	foreign.KeyID = e.keys[admin].KeyID
	withoutClaim := func(name string) string {
		c := e.baseClaims()
		delete(c, name)
		return e.token(tok{claims: c})
	}
	tampered := func(token string) string {
		parts := strings.Split(token, ".")
		claims, _ := base64.RawURLEncoding.DecodeString(parts[1])
		parts[1] = base64.RawURLEncoding.EncodeToString(bytes.Replace(claims, []byte("gitlab-runner"), []byte("gitlab-runnex"), 1))
		return strings.Join(parts, ".")
	}
	used := e.token(tok{})
	if _, err := e.a.Sign(ca.SignRequest{CSR: goodCSR, Token: used}); err != nil {
		t.Fatal(err)
	}
	weak := func(kind string) []byte { return csr(t, pkitest.Key(t, kind), "gitlab-runner") }
	edKey := func() crypto.Signer { _, k, _ := ed25519.GenerateKey(rand.Reader); return k }
	badSig := func() []byte {
		block, _ := pem.Decode(goodCSR)
		der := bytes.Clone(block.Bytes)
		der[len(der)-5] ^= 0xff
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
	}

	type want struct {
		kind   ca.Kind
		reason caproto.Reason
		limit  time.Duration
	}
	invalid := want{ca.KindUnauthorized, caproto.ReasonTokenInvalid, 0}
	bad := want{ca.KindBadRequest, "", 0}
	forbidden := want{ca.KindForbidden, "", 0}
	notAllowed := want{ca.KindForbidden, caproto.ReasonNameNotAllowed, 0}
	for _, tt := range []struct {
		name string
		req  ca.SignRequest
		want want
	}{
		// The token.
		{"not a JWT", ca.SignRequest{CSR: goodCSR, Token: "not.a.token"}, invalid},
		{"expired", ca.SignRequest{CSR: goodCSR, Token: e.token(tok{at: now.Add(-7 * time.Minute)})}, want{ca.KindUnauthorized, caproto.ReasonTokenExpired, 0}},
		{"not valid yet", ca.SignRequest{CSR: goodCSR, Token: e.token(tok{at: now.Add(2 * time.Minute)})}, want{ca.KindUnauthorized, caproto.ReasonTokenNotYetValid, 0}},
		{"issued in the future, no nbf", ca.SignRequest{CSR: goodCSR, Token: e.token(tok{claims: func() map[string]any {
			c := e.baseClaims()
			delete(c, "nbf")
			c["iat"] = now.Add(2 * time.Minute).Unix()
			return c
		}()})}, want{ca.KindUnauthorized, caproto.ReasonTokenNotYetValid, 0}},
		{"audience of another CA", ca.SignRequest{CSR: goodCSR, Token: e.token(tok{aud: "https://elsewhere.test/1.0/sign"})}, invalid},
		{"audience of another operation", ca.SignRequest{CSR: goodCSR, Token: e.token(tok{aud: caproto.PathRevoke})}, invalid},
		{"plain http audience", ca.SignRequest{CSR: goodCSR, Token: e.token(tok{aud: "http://" + caHost + caproto.PathSign})}, invalid},
		{"unknown provisioner (iss)", ca.SignRequest{CSR: goodCSR, Token: e.token(tok{iss: "nobody"})}, invalid},
		{"key id of another provisioner", ca.SignRequest{CSR: goodCSR, Token: e.token(tok{kid: e.keys[runners].KeyID})}, invalid},
		{"issuer of another provisioner, signed with this one's key", ca.SignRequest{CSR: goodCSR, Token: e.token(tok{iss: provNames[runners]})}, invalid},
		{"signed by another key", ca.SignRequest{CSR: goodCSR, Token: e.token(tok{key: foreign})}, invalid},
		{"tampered claims", ca.SignRequest{CSR: goodCSR, Token: tampered(e.token(tok{}))}, invalid},
		{"HS256 signature", ca.SignRequest{CSR: goodCSR, Token: e.token(tok{key: &jose.JSONWebKey{Key: []byte("0123456789abcdef0123456789abcdef"), KeyID: e.keys[admin].KeyID}, alg: jose.HS256})}, invalid},
		{"no subject", ca.SignRequest{CSR: goodCSR, Token: withoutClaim("sub")}, invalid},
		{"no jti", ca.SignRequest{CSR: goodCSR, Token: withoutClaim("jti")}, invalid},
		{"no exp", ca.SignRequest{CSR: goodCSR, Token: withoutClaim("exp")}, invalid},
		{"neither nbf nor iat", ca.SignRequest{CSR: goodCSR, Token: e.token(tok{claims: func() map[string]any {
			c := e.baseClaims()
			delete(c, "nbf")
			delete(c, "iat")
			return c
		}()})}, invalid},
		{"lives longer than a day", ca.SignRequest{CSR: goodCSR, Token: e.token(tok{lifetime: caproto.MaxTokenLifetime + time.Second})}, invalid},
		{"reused", ca.SignRequest{CSR: goodCSR, Token: used}, want{ca.KindUnauthorized, caproto.ReasonTokenUsed, 0}},
		// The CSR.
		{"CSR not PEM", ca.SignRequest{CSR: []byte("MIIB"), Token: e.token(tok{})}, bad},
		{"CSR signature", ca.SignRequest{CSR: badSig(), Token: e.token(tok{})}, bad},
		{"key too weak (RSA 1024)", ca.SignRequest{CSR: weak(pkitest.RSA1024), Token: e.token(tok{})}, bad},
		{"key Roles Anywhere refuses (P-521)", ca.SignRequest{CSR: weak(pkitest.P521), Token: e.token(tok{})}, bad},
		{"key Roles Anywhere refuses (Ed25519)", ca.SignRequest{CSR: csr(t, edKey(), "gitlab-runner"), Token: e.token(tok{})}, bad},
		{"CSR names differ from the token's", ca.SignRequest{CSR: csr(t, nil, "gitlab-runner", "gitlab-runner", "other-host"), Token: e.token(tok{})}, forbidden},
		{"CSR common name not granted", ca.SignRequest{CSR: csr(t, nil, "other-host"), Token: e.token(tok{})}, forbidden},
		{"name a certificate cannot hold", ca.SignRequest{CSR: csr(t, nil, ""), Token: e.token(tok{sub: "gitlab-runner-é"})}, bad},
		// The policy.
		{"subject outside the patterns", ca.SignRequest{CSR: csr(t, nil, "admin-box"), Token: e.token(tok{prov: runners, sub: "admin-box"})}, notAllowed},
		{"SAN outside the patterns", ca.SignRequest{CSR: csr(t, nil, "gitlab-runner"), Token: e.token(tok{prov: runners, sans: []string{"gitlab-runner", "evil"}})}, notAllowed},
		{"lifetime above the maximum", ca.SignRequest{CSR: goodCSR, Token: e.token(tok{prov: runners}), NotAfter: "168h1s"}, want{ca.KindForbidden, caproto.ReasonLifetimeTooLong, 168 * time.Hour}},
		{"lifetime below the minimum", ca.SignRequest{CSR: goodCSR, Token: e.token(tok{prov: runners}), NotAfter: "9m59s"}, want{ca.KindForbidden, caproto.ReasonLifetimeTooShort, 10 * time.Minute}},
		{"default policy maximum", ca.SignRequest{CSR: goodCSR, Token: e.token(tok{}), NotAfter: "169h"}, want{ca.KindForbidden, caproto.ReasonLifetimeTooLong, ca.DefaultMaxLifetime}},
		{"default policy minimum", ca.SignRequest{CSR: goodCSR, Token: e.token(tok{}), NotAfter: "4m"}, want{ca.KindForbidden, caproto.ReasonLifetimeTooShort, ca.DefaultMinLifetime}},
		{"notAfter before notBefore", ca.SignRequest{CSR: goodCSR, Token: e.token(tok{}), NotBefore: "3m", NotAfter: now.Add(time.Minute).Format(time.RFC3339)}, bad},
		{"notAfter neither time nor duration", ca.SignRequest{CSR: goodCSR, Token: e.token(tok{}), NotAfter: "tomorrow"}, bad},
		{"notBefore neither time nor duration", ca.SignRequest{CSR: goodCSR, Token: e.token(tok{}), NotBefore: "yesterday"}, bad},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := e.certificateCount()
			_, err := e.a.Sign(tt.req)
			ce := refused(t, err, tt.want.kind, tt.want.reason)
			if ce.Limit != tt.want.limit {
				t.Errorf("limit %s, want %s", ce.Limit, tt.want.limit)
			}
			if strings.Contains(ce.Error(), tt.req.Token) {
				t.Error("the refusal quotes the token")
			}
			if n := e.certificateCount(); n != before {
				t.Errorf("the refusal recorded %d certificates", n-before)
			}
		})
	}
}

// TestTokenLeeway: a minute either side of a token's validity is
// forgiven, for clocks that differ a little.
func TestTokenLeeway(t *testing.T) {
	e := newAuthority(t, authorityOptions{})
	for name, o := range map[string]tok{
		"expired 59s ago":     {at: e.now().Add(-5*time.Minute - 59*time.Second)},
		"valid in 59s":        {at: e.now().Add(59 * time.Second)},
		"lives exactly a day": {at: e.now().Add(-time.Hour), lifetime: caproto.MaxTokenLifetime},
	} {
		if _, err := e.a.Sign(ca.SignRequest{CSR: csr(t, nil, "gitlab-runner"), Token: e.token(o)}); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestRefusalSpendsNoToken: a token whose request is refused after it
// was verified can be used for a corrected request.
func TestRefusalSpendsNoToken(t *testing.T) {
	e := newAuthority(t, authorityOptions{})
	token := e.token(tok{prov: runners})
	_, err := e.a.Sign(ca.SignRequest{CSR: csr(t, nil, "gitlab-runner"), Token: token, NotAfter: "200h"})
	refused(t, err, ca.KindForbidden, caproto.ReasonLifetimeTooLong)
	if _, err := e.a.Sign(ca.SignRequest{CSR: csr(t, nil, "gitlab-runner"), Token: token, NotAfter: "168h"}); err != nil {
		t.Fatalf("the corrected request: %v", err)
	}
	_, err = e.a.Sign(ca.SignRequest{CSR: csr(t, nil, "gitlab-runner"), Token: token})
	refused(t, err, ca.KindUnauthorized, caproto.ReasonTokenUsed)
}

func TestRenewByCertificate(t *testing.T) {
	e := newAuthority(t, authorityOptions{})
	old, key := e.sign("gitlab-runner", "48h")
	e.clock.Advance(36 * time.Hour)
	iss, err := e.a.Renew(e.chain(old))
	if err != nil {
		t.Fatal(err)
	}
	c := iss.Certificate
	if c.SerialNumber.Cmp(old.SerialNumber) == 0 || !pki.KeyMatchesCertificate(key, c) || c.Subject.CommonName != old.Subject.CommonName ||
		!slices.Equal(c.DNSNames, old.DNSNames) {
		t.Errorf("renewed: serial %s, key match %v, subject %s, DNS %v", c.SerialNumber, pki.KeyMatchesCertificate(key, c), c.Subject, c.DNSNames)
	}
	// The same lifetime, from now.
	if !c.NotBefore.Equal(e.now().Add(-time.Minute)) || c.NotAfter.Sub(c.NotBefore) != old.NotAfter.Sub(old.NotBefore) {
		t.Errorf("valid %s to %s, old lifetime %s", c.NotBefore, c.NotAfter, old.NotAfter.Sub(old.NotBefore))
	}
	e.verify(c, x509.ExtKeyUsageClientAuth)
	if rec, err := e.store.Certificate(c.SerialNumber.String()); err != nil || rec.RenewedFrom != old.SerialNumber.String() || rec.Provisioner != "admin" {
		t.Errorf("record %+v, %v", rec, err)
	}
}

func TestRenewWithToken(t *testing.T) {
	e := newAuthority(t, authorityOptions{})
	old, key := e.sign("gitlab-runner", "")
	token := e.renewToken(old, key, "", e.now())
	iss, err := e.a.RenewWithToken(token)
	if err != nil {
		t.Fatal(err)
	}
	if !pki.KeyMatchesCertificate(key, iss.Certificate) {
		t.Error("another key")
	}
	_, err = e.a.RenewWithToken(token)
	refused(t, err, ca.KindUnauthorized, caproto.ReasonTokenUsed)

	// The same token with its ECDSA signature rewritten (s to n-s) is
	// still the same token. (A renewal token has no jti: one made in the
	// same second would be the same token too.)
	e.clock.Advance(time.Second)
	token = e.renewToken(old, key, "", e.now())
	parts := strings.Split(token, ".")
	sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
	s := new(big.Int).SetBytes(sig[32:])
	s.Sub(elliptic.P256().Params().N, s).FillBytes(sig[32:])
	if _, err := e.a.RenewWithToken(token); err != nil {
		t.Fatal(err)
	}
	_, err = e.a.RenewWithToken(parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(sig))
	refused(t, err, ca.KindUnauthorized, caproto.ReasonTokenUsed)
}

func TestRenewRefuses(t *testing.T) {
	e := newAuthority(t, authorityOptions{})
	other := pkitest.NewLongLivedRoot(t, "direct-other").Intermediate(t, "direct-int") // the same issuer name
	leafKey := pkitest.Key(t, pkitest.P256+"#leaf")
	good, _ := e.sign("gitlab-runner", "")
	notOurs := other.Leaf(t, pkitest.LeafOptions{Key: leafKey})
	unrecorded := e.inter.Leaf(t, pkitest.LeafOptions{Key: leafKey})
	// The serial of a certificate the CA issued, on a certificate it did not.
	impostor := e.inter.Leaf(t, pkitest.LeafOptions{Key: leafKey, Serial: good.SerialNumber})
	iss, err := e.a.Sign(ca.SignRequest{CSR: csr(t, leafKey, "gitlab-runner"), Token: e.token(tok{}), NotBefore: "4m", NotAfter: "24h"})
	if err != nil {
		t.Fatal(err)
	}
	future := iss.Certificate
	for _, tt := range []struct {
		name   string
		chain  []*x509.Certificate
		kind   ca.Kind
		reason caproto.Reason
	}{
		{"no certificate", nil, ca.KindUnauthorized, caproto.ReasonNeedsCertificate},
		{"another CA's certificate", []*x509.Certificate{notOurs, other.Cert}, ca.KindUnauthorized, caproto.ReasonCertUnknown},
		{"signed by the intermediate, not recorded", e.chain(unrecorded), ca.KindUnauthorized, caproto.ReasonCertUnknown},
		{"a recorded serial on another certificate", e.chain(impostor), ca.KindUnauthorized, caproto.ReasonCertUnknown},
		{"not valid yet", e.chain(future), ca.KindUnauthorized, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := e.certificateCount()
			_, err := e.a.Renew(tt.chain)
			refused(t, err, tt.kind, tt.reason)
			if e.certificateCount() != before {
				t.Error("a refused renewal recorded a certificate")
			}
		})
	}
	if _, err := e.a.Renew(e.chain(good)); err != nil {
		t.Fatalf("the baseline renewal is refused: %v", err)
	}
}

// TestRenewTokenRefuses breaks one thing about a renewal token.
func TestRenewTokenRefuses(t *testing.T) {
	e := newAuthority(t, authorityOptions{})
	cert, key := e.sign("gitlab-runner", "")
	now := e.now()
	x5c := func(certs ...[]byte) []string {
		var out []string
		for _, c := range certs {
			out = append(out, base64.StdEncoding.EncodeToString(c))
		}
		return out
	}
	signed := func(k crypto.Signer, header any, claims jwt.Claims) string {
		opts := (&jose.SignerOptions{}).WithType("JWT")
		if header != nil {
			opts = opts.WithHeader("x5cInsecure", header)
		}
		s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: k}, opts)
		if err != nil {
			t.Fatal(err)
		}
		tok, err := jwt.Signed(s).Claims(claims).Serialize()
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	claims := jwt.Claims{Issuer: caproto.RenewTokenIssuer, Subject: "gitlab-runner", Audience: jwt.Audience{"https://" + caHost + caproto.PathRenew},
		NotBefore: jwt.NewNumericDate(now), Expiry: jwt.NewNumericDate(now.Add(5 * time.Minute))}
	if _, err := e.a.RenewWithToken(signed(key, x5c(cert.Raw), claims)); err != nil {
		t.Fatalf("the baseline token is refused: %v", err)
	}
	invalid := caproto.ReasonTokenInvalid
	noExp := claims
	noExp.Expiry = nil
	for _, tt := range []struct {
		name   string
		token  string
		reason caproto.Reason
	}{
		{"not a JWT", "a.b.c", invalid},
		{"no x5cInsecure", signed(key, nil, claims), invalid},
		{"x5cInsecure not a list", signed(key, base64.StdEncoding.EncodeToString(cert.Raw), claims), invalid},
		{"x5cInsecure not strings", signed(key, []int{1}, claims), invalid},
		{"x5cInsecure not base64", signed(key, []string{"!"}, claims), invalid},
		{"x5cInsecure not a certificate", signed(key, x5c([]byte{0x30, 0}), claims), invalid},
		{"not signed by the certificate's key", signed(pkitest.Key(t, pkitest.P256+"#other"), x5c(cert.Raw), claims), invalid},
		{"wrong audience", e.renewToken(cert, key, "https://elsewhere.test/1.0/renew", now), invalid},
		{"sign audience", e.renewToken(cert, key, "https://"+caHost+caproto.PathSign, now), invalid},
		{"no exp", signed(key, x5c(cert.Raw), noExp), invalid},
		{"expired", e.renewToken(cert, key, "", now.Add(-7*time.Minute)), caproto.ReasonTokenExpired},
		{"not valid yet", e.renewToken(cert, key, "", now.Add(2*time.Minute)), caproto.ReasonTokenNotYetValid},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.a.RenewWithToken(tt.token)
			refused(t, err, ca.KindUnauthorized, tt.reason)
		})
	}
}

// TestRenewalWindows: an expired certificate renews only within the
// provisioner's renewAfterExpiry grace, on its own key's token.
func TestRenewalWindows(t *testing.T) {
	t.Run("no grace", func(t *testing.T) {
		e := newAuthority(t, authorityOptions{})
		cert, key := e.sign("gitlab-runner", "1h")
		e.clock.Set(cert.NotAfter) // its last moment
		if _, err := e.a.Renew(e.chain(cert)); err != nil {
			t.Fatalf("within its validity: %v", err)
		}
		e.clock.Advance(time.Second)
		_, err := e.a.Renew(e.chain(cert))
		refused(t, err, ca.KindUnauthorized, caproto.ReasonCertExpired)
		_, err = e.a.RenewWithToken(e.renewToken(cert, key, "", e.now()))
		refused(t, err, ca.KindUnauthorized, caproto.ReasonCertExpired)
	})
	t.Run("grace", func(t *testing.T) {
		e := newAuthority(t, authorityOptions{renewAfterExpiry: "2h"})
		cert, key := e.sign("gitlab-runner", "1h")
		e.clock.Set(cert.NotAfter.Add(2 * time.Hour)) // the grace's last moment
		if _, err := e.a.RenewWithToken(e.renewToken(cert, key, "", e.now())); err != nil {
			t.Fatalf("within the grace: %v", err)
		}
		e.clock.Advance(time.Second)
		_, err := e.a.RenewWithToken(e.renewToken(cert, key, "", e.now()))
		refused(t, err, ca.KindUnauthorized, caproto.ReasonCertExpired)
	})
	t.Run("grace is for renewal only", func(t *testing.T) {
		e := newAuthority(t, authorityOptions{renewAfterExpiry: "2h"})
		cert, _ := e.sign("gitlab-runner", "1h")
		e.clock.Advance(90 * time.Minute)
		err := e.a.Revoke(ca.RevokeRequest{Serial: cert.SerialNumber.String(), Peer: e.chain(cert), Passive: true})
		refused(t, err, ca.KindUnauthorized, caproto.ReasonCertExpired)
	})
	t.Run("renewal disabled", func(t *testing.T) {
		e := newAuthority(t, authorityOptions{disableRenewal: true})
		cert, _ := e.sign("gitlab-runner", "")
		_, err := e.a.Renew(e.chain(cert))
		refused(t, err, ca.KindUnauthorized, caproto.ReasonRenewalDisabled)
	})
	t.Run("revoked", func(t *testing.T) {
		e := newAuthority(t, authorityOptions{})
		cert, key := e.sign("gitlab-runner", "")
		if err := e.a.Revoke(ca.RevokeRequest{Serial: cert.SerialNumber.String(), Operator: true, Passive: true}); err != nil {
			t.Fatal(err)
		}
		_, err := e.a.Renew(e.chain(cert))
		refused(t, err, ca.KindUnauthorized, caproto.ReasonCertRevoked)
		_, err = e.a.RenewWithToken(e.renewToken(cert, key, "", e.now()))
		refused(t, err, ca.KindUnauthorized, caproto.ReasonCertRevoked)
	})
	t.Run("the intermediate expired", func(t *testing.T) {
		e := newAuthority(t, authorityOptions{renewAfterExpiry: "175200h"})
		cert, _ := e.sign("gitlab-runner", "")
		e.clock.Set(e.inter.Cert.NotAfter.Add(time.Second))
		_, err := e.a.Renew(e.chain(cert))
		refused(t, err, ca.KindUnauthorized, "")
	})
}

// TestRenewAppliesTodaysPolicy: after a reload, renewals follow the new
// policy: names, maximum lifetime, and the provisioner's existence.
func TestRenewAppliesTodaysPolicy(t *testing.T) {
	e := newAuthority(t, authorityOptions{})
	cert, _ := e.sign("gitlab-runner", "48h")
	reload := func(edit func(*ca.Config)) {
		cfg, err := ca.ParseConfig([]byte(e.yaml))
		if err != nil {
			t.Fatal(err)
		}
		edit(cfg)
		e.a.Reload(cfg)
	}
	reload(func(c *ca.Config) {
		c.Provisioners[admin].MaxDuration = ca.Duration(time.Hour)
		c.Provisioners[admin].DefaultDuration = ca.Duration(time.Hour)
	})
	iss, err := e.a.Renew(e.chain(cert))
	if err != nil {
		t.Fatal(err)
	}
	if got := iss.Certificate.NotAfter.Sub(iss.Certificate.NotBefore); got != time.Hour+time.Minute {
		t.Errorf("renewed for %s, want the new maximum (and the backdate)", got)
	}
	reload(func(c *ca.Config) { c.Provisioners[admin].Allow = []string{"other-*"} })
	_, err = e.a.Renew(e.chain(cert))
	refused(t, err, ca.KindForbidden, caproto.ReasonNameNotAllowed)
	reload(func(c *ca.Config) { c.Provisioners = c.Provisioners[1:] })
	_, err = e.a.Renew(e.chain(cert))
	refused(t, err, ca.KindUnauthorized, caproto.ReasonCertUnknown)
	if got := e.a.Provisioners(); len(got) != 2 || got[0].Name != "runners" {
		t.Errorf("provisioners after the reload: %v", got)
	}
}

func TestRevoke(t *testing.T) {
	e := newAuthority(t, authorityOptions{})
	byToken, _ := e.sign("gitlab-runner", "")
	bySelf, _ := e.sign("gitlab-runner", "")
	serial := byToken.SerialNumber.String()
	token := e.token(tok{sub: serial, aud: caproto.PathRevoke})
	if err := e.a.Revoke(ca.RevokeRequest{Serial: "0x" + byToken.SerialNumber.Text(16), Token: token, ReasonCode: 1, Reason: "key compromise", Passive: true}); err != nil {
		t.Fatal(err)
	}
	rev, err := e.store.Revocation(serial)
	if err != nil || rev.ReasonCode != 1 || rev.Reason != "key compromise" || rev.Via != "token:admin" || !rev.RevokedAt.Equal(e.now()) || !rev.NotAfter.Equal(byToken.NotAfter) {
		t.Errorf("revocation %+v, %v", rev, err)
	}
	// The token was spent.
	err = e.a.Revoke(ca.RevokeRequest{Serial: serial, Token: token, Passive: true})
	refused(t, err, ca.KindUnauthorized, caproto.ReasonTokenUsed)

	if err := e.a.Revoke(ca.RevokeRequest{Serial: bySelf.SerialNumber.String(), Peer: e.chain(bySelf), ReasonCode: 4, Passive: true}); err != nil {
		t.Fatal(err)
	}
	if rev, err := e.store.Revocation(bySelf.SerialNumber.String()); err != nil || rev.Via != "mtls" || rev.ReasonCode != 4 {
		t.Errorf("revocation over mTLS %+v, %v", rev, err)
	}

	// The operator may revoke what the CA has no record of; it stays on
	// the CRL for the longest lifetime any provisioner allows.
	if err := e.a.Revoke(ca.RevokeRequest{Serial: "12345", Operator: true, Passive: true}); err != nil {
		t.Fatal(err)
	}
	if rev, err := e.store.Revocation("12345"); err != nil || rev.Via != "cli" || !rev.NotAfter.Equal(e.now().Add(ca.DefaultMaxLifetime)) {
		t.Errorf("operator revocation %+v, %v", rev, err)
	}
	// A second revocation keeps the first record.
	if err := e.a.Revoke(ca.RevokeRequest{Serial: serial, Operator: true, ReasonCode: 5, Passive: true}); err != nil {
		t.Fatal(err)
	}
	if rev, _ := e.store.Revocation(serial); rev.ReasonCode != 1 {
		t.Errorf("the second revocation replaced the first: %+v", rev)
	}
}

// TestRevokeRefuses breaks one thing about a revocation the CA grants.
func TestRevokeRefuses(t *testing.T) {
	e := newAuthority(t, authorityOptions{})
	cert, _ := e.sign("gitlab-runner", "")
	other, _ := e.sign("gitlab-runner", "")
	serial := cert.SerialNumber.String()
	revokeToken := func(o tok) string {
		if o.sub == "" {
			o.sub = serial
		}
		if o.aud == "" {
			o.aud = caproto.PathRevoke
		}
		return e.token(o)
	}
	if err := e.a.Revoke(ca.RevokeRequest{Serial: other.SerialNumber.String(), Token: revokeToken(tok{sub: other.SerialNumber.String()}), Passive: true}); err != nil {
		t.Fatalf("the baseline revocation is refused: %v", err)
	}
	for _, tt := range []struct {
		name   string
		req    ca.RevokeRequest
		kind   ca.Kind
		reason caproto.Reason
	}{
		{"active revocation", ca.RevokeRequest{Serial: serial, Token: revokeToken(tok{})}, ca.KindNotImplemented, ""},
		{"serial not a number", ca.RevokeRequest{Serial: "12x", Token: revokeToken(tok{}), Passive: true}, ca.KindBadRequest, ""},
		{"serial zero", ca.RevokeRequest{Serial: "0", Operator: true, Passive: true}, ca.KindBadRequest, ""},
		{"serial negative", ca.RevokeRequest{Serial: "-" + serial, Operator: true, Passive: true}, ca.KindBadRequest, ""},
		{"reasonCode 7 (unused in RFC 5280)", ca.RevokeRequest{Serial: serial, Token: revokeToken(tok{}), ReasonCode: 7, Passive: true}, ca.KindBadRequest, ""},
		{"reasonCode 11", ca.RevokeRequest{Serial: serial, Token: revokeToken(tok{}), ReasonCode: 11, Passive: true}, ca.KindBadRequest, ""},
		{"reasonCode negative", ca.RevokeRequest{Serial: serial, Token: revokeToken(tok{}), ReasonCode: -1, Passive: true}, ca.KindBadRequest, ""},
		{"neither token nor certificate", ca.RevokeRequest{Serial: serial, Passive: true}, ca.KindUnauthorized, ""},
		{"a sign token", ca.RevokeRequest{Serial: serial, Token: revokeToken(tok{aud: caproto.PathSign}), Passive: true}, ca.KindUnauthorized, caproto.ReasonTokenInvalid},
		{"an expired token", ca.RevokeRequest{Serial: serial, Token: revokeToken(tok{at: e.now().Add(-7 * time.Minute)}), Passive: true}, ca.KindUnauthorized, caproto.ReasonTokenExpired},
		{"a token for another serial", ca.RevokeRequest{Serial: serial, Token: revokeToken(tok{sub: "12345"}), Passive: true}, ca.KindForbidden, ""},
		{"a token of another provisioner", ca.RevokeRequest{Serial: serial, Token: revokeToken(tok{prov: runners}), Passive: true}, ca.KindForbidden, ""},
		{"a serial the CA did not issue", ca.RevokeRequest{Serial: "12345", Token: revokeToken(tok{sub: "12345"}), Passive: true}, ca.KindForbidden, ""},
		{"a revoked certificate over mTLS", ca.RevokeRequest{Serial: other.SerialNumber.String(), Peer: e.chain(other), Passive: true}, ca.KindUnauthorized, caproto.ReasonCertRevoked},
		{"a certificate revoking another", ca.RevokeRequest{Serial: "12345", Peer: e.chain(cert), Passive: true}, ca.KindForbidden, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before, err := e.store.Revocations()
			if err != nil {
				t.Fatal(err)
			}
			refused(t, e.a.Revoke(tt.req), tt.kind, tt.reason)
			if after, _ := e.store.Revocations(); len(after) != len(before) {
				t.Error("a refused revocation was recorded")
			}
		})
	}
}

func TestCRL(t *testing.T) {
	e := newAuthority(t, authorityOptions{crlValidity: "12h"})
	parse := func() *x509.RevocationList {
		t.Helper()
		der, err := e.a.CRL()
		if err != nil {
			t.Fatal(err)
		}
		l, err := x509.ParseRevocationList(der)
		if err != nil {
			t.Fatal(err)
		}
		if err := l.CheckSignatureFrom(e.inter.Cert); err != nil {
			t.Fatalf("CRL signature: %v", err)
		}
		return l
	}
	empty := parse()
	if len(empty.RevokedCertificateEntries) != 0 || !empty.ThisUpdate.Equal(e.now().Add(-time.Minute)) || !empty.NextUpdate.Equal(e.now().Add(12*time.Hour)) {
		t.Errorf("empty CRL: %d entries, %s to %s", len(empty.RevokedCertificateEntries), empty.ThisUpdate, empty.NextUpdate)
	}
	short, _ := e.sign("gitlab-runner", "1h")
	long, _ := e.sign("gitlab-runner", "48h")
	// Until something changes, the CRL is the same one.
	if again := parse(); again.Number.Cmp(empty.Number) != 0 {
		t.Error("the CRL was remade with nothing revoked")
	}
	for i, c := range []*x509.Certificate{short, long} {
		if err := e.a.Revoke(ca.RevokeRequest{Serial: c.SerialNumber.String(), Operator: true, ReasonCode: i + 1, Passive: true}); err != nil {
			t.Fatal(err)
		}
	}
	l := parse()
	got := map[string]int{}
	for _, r := range l.RevokedCertificateEntries {
		got[r.SerialNumber.String()] = r.ReasonCode
		if !r.RevocationTime.Equal(e.now()) {
			t.Errorf("revocation time %s", r.RevocationTime)
		}
	}
	if len(got) != 2 || got[short.SerialNumber.String()] != 1 || got[long.SerialNumber.String()] != 2 {
		t.Errorf("CRL entries %v", got)
	}
	// Remade when half its validity has passed; a revoked certificate
	// that expired leaves it.
	e.clock.Advance(6*time.Hour - time.Second)
	if parse().Number.Cmp(l.Number) != 0 {
		t.Error("remade before half its validity")
	}
	e.clock.Advance(time.Second)
	l2 := parse()
	if l2.Number.Cmp(l.Number) <= 0 || len(l2.RevokedCertificateEntries) != 1 || l2.RevokedCertificateEntries[0].SerialNumber.Cmp(long.SerialNumber) != 0 {
		t.Errorf("after 6h: number %s (was %s), %d entries", l2.Number, l.Number, len(l2.RevokedCertificateEntries))
	}
}

func TestListCertificates(t *testing.T) {
	e := newAuthority(t, authorityOptions{})
	a, _ := e.sign("gitlab-runner", "")
	e.clock.Advance(time.Second)
	b, _ := e.sign("gitlab-runner-2", "")
	if err := e.a.Revoke(ca.RevokeRequest{Serial: a.SerialNumber.String(), Operator: true, Passive: true}); err != nil {
		t.Fatal(err)
	}
	token := e.token(tok{sub: "list", aud: "/1.0/" + caproto.ListOp})
	list, err := listCertificates(e.a, token, caproto.ListFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Serial != a.SerialNumber.String() || !list[0].Revoked || list[1].Serial != b.SerialNumber.String() || list[1].Revoked ||
		list[1].Subject != "gitlab-runner-2" || list[1].Provisioner != "admin" {
		t.Errorf("list %+v", list)
	}
	_, err = listCertificates(e.a, token, caproto.ListFilter{})
	refused(t, err, ca.KindUnauthorized, caproto.ReasonTokenUsed)
	_, err = listCertificates(e.a, e.token(tok{sub: "list"}), caproto.ListFilter{})
	refused(t, err, ca.KindUnauthorized, caproto.ReasonTokenInvalid)
}

// listCertificates collects what ListCertificates lists.
func listCertificates(a *ca.Authority, token string, f caproto.ListFilter) ([]caproto.Certificate, error) {
	var out []caproto.Certificate
	err := a.ListCertificates(token, f, func(c caproto.Certificate) error {
		out = append(out, c)
		return nil
	})
	return out, err
}

func TestNewChecksItsKeys(t *testing.T) {
	e := newAuthority(t, authorityOptions{})
	cfg, err := ca.ParseConfig([]byte(e.yaml))
	if err != nil {
		t.Fatal(err)
	}
	other := pkitest.NewRoot(t, "direct-new-other")
	for name, o := range map[string]ca.Options{
		"no store":                   {Config: cfg, Root: e.root.Cert, Intermediate: e.inter.Cert, Key: e.inter.Key},
		"no config":                  {Root: e.root.Cert, Intermediate: e.inter.Cert, Key: e.inter.Key, Store: e.store},
		"another root":               {Config: cfg, Root: other.Cert, Intermediate: e.inter.Cert, Key: e.inter.Key, Store: e.store},
		"not the intermediate's key": {Config: cfg, Root: e.root.Cert, Intermediate: e.inter.Cert, Key: other.Key, Store: e.store},
	} {
		if _, err := ca.New(o); err == nil {
			t.Errorf("%s: New succeeded", name)
		}
	}
}

func TestAuthorityInfo(t *testing.T) {
	e := newAuthority(t, authorityOptions{})
	sum := sha256.Sum256(e.root.Cert.Raw)
	if e.a.RootFingerprint() != hex.EncodeToString(sum[:]) || !e.a.Root().Equal(e.root.Cert) || !e.a.Intermediate().Equal(e.inter.Cert) ||
		!slices.Equal(e.a.DNSNames(), []string{caHost, "127.0.0.1"}) || len(e.a.Provisioners()) != 3 {
		t.Error("the authority does not describe its CA")
	}
	key := pkitest.Key(t, pkitest.P256+"#server")
	c, err := e.a.IssueServerCertificate(key.Public(), 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.DNSNames, []string{caHost}) || len(c.IPAddresses) != 1 || !slices.Equal(c.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}) ||
		!c.NotAfter.Equal(e.now().Add(24*time.Hour)) {
		t.Errorf("server certificate: DNS %v, IP %v, EKU %v, until %s", c.DNSNames, c.IPAddresses, c.ExtKeyUsage, c.NotAfter)
	}
	if e.certificateCount() != 0 {
		t.Error("the server certificate was recorded")
	}
}

func TestErrorKinds(t *testing.T) {
	cause := errors.New("disk full")
	e := &ca.Error{Kind: ca.KindInternal, Message: "recording", Err: cause}
	if e.Error() != "recording: disk full" || !errors.Is(e, cause) || ca.KindOf(cause) != ca.KindInternal || ca.KindOf(fmt.Errorf("x: %w", &ca.Error{Kind: ca.KindNotFound})) != ca.KindNotFound {
		t.Errorf("%q", e.Error())
	}
}

// TestConfigPolicy: the configuration's durations are checked, and
// missing ones take the documented defaults.
func TestConfigPolicy(t *testing.T) {
	key := publicJSON(t, provisionerKey(t))
	head := "name: x\naddress: :9000\ndnsNames: [a]\nroot: r\ncrt: c\nkey: k\ndb: d\n"
	prov := func(extra string) string {
		return head + "provisioners:\n  - name: p\n    type: JWK\n    key: '" + key + "'\n    allow: [a]" + extra + "\n"
	}
	cfg, err := ca.ParseConfig([]byte(prov("")))
	if err != nil {
		t.Fatal(err)
	}
	p := cfg.Provisioners[0]
	if time.Duration(p.DefaultDuration) != ca.DefaultLifetime || time.Duration(p.MinDuration) != ca.DefaultMinLifetime ||
		time.Duration(p.MaxDuration) != ca.DefaultMaxLifetime || time.Duration(cfg.CRLValidity) != 24*time.Hour {
		t.Errorf("defaults: %+v, CRL %s", p, time.Duration(cfg.CRLValidity))
	}
	for name, doc := range map[string]string{
		"min above default":       prov("\n    minDuration: 2h\n    defaultDuration: 1h"),
		"default above max":       prov("\n    defaultDuration: 200h\n    maxDuration: 100h"),
		"negative duration":       prov("\n    maxDuration: -1h"),
		"not a duration":          prov("\n    maxDuration: forever"),
		"unknown field":           prov("\n    maxLifetime: 1h"),
		"empty allow pattern":     head + "provisioners:\n  - name: p\n    type: JWK\n    key: '" + key + "'\n    allow: ['']\n",
		"not JWK":                 head + "provisioners:\n  - name: p\n    type: OIDC\n    key: '" + key + "'\n",
		"private key":             head + "provisioners:\n  - name: p\n    type: JWK\n    key: '{\"kty\":\"oct\",\"k\":\"AAAA\"}'\n",
		"provisioner named twice": prov("") + "  - name: p\n    type: JWK\n    key: '" + key + "'\n",
		"no provisioners":         head,
		"no dnsNames":             strings.Replace(prov(""), "dnsNames: [a]\n", "", 1),
		"empty":                   "",
	} {
		if _, err := ca.ParseConfig([]byte(doc)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestInitAndOpen makes a CA directory as `keyless ca init` does, opens
// it as `keyless ca serve` does, and issues from it with a token made
// from the provisioner password.
func TestInitAndOpen(t *testing.T) {
	t.Parallel() // the key encryption's 600,000-round PBKDF2 is slow under -race
	dir := t.TempDir()
	now := time.Now().Truncate(time.Second)
	cfg, err := ca.Init(dir, ca.InitOptions{Name: "Init CA", DNSNames: []string{caHost}, Address: "127.0.0.1:0", Provisioner: "runners",
		Password: []byte("ca password"), ProvisionerPassword: []byte("provisioner password"), Allow: []string{"gitlab-runner"}, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ca.Init(dir, ca.InitOptions{Name: "x", DNSNames: []string{"x"}, Address: ":1", Provisioner: "p", Password: []byte("p")}); !errors.Is(err, ca.ErrExists) {
		t.Errorf("a second Init: %v, want ErrExists", err)
	}
	loaded, err := ca.LoadConfig(dir)
	if err != nil || loaded.Name != "Init CA" || loaded.Path(loaded.DB) != cfg.Path(cfg.DB) {
		t.Fatalf("LoadConfig: %v", err)
	}
	if _, _, err := ca.Open(loaded, []byte("wrong"), ca.OpenOptions{}); !errors.Is(err, pki.ErrIncorrectPassword) {
		t.Errorf("wrong password: %v", err)
	}
	a, st, err := ca.Open(loaded, []byte("ca password"), ca.OpenOptions{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if a.Root().NotAfter.Sub(a.Root().NotBefore) < 10*365*24*time.Hour || !a.Intermediate().IsCA {
		t.Errorf("root valid %s to %s", a.Root().NotBefore, a.Root().NotAfter)
	}
	key, err := caproto.DecryptProvisionerKey(loaded.Provisioners[0].EncryptedKey, []byte("provisioner password"))
	if err != nil {
		t.Fatal(err)
	}
	token, err := caproto.NewToken(caproto.TokenOptions{Provisioner: "runners", Key: key, Subject: "gitlab-runner", Audience: (&url.URL{Scheme: "https", Host: caHost, Path: caproto.PathSign}).String(), Now: now})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Sign(ca.SignRequest{CSR: csr(t, nil, "gitlab-runner"), Token: token}); err != nil {
		t.Fatalf("signing with the new CA: %v", err)
	}
}

// TestInitRSA: Init makes RSA CAs too, signing with SHA-256.
func TestInitRSA(t *testing.T) {
	if testing.Short() {
		t.Skip("RSA 3072 generation is slow")
	}
	t.Parallel()
	cfg, err := ca.Init(t.TempDir(), ca.InitOptions{Name: "RSA CA", DNSNames: []string{caHost}, Address: ":1", Provisioner: "p", Password: []byte("pw"), KeyType: "RSA"})
	if err != nil {
		t.Fatal(err)
	}
	root, inter, err := ca.LoadCertificates(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := root.PublicKey.(*rsa.PublicKey); !ok || inter.SignatureAlgorithm != x509.SHA256WithRSA {
		t.Errorf("root key %T, intermediate signed with %s", root.PublicKey, inter.SignatureAlgorithm)
	}
}

// TestStoreFailureIsInternal: when the store fails (here: it is closed),
// every operation is the CA's own error, with the cause kept for the log
// and out of the message.
func TestStoreFailureIsInternal(t *testing.T) {
	e := newAuthority(t, authorityOptions{})
	cert, _ := e.sign("gitlab-runner", "")
	if err := e.store.Close(); err != nil {
		t.Fatal(err)
	}
	_, signErr := e.a.Sign(ca.SignRequest{CSR: csr(t, nil, "gitlab-runner"), Token: e.token(tok{})})
	_, renewErr := e.a.Renew(e.chain(cert))
	_, crlErr := e.a.CRL()
	_, listErr := listCertificates(e.a, e.token(tok{sub: "list", aud: "/1.0/" + caproto.ListOp}), caproto.ListFilter{})
	for name, err := range map[string]error{
		"sign":   signErr,
		"renew":  renewErr,
		"revoke": e.a.Revoke(ca.RevokeRequest{Serial: cert.SerialNumber.String(), Operator: true, Passive: true}),
		"crl":    crlErr,
		"list":   listErr,
	} {
		ce := refused(t, err, ca.KindInternal, "")
		if ce.Err == nil || strings.Contains(ce.Message, ce.Err.Error()) {
			t.Errorf("%s: message %q, cause %v", name, ce.Message, ce.Err)
		}
	}
}

// TestAllowPatternsChecked: a URI pattern must be scheme://host/path and
// an email pattern hold an @, or the configuration does not load.
func TestAllowPatternsChecked(t *testing.T) {
	e := newAuthority(t, authorityOptions{})
	for pat, want := range map[string]string{
		`"uri:spiffe://ci/runner/*"`:    "",
		`"email:*@ci.example.com"`:      "",
		`"uri:*"`:                       `URI pattern "uri:*" must be scheme://host/path`,
		`"uri:https://*.example.com#x"`: "must be scheme://host/path, with no user, query or fragment",
		`"uri:https://u@*.example.com"`: "with no user",
		`"email:ci.example.com"`:        `email pattern "email:ci.example.com" must hold an @`,
		`"uri:"`:                        "empty pattern",
	} {
		y := strings.Replace(e.yaml, `allow: ["*.svc.test"]`, "allow: ["+pat+"]", 1)
		_, err := ca.ParseConfig([]byte(y))
		switch {
		case want == "" && err != nil:
			t.Errorf("%s: refused: %v", pat, err)
		case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
			t.Errorf("%s: got %v, want an error with %q", pat, err, want)
		}
	}
}

// TestRevokeIsOfTheKey: renewal keeps the key, so revoking one
// certificate revokes every unexpired certificate for its key, and no
// certificate for that key renews again (the second attack review renewed
// the chain's first certificate after its last was revoked).
func TestRevokeIsOfTheKey(t *testing.T) {
	e := newAuthority(t, authorityOptions{})
	first, _ := e.sign("gitlab-runner", "48h")
	chain := []*x509.Certificate{first}
	for range 3 {
		e.clock.Advance(time.Hour)
		iss, err := e.a.Renew(e.chain(chain[len(chain)-1]))
		if err != nil {
			t.Fatal(err)
		}
		chain = append(chain, iss.Certificate)
	}
	// Another key's certificate stays valid.
	otherKey := pkitest.Key(t, pkitest.P256+"#other")
	other, err := e.a.Sign(ca.SignRequest{CSR: csr(t, otherKey, "gitlab-runner"), Token: e.token(tok{sub: "gitlab-runner"})})
	if err != nil {
		t.Fatal(err)
	}
	last := chain[len(chain)-1].SerialNumber.String()
	if err := e.a.Revoke(ca.RevokeRequest{Serial: last, Operator: true, ReasonCode: 1, Reason: "key compromise", Passive: true}); err != nil {
		t.Fatal(err)
	}
	for _, c := range chain[:len(chain)-1] {
		rev, err := e.store.Revocation(c.SerialNumber.String())
		if err != nil || rev.ReasonCode != 1 || rev.Via != "cli" || rev.Reason != "key compromise (same key as revoked "+last+")" || !rev.NotAfter.Equal(c.NotAfter) {
			t.Errorf("certificate %s, same key: %+v, %v", c.SerialNumber, rev, err)
		}
		_, err = e.a.Renew(e.chain(c))
		refused(t, err, ca.KindUnauthorized, caproto.ReasonCertRevoked)
	}
	if _, err := e.store.Revocation(other.Certificate.SerialNumber.String()); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("another key's certificate was revoked: %v", err)
	}
	if _, err := e.a.Renew(e.chain(other.Certificate)); err != nil {
		t.Errorf("another key's certificate does not renew: %v", err)
	}
}

// TestRenewRefusesARevokedKey: a certificate whose own serial is not
// revoked, but whose key's is (revoked before this rule, or revoked in
// the store directly), does not renew.
func TestRenewRefusesARevokedKey(t *testing.T) {
	e := newAuthority(t, authorityOptions{})
	first, _ := e.sign("gitlab-runner", "48h")
	iss, err := e.a.Renew(e.chain(first))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.store.Revoke(&store.Revocation{Serial: iss.Certificate.SerialNumber.String(), RevokedAt: e.now(), NotAfter: iss.Certificate.NotAfter, Via: "cli"}); err != nil {
		t.Fatal(err)
	}
	_, err = e.a.Renew(e.chain(first))
	refused(t, err, ca.KindUnauthorized, caproto.ReasonCertRevoked)
	if err == nil || !strings.Contains(err.Error(), "holds the key of revoked certificate "+iss.Certificate.SerialNumber.String()) {
		t.Errorf("refusal: %v", err)
	}
}

// revokeDuring is a store whose first RevokedKey call runs hook after
// reading, and returns what it read: a revocation that lands just after
// an issuer checked the key.
type revokeDuring struct {
	store.Store
	hook func()
}

func (s *revokeDuring) RevokedKey(spki []byte) (string, error) {
	serial, err := s.Store.RevokedKey(spki)
	if h := s.hook; h != nil {
		s.hook = nil
		h()
	}
	return serial, err
}

// TestRevocationRacingAnIssue: a key revoked between a renewal's (or an
// enrollment's) check and its certificate's record (the third attack
// review) leaves no valid certificate for it: the issuer looks again and
// revokes what it issued.
func TestRevocationRacingAnIssue(t *testing.T) {
	for _, how := range []string{"renew", "sign"} {
		t.Run(how, func(t *testing.T) {
			e := newAuthority(t, authorityOptions{})
			first, key := e.sign("gitlab-runner", "48h")
			second, err := e.a.Renew(e.chain(first))
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := ca.ParseConfig([]byte(e.yaml))
			if err != nil {
				t.Fatal(err)
			}
			racing := &revokeDuring{Store: e.store}
			a, err := ca.New(ca.Options{Config: cfg, Root: e.root.Cert, Intermediate: e.inter.Cert, Key: e.inter.Key, Store: racing, Now: e.clock.Now})
			if err != nil {
				t.Fatal(err)
			}
			racing.hook = func() {
				if err := a.Revoke(ca.RevokeRequest{Serial: second.Certificate.SerialNumber.String(), Operator: true, Passive: true}); err != nil {
					t.Error(err)
				}
			}
			before := e.certificateCount()
			if how == "renew" {
				_, err = a.Renew(e.chain(first))
			} else {
				_, err = a.Sign(ca.SignRequest{CSR: csr(t, key, "gitlab-runner"), Token: e.token(tok{sub: "gitlab-runner"})})
			}
			refused(t, err, ca.KindUnauthorized, caproto.ReasonCertRevoked)
			if e.certificateCount() != before+1 {
				t.Fatalf("want the racing certificate recorded (and revoked): %d certificates, had %d", e.certificateCount(), before)
			}
			var unrevoked []string
			e.store.Certificates(func(c *store.Certificate) bool {
				if _, err := e.store.Revocation(c.Serial); err != nil {
					unrevoked = append(unrevoked, c.Serial)
				}
				return true
			})
			if len(unrevoked) > 0 {
				t.Errorf("certificates for the revoked key left valid: %v", unrevoked)
			}
		})
	}
}

// TestSignRefusesARevokedKey: enrolling again with a revoked key is
// refused before the token is spent.
func TestSignRefusesARevokedKey(t *testing.T) {
	e := newAuthority(t, authorityOptions{})
	cert, key := e.sign("gitlab-runner", "")
	if err := e.a.Revoke(ca.RevokeRequest{Serial: cert.SerialNumber.String(), Operator: true, Passive: true}); err != nil {
		t.Fatal(err)
	}
	token := e.token(tok{sub: "gitlab-runner"})
	_, err := e.a.Sign(ca.SignRequest{CSR: csr(t, key, "gitlab-runner"), Token: token})
	refused(t, err, ca.KindForbidden, caproto.ReasonCertRevoked)
	fresh := pkitest.Key(t, pkitest.P256+"#fresh")
	if _, err := e.a.Sign(ca.SignRequest{CSR: csr(t, fresh, "gitlab-runner"), Token: token}); err != nil {
		t.Errorf("a new key with the same token: %v", err)
	}
}

// TestRevokeByTokenKeepsToItsProvisioner: a provisioner's revoke token
// revokes the key's other certificates only where that provisioner
// issued them, as for the serial it names.
func TestRevokeByTokenKeepsToItsProvisioner(t *testing.T) {
	e := newAuthority(t, authorityOptions{})
	key := pkitest.Key(t, pkitest.P256+"#two-provisioners")
	byAdmin, err := e.a.Sign(ca.SignRequest{CSR: csr(t, key, "gitlab-runner"), Token: e.token(tok{sub: "gitlab-runner"})})
	if err != nil {
		t.Fatal(err)
	}
	var byRunners []*x509.Certificate
	for range 2 {
		iss, err := e.a.Sign(ca.SignRequest{CSR: csr(t, key, "gitlab-runner"), Token: e.token(tok{prov: runners, sub: "gitlab-runner"})})
		if err != nil {
			t.Fatal(err)
		}
		byRunners = append(byRunners, iss.Certificate)
	}
	serial := byRunners[0].SerialNumber.String()
	if err := e.a.Revoke(ca.RevokeRequest{Serial: serial, Token: e.token(tok{prov: runners, sub: serial, aud: caproto.PathRevoke}), Passive: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.Revocation(byRunners[1].SerialNumber.String()); err != nil {
		t.Errorf("the same provisioner's other certificate for the key: %v", err)
	}
	if _, err := e.store.Revocation(byAdmin.Certificate.SerialNumber.String()); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("another provisioner's certificate for the key was revoked by a runners token: %v", err)
	}
}

// TestSharedProvisionerKey: when two provisioners hold the same key, the
// key id names neither, and the token's issuer picks the provisioner (and
// its policy); an issuer that is neither is refused.
func TestSharedProvisionerKey(t *testing.T) {
	root := pkitest.NewLongLivedRoot(t, "shared-root")
	inter := root.Intermediate(t, "shared-int")
	key := provisionerKey(t)
	cfg, err := ca.ParseConfig([]byte(fmt.Sprintf(`name: Shared CA
address: 127.0.0.1:0
dnsNames: [%s]
root: r
crt: c
key: k
db: d
provisioners:
  - name: first
    type: JWK
    key: '%[2]s'
    allow: [other-host]
  - name: second
    type: JWK
    key: '%[2]s'
    allow: [gitlab-runner]
`, caHost, publicJSON(t, key))))
	if err != nil {
		t.Fatal(err)
	}
	a, err := ca.New(ca.Options{Config: cfg, Root: root.Cert, Intermediate: inter.Cert, Key: inter.Key, Store: store.NewMemory()})
	if err != nil {
		t.Fatal(err)
	}
	token := func(iss string) string {
		tok, err := caproto.NewToken(caproto.TokenOptions{Provisioner: iss, Key: key, Subject: "gitlab-runner", Audience: "https://" + caHost + caproto.PathSign})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	if _, err := a.Sign(ca.SignRequest{CSR: csr(t, nil, "gitlab-runner"), Token: token("second")}); err != nil {
		t.Fatalf("a token from second, whose policy allows gitlab-runner: %v", err)
	}
	var ce *ca.Error
	if _, err := a.Sign(ca.SignRequest{CSR: csr(t, nil, "gitlab-runner"), Token: token("first")}); !errors.As(err, &ce) || ce.Reason != caproto.ReasonNameNotAllowed {
		t.Fatalf("a token from first, whose policy does not allow gitlab-runner: %v, want %s", err, caproto.ReasonNameNotAllowed)
	}
	if _, err := a.Sign(ca.SignRequest{CSR: csr(t, nil, "gitlab-runner"), Token: token("nobody")}); !errors.As(err, &ce) || ce.Reason != caproto.ReasonTokenInvalid {
		t.Fatalf("a token from no provisioner: %v, want %s", err, caproto.ReasonTokenInvalid)
	}
}
