package sigv4

import (
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Credentials are AWS access keys: long-lived ones, or temporary ones
// with a session token and an expiry.
type Credentials struct {
	AccessKeyID     string
	SecretAccessKey string
	SessionToken    string
	// Expiration is when temporary credentials stop working; zero for
	// long-lived keys.
	Expiration time.Time
}

// SignHMAC signs req for service in region with standard SigV4
// (AWS4-HMAC-SHA256): it sets X-Amz-Date, X-Amz-Security-Token when the
// credentials have a session token, and Authorization. It signs every
// header present on req except Authorization, User-Agent and
// X-Amzn-Trace-Id, plus host, and body, which must be the exact bytes req
// will send.
func SignHMAC(req *http.Request, body []byte, c Credentials, region, service string, now time.Time) error {
	if c.AccessKeyID == "" || c.SecretAccessKey == "" {
		return errors.New("signing needs an access key id and a secret access key")
	}
	if region == "" || service == "" {
		return errors.New("signing needs a region and a service")
	}
	date := now.UTC().Format(TimeFormat)
	req.Header.Set(HeaderDate, date)
	if c.SessionToken != "" {
		req.Header.Set(HeaderSecurityToken, c.SessionToken)
	} else {
		req.Header.Del(HeaderSecurityToken)
	}
	a := &Authorization{Algorithm: AlgorithmHMAC, Credential: c.AccessKeyID, Day: date[:8], Region: region, Service: service,
		SignedHeaders: headerNames(req.Header)}
	sig, err := hmacSignature(req, body, a, date, c.SecretAccessKey)
	if err != nil {
		return err
	}
	a.Signature = sig
	req.Header.Set("Authorization", a.String())
	return nil
}

// HMACVerifyOptions say what VerifyHMAC checks beyond the signature.
type HMACVerifyOptions struct {
	// Service must be the scope's service.
	Service string
	// Regions, when not empty, are the scope regions accepted.
	Regions []string
	// Now is the verifier's clock; the zero time skips the skew check.
	Now time.Time
	// MaxSkew is the allowed distance between X-Amz-Date and Now; zero
	// means DefaultMaxSkew.
	MaxSkew time.Duration
	// Secret returns the secret access key of an access key id. Its error
	// is returned unchanged, so the caller can tell an unknown, expired or
	// mismatched key (it may check X-Amz-Security-Token on the request)
	// in its own terms. It runs before the date and scope checks, for any
	// request whose Authorization parses; an empty secret is refused.
	Secret func(req *http.Request, accessKeyID string) (string, error)
}

// VerifyHMAC checks a standard SigV4 request: the Authorization header
// parses; the key is known to opts.Secret; host is signed and every
// signed header present; the date, the scope and the clock agree; and
// the HMAC over the canonical request (body included: only S3 lets a
// signature leave the payload out) verifies with the key's secret. It
// returns the parsed header, also with an error once the header parsed,
// so the caller can name the scope it refuses.
func VerifyHMAC(req *http.Request, body []byte, opts HMACVerifyOptions) (*Authorization, error) {
	authz := req.Header.Get("Authorization")
	if authz == "" {
		return nil, ErrNoAuthorization
	}
	a, err := ParseAuthorization(authz, AlgorithmHMAC)
	if err != nil {
		return nil, err
	}
	if opts.Secret == nil {
		return a, errors.New("sigv4: VerifyHMAC needs a Secret function")
	}
	secret, err := opts.Secret(req, a.Credential)
	if err != nil {
		return a, err
	}
	if secret == "" {
		// An empty secret would make the signing key the public "AWS4":
		// anyone could sign. A key without a secret verifies nothing.
		return a, fmt.Errorf("%w: access key id %s has no secret", ErrSignature, truncate(a.Credential))
	}
	check := checkRequest{required: []string{"host"}, service: opts.Service, regions: opts.Regions, now: opts.Now, maxSkew: opts.MaxSkew}
	_, dateStr, err := check.dateAndScope(req, a)
	if err != nil {
		return a, err
	}
	if err := check.signedHeaders(req, a); err != nil {
		return a, err
	}
	want, err := hmacSignature(req, body, a, dateStr, secret)
	if err != nil {
		return a, err
	}
	if !hmac.Equal(want, a.Signature) {
		return a, fmt.Errorf("%w: the HMAC over the canonical request does not verify with the secret of %s", ErrSignature, truncate(a.Credential))
	}
	return a, nil
}

// hmacSignature computes the signature of req under a's scope and signed
// headers with secret.
func hmacSignature(req *http.Request, body []byte, a *Authorization, date, secret string) ([]byte, error) {
	digest, err := SDKRules.canonicalRequestDigest(req.Method, CanonicalURI(req.URL), req.URL.RawQuery, req.Header, requestHost(req), a.SignedHeaders, PayloadHash(body))
	if err != nil {
		return nil, err
	}
	key := hmacSHA256([]byte("AWS4"+secret), a.Day)
	key = hmacSHA256(key, a.Region)
	key = hmacSHA256(key, a.Service)
	key = hmacSHA256(key, "aws4_request")
	return hmacSHA256(key, stringToSign(AlgorithmHMAC, date, Scope(a.Day, a.Region, a.Service), digest)), nil
}

func hmacSHA256(key []byte, data string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(data))
	return m.Sum(nil)
}
