package sigv4_test

import (
	"crypto"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/keyless-dev/keyless/internal/mldsa"
	"github.com/keyless-dev/keyless/internal/pki/pkitest"
	"github.com/keyless-dev/keyless/internal/sigv4"
)

func TestMLDSASignVerifyRoundTrip(t *testing.T) {
	for _, kind := range []string{pkitest.MLDSA44, pkitest.MLDSA65, pkitest.MLDSA87} {
		t.Run(kind, func(t *testing.T) {
			f := newFixture(t, kind, true)
			req := newRequest(t)
			if err := f.signer.Sign(req, []byte(testBody), "us-east-1", testTime); err != nil {
				t.Fatal(err)
			}
			a, err := sigv4.ParseAuthorization(req.Header.Get("Authorization"))
			if err != nil {
				t.Fatal(err)
			}
			key := f.signer.Key.(*mldsa.PrivateKey)
			if a.Algorithm != sigv4.AlgorithmMLDSA || len(a.Signature) != key.Params().SignatureSize() {
				t.Fatalf("algorithm %s, %d-byte signature", a.Algorithm, len(a.Signature))
			}
			// What is signed is the string to sign itself (no digest).
			canonical, err := sigv4.HelperRules.CanonicalRequest("POST", sigv4.X509CanonicalURI, req.URL.RawQuery, req.Header, req.URL.Host, a.SignedHeaders, sigv4.PayloadHash([]byte(testBody)))
			if err != nil {
				t.Fatal(err)
			}
			sts := sigv4.StringToSign(sigv4.AlgorithmMLDSA, "20261126T013303Z", sigv4.Scope("20261126", "us-east-1", sigv4.RolesAnywhereService), canonical)
			if !key.PublicKey().Verify([]byte(sts), a.Signature) {
				t.Fatal("the signature is not ML-DSA over the string to sign's bytes")
			}
			v, err := sigv4.VerifyX509(req, []byte(testBody), sigv4.X509VerifyOptions{Now: testTime, Region: "us-east-1"})
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if !v.Certificate.Equal(f.signer.Certificate) {
				t.Fatal("wrong certificate")
			}
		})
	}
}

// TestMLDSAVerifyRefusals breaks one thing per case.
func TestMLDSAVerifyRefusals(t *testing.T) {
	opts := sigv4.X509VerifyOptions{Now: testTime, Region: "us-east-1"}
	signed := func(t *testing.T, f fixture) *http.Request {
		req := newRequest(t)
		if err := f.signer.Sign(req, []byte(testBody), "us-east-1", testTime); err != nil {
			t.Fatal(err)
		}
		return req
	}
	ml65 := newFixture(t, pkitest.MLDSA65, false)
	ml44 := newFixture(t, pkitest.MLDSA44, false)
	ec := newFixture(t, pkitest.P256, false)

	t.Run("flipped signature byte", func(t *testing.T) {
		req := signed(t, ml65)
		a, _ := sigv4.ParseAuthorization(req.Header.Get("Authorization"))
		a.Signature[100] ^= 0x01
		req.Header.Set("Authorization", a.String())
		if _, err := sigv4.VerifyX509(req, []byte(testBody), opts); !errors.Is(err, sigv4.ErrSignature) {
			t.Fatalf("got %v, want ErrSignature", err)
		}
	})
	t.Run("truncated signature", func(t *testing.T) {
		req := signed(t, ml65)
		a, _ := sigv4.ParseAuthorization(req.Header.Get("Authorization"))
		a.Signature = a.Signature[:len(a.Signature)-1]
		req.Header.Set("Authorization", a.String())
		if _, err := sigv4.VerifyX509(req, []byte(testBody), opts); !errors.Is(err, sigv4.ErrSignature) {
			t.Fatalf("got %v, want ErrSignature", err)
		}
	})
	t.Run("signature of another parameter set's key", func(t *testing.T) {
		// Signed by an ML-DSA-44 key, sent with the ML-DSA-65 certificate.
		req := signed(t, ml44)
		a, _ := sigv4.ParseAuthorization(req.Header.Get("Authorization"))
		req = signed(t, ml65)
		b, _ := sigv4.ParseAuthorization(req.Header.Get("Authorization"))
		b.Signature = a.Signature
		req.Header.Set("Authorization", b.String())
		if _, err := sigv4.VerifyX509(req, []byte(testBody), opts); !errors.Is(err, sigv4.ErrSignature) {
			t.Fatalf("got %v, want ErrSignature", err)
		}
	})
	t.Run("ECDSA algorithm name with an ML-DSA certificate", func(t *testing.T) {
		req := signed(t, ml65)
		req.Header.Set("Authorization", strings.Replace(req.Header.Get("Authorization"), sigv4.AlgorithmMLDSA, sigv4.AlgorithmECDSA, 1))
		_, err := sigv4.VerifyX509(req, []byte(testBody), opts)
		if !errors.Is(err, sigv4.ErrSignature) || !strings.Contains(err.Error(), "does not fit") {
			t.Fatalf("got %v, want the algorithm-mismatch ErrSignature", err)
		}
	})
	t.Run("ML-DSA algorithm name with an ECDSA certificate", func(t *testing.T) {
		req := signed(t, ec)
		req.Header.Set("Authorization", strings.Replace(req.Header.Get("Authorization"), sigv4.AlgorithmECDSA, sigv4.AlgorithmMLDSA, 1))
		_, err := sigv4.VerifyX509(req, []byte(testBody), opts)
		if !errors.Is(err, sigv4.ErrSignature) || !strings.Contains(err.Error(), "does not fit") {
			t.Fatalf("got %v, want the algorithm-mismatch ErrSignature", err)
		}
	})
	t.Run("ML-DSA over the digest instead of the string", func(t *testing.T) {
		req := signed(t, ml65)
		a, _ := sigv4.ParseAuthorization(req.Header.Get("Authorization"))
		canonical, _ := sigv4.HelperRules.CanonicalRequest("POST", sigv4.X509CanonicalURI, req.URL.RawQuery, req.Header, req.URL.Host, a.SignedHeaders, sigv4.PayloadHash([]byte(testBody)))
		sts := sigv4.StringToSign(sigv4.AlgorithmMLDSA, testTime.Format(sigv4.TimeFormat), sigv4.Scope("20261126", "us-east-1", sigv4.RolesAnywhereService), canonical)
		sum := crypto.SHA256.New()
		sum.Write([]byte(sts))
		sig, err := ml65.signer.Key.Sign(nil, sum.Sum(nil), crypto.Hash(0))
		if err != nil {
			t.Fatal(err)
		}
		a.Signature = sig
		req.Header.Set("Authorization", a.String())
		if _, err := sigv4.VerifyX509(req, []byte(testBody), opts); !errors.Is(err, sigv4.ErrSignature) {
			t.Fatalf("got %v, want ErrSignature", err)
		}
	})
	t.Run("changed body", func(t *testing.T) {
		req := signed(t, ml65)
		if _, err := sigv4.VerifyX509(req, []byte(`{"durationSeconds":900}`), opts); !errors.Is(err, sigv4.ErrSignature) {
			t.Fatalf("got %v, want ErrSignature", err)
		}
	})
}
