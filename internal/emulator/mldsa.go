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

// maxSignatureChecks bounds the signature checks the hand verifier makes
// for one CreateSession request, across every trust anchor it tries:
// crypto/x509 allows 100 per verification. Without it, intermediates
// that share a name and a key (each a valid issuer of every other) make
// the walk try every ordering of them, for every trust anchor.
const maxSignatureChecks = 100

// maxWalkSteps bounds the issuers the walk examines for one request,
// across every trust anchor tried: a real chain of at most 5
// intermediates needs a handful; intermediates that are each other's
// issuers would otherwise make it try every ordering.
const maxWalkSteps = 100

// errSignatureBudget means a request's chain would take more signature
// checks than maxSignatureChecks, or more steps than maxWalkSteps.
var errSignatureBudget error = signatureBudgetError{}

// signatureBudgetError is errSignatureBudget: a static value whose
// message is formatted when it is read, not in package init.
type signatureBudgetError struct{}

func (signatureBudgetError) Error() string {
	return fmt.Sprintf("building the chain would take more than %d signature checks or %d steps: send only the intermediates between the leaf and the trust anchor, once each (credential-process --intermediates)", maxSignatureChecks, maxWalkSteps)
}

// sigBudget is one request's chain-building work: the signature checks
// made and the result of each (certificate, issuer) pair, the issuers
// examined, and the CA rules' verdict on each intermediate, so that what
// the walk meets again on another path or for another trust anchor
// costs nothing but a step.
type sigBudget struct {
	checks int
	memo   map[[2]*x509.Certificate]error
	steps  int
	ca     map[*x509.Certificate]error
	// caChecks counts the CA-rule checks made (each intermediate once).
	caChecks int
	// hintAnchors counts the other trust anchors tried for the "chains
	// to another anchor" hint of a refusal.
	hintAnchors int
}

// maxHintAnchors bounds the other trust anchors a refused request is
// tried against, for its hint: a request naming an issuer that many
// anchors hold costs a few chain verifications, not one per anchor.
const maxHintAnchors = 4

func newSigBudget() *sigBudget {
	return &sigBudget{memo: map[[2]*x509.Certificate]error{}, ca: map[*x509.Certificate]error{}}
}

func (b *sigBudget) exhausted() bool {
	return b.checks >= maxSignatureChecks || b.steps >= maxWalkSteps
}

// step counts one issuer examined by the walk.
func (b *sigBudget) step() error {
	if b.steps >= maxWalkSteps {
		return errSignatureBudget
	}
	b.steps++
	return nil
}

// checkCA applies the CA rules to an intermediate, once per request.
func (b *sigBudget) checkCA(c *x509.Certificate) error {
	if err, ok := b.ca[c]; ok {
		return err
	}
	b.caChecks++
	err := checkIntermediate(c)
	b.ca[c] = err
	return err
}

