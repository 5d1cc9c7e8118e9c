package caapi_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/keyless-dev/keyless/internal/ca"
	"github.com/keyless-dev/keyless/internal/pki"
	"github.com/keyless-dev/keyless/internal/pki/pkitest"
)

func TestSignIssuesRolesAnywhereLeaf(t *testing.T) {
	e := newEnv(t, envOptions{})
	_, req := csr(t, "gitlab-runner")
	r := e.post(e.client, "/1.0/sign", map[string]string{"csr": req, "ott": e.token(tokenOpts{prov: 1}), "notAfter": "168h"}, nil)
	if r.status != http.StatusCreated {
		t.Fatalf("%d %s", r.status, r.message)
	}
	c := r.crt
	if c.Subject.CommonName != "gitlab-runner" || !slices.Equal(c.DNSNames, []string{"gitlab-runner"}) {
		t.Errorf("subject %s, DNS %v", c.Subject, c.DNSNames)
	}
	if c.IsCA || c.KeyUsage != x509.KeyUsageDigitalSignature || !slices.Equal(c.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}) {
		t.Errorf("CA %t, keyUsage %v, EKU %v", c.IsCA, c.KeyUsage, c.ExtKeyUsage)
	}
	if c.SignatureAlgorithm != x509.ECDSAWithSHA256 || c.SerialNumber.BitLen() < 128 {
		t.Errorf("signature %s, serial %d bits", c.SignatureAlgorithm, c.SerialNumber.BitLen())
	}
	if got := c.NotAfter.Sub(e.now()); got != 168*time.Hour {
		t.Errorf("lifetime from now %s, want 168h", got)
	}
	if got := e.now().Sub(c.NotBefore); got != time.Minute {
		t.Errorf("backdated by %s, want 1m", got)
	}
	if err := pki.CheckLeaf(c, e.now()); err != nil {
		t.Errorf("not fit for Roles Anywhere: %v", err)
	}
	if len(r.chain) != 2 || !r.chain[1].Equal(e.inter.Cert) {
		t.Errorf("certChain has %d certificates", len(r.chain))
	}
	roots := x509.NewCertPool()
	roots.AddCert(e.root.Cert)
	inter := x509.NewCertPool()
	inter.AddCert(r.chain[1])
	if _, err := c.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: e.now(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("does not verify: %v", err)
	}
	rec, err := e.store.Certificate(c.SerialNumber.String())
	if err != nil || rec.Provisioner != "runners" || rec.Subject != "gitlab-runner" {
		t.Errorf("store record %+v, %v", rec, err)
	}
}

// TestSignNotBeforeWithinTheToken: a notBefore between now (less the
// backdate) and the token's expiry is taken as given.
func TestSignNotBeforeWithinTheToken(t *testing.T) {
	e := newEnv(t, envOptions{})
	_, req := csr(t, "gitlab-runner")
	for _, nb := range []string{"-1m", "4m"} {
		r := e.post(e.client, "/sign", map[string]string{"csr": req, "ott": e.token(tokenOpts{}), "notBefore": nb, "notAfter": "1h"}, nil)
		if r.status != http.StatusCreated {
			t.Fatalf("notBefore %s: %d %s", nb, r.status, r.message)
		}
		d, _ := time.ParseDuration(nb)
		if !r.crt.NotBefore.Equal(e.now().Add(d)) || r.crt.NotAfter.Sub(r.crt.NotBefore) != time.Hour {
			t.Errorf("notBefore %s: got %s to %s", nb, r.crt.NotBefore, r.crt.NotAfter)
		}
	}
}

