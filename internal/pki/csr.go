package pki

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"

	"github.com/keyless-dev/keyless/internal/mldsa"
)

// ErrNotCSR means the data holds no certificate request.
var ErrNotCSR = errors.New("not a certificate request")

// ParseCSR parses one PEM "CERTIFICATE REQUEST" (or "NEW CERTIFICATE
// REQUEST") block and checks its self-signature, which proves the
// requester holds the private key. crypto/x509 neither parses ML-DSA keys
// nor checks ML-DSA signatures: for an ML-DSA request, ParseCSR checks
// the signature itself (the signature algorithm must be the key's
// parameter set) and sets PublicKey to the *mldsa.PublicKey.
func ParseCSR(data []byte) (*x509.CertificateRequest, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("%w: no PEM block", ErrNotCSR)
	}
	if block.Type != "CERTIFICATE REQUEST" && block.Type != "NEW CERTIFICATE REQUEST" {
		return nil, fmt.Errorf("%w: PEM block is %q", ErrNotCSR, block.Type)
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotCSR, err)
	}
	if pub, ok, err := mldsa.ParsePKIXPublicKey(csr.RawSubjectPublicKeyInfo); ok {
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrNotCSR, err)
		}
		if err := mldsa.CheckSigned(block.Bytes, pub); err != nil {
			return nil, fmt.Errorf("certificate request signature does not verify: %w", err)
		}
		csr.PublicKey = pub
		return csr, nil
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("certificate request signature does not verify: %w", err)
	}
	return csr, nil
}
