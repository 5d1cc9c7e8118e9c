package stepca_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/smallstep/certificates/api"
	"github.com/smallstep/certificates/authority/provisioner"
	"github.com/smallstep/certificates/ca"
	"github.com/smallstep/cli-utils/token"
	"github.com/smallstep/cli-utils/token/provision"
	"go.step.sm/crypto/jose"
	"go.step.sm/crypto/randutil"

	"github.com/keyless-dev/keyless/internal/testkit"
)

// runner is the subject the reference setup issues certificates for.
const runner = "gitlab-runner"

// client bootstraps smallstep's client from the root fingerprint alone, as
// `step ca bootstrap --fingerprint` does.
func (c *testCA) client(t *testing.T) *ca.Client {
	t.Helper()
	cl, err := ca.NewClient(c.URL, ca.WithRootSHA256(c.Fingerprint))
	if err != nil {
		t.Fatalf("ca.NewClient(%s, ca.WithRootSHA256(%s)): %v", c.URL, c.Fingerprint, err)
	}
	return cl
}

// kid finds the key id of the JWK provisioner in GET /provisioners, as the
// step CLI does before it asks for the encrypted key.
func (c *testCA) kid(t *testing.T) string {
	t.Helper()
	resp, err := c.client(t).Provisioners(ca.WithProvisionerLimit(100))
	if err != nil {
		t.Fatalf("GET /provisioners through smallstep's client: %v", err)
	}
	for _, p := range resp.Provisioners {
		if p.GetName() != provisionerName {
			continue
		}
		if p.GetType() != provisioner.TypeJWK {
			t.Fatalf("provisioner %q has type %v, want JWK", provisionerName, p.GetType())
		}
		kid, _, ok := p.GetEncryptedKey()
		if !ok {
			t.Errorf("provisioner %q is listed without its encryptedKey (the step CLI decrypts the key from the list when no kid is given)", provisionerName)
		}
		if kid == "" {
			t.Fatalf("provisioner %q is listed without a key id", provisionerName)
		}
		return kid
	}
	t.Fatalf("GET /provisioners lists no provisioner %q (got %d provisioners)", provisionerName, len(resp.Provisioners))
	return ""
}

// provisioner loads the provisioner's key from the CA and decrypts it with
// the password: smallstep's own token path.
func (c *testCA) provisioner(t *testing.T) *ca.Provisioner {
	t.Helper()
	kid := c.kid(t)
	p, err := ca.NewProvisioner(provisionerName, kid, c.URL, c.Password, ca.WithRootSHA256(c.Fingerprint))
	if err != nil {
		t.Fatalf("ca.NewProvisioner(%q, %q): %v", provisionerName, kid, err)
	}
	return p
}

// newCSR makes a P-256 key and a CSR for cn with cn as its only DNS SAN.
func newCSR(t *testing.T, cn string) (*api.CertificateRequest, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject:  pkix.Name{CommonName: cn},
		DNSNames: []string{cn},
	}, key)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		t.Fatal(err)
	}
	return &api.CertificateRequest{CertificateRequest: csr}, key
}

// issue signs a new certificate for runner with a fresh token.
func (c *testCA) issue(t *testing.T, p *ca.Provisioner) (*api.SignResponse, *ecdsa.PrivateKey) {
	t.Helper()
	ott, err := p.Token(runner)
	if err != nil {
		t.Fatalf("provisioner token: %v", err)
	}
	csr, key := newCSR(t, runner)
	sign, err := p.Sign(&api.SignRequest{CsrPEM: *csr, OTT: ott})
	if err != nil {
		t.Fatalf("POST /sign through smallstep's client: %v (status %d)", err, statusOf(err))
	}
	if sign.ServerPEM.Certificate == nil {
		t.Fatal("POST /sign answered without a certificate in crt")
	}
	return sign, key
}

