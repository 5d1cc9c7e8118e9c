package emulator

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/keyless-dev/keyless/internal/pki"
	"github.com/keyless-dev/keyless/internal/rolesanywhere"
	"github.com/keyless-dev/keyless/internal/sigv4"
	"github.com/keyless-dev/keyless/internal/trustpolicy"
)

// Session request limits, per the Roles Anywhere API.
const (
	minRequestDuration = 900
	maxRequestDuration = 43200
	// maxIntermediates is the most certificates X-Amz-X509-Chain may
	// carry: AWS's limit is 5 (issue 15's comparison with the user guide;
	// it also bounds the chain work one request can cause).
	maxIntermediates = 5
)

// sessionRequest is a parsed CreateSession request.
type sessionRequest struct {
	TrustAnchorARN, ProfileARN, RoleARN string
	DurationSeconds                     *int
	RoleSessionName                     string
	InstanceProperties                  map[string]string
}

// sessionBody is the JSON body. Keys match exactly, as in AWS's JSON
// protocol (encoding/json alone would also accept "RoleSessionName"), and
// unknown keys are ignored.
type sessionBody struct {
	DurationSeconds *int
	RoleSessionName *string
	// SessionName is the deprecated field: decoded (it is a string in the
	// API) and otherwise ignored, as AWS does ("This parameter is no
	// longer used"; roleSessionName replaced it).
	SessionName        *string
	InstanceProperties map[string]string
	ProfileArn         *string
	RoleArn            *string
	TrustAnchorArn     *string
}

func decodeSessionBody(body []byte) (*sessionBody, *apiError) {
	serialization := func(format string, args ...any) *apiError {
		return &apiError{status: http.StatusBadRequest, code: "SerializationException", message: "The request body is not valid JSON", rule: fmt.Sprintf(format, args...)}
	}
	var b sessionBody
	if len(bytes.TrimSpace(body)) == 0 {
		return &b, nil
	}
	var fields map[string]json.RawMessage
	// A body that is one JSON value decodes the same either way; only
	// for any other does the decoder say what is wrong, as before.
	if json.Unmarshal(body, &fields) != nil {
		fields = nil
		dec := json.NewDecoder(bytes.NewReader(body))
		if err := dec.Decode(&fields); err != nil {
			return nil, serialization("%s", truncate(err.Error()))
		}
		if dec.More() {
			return nil, serialization("data after the JSON object")
		}
	}
	for _, f := range []struct {
		name string
		dst  any
	}{
		{"durationSeconds", &b.DurationSeconds},
		{"roleSessionName", &b.RoleSessionName},
		{"sessionName", &b.SessionName},
		{"instanceProperties", &b.InstanceProperties},
		{"profileArn", &b.ProfileArn},
		{"roleArn", &b.RoleArn},
		{"trustAnchorArn", &b.TrustAnchorArn},
	} {
		raw, ok := fields[f.name]
		if !ok {
			continue
		}
		if err := json.Unmarshal(raw, f.dst); err != nil {
			return nil, serialization("%s: %s", f.name, truncate(err.Error()))
		}
	}
	return &b, nil
}

func validationError(format string, args ...any) *apiError {
	return &apiError{status: http.StatusBadRequest, code: "ValidationException", message: fmt.Sprintf(format, args...)}
}

