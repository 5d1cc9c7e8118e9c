// Package authz decides who is asking the agent for credentials and what
// they may have. A Verifier turns what a caller presented (a GitLab job
// token, an id_tokens JWT, a static bearer token, or the uid/gid of a
// unix-socket peer) into a verified Identity, or refuses it with an
// *Error whose Status the listener answers (401, 403 or 503). A Policy
// maps an Identity to a role through rules (first match wins), and says
// why when none matches.
//
// It is a use case: internal/agent imports it. It takes its clock, logger,
// GitLab job source and key source in a Config: it calls no time.Now and
// builds no network client (internal/gitlab does the HTTP). No error it
// returns and no line it logs holds a token.
package authz

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/keyless-dev/keyless/internal/clock"
	"github.com/keyless-dev/keyless/internal/gitlab"
	"github.com/keyless-dev/keyless/internal/logline"
)

// Kind is a kind of identity.
type Kind string

// The identity kinds, as agent.yaml names them.
const (
	JobToken Kind = "gitlab-job-token" // CI_JOB_TOKEN, verified online with GET /api/v4/job
	IDToken  Kind = "gitlab-id-token"  // id_tokens JWT, verified offline
	Static   Kind = "static-token"     // bearer tokens stored hashed (sha256 hex) in the config
	Peer     Kind = "unix-peer"        // uid/gid from SO_PEERCRED on the unix socket
)

// Kinds lists every kind, in the order messages name them.
var Kinds = []Kind{JobToken, IDToken, Static, Peer}

// The claims of each kind (see fieldsOf). Static tables, not a map a
// package init would build for every keyless command.
var (
	// What GET /api/v4/job answers: no protection or environment flags,
	// and the project's path only inside web_url.
	jobTokenFields = []string{"job_id", "job_name", "ref", "ref_type", "pipeline_id", "project_id", "project_path",
		"namespace_path", "sha", "user_id", "user_login", "runner_id"}
	// GitLab's documented id_tokens claims.
	idTokenFields = []string{"namespace_id", "namespace_path", "project_id", "project_path", "user_id", "user_login",
		"user_email", "pipeline_id", "pipeline_source", "job_id", "ref", "ref_type", "ref_path",
		"ref_protected", "environment", "environment_protected", "deployment_tier", "runner_id",
		"runner_environment", "sha", "sub"}
	staticFields = []string{"token"}
	// Not pid: a process chooses its own (it can fork until one fits),
	// and it names a process, not a user. It is in Identity.Audit.
	peerFields = []string{"uid", "gid"}
)

// fieldsOf is the claims of kind k, nil for an unknown kind; callers
// must not change it.
func fieldsOf(k Kind) []string {
	switch k {
	case JobToken:
		return jobTokenFields
	case IDToken:
		return idTokenFields
	case Static:
		return staticFields
	case Peer:
		return peerFields
	}
	return nil
}

// Fields lists the claims an identity of kind k can carry (nil for an
// unknown kind). An identity may lack some: an id_token of a job with no
// environment has no environment claim.
func Fields(k Kind) []string { return slices.Clone(fieldsOf(k)) }

func hasField(k Kind, f string) bool { return slices.Contains(fieldsOf(k), f) }

// Identity is a verified caller. Claims are strings (numbers in decimal,
// bools "true"/"false"); an absent claim is not in the map. Rules match
// and session names render Claims only. Audit holds what the audit line
// should show but no rule may rely on (a unix peer's pid); it may be nil.
// An Identity is read-only: Verify returns a cached job's one Identity to
// every request of that job (copying it cost a seventh of a vend).
type Identity struct {
	Kind   Kind
	Claims map[string]string
	Audit  map[string]string
}

// PeerCred is a unix-socket peer's credentials, from the kernel.
type PeerCred struct {
	UID, GID uint32
	PID      int32
}

// Credential is what a caller presented: Token is the raw Authorization
// value (may be empty); Peer is set for unix-socket callers, and then
// Token is ignored.
type Credential struct {
	Token string
	Peer  *PeerCred
}