// revokeToken makes a revoke token for serial the way the step CLI's
// `step ca revoke` does (cautils TokenGenerator.RevokeToken): the
// provisioner key decrypted from /provisioners/{kid}/encrypted-key, subject
// the decimal serial, audience <ca-url>/1.0/revoke, no sans. smallstep's
// ca.Provisioner only makes sign tokens in v0.30.2.
func (c *testCA) revokeToken(t *testing.T, serial string) string {
	t.Helper()
	kid := c.kid(t)
	resp, err := c.client(t).ProvisionerKey(kid)
	if err != nil {
		t.Fatalf("GET /provisioners/%s/encrypted-key: %v", kid, err)
	}
	jwe, err := jose.ParseEncrypted(resp.Key)
	if err != nil {
		t.Fatalf("parsing the encrypted provisioner key: %v", err)
	}
	data, err := jwe.Decrypt(c.Password)
	if err != nil {
		t.Fatalf("decrypting the provisioner key with the password: %v", err)
	}
	var jwk jose.JSONWebKey
	if err := json.Unmarshal(data, &jwk); err != nil {
		t.Fatalf("decrypted provisioner key: %v", err)
	}
	jti, err := randutil.Hex(64)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tok, err := provision.New(serial,
		token.WithJWTID(jti),
		token.WithKid(kid),
		token.WithIssuer(provisionerName),
		token.WithAudience(c.URL+"/1.0/revoke"),
		token.WithSHA(c.Fingerprint),
		token.WithValidity(now, now.Add(token.DefaultValidity)),
	)
	if err != nil {
		t.Fatal(err)
	}
	ott, err := tok.SignedString(jwk.Algorithm, jwk.Key)
	if err != nil {
		t.Fatalf("signing the revoke token: %v", err)
	}
	return ott
}

// renewToken makes the x5c Bearer token the step CLI's `step ca renew`
// sends when it cannot use mTLS (renewer.RenewWithToken): iss
// step-ca-client/1.0, sub the CN, the chain in the x5cInsecure header,
// signed with the certificate's own key.
func renewToken(t *testing.T, cert *tls.Certificate, aud string) string {
	t.Helper()
	claims, err := token.NewClaims(
		token.WithAudience(aud),
		token.WithIssuer("step-ca-client/1.0"),
		token.WithSubject(cert.Leaf.Subject.CommonName),
	)
	if err != nil {
		t.Fatal(err)
	}
	var x5c []string
	for _, der := range cert.Certificate {
		x5c = append(x5c, base64.StdEncoding.EncodeToString(der))
	}
	claims.SetHeader(jose.X5cInsecureKey, x5c)
	tok, err := claims.Sign("", cert.PrivateKey)
	if err != nil {
		t.Fatalf("signing the renew token: %v", err)
	}
	return tok
}

// mTLS returns smallstep's transport that presents the certificate of sign
// (ca.Client.Transport, what its own renewer uses), on a client of its own
// since Transport also becomes that client's transport.
func (c *testCA) mTLS(t *testing.T, sign *api.SignResponse, key crypto.PrivateKey, opts ...ca.TLSOption) (*ca.Client, http.RoundTripper) {
	t.Helper()
	cl := c.client(t)
	tr, err := cl.Transport(t.Context(), sign, key, opts...)
	if err != nil {
		t.Fatalf("smallstep's mTLS transport for the issued certificate: %v", err)
	}
	return cl, tr
}

// checkChain checks the sign response's chain fields and that the leaf
// verifies for client authentication against the root through the
// intermediate.
func (c *testCA) checkChain(t *testing.T, sign *api.SignResponse) {
	t.Helper()
	leaf := sign.ServerPEM.Certificate
	if sign.CaPEM.Certificate == nil || !bytes.Equal(sign.CaPEM.Raw, c.Intermediate.Raw) {
		t.Errorf("ca of the sign response is not certs/intermediate_ca.crt")
	}
	if n := len(sign.CertChainPEM); n != 2 {
		t.Errorf("certChain has %d certificates, want 2 (leaf, intermediate)", n)
	} else {
		if sign.CertChainPEM[0].Certificate == nil || !bytes.Equal(sign.CertChainPEM[0].Raw, leaf.Raw) {
			t.Errorf("certChain[0] is not crt")
		}
		if sign.CertChainPEM[1].Certificate == nil || !bytes.Equal(sign.CertChainPEM[1].Raw, c.Intermediate.Raw) {
			t.Errorf("certChain[1] is not the intermediate")
		}
	}
	roots, inters := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(c.Root)
	inters.AddCert(c.Intermediate)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inters, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("Go's verifier refuses the leaf for clientAuth: %v", err)
	}
}

