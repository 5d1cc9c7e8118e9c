package doctor

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/keyless-dev/keyless/internal/iampolicy"
	"github.com/keyless-dev/keyless/internal/identity"
	"github.com/keyless-dev/keyless/internal/pki"
	"github.com/keyless-dev/keyless/internal/renewal"
	"github.com/keyless-dev/keyless/internal/rolesanywhere"
	"github.com/keyless-dev/keyless/internal/trustpolicy"
)

// identity loads the certificate and key and checks that they match and
// that Roles Anywhere accepts the certificate's profile (lifetime aside:
// that is the next check's).
func (r *run) identity() {
	files := r.cfg.Request.Files
	id, err := identity.Load(files, r.cfg.Request.Password, time.Time{})
	if err != nil {
		r.add(CheckIdentity, Fail, err.Error(), r.identityFix(err))
		return
	}
	leaf := id.Certificate
	// A time inside the validity: the profile alone is checked here.
	if err := pki.CheckLeaf(leaf, leaf.NotBefore); err != nil {
		r.add(CheckIdentity, Fail, err.Error(),
			"Roles Anywhere refuses this certificate: issue an end-entity certificate with keyUsage digitalSignature, signed with SHA-256 or stronger (keyless certificate makes one)")
		return
	}
	r.id = id
	r.ok(CheckIdentity, "%s, serial %s, issued by %q, %s key matches; %d intermediate(s)",
		leaf.Subject, leaf.SerialNumber, leaf.Issuer.String(), pki.DescribeKey(leafKey(leaf)), len(id.Intermediates))
}

func (r *run) identityFix(err error) string {
	var fe *identity.FileError
	flag := r.n("certificate")
	if errors.As(err, &fe) {
		switch fe.Role {
		case identity.RolePrivateKey:
			flag = r.n("private-key")
		case identity.RoleIntermediates:
			flag = r.n("intermediates")
		}
	}
	switch {
	case errors.Is(err, identity.ErrKeyMismatch):
		return fmt.Sprintf("%s must be the key this certificate was issued for: point it at the key file from the same enrollment, or %s", r.n("private-key"), r.reenroll())
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Sprintf("%s names a file that does not exist: check the path (keyless certificate or the agent's enrollment writes it)", flag)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Sprintf("run keyless doctor as the user that runs credential-process (or the agent), which can read %s", flag)
	case errors.Is(err, pki.ErrIncorrectPassword), errors.Is(err, pki.ErrPasswordRequired):
		return fmt.Sprintf("give the key's password with %s FILE or KEYLESS_PKCS8_PASSWORD", r.n("pkcs8-password-file"))
	case errors.Is(err, identity.ErrNoPrivateKey):
		return fmt.Sprintf("add %s with the certificate's key file", r.n("private-key"))
	case errors.Is(err, pki.ErrUnsupportedKey):
		return "make a key Roles Anywhere accepts (ECDSA P-256, P-384 or RSA 2048 to 4096) and enroll again: keyless certificate does both"
	}
	return fmt.Sprintf("%s must be a PEM or DER certificate (or PKCS#12) and %s its PEM private key", r.n("certificate"), r.n("private-key"))
}

// validity checks the lifetime against this machine's clock and the
// renewal window (the last third of the lifetime, as keyless renew and
// the agent use).
func (r *run) validity() {
	if r.id == nil {
		r.skip(CheckValidity, "%s", r.failedBefore(CheckIdentity))
		return
	}
	leaf := r.id.Certificate
	switch due := renewal.WindowOpens(leaf, 0); {
	case r.now.Before(leaf.NotBefore):
		r.add(CheckValidity, Fail, fmt.Sprintf("not valid until %s, and this machine says it is %s", rfc(leaf.NotBefore), rfc(r.now)),
			"check this machine's clock (timedatectl; chronyc tracking), or wait until the certificate becomes valid")
	case r.now.After(leaf.NotAfter):
		r.add(CheckValidity, Fail, fmt.Sprintf("expired at %s (%s ago)", rfc(leaf.NotAfter), human(r.now.Sub(leaf.NotAfter))),
			r.reenroll()+"; then keep it renewed: keyless renew "+r.certPaths()+" --daemon (or let keyless agent own it)")
	case !r.now.Before(due):
		r.add(CheckValidity, Warn, fmt.Sprintf("expires at %s (%s left); renewal was due from %s", rfc(leaf.NotAfter), human(leaf.NotAfter.Sub(r.now)), rfc(due)),
			"renew now: keyless renew "+r.certPaths()+"; and check that keyless renew --daemon (or the agent) is running: it should have renewed already")
	default:
		r.ok(CheckValidity, "valid until %s (%s left); renewal due from %s", rfc(leaf.NotAfter), human(leaf.NotAfter.Sub(r.now)), rfc(due))
	}
}