// TestSignRefuses breaks each rule once.
func TestSignRefuses(t *testing.T) {
	e := newEnv(t, envOptions{})
	_, goodCSR := csr(t, "gitlab-runner")
	_, otherCSR := csr(t, "other-host", "other-host")
	tampered := func(tok string) string {
		parts := strings.Split(tok, ".")
		claims, _ := base64.RawURLEncoding.DecodeString(parts[1])
		parts[1] = base64.RawURLEncoding.EncodeToString([]byte(strings.Replace(string(claims), "gitlab-runner", "gitlab-runnex", 1)))
		return strings.Join(parts, ".")
	}
	foreignKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	foreign := func() string {
		jwk := jose.JSONWebKey{Key: foreignKey, KeyID: e.keys[0].KeyID, Algorithm: "ES256"}
		s, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jwk}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", jwk.KeyID))
		tok, _ := jwt.Signed(s).Claims(jwt.Claims{Issuer: "admin", Subject: "gitlab-runner", Audience: jwt.Audience{e.url + "/1.0/sign"}, ID: "x1",
			NotBefore: jwt.NewNumericDate(e.now()), Expiry: jwt.NewNumericDate(e.now().Add(5 * time.Minute))}).Serialize()
		return tok
	}
	used := e.token(tokenOpts{})
	if r := e.post(e.client, "/sign", map[string]string{"csr": goodCSR, "ott": used}, nil); r.status != http.StatusCreated {
		t.Fatalf("first use: %d %s", r.status, r.message)
	}
	tests := []struct {
		name   string
		body   any
		status int
		msg    string
	}{
		{"reused token", map[string]string{"csr": goodCSR, "ott": used}, 401, "token already used"},
		{"CSR for another name", map[string]string{"csr": otherCSR, "ott": e.token(tokenOpts{})}, 403, `the CSR asks for names ["other-host"] but the token grants ["gitlab-runner"]`},
		{"CSR common name not granted", map[string]string{"csr": func() string { _, c := csr(t, "other-host"); return c }(), "ott": e.token(tokenOpts{})}, 403, `common name "other-host"`},
		{"expired token", map[string]string{"csr": goodCSR, "ott": e.token(tokenOpts{now: e.now().Add(-10 * time.Minute)})}, 401, "the token expired"},
		{"token not valid yet", map[string]string{"csr": goodCSR, "ott": e.token(tokenOpts{now: e.now().Add(10 * time.Minute)})}, 401, "not valid yet"},
		{"wrong audience", map[string]string{"csr": goodCSR, "ott": e.token(tokenOpts{aud: "https://ca.elsewhere.example/1.0/sign"})}, 401, "audience"},
		{"audience of another operation", map[string]string{"csr": goodCSR, "ott": e.token(tokenOpts{aud: e.url + "/1.0/revoke"})}, 401, "audience"},
		{"tampered token", map[string]string{"csr": goodCSR, "ott": tampered(e.token(tokenOpts{}))}, 401, "signature does not verify"},
		{"unknown provisioner", map[string]string{"csr": goodCSR, "ott": e.token(tokenOpts{name: "nobody"})}, 401, "names no provisioner"},
		{"key not the provisioner's", map[string]string{"csr": goodCSR, "ott": foreign()}, 401, "signature does not verify"},
		{"subject outside the provisioner's patterns", map[string]string{"csr": func() string { _, c := csr(t, "admin-box"); return c }(), "ott": e.token(tokenOpts{prov: 1, sub: "admin-box"})}, 403,
			`provisioner runners may not issue certificates for "admin-box" (allowed: gitlab-runner, gitlab-runner-*)`},
		{"SAN outside the patterns", map[string]string{"csr": goodCSR, "ott": e.token(tokenOpts{prov: 1, sans: []string{"gitlab-runner", "evil"}})}, 403, `may not issue certificates for "evil"`},
		// A pattern for DNS names matches no other kind of name, however
		// it is spelt, and a DNS name must be one.
		{"URI SAN spelt to fit a DNS pattern", map[string]string{"csr": goodCSR, "ott": e.token(tokenOpts{prov: 1, sans: []string{"gitlab-runner", "gitlab-runner-x://evil/admin"}})}, 403,
			`may not issue certificates for the URI name "gitlab-runner-x://evil/admin"`},
		{"email SAN spelt to fit a DNS pattern", map[string]string{"csr": goodCSR, "ott": e.token(tokenOpts{prov: 1, sans: []string{"gitlab-runner", "gitlab-runner-admin@evil.example"}})}, 403,
			`the EMAIL name "gitlab-runner-admin@evil.example"`},
		{"NUL in a DNS SAN", map[string]string{"csr": goodCSR, "ott": e.token(tokenOpts{prov: 1, sans: []string{"gitlab-runner", "gitlab-runner-\x00admin"}})}, 403, `may not issue certificates for "gitlab-runner-\x00admin"`},
		{"lifetime above maximum", map[string]string{"csr": goodCSR, "ott": e.token(tokenOpts{prov: 1}), "notAfter": "169h"}, 403,
			"requested lifetime 169h0m0s is more than the maximum of 168h0m0s for provisioner runners"},
		{"lifetime below minimum", map[string]string{"csr": goodCSR, "ott": e.token(tokenOpts{}), "notAfter": "4m"}, 403, "less than the minimum of 5m0s"},
		{"malformed JSON", `{"csr":`, 400, "malformed JSON body"},
		{"malformed PEM", map[string]string{"csr": "not a csr", "ott": e.token(tokenOpts{})}, 400, "csr is not PEM"},
		{"CSR with a bad signature", map[string]string{"csr": badSignatureCSR(t, goodCSR), "ott": e.token(tokenOpts{})}, 400, "signature does not verify"},
		{"missing token", map[string]string{"csr": goodCSR}, 400, "needs csr (PEM) and ott"},
		{"bad notAfter", map[string]string{"csr": goodCSR, "ott": e.token(tokenOpts{}), "notAfter": "tomorrow"}, 400, "notAfter"},
		// A 5-minute token bought a certificate valid from 2031.
		{"notBefore years ahead", map[string]string{"csr": goodCSR, "ott": e.token(tokenOpts{}), "notBefore": "2031-01-01T00:00:00Z", "notAfter": "168h"}, 403,
			"notBefore 2031-01-01T00:00:00Z is after the token expires"},
		{"notBefore after the token expires", map[string]string{"csr": goodCSR, "ott": e.token(tokenOpts{}), "notBefore": "6m"}, 403, "is after the token expires"},
		{"notBefore in the past", map[string]string{"csr": goodCSR, "ott": e.token(tokenOpts{}), "notBefore": "-2m"}, 403, "is in the past"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.post(e.client, "/sign", tt.body, nil)
			expect(t, r, tt.status, tt.msg)
		})
	}
}