// checkRenewed compares a renewed certificate with the one it renews.
func (c *testCA) checkRenewed(t *testing.T, old *x509.Certificate, renewed *api.SignResponse) {
	t.Helper()
	n := renewed.ServerPEM.Certificate
	if n == nil {
		t.Fatal("renew answered without a certificate in crt")
	}
	c.checkChain(t, renewed)
	if n.SerialNumber.Cmp(old.SerialNumber) == 0 {
		t.Errorf("renewed certificate has the old serial %s", old.SerialNumber)
	}
	if !bytes.Equal(n.RawSubject, old.RawSubject) {
		t.Errorf("renewed subject %q, want %q", n.Subject, old.Subject)
	}
	if !slices.Equal(n.DNSNames, old.DNSNames) || len(n.IPAddresses) != len(old.IPAddresses) || !slices.Equal(n.EmailAddresses, old.EmailAddresses) || len(n.URIs) != len(old.URIs) {
		t.Errorf("renewed SANs dns=%v ip=%v email=%v uri=%v, want dns=%v ip=%v email=%v uri=%v",
			n.DNSNames, n.IPAddresses, n.EmailAddresses, n.URIs, old.DNSNames, old.IPAddresses, old.EmailAddresses, old.URIs)
	}
	if n.KeyUsage != old.KeyUsage || !slices.Equal(n.ExtKeyUsage, old.ExtKeyUsage) {
		t.Errorf("renewed usages %v %v, want %v %v", n.KeyUsage, n.ExtKeyUsage, old.KeyUsage, old.ExtKeyUsage)
	}
	if !bytes.Equal(n.RawSubjectPublicKeyInfo, old.RawSubjectPublicKeyInfo) {
		t.Errorf("renewed certificate has another public key (renew keeps the key; rekey changes it)")
	}
	oldLife, newLife := old.NotAfter.Sub(old.NotBefore), n.NotAfter.Sub(n.NotBefore)
	if d := newLife - oldLife; d > time.Second || d < -time.Second {
		t.Errorf("renewed lifetime %v, want the old one, %v", newLife, oldLife)
	}
	if n.NotAfter.Before(old.NotAfter) {
		t.Errorf("renewed NotAfter %v is before the old %v", n.NotAfter, old.NotAfter)
	}
}