// parseSessionRequest reads the ARNs from the query string or the JSON
// body (AWS's helper uses the query; the API documentation the body) and
// the optional body fields, validating each against the API's
// constraints.
func parseSessionRequest(rawQuery string, body []byte) (*sessionRequest, *apiError) {
	b, fail := decodeSessionBody(body)
	if fail != nil {
		return nil, fail
	}
	query, err := parseQuery(rawQuery)
	if err != nil {
		return nil, validationError("Invalid query string: %s", err)
	}
	req := &sessionRequest{DurationSeconds: b.DurationSeconds, InstanceProperties: b.InstanceProperties}
	for _, f := range []struct {
		name  string
		body  *string
		dst   *string
		parse func(string) (rolesanywhere.ARN, error)
	}{
		{"profileArn", b.ProfileArn, &req.ProfileARN, rolesanywhere.ParseProfileARN},
		{"roleArn", b.RoleArn, &req.RoleARN, rolesanywhere.ParseRoleARN},
		{"trustAnchorArn", b.TrustAnchorArn, &req.TrustAnchorARN, rolesanywhere.ParseTrustAnchorARN},
	} {
		vals := query[f.name]
		if len(vals) > 1 {
			return nil, validationError("1 validation error detected: '%s' is given %d times in the query string", f.name, len(vals))
		}
		switch {
		case len(vals) == 1 && f.body != nil && *f.body != vals[0]:
			return nil, validationError("1 validation error detected: '%s' differs between the query string and the body", f.name)
		case len(vals) == 1:
			*f.dst = vals[0]
		case f.body != nil:
			*f.dst = *f.body
		default:
			return nil, validationError("1 validation error detected: Value null at '%s' failed to satisfy constraint: Member must not be null", f.name)
		}
		if _, err := f.parse(*f.dst); err != nil {
			return nil, validationError("1 validation error detected: Value '%s' at '%s' failed to satisfy constraint: Member must be a valid ARN of that kind", truncate(*f.dst), f.name)
		}
	}
	if d := req.DurationSeconds; d != nil && *d < minRequestDuration {
		return nil, validationError("1 validation error detected: Value '%d' at 'durationSeconds' failed to satisfy constraint: Member must have value greater than or equal to %d", *d, minRequestDuration)
	}
	if d := req.DurationSeconds; d != nil && *d > maxRequestDuration {
		return nil, validationError("1 validation error detected: Value '%d' at 'durationSeconds' failed to satisfy constraint: Member must have value less than or equal to %d", *d, maxRequestDuration)
	}
	if b.RoleSessionName != nil {
		req.RoleSessionName = *b.RoleSessionName
	}
	if b.RoleSessionName != nil && !rolesanywhere.ValidSessionName(req.RoleSessionName) {
		return nil, validationError("1 validation error detected: Value '%s' at 'roleSessionName' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]{2,64}", truncate(req.RoleSessionName))
	}
	if len(req.InstanceProperties) > 50 {
		return nil, validationError("1 validation error detected: 'instanceProperties' has %d entries; at most 50 are allowed", len(req.InstanceProperties))
	}
	return req, nil
}

// parseQuery is url.ParseQuery without its acceptance of ';' and with
// errors that do not echo the input.
func parseQuery(raw string) (map[string][]string, error) {
	out := map[string][]string{}
	if raw == "" {
		return out, nil
	}
	for _, pair := range strings.Split(raw, "&") {
		if pair == "" {
			continue
		}
		k, v, _ := strings.Cut(pair, "=")
		key, err1 := unescape(k)
		val, err2 := unescape(v)
		if err1 != nil || err2 != nil {
			return nil, errors.New("bad percent-encoding")
		}
		out[key] = append(out[key], val)
	}
	return out, nil
}

func unescape(s string) (string, error) {
	if !strings.ContainsAny(s, "%+") {
		return s, nil
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '%':
			if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
				return "", errors.New("bad escape")
			}
			n, _ := strconv.ParseUint(s[i+1:i+3], 16, 8)
			b.WriteByte(byte(n))
			i += 2
		case '+':
			b.WriteByte(' ')
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), nil
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// createSession implements POST /sessions.
func (e *Emulator) createSession(w http.ResponseWriter, r *http.Request) {
	now := e.now()
	if r.Method != http.MethodPost {
		writeJSONError(w, &apiError{status: http.StatusMethodNotAllowed, code: "UnknownOperationException", message: "Unknown operation", rule: "CreateSession is POST /sessions, not " + truncate(r.Method)})
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		writeJSONError(w, validationError("The request body could not be read or is over %d bytes", maxBody))
		return
	}
	out, sessionName, fail := e.handleSession(r, body, now)
	if fail != nil {
		e.log.Warn("CreateSession refused", "code", fail.code, "rule", fail.rule, "message", fail.message)
		writeJSONError(w, fail)
		return
	}
	e.log.LogAttrs(r.Context(), slog.LevelInfo, "CreateSession", slog.String("role", out.CredentialSet[0].RoleArn), slog.String("session", sessionName),
		slog.String("expiration", out.CredentialSet[0].Credentials.Expiration), slog.String("sourceIdentity", out.CredentialSet[0].SourceIdentity))
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	_ = json.NewEncoder(w).Encode(out)
}

