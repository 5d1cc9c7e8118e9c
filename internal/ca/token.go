package ca

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/keyless-dev/keyless/internal/caproto"
	"github.com/keyless-dev/keyless/internal/store"
)

// spend identifies a one-time token to record as used, with the time
// after which it can be forgotten.
type spend struct {
	id      string
	expires time.Time
}

// use records the token as used on its own (revocation); issuing
// records it together with the certificate.
func (a *Authority) use(s spend) error {
	if err := a.store.UseToken(s.id, s.expires); err != nil {
		if errors.Is(err, store.ErrTokenUsed) {
			return refuse(KindUnauthorized, "token already used").because(caproto.ReasonTokenUsed)
		}
		return internal(err, "recording the token")
	}
	return nil
}

// verifyOTT authenticates a provisioner's one-time token for op ("sign"
// or "revoke"): the provisioner named by iss with the key named by kid
// signed it, it is for this CA and this operation, it is valid now (with
// a minute's leeway) and short-lived. Its single use is the caller's to
// enforce with the returned spend: signing records it in the same write
// as the certificate, so a crash never leaves a spent token without its
// certificate, nor a certificate whose token could be replayed.
func (a *Authority) verifyOTT(token, op string, now time.Time) (*ProvisionerConfig, *caproto.Claims, spend, error) {
	if _, _, err := caproto.CheckCompact(token); err != nil {
		return nil, nil, spend{}, badToken("%v", err)
	}
	tok, err := jwt.ParseSigned(token, caproto.Algorithms)
	if err != nil {
		return nil, nil, spend{}, badToken("the token is not a signed JWT")
	}
	kid := tok.Headers[0].KeyID
	cfg := a.config()
	var c caproto.Claims
	if p := cfg.provisionerByKeyID(kid); p != nil {
		// The key id names one provisioner: verify with its key and read
		// the claims once; the issuer must then be that provisioner.
		if err := tok.Claims(p.jwk.Key, &c); err != nil {
			return nil, nil, spend{}, badToken("the token's signature does not verify with provisioner %s's key", p.Name)
		}
		if c.Issuer != p.Name {
			return nil, nil, spend{}, badToken("the token names no provisioner of this CA (iss %q, kid %q)", clip(c.Issuer), clip(kid))
		}
		return a.checkOTT(cfg, p, &c, op, now)
	}
	// No provisioner, or several sharing one key: the issuer decides.
	var unverified caproto.Claims
	if err := tok.UnsafeClaimsWithoutVerification(&unverified); err != nil {
		return nil, nil, spend{}, badToken("the token's claims do not parse")
	}
	p := cfg.provisioner(unverified.Issuer)
	if p == nil || p.jwk.KeyID != kid {
		return nil, nil, spend{}, badToken("the token names no provisioner of this CA (iss %q, kid %q)", clip(unverified.Issuer), clip(kid))
	}
	if err := tok.Claims(p.jwk.Key, &c); err != nil {
		return nil, nil, spend{}, badToken("the token's signature does not verify with provisioner %s's key", p.Name)
	}
	return a.checkOTT(cfg, p, &c, op, now)
}

// checkOTT checks the verified claims of provisioner p's one-time token
// for op.
func (a *Authority) checkOTT(cfg *Config, p *ProvisionerConfig, c *caproto.Claims, op string, now time.Time) (*ProvisionerConfig, *caproto.Claims, spend, error) {
	if err := checkTimes(c.Claims, now); err != nil {
		return nil, nil, spend{}, err
	}
	if !a.audienceMatches(cfg, c.Audience, op) {
		return nil, nil, spend{}, badToken("the token's audience %q is not this CA's %s endpoint (https://<one of %s>/1.0/%s)", clip(strings.Join(c.Audience, ",")), op, strings.Join(cfg.DNSNames, ", "), op)
	}
	if c.Subject == "" {
		return nil, nil, spend{}, badToken("the token has no subject")
	}
	if c.ID == "" {
		return nil, nil, spend{}, badToken("the token has no jti, so it could be replayed")
	}
	return p, c, spend{id: op + ":" + c.ID, expires: c.Expiry.Time().Add(caproto.Leeway)}, nil
}

