package pki

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
)

// ErrNotCSR means the data holds no certificate request.
var ErrNotCSR = errors.New("not a certificate request")

// ParseCSR parses one PEM "CERTIFICATE REQUEST" (or "NEW CERTIFICATE
// REQUEST") block and checks its self-signature, which proves the
// requester holds the private key.
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
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("certificate request signature does not verify: %w", err)
	}
	return csr, nil
}
