// Package sigv4 signs and verifies AWS Signature Version 4 requests in
// both of the forms keyless meets:
//
//   - AWS4-HMAC-SHA256, the standard form, keyed with a secret access key:
//     what the AWS CLI and SDKs send to STS (and to IAM and the Roles
//     Anywhere control plane), and what keyless dev signs its own STS call
//     with;
//   - AWS4-X509-RSA-SHA256 and AWS4-X509-ECDSA-SHA256, IAM Roles
//     Anywhere's form, signed with the private key of an X.509 certificate
//     that travels in the X-Amz-X509 header: what CreateSession takes.
//     Its output is byte-identical to AWS's own credential helper (v1.4.0),
//     which the interop tests check.
//
// Both forms share one Authorization parser, one canonical request and
// one string to sign; they differ only in the key. The package does
// nothing else: no HTTP round trips, no policy, and no trust decision
// beyond "this key made this signature". Any keyless package may import
// it.
package sigv4

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Algorithms.
const (
	AlgorithmHMAC  = "AWS4-HMAC-SHA256"
	AlgorithmRSA   = "AWS4-X509-RSA-SHA256"
	AlgorithmECDSA = "AWS4-X509-ECDSA-SHA256"
)

// X509Algorithms are the Roles Anywhere algorithms.
var X509Algorithms = []string{AlgorithmRSA, AlgorithmECDSA, AlgorithmMLDSA}

// Names and formats shared by both forms.
const (
	// TimeFormat is the X-Amz-Date layout.
	TimeFormat = "20060102T150405Z"

	HeaderDate          = "X-Amz-Date"
	HeaderSecurityToken = "X-Amz-Security-Token"
	HeaderX509          = "X-Amz-X509"
	HeaderChain         = "X-Amz-X509-Chain"

	// DefaultMaxSkew is the clock-skew window a verifier allows unless
	// told otherwise.
	DefaultMaxSkew = 5 * time.Minute
)

// Verification errors. Each says which rule failed, so a server can tell
// the client (and its log) exactly why a request was refused; the more
// specific ones wrap the general ones (ErrDate is an ErrMalformed,
// ErrScopeRegion an ErrScope).
var (
	// ErrNoAuthorization means the request carries no Authorization
	// header at all.
	ErrNoAuthorization = errors.New("no Authorization header")
	// ErrMalformed means a header is missing or does not parse.
	ErrMalformed = errors.New(msgMalformed)
	// ErrDate means X-Amz-Date is missing or not YYYYMMDDTHHMMSSZ.
	ErrDate error = &wrapped{msgMalformed + ": bad " + HeaderDate, ErrMalformed}
	// ErrHeaderMissing means a header named in SignedHeaders is not in
	// the request.
	ErrHeaderMissing error = &wrapped{msgMalformed + ": signed header missing", ErrMalformed}
	// ErrQuery means the query string does not parse.
	ErrQuery error = &wrapped{msgMalformed + ": bad query string", ErrMalformed}
	// ErrSignedHeaders means a header that must be signed is not.
	ErrSignedHeaders = errors.New("required header not signed")
	// ErrSerialMismatch means the Credential serial is not the
	// certificate's serial (X509 form).
	ErrSerialMismatch = errors.New("credential serial does not match the certificate")
	// ErrScope means the credential scope disagrees with the request.
	ErrScope = errors.New(msgScope)
	// ErrScopeDate means the scope's date is not X-Amz-Date's.
	ErrScopeDate error = &wrapped{msgScope + ": date", ErrScope}
	// ErrScopeService means the scope names another service.
	ErrScopeService error = &wrapped{msgScope + ": service", ErrScope}
	// ErrScopeRegion means the scope names a region the verifier does
	// not serve.
	ErrScopeRegion error = &wrapped{msgScope + ": region", ErrScope}
	// ErrClockSkew means X-Amz-Date is too far from the verifier's clock.
	ErrClockSkew = errors.New("request date outside the allowed clock skew")
	// ErrSignature means the signature does not verify.
	ErrSignature = errors.New("signature does not verify")
)

const (
	msgMalformed = "malformed SigV4 request"
	msgScope     = "credential scope mismatch"
)

// wrapped is a verification error that is also the more general one it
// wraps: what fmt.Errorf("%w: ...") makes, as a static value rather than
// fmt run in every keyless command's package init.
type wrapped struct {
	msg string
	err error
}

func (e *wrapped) Error() string { return e.msg }
func (e *wrapped) Unwrap() error { return e.err }