func accessDenied(message, rule string, args ...any) *apiError {
	return &apiError{status: http.StatusForbidden, code: "AccessDeniedException", message: message, rule: fmt.Sprintf(rule, args...)}
}

// untrusted is AWS's answer to every certificate problem.
const untrusted = "Untrusted Signing Certificate"

// handleSession decides a CreateSession request and returns the answer
// and the session name, or the refusal.
func (e *Emulator) handleSession(r *http.Request, body []byte, now time.Time) (*rolesanywhere.SessionResponse, string, *apiError) {
	req, fail := parseSessionRequest(r.URL.RawQuery, body)
	if fail != nil {
		return nil, "", fail
	}
	res := e.st.snapshot()
	ta := res.anchorByARN(req.TrustAnchorARN)
	if ta == nil {
		return nil, "", &apiError{status: http.StatusNotFound, code: "ResourceNotFoundException", message: "Trust anchor not found",
			rule: fmt.Sprintf("no trust anchor %s in account %s, region %s", req.TrustAnchorARN, e.st.account, e.st.region)}
	}
	profile := res.profileByARN(req.ProfileARN)
	if profile == nil {
		return nil, "", &apiError{status: http.StatusNotFound, code: "ResourceNotFoundException", message: "Profile not found",
			rule: fmt.Sprintf("no profile %s in account %s, region %s", req.ProfileARN, e.st.account, e.st.region)}
	}

	v, err := sigv4.VerifyX509(r, body, sigv4.X509VerifyOptions{Now: now, MaxSkew: e.maxSkew, Region: e.st.region, Certificates: e.certs})
	if err != nil {
		return nil, "", signatureError(err)
	}
	if len(v.Intermediates) > maxIntermediates {
		return nil, "", accessDenied(untrusted, "X-Amz-X509-Chain holds %d certificates; AWS takes at most %d (send only the intermediates between the leaf and the trust anchor)", len(v.Intermediates), maxIntermediates)
	}
	leaf := v.Certificate
	if err := pki.CheckLeaf(leaf, now); err != nil {
		return nil, "", accessDenied(untrusted, "leaf certificate serial %s: %v", leaf.SerialNumber, err)
	}
	if err := trustpolicy.CheckSubject(leaf); err != nil {
		return nil, "", accessDenied(untrusted, "leaf certificate serial %s: %v", leaf.SerialNumber, err)
	}
	verified, fail := e.verifyChain(res, ta, leaf, v.Intermediates, now)
	if fail != nil {
		return nil, "", fail
	}
	if fail := e.checkRevocation(res, ta, verified.chain); fail != nil {
		return nil, "", fail
	}
	if !ta.Enabled {
		return nil, "", accessDenied("Trust anchor is disabled", "trust anchor %s (%s) is disabled (enabled: false in the seed, or DisableTrustAnchor)", ta.Name, ta.ARN)
	}
	if !profile.Enabled {
		return nil, "", accessDenied("Profile is disabled", "profile %s (%s) is disabled (enabled: false in the seed, or DisableProfile)", profile.Name, profile.ARN)
	}
	role := res.roleByARN(req.RoleARN)
	inProfile := false
	for _, a := range profile.RoleARNs {
		inProfile = inProfile || a == req.RoleARN
	}
	if role == nil || !inProfile {
		return nil, "", accessDenied("Unable to assume role for "+req.RoleARN+".", "role %s is not in profile %s (its roles: %s)", req.RoleARN, profile.Name, strings.Join(profile.RoleARNs, ", "))
	}
	// profile.RequireInstanceProperties is kept and served but not
	// enforced: AWS's API reference calls it "Unused, saved for future
	// use".

	duration := profile.DurationSeconds
	if req.DurationSeconds != nil {
		duration = min(duration, *req.DurationSeconds)
	}

	sessionName := verified.facts.serialHex
	if req.RoleSessionName != "" {
		if !profile.AcceptRoleSessionName {
			return nil, "", accessDenied("Not authorized to set roleSessionName.", "profile %s has acceptRoleSessionName: false", profile.Name)
		}
		sessionName = req.RoleSessionName
	}

	if r := trustpolicy.Evaluate(role.TrustPolicy, trustpolicy.Session{Leaf: leaf, Prepared: verified.facts.policy, AnchorARN: ta.ARN, Account: e.st.account, Now: now,
		Mappings: policyMappings(profile.AttributeMappings)}); r != nil {
		if r.Subject != nil {
			return nil, "", accessDenied(untrusted, "leaf certificate serial %s: %v", leaf.SerialNumber, r.Subject)
		}
		if len(r.BadTags) > 0 {
			return nil, "", accessDenied("Unable to assume role for "+role.ARN+". Some attributes failed to be mapped into session tags.", "%s", strings.Join(r.BadTags, "; "))
		}
		return nil, "", accessDenied("Unable to assume role for "+role.ARN+".", "trust policy of role %s: %s: %s", role.Name, r.Decision.Effect, r.Decision.Reason)
	}
	// The smaller of the request's and the profile's durations is what
	// Roles Anywhere asks STS for; above the role's maximum, STS refuses
	// (it does not shorten the session), and Roles Anywhere relays it.
	if duration > role.MaxSessionDuration {
		from := fmt.Sprintf("profile %s's durationSeconds %d", profile.Name, profile.DurationSeconds)
		if req.DurationSeconds != nil && *req.DurationSeconds < profile.DurationSeconds {
			from = fmt.Sprintf("the request's durationSeconds %d", *req.DurationSeconds)
		}
		return nil, "", accessDenied("Unable to assume role for "+role.ARN+". The requested DurationSeconds exceeds the MaxSessionDuration set for this role.",
			"the session would last %d seconds (%s), over role %s's maxSessionDuration %d; ask for less, lower the profile's durationSeconds, or raise the role's maximum", duration, from, role.Name, role.MaxSessionDuration)
	}
	sourceIdentity := verified.facts.policy.SourceIdentity()

	packedPolicySize, fail := e.sessionPolicies(profile, role)
	if fail != nil {
		return nil, "", fail
	}
	cred, err := e.issue(role, sessionName, now.Add(time.Duration(duration)*time.Second))
	if err != nil {
		return nil, "", &apiError{status: http.StatusInternalServerError, code: "InternalServerException", message: "Internal error", rule: err.Error()}
	}
	var cs rolesanywhere.CredentialSet
	cs.AssumedRoleUser.Arn = "arn:" + e.st.partition + ":sts::" + e.st.account + ":assumed-role/" + role.Name + "/" + sessionName
	cs.AssumedRoleUser.AssumedRoleID = role.ID + ":" + sessionName
	cs.Credentials.AccessKeyID = cred.AccessKeyID
	cs.Credentials.SecretAccessKey = cred.SecretAccessKey
	cs.Credentials.SessionToken = cred.SessionToken
	cs.Credentials.Expiration = cred.Expiration.UTC().Format(time.RFC3339)
	cs.RoleArn = role.ARN
	cs.SourceIdentity = sourceIdentity
	cs.PackedPolicySize = packedPolicySize
	return &rolesanywhere.SessionResponse{
		CredentialSet: []rolesanywhere.CredentialSet{cs},
		SubjectArn:    e.subjects.record(e, verified.facts.subjectID, leaf, req.InstanceProperties, now),
	}, sessionName, nil
}

