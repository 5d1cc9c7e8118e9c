package emulator

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/keyless-dev/keyless/internal/mldsa"
)

// crypto/x509 verifies no ML-DSA signature, so a chain in which a CA
// signs with ML-DSA (RFC 9881), as AWS Private CA's ML-DSA CAs do, is
// verified here instead. A chain of ECDSA and RSA signatures, ML-DSA leaf
// keys included, still goes through crypto/x509.

// maxChainDepth bounds the chains verifyMLDSAChain builds: the leaf, at
// most 5 intermediates (AWS's limit for X-Amz-X509-Chain) and the anchor.
const maxChainDepth = 7

// signedWithMLDSA reports whether any of the certificates is signed with
// ML-DSA.
func signedWithMLDSA(groups ...[]*x509.Certificate) bool {
	for _, g := range groups {
		for _, c := range g {
			if _, ok := mldsa.IsSignedWithMLDSA(c.Raw); ok {
				return true
			}
		}
	}
	return false
}

// verifyMLDSAChain finds a chain from leaf through intermediates to a
// certificate of roots and verifies it as crypto/x509 would, checking
// ML-DSA signatures itself: every signature verifies with its issuer's
// key; every issuer is a CA (basicConstraints CA=true) with keyCertSign
// when it has keyUsage, valid at now, within its path length; no
// certificate has a critical extension it does not know. Like
// crypto/x509, it does not check the anchor's own signature. It does
// not evaluate name constraints, so it refuses a chain in which a CA has
// them (stricter than AWS may be, never looser).
func verifyMLDSAChain(roots, intermediates []*x509.Certificate, leaf *x509.Certificate, now time.Time) ([]*x509.Certificate, error) {
	if len(leaf.UnhandledCriticalExtensions) > 0 {
		return nil, fmt.Errorf("the leaf has an unhandled critical extension %v", leaf.UnhandledCriticalExtensions[0])
	}
	var lastErr error
	var walk func(chain []*x509.Certificate) []*x509.Certificate
	walk = func(chain []*x509.Certificate) []*x509.Certificate {
		c := chain[len(chain)-1]
		if len(chain) >= maxChainDepth {
			lastErr = errors.New("the chain is too long")
			return nil
		}
		for gi, group := range [][]*x509.Certificate{roots, intermediates} {
			isRoot := gi == 0
			for _, issuer := range group {
				if !bytes.Equal(issuer.RawSubject, c.RawIssuer) || inChain(chain, issuer) {
					continue
				}
				if err := checkIssuer(c, issuer, len(chain)-1, now); err != nil {
					lastErr = err
					continue
				}
				next := append(append([]*x509.Certificate{}, chain...), issuer)
				if isRoot {
					return next
				}
				if found := walk(next); found != nil {
					return found
				}
			}
		}
		return nil
	}
	if len(roots) == 0 {
		return nil, errors.New("the trust anchor has no certificates")
	}
	if chain := walk([]*x509.Certificate{leaf}); chain != nil {
		return chain, nil
	}
	if lastErr == nil {
		lastErr = fmt.Errorf("no issuer %q in the chain or the bundle", leaf.Issuer.String())
	}
	return nil, lastErr
}

func inChain(chain []*x509.Certificate, c *x509.Certificate) bool {
	for _, x := range chain {
		if x.Equal(c) {
			return true
		}
	}
	return false
}

// checkIssuer checks that issuer may have signed c, below which below
// CA certificates (not counting the leaf) already stand, at now.
func checkIssuer(c, issuer *x509.Certificate, below int, now time.Time) error {
	switch {
	case !issuer.BasicConstraintsValid || !issuer.IsCA:
		return fmt.Errorf("issuer %q is not a CA", issuer.Subject.String())
	case issuer.KeyUsage != 0 && issuer.KeyUsage&x509.KeyUsageCertSign == 0:
		return fmt.Errorf("issuer %q lacks keyUsage keyCertSign", issuer.Subject.String())
	case now.Before(issuer.NotBefore) || now.After(issuer.NotAfter):
		return fmt.Errorf("issuer %q is not valid at %s", issuer.Subject.String(), now.UTC().Format(time.RFC3339))
	case len(issuer.UnhandledCriticalExtensions) > 0:
		return fmt.Errorf("issuer %q has an unhandled critical extension %v", issuer.Subject.String(), issuer.UnhandledCriticalExtensions[0])
	case issuer.PermittedDNSDomainsCritical || len(issuer.PermittedDNSDomains)+len(issuer.ExcludedDNSDomains)+len(issuer.PermittedIPRanges)+
		len(issuer.ExcludedIPRanges)+len(issuer.PermittedEmailAddresses)+len(issuer.ExcludedEmailAddresses)+len(issuer.PermittedURIDomains)+len(issuer.ExcludedURIDomains) > 0:
		return fmt.Errorf("issuer %q has name constraints, which the emulator does not evaluate in chains signed with ML-DSA", issuer.Subject.String())
	case issuer.MaxPathLen >= 0 && (issuer.MaxPathLen > 0 || issuer.MaxPathLenZero) && below > issuer.MaxPathLen:
		return fmt.Errorf("issuer %q allows %d CA certificates below it", issuer.Subject.String(), issuer.MaxPathLen)
	}
	return checkSignedBy(c.Raw, issuer, func() error { return c.CheckSignatureFrom(issuer) })
}

// checkSignedBy checks the signature of der (a certificate or CRL) with
// issuer's key: ML-DSA here, any other key with classic, crypto/x509's
// own check.
func checkSignedBy(der []byte, issuer *x509.Certificate, classic func() error) error {
	if issuer.PublicKey == nil {
		pub, ok, err := mldsa.ParsePKIXPublicKey(issuer.RawSubjectPublicKeyInfo)
		if err != nil {
			return fmt.Errorf("issuer %q: %v", issuer.Subject.String(), err)
		}
		if ok {
			if err := mldsa.CheckSigned(der, pub); err != nil {
				return fmt.Errorf("signature by %q: %w", issuer.Subject.String(), err)
			}
			return nil
		}
	}
	if err := classic(); err != nil {
		return fmt.Errorf("signature by %q: %w", issuer.Subject.String(), err)
	}
	return nil
}

// checkCRLSignature is crl.CheckSignatureFrom(issuer) that also checks
// an ML-DSA issuer's signature.
func checkCRLSignature(crl *x509.RevocationList, issuer *x509.Certificate) error {
	if issuer.KeyUsage != 0 && issuer.KeyUsage&x509.KeyUsageCRLSign == 0 {
		return fmt.Errorf("issuer %q lacks keyUsage cRLSign", issuer.Subject.String())
	}
	return checkSignedBy(crl.Raw, issuer, func() error { return crl.CheckSignatureFrom(issuer) })
}