// Authorization is a parsed Authorization header.
type Authorization struct {
	Algorithm string
	// Credential is the access key id (HMAC form) or the certificate's
	// decimal serial number (X509 form).
	Credential    string
	Day           string // YYYYMMDD
	Region        string
	Service       string
	SignedHeaders []string
	Signature     []byte
}

// ParseAuthorization parses "<algorithm> Credential=<id>/<day>/<region>/
// <service>/aws4_request, SignedHeaders=<a;b>, Signature=<hex>" for one of
// algorithms (any of them when none is given). SignedHeaders must be
// lower-case, sorted and unique; an X509 credential must be a decimal
// serial without leading zeros; an HMAC signature must be 32 bytes.
func ParseAuthorization(s string, algorithms ...string) (*Authorization, error) {
	if len(algorithms) == 0 {
		algorithms = append([]string{AlgorithmHMAC}, X509Algorithms...)
	}
	alg, rest, ok := strings.Cut(s, " ")
	if !ok {
		return nil, fmt.Errorf("%w: Authorization has no credentials after the algorithm", ErrMalformed)
	}
	if !slices.Contains(algorithms, alg) {
		return nil, fmt.Errorf("%w: unknown algorithm %q (want %s)", ErrMalformed, truncate(alg), strings.Join(algorithms, " or "))
	}
	a := &Authorization{Algorithm: alg}
	// seen marks Credential, SignedHeaders and Signature (an unknown
	// component is refused at once).
	var seen [3]bool
	for part := range strings.SplitSeq(rest, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		i := slices.Index(authorizationComponents[:], k)
		if !ok || (i >= 0 && seen[i]) {
			return nil, fmt.Errorf("%w: Authorization component %q", ErrMalformed, truncate(part))
		}
		if i >= 0 {
			seen[i] = true
		}
		switch k {
		case "Credential":
			fields := strings.Split(v, "/")
			if len(fields) != 5 || fields[4] != "aws4_request" || fields[0] == "" {
				return nil, fmt.Errorf("%w: Credential must be id/date/region/service/aws4_request", ErrMalformed)
			}
			if alg != AlgorithmHMAC && !isDecimal(fields[0]) {
				return nil, fmt.Errorf("%w: Credential serial %q is not a decimal number", ErrMalformed, truncate(fields[0]))
			}
			a.Credential, a.Day, a.Region, a.Service = fields[0], fields[1], fields[2], fields[3]
		case "SignedHeaders":
			a.SignedHeaders = strings.Split(v, ";")
			for i, h := range a.SignedHeaders {
				if h == "" || h != strings.ToLower(h) || (i > 0 && a.SignedHeaders[i-1] >= h) {
					return nil, fmt.Errorf("%w: SignedHeaders must be lower-case, sorted and unique", ErrMalformed)
				}
			}
		case "Signature":
			sig, err := hex.DecodeString(v)
			if err != nil || len(sig) == 0 || (alg == AlgorithmHMAC && len(sig) != sha256.Size) {
				return nil, fmt.Errorf("%w: Signature is not hex of the right length", ErrMalformed)
			}
			a.Signature = sig
		default:
			return nil, fmt.Errorf("%w: unknown Authorization component %q", ErrMalformed, truncate(k))
		}
	}
	if !seen[0] || !seen[1] || !seen[2] {
		return nil, fmt.Errorf("%w: Authorization needs Credential, SignedHeaders and Signature", ErrMalformed)
	}
	return a, nil
}

var authorizationComponents = [3]string{"Credential", "SignedHeaders", "Signature"}

// String formats the header (with the signature hex-encoded).
func (a *Authorization) String() string {
	b := make([]byte, 0, 128+len(a.Credential)+len(a.Region)+len(a.Service)+16*len(a.SignedHeaders)+2*len(a.Signature))
	b = append(b, a.Algorithm...)
	b = append(b, " Credential="...)
	b = append(b, a.Credential...)
	b = append(b, '/')
	b = append(b, Scope(a.Day, a.Region, a.Service)...)
	b = append(b, ", SignedHeaders="...)
	for i, h := range a.SignedHeaders {
		if i > 0 {
			b = append(b, ';')
		}
		b = append(b, h...)
	}
	b = append(b, ", Signature="...)
	b = hex.AppendEncode(b, a.Signature)
	return string(b)
}

// Scope returns the credential scope for a YYYYMMDD day, region and
// service.
func Scope(day, region, service string) string {
	return day + "/" + region + "/" + service + "/aws4_request"
}

