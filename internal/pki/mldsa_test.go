package pki_test

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/keyless-dev/keyless/internal/mldsa"
	"github.com/keyless-dev/keyless/internal/pki"
	"github.com/keyless-dev/keyless/internal/pki/pkitest"
)

func TestMLDSAKeyPEMRoundTrip(t *testing.T) {
	for _, kind := range []string{pkitest.MLDSA44, pkitest.MLDSA65, pkitest.MLDSA87} {
		k := pkitest.Key(t, kind)
		p, err := pki.EncodePrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		back, err := pki.ParsePrivateKey(p, nil)
		if err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
		if !back.(*mldsa.PrivateKey).Equal(k.(*mldsa.PrivateKey)) {
			t.Fatalf("%s: round trip changed the key", kind)
		}
		// DER without PEM reads too.
		b, _ := pem.Decode(p)
		if _, err := pki.ParsePrivateKey(b.Bytes, nil); err != nil {
			t.Fatalf("%s DER: %v", kind, err)
		}
	}
}

// TestMLDSAEncryptedKey: an ML-DSA key encrypted as keyless encrypts
// keys (PBES2, PBKDF2-HMAC-SHA256, AES-256-CBC; AWS's helper v1.8.0 reads
// encrypted ML-DSA keys too) decrypts with its password; a wrong password
// is ErrIncorrectPassword, no password ErrPasswordRequired.
func TestMLDSAEncryptedKey(t *testing.T) {
	k := pkitest.Key(t, pkitest.MLDSA44).(*mldsa.PrivateKey)
	enc, err := pki.EncryptPrivateKey(k, []byte("correct horse"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(enc, []byte("-----BEGIN ENCRYPTED PRIVATE KEY-----")) || bytes.Contains(enc, k.PublicKey().Bytes()[:16]) {
		t.Fatal("not an encrypted PKCS#8 block")
	}
	got, err := pki.ParsePrivateKey(enc, func() ([]byte, error) { return []byte("correct horse"), nil })
	if err != nil || !k.Equal(got.(*mldsa.PrivateKey)) {
		t.Fatalf("decrypting: %v", err)
	}
	if _, err := pki.ParsePrivateKey(enc, func() ([]byte, error) { return []byte("wrong horse"), nil }); !errors.Is(err, pki.ErrIncorrectPassword) {
		t.Fatalf("wrong password: %v, want ErrIncorrectPassword", err)
	}
	if _, err := pki.ParsePrivateKey(enc, nil); !errors.Is(err, pki.ErrPasswordRequired) {
		t.Fatalf("no password: %v, want ErrPasswordRequired", err)
	}
}

func TestMLDSALeafAndCSR(t *testing.T) {
	k := pkitest.Key(t, pkitest.MLDSA65).(*mldsa.PrivateKey)
	root := pkitest.NewRoot(t, "pki-ml")
	leaf := root.Leaf(t, pkitest.LeafOptions{Key: k})
	if err := pki.CheckLeaf(leaf, time.Now()); err != nil {
		t.Fatalf("CheckLeaf: %v", err)
	}
	if !pki.KeyMatchesCertificate(k, leaf) {
		t.Fatal("the key does not match its certificate")
	}
	if pki.KeyMatchesCertificate(pkitest.Key(t, pkitest.MLDSA65+"#other"), leaf) {
		t.Fatal("another key matches the certificate")
	}
	if got := pki.DescribeKey(k.Public()); got != "ML-DSA-65" {
		t.Errorf("DescribeKey = %q", got)
	}

	der, err := mldsa.CreateCertificateRequest(&x509.CertificateRequest{Subject: pkix.Name{CommonName: "runner"}}, k)
	if err != nil {
		t.Fatal(err)
	}
	csrPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
	csr, err := pki.ParseCSR(csrPEM)
	if err != nil {
		t.Fatalf("ParseCSR: %v", err)
	}
	if !k.PublicKey().Equal(csr.PublicKey) {
		t.Fatal("ParseCSR did not set the ML-DSA public key")
	}
	// One flipped signature byte: the proof of possession fails.
	bad := bytes.Clone(der)
	bad[len(bad)-7] ^= 1
	_, err = pki.ParseCSR(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: bad}))
	if err == nil || !strings.Contains(err.Error(), "does not verify") {
		t.Fatalf("flipped CSR signature: %v", err)
	}
	// A CSR for k's public key signed by another ML-DSA key.
	other := pkitest.Key(t, pkitest.MLDSA65+"#other").(*mldsa.PrivateKey)
	forged, err := mldsa.CreateCertificateRequest(&x509.CertificateRequest{Subject: pkix.Name{CommonName: "runner"}}, other)
	if err != nil {
		t.Fatal(err)
	}
	forged = bytes.Replace(forged, other.PublicKey().Bytes(), k.PublicKey().Bytes(), 1)
	if _, err := pki.ParseCSR(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: forged})); err == nil {
		t.Fatal("a CSR signed by another key was accepted")
	}
}

// TestMLDSASignTestMessage: sign-string with an ML-DSA key signs AWS's
// helper v1.8.0's fixed string (no key digest for ML-DSA) itself,
// whatever the digest; the result is the same for every digest
// (checked against the v1.8.0 binary by hand: byte for byte equal).
func TestMLDSASignTestMessage(t *testing.T) {
	k := pkitest.Key(t, pkitest.MLDSA65).(*mldsa.PrivateKey)
	msg, err := pki.SigningTestMessage(k.Public())
	if err != nil || string(msg) != "AWS Roles Anywhere Credential Helper Signing Test1" {
		t.Fatalf("message %q, %v", msg, err)
	}
	a, err := pki.SignTestMessage(k, crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	b, err := pki.SignTestMessage(k, crypto.SHA512)
	if err != nil || !bytes.Equal(a, b) || !k.PublicKey().Verify(msg, a) {
		t.Fatalf("signature does not verify over the message itself, or depends on the digest: %v", err)
	}
}
