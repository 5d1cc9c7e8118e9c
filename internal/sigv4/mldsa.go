package sigv4

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"

	"github.com/keyless-dev/keyless/internal/mldsa"
)

// AlgorithmMLDSA is Roles Anywhere's algorithm for ML-DSA keys (all
// three parameter sets): AWS's helper v1.8.0 signs the string to sign
// itself, not a digest, with pure, deterministic ML-DSA and an empty
// context, and sends the signature hex-encoded like the others.
const AlgorithmMLDSA = "AWS4-X509-MLDSA"

// signStringToSign signs the X509 string to sign with key: PKCS#1 v1.5
// over SHA-256 for RSA (deterministic), ASN.1 DER (r, s) over SHA-256 for
// ECDSA, and for ML-DSA the string's bytes themselves.
func signStringToSign(key crypto.Signer, alg, sts string) ([]byte, error) {
	if alg == AlgorithmMLDSA {
		return key.Sign(rand.Reader, []byte(sts), crypto.Hash(0))
	}
	sum := sha256.Sum256([]byte(sts))
	return key.Sign(rand.Reader, sum[:], crypto.SHA256)
}

// verifyStringToSign checks sig, the signature of the X509 string to sign
// by pub, as signStringToSign makes it.
func verifyStringToSign(pub crypto.PublicKey, sts string, sig []byte) bool {
	if k, ok := pub.(*mldsa.PublicKey); ok {
		return k.Verify([]byte(sts), sig)
	}
	sum := sha256.Sum256([]byte(sts))
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return rsa.VerifyPKCS1v15(k, crypto.SHA256, sum[:], sig) == nil
	case *ecdsa.PublicKey:
		return ecdsa.VerifyASN1(k, sum[:], sig)
	}
	return false
}
