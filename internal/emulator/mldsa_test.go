package emulator_test

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/keyless-dev/keyless/internal/emulator/emulatortest"
	"github.com/keyless-dev/keyless/internal/mldsa"
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
// with ML-DSA-65 (as AWS Private CA's ML-DSA CAs do; its PEM fits the
// 204,800-character bundle limit many times over) accepts an ML-DSA-65
// leaf under its ECDSA intermediate, and refuses a leaf of an impostor
// root with the same name as Untrusted Signing Certificate.
func TestCreateSessionMLDSATrustAnchor(t *testing.T) {
	root := pkitest.NewRootWithKey(t, "pq-root", pkitest.Key(t, pkitest.MLDSA65+"#pq-root"))
	inter := root.Intermediate(t, "pq-int")
	srv := emulatortest.New(t, nil, root.Cert)
	key := pkitest.Key(t, pkitest.MLDSA65)
	send := func(leaf *x509.Certificate, chain ...*x509.Certificate) (int, string) {
		t.Helper()
		return sendSession(t, srv, key, leaf, chain...)
	}
	if status, body := send(inter.Leaf(t, pkitest.LeafOptions{Key: key}), inter.Cert); status != http.StatusCreated {
		t.Fatalf("ML-DSA root, ECDSA intermediate, ML-DSA leaf: %d %s", status, body)
	}
	if status, body := send(root.Leaf(t, pkitest.LeafOptions{Key: key})); status != http.StatusCreated {
		t.Fatalf("ML-DSA leaf signed by the ML-DSA root: %d %s", status, body)
	}
	impostor := pkitest.NewRootWithKey(t, "pq-root", pkitest.Key(t, pkitest.MLDSA65+"#impostor"))
	status, body := send(impostor.Leaf(t, pkitest.LeafOptions{Key: key}))
	if status != http.StatusForbidden || !strings.Contains(body, "Untrusted Signing Certificate") {
		t.Fatalf("impostor root's leaf: %d %s, want 403 Untrusted Signing Certificate", status, body)
	}
}

// TestCreateSessionMLDSAIntermediateRules: the rules for the
// intermediate CAs of X-Amz-X509-Chain hold under a root that signs with
// ML-DSA as under an ECDSA root: an intermediate without keyUsage gets
// 403 Untrusted Signing Certificate under both, and the same
// intermediate with keyUsage keyCertSign gets credentials under both.
func TestCreateSessionMLDSAIntermediateRules(t *testing.T) {
	for _, rootKind := range []string{pkitest.P256 + "#ku-root", pkitest.MLDSA44 + "#ku-root"} {
		t.Run(rootKind, func(t *testing.T) {
			root := pkitest.NewRootWithKey(t, "ku-root", pkitest.Key(t, rootKind))
			srv := emulatortest.New(t, nil, root.Cert)
			key := pkitest.Key(t, pkitest.P256+"#ku-leaf")
			for _, keyUsage := range []bool{true, false} {
				ik := pkitest.Key(t, pkitest.P256+"#ku-int")
				tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "ku-int"},
					NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(12 * time.Hour), BasicConstraintsValid: true, IsCA: true}
				if keyUsage {
					tmpl.KeyUsage = x509.KeyUsageCertSign
				}
				der, err := mldsa.CreateCertificate(rand.Reader, tmpl, root.Cert, ik.Public(), root.Key)
				if err != nil {
					t.Fatal(err)
				}
				ic, err := x509.ParseCertificate(der)
				if err != nil {
					t.Fatal(err)
				}
				inter := &pkitest.CA{Cert: ic, Key: ik}
				status, body := sendSession(t, srv, key, inter.Leaf(t, pkitest.LeafOptions{Key: key}), inter.Cert)
				switch {
				case keyUsage && status != http.StatusCreated:
					t.Fatalf("intermediate with keyCertSign: %d %s", status, body)
				case !keyUsage && (status != http.StatusForbidden || !strings.Contains(body, "Untrusted Signing Certificate")):
					t.Fatalf("intermediate without keyUsage: %d %s, want 403 Untrusted Signing Certificate", status, body)
				}
			}
		})
	}
}

// sendSession signs a CreateSession request for srv's anchor, profile
// and role with key, leaf and chain, and returns the status and body.
func sendSession(t *testing.T, srv *emulatortest.Server, key crypto.Signer, leaf *x509.Certificate, chain ...*x509.Certificate) (int, string) {
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

// TestCreateSessionMLDSALoopingChain: X-Amz-X509-Chain with five CA
// certificates that share a name and an ML-DSA-87 key (each a valid
// issuer of every other), none issued by the trust anchor, gets 403
// Untrusted Signing Certificate. How many signature checks such a
// request costs is TestMLDSAChainSignatureBudget's subject.
func TestCreateSessionMLDSALoopingChain(t *testing.T) {
	root := pkitest.NewRootWithKey(t, "loop-anchor", pkitest.Key(t, pkitest.MLDSA44+"#loop-anchor"))
	srv := emulatortest.New(t, nil, root.Cert)
	k := pkitest.Key(t, pkitest.MLDSA87+"#loop-e2e")
	var loop []*x509.Certificate
	for i := range 5 {
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(int64(i + 1)), Subject: pkix.Name{CommonName: "loop"}, NotBefore: time.Now().Add(-time.Hour),
			NotAfter: time.Now().Add(time.Hour), BasicConstraintsValid: true, IsCA: true, KeyUsage: x509.KeyUsageCertSign}
		der, err := mldsa.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
		if err != nil {
			t.Fatal(err)
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		loop = append(loop, c)
	}
	key := pkitest.Key(t, pkitest.MLDSA65)
	leaf := (&pkitest.CA{Cert: loop[0], Key: k}).Leaf(t, pkitest.LeafOptions{Key: key})
	status, body := sendSession(t, srv, key, leaf, loop...)
	if status != http.StatusForbidden || !strings.Contains(body, "Untrusted Signing Certificate") {
		t.Fatalf("looping chain: %d %s, want 403 Untrusted Signing Certificate", status, body)
	}
}