// PayloadHash returns the lowercase hex SHA-256 of body.
func PayloadHash(body []byte) string {
	sum := sha256.Sum256(body)
	return hex.EncodeToString(sum[:])
}

// StringToSign joins the algorithm, date, scope and the hex SHA-256 of the
// canonical request, one per line.
func StringToSign(algorithm, date, scope, canonicalRequest string) string {
	return stringToSign(algorithm, date, scope, sha256.Sum256([]byte(canonicalRequest)))
}

// stringToSign is StringToSign given the canonical request's digest.
func stringToSign(algorithm, date, scope string, digest [sha256.Size]byte) string {
	b := make([]byte, 0, len(algorithm)+len(date)+len(scope)+3+2*sha256.Size)
	b = append(b, algorithm...)
	b = append(b, '\n')
	b = append(b, date...)
	b = append(b, '\n')
	b = append(b, scope...)
	b = append(b, '\n')
	b = hex.AppendEncode(b, digest[:])
	return string(b)
}

// Rules are the canonicalisation rules of a form. They agree on every
// request keyless sends; they differ where the peers that define each form
// differ, and each verifier must accept what its peers sign.
type Rules int

const (
	// SDKRules are the AWS SDKs' (v2) and the SigV4 documentation's: the
	// query sorted by encoded key, then encoded value; each header value
	// trimmed of white space and its inner runs of spaces collapsed, then
	// the values joined by ",". The HMAC form uses them.
	SDKRules Rules = iota
	// HelperRules are AWS's credential helper's (the AWS SDK for Go v1's):
	// the query as url.Values encodes it (sorted by decoded key, a
	// repeated key's values in the order given); a header's values joined
	// by ",", then the line trimmed of spaces and its runs of spaces
	// collapsed. The X509 form uses them, so its output stays byte for
	// byte the helper's.
	HelperRules
)

// CanonicalRequest builds the canonical request (no trailing newline) for
// the signed header names, which must be lower-case and sorted. uri is the
// canonical URI (CanonicalURI for standard SigV4). The host header's value
// is host; every other value comes from header.
func (r Rules) CanonicalRequest(method, uri, rawQuery string, header http.Header, host string, signed []string, payloadHash string) (string, error) {
	b, err := r.appendCanonicalRequest(nil, method, uri, rawQuery, header, host, signed, payloadHash)
	return string(b), err
}

// canonicalBuffers recycles the buffers canonicalRequestDigest builds
// the canonical request in (a CreateSession request's is 2 KB or more:
// it holds the certificates).
var canonicalBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// canonicalRequestDigest is the SHA-256 of CanonicalRequest's result,
// which is all a string to sign needs, without keeping the request.
func (r Rules) canonicalRequestDigest(method, uri, rawQuery string, header http.Header, host string, signed []string, payloadHash string) ([sha256.Size]byte, error) {
	bp := canonicalBuffers.Get().(*[]byte)
	defer canonicalBuffers.Put(bp)
	b, err := r.appendCanonicalRequest((*bp)[:0], method, uri, rawQuery, header, host, signed, payloadHash)
	*bp = b
	if err != nil {
		return [sha256.Size]byte{}, err
	}
	return sha256.Sum256(b), nil
}

func (r Rules) appendCanonicalRequest(b []byte, method, uri, rawQuery string, header http.Header, host string, signed []string, payloadHash string) ([]byte, error) {
	query, err := r.CanonicalQuery(rawQuery)
	if err != nil {
		return nil, err
	}
	for _, part := range []string{method, uri, query} {
		b = append(b, part...)
		b = append(b, '\n')
	}
	// A request's few headers are searched for each signed name; many
	// headers are lower-cased into a map once, so that a request with
	// thousands of signed headers costs linear, not quadratic, time.
	var lower map[string][]string
	if len(header) > maxScannedHeaders {
		lower = make(map[string][]string, len(header))
		for k, v := range header {
			l := strings.ToLower(k)
			lower[l] = append(lower[l], v...)
		}
	}
	for _, name := range signed {
		b = append(b, name...)
		b = append(b, ':')
		switch {
		case name == "host":
			b = append(b, r.headerValue([]string{host})...)
		case lower != nil:
			b = append(b, r.headerValue(lower[name])...)
		default:
			b = append(b, r.headerValue(headerValues(header, name))...)
		}
		b = append(b, '\n')
	}
	b = append(b, '\n')
	for i, name := range signed {
		if i > 0 {
			b = append(b, ';')
		}
		b = append(b, name...)
	}
	b = append(b, '\n')
	b = append(b, payloadHash...)
	return b, nil
}