// signatureError maps an X509 signature verification failure to AWS's answer.
func signatureError(err error) *apiError {
	switch {
	case errors.Is(err, sigv4.ErrMalformed):
		return &apiError{status: http.StatusBadRequest, code: "ValidationException", message: "Invalid request", rule: err.Error()}
	case errors.Is(err, sigv4.ErrClockSkew):
		return accessDenied("Signature expired", "%v", err)
	case errors.Is(err, sigv4.ErrScope) && strings.Contains(err.Error(), "scope date"):
		return accessDenied("Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP", "%v", err)
	case errors.Is(err, sigv4.ErrScope) && strings.Contains(err.Error(), "scope service"):
		return accessDenied("Credential should be scoped to correct service: 'rolesanywhere'.", "%v", err)
	case errors.Is(err, sigv4.ErrScope):
		return accessDenied("Credential should be scoped to a valid region", "%v", err)
	default:
		return accessDenied("Invalid signature", "%v", err)
	}
}

// verifyChain checks that leaf chains, through the request's
// intermediates, to a certificate of ta's bundle, and explains the
// common ways it does not.
func (e *Emulator) verifyChain(res *resources, ta *TrustAnchor, leaf *x509.Certificate, intermediates []*x509.Certificate, now time.Time) (*cachedChain, *apiError) {
	key := chainCacheKey(ta, leaf, intermediates)
	if c, ok := e.chains.get(key, now); ok {
		return c, nil
	}
	chain, fail := e.verifyChainWithin(newSigBudget(), res, ta, leaf, intermediates, now)
	if fail != nil {
		return nil, fail
	}
	// verifyChainWithin remembered the chain with its facts.
	if c, ok := e.chains.get(key, now); ok && c.chain[0] == chain[0] {
		return c, nil
	}
	return &cachedChain{chain: chain, facts: newLeafFacts(ta, leaf)}, nil
}