// maxFile bounds what is read of a bundle or policy file.
const maxFile = 1 << 20

func readSmall(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFile+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxFile {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, maxFile)
	}
	return data, nil
}

// chain verifies the certificate, with its intermediates, against the
// trust anchor's bundle (--trust-bundle), or else the CA's pinned root.
func (r *run) chain() {
	if r.id == nil {
		r.skip(CheckChain, "%s", r.failedBefore(CheckIdentity))
		return
	}
	source, path := "--trust-bundle "+r.cfg.TrustBundle, r.cfg.TrustBundle
	if path == "" {
		source, path = "the CA's root "+r.cfg.RootFile, r.cfg.RootFile
	}
	if path == "" {
		r.skip(CheckChain, "no --trust-bundle and no CA root (--root, or keyless bootstrap) to check against; CreateSession checks the trust anchor's")
		return
	}
	data, err := readSmall(path)
	var bundle []*x509.Certificate
	if err == nil {
		bundle, err = pki.ParseCertificates(data)
	}
	if err != nil {
		r.add(CheckChain, Fail, fmt.Sprintf("reading %s: %v", source, err), "point --trust-bundle at a PEM file of the trust anchor's CA certificates (keyless ca bundle prints it)")
		return
	}
	leaf := r.id.Certificate
	roots, inter := x509.NewCertPool(), x509.NewCertPool()
	for _, c := range bundle {
		roots.AddCert(c)
	}
	for _, c := range r.id.Intermediates {
		inter.AddCert(c)
	}
	// Inside the leaf's lifetime: an expired leaf is the previous
	// check's finding, not the chain's.
	at := r.now
	if at.Before(leaf.NotBefore) || at.After(leaf.NotAfter) {
		at = leaf.NotBefore
	}
	chains, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: at, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	if err == nil {
		c := chains[0]
		r.ok(CheckChain, "chains to %q in %s (%d certificate(s))", c[len(c)-1].Subject.String(), source, len(c))
		return
	}
	issuerKnown := false
	for _, c := range append(append([]*x509.Certificate{}, r.id.Intermediates...), bundle...) {
		issuerKnown = issuerKnown || bytes.Equal(c.RawSubject, leaf.RawIssuer)
	}
	detail := fmt.Sprintf("does not chain to %s: %v", source, err)
	var fix string
	switch {
	case !issuerKnown && len(r.id.Intermediates) == 0:
		detail = fmt.Sprintf("its issuer %q is neither sent with it nor in %s", leaf.Issuer.String(), source)
		fix = fmt.Sprintf("send the intermediate CA with the certificate: %s FILE (keyless ca bundle has it), or append it to %s", r.n("intermediates"), r.cfg.Request.Files.Certificate)
	case r.cfg.TrustBundle != "":
		fix = "the trust anchor must hold the CA that issued this certificate: put keyless ca bundle's output in the trust anchor (aws rolesanywhere update-trust-anchor, or the Terraform module's ca_bundle), or use the trust anchor that holds it"
	default:
		fix = fmt.Sprintf("this certificate is not from the CA %s trusts: %s, or bootstrap the CA that issued it (keyless bootstrap --ca-url URL --fingerprint SHA256)", r.caSource(), r.reenroll())
	}
	r.add(CheckChain, Fail, detail, fix)
}

