package cli

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"time"

	"github.com/keyless-dev/keyless/internal/awscreds"
	"github.com/keyless-dev/keyless/internal/ca"
	"github.com/keyless-dev/keyless/internal/caclient"
	"github.com/keyless-dev/keyless/internal/caops"
	"github.com/keyless-dev/keyless/internal/caproto"
	"github.com/keyless-dev/keyless/internal/devstack"
	"github.com/keyless-dev/keyless/internal/enroll"
	"github.com/keyless-dev/keyless/internal/identity"
	"github.com/keyless-dev/keyless/internal/pki"
	"github.com/keyless-dev/keyless/internal/renewal"
	"github.com/keyless-dev/keyless/internal/rolesanywhere"
	"github.com/keyless-dev/keyless/internal/secretfile"
)

// flagName renders a use case's field as the flag (or environment
// variable) it came from.
func flagName(field string) string {
	if field == strings.ToUpper(field) {
		return field
	}
	return "--" + field
}

// asUsage turns the use cases' input errors into usage errors (exit 2),
// worded with flag names.
func asUsage(err error) error {
	var (
		ie  *awscreds.InputError
		ee  *enroll.InputError
		fe  *enroll.FileExists
		ae  *devstack.AddressError
		upe *caops.UnknownProvisionerError
	)
	switch {
	case errors.As(err, &ie) && ie.Field != "AWS_CA_BUNDLE":
		return &usageError{err: err}
	case errors.As(err, &ee):
		return &usageError{err: fmt.Errorf("%s: %w", flagName(ee.Field), ee.Err)}
	case errors.As(err, &fe):
		return withHint(&usageError{err: err}, "pass --force to replace it")
	case errors.Is(err, enroll.ErrNotBootstrapped):
		return withHint(&usageError{err: errors.New("no CA: give --ca-url and --root")},
			"or run keyless bootstrap --ca-url https://CA:9000 --fingerprint $(keyless ca fingerprint) once")
	case errors.As(err, &ae):
		return &usageError{err: fmt.Errorf("%s %q: %w", flagName(ae.Field), ae.Address, ae.Err)}
	case errors.As(err, &upe):
		return &usageError{err: fmt.Errorf("--provisioner %q: no such provisioner (have: %s)", upe.Name, strings.Join(upe.Have, ", "))}
	}
	return err
}

// describe turns an error into the line the user sees and, where keyless
// knows the usual fix, a hint.
func describe(err error) (msg, hint string) {
	msg = err.Error()
	var fe *identity.FileError
	if errors.As(err, &fe) {
		msg = fmt.Sprintf("%s %s: %v", flagFor(fe.Role), fe.Path, fe.Err)
	}
	var (
		h     *hinted
		api   *rolesanywhere.APIError
		te    *rolesanywhere.TransportError
		re    *renewal.Error
		cae   *caclient.APIError
		ie    *awscreds.InputError
		exp   *secretfile.ExposedError
		own   *secretfile.OwnerError
		wpe   *caops.WrongPasswordError
		nae   *caops.NotAllowedError
		unrch *caops.UnreachableError
	)
	switch {
	case errors.As(err, &h):
		hint = h.hint
	case errors.As(err, &exp) && (exp.Dir || exp.Writable):
		hint = fmt.Sprintf("run chmod go-w %s, and check that nobody changed what is in it", exp.Path)
	case errors.As(err, &exp):
		hint = fmt.Sprintf("run chmod 600 %s (and make sure nobody copied it meanwhile)", exp.Path)
	case errors.As(err, &own):
		hint = fmt.Sprintf("keep keyless's files in directories only you (or root) own; if %s is yours, run chown %d %s as root, after checking what is in it", own.Path, own.Want, own.Path)
	case fe != nil:
		hint = fileHint(fe)
	case errors.As(err, &api):
		msg, hint = api.Error(), apiHint(api)
	case errors.As(err, &te):
		hint = transportHint(te)
	case errors.As(err, &ie) && ie.Field == "AWS_CA_BUNDLE":
		hint = "point AWS_CA_BUNDLE at a readable PEM file of CA certificates, or unset it"
	case errors.As(err, &re):
		hint = renewHint(re)
	case errors.As(err, &cae):
		hint = caHint(cae)
	case errors.Is(err, caclient.ErrFingerprint):
		hint = "check the fingerprint on the CA host (keyless ca fingerprint); a mismatch may mean someone is in the way"
	case errors.Is(err, secretfile.ErrWeak):
		hint = "use a longer password, or have keyless make one: keyless ca init ... --password-file NEWFILE --generate-password"
	case errors.Is(err, identity.ErrPairChanged):
		hint = "another keyless command wrote the certificate and key meanwhile; the pair on disk is theirs and consistent: run keyless renew again if it needs renewing"
	case errors.As(err, &nae):
		hint = "mint the token for an allowed name, or add the name to the provisioner's allow list in config/ca.yaml and reload the CA (kill -HUP)"
	case errors.As(err, &wpe):
		hint = fmt.Sprintf("give provisioner %s's password with --provisioner-password-file (or --password-file when it is the CA password)", wpe.Provisioner)
	case errors.Is(err, pki.ErrIncorrectPassword):
		hint = "--password-file must hold the password given to keyless ca init"
	case errors.As(err, &unrch):
		hint = "check that the CA is reachable there, or pass --ca-url"
	case errors.Is(err, caops.ErrNoCA):
		hint = "create one with keyless ca init, or point --dir at it"
	case errors.Is(err, ca.ErrExists):
		hint = "use another --dir, or remove the old CA yourself if you really mean to replace it"
	}
	return msg, hint
}