// leafFacts are what a session derives from its leaf and trust anchor
// alone, kept with the verified chain so that a certificate seen again
// does not derive them again.
type leafFacts struct {
	policy    *trustpolicy.Leaf
	serialHex string
	subjectID string
}

func newLeafFacts(ta *TrustAnchor, leaf *x509.Certificate) *leafFacts {
	return &leafFacts{policy: trustpolicy.PrepareLeaf(leaf), serialHex: leaf.SerialNumber.Text(16), subjectID: subjectID(ta, leaf)}
}

// verifyChainWithin is verifyChain with the request's budget of
// signature checks for the hand verifier of ML-DSA chains, which the
// request's trust anchor and every other one it tries share.
func (e *Emulator) verifyChainWithin(b *sigBudget, res *resources, ta *TrustAnchor, leaf *x509.Certificate, intermediates []*x509.Certificate, now time.Time) ([]*x509.Certificate, *apiError) {
	key := chainCacheKey(ta, leaf, intermediates)
	if c, ok := e.chains.get(key, now); ok {
		return c.chain, nil
	}
	chain, err := verifyWith(ta, leaf, intermediates, now, b)
	if err == nil {
		e.chains.put(key, chain, newLeafFacts(ta, leaf))
		return chain, nil
	}
	// Which other anchor the leaf chains to is only a hint: it is tried
	// only for anchors with a certificate named as an issuer in the
	// request, for at most maxHintAnchors of them (crypto/x509 spends up
	// to 100 signature checks on each), and not once the budget is spent.
	for _, id := range res.anchorsIssuing(append([]*x509.Certificate{leaf}, intermediates...)) {
		if b.hintAnchors >= maxHintAnchors {
			break
		}
		if other := res.anchors[id]; other != ta && !b.exhausted() && mayIssue(other, leaf, intermediates) {
			b.hintAnchors++
			if _, err := verifyWith(other, leaf, intermediates, now, b); err == nil {
				return nil, accessDenied(untrusted, "leaf %q chains to trust anchor %s, not to %s named in the request", leaf.Subject.String(), other.Name, ta.Name)
			}
		}
	}
	issuerKnown := false
	for _, c := range append(append([]*x509.Certificate{}, intermediates...), ta.Certificates...) {
		issuerKnown = issuerKnown || bytes.Equal(c.RawSubject, leaf.RawIssuer)
	}
	if !issuerKnown {
		return nil, accessDenied(untrusted, "the leaf's issuer %q is neither in X-Amz-X509-Chain nor in trust anchor %s's bundle; send the intermediate CA with the request (credential-process --intermediates) or add it to the bundle", leaf.Issuer.String(), ta.Name)
	}
	return nil, accessDenied(untrusted, "leaf %q does not chain to trust anchor %s: %v", leaf.Subject.String(), ta.Name, err)
}

// mayIssue reports whether a certificate of ta's bundle has the name of
// the issuer of leaf or of one of the intermediates: without one, no
// chain of the request can end at ta.
func mayIssue(ta *TrustAnchor, leaf *x509.Certificate, intermediates []*x509.Certificate) bool {
	for _, root := range ta.Certificates {
		for _, c := range append([]*x509.Certificate{leaf}, intermediates...) {
			if bytes.Equal(root.RawSubject, c.RawIssuer) {
				return true
			}
		}
	}
	return false
}

