package pki_test

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"math/big"
	"strings"
	"testing"

	"github.com/keyless-dev/keyless/internal/pki"
	"github.com/keyless-dev/keyless/internal/pki/pkitest"
)

// TestCheckCA breaks each rule Roles Anywhere applies to CA certificates
// once, and checks that the CAs AWS Private CA and keyless make pass.
func TestCheckCA(t *testing.T) {
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ca := func(o pkitest.CAOptions) *x509.Certificate { return pkitest.NewCA(t, o).Cert }
	refused := []struct {
		name string
		cert *x509.Certificate
		want string
	}{
		{"no keyUsage", ca(pkitest.CAOptions{Name: "no-ku", NoKeyUsage: true}), "it has no keyUsage extension"},
		{"keyUsage without keyCertSign", ca(pkitest.CAOptions{Name: "crl-only", KeyUsage: x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature}), "its keyUsage does not include keyCertSign"},
		{"not a CA", ca(pkitest.CAOptions{Name: "not-ca", NotCA: true, KeyUsage: x509.KeyUsageDigitalSignature}), "it is not a CA certificate (basicConstraints CA=true)"},
		{"SHA-1 RSA root", ca(pkitest.CAOptions{Name: "sha1", Key: pkitest.Key(t, pkitest.RSA2048), SignatureAlgorithm: x509.SHA1WithRSA}), "it is signed with SHA1-RSA; Roles Anywhere requires SHA-256 or stronger"},
		{"SHA-1 ECDSA root", ca(pkitest.CAOptions{Name: "ecdsa-sha1", SignatureAlgorithm: x509.ECDSAWithSHA1}), "it is signed with ECDSA-SHA1"},
		{"RSA 1024", ca(pkitest.CAOptions{Name: "rsa1024", Key: pkitest.Key(t, pkitest.RSA1024)}), "its key is RSA 1024 bits"},
		{"RSA over 4096 bits", bigRSA(t), "its key is RSA 4104 bits"},
		{"P-224", ca(pkitest.CAOptions{Name: "p224", Key: p224(t)}), "its key is ECDSA P-224"},
		{"Ed25519", ca(pkitest.CAOptions{Name: "ed25519", Key: edKey}), "it is signed with Ed25519"},
		{"version 1", version1(t), "it is X.509 version 1, not 3"},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			err := pki.CheckCA(tt.cert)
			if !errors.Is(err, pki.ErrCAProfile) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("CheckCA: %v\nwant ErrCAProfile with …%s…", err, tt.want)
			}
		})
	}

	root := pkitest.NewRoot(t, "accepted-root")
	accepted := []struct {
		name string
		cert *x509.Certificate
	}{
		{"pkitest root (ECDSA P-256, SHA-256)", root.Cert},
		{"intermediate", root.Intermediate(t, "accepted-int").Cert},
		{"P-384", ca(pkitest.CAOptions{Name: "p384", Key: pkitest.Key(t, pkitest.P384)})},
		{"P-521 (AWS Private CA makes EC_secp521r1 CAs)", ca(pkitest.CAOptions{Name: "p521", Key: pkitest.Key(t, pkitest.P521)})},
		{"RSA 2048", ca(pkitest.CAOptions{Name: "rsa2048", Key: pkitest.Key(t, pkitest.RSA2048)})},
		{"RSA 3072, SHA-384", ca(pkitest.CAOptions{Name: "rsa3072", Key: pkitest.Key(t, pkitest.RSA3072), SignatureAlgorithm: x509.SHA384WithRSA})},
		{"RSA-PSS", ca(pkitest.CAOptions{Name: "pss", Key: pkitest.Key(t, pkitest.RSA2048), SignatureAlgorithm: x509.SHA256WithRSAPSS})},
		{"ML-DSA-65", mldsaCA(t)},
	}
	for _, tt := range accepted {
		t.Run(tt.name, func(t *testing.T) {
			if err := pki.CheckCA(tt.cert); err != nil {
				t.Errorf("CheckCA: %v", err)
			}
		})
	}
}

// version1 is a CA certificate re-encoded as X.509 v1 (no version field);
// its signature is not valid, which CheckCA does not look at.
func version1(t *testing.T) *x509.Certificate {
	c := pkitest.NewRoot(t, "v1").Cert
	var cert struct {
		TBS    asn1.RawValue
		SigAlg asn1.RawValue
		Sig    asn1.BitString
	}
	if _, err := asn1.Unmarshal(c.Raw, &cert); err != nil {
		t.Fatal(err)
	}
	// The TBS starts with the explicit [0] version; drop it.
	fields := sequenceFields(t, cert.TBS.FullBytes)
	if fields[0].Class != asn1.ClassContextSpecific || fields[0].Tag != 0 {
		t.Fatal("TBS does not start with a version")
	}
	// v1 certificates have no extensions ([3]) either.
	var kept []byte
	for _, f := range fields[1:] {
		if f.Class == asn1.ClassContextSpecific && f.Tag == 3 {
			continue
		}
		kept = append(kept, f.FullBytes...)
	}
	tbs, err := asn1.Marshal(asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagSequence, IsCompound: true, Bytes: kept})
	if err != nil {
		t.Fatal(err)
	}
	der, err := asn1.Marshal(struct {
		TBS    asn1.RawValue
		SigAlg asn1.RawValue
		Sig    asn1.BitString
	}{asn1.RawValue{FullBytes: tbs}, cert.SigAlg, cert.Sig})
	if err != nil {
		t.Fatal(err)
	}
	v1, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return v1
}