// Refusal reasons: short stable codes for metrics and audit lines.
const (
	ReasonNoToken           = "no-token"
	ReasonMalformedToken    = "malformed-token"
	ReasonUnknownToken      = "unknown-token"
	ReasonJobNotRunning     = "job-not-running"
	ReasonGitLabUnavailable = "gitlab-unavailable"
	ReasonGitLabBusy        = "gitlab-busy"
	ReasonJWTNotAccepted    = "jwt-not-accepted"
	ReasonJWTAlgorithm      = "jwt-algorithm"
	ReasonJWTUnknownKID     = "jwt-unknown-kid"
	ReasonJWTSignature      = "jwt-signature"
	ReasonJWTClaims         = "jwt-claims"
	ReasonJWTExpired        = "jwt-expired"
	ReasonJWTNotYetValid    = "jwt-not-yet-valid"
	ReasonJWTAudience       = "jwt-audience"
	ReasonJWTIssuer         = "jwt-issuer"
	ReasonJWKSUnavailable   = "jwks-unavailable"
	ReasonRunnerMismatch    = "runner-mismatch"
	ReasonNoRule            = "no-rule"
	ReasonCanceled          = "canceled"
)

// Error is a refusal. Status is 401 (not authenticated), 403
// (authenticated, not allowed) or 503 (GitLab or its keys unreachable or
// busy: the SDKs retry). Reason is one of the Reason constants. Message is
// for the caller and the log; it never holds a token, nor does Err.
// Detail, when set, says more for the operator only (the audit line): it
// may name rules and the claims they want, which a caller must not learn,
// so it is neither in Message nor in Error().
type Error struct {
	Status          int
	Reason, Message string
	Detail          string
	Err             error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Message + ": " + e.Err.Error()
	}
	return e.Message
}

func (e *Error) Unwrap() error { return e.Err }

func refuse(status int, reason, format string, args ...any) *Error {
	return &Error{Status: status, Reason: reason, Message: fmt.Sprintf(format, args...)}
}

// JobSource tells which job a job token belongs to: internal/gitlab's
// Client. It returns the job only while it runs; a token GitLab refuses
// is gitlab.ErrJobNotRunning (wrapped); other errors mean GitLab could not
// be asked. It must be safe for concurrent use and bound its own time.
type JobSource interface {
	Job(ctx context.Context, jobToken string) (*gitlab.Job, error)
}

// KeySource fetches an OIDC issuer's signing keys: internal/gitlab's
// KeySource. It must be safe for concurrent use and bound its own time.
type KeySource interface {
	Keys(ctx context.Context) (*jose.JSONWebKeySet, error)
}

// OIDC is how id_tokens JWTs are verified.
type OIDC struct {
	// Issuer is the tokens' iss, exactly (GitLab's URL).
	Issuer string
	// Audiences: a token's aud must contain one.
	Audiences []string
	// RunnerIDs, when set, is the runner_id values accepted. Deprecated:
	// set Config.RunnerIDs, which pins job tokens too. When only this is
	// set, NewVerifier takes it as Config.RunnerIDs (so it pins job
	// tokens as well); when both are set they must be equal.
	RunnerIDs []int64
	// Keys are fetched at first use, again when older than an hour, and
	// on an unknown kid at most once per MinRefresh.
	Keys KeySource
	// MinRefresh bounds fetches of the keys; default 1m.
	MinRefresh time.Duration
	// Leeway is the clock skew allowed on exp, nbf and iat; default 30s.
	Leeway time.Duration
}

// StaticToken is a bearer token known by its SHA-256.
type StaticToken struct {
	Name   string
	SHA256 [32]byte
}

