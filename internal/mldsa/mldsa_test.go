package mldsa_test

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"testing"

	"github.com/cloudflare/circl/sign/mldsa/mldsa65"

	"github.com/keyless-dev/keyless/internal/mldsa"
	"github.com/keyless-dev/keyless/internal/pki/pkitest"
)

func TestSignVerifyEachParameterSet(t *testing.T) {
	for _, p := range mldsa.All {
		t.Run(p.Name(), func(t *testing.T) {
			k, err := mldsa.GenerateKey(p, nil)
			if err != nil {
				t.Fatal(err)
			}
			msg := []byte("AWS4-X509-MLDSA\nstring to sign")
			sig, err := k.Sign(nil, msg, crypto.Hash(0))
			if err != nil {
				t.Fatal(err)
			}
			if len(sig) != p.SignatureSize() {
				t.Fatalf("signature is %d bytes, want %d", len(sig), p.SignatureSize())
			}
			if !k.PublicKey().Verify(msg, sig) {
				t.Fatal("signature does not verify")
			}
			again, _ := k.Sign(nil, msg, nil)
			if !bytes.Equal(sig, again) {
				t.Fatal("signing is not deterministic (AWS's helper signs deterministically)")
			}
			flipped := bytes.Clone(sig)
			flipped[len(flipped)/2] ^= 1
			if k.PublicKey().Verify(msg, flipped) {
				t.Fatal("a flipped signature byte verifies")
			}
			if k.PublicKey().Verify(append(msg, 'x'), sig) {
				t.Fatal("the signature verifies another message")
			}
			if _, err := k.Sign(nil, msg, crypto.SHA256); !errors.Is(err, mldsa.ErrHashed) {
				t.Fatalf("signing a digest: %v, want ErrHashed", err)
			}
		})
	}
}

// TestPureEmptyContext pins the signature variant: circl's pure ML-DSA
// with an empty context (what AWS's helper v1.8.0 calls) verifies ours,
// and a non-empty context does not.
func TestPureEmptyContext(t *testing.T) {
	seed := bytes.Repeat([]byte{7}, 32)
	k, err := mldsa.NewKeyFromSeed(mldsa.ML65, seed)
	if err != nil {
		t.Fatal(err)
	}
	var s [32]byte
	copy(s[:], seed)
	pub, priv := mldsa65.NewKeyFromSeed(&s)
	msg := []byte("message")
	sig, _ := k.Sign(nil, msg, nil)
	want := make([]byte, mldsa65.SignatureSize)
	if err := mldsa65.SignTo(priv, msg, nil, false, want); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(sig, want) {
		t.Fatal("signature differs from circl's deterministic pure signature with an empty context")
	}
	if mldsa65.Verify(pub, msg, []byte("ctx"), sig) {
		t.Fatal("verifies with a non-empty context")
	}
}

func TestWrongParameterSetRefused(t *testing.T) {
	k44, _ := mldsa.GenerateKey(mldsa.ML44, nil)
	k65, _ := mldsa.GenerateKey(mldsa.ML65, nil)
	msg := []byte("m")
	sig, _ := k44.Sign(nil, msg, nil)
	if k65.PublicKey().Verify(msg, sig) {
		t.Fatal("an ML-DSA-44 signature verifies with an ML-DSA-65 key")
	}
	if _, err := mldsa.NewPublicKey(mldsa.ML65, k44.PublicKey().Bytes()); err == nil {
		t.Fatal("an ML-DSA-44 public key decodes as ML-DSA-65")
	}
}

func TestPKCS8RoundTripAndForms(t *testing.T) {
	for _, p := range mldsa.All {
		t.Run(p.Name(), func(t *testing.T) {
			k, _ := mldsa.GenerateKey(p, nil)
			der, err := mldsa.MarshalPKCS8(k)
			if err != nil {
				t.Fatal(err)
			}
			if got, ok := mldsa.IsPKCS8(der); !ok || got != p {
				t.Fatalf("IsPKCS8 = %v, %v", got, ok)
			}
			back, err := mldsa.ParsePKCS8(der)
			if err != nil {
				t.Fatal(err)
			}
			if !back.Equal(k) || !back.PublicKey().Equal(k.PublicKey()) {
				t.Fatal("PKCS#8 round trip changed the key")
			}
			// The seed-only form ([0] IMPLICIT OCTET STRING) reads as the same key.
			seedOnly := rewrapPrivateKey(t, der, func(both [][]byte) []byte {
				b, _ := asn1.Marshal(asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, Bytes: both[0]})
				return b
			})
			if k2, err := mldsa.ParsePKCS8(seedOnly); err != nil || !k2.Equal(k) {
				t.Fatalf("seed-only form: %v", err)
			}
			// Expanded-only is refused with the reason.
			expOnly := rewrapPrivateKey(t, der, func(both [][]byte) []byte {
				b, _ := asn1.Marshal(both[1])
				return b
			})
			if _, err := mldsa.ParsePKCS8(expOnly); !errors.Is(err, mldsa.ErrExpandedOnly) {
				t.Fatalf("expanded-only form: %v, want ErrExpandedOnly", err)
			}
			// A seed whose expanded key does not match is refused.
			mismatch := rewrapPrivateKey(t, der, func(both [][]byte) []byte {
				both[1][10] ^= 1
				b, _ := asn1.Marshal(struct{ S, E []byte }{both[0], both[1]})
				return b
			})
			if _, err := mldsa.ParsePKCS8(mismatch); err == nil {
				t.Fatal("a key whose expanded part does not match its seed was read")
			}
		})
	}
}

