package awshelper_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	helper "github.com/aws/rolesanywhere-credential-helper/aws_signing_helper"

	"github.com/keyless-dev/keyless/internal/pki"
	"github.com/keyless-dev/keyless/internal/pki/pkitest"
	"github.com/keyless-dev/keyless/internal/rolesanywhere"
	"github.com/keyless-dev/keyless/internal/rolesanywhere/rolesanywheretest"
	"github.com/keyless-dev/keyless/internal/sigv4"
)

const (
	taARN   = rolesanywheretest.TrustAnchorARN
	profARN = rolesanywheretest.ProfileARN
	roleARN = rolesanywheretest.RoleARN
)

// recordingSigner wraps the helper's own signer and keeps the exact string
// to sign it is handed, so the test sees what the helper signed.
type recordingSigner struct {
	helper.Signer
	mu     sync.Mutex
	signed [][]byte
}

func (r *recordingSigner) Sign(rand io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	r.mu.Lock()
	r.signed = append(r.signed, append([]byte(nil), digest...))
	r.mu.Unlock()
	return r.Signer.Sign(rand, digest, opts)
}

type identityFiles struct {
	cert, key, chain string
	signer           *sigv4.X509Signer
	root             *x509.Certificate
}

func writeIdentity(t *testing.T, kind string) identityFiles {
	t.Helper()
	dir := t.TempDir()
	root := pkitest.NewRoot(t, "interop-root")
	inter := root.Intermediate(t, "interop-int")
	key := pkitest.Key(t, kind)
	leaf := inter.Leaf(t, pkitest.LeafOptions{Key: key})
	id := identityFilesFor(t, dir, leaf, key)
	id.chain = pkitest.WriteFile(t, dir, "chain.pem", pki.EncodeCertificates(inter.Cert))
	id.signer = &sigv4.X509Signer{Key: key, Certificate: leaf, Intermediates: []*x509.Certificate{inter.Cert}}
	id.root = root.Cert
	return id
}

func newServer(t *testing.T, root *x509.Certificate) *rolesanywheretest.Server {
	srv := rolesanywheretest.NewServer()
	t.Cleanup(srv.Close)
	srv.Roots = x509.NewCertPool()
	srv.Roots.AddCert(root)
	srv.Region = "us-east-1"
	return srv
}

// helperRequest has AWS's helper (v1.4.0, as a library) call CreateSession
// on srv, and returns what it sent and the string it signed.
func helperRequest(t *testing.T, id identityFiles, srv *rolesanywheretest.Server, sessionName string, withChain bool) (rolesanywheretest.Request, []byte) {
	t.Helper()
	opts := &helper.CredentialsOpts{
		PrivateKeyId: id.key, CertificateId: id.cert,
		RoleArn: roleARN, ProfileArnStr: profARN, TrustAnchorArnStr: taARN,
		SessionDuration: 3600, Endpoint: srv.URL, RoleSessionName: sessionName, Version: "interop",
	}
	if withChain {
		opts.CertificateBundleId = id.chain
	}
	signer, alg, err := helper.GetSigner(opts)
	if err != nil {
		t.Fatalf("helper.GetSigner: %v", err)
	}
	rec := &recordingSigner{Signer: signer}
	before := len(srv.Requests())
	out, err := helper.GenerateCredentials(opts, rec, alg)
	if err != nil {
		t.Fatalf("helper.GenerateCredentials: %v (keyless's verifier refused the helper's request?)", err)
	}
	if out.AccessKeyId == "" {
		t.Fatal("helper got no credentials")
	}
	reqs := srv.Requests()
	if len(reqs) != before+1 || len(rec.signed) != 1 {
		t.Fatalf("helper sent %d requests and signed %d strings, want 1 and 1", len(reqs)-before, len(rec.signed))
	}
	return reqs[len(reqs)-1], rec.signed[0]
}

// keylessRequest has keyless's CreateSession client send the same session
// request to srv with its clock set to date.
func keylessRequest(t *testing.T, id identityFiles, srv *rolesanywheretest.Server, sessionName string, withChain bool, date time.Time) rolesanywheretest.Request {
	t.Helper()
	s := *id.signer
	if !withChain {
		s.Intermediates = nil
	}
	c, err := rolesanywhere.New(rolesanywhere.Config{Endpoint: srv.URL, Region: "us-east-1", Signer: &s, Now: func() time.Time { return date }})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateSession(context.Background(), rolesanywhere.SessionInput{
		TrustAnchorARN: taARN, ProfileARN: profARN, RoleARN: roleARN, DurationSeconds: 3600, RoleSessionName: sessionName,
	}); err != nil {
		t.Fatalf("keyless CreateSession: %v", err)
	}
	reqs := srv.Requests()
	return reqs[len(reqs)-1]
}

func requestDate(t *testing.T, r rolesanywheretest.Request) time.Time {
	t.Helper()
	d, err := time.Parse(sigv4.TimeFormat, r.Header.Get("X-Amz-Date"))
	if err != nil {
		t.Fatalf("helper's X-Amz-Date: %v", err)
	}
	return d
}