// mldsaCA builds the DER of a self-issued ML-DSA-65 CA certificate:
// crypto/x509 cannot sign with ML-DSA, so the key and signature are
// placeholders of the right sizes. CheckCA reads the algorithms, not the
// signature.
func mldsaCA(t *testing.T) *x509.Certificate {
	oid := asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 3, 18}
	alg := pkix.AlgorithmIdentifier{Algorithm: oid}
	name, err := asn1.Marshal(pkix.Name{CommonName: "mldsa-root"}.ToRDNSequence())
	if err != nil {
		t.Fatal(err)
	}
	bc, _ := asn1.Marshal(struct {
		IsCA bool `asn1:"optional"`
	}{true})
	ku, _ := asn1.Marshal(asn1.BitString{Bytes: []byte{0x06}, BitLength: 7}) // keyCertSign, cRLSign
	// Borrow a validity from a real certificate.
	validity := sequenceFields(t, pkitest.NewRoot(t, "mldsa-validity").Cert.RawTBSCertificate)[4]
	tbsFields := struct {
		Version  int `asn1:"optional,explicit,default:0,tag:0"`
		Serial   *big.Int
		SigAlg   pkix.AlgorithmIdentifier
		Issuer   asn1.RawValue
		Validity asn1.RawValue
		Subject  asn1.RawValue
		SPKI     struct {
			Alg pkix.AlgorithmIdentifier
			Key asn1.BitString
		}
		Extensions []pkix.Extension `asn1:"optional,explicit,tag:3"`
	}{Version: 2, Serial: big.NewInt(7), SigAlg: alg, Issuer: asn1.RawValue{FullBytes: name}, Validity: asn1.RawValue{FullBytes: validity.FullBytes},
		Subject:    asn1.RawValue{FullBytes: name},
		Extensions: []pkix.Extension{{Id: asn1.ObjectIdentifier{2, 5, 29, 19}, Critical: true, Value: bc}, {Id: asn1.ObjectIdentifier{2, 5, 29, 15}, Critical: true, Value: ku}}}
	tbsFields.SPKI.Alg = alg
	tbsFields.SPKI.Key = asn1.BitString{Bytes: make([]byte, 1952), BitLength: 1952 * 8}
	tbsDER, err := asn1.Marshal(tbsFields)
	if err != nil {
		t.Fatal(err)
	}
	der, err := asn1.Marshal(struct {
		TBS    asn1.RawValue
		SigAlg pkix.AlgorithmIdentifier
		Sig    asn1.BitString
	}{asn1.RawValue{FullBytes: tbsDER}, alg, asn1.BitString{Bytes: make([]byte, 3309), BitLength: 3309 * 8}})
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("parsing the ML-DSA CA: %v", err)
	}
	return c
}

// sequenceFields returns the elements of a DER SEQUENCE.
func sequenceFields(t *testing.T, der []byte) []asn1.RawValue {
	var seq asn1.RawValue
	if _, err := asn1.Unmarshal(der, &seq); err != nil {
		t.Fatal(err)
	}
	var fields []asn1.RawValue
	for rest := seq.Bytes; len(rest) > 0; {
		var f asn1.RawValue
		var err error
		if rest, err = asn1.Unmarshal(rest, &f); err != nil {
			t.Fatal(err)
		}
		fields = append(fields, f)
	}
	return fields
}

func p224(t *testing.T) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// bigRSA is an intermediate CA whose key is a 4104-bit RSA modulus, signed
// by a P-256 root: generating a real key that size takes seconds, and
// CheckCA reads only the key's size.
func bigRSA(t *testing.T) *x509.Certificate {
	root := pkitest.NewRoot(t, "big-rsa-parent")
	n := new(big.Int).Lsh(big.NewInt(1), 4103)
	n.Add(n, big.NewInt(1))
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(9), Subject: pkix.Name{CommonName: "rsa4104"},
		NotBefore: root.Cert.NotBefore, NotAfter: root.Cert.NotAfter, BasicConstraintsValid: true, IsCA: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, root.Cert, &rsa.PublicKey{N: n, E: 65537}, root.Key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