// Defaults and bounds.
const (
	// DefaultJobCacheTTL: a job token GitLab confirmed is trusted this
	// long without asking again, so a job's SDK calls cost one GitLab
	// call; a finished job's token is refused at most this late.
	DefaultJobCacheTTL = 30 * time.Second
	// negativeTTL: a refused job token is refused without asking GitLab
	// for this long, so a retrying SDK does not hammer GitLab.
	negativeTTL = 5 * time.Second
	// maxJobCache bounds the cache of verified jobs' tokens (a few
	// hundred bytes an entry). Only tokens GitLab confirmed go there, so
	// a flood of made-up tokens cannot evict them.
	maxJobCache = 10000
	// maxNegCache bounds the cache of refused job tokens (a hash and an
	// error an entry), which a flood of made-up tokens fills.
	maxNegCache = 10000
	// maxJobCalls bounds the GitLab job-API calls in flight at once,
	// whatever the number of distinct tokens callers bring: beyond it a
	// new token is refused at once, 503 gitlab-busy (the SDKs retry).
	maxJobCalls = 16
	// DefaultMinRefresh: an unknown kid refetches GitLab's keys at most
	// this often, so tokens with made-up kids cannot hammer GitLab.
	DefaultMinRefresh = time.Minute
	// DefaultLeeway is the clock skew tolerated between GitLab and here.
	DefaultLeeway = 30 * time.Second
	// maxLeeway: a leeway longer than this stretches a token's life
	// more than skew explains.
	maxLeeway = 5 * time.Minute
	// keysMaxAge: keys are refetched (rate-limited as above) once this
	// old, so a key GitLab withdrew stops being trusted.
	keysMaxAge = time.Hour
	// firstFetchRetry bounds how often a failed first fetch of the keys
	// is retried, when there are no keys at all.
	firstFetchRetry = 5 * time.Second
	// MaxTokenLen: an id_token is about 1 KiB, a job token under 100
	// bytes; longer is not a token.
	MaxTokenLen = 4096
)

// Config configures a Verifier.
type Config struct {
	Clock  clock.Clock  // nil: the real clock
	Logger *slog.Logger // nil: discard
	// Jobs verifies job tokens; nil refuses them.
	Jobs JobSource
	// JobCacheTTL is how long a verified job token is trusted; default
	// DefaultJobCacheTTL.
	JobCacheTTL time.Duration
	// GitLabURL is GitLab's base URL, as Jobs asks it (agent.yaml's
	// gitlab.url), such as https://gitlab.example.com or, with a relative
	// URL root, https://example.com/gitlab. Required with Jobs: a job's
	// project_path and namespace_path come from its web_url, which must
	// have this scheme and host and start with this path; the path is
	// taken off. A web_url that does not leaves both claims absent.
	GitLabURL string
	// RunnerIDs, when set, is the runner ids whose jobs are served: a job
	// token's job (GitLab's runner.id) or an id_token's runner_id must be
	// one, else 403 runner-mismatch.
	RunnerIDs []int64
	// OIDC verifies id_tokens JWTs; nil refuses them.
	OIDC   *OIDC
	Static []StaticToken
}

// Verifier verifies callers. It is safe for concurrent use.
type Verifier struct {
	clock  clock.Clock
	log    *slog.Logger
	static []StaticToken
	jobs   JobSource
	jobTTL time.Duration
	base   *url.URL // GitLabURL, its path without a trailing '/'
	oidc   *oidcVerifier
	// runners is the runner pin (Config.RunnerIDs), nil for none.
	runners []int64

	mu         sync.Mutex
	jobCache   map[[32]byte]jobEntry // verified jobs only
	negCache   map[[32]byte]jobEntry // refused tokens only
	jobFlights map[[32]byte]*jobFlight
}

// NewVerifier checks c and returns a Verifier. Nothing is fetched until a
// caller needs it.
func NewVerifier(c Config) (*Verifier, error) {
	v := &Verifier{clock: clock.Or(c.Clock), log: logline.Or(c.Logger), jobs: c.Jobs, jobTTL: c.JobCacheTTL,
		jobCache: map[[32]byte]jobEntry{}, negCache: map[[32]byte]jobEntry{}, jobFlights: map[[32]byte]*jobFlight{}}
	switch {
	case v.jobTTL < 0:
		return nil, fmt.Errorf("job token cache TTL %s is negative", v.jobTTL)
	case v.jobTTL == 0:
		v.jobTTL = DefaultJobCacheTTL
	}
	names, sums := map[string]bool{}, map[[32]byte]bool{}
	for i, s := range c.Static {
		switch {
		case s.Name == "":
			return nil, fmt.Errorf("static token %d has no name", i+1)
		case names[s.Name]:
			return nil, fmt.Errorf("static token name %q is used twice", s.Name)
		case s.SHA256 == [32]byte{}:
			return nil, fmt.Errorf("static token %q has no SHA-256", s.Name)
		case sums[s.SHA256]:
			return nil, fmt.Errorf("static token %q has the SHA-256 of another: one token, two names", s.Name)
		}
		names[s.Name], sums[s.SHA256] = true, true
	}
	v.static = slices.Clone(c.Static)
	if c.GitLabURL != "" || c.Jobs != nil {
		base, err := parseBaseURL(c.GitLabURL)
		if err != nil {
			return nil, err
		}
		v.base = base
	}
	v.runners = slices.Clone(c.RunnerIDs)
	if c.OIDC != nil && len(c.OIDC.RunnerIDs) > 0 {
		switch {
		case len(v.runners) == 0:
			v.runners = slices.Clone(c.OIDC.RunnerIDs)
		case !sameSet(v.runners, c.OIDC.RunnerIDs):
			return nil, errors.New("runner ids are pinned twice, differently (RunnerIDs and id_tokens' RunnerIDs): give them once")
		}
	}
	if len(v.runners) == 0 {
		v.runners = nil
	}
	if c.OIDC != nil {
		o, err := newOIDCVerifier(*c.OIDC, v.clock, v.log, v.runners)
		if err != nil {
			return nil, err
		}
		v.oidc = o
	}
	return v, nil
}