// checkSignature checks that issuer signed c, once per pair and request.
func (b *sigBudget) checkSignature(c, issuer *x509.Certificate) error {
	key := [2]*x509.Certificate{c, issuer}
	if err, ok := b.memo[key]; ok {
		return err
	}
	if b.exhausted() {
		return errSignatureBudget
	}
	b.checks++
	err := checkSignedBy(c.Raw, issuer, func() error { return c.CheckSignatureFrom(issuer) })
	b.memo[key] = err
	return err
}

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
// when it has keyUsage, valid at now, within its path length; every
// intermediate meets pki.CheckCA, as properChain asks of the chains
// crypto/x509 finds; no certificate has a critical extension it does
// not know. Like crypto/x509, it does not check the anchor's own
// signature. It does not evaluate name constraints or policy
// constraints, so it refuses a chain in which a certificate has them
// (stricter than AWS may be, never looser). It accepts only a chain
// with at least one ML-DSA signature: crypto/x509 has verified, and
// refused, every other. Its signature checks count against b (nil: a
// budget of its own).
func verifyMLDSAChain(roots, intermediates []*x509.Certificate, leaf *x509.Certificate, now time.Time, b *sigBudget) ([]*x509.Certificate, error) {
	if b == nil {
		b = newSigBudget()
	}
	if len(leaf.UnhandledCriticalExtensions) > 0 {
		return nil, fmt.Errorf("the leaf has an unhandled critical extension %v", leaf.UnhandledCriticalExtensions[0])
	}
	if err := checkPolicyConstraints(leaf); err != nil {
		return nil, err
	}
	if len(roots) == 0 {
		return nil, errors.New("the trust anchor has no certificates")
	}
	var lastErr error
	tried := false
	var walk func(chain []*x509.Certificate, withMLDSA bool) ([]*x509.Certificate, error)
	walk = func(chain []*x509.Certificate, withMLDSA bool) ([]*x509.Certificate, error) {
		c := chain[len(chain)-1]
		if len(chain) >= maxChainDepth {
			lastErr = errors.New("the chain is too long")
			return nil, nil
		}
		_, signedML := mldsa.IsSignedWithMLDSA(c.Raw)
		withMLDSA = withMLDSA || signedML
		for gi, group := range [][]*x509.Certificate{roots, intermediates} {
			isRoot := gi == 0
			for _, issuer := range group {
				if !bytes.Equal(issuer.RawSubject, c.RawIssuer) || inChain(chain, issuer) {
					continue
				}
				tried = true
				if err := b.step(); err != nil {
					return nil, err
				}
				if err := checkIssuer(c, issuer, len(chain)-1, now, isRoot, b); err != nil {
					if errors.Is(err, errSignatureBudget) {
						return nil, err
					}
					lastErr = err
					continue
				}
				next := append(append([]*x509.Certificate{}, chain...), issuer)
				if isRoot {
					if !withMLDSA {
						lastErr = errors.New("the chain has no ML-DSA signature, and crypto/x509 refused it")
						continue
					}
					return next, nil
				}
				if found, err := walk(next, withMLDSA); found != nil || err != nil {
					return found, err
				}
			}
		}
		return nil, nil
	}
	chain, err := walk([]*x509.Certificate{leaf}, false)
	switch {
	case err != nil:
		return nil, err
	case chain != nil:
		return chain, nil
	case !tried:
		return nil, fmt.Errorf("no issuer %q in the chain or the bundle", leaf.Issuer.String())
	case lastErr != nil:
		return nil, fmt.Errorf("no path to a trust-anchor certificate: %w", lastErr)
	}
	return nil, errors.New("no path to a trust-anchor certificate: the issuers in the chain lead to none of the trust anchor's certificates")
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
// CA certificates (not counting the leaf) already stand, at now. An
// issuer that is not a trust-anchor certificate (isRoot false) came in
// X-Amz-X509-Chain and must meet pki.CheckCA too. The signature check,
// the one that costs, comes last and counts against b.
func checkIssuer(c, issuer *x509.Certificate, below int, now time.Time, isRoot bool, b *sigBudget) error {
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
	if !isRoot {
		if err := b.checkCA(issuer); err != nil {
			return err
		}
		if err := checkPolicyConstraints(issuer); err != nil {
			return err
		}
	}
	return b.checkSignature(c, issuer)
}

// checkPolicyConstraints refuses a certificate below the trust anchor
// with policy constraints or policy mappings: crypto/x509 evaluates
// them (RFC 5280 6.1, RFC 9618) and can refuse a chain for them; the
// hand verifier does not, so it refuses rather than ignores them.
// Without them, policy validation with any policy accepted cannot fail.
func checkPolicyConstraints(c *x509.Certificate) error {
	if c.RequireExplicitPolicy > 0 || c.RequireExplicitPolicyZero || c.InhibitPolicyMapping > 0 || c.InhibitPolicyMappingZero || len(c.PolicyMappings) > 0 {
		return fmt.Errorf("certificate %q has policy constraints or policy mappings, which the emulator does not evaluate in chains signed with ML-DSA", c.Subject.String())
	}
	return nil
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
