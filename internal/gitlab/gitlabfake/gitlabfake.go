// Package gitlabfake is a fake GitLab for tests and keyless dev: the job
// API (GET /api/v4/job with JOB-TOKEN) for registered jobs, running or
// finished, the OIDC discovery document and JWKS, and id_tokens JWTs
// signed RS256 with GitLab's documented claims, with key rotation and a
// count of calls per endpoint. It is an http.Handler: tests start it with
// httptest, keyless dev with internal/serve.
//
// It is for tests and keyless dev only: nothing in agent.yaml can enable
// it, and nothing but test code and internal/devstack imports it.
package gitlabfake

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/keyless-dev/keyless/internal/clock"
	"github.com/keyless-dev/keyless/internal/gitlab"
)

// Endpoints, as Calls names them.
const (
	EndpointJob       = "job"       // GET /api/v4/job
	EndpointDiscovery = "discovery" // GET /.well-known/openid-configuration
	EndpointKeys      = "keys"      // GET /oauth/discovery/keys
)

// Paths the fake serves.
const (
	JobPath       = "/api/v4/job"
	DiscoveryPath = "/.well-known/openid-configuration"
	KeysPath      = "/oauth/discovery/keys"
)

// TokenPrefix starts every job token, as GitLab's CI_JOB_TOKEN since 16.8.
const TokenPrefix = "glcbt-"

// keyBits is the size of the signing keys, as GitLab's.
const keyBits = 2048

// Options configure a Server. The zero value works.
type Options struct {
	// Clock times id_tokens; nil means the real clock.
	Clock clock.Clock
	// Issuer is GitLab's URL, the id_tokens' iss and the base of jobs'
	// web_url; empty means SetIssuer's, else http://HOST of each
	// request.
	Issuer string
}

// Job is a job to register. Zero fields get defaults: Name "test", Ref
// "main", ProjectID 1, ProjectPath "group/project", PipelineID
// 100000+ID, a SHA derived from the ID, UserID 1 and UserLogin "root",
// RunnerID 1, Status "running".
type Job struct {
	ID          int64
	Name        string
	Ref         string
	Tag         bool
	ProjectID   int64
	ProjectPath string // group/sub/project
	NamespaceID int64  // default 1
	PipelineID  int64
	SHA         string
	UserID      int64
	UserLogin   string
	UserEmail   string
	RunnerID    int64
	// Status is what the job API answers while the token is valid;
	// anything but "running" makes a job the client must refuse.
	Status string
	// RefProtected, Environment, EnvironmentProtected and DeploymentTier
	// go in the job's id_tokens only (the job API has no such fields).
	RefProtected         bool
	Environment          string
	EnvironmentProtected bool
	DeploymentTier       string
}

func (j *Job) defaults() {
	if j.Name == "" {
		j.Name = "test"
	}
	if j.Ref == "" {
		j.Ref = "main"
	}
	if j.ProjectID == 0 {
		j.ProjectID = 1
	}
	if j.ProjectPath == "" {
		j.ProjectPath = "group/project"
	}
	if j.NamespaceID == 0 {
		j.NamespaceID = 1
	}
	if j.PipelineID == 0 {
		j.PipelineID = 100000 + j.ID
	}
	if j.SHA == "" {
		sum := sha256.Sum256([]byte(strconv.FormatInt(j.ID, 10)))
		j.SHA = hex.EncodeToString(sum[:20])
	}
	if j.UserID == 0 {
		j.UserID = 1
	}
	if j.UserLogin == "" {
		j.UserLogin = "root"
	}
	if j.UserEmail == "" {
		j.UserEmail = j.UserLogin + "@example.com"
	}
	if j.RunnerID == 0 {
		j.RunnerID = 1
	}
	if j.Status == "" {
		j.Status = gitlab.StatusRunning
	}
}

type job struct {
	Job
	token    string
	finished bool
}

type signingKey struct {
	kid string
	key *rsa.PrivateKey
}

// Server is the fake GitLab. It is safe for concurrent use.
type Server struct {
	clock clock.Clock

	mu      sync.Mutex
	issuer  string
	jobs    map[int64]*job
	byToken map[string]*job
	keys    []signingKey // current first, then the previous one
	forger  *rsa.PrivateKey
	calls   map[string]int
}