func badSignatureCSR(t *testing.T, good string) string {
	block, _ := pem.Decode([]byte(good))
	der := append([]byte(nil), block.Bytes...)
	der[len(der)-5] ^= 0xff
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
}

func TestDiscoveryRoutes(t *testing.T) {
	e := newEnv(t, envOptions{})
	get := func(path string) (int, string, string) {
		resp, err := e.client.Get(e.url + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("Content-Type"), string(b)
	}
	sum := sha256.Sum256(e.root.Cert.Raw)
	fp := hex.EncodeToString(sum[:])
	for _, tt := range []struct {
		path, want string
		status     int
	}{
		{"/health", `{"status":"ok"}`, 200},
		{"/1.0/health", `{"status":"ok"}`, 200},
		{"/version", `"version":"keyless"`, 200},
		{"/root/" + fp, `{"ca":"-----BEGIN CERTIFICATE-----`, 200},
		{"/root/" + strings.ToUpper(fp[:8]) + "-" + fp[8:], `"ca"`, 200},
		{"/root/" + strings.Repeat("0", 64), `"status":404`, 404},
		{"/roots", `{"crts":["-----BEGIN CERTIFICATE-----`, 201},
		{"/intermediates", `{"crts":["-----BEGIN CERTIFICATE-----`, 201},
		{"/roots.pem", "-----BEGIN CERTIFICATE-----", 200},
		{"/1.0/intermediates.pem", "-----BEGIN CERTIFICATE-----", 200},
		{"/provisioners?limit=100", `"encryptedKey":"eyJ`, 200},
		{"/provisioners/" + e.keys[1].KeyID + "/encrypted-key", `{"key":"eyJ`, 200},
		{"/provisioners/nope/encrypted-key", `"status":404`, 404},
		{"/crl?pem", "-----BEGIN X509 CRL-----", 200},
	} {
		status, _, body := get(tt.path)
		if status != tt.status || !strings.Contains(body, tt.want) {
			t.Errorf("GET %s: %d %.120s, want %d with %s", tt.path, status, body, tt.status, tt.want)
		}
	}
	status, ctype, body := get("/crl")
	if _, err := x509.ParseRevocationList([]byte(body)); status != 200 || ctype != "application/pkix-crl" || err != nil {
		t.Errorf("GET /crl: %d %s %v", status, ctype, err)
	}
	// The provisioner list is what the step CLI reads.
	_, _, body = get("/provisioners")
	var list struct {
		Provisioners []struct {
			Type, Name, EncryptedKey string
			Key                      jose.JSONWebKey
		}
		NextCursor string
	}
	if err := json.Unmarshal([]byte(body), &list); err != nil || len(list.Provisioners) != 2 || list.Provisioners[0].Key.KeyID != e.keys[0].KeyID {
		t.Errorf("provisioners: %v %+v", err, list)
	}
}

func TestRenew(t *testing.T) {
	e := newEnv(t, envOptions{})
	old, pair := e.sign("gitlab-runner")
	e.advance(time.Hour)
	r := e.post(e.clientWith(pair), "/renew", "", nil)
	if r.status != http.StatusCreated {
		t.Fatalf("mTLS renew: %d %s", r.status, r.message)
	}
	n := r.crt
	if n.SerialNumber.Cmp(old.SerialNumber) == 0 || n.Subject.CommonName != old.Subject.CommonName || !slices.Equal(n.DNSNames, old.DNSNames) {
		t.Errorf("renewed: serial %s (old %s), subject %s, DNS %v", n.SerialNumber, old.SerialNumber, n.Subject, n.DNSNames)
	}
	if n.NotAfter.Sub(n.NotBefore) != old.NotAfter.Sub(old.NotBefore) || !n.NotBefore.Equal(e.now().Add(-time.Minute)) {
		t.Errorf("lifetime %s (old %s), notBefore %s", n.NotAfter.Sub(n.NotBefore), old.NotAfter.Sub(old.NotBefore), n.NotBefore)
	}
	if !pki.KeyMatchesCertificate(pair.PrivateKey.(*ecdsa.PrivateKey), n) {
		t.Error("the renewed certificate has another key")
	}
	rec, _ := e.store.Certificate(n.SerialNumber.String())
	if rec == nil || rec.RenewedFrom != old.SerialNumber.String() {
		t.Errorf("record %+v", rec)
	}

	// The renewal token: signed by the certificate's key, the chain in x5cInsecure.
	tok := renewToken(t, e, pair, e.url+"/1.0/renew")
	r = e.post(e.client, "/renew", "", http.Header{"Authorization": {"Bearer " + tok}})
	if r.status != http.StatusCreated || r.crt.Subject.CommonName != "gitlab-runner" {
		t.Fatalf("token renew: %d %s", r.status, r.message)
	}
	expect(t, e.post(e.client, "/renew", "", http.Header{"Authorization": {"Bearer " + tok}}), 401, "token already used")
}

func renewToken(t *testing.T, e *env, pair *tls.Certificate, aud string) string {
	var x5c []string
	for _, c := range pair.Certificate {
		x5c = append(x5c, base64.StdEncoding.EncodeToString(c))
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: pair.PrivateKey},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("x5cInsecure", x5c))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.Signed(s).Claims(jwt.Claims{Issuer: "step-ca-client/1.0", Subject: pair.Leaf.Subject.CommonName, Audience: jwt.Audience{aud},
		NotBefore: jwt.NewNumericDate(e.now()), Expiry: jwt.NewNumericDate(e.now().Add(5 * time.Minute))}).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestRenewRefuses(t *testing.T) {
	t.Run("revoked", func(t *testing.T) {
		e := newEnv(t, envOptions{})
		c, pair := e.sign("gitlab-runner")
		tok := e.token(tokenOpts{sub: c.SerialNumber.String(), aud: e.url + "/1.0/revoke"})
		if r := e.post(e.client, "/revoke", map[string]any{"serial": c.SerialNumber.String(), "ott": tok, "reasonCode": 1, "passive": true}, nil); r.status != 200 {
			t.Fatalf("revoke: %d %s", r.status, r.message)
		}
		expect(t, e.post(e.clientWith(pair), "/renew", "", nil), 401, "is revoked")
		expect(t, e.post(e.client, "/renew", "", http.Header{"Authorization": {"Bearer " + renewToken(t, e, pair, e.url+"/1.0/renew")}}), 401, "is revoked")
	})
	t.Run("another CA's certificate", func(t *testing.T) {
		e := newEnv(t, envOptions{})
		other := pkitest.NewRoot(t, "other-root").Intermediate(t, "other-int")
		key := pkitest.Key(t, "p256#renewer")
		leaf := other.Leaf(t, pkitest.LeafOptions{Key: key})
		pair := &tls.Certificate{Certificate: [][]byte{leaf.Raw, other.Cert.Raw}, PrivateKey: key, Leaf: leaf}
		expect(t, e.post(e.clientWith(pair), "/renew", "", nil), 401, "not issued by this CA")
		expect(t, e.post(e.client, "/renew", "", http.Header{"Authorization": {"Bearer " + renewToken(t, e, pair, e.url+"/1.0/renew")}}), 401, "not issued by this CA")
	})
	t.Run("no certificate", func(t *testing.T) {
		e := newEnv(t, envOptions{})
		expect(t, e.post(e.client, "/renew", "", nil), 401, "renewal needs the current certificate")
	})
	t.Run("expired", func(t *testing.T) {
		e := newEnv(t, envOptions{})
		_, pair := e.signFor("gitlab-runner", "1h")
		e.advance(90 * time.Minute)
		expect(t, e.post(e.client, "/renew", "", http.Header{"Authorization": {"Bearer " + renewToken(t, e, pair, e.url+"/1.0/renew")}}), 401, "certificate expired on")
	})
	t.Run("expired within the grace period", func(t *testing.T) {
		e := newEnv(t, envOptions{renewAfter: "2h"})
		_, pair := e.signFor("gitlab-runner", "1h")
		e.advance(90 * time.Minute)
		r := e.post(e.client, "/renew", "", http.Header{"Authorization": {"Bearer " + renewToken(t, e, pair, e.url+"/1.0/renew")}})
		if r.status != http.StatusCreated {
			t.Fatalf("%d %s", r.status, r.message)
		}
		e.advance(3 * time.Hour)
		expect(t, e.post(e.client, "/renew", "", http.Header{"Authorization": {"Bearer " + renewToken(t, e, pair, e.url+"/1.0/renew")}}), 401, "expired")
	})
	t.Run("renewal disabled", func(t *testing.T) {
		e := newEnv(t, envOptions{disableRenewal: true})
		_, pair := e.sign("gitlab-runner")
		expect(t, e.post(e.clientWith(pair), "/renew", "", nil), 401, "does not allow renewal")
	})
	t.Run("renewal token for another CA", func(t *testing.T) {
		e := newEnv(t, envOptions{})
		_, pair := e.sign("gitlab-runner")
		expect(t, e.post(e.client, "/renew", "", http.Header{"Authorization": {"Bearer " + renewToken(t, e, pair, "https://elsewhere.example/1.0/renew")}}), 401, "audience")
	})
}

func TestRevoke(t *testing.T) {
	e := newEnv(t, envOptions{})
	c1, pair1 := e.sign("gitlab-runner")
	c2, _ := e.sign("gitlab-runner")
	serial1, serial2 := c1.SerialNumber.String(), c2.SerialNumber.String()
	revokeTok := func(sub string) string { return e.token(tokenOpts{sub: sub, aud: e.url + "/1.0/revoke"}) }

	expect(t, e.post(e.client, "/revoke", map[string]any{"serial": serial1, "ott": revokeTok(serial1), "passive": false}, nil), 501, "only passive revocation")
	expect(t, e.post(e.client, "/revoke", map[string]any{"serial": serial1, "ott": revokeTok(serial2), "passive": true}, nil), 403, "the token is for serial")
	expect(t, e.post(e.client, "/revoke", map[string]any{"serial": serial1, "passive": true}, nil), 401, "needs a revoke token")
	expect(t, e.post(e.client, "/revoke", map[string]any{"serial": "12x", "ott": revokeTok("12x"), "passive": true}, nil), 400, "not a positive number")
	expect(t, e.post(e.client, "/revoke", map[string]any{"serial": serial1, "ott": revokeTok(serial1), "passive": true, "reasonCode": 7}, nil), 400, "reasonCode 7")
	// A certificate may revoke itself over mTLS, but not another.
	expect(t, e.post(e.clientWith(pair1), "/revoke", map[string]any{"serial": serial2, "passive": true}, nil), 403, "can only revoke itself")
	expect(t, e.post(e.clientWith(pair1), "/revoke", map[string]any{"serial": serial1, "passive": true, "reasonCode": 1}, nil), 200, "")
	expect(t, e.post(e.client, "/revoke", map[string]any{"serial": serial2, "ott": revokeTok(serial2), "passive": true, "reason": "decommissioned"}, nil), 200, "")

	rev, err := e.store.Revocation(serial1)
	if err != nil || rev.Via != "mtls" || rev.ReasonCode != 1 {
		t.Errorf("revocation 1: %+v %v", rev, err)
	}
	if rev, err := e.store.Revocation(serial2); err != nil || rev.Via != "token:admin" || rev.Reason != "decommissioned" {
		t.Errorf("revocation 2: %+v %v", rev, err)
	}
	resp, err := e.client.Get(e.url + "/crl")
	if err != nil {
		t.Fatal(err)
	}
	der, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		t.Fatal(err)
	}
	if err := crl.CheckSignatureFrom(e.inter.Cert); err != nil {
		t.Errorf("CRL signature: %v", err)
	}
	var listed []string
	for _, entry := range crl.RevokedCertificateEntries {
		listed = append(listed, entry.SerialNumber.String())
	}
	slices.Sort(listed)
	want := []string{serial1, serial2}
	slices.Sort(want)
	if !slices.Equal(listed, want) {
		t.Errorf("CRL lists %v, want %v", listed, want)
	}
	// Revoked certificates that expired leave the CRL.
	e.advance(25 * time.Hour)
	if crl2, err := e.auth.CRL(); err != nil {
		t.Fatal(err)
	} else if l, _ := x509.ParseRevocationList(crl2); len(l.RevokedCertificateEntries) != 0 || l.Number.Cmp(crl.Number) <= 0 {
		t.Errorf("CRL after expiry lists %d, number %s (was %s)", len(l.RevokedCertificateEntries), l.Number, crl.Number)
	}
}