func sameWire(t *testing.T, h, k rolesanywheretest.Request) {
	t.Helper()
	if h.Query != k.Query {
		t.Errorf("query\nhelper:  %s\nkeyless: %s", h.Query, k.Query)
	}
	if !bytes.Equal(h.Body, k.Body) {
		t.Errorf("body\nhelper:  %s\nkeyless: %s", h.Body, k.Body)
	}
	for _, name := range []string{"Content-Type", "X-Amz-Date", "X-Amz-X509", "X-Amz-X509-Chain"} {
		if h.Header.Get(name) != k.Header.Get(name) {
			t.Errorf("%s differs\nhelper:  %.80s\nkeyless: %.80s", name, h.Header.Get(name), k.Header.Get(name))
		}
	}
}

// TestRSAAuthorizationIsByteIdentical: for the same RSA key, certificate,
// date and request, keyless's Authorization header equals the one AWS's
// helper computes, byte for byte (RSA PKCS#1 v1.5 is deterministic).
func TestRSAAuthorizationIsByteIdentical(t *testing.T) {
	for _, kind := range []string{pkitest.RSA2048, pkitest.RSA4096} {
		for _, tc := range []struct {
			name        string
			sessionName string
			chain       bool
		}{{"no-chain", "", false}, {"chain", "", true}, {"chain-session-name", "job-42", true}} {
			t.Run(kind+"/"+tc.name, func(t *testing.T) {
				id := writeIdentity(t, kind)
				srv := newServer(t, id.root)
				if !tc.chain {
					srv.Roots = nil // no chain is sent; only the signature is checked
				}
				h, _ := helperRequest(t, id, srv, tc.sessionName, tc.chain)
				k := keylessRequest(t, id, srv, tc.sessionName, tc.chain, requestDate(t, h))
				sameWire(t, h, k)
				if ha, ka := h.Header.Get("Authorization"), k.Header.Get("Authorization"); ha != ka {
					t.Fatalf("Authorization differs\nhelper:  %s\nkeyless: %s", ha, ka)
				}
			})
		}
	}
}

// TestECDSAMutualVerification: ECDSA signatures are randomised, so each
// side verifies the other's: keyless's verifier accepts the helper's
// request, and keyless's signature verifies over the exact string the
// helper signed for the same request.
func TestECDSAMutualVerification(t *testing.T) {
	for _, kind := range []string{pkitest.P256, pkitest.P384} {
		for _, chain := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/chain=%v", kind, chain), func(t *testing.T) {
				id := writeIdentity(t, kind)
				srv := newServer(t, id.root)
				if !chain {
					srv.Roots = nil
				}
				h, helperSTS := helperRequest(t, id, srv, "", chain)

				// keyless verifies the helper's request.
				req, err := http.NewRequest("POST", srv.URL+"/sessions?"+h.Query, bytes.NewReader(h.Body))
				if err != nil {
					t.Fatal(err)
				}
				req.Header = h.Header
				if _, err := sigv4.VerifyX509(req, h.Body, sigv4.X509VerifyOptions{Now: time.Now(), Region: "us-east-1"}); err != nil {
					t.Fatalf("keyless refused the helper's signature: %v", err)
				}

				// The helper's string to sign verifies keyless's signature.
				k := keylessRequest(t, id, srv, "", chain, requestDate(t, h))
				sameWire(t, h, k)
				authz, err := sigv4.ParseAuthorization(k.Header.Get("Authorization"))
				if err != nil {
					t.Fatal(err)
				}
				sum := sha256.Sum256(helperSTS)
				if !ecdsa.VerifyASN1(id.signer.Key.Public().(*ecdsa.PublicKey), sum[:], authz.Signature) {
					t.Fatal("keyless's ECDSA signature does not verify over the string AWS's helper signed")
				}
				ha, ka := h.Header.Get("Authorization"), k.Header.Get("Authorization")
				if strip(ha) != strip(ka) {
					t.Fatalf("Authorization differs beyond the signature\nhelper:  %s\nkeyless: %s", ha, ka)
				}
				if authz.Algorithm != sigv4.AlgorithmECDSA {
					t.Fatalf("algorithm %s", authz.Algorithm)
				}
			})
		}
	}
}

func strip(authz string) string {
	return authz[:strings.LastIndex(authz, "Signature=")]
}

// TestHelperStringToSignMatchesKeyless checks keyless's exported
// StringToSign and CanonicalRequest against what the helper signed.
func TestHelperStringToSignMatchesKeyless(t *testing.T) {
	id := writeIdentity(t, pkitest.P256)
	srv := newServer(t, id.root)
	h, helperSTS := helperRequest(t, id, srv, "job-7", true)
	authz, err := sigv4.ParseAuthorization(h.Header.Get("Authorization"))
	if err != nil {
		t.Fatal(err)
	}
	host := strings.TrimPrefix(srv.URL, "http://")
	canonical, err := sigv4.HelperRules.CanonicalRequest("POST", sigv4.X509CanonicalURI, h.Query, h.Header, host, authz.SignedHeaders, sigv4.PayloadHash(h.Body))
	if err != nil {
		t.Fatal(err)
	}
	date := h.Header.Get("X-Amz-Date")
	got := sigv4.StringToSign(authz.Algorithm, date, sigv4.Scope(date[:8], "us-east-1", sigv4.RolesAnywhereService), canonical)
	if got != string(helperSTS) {
		t.Fatalf("string to sign\nhelper:\n%s\nkeyless:\n%s", helperSTS, got)
	}
	if strings.Join(authz.SignedHeaders, ";") != "content-type;host;x-amz-date;x-amz-x509;x-amz-x509-chain" {
		t.Fatalf("helper signed %v", authz.SignedHeaders)
	}
}
