package emulator

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/keyless-dev/keyless/internal/iampolicy"
	"github.com/keyless-dev/keyless/internal/pki"
	"github.com/keyless-dev/keyless/internal/rolesanywhere"
	"github.com/keyless-dev/keyless/internal/sigv4"
)

// Session request limits, per the Roles Anywhere API.
const (
	minRequestDuration = 900
	maxRequestDuration = 43200
	// maxIntermediates bounds the chain work one request can cause; real
	// PKIs have one or two intermediates (AWS does not publish its limit).
	maxIntermediates = 10
)

// rolesAnywherePrincipal is the service principal a role's trust policy
// must allow.
var rolesAnywherePrincipal = iampolicy.Principal{Type: "Service", ID: "rolesanywhere.amazonaws.com"}

// trustActions are what Roles Anywhere does with the role: assume it, tag
// the session with the certificate's attributes, and set the source
// identity. The trust policy must allow all three.
var trustActions = []string{"sts:AssumeRole", "sts:TagSession", "sts:SetSourceIdentity"}

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
	DurationSeconds    *int
	RoleSessionName    *string
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
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&fields); err != nil {
		return nil, serialization("%s", truncate(err.Error()))
	}
	if dec.More() {
		return nil, serialization("data after the JSON object")
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
	switch {
	case b.RoleSessionName != nil:
		req.RoleSessionName = *b.RoleSessionName
	case b.SessionName != nil: // the deprecated spelling
		req.RoleSessionName = *b.SessionName
	}
	if (b.RoleSessionName != nil || b.SessionName != nil) && !rolesanywhere.ValidSessionName(req.RoleSessionName) {
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
	e.log.Info("CreateSession", "role", out.CredentialSet[0].RoleArn, "session", sessionName,
		"expiration", out.CredentialSet[0].Credentials.Expiration, "sourceIdentity", out.CredentialSet[0].SourceIdentity)
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

	v, err := sigv4.VerifyX509(r, body, sigv4.X509VerifyOptions{Now: now, MaxSkew: e.maxSkew, Region: e.st.region})
	if err != nil {
		return nil, "", signatureError(err)
	}
	if len(v.Intermediates) > maxIntermediates {
		return nil, "", validationError("X-Amz-X509-Chain holds %d certificates; at most %d are accepted", len(v.Intermediates), maxIntermediates)
	}
	leaf := v.Certificate
	if err := pki.CheckLeaf(leaf, now); err != nil {
		return nil, "", accessDenied(untrusted, "leaf certificate serial %s: %v", leaf.SerialNumber, err)
	}
	chain, fail := e.verifyChain(res, ta, leaf, v.Intermediates, now)
	if fail != nil {
		return nil, "", fail
	}
	if fail := e.checkRevocation(res, ta, chain); fail != nil {
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
	if profile.RequireInstanceProperties && len(req.InstanceProperties) == 0 {
		return nil, "", accessDenied("Instance properties are required", "profile %s has requireInstanceProperties: true and the request has no instanceProperties", profile.Name)
	}

	duration := profile.DurationSeconds
	if req.DurationSeconds != nil {
		duration = min(duration, *req.DurationSeconds)
	}
	duration = min(duration, role.MaxSessionDuration)

	sessionName := leaf.SerialNumber.Text(16)
	if req.RoleSessionName != "" {
		if !profile.AcceptRoleSessionName {
			return nil, "", accessDenied("Not authorized to set roleSessionName.", "profile %s has acceptRoleSessionName: false", profile.Name)
		}
		sessionName = req.RoleSessionName
	}

	tags, bad := checkTags(mapAttributes(certificateAttributes(leaf), profile.AttributeMappings))
	if len(bad) > 0 {
		return nil, "", accessDenied("Unable to assume role for "+role.ARN+". Some attributes failed to be mapped into session tags.", "%s", strings.Join(bad, "; "))
	}
	sourceIdentity := ""
	if cn := leaf.Subject.CommonName; cn != "" {
		sourceIdentity = "CN=" + cn
	}
	ctx := trustContext(ta.ARN, e.st.account, tags, sourceIdentity, now)
	for _, action := range trustActions {
		d := role.TrustPolicy.Evaluate(iampolicy.Request{Principal: rolesAnywherePrincipal, Action: action, Context: ctx})
		if !d.Allowed() {
			return nil, "", accessDenied("Unable to assume role for "+role.ARN+".", "trust policy of role %s: %s: %s", role.Name, d.Effect, d.Reason)
		}
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
	return &rolesanywhere.SessionResponse{
		CredentialSet: []rolesanywhere.CredentialSet{cs},
		SubjectArn:    e.subjects.record(e, ta, leaf, cs, req.InstanceProperties, now),
	}, sessionName, nil
}

// trustContext is the request context against which a role's trust
// policy is evaluated for a session: the keys AWS documents as present
// when Roles Anywhere assumes a role, and no others, so that a condition
// on a key AWS would not send does not match here either. Each key's
// source:
//
//   - aws:PrincipalTag/x509Subject/<attr>, x509Issuer/<attr>, x509SAN/DNS,
//     x509SAN/URI, x509SAN/Name/<attr>: the certificate's attributes under
//     the default attribute mapping (tags; reference roles-anywhere.md §4,
//     Roles Anywhere user guide "Certificate attribute mapping").
//   - aws:SourceArn (the trust anchor's ARN) and aws:SourceAccount
//     (roles-anywhere.md §4; IAM global condition keys: present when an
//     AWS service principal calls on a resource owner's behalf).
//   - sts:SourceIdentity: the source identity Roles Anywhere sets, the
//     subject's CN as the answer's sourceIdentity carries it, "CN=<cn>"
//     (roles-anywhere.md §2 and §3; user guide "Trust model": the key "is
//     present in the request when IAM Roles Anywhere initially sets the
//     source identity"). Absent when the subject has no CN, as
//     sourceIdentity is. The CreateSession body cannot set it: the API
//     has no such field, and unknown keys are ignored.
//   - aws:CurrentTime (ISO 8601, UTC, to the second) and aws:EpochTime
//     (seconds since 1970-01-01): now, from the emulator's clock (IAM
//     global condition keys: always present; Date, and Date or Numeric).
//   - aws:SecureTransport "true" (IAM: always present): AWS's Roles
//     Anywhere and STS endpoints answer only over TLS, so the value does
//     not follow the emulator's own transport.
//   - aws:PrincipalIsAWSService "true" and aws:PrincipalServiceName
//     "rolesanywhere.amazonaws.com": the caller of sts:AssumeRole is the
//     service principal (IAM global condition keys: present in a request
//     an AWS service principal makes).
//
// Left out on purpose: aws:SourceIp and aws:VpcSourceIp (on AWS the call
// to STS comes from the service, never from the client, and the
// emulator cannot know the service's address), aws:RequestedRegion (the
// region of Roles Anywhere's STS call is not documented),
// aws:TokenIssueTime (only in requests signed with temporary
// credentials), aws:PrincipalArn, aws:PrincipalAccount, aws:userid and
// aws:username (properties of AWS principals, not of a service
// principal), sts:RoleSessionName and aws:RequestTag/aws:TagKeys (not
// documented for Roles Anywhere), aws:SourceOrgID and
// aws:SourceOrgPaths (AWS Organizations, which the emulator does not
// model) and aws:OriginIdentity/* (trusted identity propagation, a
// profile setting the seed does not have).
func trustContext(anchorARN, account string, tags map[string]string, sourceIdentity string, now time.Time) map[string][]string {
	now = now.UTC()
	ctx := map[string][]string{
		"aws:SourceArn":             {anchorARN},
		"aws:SourceAccount":         {account},
		"aws:CurrentTime":           {now.Format("2006-01-02T15:04:05Z")},
		"aws:EpochTime":             {strconv.FormatInt(now.Unix(), 10)},
		"aws:SecureTransport":       {"true"},
		"aws:PrincipalIsAWSService": {"true"},
		"aws:PrincipalServiceName":  {rolesAnywherePrincipal.ID},
	}
	if sourceIdentity != "" {
		ctx["sts:SourceIdentity"] = []string{sourceIdentity}
	}
	for k, v := range tags {
		ctx["aws:PrincipalTag/"+k] = []string{v}
	}
	return ctx
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
func (e *Emulator) verifyChain(res *resources, ta *TrustAnchor, leaf *x509.Certificate, intermediates []*x509.Certificate, now time.Time) ([]*x509.Certificate, *apiError) {
	key := chainCacheKey(ta, leaf, intermediates)
	if chain, ok := e.chains.get(key, now); ok {
		return chain, nil
	}
	chain, err := verifyWith(ta, leaf, intermediates, now)
	if err == nil {
		e.chains.put(key, chain)
		return chain, nil
	}
	for _, id := range sortedKeys(res.anchors) {
		if other := res.anchors[id]; other != ta {
			if _, err := verifyWith(other, leaf, intermediates, now); err == nil {
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

func verifyWith(ta *TrustAnchor, leaf *x509.Certificate, intermediates []*x509.Certificate, now time.Time) ([]*x509.Certificate, error) {
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
	if err != nil {
		return nil, err
	}
	return chains[0], nil
}

// chainCache remembers chains that verified, so a runner presenting the
// same certificate for every session costs one signature check, not
// three. An entry is used only while every certificate of its chain is
// valid, which is what x509 verification checks beyond the signatures
// (the roots do not change while the emulator runs). Revocation is not
// cached: it is checked on every request.
type chainCache struct {
	mu      sync.Mutex
	entries map[[32]byte]cachedChain
}

type cachedChain struct {
	chain               []*x509.Certificate
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

func (c *chainCache) get(key [32]byte, now time.Time) ([]*x509.Certificate, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	if !ok || now.Before(e.notBefore) || now.After(e.notAfter) {
		return nil, false
	}
	return e.chain, true
}

func (c *chainCache) put(key [32]byte, chain []*x509.Certificate) {
	e := cachedChain{chain: chain}
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
		c.entries = make(map[[32]byte]cachedChain)
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
	key := struct {
		crl    *CRL
		issuer [32]byte
	}{crl, sha256.Sum256(issuer.Raw)}
	if ok, found := e.crlChecks.Load(key); found {
		return ok.(bool)
	}
	ok := crl.List.CheckSignatureFrom(issuer) == nil
	e.crlChecks.Store(key, ok)
	return ok
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

// attributeNames names the RDN types of the default attribute mapping.
var attributeNames = map[string]string{
	"2.5.4.3":                    "CN",
	"2.5.4.6":                    "C",
	"2.5.4.7":                    "L",
	"2.5.4.8":                    "ST",
	"2.5.4.10":                   "O",
	"2.5.4.11":                   "OU",
	"2.5.4.5":                    "serialNumber",
	"2.5.4.9":                    "street",
	"2.5.4.17":                   "postalCode",
	"2.5.4.12":                   "title",
	"2.5.4.4":                    "SN",
	"2.5.4.42":                   "GN",
	"1.2.840.113549.1.9.1":       "emailAddress",
	"0.9.2342.19200300.100.1.25": "DC",
	"0.9.2342.19200300.100.1.1":  "UID",
}

// principalTags applies the default attribute mapping (reference §4):
// every subject and issuer RDN, and the first DNS, URI and directory-name
// SAN (x509SAN/DNS, x509SAN/URI, x509SAN/Name/<attr>). A repeated RDN's values are joined with "/" (unconfirmed against
// AWS). It also returns the attributes that are not valid session tag
// values, which AWS refuses.
func principalTags(leaf *x509.Certificate) (map[string]string, []string) {
	return checkTags(certificateAttributes(leaf))
}

// certificateAttributes returns every attribute of leaf that a mapping
// can name, keyed as session tags are ("x509Subject/CN").
func certificateAttributes(leaf *x509.Certificate) map[string]string {
	tags := map[string]string{}
	add := func(key, value string) {
		if prev, ok := tags[key]; ok {
			value = prev + "/" + value
		}
		tags[key] = value
	}
	for _, rdn := range leaf.Subject.Names {
		add("x509Subject/"+attributeName(rdn.Type), fmt.Sprint(rdn.Value))
	}
	for _, rdn := range leaf.Issuer.Names {
		add("x509Issuer/"+attributeName(rdn.Type), fmt.Sprint(rdn.Value))
	}
	if len(leaf.DNSNames) > 0 {
		tags["x509SAN/DNS"] = leaf.DNSNames[0]
	}
	if len(leaf.URIs) > 0 {
		tags["x509SAN/URI"] = leaf.URIs[0].String()
	}
	if name, ok := firstDirectoryName(leaf); ok {
		for _, rdn := range name {
			for _, atv := range rdn {
				add("x509SAN/Name/"+attributeName(atv.Type), fmt.Sprint(atv.Value))
			}
		}
	}
	return tags
}

// checkTags returns tags and the ones that are not valid session tag
// values, which AWS refuses.
func checkTags(tags map[string]string) (map[string]string, []string) {
	var bad []string
	for _, k := range sortedKeys(tags) {
		if !validTagValue(tags[k]) {
			bad = append(bad, fmt.Sprintf("%s %q is not a valid session tag value (at most 256 letters, digits, spaces and _.:/=+-@)", k, truncate(tags[k])))
		}
	}
	return tags, bad
}

// mapAttributes keeps the attributes a profile's attribute mappings
// name: for x509Subject and x509Issuer an RDN name or "*" (all); for
// x509SAN "DNS", "URI", "Name/<attr>" or "Name/*" (user guide,
// "Certificate attribute mapping"). Only the attributes kept become
// session tags, and only they must be valid tag values.
func mapAttributes(attrs map[string]string, mappings []AttributeMapping) map[string]string {
	out := map[string]string{}
	for k, v := range attrs {
		field, spec, _ := strings.Cut(k, "/")
		for _, m := range mappings {
			if m.CertificateField != field {
				continue
			}
			for _, r := range m.MappingRules {
				if r.Specifier == spec || (field != "x509SAN" && r.Specifier == "*") ||
					(field == "x509SAN" && r.Specifier == "Name/*" && strings.HasPrefix(spec, "Name/")) {
					out[k] = v
				}
			}
		}
	}
	return out
}

var oidSubjectAltName = asn1.ObjectIdentifier{2, 5, 29, 17}

// firstDirectoryName returns the first directoryName of the leaf's
// subjectAltName, which Go's parser does not expose.
func firstDirectoryName(leaf *x509.Certificate) (pkix.RDNSequence, bool) {
	for _, ext := range leaf.Extensions {
		if !ext.Id.Equal(oidSubjectAltName) {
			continue
		}
		var seq asn1.RawValue
		if rest, err := asn1.Unmarshal(ext.Value, &seq); err != nil || len(rest) > 0 || seq.Tag != asn1.TagSequence {
			return nil, false
		}
		for inner := seq.Bytes; len(inner) > 0; {
			var gn asn1.RawValue
			var err error
			if inner, err = asn1.Unmarshal(inner, &gn); err != nil {
				return nil, false
			}
			// directoryName is [4], explicitly tagged (Name is a CHOICE).
			if gn.Class == asn1.ClassContextSpecific && gn.Tag == 4 {
				var name pkix.RDNSequence
				if rest, err := asn1.Unmarshal(gn.Bytes, &name); err == nil && len(rest) == 0 {
					return name, true
				}
				return nil, false
			}
		}
	}
	return nil, false
}

func attributeName(oid asn1.ObjectIdentifier) string {
	if n, ok := attributeNames[oid.String()]; ok {
		return n
	}
	return oid.String()
}

func validTagValue(s string) bool {
	if len([]rune(s)) > 256 {
		return false
	}
	for _, r := range s {
		if !(unicode.IsLetter(r) || unicode.IsNumber(r) || unicode.Is(unicode.Z, r) || strings.ContainsRune("_.:/=+-@", r)) {
			return false
		}
	}
	return true
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