// New returns a fake GitLab with one signing key.
func New(o Options) *Server {
	s := &Server{clock: clock.Or(o.Clock), issuer: strings.TrimSuffix(o.Issuer, "/"),
		jobs: map[int64]*job{}, byToken: map[string]*job{}, calls: map[string]int{}}
	s.keys = []signingKey{newKey()}
	return s
}

func newKey() signingKey {
	k, err := rsa.GenerateKey(rand.Reader, keyBits)
	if err != nil {
		panic("gitlabfake: generating an RSA key: " + err.Error())
	}
	return signingKey{kid: thumbprint(&k.PublicKey), key: k}
}

// thumbprint is the RFC 7638 thumbprint of a public key, base64url: how
// GitLab names its keys.
func thumbprint(pub *rsa.PublicKey) string {
	tp, err := (&jose.JSONWebKey{Key: pub}).Thumbprint(crypto.SHA256)
	if err != nil {
		panic("gitlabfake: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(tp)
}

// SetIssuer sets GitLab's URL (the server's, once it listens).
func (s *Server) SetIssuer(issuer string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.issuer = strings.TrimSuffix(issuer, "/")
}

// Issuer returns GitLab's URL as set, "" before SetIssuer when Options
// named none.
func (s *Server) Issuer() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.issuer
}

// AddJob registers a job (replacing one of the same ID) and returns its
// new job token, "glcbt-" and 40 random characters.
func (s *Server) AddJob(j Job) string {
	j.defaults()
	var b [30]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("gitlabfake: " + err.Error())
	}
	tok := TokenPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	s.mu.Lock()
	defer s.mu.Unlock()
	if old := s.jobs[j.ID]; old != nil {
		delete(s.byToken, old.token)
	}
	jb := &job{Job: j, token: tok}
	s.jobs[j.ID] = jb
	s.byToken[tok] = jb
	return tok
}

// FinishJob marks the job finished (status success): from now on GitLab
// refuses its token with 401, as it does once a job ends. It reports
// whether the job was known.
func (s *Server) FinishJob(id int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	j := s.jobs[id]
	if j == nil {
		return false
	}
	j.finished, j.Status = true, "success"
	return true
}

// SetJobStatus sets the status the job API answers for a job whose token
// is still valid (pending, running, ...). It reports whether the job was
// known.
func (s *Server) SetJobStatus(id int64, status string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	j := s.jobs[id]
	if j == nil {
		return false
	}
	j.Status = status
	return true
}

// Calls returns how many requests an endpoint (EndpointJob,
// EndpointDiscovery, EndpointKeys) has had.
func (s *Server) Calls(endpoint string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[endpoint]
}

// ResetCalls sets every counter back to zero.
func (s *Server) ResetCalls() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.calls)
}

// RotateKey makes a new signing key current and returns its kid; the JWKS
// serves it and the previous one (as GitLab does during a rotation),
// older keys are dropped.
func (s *Server) RotateKey() string {
	k := newKey()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys = []signingKey{k, s.keys[0]}
	return k.kid
}

// KeyID returns the current signing key's kid.
func (s *Server) KeyID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.keys[0].kid
}

// PublicKey returns the current signing key's public half.
func (s *Server) PublicKey() *rsa.PublicKey {
	s.mu.Lock()
	defer s.mu.Unlock()
	return &s.keys[0].key.PublicKey
}

// JWKS returns the key set the server publishes.
func (s *Server) JWKS() *jose.JSONWebKeySet {
	s.mu.Lock()
	defer s.mu.Unlock()
	set := &jose.JSONWebKeySet{}
	for _, k := range s.keys {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: &k.key.PublicKey, KeyID: k.kid, Algorithm: string(jose.RS256), Use: "sig"})
	}
	return set
}

// Keys returns the published key set without HTTP, so the fake is itself
// a key source (internal/authz's KeySource) for tests. It is not counted.
func (s *Server) Keys(context.Context) (*jose.JSONWebKeySet, error) { return s.JWKS(), nil }

