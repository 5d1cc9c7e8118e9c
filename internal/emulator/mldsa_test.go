package emulator_test

import (
	"encoding/hex"
	"net/http"
	"strings"
	"testing"

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