func (r *run) caSource() string {
	if r.cfg.CASource != "" {
		return r.cfg.CASource
	}
	return "--root"
}

// trustPolicy decides the role's trust policy (a file) for this
// certificate with the emulator's rules: the default attribute mapping,
// aws:SourceArn and the other keys AWS sends, and the three actions.
func (r *run) trustPolicy() {
	if r.cfg.TrustPolicy == "" {
		r.skip(CheckTrustPolicy, "no --trust-policy FILE; CreateSession below asks the service itself")
		return
	}
	if r.id == nil {
		r.skip(CheckTrustPolicy, "%s", r.failedBefore(CheckIdentity))
		return
	}
	data, err := readSmall(r.cfg.TrustPolicy)
	var policy *iampolicy.Policy
	if err == nil {
		policy, err = iampolicy.ParseTrustPolicy(data)
	}
	if err != nil {
		r.add(CheckTrustPolicy, Fail, fmt.Sprintf("--trust-policy %s: %v", r.cfg.TrustPolicy, err),
			"give the role's trust policy document: aws iam get-role --role-name ROLE --query Role.AssumeRolePolicyDocument > policy.json")
		return
	}
	anchor, _ := rolesanywhere.ParseTrustAnchorARN(r.cfg.Request.TrustAnchorARN) // checked by awscreds
	leaf := r.id.Certificate
	refusal := trustpolicy.Evaluate(policy, trustpolicy.Session{Leaf: leaf, AnchorARN: r.cfg.Request.TrustAnchorARN, Account: anchor.Account, Now: r.now})
	if refusal == nil {
		r.ok(CheckTrustPolicy, "allows %s for %s through %s", strings.Join(trustpolicy.Actions, ", "), leaf.Subject, r.cfg.Request.TrustAnchorARN)
		return
	}
	reason := refusal.Error()
	var fix string
	switch {
	case refusal.Subject != nil:
		fix = "Roles Anywhere does not take this certificate's subject: issue a certificate with a subject CN of at most 64 characters"
	case len(refusal.BadTags) > 0:
		fix = "Roles Anywhere cannot make these attributes session tags: issue a certificate whose subject and SANs use only letters, digits, spaces and _.:/=+-@"
	case refusal.Undecided != "":
		fix = fmt.Sprintf("AWS does not define %s for a Roles Anywhere session: condition the role's trust policy on aws:PrincipalTag/x509Subject/CN (or O, OU and the other named attributes) and aws:SourceArn instead (aws iam update-assume-role-policy, or the Terraform module's role conditions)", refusal.Undecided)
	case strings.Contains(reason, "aws:SourceArn"):
		fix = fmt.Sprintf("the policy's aws:SourceArn condition names another trust anchor than %s %s: use the trust anchor it names, or add this one to the condition", r.n("trust-anchor-arn"), r.cfg.Request.TrustAnchorARN)
	case strings.Contains(reason, "aws:PrincipalTag/x509"):
		fix = fmt.Sprintf("the certificate's names do not meet the policy's condition: issue a certificate with the names it wants (keyless certificate NAME %s --san ... --force, with a token for that name), or change the condition in the role's trust policy (aws iam update-assume-role-policy, or the Terraform module's role conditions)", r.certPaths())
	case refusal.Decision.Effect == iampolicy.ImplicitDeny && refusal.Decision.Statement == "":
		fix = "the policy must allow sts:AssumeRole, sts:TagSession and sts:SetSourceIdentity to the principal {\"Service\": \"rolesanywhere.amazonaws.com\"}"
	default:
		fix = "change the certificate or the role's trust policy so that the statement named above allows the session"
	}
	r.add(CheckTrustPolicy, Fail, fmt.Sprintf("refuses %s: %s", leaf.Subject, reason), fix)
}

// leafKey is the leaf's public key for messages (an ML-DSA key too).
func leafKey(leaf *x509.Certificate) crypto.PublicKey {
	pub, _ := pki.CertificatePublicKey(leaf)
	return pub
}