// ServeHTTP serves the job API, the discovery document and the JWKS.
// Everything else is 404, as JSON.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case JobPath:
		s.count(EndpointJob)
		s.serveJob(w, r)
	case DiscoveryPath:
		s.count(EndpointDiscovery)
		s.serveDiscovery(w, r)
	case KeysPath:
		s.count(EndpointKeys)
		writeJSON(w, http.StatusOK, s.JWKS())
	default:
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "404 Not Found"})
	}
}

func (s *Server) count(endpoint string) {
	s.mu.Lock()
	s.calls[endpoint]++
	s.mu.Unlock()
}

func (s *Server) base(r *http.Request) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.issuer != "" {
		return s.issuer
	}
	return "http://" + r.Host
}

// serveJob answers as GitLab does: 401 {"message":"401 Unauthorized"}
// for a missing, unknown or finished job's token, else the job.
func (s *Server) serveJob(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "405 Method Not Allowed"})
		return
	}
	base := s.base(r)
	s.mu.Lock()
	j := s.byToken[r.Header.Get("JOB-TOKEN")]
	var jc Job
	ok := j != nil && !j.finished
	if ok {
		jc = j.Job
	}
	s.mu.Unlock()
	if !ok {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"message": "401 Unauthorized"})
		return
	}
	writeJSON(w, http.StatusOK, jobJSON(jc, base, s.clock.Now()))
}

// jobJSON is GitLab's answer to GET /api/v4/job (a subset of its fields,
// more than keyless reads).
func jobJSON(j Job, base string, now time.Time) map[string]any {
	started := now.Add(-time.Minute).UTC().Format("2006-01-02T15:04:05.000Z")
	return map[string]any{
		"id": j.ID, "name": j.Name, "status": j.Status, "stage": "deploy", "ref": j.Ref, "tag": j.Tag,
		"allow_failure": false, "created_at": started, "started_at": started, "finished_at": nil,
		"erased_at": nil, "duration": 60.0, "queued_duration": 0.5, "coverage": nil, "failure_reason": nil,
		"tag_list": []string{"docker"}, "artifacts": []any{}, "archived": false,
		"web_url": base + "/" + j.ProjectPath + "/-/jobs/" + strconv.FormatInt(j.ID, 10),
		"commit":  map[string]any{"id": j.SHA, "short_id": j.SHA[:min(8, len(j.SHA))], "title": "Update", "author_name": j.UserLogin},
		"pipeline": map[string]any{"id": j.PipelineID, "iid": 1, "project_id": j.ProjectID, "ref": j.Ref, "sha": j.SHA,
			"status": j.Status, "source": "push", "web_url": base + "/" + j.ProjectPath + "/-/pipelines/" + strconv.FormatInt(j.PipelineID, 10)},
		"project": map[string]any{"ci_job_token_scope_enabled": false},
		"user": map[string]any{"id": j.UserID, "username": j.UserLogin, "name": j.UserLogin, "state": "active",
			"web_url": base + "/" + j.UserLogin},
		"runner": map[string]any{"id": j.RunnerID, "description": "keyless test runner", "active": true, "paused": false,
			"is_shared": false, "runner_type": "project_type", "name": "gitlab-runner", "online": true, "status": "online"},
	}
}

func (s *Server) serveDiscovery(w http.ResponseWriter, r *http.Request) {
	base := s.base(r)
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                base,
		"authorization_endpoint":                base + "/oauth/authorize",
		"token_endpoint":                        base + "/oauth/token",
		"revocation_endpoint":                   base + "/oauth/revoke",
		"introspection_endpoint":                base + "/oauth/introspect",
		"userinfo_endpoint":                     base + "/oauth/userinfo",
		"jwks_uri":                              base + KeysPath,
		"scopes_supported":                      []string{"api", "read_api", "read_user", "openid", "profile", "email"},
		"response_types_supported":              []string{"code"},
		"response_modes_supported":              []string{"query", "fragment"},
		"grant_types_supported":                 []string{"authorization_code", "password", "client_credentials", "refresh_token"},
		"token_endpoint_auth_methods_supported": []string{"client_secret_basic", "client_secret_post"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"claim_types_supported":                 []string{"normal"},
		"claims_supported": []string{"iss", "sub", "aud", "exp", "iat", "sub_legacy", "name", "nickname", "preferred_username",
			"email", "email_verified", "website", "profile", "picture", "groups", "groups_direct"},
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
