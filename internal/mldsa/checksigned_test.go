package mldsa

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"math/big"
	"testing"
	"time"

	"github.com/keyless-dev/keyless/internal/testkit"
)

// resignWithAlgorithm rewrites a DER certificate's signature algorithm,
// in the TBSCertificate and outside it, to alg, and signs the result
// with key: a certificate whose signature verifies, so that only the
// algorithm identifier is wrong.
func resignWithAlgorithm(t *testing.T, der []byte, alg pkix.AlgorithmIdentifier, key *PrivateKey) []byte {
	t.Helper()
	algDER, err := asn1.Marshal(alg)
	if err != nil {
		t.Fatal(err)
	}
	return testkit.EditCertificate(t, der, func(elems []asn1.RawValue) {
		elems[2] = asn1.RawValue{FullBytes: algDER} // version, serial, signature
	}, algDER, func(tbs []byte) []byte {
		sig, err := key.Sign(nil, tbs, crypto.Hash(0))
		if err != nil {
			t.Fatal(err)
		}
		return sig
	})
}

// TestCheckSignedAlgorithmIdentifier: CheckSigned refuses a signature
// that verifies with the key when the signature algorithm is another
// parameter set's (ML-DSA-44 named, ML-DSA-65 key) or carries
// parameters (NULL; RFC 9881 says they are absent). The same
// certificate re-signed with the right identifier verifies, so each
// refusal is the identifier's alone.
func TestCheckSignedAlgorithmIdentifier(t *testing.T) {
	key, err := GenerateKey(ML65, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "alg-id"}, NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour),
		BasicConstraintsValid: true, IsCA: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	good := resignWithAlgorithm(t, der, pkix.AlgorithmIdentifier{Algorithm: ML65.OID()}, key)
	if err := CheckSigned(good, key.PublicKey()); err != nil {
		t.Fatalf("re-signed with the ML-DSA-65 identifier: %v", err)
	}
	for name, alg := range map[string]pkix.AlgorithmIdentifier{
		"ML-DSA-44 OID, ML-DSA-65 key": {Algorithm: ML44.OID()},
		"NULL parameters":              {Algorithm: ML65.OID(), Parameters: asn1.NullRawValue},
	} {
		t.Run(name, func(t *testing.T) {
			bad := resignWithAlgorithm(t, der, alg, key)
			if err := CheckSigned(bad, key.PublicKey()); !errors.Is(err, ErrSignature) {
				t.Fatalf("CheckSigned = %v, want ErrSignature", err)
			}
		})
	}
}
