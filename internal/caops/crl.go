package caops

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
)

// ImportCRLMaxBytes is the largest crlData AWS's ImportCrl and UpdateCrl
// take. AWS takes the CRL as PEM, where each revoked certificate costs
// about 55 bytes: roughly 5,400 entries.
const ImportCRLMaxBytes = 300_000

// CRLSizeError says that a CRL is larger, as PEM, than ImportCrl takes.
// It is a warning, not a failure: the CRL is still valid for everything
// else that reads it.
type CRLSizeError struct {
	// PEMSize is the CRL's size as PEM.
	PEMSize int
	// Entries counts its revoked certificates (those not yet expired:
	// expired ones are left off).
	Entries int
}

func (e *CRLSizeError) Error() string {
	return fmt.Sprintf("the CRL is %d bytes as PEM (%d revoked certificates that have not expired); AWS's ImportCrl and UpdateCrl take at most %d, so aws rolesanywhere import-crl will refuse it",
		e.PEMSize, e.Entries, ImportCRLMaxBytes)
}

// Hint says what to do about it.
func (e *CRLSizeError) Hint() string {
	return "revoked certificates leave the CRL when they expire, so shorter certificate lifetimes " +
		"(maxDuration of the provisioners in the CA's config/ca.yaml) shrink it; " +
		"or split the runners across several CAs (keyless ca init), each its own trust anchor with its own CRL"
}

// CheckCRLSize returns a *CRLSizeError when the CRL der, as PEM (the
// form ImportCrl takes), is larger than ImportCrl takes, and nil
// otherwise.
func CheckCRLSize(der []byte) error {
	size := len(pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der}))
	if size <= ImportCRLMaxBytes {
		return nil
	}
	e := &CRLSizeError{PEMSize: size}
	if list, err := x509.ParseRevocationList(der); err == nil {
		e.Entries = len(list.RevokedCertificateEntries)
	}
	return e
}