func flagFor(role string) string {
	switch role {
	case identity.RoleCertificate:
		return "--certificate"
	case identity.RolePrivateKey:
		return "--private-key"
	case identity.RoleIntermediates:
		return "--intermediates"
	}
	return role
}

// fileHints are the fixes for problems with a certificate or key file,
// by the sentinel error identity or pki reports.
var fileHints = []struct {
	err  error
	hint string
}{
	{pki.ErrIncorrectPassword, "check the password given with --pkcs8-password-file, --pkcs8-password or KEYLESS_PKCS8_PASSWORD"},
	{pki.ErrPasswordRequired, "the file is encrypted and no terminal was available to ask for its password; give it with --pkcs8-password-file FILE or KEYLESS_PKCS8_PASSWORD"},
	{identity.ErrKeyMismatch, "--private-key must be the key the certificate was issued for; check that both files come from the same enrollment"},
	{identity.ErrNoPrivateKey, "add --private-key with the certificate's key file, or give a PKCS#12 file (which holds both) as --certificate"},
	{identity.ErrKeyWithPKCS12, "drop --private-key: the PKCS#12 file given as --certificate holds the key"},
	{identity.ErrChainWithPKCS12, "drop --intermediates: the PKCS#12 file given as --certificate holds the chain"},
	{pki.ErrExpired, "renew the certificate (keyless renew, or step ca renew) and try again"},
	{pki.ErrNotYetValid, "check this machine's clock, or wait until the certificate becomes valid"},
	{pki.ErrLeafProfile, "Roles Anywhere would refuse this certificate; issue an end-entity certificate with keyUsage digitalSignature, signed with SHA-256 or stronger"},
	{pki.ErrUnsupportedKey, "make a new key of a kind Roles Anywhere accepts: ECDSA P-256 (openssl ecparam -name prime256v1 -genkey) or RSA 2048 to 4096"},
	{pki.ErrNotPrivateKey, "--private-key takes a PEM private key (PKCS#8, encrypted PKCS#8, PKCS#1 or SEC1)"},
}

func fileHint(fe *identity.FileError) string {
	if errors.Is(fe.Err, pki.ErrNotCertificate) && fe.Role == identity.RoleCertificate {
		return "--certificate takes a PEM or DER certificate, or a PKCS#12 file"
	}
	for _, h := range fileHints {
		if errors.Is(fe.Err, h.err) {
			return h.hint
		}
	}
	return ""
}

func apiHint(e *rolesanywhere.APIError) string {
	msg := strings.ToLower(e.Message)
	switch {
	case e.Code == "AccessDeniedException" && strings.Contains(msg, "rolesessionname"):
		return "the profile does not accept session names: drop --role-session-name, or set acceptRoleSessionName on the profile"
	case e.Code == "AccessDeniedException" && strings.Contains(msg, "durationseconds"):
		return "the session would outlast the role's maximum session duration: lower --session-duration (or the profile's durationSeconds), or raise the role's MaxSessionDuration"
	case e.Code == "ValidationException" && strings.Contains(msg, "polic"):
		return "the profile's session policy or managed policy ARNs exceed STS's limits (at most 10 ARNs, 2,048 characters together, packed size under 100%): shorten them with aws rolesanywhere update-profile"
	case e.Code == "AccessDeniedException" && (strings.Contains(msg, "untrusted") || strings.Contains(msg, "certificate")):
		return "the certificate must chain to the trust anchor's CA bundle: pass the intermediates with --intermediates, and check the certificate is not revoked or expired"
	case e.Code == "AccessDeniedException":
		return "check the role's trust policy (principal rolesanywhere.amazonaws.com; actions sts:AssumeRole, sts:TagSession and sts:SetSourceIdentity; its conditions on the certificate), that the role is in the profile, and that the trust anchor and profile are enabled"
	case e.Code == "ValidationException":
		return "check --session-duration (900 to 43200, and at most the role's maximum session duration) and the ARNs"
	case e.Code == "ResourceNotFoundException":
		return "check that the trust anchor, profile and role ARNs exist in that account and region, and that the endpoint is the right one"
	case e.Throttling() || e.StatusCode == 429:
		return "AWS is throttling CreateSession; keep the credentials cache on (drop --no-cache) so repeated commands reuse credentials"
	case e.StatusCode >= 500:
		return "the service failed; try again in a moment"
	case e.StatusCode >= 300 && e.StatusCode < 400:
		return "the endpoint answered with a redirect, which keyless does not follow with a signed request; check --endpoint"
	}
	return ""
}