func checkTimes(c jwt.Claims, now time.Time) error {
	if c.Expiry == nil || c.NotBefore == nil && c.IssuedAt == nil {
		return badToken("the token needs exp and nbf or iat")
	}
	if err := c.ValidateWithLeeway(jwt.Expected{Time: now}, caproto.Leeway); err != nil {
		switch {
		case errors.Is(err, jwt.ErrExpired):
			return refuse(KindUnauthorized, "the token expired at %s", c.Expiry.Time().UTC().Format(time.RFC3339)).because(caproto.ReasonTokenExpired)
		case errors.Is(err, jwt.ErrNotValidYet), errors.Is(err, jwt.ErrIssuedInTheFuture):
			return refuse(KindUnauthorized, "the token is not valid yet (is the clock of the machine that made it right?)").because(caproto.ReasonTokenNotYetValid)
		}
		return badToken("the token is not valid now")
	}
	start := c.NotBefore
	if start == nil {
		start = c.IssuedAt
	}
	if c.Expiry.Time().Sub(start.Time()) > caproto.MaxTokenLifetime {
		return badToken("the token lives longer than %s", caproto.MaxTokenLifetime)
	}
	return nil
}

// audienceMatches accepts https://<dnsName>[:any port]/1.0/<op> or
// /<op>; the port is ignored as step-ca does (a proxy may change it).
func (a *Authority) audienceMatches(cfg *Config, aud jwt.Audience, op string) bool {
	for _, s := range aud {
		u, err := url.Parse(s)
		if err != nil || u.Scheme != "https" || (u.Path != "/1.0/"+op && u.Path != "/"+op) {
			continue
		}
		host := u.Hostname()
		for _, name := range cfg.DNSNames {
			if strings.EqualFold(host, name) || sameIP(host, name) {
				return true
			}
		}
	}
	return false
}

func sameIP(a, b string) bool {
	x, y := net.ParseIP(a), net.ParseIP(b)
	return x != nil && y != nil && x.Equal(y)
}

// verifyRenewToken authenticates step's renewal token: a JWT signed with
// the certificate's own key, carrying the certificate (and chain) in its
// x5cInsecure header, for this CA's renew endpoint. It returns the chain;
// the caller checks it against the CA as it would an mTLS peer.
func (a *Authority) verifyRenewToken(token string, now time.Time) ([]*x509.Certificate, spend, error) {
	header, payload, err := caproto.CheckCompact(token)
	if err != nil {
		return nil, spend{}, badToken("%v", err)
	}
	tok, err := jwt.ParseSigned(token, caproto.Algorithms)
	if err != nil {
		return nil, spend{}, badToken("the renewal token is not a signed JWT")
	}
	h := tok.Headers[0]
	var encoded []string
	switch v := h.ExtraHeaders["x5cInsecure"].(type) {
	case []any:
		for _, e := range v {
			s, ok := e.(string)
			if !ok {
				return nil, spend{}, badToken("the renewal token's x5cInsecure header is not a list of certificates")
			}
			encoded = append(encoded, s)
		}
	}
	if len(encoded) == 0 {
		return nil, spend{}, badToken("the renewal token carries no certificate (x5cInsecure header)")
	}
	var chain []*x509.Certificate
	for _, e := range encoded {
		der, err := base64.StdEncoding.DecodeString(e)
		if err != nil {
			return nil, spend{}, badToken("the renewal token's certificate is not base64")
		}
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, spend{}, badToken("the renewal token's certificate does not parse")
		}
		chain = append(chain, cert)
	}
	var c jwt.Claims
	if err := tok.Claims(chain[0].PublicKey, &c); err != nil {
		return nil, spend{}, badToken("the renewal token is not signed by the certificate's key")
	}
	if err := checkTimes(c, now); err != nil {
		return nil, spend{}, err
	}
	if !a.audienceMatches(a.config(), c.Audience, "renew") {
		return nil, spend{}, badToken("the renewal token's audience is not this CA's renew endpoint")
	}
	// Renewal tokens have no jti and a constant issuer: what is spent is
	// the decoded header and claims the signature covers, not the string
	// (which base64 could spell otherwise, had CheckCompact not refused
	// it) nor the signature (ECDSA's has two valid forms).
	sum := sha256.New()
	fmt.Fprintf(sum, "%d:", len(header))
	sum.Write(header)
	sum.Write(payload)
	return chain, spend{id: "renew:" + hex.EncodeToString(sum.Sum(nil)), expires: c.Expiry.Time().Add(caproto.Leeway)}, nil
}

// badToken refuses a token that is not a valid one of this CA for this
// operation.
func badToken(format string, args ...any) *Error {
	return refuse(KindUnauthorized, format, args...).because(caproto.ReasonTokenInvalid)
}

// clip keeps client-supplied text short in messages.
func clip(s string) string {
	if len(s) > 80 {
		return strings.ToValidUTF8(s[:80], "") + "..."
	}
	return s
}
