package emulator

import (
	"crypto/x509"
	"fmt"

	"github.com/keyless-dev/keyless/internal/pki"
)

// properChain returns the first of the chains x509 verification found
// (leaf first, a certificate of the trust anchor last) whose
// intermediate CAs, the certificates a request sends in
// X-Amz-X509-Chain, meet the rules Roles Anywhere documents for trust
// anchor certificates (pki.CheckCA: keyUsage with keyCertSign, SHA-256
// or stronger, an accepted key). AWS documents those rules for the leaf
// and the trust anchor only; applying them to intermediates is the
// stricter reading, and crypto/x509 alone would accept an intermediate
// without keyUsage. The anchor's own certificates were checked when the
// anchor was made.
func properChain(chains [][]*x509.Certificate) ([]*x509.Certificate, error) {
	var first error
	for _, chain := range chains {
		err := checkIntermediates(chain)
		if err == nil {
			return chain, nil
		}
		if first == nil {
			first = err
		}
	}
	return nil, first
}

func checkIntermediates(chain []*x509.Certificate) error {
	for i := 1; i < len(chain)-1; i++ {
		if err := checkIntermediate(chain[i]); err != nil {
			return err
		}
	}
	return nil
}

// checkIntermediate applies pki.CheckCA to a CA certificate of
// X-Amz-X509-Chain; the hand verifier for ML-DSA chains
// (verifyMLDSAChain) applies it to every intermediate it tries.
func checkIntermediate(c *x509.Certificate) error {
	if err := pki.CheckCA(c); err != nil {
		return fmt.Errorf("intermediate CA %q in X-Amz-X509-Chain: %w", c.Subject.String(), err)
	}
	return nil
}