// maxScannedHeaders is the most headers appendCanonicalRequest searches
// for each signed name rather than index.
const maxScannedHeaders = 16

// headerValues returns the values of every key of header whose
// lower-case form is name (lower-case), in the order the map gives them:
// a header set by hand may hold one name under several spellings.
func headerValues(header http.Header, name string) []string {
	var out []string
	found := 0
	for k, v := range header {
		if !lowerEquals(k, name) {
			continue
		}
		found++
		if found == 1 {
			out = v
			continue
		}
		if found == 2 {
			out = append([]string(nil), out...)
		}
		out = append(out, v...)
	}
	return out
}

// lowerEquals reports whether strings.ToLower(k) == lower, without
// allocating when k is ASCII (every header name from the wire is).
func lowerEquals(k, lower string) bool {
	for i := 0; i < len(k); i++ {
		if k[i] >= utf8.RuneSelf {
			return strings.ToLower(k) == lower
		}
	}
	if len(k) != len(lower) {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// headerValue is a header's values as a canonical header line holds them.
func (r Rules) headerValue(values []string) string {
	if r == HelperRules {
		return collapseSpaces(strings.Join(values, ","))
	}
	if len(values) == 1 {
		return strings.TrimSpace(collapseSpaces(values[0]))
	}
	clean := make([]string, len(values))
	for i, v := range values {
		clean[i] = strings.TrimSpace(collapseSpaces(v))
	}
	return strings.Join(clean, ",")
}

// CanonicalQuery returns the query's parameters percent-encoded as SigV4
// wants (unreserved characters as they are, space as %20, never +), in
// the rules' order.
func (r Rules) CanonicalQuery(rawQuery string) (string, error) {
	if rawQuery == "" {
		return "", nil
	}
	if r == HelperRules && helperCanonical(rawQuery) {
		return rawQuery, nil
	}
	values, err := url.ParseQuery(rawQuery)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrQuery, err)
	}
	if r == HelperRules {
		return strings.ReplaceAll(values.Encode(), "+", "%20"), nil
	}
	escape := func(s string) string { return strings.ReplaceAll(url.QueryEscape(s), "+", "%20") }
	params := make([][2]string, 0, len(values))
	for k, vs := range values {
		for _, v := range vs {
			params = append(params, [2]string{escape(k), escape(v)})
		}
	}
	slices.SortFunc(params, func(a, b [2]string) int {
		if c := strings.Compare(a[0], b[0]); c != 0 {
			return c
		}
		return strings.Compare(a[1], b[1])
	})
	var b strings.Builder
	b.Grow(len(rawQuery) + 16)
	for i, p := range params {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(p[0])
		b.WriteByte('=')
		b.WriteString(p[1])
	}
	return b.String(), nil
}

// helperCanonical reports whether rawQuery is already what
// HelperRules.CanonicalQuery makes of it, as a query its own signer
// (url.Values.Encode) wrote is: key=value pairs, keys of unreserved
// characters in sorted order, values of unreserved characters and
// upper-case %XX escapes of bytes that are not unreserved. Anything
// else takes the general path, and so does a query of more than
// maxFastQueryParams parameters (CreateSession's has four), so that
// url.ParseQuery's own limits (10,000 parameters in Go 1.26) refuse
// what they refuse on both paths.
func helperCanonical(rawQuery string) bool {
	if strings.Count(rawQuery, "&") >= maxFastQueryParams {
		return false
	}
	prevKey := ""
	for pair := range strings.SplitSeq(rawQuery, "&") {
		k, v, ok := strings.Cut(pair, "=")
		if !ok || k == "" || k < prevKey {
			return false
		}
		prevKey = k
		for i := 0; i < len(k); i++ {
			if !unreserved(k[i]) {
				return false
			}
		}
		for i := 0; i < len(v); i++ {
			c := v[i]
			if unreserved(c) {
				continue
			}
			if c != '%' || i+2 >= len(v) || !upperHex(v[i+1]) || !upperHex(v[i+2]) {
				return false
			}
			if unreserved(unhex(v[i+1])<<4 | unhex(v[i+2])) {
				return false
			}
			i += 2
		}
	}
	return true
}

// maxFastQueryParams is the most parameters helperCanonical takes.
const maxFastQueryParams = 64

func upperHex(c byte) bool { return '0' <= c && c <= '9' || 'A' <= c && c <= 'F' }

func unhex(c byte) byte {
	if c <= '9' {
		return c - '0'
	}
	return c - 'A' + 10
}

