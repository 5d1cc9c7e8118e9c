package emulator_test

import (
	"bytes"
	"crypto/x509"
	"encoding/hex"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/keyless-dev/keyless/internal/emulator/emulatortest"
	"github.com/keyless-dev/keyless/internal/pki/pkitest"
	"github.com/keyless-dev/keyless/internal/sigv4"
)

// TestCreateSessionMLDSA: AWS4-X509-MLDSA requests with ML-DSA-44, -65
// and -87 leaves (issued by the ECDSA intermediate) get credentials, and
// one flipped signature byte gets AWS's "Invalid signature".
func TestCreateSessionMLDSA(t *testing.T) {
	for _, kind := range []string{pkitest.MLDSA44, pkitest.MLDSA65, pkitest.MLDSA87} {
		t.Run(kind, func(t *testing.T) {
			e := newEnv(t, setup{})
			k := pkitest.Key(t, kind)
			leaf := e.leaf(pkitest.LeafOptions{Key: k})
			var authz string
			a := e.createSession(call{key: k, leaf: leaf, afterSign: func(r *http.Request) { authz = r.Header.Get("Authorization") }})
			if a.status != http.StatusCreated {
				t.Fatalf("status %d %s: %s", a.status, a.code, a.message)
			}
			if !strings.HasPrefix(authz, sigv4.AlgorithmMLDSA+" ") {
				t.Fatalf("Authorization %.40q does not use %s", authz, sigv4.AlgorithmMLDSA)
			}
			if a.session.CredentialSet[0].SourceIdentity == "" {
				t.Error("no source identity")
			}

			b := e.createSession(call{key: k, leaf: leaf, afterSign: func(r *http.Request) {
				h := r.Header.Get("Authorization")
				i := strings.LastIndex(h, "Signature=") + len("Signature=")
				sig, err := hex.DecodeString(h[i:])
				if err != nil {
					t.Fatal(err)
				}
				sig[len(sig)/3] ^= 0x80
				r.Header.Set("Authorization", h[:i]+hex.EncodeToString(sig))
			}})
			if b.status != http.StatusForbidden || b.code != "AccessDeniedException" || !strings.HasPrefix(b.message, "Invalid signature") {
				t.Fatalf("flipped byte: %d %s %q, want 403 AccessDeniedException \"Invalid signature\"", b.status, b.code, b.message)
			}
		})
	}
}

// TestCreateSessionMLDSAAlgorithmMismatch: an ML-DSA key's signature sent
// under the ECDSA algorithm name, and the ML-DSA name with an ECDSA key,
// are refused as invalid signatures.
func TestCreateSessionMLDSAAlgorithmMismatch(t *testing.T) {
	e := newEnv(t, setup{})
	k := pkitest.Key(t, pkitest.MLDSA65)
	leaf := e.leaf(pkitest.LeafOptions{Key: k})
	a := e.createSession(call{key: k, leaf: leaf, afterSign: func(r *http.Request) {
		r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), sigv4.AlgorithmMLDSA, sigv4.AlgorithmECDSA, 1))
	}})
	if a.status != http.StatusForbidden || !strings.HasPrefix(a.message, "Invalid signature") {
		t.Fatalf("ECDSA name, ML-DSA key: %d %s %q", a.status, a.code, a.message)
	}
	b := e.createSession(call{afterSign: func(r *http.Request) {
		r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), sigv4.AlgorithmECDSA, sigv4.AlgorithmMLDSA, 1))
	}})
	if b.status != http.StatusForbidden || !strings.HasPrefix(b.message, "Invalid signature") {
		t.Fatalf("ML-DSA name, ECDSA key: %d %s %q", b.status, b.code, b.message)
	}
}

// TestCreateSessionMLDSATrustAnchor: a trust anchor whose root signs
// with ML-DSA-44 (as AWS Private CA's ML-DSA CAs do) accepts an ML-DSA-65
// leaf under its ECDSA intermediate, and refuses a leaf of an impostor
// root with the same name as Untrusted Signing Certificate.
func TestCreateSessionMLDSATrustAnchor(t *testing.T) {
	// ML-DSA-44: an ML-DSA-65 or -87 root is over the 8,000-character
	// bundle limit this emulator still has (AWS allows 204,800 now).
	root := pkitest.NewRootWithKey(t, "pq-root", pkitest.Key(t, pkitest.MLDSA44))
	inter := root.Intermediate(t, "pq-int")
	srv := emulatortest.New(t, nil, root.Cert)
	key := pkitest.Key(t, pkitest.MLDSA65)
	send := func(leaf *x509.Certificate, chain ...*x509.Certificate) (int, string) {
		t.Helper()
		body := []byte(`{"durationSeconds":900}`)
		q := url.Values{"trustAnchorArn": {srv.TrustAnchorARN}, "profileArn": {srv.ProfileARN}, "roleArn": {srv.RoleARN}}
		req, err := http.NewRequest("POST", srv.URL+"/sessions?"+q.Encode(), bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		s := sigv4.X509Signer{Key: key, Certificate: leaf, Intermediates: chain}
		if err := s.Sign(req, body, emulatortest.Region, time.Now()); err != nil {
			t.Fatal(err)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if status, body := send(inter.Leaf(t, pkitest.LeafOptions{Key: key}), inter.Cert); status != http.StatusCreated {
		t.Fatalf("ML-DSA root, ECDSA intermediate, ML-DSA leaf: %d %s", status, body)
	}
	if status, body := send(root.Leaf(t, pkitest.LeafOptions{Key: key})); status != http.StatusCreated {
		t.Fatalf("ML-DSA leaf signed by the ML-DSA root: %d %s", status, body)
	}
	impostor := pkitest.NewRootWithKey(t, "pq-root", pkitest.Key(t, pkitest.MLDSA44+"#impostor"))
	status, body := send(impostor.Leaf(t, pkitest.LeafOptions{Key: key}))
	if status != http.StatusForbidden || !strings.Contains(body, "Untrusted Signing Certificate") {
		t.Fatalf("impostor root's leaf: %d %s, want 403 Untrusted Signing Certificate", status, body)
	}
}