// parseBaseURL checks GitLab's base URL: http(s), a host, no query,
// fragment or user; the path is kept without its trailing '/'.
func parseBaseURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if s == "" || err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" ||
		u.User != nil || u.Opaque != "" || strings.Contains(u.EscapedPath(), "%") {
		return nil, fmt.Errorf("GitLab URL %q: job tokens need GitLab's URL, such as https://gitlab.example.com (a job's project path is read from its web_url under it)", s)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	return u, nil
}

func sameSet(a, b []int64) bool {
	return !slices.ContainsFunc(a, func(n int64) bool { return !slices.Contains(b, n) }) &&
		!slices.ContainsFunc(b, func(n int64) bool { return !slices.Contains(a, n) })
}

func newOIDCVerifier(o OIDC, clk clock.Clock, log *slog.Logger, runners []int64) (*oidcVerifier, error) {
	u, err := url.Parse(o.Issuer)
	if o.Issuer == "" || err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("id_tokens issuer %q: want GitLab's URL, such as https://gitlab.example.com", o.Issuer)
	}
	if len(o.Audiences) == 0 || slices.Contains(o.Audiences, "") {
		return nil, errors.New("id_tokens: give the audience the jobs' id_tokens ask for (aud)")
	}
	if o.Keys == nil {
		return nil, errors.New("id_tokens: no key source")
	}
	switch {
	case o.MinRefresh < 0:
		return nil, fmt.Errorf("id_tokens: key refresh interval %s is negative", o.MinRefresh)
	case o.MinRefresh == 0:
		o.MinRefresh = DefaultMinRefresh
	}
	switch {
	case o.Leeway < 0 || o.Leeway > maxLeeway:
		return nil, fmt.Errorf("id_tokens: leeway %s: want 0 (default %s) to %s", o.Leeway, DefaultLeeway, maxLeeway)
	case o.Leeway == 0:
		o.Leeway = DefaultLeeway
	}
	o.Audiences, o.RunnerIDs = slices.Clone(o.Audiences), runners
	return &oidcVerifier{cfg: o, clock: clk, log: log}, nil
}

// Verify says who c is. Tokens over MaxTokenLen or with anything but
// printable ASCII are 401 malformed-token. A static token's SHA-256 is
// compared in constant time with each configured one; then a token shaped
// like a GitLab job token ("glcbt-", maybe after an instance prefix, see
// JobTokenShaped) is asked of GitLab once per token however many callers
// bring it at once, then cached (JobCacheTTL when running, a few seconds
// when refused), with at most a few GitLab calls in flight at once
// (beyond: 503 gitlab-busy) and the runner pin; then a JWT-shaped token
// (three base64url parts) is verified as an id_token: RS256 only, kid in
// the issuer's JWKS, iss exact, aud, exp, nbf and iat with leeway, and
// the runner pin; anything else is 401 unknown-token, and leaves the host
// in no request. Refusals are *Error.
func (v *Verifier) Verify(ctx context.Context, c Credential) (*Identity, error) {
	id, err := v.verify(ctx, c)
	if err != nil {
		var e *Error
		if !errors.As(err, &e) {
			e = &Error{Status: 503, Reason: ReasonGitLabUnavailable, Message: "the caller could not be verified", Err: err}
		}
		level := slog.LevelDebug
		if e.Status >= 500 {
			level = slog.LevelWarn
		}
		v.log.Log(ctx, level, "caller refused", "reason", e.Reason, "status", e.Status, "error", e.Error())
		return nil, e
	}
	return id, nil
}