// CanonicalURI is standard SigV4's canonical path: the request's escaped
// path ("/" when empty), escaped once more, as every service but S3
// wants.
func CanonicalURI(u *url.URL) string {
	p := u.EscapedPath()
	if p == "" {
		p = "/"
	}
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c == '/' || unreserved(c) {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

func unreserved(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~'
}

// unsigned reports whether the lower-cased header name is one never
// signed: proxies and the transport may rewrite them. (AWS's helper
// leaves out the same three.)
func unsigned(name string) bool {
	switch name {
	case "authorization", "user-agent", "x-amzn-trace-id":
		return true
	}
	return false
}

// headerNames returns the lower-cased, sorted names of the headers to
// sign: host and every header on h except the unsigned ones.
func headerNames(h http.Header) []string {
	names := []string{"host"}
	for k := range h {
		l := strings.ToLower(k)
		if unsigned(l) || l == "host" {
			continue
		}
		names = append(names, l)
	}
	slices.Sort(names)
	return names
}

func requestHost(req *http.Request) string {
	if req.Host != "" {
		return req.Host
	}
	return req.URL.Host
}

// collapseSpaces trims leading and trailing spaces (only spaces) and
// turns each inner run of spaces into one.
func collapseSpaces(s string) string {
	s = strings.Trim(s, " ")
	if !strings.Contains(s, "  ") {
		return s
	}
	var b strings.Builder
	space := false
	for i := 0; i < len(s); i++ {
		if s[i] == ' ' {
			if !space {
				b.WriteByte(' ')
			}
			space = true
			continue
		}
		space = false
		b.WriteByte(s[i])
	}
	return b.String()
}

// checkRequest is what both verifiers check of a parsed request before
// its key: the required headers are signed, every signed header is
// present, and the date, the scope and the clock agree.
type checkRequest struct {
	required []string
	service  string
	regions  []string // empty: any
	now      time.Time
	maxSkew  time.Duration
}

func (c checkRequest) signedHeaders(req *http.Request, a *Authorization) error {
	for _, h := range c.required {
		if !slices.Contains(a.SignedHeaders, h) {
			return fmt.Errorf("%w: %s is not in SignedHeaders", ErrSignedHeaders, h)
		}
	}
	for _, h := range a.SignedHeaders {
		if h != "host" && len(req.Header.Values(h)) == 0 {
			return fmt.Errorf("%w: signed header %s is not in the request", ErrHeaderMissing, truncate(h))
		}
	}
	return nil
}

// dateAndScope parses X-Amz-Date and checks it against the scope and the
// clock (a zero now skips the clock).
func (c checkRequest) dateAndScope(req *http.Request, a *Authorization) (time.Time, string, error) {
	dateStr := req.Header.Get(HeaderDate)
	date, err := time.Parse(TimeFormat, dateStr)
	if err != nil {
		return time.Time{}, "", fmt.Errorf("%w: %q is not YYYYMMDDTHHMMSSZ", ErrDate, truncate(dateStr))
	}
	if a.Day != dateStr[:8] {
		return time.Time{}, "", fmt.Errorf("%w: scope date %s is not the date of %s %s", ErrScopeDate, truncate(a.Day), HeaderDate, dateStr)
	}
	if a.Service != c.service {
		return time.Time{}, "", fmt.Errorf("%w: scope service %q, want %q", ErrScopeService, truncate(a.Service), c.service)
	}
	if len(c.regions) > 0 && !slices.Contains(c.regions, a.Region) {
		return time.Time{}, "", fmt.Errorf("%w: scope region %q, want %q", ErrScopeRegion, truncate(a.Region), strings.Join(c.regions, `" or "`))
	}
	if !c.now.IsZero() {
		skew := c.maxSkew
		if skew == 0 {
			skew = DefaultMaxSkew
		}
		if d := c.now.Sub(date); d > skew || d < -skew {
			return time.Time{}, "", fmt.Errorf("%w: %s is %s, the server's clock says %s (allowed: %s)", ErrClockSkew, HeaderDate, dateStr, c.now.UTC().Format(TimeFormat), skew)
		}
	}
	return date, dateStr, nil
}

func isDecimal(s string) bool {
	if s == "" || (len(s) > 1 && s[0] == '0') {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// truncate keeps attacker-supplied text in errors short (callers quote
// it with %q, which escapes anything unprintable).
func truncate(s string) string {
	if len(s) > 64 {
		return strings.ToValidUTF8(s[:64], "") + "..."
	}
	return s
}