// verifyWith verifies leaf's chain to ta with crypto/x509 and, when that
// fails and the leaf or an intermediate is signed with ML-DSA (which
// crypto/x509 cannot check), with the hand verifier, its signature
// checks counted against b.
func verifyWith(ta *TrustAnchor, leaf *x509.Certificate, intermediates []*x509.Certificate, now time.Time, b *sigBudget) ([]*x509.Certificate, error) {
	roots := ta.pool()
	inter := x509.NewCertPool()
	for _, c := range intermediates {
		inter.AddCert(c)
	}
	chains, err := leaf.Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: inter,
		CurrentTime:   now,
		// Roles Anywhere does not require an extended key usage.
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	// The anchor's own signatures are never checked, so only an ML-DSA
	// signature on the leaf or an intermediate calls for the hand
	// verifier, which in turn accepts only a chain with one.
	withMLDSA := signedWithMLDSA([]*x509.Certificate{leaf}, intermediates)
	if err != nil && withMLDSA {
		return verifyMLDSAChain(ta.Certificates, intermediates, leaf, now, b)
	}
	if err != nil {
		return nil, err
	}
	chain, err := properChain(chains)
	if err != nil && withMLDSA {
		// crypto/x509 found only paths the CA rules refuse; a path
		// through an ML-DSA signature, which it cannot see, may still
		// be sound.
		if mlChain, mlErr := verifyMLDSAChain(ta.Certificates, intermediates, leaf, now, b); mlErr == nil {
			return mlChain, nil
		}
	}
	return chain, err
}

// chainCache remembers chains that verified, so a runner presenting the
// same certificate for every session costs one signature check, not
// three. An entry is used only while every certificate of its chain is
// valid, which is what x509 verification checks beyond the signatures
// (the roots do not change while the emulator runs). Revocation is not
// cached: it is checked on every request.
type chainCache struct {
	mu      sync.Mutex
	entries map[[32]byte]*cachedChain
}

type cachedChain struct {
	chain               []*x509.Certificate
	facts               *leafFacts
	notBefore, notAfter time.Time
}

// maxCachedChains bounds the cache; when full it starts over.
const maxCachedChains = 4096

