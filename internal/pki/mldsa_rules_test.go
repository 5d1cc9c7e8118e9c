package pki_test

import (
	"bytes"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"math/big"
	"testing"
	"time"

	"github.com/keyless-dev/keyless/internal/mldsa"
	"github.com/keyless-dev/keyless/internal/pki"
	"github.com/keyless-dev/keyless/internal/pki/pkitest"
	"github.com/keyless-dev/keyless/internal/testkit"
)

// editCert rewrites a DER certificate: edit changes the elements of its
// TBSCertificate (version, serial, signature algorithm, issuer, validity,
// subject, SubjectPublicKeyInfo, ...), and outerAlg, when not nil,
// replaces the outer signature algorithm. The signature is left as it
// was: the rules under test read the certificate, not its signature.
func editCert(t *testing.T, der []byte, edit func(elems []asn1.RawValue), outerAlg []byte) *x509.Certificate {
	t.Helper()
	c, err := x509.ParseCertificate(testkit.EditCertificate(t, der, edit, outerAlg, nil))
	if err != nil {
		t.Fatalf("parsing the edited certificate: %v", err)
	}
	return c
}

// TBSCertificate element indexes (version [0] is present in v3).
const (
	tbsSignature = 2
	tbsSPKI      = 6
)

func mustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := asn1.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestCheckCAMLDSAKey: a CA certificate's ML-DSA key is parsed, not just
// recognised by its OID: a key of the wrong length, or one with
// algorithm parameters (RFC 9881 says they are absent), is refused; the
// real key is accepted.
func TestCheckCAMLDSAKey(t *testing.T) {
	ca := pkitest.NewRootWithKey(t, "pki-ml-ca", pkitest.Key(t, pkitest.MLDSA65))
	if err := pki.CheckCA(ca.Cert); err != nil {
		t.Fatalf("ML-DSA-65 CA: %v", err)
	}
	oid := mldsa.ML65.OID()
	key := pkitest.Key(t, pkitest.MLDSA65).(*mldsa.PrivateKey).PublicKey().Bytes()
	spki := func(params asn1.RawValue, key []byte) []byte {
		return mustMarshal(t, struct {
			Algorithm pkix.AlgorithmIdentifier
			PublicKey asn1.BitString
		}{pkix.AlgorithmIdentifier{Algorithm: oid, Parameters: params}, asn1.BitString{Bytes: key, BitLength: 8 * len(key)}})
	}
	for name, der := range map[string][]byte{
		"key one byte short":   spki(asn1.RawValue{}, key[:len(key)-1]),
		"key one byte long":    spki(asn1.RawValue{}, append(bytes.Clone(key), 0)),
		"NULL parameters":      spki(asn1.NullRawValue, key),
		"ML-DSA-44 key length": spki(asn1.RawValue{}, pkitest.Key(t, pkitest.MLDSA44).(*mldsa.PrivateKey).PublicKey().Bytes()),
	} {
		t.Run(name, func(t *testing.T) {
			c := editCert(t, ca.Cert.Raw, func(e []asn1.RawValue) { e[tbsSPKI] = asn1.RawValue{FullBytes: der} }, nil)
			if err := pki.CheckCA(c); !errors.Is(err, pki.ErrCAProfile) {
				t.Fatalf("CheckCA = %v, want ErrCAProfile", err)
			}
		})
	}
}

// TestCheckLeafUnknownSignatureAlgorithm: the leaf rule's exemption for
// signature algorithms crypto/x509 does not know is for ML-DSA only; a
// leaf signed with any other unknown algorithm is refused.
func TestCheckLeafUnknownSignatureAlgorithm(t *testing.T) {
	root := pkitest.NewRootWithKey(t, "pki-ml-leafsig", pkitest.Key(t, pkitest.MLDSA44))
	leaf := root.Leaf(t, pkitest.LeafOptions{})
	if err := pki.CheckLeaf(leaf, time.Now()); err != nil {
		t.Fatalf("ML-DSA-44-signed leaf: %v", err)
	}
	// Same length as ML-DSA's OIDs, in the same NIST arc, assigned to no
	// signature algorithm keyless knows.
	unknown := mustMarshal(t, pkix.AlgorithmIdentifier{Algorithm: asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 3, 99}})
	bad := editCert(t, leaf.Raw, func(e []asn1.RawValue) { e[tbsSignature] = asn1.RawValue{FullBytes: unknown} }, unknown)
	if bad.SignatureAlgorithm != x509.UnknownSignatureAlgorithm {
		t.Fatalf("crypto/x509 knows the test's OID as %s", bad.SignatureAlgorithm)
	}
	if err := pki.CheckLeaf(bad, time.Now()); !errors.Is(err, pki.ErrLeafProfile) {
		t.Fatalf("leaf signed with an unknown algorithm: %v, want ErrLeafProfile", err)
	}
}

// TestCheckCAUnknownSignatureAlgorithm: likewise for CA certificates.
func TestCheckCAUnknownSignatureAlgorithm(t *testing.T) {
	root := pkitest.NewRootWithKey(t, "pki-ml-casig", pkitest.Key(t, pkitest.MLDSA44))
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "pki-ml-casig-int"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), BasicConstraintsValid: true, IsCA: true, KeyUsage: x509.KeyUsageCertSign}
	k := pkitest.Key(t, pkitest.P256)
	der, err := mldsa.CreateCertificate(rand.Reader, tmpl, root.Cert, k.Public(), root.Key)
	if err != nil {
		t.Fatal(err)
	}
	unknown := mustMarshal(t, pkix.AlgorithmIdentifier{Algorithm: asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 3, 99}})
	bad := editCert(t, der, func(e []asn1.RawValue) { e[tbsSignature] = asn1.RawValue{FullBytes: unknown} }, unknown)
	if err := pki.CheckCA(bad); !errors.Is(err, pki.ErrCAProfile) {
		t.Fatalf("CA signed with an unknown algorithm: %v, want ErrCAProfile", err)
	}
}
