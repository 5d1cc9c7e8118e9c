package pki

import (
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/keyless-dev/keyless/internal/mldsa"
)

// Errors from CheckLeaf. ErrExpired and ErrNotYetValid are separate because
// their fix (renew the certificate, check the clock) differs from the fix
// for a certificate with the wrong profile (issue a new one).
var (
	ErrExpired     = errors.New("certificate has expired")
	ErrNotYetValid = errors.New("certificate is not valid yet")
	ErrLeafProfile = errors.New("certificate cannot be used with Roles Anywhere")
)

// CheckLeaf applies the rules IAM Roles Anywhere applies to the end-entity
// certificate of a CreateSession request: X.509 v3, basicConstraints
// CA=false, keyUsage with digitalSignature, signed with SHA-256 or stronger,
// an accepted key, and valid at now.
func CheckLeaf(cert *x509.Certificate, now time.Time) error {
	if cert.Version != 3 {
		return fmt.Errorf("%w: it is X.509 version %d, not 3", ErrLeafProfile, cert.Version)
	}
	if cert.BasicConstraintsValid && cert.IsCA {
		return fmt.Errorf("%w: it is a CA certificate (basicConstraints CA=true); use an end-entity certificate issued by the CA", ErrLeafProfile)
	}
	if cert.KeyUsage&x509.KeyUsageDigitalSignature == 0 {
		return fmt.Errorf("%w: its keyUsage does not include digitalSignature", ErrLeafProfile)
	}
	switch cert.SignatureAlgorithm {
	case x509.MD2WithRSA, x509.MD5WithRSA, x509.SHA1WithRSA, x509.DSAWithSHA1, x509.ECDSAWithSHA1:
		return fmt.Errorf("%w: it is signed with %s; SHA-256 or stronger is required", ErrLeafProfile, cert.SignatureAlgorithm)
	case x509.UnknownSignatureAlgorithm:
		if _, ok := mldsa.IsSignedWithMLDSA(cert.Raw); !ok {
			return fmt.Errorf("%w: its signature algorithm is not recognised", ErrLeafProfile)
		}
	}
	pub, err := mldsa.PublicKeyOf(cert)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrUnsupportedKey, err)
	}
	if err := CheckPublicKey(pub); err != nil {
		return err
	}
	if now.Before(cert.NotBefore) {
		return fmt.Errorf("%w: valid from %s, and it is %s now (is the clock right?)", ErrNotYetValid, cert.NotBefore.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	if now.After(cert.NotAfter) {
		return fmt.Errorf("%w: it expired at %s", ErrExpired, cert.NotAfter.UTC().Format(time.RFC3339))
	}
	return nil
}
