package caproto

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/keyless-dev/keyless/internal/pki"
)

// Token rules.
const (
	// Leeway absorbs clock differences between a token's maker and the
	// CA, as step-ca does.
	Leeway = time.Minute
	// MaxTokenLifetime bounds exp - nbf. An enrollment token made on the
	// CA host may travel to a runner by hand, so it may live longer than
	// the CLI's 5 minutes, but not indefinitely.
	MaxTokenLifetime = 24 * time.Hour
	// DefaultTokenLifetime is the step CLI's.
	DefaultTokenLifetime = 5 * time.Minute
	// RenewTokenLifetime is how long a renewal token lives: one request.
	RenewTokenLifetime = 5 * time.Minute
	// RenewTokenIssuer is the issuer step's client puts in renewal
	// tokens.
	RenewTokenIssuer = "step-ca-client/1.0"
)

// Algorithms are the signature algorithms tokens may use.
var Algorithms = []jose.SignatureAlgorithm{jose.ES256, jose.ES384, jose.ES512, jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512, jose.EdDSA}

// Claims are a one-time token's claims (step's format).
type Claims struct {
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
	if o.Rand == nil {
		o.Rand = rand.Reader
	}
	jti := make([]byte, 32)
	if _, err := io.ReadFull(o.Rand, jti); err != nil {
		return "", fmt.Errorf("making token: reading randomness: %w", err)
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
	c := Claims{
		Claims: jwt.Claims{
			Issuer: o.Provisioner, Subject: o.Subject, Audience: jwt.Audience{o.Audience}, ID: hex.EncodeToString(jti),
			IssuedAt: jwt.NewNumericDate(o.Now), NotBefore: jwt.NewNumericDate(o.Now), Expiry: jwt.NewNumericDate(o.Now.Add(o.Lifetime)),
		},
		SANs: o.SANs, SHA: o.RootSHA256,
	}
	return jwt.Signed(signer).Claims(c).Serialize()
}

// NewRenewToken makes step's renewal token for cert: a JWT signed with the
// certificate's own key, carrying the chain in its x5cInsecure header,
// for audience (https://<ca>/1.0/renew). It lets a client renew when its
// certificate cannot reach the CA over mTLS (a proxy terminates TLS), or
// has expired and the CA allows renewal after expiry.
func NewRenewToken(cert tls.Certificate, audience string, now time.Time) (string, error) {
	signer, ok := cert.PrivateKey.(crypto.Signer)
	if !ok || cert.Leaf == nil {
		return "", errors.New("renewal token: need the certificate and its private key")
	}
	alg, err := signatureAlgorithm(signer.Public())
	if err != nil {
		return "", err
	}
	x5c := make([]string, len(cert.Certificate))
	for i, der := range cert.Certificate {
		x5c[i] = base64.StdEncoding.EncodeToString(der)
	}
	jwk := jose.JSONWebKey{Key: signer.Public()}
	kid, err := Thumbprint(&jwk)
	if err != nil {
		return "", err
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: signer},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", kid).WithHeader("x5cInsecure", x5c))
	if err != nil {
		return "", fmt.Errorf("renewal token: %w", err)
	}
	return jwt.Signed(s).Claims(jwt.Claims{
		Issuer: RenewTokenIssuer, Subject: cert.Leaf.Subject.CommonName, Audience: jwt.Audience{audience},
		IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now), Expiry: jwt.NewNumericDate(now.Add(RenewTokenLifetime)),
	}).Serialize()
}

func signatureAlgorithm(pub crypto.PublicKey) (jose.SignatureAlgorithm, error) {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve.Params().BitSize {
		case 256:
			return jose.ES256, nil
		case 384:
			return jose.ES384, nil
		}
	case *rsa.PublicKey:
		return jose.RS256, nil
	}
	return "", fmt.Errorf("renewal token: unsupported key %s", pki.DescribeKey(pub))
}

// ErrNonCanonical is a compact JWS that is not written the one way its
// content allows: base64url with no padding, no line breaks and zero
// unused bits. Go's decoder (and so go-jose's) takes such variants, each
// a different string for the same token; a CA that remembers spent
// tokens must refuse them.
var ErrNonCanonical = errors.New("the token is not canonical compact JWS")

// CheckCompact refuses a token that is not three canonical base64url
// segments, and returns its signing input decoded: the header and payload
// bytes the signature covers. Those, not the string, identify a token
// without a jti (step's renewal tokens): the signature is left out, since
// an ECDSA signature has two valid forms, (r, s) and (r, n-s).
func CheckCompact(token string) (header, payload []byte, err error) {
	segs := strings.Split(token, ".")
	if len(segs) != 3 {
		return nil, nil, fmt.Errorf("%w: want three dot-separated parts, not %d", ErrNonCanonical, len(segs))
	}
	var parts [3][]byte
	for i, seg := range segs {
		for j := 0; j < len(seg); j++ {
			c := seg[j]
			if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return nil, nil, fmt.Errorf("%w: part %d holds a character outside base64url", ErrNonCanonical, i+1)
			}
		}
		// Strict refuses non-zero unused bits in the last character: the
		// variants that decode to the same bytes.
		b, err := base64.RawURLEncoding.Strict().DecodeString(seg)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: part %d: %v", ErrNonCanonical, i+1, err)
		}
		parts[i] = b
	}
	return parts[0], parts[1], nil
}