func chainCacheKey(ta *TrustAnchor, leaf *x509.Certificate, intermediates []*x509.Certificate) [32]byte {
	h := sha256.New()
	var n [8]byte
	write := func(b []byte) {
		binary.BigEndian.PutUint64(n[:], uint64(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	write([]byte(ta.ARN))
	write(ta.digest[:])
	write(leaf.Raw)
	for _, c := range intermediates {
		write(c.Raw)
	}
	var key [32]byte
	h.Sum(key[:0])
	return key
}

func (c *chainCache) get(key [32]byte, now time.Time) (*cachedChain, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	if !ok || now.Before(e.notBefore) || now.After(e.notAfter) {
		return nil, false
	}
	return e, true
}

func (c *chainCache) put(key [32]byte, chain []*x509.Certificate, facts *leafFacts) {
	e := &cachedChain{chain: chain, facts: facts}
	for i, cert := range chain {
		if i == 0 || cert.NotBefore.After(e.notBefore) {
			e.notBefore = cert.NotBefore
		}
		if i == 0 || cert.NotAfter.Before(e.notAfter) {
			e.notAfter = cert.NotAfter
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil || len(c.entries) >= maxCachedChains {
		c.entries = make(map[[32]byte]*cachedChain)
	}
	c.entries[key] = e
}

// checkRevocation refuses a chain with a certificate listed on one of the
// anchor's CRLs. A CRL applies to a certificate when it was issued, and
// verifiably signed, by that certificate's issuer in the chain.
func (e *Emulator) checkRevocation(res *resources, ta *TrustAnchor, chain []*x509.Certificate) *apiError {
	crls := res.crlsFor(ta.ARN)
	for i := 0; i+1 < len(chain); i++ {
		cert, issuer := chain[i], chain[i+1]
		for _, crl := range crls {
			if !crl.Enabled || !crl.revoked[cert.SerialNumber.String()] || !bytes.Equal(crl.List.RawIssuer, issuer.RawSubject) {
				continue
			}
			if !e.crlSignedBy(crl, issuer) {
				e.log.Warn("CRL ignored: its signature does not verify with the issuer in the chain", "crl", crl.Source, "issuer", issuer.Subject.String())
				continue
			}
			return accessDenied(untrusted, "certificate %q serial %s is revoked by CRL %s of trust anchor %s", cert.Subject.String(), cert.SerialNumber, crl.Source, ta.Name)
		}
	}
	return nil
}

func (e *Emulator) crlSignedBy(crl *CRL, issuer *x509.Certificate) bool {
	// Keyed by content, not by the *CRL: every Enable/Disable/UpdateCrl
	// makes a new object, which must neither miss nor pin old entries.
	key := crlCheckKey{crl: sha256.Sum256(crl.List.Raw), issuer: sha256.Sum256(issuer.Raw)}
	if ok, found := e.crlChecks.get(key); found {
		return ok
	}
	ok := checkCRLSignature(crl.List, issuer) == nil
	e.crlChecks.put(key, ok)
	return ok
}

type crlCheckKey struct{ crl, issuer [32]byte }

// crlCheckCache remembers CRL signature checks, at most maxCRLChecks of
// them; when full it starts over.
type crlCheckCache struct {
	mu sync.Mutex
	m  map[crlCheckKey]bool
}

const maxCRLChecks = 4096

func (c *crlCheckCache) get(k crlCheckKey) (bool, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ok, found := c.m[k]
	return ok, found
}

func (c *crlCheckCache) put(k crlCheckKey, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= maxCRLChecks {
		c.m = map[crlCheckKey]bool{}
	}
	c.m[k] = ok
}

// subjectID is the id of the Roles Anywhere subject for a certificate:
// stable for one subject under one trust anchor, as AWS's subjects are.
func subjectID(ta *TrustAnchor, leaf *x509.Certificate) string {
	h := sha256.New()
	h.Write([]byte(ta.ID))
	h.Write(leaf.RawIssuer)
	h.Write(leaf.RawSubject)
	b := h.Sum(nil)[:16]
	b[6] = b[6]&0x0f | 0x50
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// policyMappings gives a profile's attribute mappings to the trust
// policy's evaluation. A profile always has mappings (AWS's defaults
// until changed), so an empty list maps nothing.
func policyMappings(ms []AttributeMapping) []trustpolicy.Mapping {
	out := make([]trustpolicy.Mapping, 0, len(ms))
	for _, m := range ms {
		pm := trustpolicy.Mapping{Field: m.CertificateField}
		for _, r := range m.MappingRules {
			pm.Specifiers = append(pm.Specifiers, r.Specifier)
		}
		out = append(out, pm)
	}
	return out
}

// issue makes and remembers a fresh set of temporary credentials.
func (e *Emulator) issue(role *Role, sessionName string, expiration time.Time) (*credential, error) {
	var raw [10 + 30 + 240]byte
	if _, err := io.ReadFull(e.rand, raw[:]); err != nil {
		return nil, fmt.Errorf("generating credentials: %w", err)
	}
	c := &credential{
		// ASIA marks temporary credentials, as STS's do; 16 base32
		// characters follow, as in AWS's access key ids.
		AccessKeyID:     "ASIA" + base32Upper(raw[:10]),
		SecretAccessKey: base64.StdEncoding.EncodeToString(raw[10:40]),
		SessionToken:    base64.StdEncoding.EncodeToString(raw[40:]),
		Expiration:      expiration.Truncate(time.Second),
		Role:            role,
		SessionName:     sessionName,
	}
	if n := e.creds.add(c, e.now()); n > 0 {
		e.log.Warn("credential store full: forgot the credentials closest to expiry", "forgotten", n)
	}
	return c, nil
}

func base32Upper(b []byte) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	out := make([]byte, 0, len(b)*8/5)
	var acc, bits uint
	for _, c := range b {
		acc = acc<<8 | uint(c)
		bits += 8
		for bits >= 5 {
			out = append(out, alphabet[(acc>>(bits-5))&31])
			bits -= 5
		}
	}
	return string(out)
}
