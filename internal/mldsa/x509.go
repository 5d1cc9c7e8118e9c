package mldsa

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
	"sync"
)

// PublicKeyOf returns a certificate's subject public key: what
// crypto/x509 parsed, or the ML-DSA key it leaves unparsed (its
// PublicKey is nil for OIDs it does not know). ok is false when the key
// is neither.
func PublicKeyOf(cert *x509.Certificate) (pub crypto.PublicKey, err error) {
	if cert.PublicKey != nil {
		return cert.PublicKey, nil
	}
	k, ok, err := ParsePKIXPublicKey(cert.RawSubjectPublicKeyInfo)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("the certificate's public-key algorithm is not one keyless knows")
	}
	return k, nil
}

// CSRPublicKey returns a CSR's public key, parsing an ML-DSA key that
// crypto/x509 left unparsed.
func CSRPublicKey(csr *x509.CertificateRequest) (crypto.PublicKey, error) {
	if csr.PublicKey != nil {
		return csr.PublicKey, nil
	}
	k, ok, err := ParsePKIXPublicKey(csr.RawSubjectPublicKeyInfo)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("the request's public-key algorithm is not one keyless knows")
	}
	return k, nil
}

// signed is the outer shape of certificates, CSRs and CRLs.
type signed struct {
	Raw       asn1.RawContent
	Signed    asn1.RawValue
	Algorithm pkix.AlgorithmIdentifier
	Signature asn1.BitString
}

// ErrSignature means an ML-DSA signature of a certificate or CSR does not
// verify.
var ErrSignature = errors.New("ML-DSA signature does not verify")

// CheckSigned checks the signature of a DER certificate, CSR or CRL
// (anything shaped SEQUENCE { signed, AlgorithmIdentifier, BIT STRING })
// made with ML-DSA key pub: the signature algorithm must be pub's
// parameter set, with absent parameters (RFC 9881), and the signature
// must verify over the signed part.
func CheckSigned(der []byte, pub *PublicKey) error {
	var s signed
	rest, err := asn1.Unmarshal(der, &s)
	if err != nil {
		return fmt.Errorf("parsing signed structure: %v", err)
	}
	if len(rest) > 0 {
		return errors.New("parsing signed structure: trailing data")
	}
	if !s.Algorithm.Algorithm.Equal(pub.params.oid) {
		return fmt.Errorf("%w: signed with algorithm %s, but the key is %s (%s)", ErrSignature, s.Algorithm.Algorithm, pub.params.name, pub.params.oid)
	}
	if len(s.Algorithm.Parameters.FullBytes) > 0 {
		return fmt.Errorf("%w: %s signature algorithm has parameters; RFC 9881 says they are absent", ErrSignature, pub.params.name)
	}
	if s.Signature.BitLength%8 != 0 || !pub.Verify(s.Signed.FullBytes, s.Signature.Bytes) {
		return fmt.Errorf("%w with the %s key", ErrSignature, pub.params.name)
	}
	return nil
}

// IsSignedWithMLDSA reports whether a DER certificate or CSR's signature
// algorithm is ML-DSA, and which parameter set.
func IsSignedWithMLDSA(der []byte) (*Params, bool) {
	var s signed
	if _, err := asn1.Unmarshal(der, &s); err != nil {
		return nil, false
	}
	return ByOID(s.Algorithm.Algorithm)
}

// placeholderKey stands in for an ML-DSA key while crypto/x509 encodes
// a certificate or CSR; its key never reaches the result. It is not a
// secret. Made on first use, not at every keyless start.
var placeholderKey = sync.OnceValue(func() *ecdsa.PrivateKey {
	k, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), append(make([]byte, 31), 1))
	if err != nil {
		panic(err)
	}
	return k
})

// CreateCertificate is x509.CreateCertificate for certificates whose
// subject key pub, signing key priv, or both, are ML-DSA (other keys go
// straight to crypto/x509). crypto/x509 encodes the certificate around a
// placeholder key; the ML-DSA SubjectPublicKeyInfo and signature
// algorithm then replace it and priv signs the result. For a CA
// certificate without a SubjectKeyId, the SubjectKeyId is the first 160
// bits of SHA-256 of the public key (RFC 7093 method 1, as crypto/x509
// does).
func CreateCertificate(rnd io.Reader, tmpl, parent *x509.Certificate, pub crypto.PublicKey, priv crypto.Signer) ([]byte, error) {
	mlPub, pubIsML := pub.(*PublicKey)
	mlPriv, privIsML := priv.(*PrivateKey)
	if !pubIsML && !privIsML {
		return x509.CreateCertificate(rnd, tmpl, parent, pub, priv)
	}
	t := *tmpl
	encodePub, encodePriv := pub, priv
	if pubIsML {
		encodePub = placeholderKey().Public()
		if len(t.SubjectKeyId) == 0 && t.IsCA {
			sum := sha256.Sum256(mlPub.raw)
			t.SubjectKeyId = sum[:20]
		}
	}
	if privIsML {
		encodePriv = placeholderKey()
		t.SignatureAlgorithm = x509.ECDSAWithSHA256
		if parent == tmpl {
			parent = &t
		}
		p := *parent
		p.PublicKey = nil
		parent = &p
	}
	der, err := x509.CreateCertificate(rnd, &t, parent, encodePub, encodePriv)
	if err != nil {
		return nil, err
	}
	return resign(der, 6, 2, mlPub, priv, mlPriv)
}

