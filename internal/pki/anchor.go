package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"

	"github.com/keyless-dev/keyless/internal/mldsa"
)

// ErrCAProfile means a certificate cannot be a CA certificate of IAM Roles
// Anywhere: a certificate of a trust anchor's bundle, or an intermediate CA
// of a CreateSession chain.
var ErrCAProfile = errors.New("certificate cannot be a Roles Anywhere CA certificate")

// The ML-DSA algorithm identifiers (NIST CSOR; RFC 9881): one OID names
// both the key and the signature, and the signature hashes nothing
// separately, so "SHA-256 or stronger" does not apply to it.
var (
	oidMLDSA44 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 3, 17}
	oidMLDSA65 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 3, 18}
	oidMLDSA87 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 3, 19}
)

// CheckCA applies the rules IAM Roles Anywhere documents for the
// certificates of a trust anchor (user guide, "Trust model", "Signature
// validation"): X.509 v3, basicConstraints CA=true, a keyUsage extension
// that includes keyCertSign (Certificate Sign), and a signature with
// SHA-256 or stronger (MD5 and SHA-1 are refused). The emulator applies
// the same rules to the intermediates of a CreateSession chain.
//
// Where AWS is silent, CheckCA reads the rules strictly: a CA certificate
// without keyUsage is refused (RFC 5280 path validation would accept
// it), and its key must be one AWS Private CA makes CA keys of, since
// Roles Anywhere accepts those CAs as trust anchors: RSA of 2048 to 4096
// bits, ECDSA on P-256, P-384 or P-521, or ML-DSA-44/65/87.
func CheckCA(cert *x509.Certificate) error {
	if cert.Version != 3 {
		return fmt.Errorf("%w: it is X.509 version %d, not 3", ErrCAProfile, cert.Version)
	}
	if !cert.BasicConstraintsValid || !cert.IsCA {
		return fmt.Errorf("%w: it is not a CA certificate (basicConstraints CA=true); a trust anchor holds the root or intermediate CA, not a leaf", ErrCAProfile)
	}
	if cert.KeyUsage == 0 {
		return fmt.Errorf("%w: it has no keyUsage extension; Roles Anywhere requires keyUsage with keyCertSign (Certificate Sign) on CA certificates", ErrCAProfile)
	}
	if cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return fmt.Errorf("%w: its keyUsage does not include keyCertSign (Certificate Sign)", ErrCAProfile)
	}
	if err := checkCASignature(cert); err != nil {
		return err
	}
	return checkCAKey(cert)
}

// checkCASignature refuses signatures weaker than SHA-256 and those
// Roles Anywhere does not verify.
func checkCASignature(cert *x509.Certificate) error {
	switch cert.SignatureAlgorithm {
	case x509.SHA256WithRSA, x509.SHA384WithRSA, x509.SHA512WithRSA,
		x509.SHA256WithRSAPSS, x509.SHA384WithRSAPSS, x509.SHA512WithRSAPSS,
		x509.ECDSAWithSHA256, x509.ECDSAWithSHA384, x509.ECDSAWithSHA512:
		return nil
	case x509.MD2WithRSA, x509.MD5WithRSA, x509.SHA1WithRSA, x509.DSAWithSHA1, x509.ECDSAWithSHA1:
		return fmt.Errorf("%w: it is signed with %s; Roles Anywhere requires SHA-256 or stronger (MD5 and SHA-1 are refused)", ErrCAProfile, cert.SignatureAlgorithm)
	case x509.UnknownSignatureAlgorithm:
		if isMLDSA(signatureOID(cert.Raw)) {
			return nil
		}
	}
	return fmt.Errorf("%w: it is signed with %s; Roles Anywhere verifies RSA, ECDSA and ML-DSA signatures with SHA-256 or stronger", ErrCAProfile, describeSignature(cert))
}

// checkCAKey accepts the CA keys AWS Private CA makes.
func checkCAKey(cert *x509.Certificate) error {
	const accepted = "CA keys must be RSA 2048 to 4096 bits, ECDSA P-256/P-384/P-521 or ML-DSA"
	switch k := cert.PublicKey.(type) {
	case *rsa.PublicKey:
		if bits := k.N.BitLen(); bits < 2048 || bits > 4096 {
			return fmt.Errorf("%w: its key is RSA %d bits; %s", ErrCAProfile, bits, accepted)
		}
		return nil
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256(), elliptic.P384(), elliptic.P521():
			return nil
		}
		return fmt.Errorf("%w: its key is ECDSA %s; %s", ErrCAProfile, k.Curve.Params().Name, accepted)
	case nil:
		// crypto/x509 leaves an ML-DSA key unparsed; parse it here, so a
		// key of the wrong length or with algorithm parameters is refused.
		if _, ok, err := mldsa.ParsePKIXPublicKey(cert.RawSubjectPublicKeyInfo); ok {
			if err != nil {
				return fmt.Errorf("%w: its ML-DSA key: %v", ErrCAProfile, err)
			}
			return nil
		}
	}
	return fmt.Errorf("%w: its key is %s; %s", ErrCAProfile, describeCertKey(cert), accepted)
}

func isMLDSA(oid asn1.ObjectIdentifier) bool {
	return oid.Equal(oidMLDSA44) || oid.Equal(oidMLDSA65) || oid.Equal(oidMLDSA87)
}

// algorithmIdentifier is X.509's AlgorithmIdentifier, parameters left
// undecoded.
type algorithmIdentifier struct {
	Algorithm  asn1.ObjectIdentifier
	Parameters asn1.RawValue `asn1:"optional"`
}

// signatureOID reads the signatureAlgorithm of a DER certificate, which
// crypto/x509 does not expose for algorithms it does not know; nil when
// it does not parse.
func signatureOID(der []byte) asn1.ObjectIdentifier {
	var c struct {
		TBS       asn1.RawValue
		Algorithm algorithmIdentifier
		Signature asn1.BitString
	}
	if _, err := asn1.Unmarshal(der, &c); err != nil {
		return nil
	}
	return c.Algorithm.Algorithm
}

// publicKeyOID reads the algorithm of a SubjectPublicKeyInfo; nil when it
// does not parse.
func publicKeyOID(spki []byte) asn1.ObjectIdentifier {
	var k struct {
		Algorithm algorithmIdentifier
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(spki, &k); err != nil {
		return nil
	}
	return k.Algorithm.Algorithm
}

func describeSignature(cert *x509.Certificate) string {
	if cert.SignatureAlgorithm != x509.UnknownSignatureAlgorithm {
		return cert.SignatureAlgorithm.String()
	}
	if oid := signatureOID(cert.Raw); oid != nil {
		return "algorithm " + oid.String()
	}
	return "an unknown algorithm"
}

func describeCertKey(cert *x509.Certificate) string {
	if cert.PublicKey != nil {
		return DescribeKey(cert.PublicKey)
	}
	if oid := publicKeyOID(cert.RawSubjectPublicKeyInfo); oid != nil {
		return "algorithm " + oid.String()
	}
	return "of an unknown algorithm"
}