func (v *Verifier) verify(ctx context.Context, c Credential) (*Identity, error) {
	if c.Peer != nil {
		return &Identity{Kind: Peer, Claims: map[string]string{
			"uid": strconv.FormatUint(uint64(c.Peer.UID), 10),
			"gid": strconv.FormatUint(uint64(c.Peer.GID), 10),
		}, Audit: map[string]string{
			"pid": strconv.FormatInt(int64(c.Peer.PID), 10),
		}}, nil
	}
	tok := c.Token
	if tok == "" {
		return nil, refuse(401, ReasonNoToken, "no token: send the job's CI_JOB_TOKEN or an id_tokens JWT as AWS_CONTAINER_AUTHORIZATION_TOKEN")
	}
	if len(tok) > MaxTokenLen {
		return nil, refuse(401, ReasonMalformedToken, "the token is %d bytes; a token is at most %d", len(tok), MaxTokenLen)
	}
	for i := 0; i < len(tok); i++ {
		if tok[i] < 0x20 || tok[i] > 0x7e {
			return nil, refuse(401, ReasonMalformedToken, "the token holds a control or non-ASCII character (a token file must not end with a newline)")
		}
	}
	// Static tokens first: a static token shaped like a JWT is still the
	// static token. Every configured hash is compared, in constant time.
	sum := sha256.Sum256([]byte(tok))
	var name string
	for _, s := range v.static {
		if subtle.ConstantTimeCompare(sum[:], s.SHA256[:]) == 1 {
			name = s.Name
		}
	}
	if name != "" {
		return &Identity{Kind: Static, Claims: map[string]string{"token": name}}, nil
	}
	// Job tokens before JWTs: GitLab's JWT-format job tokens are
	// "glcbt-" and a JWT, and only GitLab's job API knows them.
	if JobTokenShaped(tok) {
		if v.jobs == nil {
			return nil, refuse(401, ReasonUnknownToken, "the token is a GitLab job token, but this agent verifies no job tokens (gitlab.url is not set)")
		}
		return v.verifyJob(ctx, tok, sum)
	}
	if jwtShaped(tok) {
		if v.oidc == nil {
			return nil, refuse(401, ReasonJWTNotAccepted, "the token is a JWT, but this agent accepts no id_tokens (gitlab.idTokens is not set)")
		}
		return v.oidc.verify(ctx, tok)
	}
	// Not sent anywhere: a mistyped or rotated static token stays here.
	return nil, refuse(401, ReasonUnknownToken, "the token is not one this agent knows: not a static token, not a GitLab job token (glcbt-...) and not an id_tokens JWT")
}

// jobTokenMarker starts a GitLab job token (GitLab 16.8 and later).
const jobTokenMarker = "glcbt-"

// JobTokenShaped reports whether tok looks like a GitLab job token:
// "glcbt-" at its start or at the start of a '-'-delimited segment after
// an instance's custom token prefix of [A-Za-z0-9_-] (for example
// "mycorp-glcbt-..."), that is ^([A-Za-z0-9_-]*-)?glcbt-. Only such
// tokens are sent to GitLab; job tokens from GitLab before 16.8, which
// have no prefix, are not.
func JobTokenShaped(tok string) bool {
	for i := 0; i+len(jobTokenMarker) <= len(tok); i++ {
		if tok[i:i+len(jobTokenMarker)] == jobTokenMarker && (i == 0 || tok[i-1] == '-') {
			return true
		}
		c := tok[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return false
}

// jwtShaped: three parts of base64url, the first two non-empty (an
// unsigned JWT has an empty third).
func jwtShaped(s string) bool {
	parts, n := 0, 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == '.' {
			if n == 0 && parts < 2 {
				return false
			}
			parts, n = parts+1, 0
			continue
		}
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
		n++
	}
	return parts == 3
}

func canceled(err error) *Error {
	return &Error{Status: 503, Reason: ReasonCanceled, Message: "the request ended before the caller was verified", Err: err}
}