func TestServerCertificate(t *testing.T) {
	e := newEnv(t, envOptions{})
	resp, err := e.client.Get(e.url + "/health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	st := resp.TLS
	leaf := st.PeerCertificates[0]
	if st.Version < tls.VersionTLS12 || leaf.NotAfter.Sub(leaf.NotBefore) != 24*time.Hour+time.Minute {
		t.Errorf("TLS %x, server certificate lifetime %s", st.Version, leaf.NotAfter.Sub(leaf.NotBefore))
	}
	if len(leaf.IPAddresses) != 1 || !leaf.IPAddresses[0].Equal([]byte{127, 0, 0, 1}) || !slices.Equal(leaf.DNSNames, []string{"localhost"}) {
		t.Errorf("server certificate names: IPs %v, DNS %v", leaf.IPAddresses, leaf.DNSNames)
	}
	// TLS 1.1 is refused.
	old := e.clientWith(nil)
	old.Transport.(*http.Transport).TLSClientConfig.MaxVersion = tls.VersionTLS11
	if _, err := old.Get(e.url + "/health"); err == nil {
		t.Error("a TLS 1.1 client connected")
	}
}

func TestListCertificates(t *testing.T) {
	e := newEnv(t, envOptions{})
	c, _ := e.sign("gitlab-runner")
	get := func(token string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, e.url+"/1.0/keyless/certificates", nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := e.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	tok := e.token(tokenOpts{sub: "list", aud: e.url + "/1.0/keyless/certificates"})
	if status, body := get(tok); status != 200 || !strings.Contains(body, `"serial":"`+c.SerialNumber.String()+`"`) || !strings.Contains(body, `"revoked":false`) {
		t.Errorf("list: %d %s", status, body)
	}
	if status, body := get(tok); status != 401 || !strings.Contains(body, "token already used") {
		t.Errorf("reused token: %d %s", status, body)
	}
	if status, _ := get(""); status != 401 {
		t.Errorf("no token: %d", status)
	}
	if status, _ := get(e.token(tokenOpts{sub: "list"})); status != 401 {
		t.Errorf("a sign token listed: %d", status)
	}
}

// TestRevokeIsScopedToTheProvisioner: a provisioner's token revokes what
// that provisioner issued, nothing else.
func TestRevokeIsScopedToTheProvisioner(t *testing.T) {
	e := newEnv(t, envOptions{})
	c, _ := e.sign("gitlab-runner") // issued through admin
	serial := c.SerialNumber.String()
	tok := e.token(tokenOpts{prov: 1, sub: serial, aud: e.url + "/1.0/revoke"})
	expect(t, e.post(e.client, "/revoke", map[string]any{"serial": serial, "ott": tok, "passive": true}, nil), 403,
		"was issued by provisioner admin; a token from runners cannot revoke it")
	unknown := "12345678901234567890"
	expect(t, e.post(e.client, "/revoke", map[string]any{"serial": unknown, "ott": e.token(tokenOpts{sub: unknown, aud: e.url + "/1.0/revoke"}), "passive": true}, nil), 403,
		"not in this CA's records")
	if _, err := e.store.Revocation(serial); err == nil {
		t.Error("the certificate was revoked anyway")
	}
}

// TestRenewAppliesTodaysPolicy: a name taken out of allow, or a lower
// maximum lifetime, applies to renewals after a reload.
func TestRenewAppliesTodaysPolicy(t *testing.T) {
	e := newEnv(t, envOptions{})
	_, pair := e.signFor("gitlab-runner", "48h")
	reload := func(allow, max string) {
		cfg := *mustConfig(t, e)
		cfg.Provisioners = append([]ca.ProvisionerConfig(nil), cfg.Provisioners...)
		cfg.Provisioners[0].Allow = []string{allow}
		d, _ := time.ParseDuration(max)
		cfg.Provisioners[0].MaxDuration = ca.Duration(d)
		cfg.Provisioners[0].DefaultDuration = ca.Duration(min(d, 24*time.Hour))
		e.auth.Reload(&cfg)
	}
	reload("gitlab-runner", "1h")
	r := e.post(e.clientWith(pair), "/renew", "", nil)
	if r.status != http.StatusCreated {
		t.Fatalf("renew: %d %s", r.status, r.message)
	}
	if got := r.crt.NotAfter.Sub(r.crt.NotBefore); got != time.Hour+time.Minute {
		t.Errorf("renewed lifetime %s, want the new 1h maximum (plus the 1m backdate)", got)
	}
	reload("other-*", "168h")
	expect(t, e.post(e.clientWith(pair), "/renew", "", nil), 403, `may no longer issue certificates for "gitlab-runner"`)
}

func mustConfig(t *testing.T, e *env) *ca.Config {
	t.Helper()
	cfg, err := ca.ParseConfig(e.configYAML)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestRenewTokenRewrittenSignature: an ECDSA signature rewritten to its
// other valid form (s -> n-s) is the same token, spent once.
func TestRenewTokenRewrittenSignature(t *testing.T) {
	e := newEnv(t, envOptions{})
	_, pair := e.sign("gitlab-runner")
	tok := renewToken(t, e, pair, e.url+"/1.0/renew")
	parts := strings.Split(tok, ".")
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || len(sig) != 64 {
		t.Fatalf("signature: %v, %d bytes", err, len(sig))
	}
	n := elliptic.P256().Params().N
	s := new(big.Int).SetBytes(sig[32:])
	s.Sub(n, s)
	s.FillBytes(sig[32:])
	rewritten := parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(sig)
	if r := e.post(e.client, "/renew", "", http.Header{"Authorization": {"Bearer " + tok}}); r.status != http.StatusCreated {
		t.Fatalf("first use: %d %s", r.status, r.message)
	}
	expect(t, e.post(e.client, "/renew", "", http.Header{"Authorization": {"Bearer " + rewritten}}), 401, "token already used")
}

// TestRenewTokenReencoded: the attack review got 7 certificates from one
// renewal token by re-spelling its base64url (spare bits in the last
// character of a part, padding). Each spelling is refused,
// and the token itself is still spent once.
func TestRenewTokenReencoded(t *testing.T) {
	e := newEnv(t, envOptions{})
	_, pair := e.sign("gitlab-runner")
	tok := renewToken(t, e, pair, e.url+"/1.0/renew")
	parts := strings.Split(tok, ".")
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	var variants []string
	for i, p := range parts[:2] {
		if len(p)%4 == 0 {
			continue // no spare bits to set in this part
		}
		last := strings.IndexByte(alphabet, p[len(p)-1])
		for bit := 1; bit < 16 && len(variants) < 7; bit <<= 1 {
			if len(p)%4 == 3 && bit > 2 {
				break // 2 spare bits
			}
			q := slices.Clone(parts)
			q[i] = p[:len(p)-1] + string(alphabet[last|bit])
			variants = append(variants, strings.Join(q, "."))
		}
	}
	variants = append(variants, parts[0]+"=."+parts[1]+"."+parts[2]) // (a line break cannot go in a header)
	if len(variants) < 3 {
		t.Fatalf("only %d variants; the token's parts have no spare bits", len(variants))
	}
	for _, v := range variants {
		if r := e.post(e.client, "/renew", "", http.Header{"Authorization": {"Bearer " + v}}); r.status != http.StatusUnauthorized || !strings.Contains(r.message, "not canonical") {
			t.Errorf("a re-spelt token: %d %s", r.status, r.message)
		}
	}
	if r := e.post(e.client, "/renew", "", http.Header{"Authorization": {"Bearer " + tok}}); r.status != http.StatusCreated {
		t.Fatalf("the token itself: %d %s", r.status, r.message)
	}
	expect(t, e.post(e.client, "/renew", "", http.Header{"Authorization": {"Bearer " + tok}}), 401, "token already used")
}