type pkcs8 struct {
	Version    int
	Algorithm  pkix.AlgorithmIdentifier
	PrivateKey []byte
}

func rewrapPrivateKey(t *testing.T, der []byte, f func(both [][]byte) []byte) []byte {
	t.Helper()
	var info pkcs8
	if _, err := asn1.Unmarshal(der, &info); err != nil {
		t.Fatal(err)
	}
	var both struct{ S, E []byte }
	if _, err := asn1.Unmarshal(info.PrivateKey, &both); err != nil {
		t.Fatal(err)
	}
	info.PrivateKey = f([][]byte{both.S, both.E})
	out, err := asn1.Marshal(info)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestPKIXPublicKey(t *testing.T) {
	k, _ := mldsa.GenerateKey(mldsa.ML87, nil)
	der, err := mldsa.MarshalPKIXPublicKey(k.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	got, ok, err := mldsa.ParsePKIXPublicKey(der)
	if err != nil || !ok || !got.Equal(k.PublicKey()) {
		t.Fatalf("round trip: %v %v", ok, err)
	}
	ec, _ := x509.MarshalPKIXPublicKey(pkitest.Key(t, pkitest.P256).Public())
	if _, ok, err := mldsa.ParsePKIXPublicKey(ec); ok || err != nil {
		t.Fatalf("an ECDSA key: ok=%v err=%v, want not ML-DSA and no error", ok, err)
	}
}

// TestCertificates issues ML-DSA leaves from an ECDSA CA (crypto/x509
// verifies the chain) and from an ML-DSA CA (CheckSigned verifies it),
// and an ML-DSA CSR whose proof of possession verifies.
func TestCertificates(t *testing.T) {
	leafKey, _ := mldsa.GenerateKey(mldsa.ML65, nil)
	root := pkitest.NewRoot(t, "ml-root")
	leaf := root.Leaf(t, pkitest.LeafOptions{Key: leafKey})
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool(root.Cert), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		t.Fatalf("ECDSA-signed ML-DSA leaf: %v", err)
	}
	pub, err := mldsa.PublicKeyOf(leaf)
	if err != nil || !leafKey.PublicKey().Equal(pub) {
		t.Fatalf("PublicKeyOf: %v", err)
	}

	caKey, _ := mldsa.GenerateKey(mldsa.ML87, nil)
	mlRoot := pkitest.NewRootWithKey(t, "ml-dsa-root", caKey)
	if p, ok := mldsa.IsSignedWithMLDSA(mlRoot.Cert.Raw); !ok || p != mldsa.ML87 {
		t.Fatal("the ML-DSA root is not ML-DSA-87-signed")
	}
	if err := mldsa.CheckSigned(mlRoot.Cert.Raw, caKey.PublicKey()); err != nil {
		t.Fatalf("self-signature: %v", err)
	}
	mlLeaf := mlRoot.Leaf(t, pkitest.LeafOptions{Key: leafKey})
	if err := mldsa.CheckSigned(mlLeaf.Raw, caKey.PublicKey()); err != nil {
		t.Fatalf("leaf signed by the ML-DSA root: %v", err)
	}
	if err := mldsa.CheckSigned(mlLeaf.Raw, leafKey.PublicKey()); !errors.Is(err, mldsa.ErrSignature) {
		t.Fatalf("checked with another key: %v, want ErrSignature", err)
	}
	tampered := bytes.Clone(mlLeaf.Raw)
	tampered[len(tampered)-5] ^= 1
	if err := mldsa.CheckSigned(tampered, caKey.PublicKey()); !errors.Is(err, mldsa.ErrSignature) {
		t.Fatalf("flipped signature byte: %v, want ErrSignature", err)
	}

	csrDER, err := mldsa.CreateCertificateRequest(&x509.CertificateRequest{Subject: pkix.Name{CommonName: "runner"}, DNSNames: []string{"runner"}}, leafKey)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.ParseCertificateRequest(csrDER)
	if err != nil {
		t.Fatal(err)
	}
	if csr.Subject.CommonName != "runner" || len(csr.DNSNames) != 1 {
		t.Fatalf("CSR names: %v %v", csr.Subject, csr.DNSNames)
	}
	csrPub, err := mldsa.CSRPublicKey(csr)
	if err != nil || !leafKey.PublicKey().Equal(csrPub) {
		t.Fatalf("CSRPublicKey: %v", err)
	}
	if err := mldsa.CheckSigned(csrDER, leafKey.PublicKey()); err != nil {
		t.Fatalf("CSR signature: %v", err)
	}
}

func pool(certs ...*x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range certs {
		p.AddCert(c)
	}
	return p
}