// TestBootstrapByFingerprint: smallstep's client trusts the CA from nothing
// but the root fingerprint that `keyless ca init` printed.
func TestBootstrapByFingerprint(t *testing.T) {
	c := startCA(t)
	cl := c.client(t)

	root, err := cl.Root(c.Fingerprint)
	if err != nil {
		t.Fatalf("GET /root/%s through smallstep's client: %v", c.Fingerprint, err)
	}
	if !bytes.Equal(root.RootPEM.Raw, c.Root.Raw) {
		t.Errorf("GET /root/{fingerprint} answered another certificate than certs/root_ca.crt")
	}
	health, err := cl.Health()
	if err != nil {
		t.Fatalf("GET /health: %v", err)
	}
	if health.Status != "ok" {
		t.Errorf("GET /health status %q, want ok", health.Status)
	}
	// The client reads the fingerprint back from the verified TLS chain: the
	// CA's serving certificate chains to the root.
	if fp, err := cl.RootFingerprint(); err != nil || fp != c.Fingerprint {
		t.Errorf("RootFingerprint() = %q, %v; want %s", fp, err, c.Fingerprint)
	}
	if v, err := cl.Version(); err != nil || v.Version == "" {
		t.Errorf("GET /version = %+v, %v; want a version", v, err)
	}
	if roots, err := cl.Roots(); err != nil {
		t.Errorf("GET /roots: %v", err)
	} else if len(roots.Certificates) != 1 || roots.Certificates[0].Certificate == nil || !bytes.Equal(roots.Certificates[0].Raw, c.Root.Raw) {
		t.Errorf("GET /roots answered %d certificates, want the root alone", len(roots.Certificates))
	}

	// --dns localhost: the serving certificate names it too.
	local := strings.Replace(c.URL, "127.0.0.1", "localhost", 1)
	lc, err := ca.NewClient(local, ca.WithRootSHA256(c.Fingerprint))
	if err != nil {
		t.Errorf("bootstrapping through %s: %v", local, err)
	} else if _, err := lc.Health(); err != nil {
		t.Errorf("GET %s/health: %v (the serving certificate must carry every --dns name)", local, err)
	}

	// A wrong fingerprint: the CA has no such root, and the client refuses.
	wrong := []byte(c.Fingerprint)
	if wrong[0] == '0' {
		wrong[0] = '1'
	} else {
		wrong[0] = '0'
	}
	if _, err := ca.NewClient(c.URL, ca.WithRootSHA256(string(wrong))); err == nil {
		t.Errorf("ca.NewClient with a wrong fingerprint succeeded")
	}
	if _, err := cl.Root(string(wrong)); err == nil {
		t.Errorf("Root(wrong fingerprint) succeeded")
	} else if s := statusOf(err); s != http.StatusNotFound {
		t.Errorf("GET /root/{unknown fingerprint}: status %d (%v), want 404 as step-ca", s, err)
	}

	// smallstep's client reads only the JSON body of an error
	// (ca/client.go readError): its status must be the HTTP status.
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: cl.GetRootCAs()}}}
	resp, err := hc.Get(c.URL + "/root/" + string(wrong))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Status  int    `json:"status"`
		Message string `json:"message"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body.Status != resp.StatusCode || body.Message == "" {
		t.Errorf("error answer: HTTP %d, body %+v (%v); want a JSON body whose status is the HTTP status, with a message", resp.StatusCode, body, err)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("error answer Content-Type %q, want application/json", ct)
	}
}

// TestSignWithProvisionerPassword: a token made from the provisioner
// password by smallstep's client gets a certificate for a runner.
func TestSignWithProvisionerPassword(t *testing.T) {
	c := startCA(t)
	p := c.provisioner(t)

	// The step CLI without --kid finds the key through the list instead.
	byName, err := ca.NewProvisioner(provisionerName, "", c.URL, c.Password, ca.WithRootSHA256(c.Fingerprint))
	if err != nil {
		t.Errorf("ca.NewProvisioner(%q) without a kid (decrypting encryptedKey from GET /provisioners): %v", provisionerName, err)
	} else if byName.Kid() != p.Kid() {
		t.Errorf("the key from the list has kid %q, the one from /encrypted-key %q", byName.Kid(), p.Kid())
	}
	if _, err := ca.NewProvisioner(provisionerName, p.Kid(), c.URL, []byte("not the password"), ca.WithRootSHA256(c.Fingerprint)); err == nil {
		t.Errorf("the provisioner key decrypted with a wrong password")
	}

	before := time.Now()
	sign, key := c.issue(t, p)
	after := time.Now()
	leaf := sign.ServerPEM.Certificate

	if leaf.Subject.CommonName != runner {
		t.Errorf("CN %q, want %q", leaf.Subject.CommonName, runner)
	}
	if !slices.Equal(leaf.DNSNames, []string{runner}) || len(leaf.IPAddresses)+len(leaf.EmailAddresses)+len(leaf.URIs) != 0 {
		t.Errorf("SANs dns=%v ip=%v email=%v uri=%v, want dns=[%s]", leaf.DNSNames, leaf.IPAddresses, leaf.EmailAddresses, leaf.URIs, runner)
	}
	if leaf.KeyUsage&x509.KeyUsageDigitalSignature == 0 {
		t.Errorf("keyUsage %b lacks digitalSignature", leaf.KeyUsage)
	}
	if !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageClientAuth) {
		t.Errorf("extKeyUsage %v lacks clientAuth", leaf.ExtKeyUsage)
	}
	if leaf.IsCA {
		t.Errorf("the leaf is a CA")
	}
	if life := leaf.NotAfter.Sub(leaf.NotBefore); life < 24*time.Hour || life > 24*time.Hour+5*time.Minute {
		t.Errorf("lifetime %v (%v to %v), want the default 24h (step-ca backdates NotBefore 1m)", life, leaf.NotBefore, leaf.NotAfter)
	}
	if leaf.NotBefore.After(after) || leaf.NotBefore.Before(before.Add(-10*time.Minute)) {
		t.Errorf("NotBefore %v, want about %v", leaf.NotBefore, before)
	}
	if leaf.NotAfter.Before(before.Add(24*time.Hour-2*time.Minute)) || leaf.NotAfter.After(after.Add(24*time.Hour+2*time.Minute)) {
		t.Errorf("NotAfter %v, want about %v", leaf.NotAfter, before.Add(24*time.Hour))
	}
	if leaf.SerialNumber.Cmp(new(big.Int).Lsh(big.NewInt(1), 100)) <= 0 {
		t.Errorf("serial %s is below 2^100: not 128 random bits", leaf.SerialNumber)
	}
	if leaf.SignatureAlgorithm != x509.ECDSAWithSHA256 {
		t.Errorf("signature algorithm %v, want ECDSA-SHA256", leaf.SignatureAlgorithm)
	}
	if !bytes.Equal(leaf.RawSubjectPublicKeyInfo, mustSPKI(t, key.Public())) {
		t.Errorf("the certificate is not for the CSR's key")
	}
	if r, err := ca.RootCertificate(sign); err != nil || !bytes.Equal(r.Raw, c.Root.Raw) {
		t.Errorf("the root of the verified TLS chain (ca.RootCertificate) is not certs/root_ca.crt: %v", err)
	}
	c.checkChain(t, sign)

	t.Run("openssl", func(t *testing.T) {
		openssl, err := exec.LookPath("openssl")
		if err != nil {
			testkit.Unavailable(t, "openssl not found on PATH; install openssl")
		}
		dir := t.TempDir()
		inter := writePEM(t, dir, "intermediate.crt", c.Intermediate.Raw)
		leafFile := writePEM(t, dir, "leaf.crt", leaf.Raw)
		out, err := exec.Command(openssl, "verify", "-CAfile", c.RootFile, "-untrusted", inter, leafFile).CombinedOutput()
		if err != nil || !strings.Contains(string(out), ": OK") {
			t.Errorf("openssl verify: %v\n%s", err, out)
		}
	})
}

// TestRenewOverMTLS: smallstep's client renews a certificate by presenting
// it, as its own renewer and `step ca renew` do.
func TestRenewOverMTLS(t *testing.T) {
	c := startCA(t)
	sign, key := c.issue(t, c.provisioner(t))
	cl, tr := c.mTLS(t, sign, key)
	renewed, err := cl.Renew(tr)
	if err != nil {
		t.Fatalf("POST /renew over mTLS through smallstep's client: %v (status %d)", err, statusOf(err))
	}
	c.checkRenewed(t, sign.ServerPEM.Certificate, renewed)

	// The renewed certificate renews in turn. A renew response carries no
	// TLS state to take the root from, so it is given.
	cl2, tr2 := c.mTLS(t, renewed, key, ca.AddRootCA(c.Root))
	again, err := cl2.Renew(tr2)
	if err != nil {
		t.Fatalf("renewing the renewed certificate over mTLS: %v (status %d)", err, statusOf(err))
	}
	c.checkRenewed(t, renewed.ServerPEM.Certificate, again)
}

// TestRenewWithX5CToken: the Bearer-token renewal the step CLI uses when
// mTLS is not possible, with the token built as the step CLI builds it.
func TestRenewWithX5CToken(t *testing.T) {
	c := startCA(t)
	p := c.provisioner(t)
	for _, tc := range []struct{ name, path string }{
		{"step-cli-audience", "/renew"}, // what `step ca renew` puts in aud
		{"versioned-audience", "/1.0/renew"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sign, key := c.issue(t, p)
			cert, err := ca.TLSCertificate(sign, key)
			if err != nil {
				t.Fatal(err)
			}
			tok := renewToken(t, cert, c.URL+tc.path)
			cl := c.client(t) // no client certificate: the token is the proof
			renewed, err := cl.RenewWithToken(tok)
			if err != nil {
				t.Fatalf("POST /renew with an x5c token (aud %s): %v (status %d)", c.URL+tc.path, err, statusOf(err))
			}
			c.checkRenewed(t, sign.ServerPEM.Certificate, renewed)

			if _, err := cl.RenewWithToken(tok); err == nil {
				t.Errorf("the same renew token renewed twice")
			} else if s := statusOf(err); s != http.StatusUnauthorized {
				t.Errorf("reusing a renew token: status %d (%v), want 401", s, err)
			}
		})
	}
}

// TestRevoke: revocation with a provisioner token and over mTLS, after
// which the certificate no longer renews.
func TestRevoke(t *testing.T) {
	c := startCA(t)
	p := c.provisioner(t)

	t.Run("token", func(t *testing.T) {
		sign, key := c.issue(t, p)
		serial := sign.ServerPEM.SerialNumber.String()
		resp, err := c.client(t).Revoke(&api.RevokeRequest{
			Serial: serial, OTT: c.revokeToken(t, serial), ReasonCode: 1, Reason: "key compromise", Passive: true,
		}, nil)
		if err != nil {
			t.Fatalf("POST /revoke with a provisioner token: %v (status %d)", err, statusOf(err))
		}
		if resp.Status != "ok" {
			t.Errorf("revoke answered status %q, want ok", resp.Status)
		}
		cl, tr := c.mTLS(t, sign, key)
		expectRevoked(t, cl, tr)
		cert, err := ca.TLSCertificate(sign, key)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.client(t).RenewWithToken(renewToken(t, cert, c.URL+"/renew")); err == nil {
			t.Errorf("a revoked certificate renewed with an x5c token")
		} else if s := statusOf(err); s != http.StatusUnauthorized {
			t.Errorf("renewing a revoked certificate with an x5c token: status %d (%v), want 401", s, err)
		}
	})

	t.Run("mTLS", func(t *testing.T) {
		sign, key := c.issue(t, p)
		serial := sign.ServerPEM.SerialNumber
		cl, tr := c.mTLS(t, sign, key)

		other := new(big.Int).Add(serial, big.NewInt(1)).String()
		if _, err := cl.Revoke(&api.RevokeRequest{Serial: other, ReasonCode: 4, Passive: true}, tr); err == nil {
			t.Errorf("a certificate revoked another serial over mTLS")
		} else if s := statusOf(err); s != http.StatusForbidden {
			t.Errorf("revoking another serial over mTLS: status %d (%v), want 403 as step-ca", s, err)
		}

		resp, err := cl.Revoke(&api.RevokeRequest{Serial: serial.String(), ReasonCode: 4, Reason: "superseded", Passive: true}, tr)
		if err != nil {
			t.Fatalf("POST /revoke over mTLS (no ott): %v (status %d)", err, statusOf(err))
		}
		if resp.Status != "ok" {
			t.Errorf("revoke answered status %q, want ok", resp.Status)
		}
		expectRevoked(t, cl, tr)
	})
}

func expectRevoked(t *testing.T, cl *ca.Client, tr http.RoundTripper) {
	t.Helper()
	if _, err := cl.Renew(tr); err == nil {
		t.Errorf("a revoked certificate renewed over mTLS")
	} else if s := statusOf(err); s != http.StatusUnauthorized {
		t.Errorf("renewing a revoked certificate over mTLS: status %d (%v), want 401", s, err)
	}
}

// TestNonPassiveRevoke: like step-ca, only passive revocation exists; the
// refused request revokes nothing.
func TestNonPassiveRevoke(t *testing.T) {
	c := startCA(t)
	sign, key := c.issue(t, c.provisioner(t))
	serial := sign.ServerPEM.SerialNumber.String()
	_, err := c.client(t).Revoke(&api.RevokeRequest{Serial: serial, OTT: c.revokeToken(t, serial), ReasonCode: 1, Passive: false}, nil)
	if err == nil {
		t.Fatalf("a non-passive revoke succeeded")
	}
	if s := statusOf(err); s != http.StatusNotImplemented {
		t.Errorf("non-passive revoke: status %d (%v), want 501", s, err)
	}
	cl, tr := c.mTLS(t, sign, key)
	if _, err := cl.Renew(tr); err != nil {
		t.Errorf("after a refused non-passive revoke the certificate no longer renews: %v (status %d)", err, statusOf(err))
	}
}

// TestTokenReuse: a sign token is single use.
func TestTokenReuse(t *testing.T) {
	c := startCA(t)
	p := c.provisioner(t)
	ott, err := p.Token(runner)
	if err != nil {
		t.Fatal(err)
	}
	csr, _ := newCSR(t, runner)
	if _, err := p.Sign(&api.SignRequest{CsrPEM: *csr, OTT: ott}); err != nil {
		t.Fatalf("first POST /sign: %v (status %d)", err, statusOf(err))
	}
	csr, _ = newCSR(t, runner)
	if _, err := p.Sign(&api.SignRequest{CsrPEM: *csr, OTT: ott}); err == nil {
		t.Errorf("a sign token was accepted twice")
	} else if s := statusOf(err); s != http.StatusUnauthorized {
		t.Errorf("second POST /sign with the same token: status %d (%v), want 401", s, err)
	}
}

func mustSPKI(t *testing.T, pub crypto.PublicKey) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func writePEM(t *testing.T, dir, name string, der []byte) string {
	t.Helper()
	file := filepath.Join(dir, name)
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}
