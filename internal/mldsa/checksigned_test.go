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
)

// resignWithAlgorithm rewrites a DER certificate's signature algorithm,
// in the TBSCertificate and outside it, to alg, and signs the result
// with key: a certificate whose signature verifies, so that only the
// algorithm identifier is wrong.
func resignWithAlgorithm(t *testing.T, der []byte, alg pkix.AlgorithmIdentifier, key *PrivateKey) []byte {
	t.Helper()
	var s signed
	if _, err := asn1.Unmarshal(der, &s); err != nil {
		t.Fatal(err)
	}
	var elems []asn1.RawValue
	for rest := s.Signed.Bytes; len(rest) > 0; {
		var e asn1.RawValue
		var err error
		if rest, err = asn1.Unmarshal(rest, &e); err != nil {
			t.Fatal(err)
		}
		elems = append(elems, e)
	}
	algDER, err := asn1.Marshal(alg)
	if err != nil {
		t.Fatal(err)
	}
	elems[2] = asn1.RawValue{FullBytes: algDER} // version, serial, signature
	var body []byte
	for _, e := range elems {
		body = append(body, e.FullBytes...)
	}
	tbs, err := asn1.Marshal(asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagSequence, IsCompound: true, Bytes: body})
	if err != nil {
		t.Fatal(err)
	}
	sig, err := key.Sign(nil, tbs, crypto.Hash(0))
	if err != nil {
		t.Fatal(err)
	}
	out, err := asn1.Marshal(struct {
		TBS       asn1.RawValue
		Algorithm pkix.AlgorithmIdentifier
		Signature asn1.BitString
	}{asn1.RawValue{FullBytes: tbs}, alg, asn1.BitString{Bytes: sig, BitLength: 8 * len(sig)}})
	if err != nil {
		t.Fatal(err)
	}
	return out
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
