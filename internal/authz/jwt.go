package authz

import (
	"bytes"
	"context"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/keyless-dev/keyless/internal/clock"
)

// minRSABits: GitLab signs with 2048-bit keys or larger; a smaller key in
// the JWKS is not GitLab's.
const minRSABits = 2048

// oidcVerifier verifies id_tokens and keeps the issuer's keys.
type oidcVerifier struct {
	cfg   OIDC
	clock clock.Clock
	log   *slog.Logger

	mu        sync.Mutex
	keys      map[string]*rsa.PublicKey // nil until a fetch succeeds
	fetched   time.Time                 // the last successful fetch
	attempted time.Time                 // the last fetch started
	lastErr   error
	flight    *keyFlight
}

type keyFlight struct {
	done chan struct{}
	err  error
}

// key returns the public key named kid: from the cache, or after one
// fetch of the JWKS shared by every concurrent caller, at most once per
// MinRefresh.
func (o *oidcVerifier) key(ctx context.Context, kid string) (*rsa.PublicKey, error) {
	o.mu.Lock()
	now := o.clock.Now()
	k, ok := o.keys[kid]
	if ok && now.Sub(o.fetched) < keysMaxAge {
		o.mu.Unlock()
		return k, nil
	}
	f := o.flight
	if f == nil && o.mayFetchLocked(now) {
		f = &keyFlight{done: make(chan struct{})}
		o.flight, o.attempted = f, now
		// The fetch outlives the caller that started it: the others
		// waiting on it must not fail because that one left.
		go o.fetch(context.WithoutCancel(ctx), f)
	}
	o.mu.Unlock()
	if f != nil {
		select {
		case <-f.done:
		case <-ctx.Done():
			return nil, canceled(ctx.Err())
		}
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if k, ok := o.keys[kid]; ok {
		return k, nil
	}
	if o.keys == nil || (f != nil && f.err != nil) {
		// No keys, or the refetch for this kid failed: GitLab may well
		// have rotated its key, so the caller should try again.
		return nil, &Error{Status: 503, Reason: ReasonJWKSUnavailable, Message: "GitLab's signing keys could not be fetched; try again", Err: o.lastErr}
	}
	return nil, refuse(401, ReasonJWTUnknownKID, "the JWT is signed with key %q, which is not among the issuer's keys", cut(kid, 64))
}

func (o *oidcVerifier) mayFetchLocked(now time.Time) bool {
	if o.attempted.IsZero() {
		return true
	}
	wait := o.cfg.MinRefresh
	if o.keys == nil {
		wait = min(wait, firstFetchRetry)
	}
	return now.Sub(o.attempted) >= wait
}

func (o *oidcVerifier) fetch(ctx context.Context, f *keyFlight) {
	set, err := o.cfg.Keys.Keys(ctx)
	var keys map[string]*rsa.PublicKey
	if err == nil {
		keys, err = usableKeys(set)
	}
	o.mu.Lock()
	if err == nil {
		o.keys, o.fetched = keys, o.clock.Now()
	}
	o.lastErr, f.err = err, err
	o.flight = nil
	had := o.keys != nil
	o.mu.Unlock()
	close(f.done)
	if err != nil {
		o.log.Warn("fetching the id_tokens issuer's keys failed", "issuer", o.cfg.Issuer, "have_old_keys", had, "error", err)
		return
	}
	kids := make([]string, 0, len(keys))
	for kid := range keys {
		kids = append(kids, kid)
	}
	slices.Sort(kids)
	o.log.Info("fetched the id_tokens issuer's keys", "issuer", o.cfg.Issuer, "kids", strings.Join(kids, ","))
}

// usableKeys keeps the RSA signing keys of at least minRSABits with a kid
// and no other declared algorithm or use.
func usableKeys(set *jose.JSONWebKeySet) (map[string]*rsa.PublicKey, error) {
	if set == nil {
		return nil, errors.New("no key set")
	}
	out := map[string]*rsa.PublicKey{}
	for _, k := range set.Keys {
		pub, ok := k.Key.(*rsa.PublicKey)
		if !ok || k.KeyID == "" || (k.Use != "" && k.Use != "sig") || (k.Algorithm != "" && k.Algorithm != string(jose.RS256)) ||
			pub.N == nil || pub.N.BitLen() < minRSABits {
			continue
		}
		if _, dup := out[k.KeyID]; dup {
			continue
		}
		out[k.KeyID] = pub
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("the JWKS has no RS256 signing key of %d bits or more", minRSABits)
	}
	return out, nil
}

// verify checks an id_token: header, key, signature, then claims.
func (o *oidcVerifier) verify(ctx context.Context, tok string) (*Identity, error) {
	head, _, _ := strings.Cut(tok, ".")
	raw, err := base64.RawURLEncoding.DecodeString(head)
	if err != nil {
		return nil, refuse(401, ReasonMalformedToken, "the JWT's header is not base64url")
	}
	var hdr struct {
		Alg any `json:"alg"`
		Kid any `json:"kid"`
	}
	if err := json.Unmarshal(raw, &hdr); err != nil {
		return nil, refuse(401, ReasonMalformedToken, "the JWT's header is not a JSON object")
	}
	alg, _ := hdr.Alg.(string)
	if alg != string(jose.RS256) {
		// alg none, HS256 "signed" with the public key, and anything
		// else: GitLab signs id_tokens with RS256 only.
		return nil, refuse(401, ReasonJWTAlgorithm, "the JWT is signed with %s; id_tokens are RS256", describeAlg(hdr.Alg))
	}
	kid, _ := hdr.Kid.(string)
	if kid == "" {
		return nil, refuse(401, ReasonJWTUnknownKID, "the JWT names no key (kid)")
	}
	key, err := o.key(ctx, kid)
	if err != nil {
		return nil, err
	}
	jws, err := jose.ParseSignedCompact(tok, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		return nil, refuse(401, ReasonMalformedToken, "the JWT does not parse as a signed JWT")
	}
	payload, err := jws.Verify(key)
	if err != nil {
		return nil, refuse(401, ReasonJWTSignature, "the JWT's signature does not verify with the issuer's key %q", cut(kid, 64))
	}
	claims, err := parseClaims(payload)
	if err != nil {
		return nil, refuse(401, ReasonJWTClaims, "the JWT's claims: %s", err.Error())
	}
	if err := o.checkClaims(claims); err != nil {
		return nil, err
	}
	id := &Identity{Kind: IDToken, Claims: map[string]string{}}
	for _, f := range fieldsOf(IDToken) {
		if s, ok := claimString(claims[f]); ok {
			id.Claims[f] = s
		}
	}
	return id, nil
}

func describeAlg(a any) string {
	switch a := a.(type) {
	case nil:
		return "no alg"
	case string:
		return strconv.Quote(cut(a, 20))
	}
	return "an alg that is not a string"
}

// parseClaims decodes a JSON object, keeping numbers exact.
func parseClaims(payload []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	var claims map[string]any
	if err := dec.Decode(&claims); err != nil || claims == nil {
		return nil, errors.New("not a JSON object")
	}
	if dec.More() {
		return nil, errors.New("trailing data after the JSON object")
	}
	return claims, nil
}

func (o *oidcVerifier) checkClaims(c map[string]any) error {
	now, leeway := o.clock.Now(), o.cfg.Leeway
	iss, _ := c["iss"].(string)
	if iss != o.cfg.Issuer {
		return refuse(401, ReasonJWTIssuer, "the JWT's issuer is %q, not %q", cut(iss, 100), o.cfg.Issuer)
	}
	var auds []string
	switch a := c["aud"].(type) {
	case string:
		auds = []string{a}
	case []any:
		for _, v := range a {
			if s, ok := v.(string); ok {
				auds = append(auds, s)
			}
		}
	}
	if !slices.ContainsFunc(auds, func(a string) bool { return slices.Contains(o.cfg.Audiences, a) }) {
		shown := make([]string, 0, 3)
		for _, a := range auds[:min(len(auds), 3)] {
			shown = append(shown, strconv.Quote(cut(a, 64)))
		}
		return refuse(401, ReasonJWTAudience, "the JWT is for audience [%s], not %q: set aud in the job's id_tokens",
			strings.Join(shown, ", "), o.cfg.Audiences[0])
	}
	exp, ok, err := numericDate(c, "exp")
	switch {
	case err != nil:
		return refuse(401, ReasonJWTClaims, "the JWT's %s", err.Error())
	case !ok:
		return refuse(401, ReasonJWTClaims, "the JWT has no exp")
	case !now.Before(exp.Add(leeway)):
		return refuse(401, ReasonJWTExpired, "the JWT expired at %s", exp.UTC().Format(time.RFC3339))
	}
	for _, name := range []string{"nbf", "iat"} {
		t, ok, err := numericDate(c, name)
		switch {
		case err != nil:
			return refuse(401, ReasonJWTClaims, "the JWT's %s", err.Error())
		case ok && now.Add(leeway).Before(t):
			what := "is not valid before"
			if name == "iat" {
				what = "was issued in the future, at"
			}
			return refuse(401, ReasonJWTNotYetValid, "the JWT %s %s (clocks more than %s apart?)", what, t.UTC().Format(time.RFC3339), leeway)
		}
	}
	if len(o.cfg.RunnerIDs) > 0 {
		s, ok := claimString(c["runner_id"])
		n, err := strconv.ParseInt(s, 10, 64)
		if !ok || err != nil || !slices.Contains(o.cfg.RunnerIDs, n) {
			return refuse(403, ReasonRunnerMismatch, "the JWT is from runner %q, not one this agent serves", cut(s, 20))
		}
	}
	return nil
}

// numericDate reads a NumericDate claim: seconds since the epoch.
func numericDate(c map[string]any, name string) (time.Time, bool, error) {
	v, ok := c[name]
	if !ok {
		return time.Time{}, false, nil
	}
	n, isNum := v.(json.Number)
	if !isNum {
		return time.Time{}, false, fmt.Errorf("%s is not a number", name)
	}
	f, err := n.Float64()
	if err != nil || math.IsNaN(f) || f < 0 || f > 1<<40 {
		return time.Time{}, false, fmt.Errorf("%s is not a time", name)
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)), true, nil
}

// claimString renders a claim as Identity does: strings as they are,
// integers in decimal, bools as "true"/"false"; other values are absent.
func claimString(v any) (string, bool) {
	switch v := v.(type) {
	case string:
		return v, true
	case bool:
		return strconv.FormatBool(v), true
	case json.Number:
		if i, err := v.Int64(); err == nil {
			return strconv.FormatInt(i, 10), true
		}
	}
	return "", false
}

// cut shortens s to n bytes and replaces what is not printable ASCII, for
// messages quoting what a caller sent.
func cut(s string, n int) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if i == n {
			b.WriteString("...")
			break
		}
		c := s[i]
		if c < 0x20 || c > 0x7e {
			c = '?'
		}
		b.WriteByte(c)
	}
	return b.String()
}