func transportHint(e *rolesanywhere.TransportError) string {
	var certErr *tls.CertificateVerificationError
	var unknownAuth x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	switch {
	case errors.As(e.Err, &unknownAuth) || (errors.As(e.Err, &certErr) && strings.Contains(certErr.Error(), "unknown authority")):
		return "the endpoint's TLS certificate is from a CA this machine does not trust; point AWS_CA_BUNDLE at that CA's certificate"
	case errors.As(e.Err, &hostErr):
		return "the endpoint's TLS certificate is not valid for its host name; check --endpoint"
	case errors.As(e.Err, &certErr):
		return "the endpoint's TLS certificate did not verify; point AWS_CA_BUNDLE at its CA, or check the clock"
	case errors.Is(e.Err, syscall.ECONNREFUSED):
		return "nothing is listening there: check --endpoint (or AWS_ENDPOINT_URL_ROLESANYWHERE)"
	}
	return "check the network path to the endpoint; if it needs a proxy, add --with-proxy and set HTTPS_PROXY"
}

// caHint explains the CA's refusals by their reason.
func caHint(e *caclient.APIError) string {
	switch e.Reason {
	case caproto.ReasonLifetimeTooLong:
		if e.Limit == 0 {
			return "the CA's maximum lifetime is in the message; ask for less with --not-after, or raise it on the CA: maxDuration in config/ca.yaml for keyless ca, claims.maxTLSCertDuration in ca.json for step-ca, then reload the CA"
		}
		if e.Inferred {
			return fmt.Sprintf("this step-ca allows at most %s for this provisioner; ask for less with --not-after, or raise claims.maxTLSCertDuration in its ca.json and restart or reload it", e.Limit)
		}
		return fmt.Sprintf("this keyless ca allows at most %s for this provisioner; ask for less with --not-after, or raise maxDuration in its config/ca.yaml and reload it (kill -HUP)", e.Limit)
	case caproto.ReasonLifetimeTooShort:
		return "ask for a longer lifetime with --not-after"
	case caproto.ReasonTokenUsed:
		return "a token buys one certificate; make a new one (keyless ca token on the CA host)"
	case caproto.ReasonTokenExpired:
		return "tokens live minutes: make a new one"
	case caproto.ReasonTokenNotYetValid:
		return "check the clocks of this machine and of the one that made the token"
	case caproto.ReasonNameNotAllowed:
		return "ask for a name the provisioner allows, or have the CA's operator add it to allow in config/ca.yaml and reload the CA"
	case caproto.ReasonNotBeforeRange:
		return "leave out --not-before, or give a time between now and when the token expires"
	}
	if e.Op == "sign" && e.Status == 401 {
		return "a token is valid for one certificate and a few minutes; make a new one (keyless ca token, or step ca token, on the CA host)"
	}
	return ""
}

// renewHint says how to get a certificate back when the CA will not renew
// it.
func renewHint(e *renewal.Error) string {
	var ae *caclient.APIError
	if !errors.As(e, &ae) || ae.Temporary() {
		return "" // the network's or the CA's own trouble, not the certificate's
	}
	cn := e.Leaf.Subject.CommonName
	switch {
	case ae.Reason == caproto.ReasonCertRevoked:
		return fmt.Sprintf("the certificate was revoked: enroll again (keyless certificate %s %s %s --force with a new token)", cn, e.CertPath, e.KeyPath)
	case e.Expired || ae.Reason == caproto.ReasonCertExpired:
		return fmt.Sprintf("the certificate expired on %s and the CA does not renew expired certificates: re-enrollment is needed (keyless ca token %s on the CA host, then keyless certificate %s %s %s --token-file TOKENFILE --force)",
			e.Leaf.NotAfter.UTC().Format(time.RFC3339), cn, cn, e.CertPath, e.KeyPath)
	case ae.Status == 401:
		return fmt.Sprintf("the CA does not accept this certificate any more (revoked, or not issued by it): enroll again with keyless certificate %s %s %s --force and a new token", cn, e.CertPath, e.KeyPath)
	}
	return ""
}
