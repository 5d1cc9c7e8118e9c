package cli

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"syscall"

	"github.com/keyless-dev/keyless/internal/identity"
	"github.com/keyless-dev/keyless/internal/pki"
	"github.com/keyless-dev/keyless/internal/rolesanywhere"
)

// describe turns an error into the line the user sees and, where keyless
// knows the usual fix, a hint.
func describe(err error) (msg, hint string) {
	msg = err.Error()
	var fe *identity.FileError
	if errors.As(err, &fe) {
		msg = fmt.Sprintf("%s %s: %v", flagFor(fe.Role), fe.Path, fe.Err)
	}
	var h *hinted
	var apiErr *rolesanywhere.APIError
	var te *rolesanywhere.TransportError
	switch {
	case errors.As(err, &h):
		hint = h.hint
	case fe != nil:
		hint = fileHint(fe)
	case errors.As(err, &apiErr):
		msg, hint = apiErr.Error(), apiHint(apiErr)
	case errors.As(err, &te):
		hint = transportHint(te)
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

func fileHint(fe *identity.FileError) string {
	err := fe.Err
	switch {
	case errors.Is(err, pki.ErrIncorrectPassword):
		return "check the password given with --pkcs8-password-file, --pkcs8-password or KEYLESS_PKCS8_PASSWORD"
	case errors.Is(err, pki.ErrPasswordRequired):
		return "the file is encrypted and no terminal was available to ask for its password; give it with --pkcs8-password-file FILE or KEYLESS_PKCS8_PASSWORD"
	case errors.Is(err, identity.ErrKeyMismatch):
		return "--private-key must be the key the certificate was issued for; check that both files come from the same enrollment"
	case errors.Is(err, identity.ErrNoPrivateKey):
		return "add --private-key with the certificate's key file, or give a PKCS#12 file (which holds both) as --certificate"
	case errors.Is(err, identity.ErrKeyWithPKCS12):
		return "drop --private-key: the PKCS#12 file given as --certificate holds the key"
	case errors.Is(err, identity.ErrChainWithPKCS12):
		return "drop --intermediates: the PKCS#12 file given as --certificate holds the chain"
	case errors.Is(err, pki.ErrExpired):
		return "renew the certificate (keyless renew, or step ca renew) and try again"
	case errors.Is(err, pki.ErrNotYetValid):
		return "check this machine's clock, or wait until the certificate becomes valid"
	case errors.Is(err, pki.ErrLeafProfile):
		return "Roles Anywhere would refuse this certificate; issue an end-entity certificate with keyUsage digitalSignature, signed with SHA-256 or stronger"
	case errors.Is(err, pki.ErrUnsupportedKey):
		return "make a new key of a kind Roles Anywhere accepts: ECDSA P-256 (openssl ecparam -name prime256v1 -genkey) or RSA 2048 to 4096"
	case errors.Is(err, pki.ErrNotCertificate) && fe.Role == identity.RoleCertificate:
		return "--certificate takes a PEM or DER certificate, or a PKCS#12 file"
	case errors.Is(err, pki.ErrNotPrivateKey):
		return "--private-key takes a PEM private key (PKCS#8, encrypted PKCS#8, PKCS#1 or SEC1)"
	}
	return ""
}

func apiHint(e *rolesanywhere.APIError) string {
	msg := strings.ToLower(e.Message)
	switch {
	case e.Code == "AccessDeniedException" && strings.Contains(msg, "rolesessionname"):
		return "the profile does not accept session names: drop --role-session-name, or set acceptRoleSessionName on the profile"
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
