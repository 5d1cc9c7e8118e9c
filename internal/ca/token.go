package ca

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/keyless-dev/keyless/internal/store"
)

// Token rules.
const (
	// tokenLeeway absorbs clock differences between the token's maker and
	// the CA, as step-ca does.
	tokenLeeway = time.Minute
	// MaxTokenLifetime bounds exp - nbf. An enrollment token made on the
	// CA host may travel to a runner by hand, so it may live longer than
	// the CLI's 5 minutes, but not indefinitely.
	MaxTokenLifetime = 24 * time.Hour
	// DefaultTokenLifetime is the step CLI's.
	DefaultTokenLifetime = 5 * time.Minute
)

var tokenAlgorithms = []jose.SignatureAlgorithm{jose.ES256, jose.ES384, jose.ES512, jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512, jose.EdDSA}

// ottClaims are a one-time token's claims (step's format).
type ottClaims struct {
	jwt.Claims
	SANs []string `json:"sans,omitempty"`
	SHA  string   `json:"sha,omitempty"`
}

// TokenOptions describe a one-time token.
type TokenOptions struct {
	Provisioner string           // iss
	Key         *jose.JSONWebKey // the provisioner's private key
	Subject     string           // sub: the CN for sign, the serial for revoke
	SANs        []string
	Audience    string // https://host:port/1.0/sign or .../revoke
	RootSHA256  string // optional hex fingerprint (step's "sha" claim)
	Lifetime    time.Duration
	Now         time.Time
	Rand        io.Reader
}

// NewToken signs a one-time token with a provisioner's private key, in the
// step CLI's format, with a random 256-bit jti.
func NewToken(o TokenOptions) (string, error) {
	if o.Key == nil || o.Key.IsPublic() {
		return "", errors.New("making token: need the provisioner's private key")
	}
	if o.Subject == "" || o.Audience == "" || o.Provisioner == "" {
		return "", errors.New("making token: subject, audience and provisioner are required")
	}
	if o.Lifetime == 0 {
		o.Lifetime = DefaultTokenLifetime
	}
	if o.Lifetime < 0 || o.Lifetime > MaxTokenLifetime {
		return "", fmt.Errorf("making token: lifetime %s is outside 0 to %s", o.Lifetime, MaxTokenLifetime)
	}
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	jti, err := randomHex(o.Rand, 32)
	if err != nil {
		return "", err
	}
	alg := jose.SignatureAlgorithm(o.Key.Algorithm)
	if alg == "" {
		alg = jose.ES256
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: o.Key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader(jose.HeaderKey("kid"), o.Key.KeyID))
	if err != nil {
		return "", fmt.Errorf("making token: %w", err)
	}
	c := ottClaims{
		Claims: jwt.Claims{
			Issuer: o.Provisioner, Subject: o.Subject, Audience: jwt.Audience{o.Audience}, ID: jti,
			IssuedAt: jwt.NewNumericDate(o.Now), NotBefore: jwt.NewNumericDate(o.Now), Expiry: jwt.NewNumericDate(o.Now.Add(o.Lifetime)),
		},
		SANs: o.SANs, SHA: o.RootSHA256,
	}
	return jwt.Signed(signer).Claims(c).Serialize()
}

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
			return refuse(KindUnauthorized, "token already used")
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
func (a *Authority) verifyOTT(token, op string, now time.Time) (*ProvisionerConfig, *ottClaims, spend, error) {
	tok, err := jwt.ParseSigned(token, tokenAlgorithms)
	if err != nil {
		return nil, nil, spend{}, refuse(KindUnauthorized, "the token is not a signed JWT")
	}
	var unverified ottClaims
	if err := tok.UnsafeClaimsWithoutVerification(&unverified); err != nil {
		return nil, nil, spend{}, refuse(KindUnauthorized, "the token's claims do not parse")
	}
	kid := tok.Headers[0].KeyID
	cfg := a.config()
	p := cfg.provisioner(unverified.Issuer)
	if p == nil || p.jwk.KeyID != kid {
		return nil, nil, spend{}, refuse(KindUnauthorized, "the token names no provisioner of this CA (iss %q, kid %q)", clip(unverified.Issuer), clip(kid))
	}
	var c ottClaims
	if err := tok.Claims(p.jwk.Key, &c); err != nil {
		return nil, nil, spend{}, refuse(KindUnauthorized, "the token's signature does not verify with provisioner %s's key", p.Name)
	}
	if err := checkTimes(c.Claims, now); err != nil {
		return nil, nil, spend{}, err
	}
	if !a.audienceMatches(cfg, c.Audience, op) {
		return nil, nil, spend{}, refuse(KindUnauthorized, "the token's audience %q is not this CA's %s endpoint (https://<one of %s>/1.0/%s)", clip(strings.Join(c.Audience, ",")), op, strings.Join(cfg.DNSNames, ", "), op)
	}
	if c.Subject == "" {
		return nil, nil, spend{}, refuse(KindUnauthorized, "the token has no subject")
	}
	if c.ID == "" {
		return nil, nil, spend{}, refuse(KindUnauthorized, "the token has no jti, so it could be replayed")
	}
	return p, &c, spend{id: op + ":" + c.ID, expires: c.Expiry.Time().Add(tokenLeeway)}, nil
}