// CreateCertificateRequest is x509.CreateCertificateRequest for an
// ML-DSA key.
func CreateCertificateRequest(tmpl *x509.CertificateRequest, key *PrivateKey) ([]byte, error) {
	t := *tmpl
	t.SignatureAlgorithm = x509.ECDSAWithSHA256
	der, err := x509.CreateCertificateRequest(nil, &t, placeholderKey())
	if err != nil {
		return nil, err
	}
	return resign(der, 2, -1, key.pub, key, key)
}

// CreateRevocationList is x509.CreateRevocationList for an ML-DSA
// issuer key.
func CreateRevocationList(rnd io.Reader, tmpl *x509.RevocationList, issuer *x509.Certificate, priv *PrivateKey) ([]byte, error) {
	is := *issuer
	is.PublicKey = nil
	if is.KeyUsage == 0 {
		is.KeyUsage = x509.KeyUsageCRLSign
	}
	t := *tmpl
	t.SignatureAlgorithm = x509.ECDSAWithSHA256
	der, err := x509.CreateRevocationList(rnd, &t, &is, placeholderKey())
	if err != nil {
		return nil, err
	}
	return resign(der, -1, 1, nil, priv, priv)
}

// resign replaces, in the DER certificate, CSR or CRL der, the
// SubjectPublicKeyInfo (element spkiIndex of the signed part, if any)
// with pub's when pub is not nil, and the signature with priv's: an
// ML-DSA signature when mlPriv is not nil (the signed part's own
// signature AlgorithmIdentifier, element algIndex if any, changes too),
// else priv's signature with the algorithm the structure already names.
func resign(der []byte, spkiIndex, algIndex int, pub *PublicKey, priv crypto.Signer, mlPriv *PrivateKey) ([]byte, error) {
	var s signed
	if _, err := asn1.Unmarshal(der, &s); err != nil {
		return nil, err
	}
	var elems []asn1.RawValue
	for rest := s.Signed.Bytes; len(rest) > 0; {
		var e asn1.RawValue
		var err error
		if rest, err = asn1.Unmarshal(rest, &e); err != nil {
			return nil, err
		}
		elems = append(elems, e)
	}
	if len(elems) <= max(spkiIndex, algIndex) {
		return nil, errors.New("re-signing: unexpected structure")
	}
	if pub != nil {
		spkiDER, err := MarshalPKIXPublicKey(pub)
		if err != nil {
			return nil, err
		}
		elems[spkiIndex] = asn1.RawValue{FullBytes: spkiDER}
	}
	alg := s.Algorithm
	if mlPriv != nil {
		alg = pkix.AlgorithmIdentifier{Algorithm: mlPriv.params.oid}
		if algIndex >= 0 {
			algDER, err := asn1.Marshal(alg)
			if err != nil {
				return nil, err
			}
			elems[algIndex] = asn1.RawValue{FullBytes: algDER}
		}
	}
	var body []byte
	for _, e := range elems {
		body = append(body, e.FullBytes...)
	}
	tbs, err := asn1.Marshal(asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagSequence, IsCompound: true, Bytes: body})
	if err != nil {
		return nil, err
	}
	var sig []byte
	if mlPriv != nil {
		sig, err = mlPriv.Sign(nil, tbs, crypto.Hash(0))
	} else {
		sig, err = signClassic(tbs, alg, priv)
	}
	if err != nil {
		return nil, fmt.Errorf("signing: %w", err)
	}
	return asn1.Marshal(struct {
		TBS       asn1.RawValue
		Algorithm pkix.AlgorithmIdentifier
		Signature asn1.BitString
	}{asn1.RawValue{FullBytes: tbs}, alg, asn1.BitString{Bytes: sig, BitLength: 8 * len(sig)}})
}

var (
	oidECDSASHA256 = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2}
	oidECDSASHA384 = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 3}
	oidECDSASHA512 = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 4}
	oidRSASHA256   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 11}
	oidRSASHA384   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 12}
	oidRSASHA512   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 13}
	oidEd25519     = asn1.ObjectIdentifier{1, 3, 101, 112}
)

// signClassic signs tbs with an ECDSA, RSA PKCS#1 v1.5 or Ed25519 key
// with the algorithm crypto/x509 chose for it.
func signClassic(tbs []byte, alg pkix.AlgorithmIdentifier, priv crypto.Signer) ([]byte, error) {
	var h crypto.Hash
	switch oid := alg.Algorithm; {
	case oid.Equal(oidECDSASHA256), oid.Equal(oidRSASHA256):
		h = crypto.SHA256
	case oid.Equal(oidECDSASHA384), oid.Equal(oidRSASHA384):
		h = crypto.SHA384
	case oid.Equal(oidECDSASHA512), oid.Equal(oidRSASHA512):
		h = crypto.SHA512
	case oid.Equal(oidEd25519):
		return priv.Sign(nil, tbs, crypto.Hash(0))
	default:
		return nil, fmt.Errorf("cannot re-sign with signature algorithm %s", oid)
	}
	d := h.New()
	d.Write(tbs)
	switch priv.Public().(type) {
	case *ecdsa.PublicKey, *rsa.PublicKey, ed25519.PublicKey:
	default:
		return nil, fmt.Errorf("cannot sign with a %T key", priv.Public())
	}
	return priv.Sign(rand.Reader, d.Sum(nil), h)
}
