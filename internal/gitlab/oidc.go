package gitlab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	jose "github.com/go-jose/go-jose/v4"
)

// KeySource fetches the signing keys of an OIDC issuer (GitLab's, for
// id_tokens): the discovery document at
// {issuer}/.well-known/openid-configuration, whose issuer must be the
// configured one exactly, then the JWKS at its jwks_uri, which must be on
// the issuer's host. It caches nothing: internal/authz caches and decides
// when to fetch again. It is safe for concurrent use.
type KeySource struct {
	c      *Client
	issuer string
}

// OIDCKeys returns the key source of issuer (GitLab's URL for its
// id_tokens). A bad issuer URL makes every Keys call fail.
func (c *Client) OIDCKeys(issuer string) *KeySource {
	return &KeySource{c: c, issuer: issuer}
}

// Issuer returns the issuer the keys are for.
func (k *KeySource) Issuer() string { return k.issuer }

// Discovery is the part of an OIDC discovery document keyless reads.
type Discovery struct {
	Issuer  string `json:"issuer"`
	JWKSURI string `json:"jwks_uri"`
}

// Keys fetches the discovery document and the JWKS. Keys that go-jose
// cannot parse (a type it does not know) are skipped; a set with no key
// left is an error. Network errors and unexpected statuses are
// *UnavailableError.
func (k *KeySource) Keys(ctx context.Context) (*jose.JSONWebKeySet, error) {
	iu, err := checkURL(k.issuer)
	if err != nil {
		return nil, fmt.Errorf("OIDC issuer: %w", err)
	}
	d, err := k.discover(ctx)
	if err != nil {
		return nil, err
	}
	ju, err := checkURL(d.JWKSURI)
	if err != nil {
		return nil, fmt.Errorf("the issuer's jwks_uri: %w", err)
	}
	if !strings.EqualFold(ju.Host, iu.Host) || (ju.Scheme != iu.Scheme && ju.Scheme != "https") {
		return nil, fmt.Errorf("the issuer's jwks_uri %s is not on the issuer's host %s", ju.Redacted(), iu.Host)
	}
	data, err := k.get(ctx, ju.String())
	if err != nil {
		return nil, err
	}
	set, err := ParseJWKS(data)
	if err != nil {
		return nil, &UnavailableError{URL: ju.String(), Status: http.StatusOK, Err: err}
	}
	return set, nil
}

// discover fetches and checks the discovery document.
func (k *KeySource) discover(ctx context.Context) (*Discovery, error) {
	u := strings.TrimSuffix(k.issuer, "/") + "/.well-known/openid-configuration"
	data, err := k.get(ctx, u)
	if err != nil {
		return nil, err
	}
	var d Discovery
	if err := json.Unmarshal(data, &d); err != nil {
		return nil, &UnavailableError{URL: u, Status: http.StatusOK, Err: fmt.Errorf("not an OIDC discovery document: %w", err)}
	}
	if d.Issuer != k.issuer {
		// OpenID Connect Discovery 1.0, section 4.3: the issuer must be
		// exactly the one asked for, or the keys are someone else's.
		return nil, fmt.Errorf("the discovery document at %s names the issuer %q, not %q: set the issuer GitLab reports", u, printable(d.Issuer), k.issuer)
	}
	if d.JWKSURI == "" {
		return nil, fmt.Errorf("the discovery document at %s has no jwks_uri", u)
	}
	return &d, nil
}

func (k *KeySource) get(ctx context.Context, u string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, &UnavailableError{URL: u, Err: err}
	}
	data, status, err := k.c.do(req)
	if err != nil {
		return nil, err
	}
	if status != http.StatusOK {
		return nil, &UnavailableError{URL: u, Status: status, Err: errors.New(summary(data))}
	}
	return data, nil
}

// ParseJWKS parses a JWKS, skipping keys go-jose cannot parse and private
// keys (a JWKS that publishes private keys is not to be trusted at all).
func ParseJWKS(data []byte) (*jose.JSONWebKeySet, error) {
	var raw struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("not a JWKS: %w", err)
	}
	set := &jose.JSONWebKeySet{}
	for _, r := range raw.Keys {
		var key jose.JSONWebKey
		if err := key.UnmarshalJSON(r); err != nil {
			continue
		}
		if !key.IsPublic() {
			return nil, errors.New("the JWKS holds a private key")
		}
		set.Keys = append(set.Keys, key)
	}
	if len(set.Keys) == 0 {
		return nil, errors.New("the JWKS has no usable key")
	}
	return set, nil
}