func checkTimes(c jwt.Claims, now time.Time) error {
	if c.Expiry == nil || c.NotBefore == nil && c.IssuedAt == nil {
		return refuse(KindUnauthorized, "the token needs exp and nbf or iat")
	}
	if err := c.ValidateWithLeeway(jwt.Expected{Time: now}, tokenLeeway); err != nil {
		switch {
		case errors.Is(err, jwt.ErrExpired):
			return refuse(KindUnauthorized, "the token expired at %s", c.Expiry.Time().UTC().Format(time.RFC3339))
		case errors.Is(err, jwt.ErrNotValidYet), errors.Is(err, jwt.ErrIssuedInTheFuture):
			return refuse(KindUnauthorized, "the token is not valid yet (is the clock of the machine that made it right?)")
		}
		return refuse(KindUnauthorized, "the token is not valid now")
	}
	start := c.NotBefore
	if start == nil {
		start = c.IssuedAt
	}
	if c.Expiry.Time().Sub(start.Time()) > MaxTokenLifetime {
		return refuse(KindUnauthorized, "the token lives longer than %s", MaxTokenLifetime)
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
	tok, err := jwt.ParseSigned(token, tokenAlgorithms)
	if err != nil {
		return nil, spend{}, refuse(KindUnauthorized, "the renewal token is not a signed JWT")
	}
	h := tok.Headers[0]
	var encoded []string
	switch v := h.ExtraHeaders["x5cInsecure"].(type) {
	case []any:
		for _, e := range v {
			s, ok := e.(string)
			if !ok {
				return nil, spend{}, refuse(KindUnauthorized, "the renewal token's x5cInsecure header is not a list of certificates")
			}
			encoded = append(encoded, s)
		}
	}
	if len(encoded) == 0 {
		return nil, spend{}, refuse(KindUnauthorized, "the renewal token carries no certificate (x5cInsecure header)")
	}
	var chain []*x509.Certificate
	for _, e := range encoded {
		der, err := base64.StdEncoding.DecodeString(e)
		if err != nil {
			return nil, spend{}, refuse(KindUnauthorized, "the renewal token's certificate is not base64")
		}
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, spend{}, refuse(KindUnauthorized, "the renewal token's certificate does not parse")
		}
		chain = append(chain, cert)
	}
	var c jwt.Claims
	if err := tok.Claims(chain[0].PublicKey, &c); err != nil {
		return nil, spend{}, refuse(KindUnauthorized, "the renewal token is not signed by the certificate's key")
	}
	if err := checkTimes(c, now); err != nil {
		return nil, spend{}, err
	}
	if !a.audienceMatches(a.config(), c.Audience, "renew") {
		return nil, spend{}, refuse(KindUnauthorized, "the renewal token's audience is not this CA's renew endpoint")
	}
	// Renewal tokens have no jti: the signed part (header and claims) is
	// what is spent, not the whole string, since an ECDSA signature can be
	// rewritten into another valid one for the same claims.
	signed := token[:strings.LastIndexByte(token, '.')]
	sum := sha256.Sum256([]byte(signed))
	return chain, spend{id: "renew:" + hex.EncodeToString(sum[:]), expires: c.Expiry.Time().Add(tokenLeeway)}, nil
}

func randomHex(r io.Reader, n int) (string, error) {
	if r == nil {
		r = randReader
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return "", fmt.Errorf("reading randomness: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// clip keeps client-supplied text short in messages.
func clip(s string) string {
	if len(s) > 80 {
		return strings.ToValidUTF8(s[:80], "") + "..."
	}
	return s
}
