package authz_test

import (
	"context"
	"crypto"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/google/go-cmp/cmp"

	"github.com/keyless-dev/keyless/internal/authz"
	"github.com/keyless-dev/keyless/internal/gitlab"
	"github.com/keyless-dev/keyless/internal/gitlab/gitlabfake"
	"github.com/keyless-dev/keyless/internal/testkit"
)

var t0 = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

const (
	issuer      = "https://gitlab.example.com"
	audience    = "keyless"
	staticToken = "static-secret-token-for-backup-host"
	jobTok      = "glcbt-job-token-of-job-1001-xxxxxxxx"
)

// Keys: GitLab's current (A) and next (B) signing keys, and an
// attacker's. Made once: RSA key generation is slow.
var (
	keysOnce                sync.Once
	keyA, keyB, keyAttacker *rsa.PrivateKey
)

func testKeys(t testing.TB) {
	t.Helper()
	keysOnce.Do(func() {
		for _, k := range []**rsa.PrivateKey{&keyA, &keyB, &keyAttacker} {
			var err error
			if *k, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
				panic(err)
			}
		}
	})
}

func jwks(keys map[string]*rsa.PrivateKey) *jose.JSONWebKeySet {
	set := &jose.JSONWebKeySet{}
	for kid, k := range keys {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: &k.PublicKey, KeyID: kid, Algorithm: "RS256", Use: "sig"})
	}
	return set
}

// keySource is a KeySource that counts its calls.
type keySource struct {
	mu      sync.Mutex
	set     *jose.JSONWebKeySet
	err     error
	calls   atomic.Int32
	started chan struct{} // when set, gets a value as each call starts
	gate    chan struct{} // when set, calls wait for it
}

func (k *keySource) Keys(ctx context.Context) (*jose.JSONWebKeySet, error) {
	k.calls.Add(1)
	k.mu.Lock()
	set, err, started, gate := k.set, k.err, k.started, k.gate
	k.mu.Unlock()
	if started != nil {
		select { // only the first call is awaited; more must not block
		case started <- struct{}{}:
		default:
		}
	}
	if gate != nil {
		<-gate
	}
	return set, err
}

func (k *keySource) serve(set *jose.JSONWebKeySet, err error) {
	k.mu.Lock()
	k.set, k.err = set, err
	k.mu.Unlock()
}

// jobSource is a JobSource that counts its calls.
type jobSource struct {
	mu      sync.Mutex
	jobs    map[string]*gitlab.Job
	err     error
	calls   atomic.Int32
	started chan struct{}
	gate    chan struct{}
}

func (j *jobSource) Job(ctx context.Context, tok string) (*gitlab.Job, error) {
	j.calls.Add(1)
	j.mu.Lock()
	job, err, started, gate := j.jobs[tok], j.err, j.started, j.gate
	j.mu.Unlock()
	if started != nil {
		select { // only the first call is awaited; more must not block
		case started <- struct{}{}:
		default:
		}
	}
	if gate != nil {
		<-gate
	}
	if err != nil {
		return nil, err
	}
	if job == nil {
		return nil, fmt.Errorf("%w (GitLab answered 401)", gitlab.ErrJobNotRunning)
	}
	c := *job
	return &c, nil
}

func (j *jobSource) set(tok string, job *gitlab.Job, err error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if job != nil {
		j.jobs[tok] = job
	} else {
		delete(j.jobs, tok)
	}
	j.err = err
}

func runningJob(id int64, project string) *gitlab.Job {
	j := &gitlab.Job{ID: id, Name: "deploy", Status: "running", Ref: "main",
		WebURL: fmt.Sprintf("%s/%s/-/jobs/%d", issuer, project, id),
		User:   &gitlab.User{ID: 5, Username: "alice"}, Runner: &gitlab.Runner{ID: 7}}
	j.Pipeline = gitlab.Pipeline{ID: 900, ProjectID: 42, Ref: "main", SHA: strings.Repeat("ab", 20), Status: "running"}
	return j
}

type env struct {
	clock *testkit.Clock
	keys  *keySource
	jobs  *jobSource
	logs  *testkit.Buffer
	v     *authz.Verifier
}

func newEnv(t testing.TB, edit func(c *authz.Config)) *env {
	t.Helper()
	testKeys(t)
	e := &env{clock: testkit.NewClock(t0), logs: &testkit.Buffer{},
		keys: &keySource{set: jwks(map[string]*rsa.PrivateKey{"a": keyA})},
		jobs: &jobSource{jobs: map[string]*gitlab.Job{jobTok: runningJob(1001, "group/app")}}}
	c := authz.Config{Clock: e.clock, Logger: slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Jobs: e.jobs, GitLabURL: issuer, RunnerIDs: []int64{7, 9},
		OIDC: &authz.OIDC{Issuer: issuer, Audiences: []string{"other", audience}, Keys: e.keys},
		Static: []authz.StaticToken{{Name: "backup-host", SHA256: sha256.Sum256([]byte(staticToken))},
			{Name: "jwt-shaped", SHA256: sha256.Sum256([]byte("aaaa.bbbb.cccc"))}},
	}
	if edit != nil {
		edit(&c)
	}
	v, err := authz.NewVerifier(c)
	if err != nil {
		t.Fatal(err)
	}
	e.v = v
	return e
}

func (e *env) verify(tok string) (*authz.Identity, error) {
	return e.v.Verify(context.Background(), authz.Credential{Token: tok})
}

// claims are an id_token's, as GitLab mints them, valid now.
func (e *env) claims() map[string]any {
	now := e.clock.Now()
	return map[string]any{
		"iss": issuer, "aud": audience, "iat": now.Unix(), "nbf": now.Unix() - 5, "exp": now.Add(5 * time.Minute).Unix(),
		"jti": "235b3a54", "namespace_id": "72", "namespace_path": "group", "project_id": "20", "project_path": "group/app",
		"user_id": "1", "user_login": "alice", "user_email": "alice@example.com", "pipeline_id": "574", "pipeline_source": "push",
		"job_id": "302", "ref": "main", "ref_type": "branch", "ref_path": "refs/heads/main", "ref_protected": "true",
		"runner_id": 7, "runner_environment": "self-hosted", "sha": "714a629c", "project_visibility": "private",
		"sub": "project_path:group/app:ref_type:branch:ref:main",
	}
}

// with returns claims with k set to v (removed when v is nil).
func with(claims map[string]any, kv ...any) map[string]any {
	c := maps.Clone(claims)
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(c, kv[i].(string))
		} else {
			c[kv[i].(string)] = kv[i+1]
		}
	}
	return c
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// mint builds a compact JWS by hand, so a test controls every byte.
func mint(header, claims map[string]any, sign func(in []byte) []byte) string {
	h, _ := json.Marshal(header)
	c, _ := json.Marshal(claims)
	in := b64(h) + "." + b64(c)
	return in + "." + b64(sign([]byte(in)))
}

func rs256(k *rsa.PrivateKey) func([]byte) []byte {
	return func(in []byte) []byte {
		sum := sha256.Sum256(in)
		sig, err := rsa.SignPKCS1v15(nil, k, crypto.SHA256, sum[:])
		if err != nil {
			panic(err)
		}
		return sig
	}
}

func hs256(secret []byte) func([]byte) []byte {
	return func(in []byte) []byte {
		m := hmac.New(sha256.New, secret)
		m.Write(in)
		return m.Sum(nil)
	}
}

// jwt is an RS256 token signed by k under kid.
func jwt(k *rsa.PrivateKey, kid string, claims map[string]any) string {
	return mint(map[string]any{"alg": "RS256", "kid": kid, "typ": "JWT"}, claims, rs256(k))
}

func wantRefusal(t *testing.T, id *authz.Identity, err error, status int, reason string) *authz.Error {
	t.Helper()
	var e *authz.Error
	if !errors.As(err, &e) {
		t.Fatalf("identity %v, error %v (%T): want a refusal %d %s", id, err, err, status, reason)
	}
	if id != nil {
		t.Errorf("an identity with the refusal")
	}
	if e.Status != status || e.Reason != reason {
		t.Errorf("refusal %d %s (%s), want %d %s", e.Status, e.Reason, e.Message, status, reason)
	}
	return e
}

func TestPeer(t *testing.T) {
	e := newEnv(t, nil)
	id, err := e.v.Verify(context.Background(), authz.Credential{Token: "ignored garbage\n", Peer: &authz.PeerCred{UID: 1000, GID: 999, PID: 4242}})
	if err != nil {
		t.Fatal(err)
	}
	// The pid is for the audit line only: a process chooses its own.
	want := &authz.Identity{Kind: authz.Peer, Claims: map[string]string{"uid": "1000", "gid": "999"}, Audit: map[string]string{"pid": "4242"}}
	if diff := cmp.Diff(want, id); diff != "" {
		t.Error(diff)
	}
	if got := authz.Fields(authz.Peer); !slices.Equal(got, []string{"uid", "gid"}) {
		t.Errorf("unix peers claim %v", got)
	}
	// A rule cannot match on it nor name sessions after it.
	for _, r := range []authz.Rule{
		{Name: "pid", Kinds: []authz.Kind{authz.Peer}, Match: map[string][]string{"pid": {"4242"}}, RoleARN: roleRead},
		{Name: "pid", Kinds: []authz.Kind{authz.Peer}, RoleARN: roleRead, SessionName: "p-{pid}"},
	} {
		if _, err := authz.NewPolicy([]authz.Rule{r}); err == nil || !strings.Contains(err.Error(), "pid is not a claim") {
			t.Errorf("a rule on pid: %v", err)
		}
	}
}

func TestStatic(t *testing.T) {
	e := newEnv(t, nil)
	id, err := e.verify(staticToken)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(&authz.Identity{Kind: authz.Static, Claims: map[string]string{"token": "backup-host"}}, id); diff != "" {
		t.Error(diff)
	}
	// A static token shaped like a JWT is the static token.
	if id, err := e.verify("aaaa.bbbb.cccc"); err != nil || id.Claims["token"] != "jwt-shaped" {
		t.Errorf("JWT-shaped static token: %v %v", id, err)
	}
	// One character off, or a rotated one, is no token this agent
	// knows: refused here, never sent to GitLab.
	for _, tok := range []string{staticToken + "x", strings.ToUpper(staticToken), "static-secret-token-rotated-last-week"} {
		id, err = e.verify(tok)
		wantRefusal(t, id, err, 401, authz.ReasonUnknownToken)
	}
	if n := e.jobs.calls.Load(); n != 0 {
		t.Errorf("%d GitLab calls for tokens that are not job tokens", n)
	}
}

func TestMalformed(t *testing.T) {
	e := newEnv(t, nil)
	for _, tc := range []struct{ name, tok, reason string }{
		{"empty", "", authz.ReasonNoToken},
		{"too long", strings.Repeat("a", authz.MaxTokenLen+1), authz.ReasonMalformedToken},
		{"newline", jobTok + "\n", authz.ReasonMalformedToken},
		{"CR", "glcbt-a\rb", authz.ReasonMalformedToken},
		{"tab", "glcbt-a\tb", authz.ReasonMalformedToken},
		{"NUL", "glcbt-a\x00b", authz.ReasonMalformedToken},
		{"DEL", "glcbt-a\x7fb", authz.ReasonMalformedToken},
		{"non-ASCII", "glcbt-é", authz.ReasonMalformedToken},
		{"JWT header not base64", "e!J.eyJ.sig", authz.ReasonUnknownToken}, // not JWT-shaped, not a job token
		{"JWT header not JSON", b64([]byte("nope")) + ".eyJ9.c2ln", authz.ReasonMalformedToken},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, err := e.verify(tc.tok)
			wantRefusal(t, id, err, 401, tc.reason)
		})
	}
	if n := e.jobs.calls.Load(); n != 0 {
		t.Errorf("%d GitLab calls for malformed tokens", n)
	}
}

func TestIDToken(t *testing.T) {
	e := newEnv(t, nil)
	id, err := e.verify(jwt(keyA, "a", with(e.claims(), "aud", []string{"x", audience}, "environment", "production",
		"environment_protected", true, "deployment_tier", "production")))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"namespace_id": "72", "namespace_path": "group", "project_id": "20", "project_path": "group/app",
		"user_id": "1", "user_login": "alice", "user_email": "alice@example.com", "pipeline_id": "574", "pipeline_source": "push",
		"job_id": "302", "ref": "main", "ref_type": "branch", "ref_path": "refs/heads/main", "ref_protected": "true",
		"environment": "production", "environment_protected": "true", "deployment_tier": "production",
		"runner_id": "7", "runner_environment": "self-hosted", "sha": "714a629c",
		"sub": "project_path:group/app:ref_type:branch:ref:main"}
	if diff := cmp.Diff(&authz.Identity{Kind: authz.IDToken, Claims: want}, id); diff != "" {
		t.Error(diff)
	}
	// Leeway: 29 s past exp and 29 s before nbf and iat are skew.
	for name, c := range map[string]map[string]any{
		"exp 29s ago":     with(e.claims(), "exp", t0.Add(-29*time.Second).Unix()),
		"nbf in 29s":      with(e.claims(), "nbf", t0.Add(29*time.Second).Unix()),
		"iat in 29s":      with(e.claims(), "iat", t0.Add(29*time.Second).Unix()),
		"no nbf, iat":     with(e.claims(), "nbf", nil, "iat", nil),
		"runner as \"9\"": with(e.claims(), "runner_id", "9"),
	} {
		if _, err := e.verify(jwt(keyA, "a", c)); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if n := e.keys.calls.Load(); n != 1 {
		t.Errorf("%d key fetches, want 1", n)
	}
	// Without a runner pin, any runner.
	e = newEnv(t, func(c *authz.Config) { c.RunnerIDs = nil })
	if _, err := e.verify(jwt(keyA, "a", with(e.claims(), "runner_id", 12345))); err != nil {
		t.Errorf("no pin: %v", err)
	}
}

// TestRunnerPin: the runner pin holds for job tokens as for id_tokens, and
// the id_tokens' own pin (deprecated) pins job tokens too.
func TestRunnerPin(t *testing.T) {
	for name, edit := range map[string]func(c *authz.Config){
		"Config.RunnerIDs": nil,
		"OIDC.RunnerIDs":   func(c *authz.Config) { c.RunnerIDs, c.OIDC.RunnerIDs = nil, []int64{9, 7} },
		"both, the same":   func(c *authz.Config) { c.OIDC.RunnerIDs = []int64{9, 7} },
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, edit)
			if _, err := e.verify(jobTok); err != nil {
				t.Fatalf("a job on runner 7: %v", err)
			}
			other := runningJob(1010, "group/app")
			other.Runner.ID = 8
			e.jobs.set("glcbt-other-runner", other, nil)
			id, err := e.verify("glcbt-other-runner")
			ae := wantRefusal(t, id, err, 403, authz.ReasonRunnerMismatch)
			if !strings.Contains(ae.Message, "runner 8") {
				t.Errorf("message %q", ae.Message)
			}
			none := runningJob(1011, "group/app")
			none.Runner = nil
			e.jobs.set("glcbt-no-runner", none, nil)
			id, err = e.verify("glcbt-no-runner")
			wantRefusal(t, id, err, 403, authz.ReasonRunnerMismatch)
			// The refusal is GitLab's answer: cached, not asked again.
			calls := e.jobs.calls.Load()
			e.verify("glcbt-other-runner")
			if n := e.jobs.calls.Load(); n != calls {
				t.Errorf("%d calls, want %d", n, calls)
			}
			id, err = e.verify(jwt(keyA, "a", with(e.claims(), "runner_id", 8)))
			wantRefusal(t, id, err, 403, authz.ReasonRunnerMismatch)
			if _, err := e.verify(jwt(keyA, "a", e.claims())); err != nil {
				t.Errorf("an id_token from runner 7: %v", err)
			}
		})
	}
	// No pin: any runner's job.
	e := newEnv(t, func(c *authz.Config) { c.RunnerIDs = nil })
	other := runningJob(1010, "group/app")
	other.Runner.ID = 8
	e.jobs.set("glcbt-other-runner", other, nil)
	if _, err := e.verify("glcbt-other-runner"); err != nil {
		t.Errorf("no pin: %v", err)
	}
}

type jwtCase struct {
	name, tok string
	status    int
	reason    string
}

// jwtCases each break exactly one check of an otherwise good id_token.
func jwtCases(e *env) []jwtCase {
	good := e.claims()
	pkix, _ := x509.MarshalPKIXPublicKey(&keyA.PublicKey)
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pkix})
	pkcs1 := x509.MarshalPKCS1PublicKey(&keyA.PublicKey)
	jwkJSON, _ := json.Marshal(jose.JSONWebKey{Key: &keyA.PublicKey, KeyID: "a", Algorithm: "RS256", Use: "sig"})
	attackerJWK, _ := json.Marshal(jose.JSONWebKey{Key: &keyAttacker.PublicKey, KeyID: "a"})
	var attackerJWKMap map[string]any
	_ = json.Unmarshal(attackerJWK, &attackerJWKMap)
	goodTok := jwt(keyA, "a", good)
	parts := strings.Split(goodTok, ".")
	otherPayload := strings.Split(jwt(keyA, "a", with(good, "project_path", "group/admin")), ".")[1]
	rs512 := func(in []byte) []byte {
		sum := sha512.Sum512(in)
		sig, _ := rsa.SignPKCS1v15(nil, keyA, crypto.SHA512, sum[:])
		return sig
	}
	ps256 := func(in []byte) []byte {
		sum := sha256.Sum256(in)
		sig, _ := rsa.SignPSS(rand.Reader, keyA, crypto.SHA256, sum[:], nil)
		return sig
	}
	none := func([]byte) []byte { return nil }
	hdr := func(alg string) map[string]any { return map[string]any{"alg": alg, "kid": "a", "typ": "JWT"} }
	return []jwtCase{
		{"alg none", mint(hdr("none"), good, none), 401, authz.ReasonJWTAlgorithm},
		{"alg None", mint(hdr("None"), good, none), 401, authz.ReasonJWTAlgorithm},
		{"no alg", mint(map[string]any{"kid": "a"}, good, rs256(keyA)), 401, authz.ReasonJWTAlgorithm},
		{"HS256 with the public key (PEM)", mint(hdr("HS256"), good, hs256(pemKey)), 401, authz.ReasonJWTAlgorithm},
		{"HS256 with the public key (DER)", mint(hdr("HS256"), good, hs256(pkix)), 401, authz.ReasonJWTAlgorithm},
		{"HS256 with the public key (PKCS1)", mint(hdr("HS256"), good, hs256(pkcs1)), 401, authz.ReasonJWTAlgorithm},
		{"HS256 with the JWK", mint(hdr("HS256"), good, hs256(jwkJSON)), 401, authz.ReasonJWTAlgorithm},
		{"RS512", mint(hdr("RS512"), good, rs512), 401, authz.ReasonJWTAlgorithm},
		{"PS256", mint(hdr("PS256"), good, ps256), 401, authz.ReasonJWTAlgorithm},
		{"no kid", mint(map[string]any{"alg": "RS256"}, good, rs256(keyA)), 401, authz.ReasonJWTUnknownKID},
		{"unknown kid", jwt(keyAttacker, "attacker", good), 401, authz.ReasonJWTUnknownKID},
		{"forged signature", jwt(keyAttacker, "a", good), 401, authz.ReasonJWTSignature},
		{"embedded jwk", mint(map[string]any{"alg": "RS256", "kid": "a", "jwk": attackerJWKMap}, good, rs256(keyAttacker)), 401, authz.ReasonJWTSignature},
		{"tampered payload", parts[0] + "." + otherPayload + "." + parts[2], 401, authz.ReasonJWTSignature},
		{"no signature", parts[0] + "." + parts[1] + ".", 401, authz.ReasonJWTSignature},
		{"expired", jwt(keyA, "a", with(good, "exp", t0.Add(-31*time.Second).Unix())), 401, authz.ReasonJWTExpired},
		{"not yet valid", jwt(keyA, "a", with(good, "nbf", t0.Add(31*time.Second).Unix())), 401, authz.ReasonJWTNotYetValid},
		{"issued in the future", jwt(keyA, "a", with(good, "iat", t0.Add(31*time.Second).Unix())), 401, authz.ReasonJWTNotYetValid},
		{"no exp", jwt(keyA, "a", with(good, "exp", nil)), 401, authz.ReasonJWTClaims},
		{"exp a string", jwt(keyA, "a", with(good, "exp", fmt.Sprint(t0.Add(time.Hour).Unix()))), 401, authz.ReasonJWTClaims},
		{"wrong aud", jwt(keyA, "a", with(good, "aud", "https://vault.example.com")), 401, authz.ReasonJWTAudience},
		{"aud list without ours", jwt(keyA, "a", with(good, "aud", []string{"a", "b"})), 401, authz.ReasonJWTAudience},
		{"no aud", jwt(keyA, "a", with(good, "aud", nil)), 401, authz.ReasonJWTAudience},
		{"aud a number", jwt(keyA, "a", with(good, "aud", 1)), 401, authz.ReasonJWTAudience},
		{"wrong iss", jwt(keyA, "a", with(good, "iss", "https://gitlab.evil.example")), 401, authz.ReasonJWTIssuer},
		{"iss with a slash", jwt(keyA, "a", with(good, "iss", issuer+"/")), 401, authz.ReasonJWTIssuer},
		{"no iss", jwt(keyA, "a", with(good, "iss", nil)), 401, authz.ReasonJWTIssuer},
		{"other runner", jwt(keyA, "a", with(good, "runner_id", 8)), 403, authz.ReasonRunnerMismatch},
		{"no runner", jwt(keyA, "a", with(good, "runner_id", nil)), 403, authz.ReasonRunnerMismatch},
		{"claims not an object", mint(hdr("RS256"), nil, rs256(keyA)), 401, authz.ReasonJWTClaims},
	}
}

// TestIDTokenRefusals: each check refuses the token that breaks it alone.
func TestIDTokenRefusals(t *testing.T) {
	e := newEnv(t, nil)
	if _, err := e.verify(jwt(keyA, "a", e.claims())); err != nil {
		t.Fatalf("the good token: %v", err)
	}
	for _, tc := range jwtCases(e) {
		t.Run(tc.name, func(t *testing.T) {
			id, err := e.verify(tc.tok)
			wantRefusal(t, id, err, tc.status, tc.reason)
		})
	}
	// A JWT when no id_tokens are configured.
	e = newEnv(t, func(c *authz.Config) { c.OIDC = nil })
	id, err := e.verify(jwt(keyA, "a", e.claims()))
	wantRefusal(t, id, err, 401, authz.ReasonJWTNotAccepted)
	if e.jobs.calls.Load() != 0 {
		t.Error("a JWT was sent to GitLab's job API")
	}
}

// TestUnknownKidRefetch: tokens with unknown kids refetch the keys at
// most once per MinRefresh, however many arrive at once.
func TestUnknownKidRefetch(t *testing.T) {
	e := newEnv(t, nil)
	if _, err := e.verify(jwt(keyA, "a", e.claims())); err != nil {
		t.Fatal(err)
	}
	unknown := jwt(keyAttacker, "made-up", e.claims())
	// Within a minute of the first fetch: no refetch at all.
	e.clock.Advance(30 * time.Second)
	id, err := e.verify(unknown)
	wantRefusal(t, id, err, 401, authz.ReasonJWTUnknownKID)
	if n := e.keys.calls.Load(); n != 1 {
		t.Fatalf("%d fetches, want 1", n)
	}
	e.clock.Advance(31 * time.Second)
	e.keys.mu.Lock()
	e.keys.started, e.keys.gate = make(chan struct{}, 1), make(chan struct{})
	e.keys.mu.Unlock()
	var wg sync.WaitGroup
	var refused atomic.Int32
	for range 1000 {
		wg.Go(func() {
			_, err := e.verify(unknown)
			var ae *authz.Error
			if errors.As(err, &ae) && ae.Reason == authz.ReasonJWTUnknownKID {
				refused.Add(1)
			}
		})
	}
	<-e.keys.started
	close(e.keys.gate)
	wg.Wait()
	if n := refused.Load(); n != 1000 {
		t.Errorf("%d of 1000 refused as unknown kid", n)
	}
	if n := e.keys.calls.Load(); n != 2 {
		t.Errorf("%d fetches after 1,000 unknown kids, want 2", n)
	}
	e.clock.Advance(59 * time.Second)
	for range 10 {
		e.verify(unknown)
	}
	if n := e.keys.calls.Load(); n != 2 {
		t.Errorf("%d fetches within the minute, want 2", n)
	}
	e.clock.Advance(time.Second)
	e.verify(unknown)
	if n := e.keys.calls.Load(); n != 3 {
		t.Errorf("%d fetches a minute later, want 3", n)
	}
}

// TestKeyRotation: a token signed with GitLab's new key is accepted once
// the refresh limit allows a refetch; the old key keeps working while
// GitLab publishes it; a withdrawn key stops working within an hour.
func TestKeyRotation(t *testing.T) {
	e := newEnv(t, nil)
	if _, err := e.verify(jwt(keyA, "a", e.claims())); err != nil {
		t.Fatal(err)
	}
	e.keys.serve(jwks(map[string]*rsa.PrivateKey{"a": keyA, "b": keyB}), nil)
	e.clock.Advance(10 * time.Second)
	id, err := e.verify(jwt(keyB, "b", e.claims()))
	wantRefusal(t, id, err, 401, authz.ReasonJWTUnknownKID)
	e.clock.Advance(time.Minute)
	if _, err := e.verify(jwt(keyB, "b", e.claims())); err != nil {
		t.Fatalf("the new key after a minute: %v", err)
	}
	if _, err := e.verify(jwt(keyA, "a", e.claims())); err != nil {
		t.Fatalf("the old key, still published: %v", err)
	}
	e.keys.serve(jwks(map[string]*rsa.PrivateKey{"b": keyB}), nil)
	e.clock.Advance(59 * time.Minute)
	if _, err := e.verify(jwt(keyA, "a", e.claims())); err != nil {
		t.Fatalf("the old key within the hour: %v", err)
	}
	e.clock.Advance(2 * time.Minute)
	id, err = e.verify(jwt(keyA, "a", e.claims()))
	wantRefusal(t, id, err, 401, authz.ReasonJWTUnknownKID)
	if n := e.keys.calls.Load(); n != 3 {
		t.Errorf("%d fetches, want 3", n)
	}
}

// TestKeysUnavailable: with no keys yet, a failed fetch is 503 and is
// retried after a few seconds; keys once fetched outlive a failed
// refresh.
func TestKeysUnavailable(t *testing.T) {
	e := newEnv(t, nil)
	e.keys.serve(nil, &gitlab.UnavailableError{URL: issuer + "/.well-known/openid-configuration", Err: errors.New("connection refused")})
	tok := jwt(keyA, "a", e.claims())
	id, err := e.verify(tok)
	ae := wantRefusal(t, id, err, 503, authz.ReasonJWKSUnavailable)
	if !strings.Contains(ae.Error(), "connection refused") {
		t.Errorf("the refusal does not say why: %v", ae)
	}
	id, err = e.verify(tok)
	wantRefusal(t, id, err, 503, authz.ReasonJWKSUnavailable)
	if n := e.keys.calls.Load(); n != 1 {
		t.Errorf("%d fetches, want 1: retried at once", n)
	}
	e.clock.Advance(5 * time.Second)
	e.keys.serve(jwks(map[string]*rsa.PrivateKey{"a": keyA}), nil)
	if _, err := e.verify(tok); err != nil {
		t.Fatal(err)
	}
	// An hour on, the refresh fails: the keys are kept.
	e.keys.serve(nil, errors.New("GitLab is down"))
	e.clock.Advance(61 * time.Minute)
	if _, err := e.verify(jwt(keyA, "a", e.claims())); err != nil {
		t.Errorf("with GitLab down and keys an hour old: %v", err)
	}
	if n := e.keys.calls.Load(); n != 3 {
		t.Errorf("%d fetches, want 3", n)
	}
	// An unknown kid then: the refetch fails, so the kid may be GitLab's
	// new key: 503, to be tried again.
	e.clock.Advance(time.Minute)
	id, err = e.verify(jwt(keyB, "b", e.claims()))
	wantRefusal(t, id, err, 503, authz.ReasonJWKSUnavailable)
	if n := e.keys.calls.Load(); n != 4 {
		t.Errorf("%d fetches, want 4", n)
	}
	if !strings.Contains(e.logs.String(), "GitLab is down") {
		t.Errorf("the failed refresh is not logged:\n%s", e.logs)
	}
	// Keys that are no RS256 signing keys of 2048 bits are not keys.
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	e = newEnv(t, nil)
	e.keys.serve(&jose.JSONWebKeySet{Keys: []jose.JSONWebKey{
		{Key: &small.PublicKey, KeyID: "small"},
		{Key: &keyA.PublicKey, KeyID: "enc", Use: "enc"},
		{Key: &keyA.PublicKey, KeyID: "ps", Algorithm: "PS256"},
		{Key: &keyA.PublicKey},
	}}, nil)
	id, err = e.verify(jwt(small, "small", e.claims()))
	wantRefusal(t, id, err, 503, authz.ReasonJWKSUnavailable)
}

func TestJobToken(t *testing.T) {
	e := newEnv(t, nil)
	tag := runningJob(1002, "group/sub/app")
	tag.Tag, tag.Ref = true, "v1.0"
	e.jobs.set("glcbt-tag", tag, nil)
	id, err := e.verify("glcbt-tag")
	if err != nil {
		t.Fatal(err)
	}
	want := &authz.Identity{Kind: authz.JobToken, Claims: map[string]string{
		"job_id": "1002", "job_name": "deploy", "ref": "v1.0", "ref_type": "tag", "pipeline_id": "900", "project_id": "42",
		"project_path": "group/sub/app", "namespace_path": "group/sub", "sha": strings.Repeat("ab", 20),
		"user_id": "5", "user_login": "alice", "runner_id": "7"}}
	if diff := cmp.Diff(want, id); diff != "" {
		t.Error(diff)
	}
	for _, f := range authz.Fields(authz.JobToken) {
		if _, ok := id.Claims[f]; !ok {
			t.Errorf("no %s claim", f)
		}
	}
	// A cached job's identity is shared, read-only, by its requests: no
	// copy per request.
	if again, _ := e.verify("glcbt-tag"); again != id {
		t.Error("a cached job's identity was copied")
	}
	// A web_url keyless cannot read: no project_path, so no rule on it
	// matches.
	bad := runningJob(1003, "x")
	bad.WebURL = "https://gitlab.example.com/group/app/-/pipelines/1003"
	e.jobs.set("glcbt-bad-url", bad, nil)
	id, err = e.verify("glcbt-bad-url")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := id.Claims["project_path"]; ok {
		t.Errorf("claims %v", id.Claims)
	}
	if !strings.Contains(e.logs.String(), "web_url") {
		t.Error("the unreadable web_url is not logged")
	}
	// A web_url on another host, or not under GitLab's URL: no
	// project_path nor namespace_path (fail closed), and a warning.
	for i, u := range []string{"https://evil.example.com/group/app/-/jobs/%d", "http://gitlab.example.com/group/app/-/jobs/%d"} {
		j := runningJob(int64(1020+i), "group/app")
		j.WebURL = fmt.Sprintf(u, j.ID)
		tok := fmt.Sprintf("glcbt-elsewhere-%d", i)
		e.jobs.set(tok, j, nil)
		e.logs.Reset()
		id, err := e.verify(tok)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := id.Claims["project_path"]; ok {
			t.Errorf("%s: claims %v", j.WebURL, id.Claims)
		}
		if _, ok := id.Claims["namespace_path"]; ok {
			t.Errorf("%s: claims %v", j.WebURL, id.Claims)
		}
		if !strings.Contains(e.logs.String(), "level=WARN") || !strings.Contains(e.logs.String(), "web_url") {
			t.Errorf("%s: no warning:\n%s", j.WebURL, e.logs)
		}
	}
	// A job of another ID's web_url.
	other := runningJob(1004, "group/app")
	other.WebURL = issuer + "/group/app/-/jobs/1"
	e.jobs.set("glcbt-other-url", other, nil)
	if id, err := e.verify("glcbt-other-url"); err != nil || id.Claims["project_path"] != "" {
		t.Errorf("claims %v, %v", id, err)
	}
}

// TestRelativeURLRoot: with GitLab under a relative URL root, the root is
// not part of the project's path, and a web_url outside it gives none.
func TestRelativeURLRoot(t *testing.T) {
	e := newEnv(t, func(c *authz.Config) { c.GitLabURL = "https://example.com/gitlab" })
	j := runningJob(1030, "team/app")
	j.WebURL = "https://example.com/gitlab/team/app/-/jobs/1030"
	e.jobs.set("glcbt-root", j, nil)
	id, err := e.verify("glcbt-root")
	if err != nil {
		t.Fatal(err)
	}
	if id.Claims["project_path"] != "team/app" || id.Claims["namespace_path"] != "team" {
		t.Errorf("claims %v, want project_path team/app, namespace_path team", id.Claims)
	}
	j = runningJob(1031, "gitlab/app")
	j.WebURL = "https://example.com/gitlab-other/app/x/-/jobs/1031"
	e.jobs.set("glcbt-outside", j, nil)
	if id, err := e.verify("glcbt-outside"); err != nil || id.Claims["project_path"] != "" || id.Claims["namespace_path"] != "" {
		t.Errorf("claims %v, %v", id, err)
	}
}

// TestJobTokenRefusals: a job GitLab says is not running, one whose
// status is not running, and GitLab unreachable.
func TestJobTokenRefusals(t *testing.T) {
	e := newEnv(t, nil)
	id, err := e.verify("glcbt-unknown")
	wantRefusal(t, id, err, 401, authz.ReasonJobNotRunning)
	done := runningJob(1005, "group/app")
	done.Status = "success"
	e.jobs.set("glcbt-done", done, nil)
	id, err = e.verify("glcbt-done")
	wantRefusal(t, id, err, 401, authz.ReasonJobNotRunning)
	e.jobs.set("glcbt-down", nil, &gitlab.UnavailableError{URL: issuer + "/api/v4/job", Status: 502, Err: errors.New("bad gateway")})
	id, err = e.verify("glcbt-down")
	if ae := wantRefusal(t, id, err, 503, authz.ReasonGitLabUnavailable); !strings.Contains(ae.Error(), "bad gateway") {
		t.Errorf("the refusal does not say why: %v", ae)
	}
	// No job source: job tokens are unknown tokens.
	e = newEnv(t, func(c *authz.Config) { c.Jobs = nil })
	id, err = e.verify(jobTok)
	wantRefusal(t, id, err, 401, authz.ReasonUnknownToken)
}

// TestJobTokenCache: a running job is trusted for JobCacheTTL, a refused
// token refused for 5 s, GitLab's outages not cached.
func TestJobTokenCache(t *testing.T) {
	e := newEnv(t, nil)
	for range 3 {
		if _, err := e.verify(jobTok); err != nil {
			t.Fatal(err)
		}
	}
	if n := e.jobs.calls.Load(); n != 1 {
		t.Fatalf("%d calls, want 1", n)
	}
	e.clock.Advance(29 * time.Second)
	e.verify(jobTok)
	if n := e.jobs.calls.Load(); n != 1 {
		t.Fatalf("%d calls at 29 s, want 1", n)
	}
	// The job finishes; its token is honoured until the cache expires.
	e.jobs.set(jobTok, nil, nil)
	e.clock.Advance(time.Second)
	id, err := e.verify(jobTok)
	wantRefusal(t, id, err, 401, authz.ReasonJobNotRunning)
	if n := e.jobs.calls.Load(); n != 2 {
		t.Fatalf("%d calls at 30 s, want 2", n)
	}
	e.clock.Advance(4 * time.Second)
	e.verify(jobTok)
	if n := e.jobs.calls.Load(); n != 2 {
		t.Fatalf("%d calls 4 s after a refusal, want 2", n)
	}
	e.clock.Advance(time.Second)
	e.verify(jobTok)
	if n := e.jobs.calls.Load(); n != 3 {
		t.Fatalf("%d calls 5 s after a refusal, want 3", n)
	}
	// GitLab down: every request asks again (one at a time per token).
	e.jobs.set(jobTok, nil, &gitlab.UnavailableError{URL: issuer, Err: errors.New("timeout")})
	e.clock.Advance(10 * time.Second)
	for range 2 {
		id, err := e.verify(jobTok)
		wantRefusal(t, id, err, 503, authz.ReasonGitLabUnavailable)
	}
	if n := e.jobs.calls.Load(); n != 5 {
		t.Fatalf("%d calls, want 5", n)
	}
	// A shorter TTL.
	e = newEnv(t, func(c *authz.Config) { c.JobCacheTTL = 2 * time.Second })
	e.verify(jobTok)
	e.clock.Advance(2 * time.Second)
	e.verify(jobTok)
	if n := e.jobs.calls.Load(); n != 2 {
		t.Fatalf("%d calls with a 2 s TTL, want 2", n)
	}
}

// TestJobTokenOneCall: 1,000 concurrent requests with one token make one
// GitLab call.
func TestJobTokenOneCall(t *testing.T) {
	e := newEnv(t, nil)
	e.jobs.started, e.jobs.gate = make(chan struct{}, 1), make(chan struct{})
	var wg sync.WaitGroup
	ids := make([]*authz.Identity, 1000)
	errs := make([]error, 1000)
	for i := range 1000 {
		wg.Go(func() { ids[i], errs[i] = e.verify(jobTok) })
	}
	<-e.jobs.started
	close(e.jobs.gate)
	wg.Wait()
	for i := range 1000 {
		if errs[i] != nil || ids[i].Claims["job_id"] != "1001" {
			t.Fatalf("request %d: %v %v", i, ids[i], errs[i])
		}
	}
	if n := e.jobs.calls.Load(); n != 1 {
		t.Errorf("%d GitLab calls, want 1", n)
	}
}

// TestJobTokenOneGitLabCall: the same through the real client and the
// fake GitLab over HTTP.
func TestJobTokenOneGitLabCall(t *testing.T) {
	fake := gitlabfake.New(gitlabfake.Options{})
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	fake.SetIssuer(srv.URL)
	client, err := gitlab.New(gitlab.Config{BaseURL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	v, err := authz.NewVerifier(authz.Config{Clock: testkit.NewClock(t0), Jobs: client, GitLabURL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	tok := fake.AddJob(gitlabfake.Job{ID: 2001, ProjectID: 42, ProjectPath: "infra/site", Ref: "main"})
	var wg sync.WaitGroup
	var ok atomic.Int32
	for range 1000 {
		wg.Go(func() {
			id, err := v.Verify(context.Background(), authz.Credential{Token: tok})
			if err == nil && id.Claims["project_path"] == "infra/site" && id.Claims["project_id"] == "42" && id.Claims["job_id"] == "2001" {
				ok.Add(1)
			}
		})
	}
	wg.Wait()
	if n := ok.Load(); n != 1000 {
		t.Errorf("%d of 1000 verified", n)
	}
	if n := fake.Calls(gitlabfake.EndpointJob); n != 1 {
		t.Errorf("%d GitLab job API calls, want 1", n)
	}
	// A finished job, once the cache has expired, through the client.
	fake.FinishJob(2001)
	v2, _ := authz.NewVerifier(authz.Config{Clock: testkit.NewClock(t0), Jobs: client, GitLabURL: srv.URL})
	_, err = v2.Verify(context.Background(), authz.Credential{Token: tok})
	var ae *authz.Error
	if !errors.As(err, &ae) || ae.Reason != authz.ReasonJobNotRunning || ae.Status != 401 {
		t.Errorf("finished job: %v", err)
	}
}

// TestIDTokensFromTheFake: the fake's id_tokens verify through the real
// key source, and its forged ones do not.
func TestIDTokensFromTheFake(t *testing.T) {
	clk := testkit.NewClock(t0)
	fake := gitlabfake.New(gitlabfake.Options{Clock: clk})
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	fake.SetIssuer(srv.URL)
	client, err := gitlab.New(gitlab.Config{})
	if err != nil {
		t.Fatal(err)
	}
	v, err := authz.NewVerifier(authz.Config{Clock: clk, OIDC: &authz.OIDC{Issuer: srv.URL, Audiences: []string{"keyless"}, Keys: client.OIDCKeys(srv.URL)}})
	if err != nil {
		t.Fatal(err)
	}
	fake.AddJob(gitlabfake.Job{ID: 3001, ProjectID: 42, ProjectPath: "infra/site", RefProtected: true, RunnerID: 3})
	id, err := v.Verify(context.Background(), authz.Credential{Token: fake.JobIDToken(3001, "keyless", 0)})
	if err != nil {
		t.Fatal(err)
	}
	if id.Claims["project_path"] != "infra/site" || id.Claims["ref_protected"] != "true" || id.Claims["runner_id"] != "3" || id.Claims["namespace_path"] != "infra" {
		t.Errorf("claims %v", id.Claims)
	}
	_, err = v.Verify(context.Background(), authz.Credential{Token: fake.ForgedIDToken(map[string]any{"aud": "keyless", "project_path": "infra/site"})})
	var ae *authz.Error
	if !errors.As(err, &ae) || ae.Reason != authz.ReasonJWTSignature {
		t.Errorf("forged: %v", err)
	}
	// Rotation: the new key's tokens verify after one refetch, a minute on.
	fake.RotateKey()
	clk.Advance(time.Minute)
	if _, err := v.Verify(context.Background(), authz.Credential{Token: fake.JobIDToken(3001, "keyless", 0)}); err != nil {
		t.Fatalf("after rotation: %v", err)
	}
	if d, k := fake.Calls(gitlabfake.EndpointDiscovery), fake.Calls(gitlabfake.EndpointKeys); d != 2 || k != 2 {
		t.Errorf("discovery %d, keys %d calls; want 2 each", d, k)
	}
}

// TestCallerLeaves: a caller that gives up does not fail the others
// waiting on the same GitLab call, and its answer is cached.
func TestCallerLeaves(t *testing.T) {
	e := newEnv(t, nil)
	e.jobs.started, e.jobs.gate = make(chan struct{}, 1), make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	first := make(chan error)
	go func() {
		_, err := e.v.Verify(ctx, authz.Credential{Token: jobTok})
		first <- err
	}()
	<-e.jobs.started
	second := make(chan error)
	go func() {
		_, err := e.verify(jobTok)
		second <- err
	}()
	cancel()
	var ae *authz.Error
	if err := <-first; !errors.As(err, &ae) || ae.Reason != authz.ReasonCanceled {
		t.Errorf("the caller that left: %v", err)
	}
	close(e.jobs.gate)
	if err := <-second; err != nil {
		t.Errorf("the caller that waited: %v", err)
	}
	if _, err := e.verify(jobTok); err != nil || e.jobs.calls.Load() != 1 {
		t.Errorf("%d calls, %v", e.jobs.calls.Load(), err)
	}
}

// TestJobCacheBounded: a flood of made-up tokens fills the bounded cache
// of refusals, and evicts no verified job from its own cache.
func TestJobCacheBounded(t *testing.T) {
	e := newEnv(t, nil)
	if _, err := e.verify(jobTok); err != nil {
		t.Fatal(err)
	}
	for i := range authz.MaxNegCache + 100 {
		e.verify(fmt.Sprintf("glcbt-flood-%d", i))
	}
	if n := e.v.NegCacheLen(); n > authz.MaxNegCache {
		t.Errorf("%d cached refusals, at most %d", n, authz.MaxNegCache)
	}
	if n := e.v.JobCacheLen(); n != 1 {
		t.Errorf("%d cached jobs, want 1", n)
	}
	calls := e.jobs.calls.Load()
	if _, err := e.verify(jobTok); err != nil {
		t.Fatal(err)
	}
	if n := e.jobs.calls.Load(); n != calls {
		t.Errorf("the verified job was asked of GitLab again after a flood: %d calls, want %d", n, calls)
	}
}

// TestJobCallsBounded: however many distinct tokens arrive at once, at
// most MaxJobCalls GitLab calls are in flight; beyond, a new token is
// refused at once, 503 gitlab-busy, while a token already being asked
// about, or cached, is answered as ever.
func TestJobCallsBounded(t *testing.T) {
	e := newEnv(t, nil)
	if _, err := e.verify(jobTok); err != nil { // cached
		t.Fatal(err)
	}
	e.jobs.mu.Lock()
	e.jobs.gate = make(chan struct{})
	e.jobs.mu.Unlock()
	var wg sync.WaitGroup
	for i := range authz.MaxJobCalls {
		tok := fmt.Sprintf("glcbt-slow-%d", i)
		e.jobs.set(tok, runningJob(int64(2000+i), "group/app"), nil)
		wg.Go(func() {
			if _, err := e.verify(tok); err != nil {
				t.Errorf("%s: %v", tok, err)
			}
		})
	}
	for deadline := time.Now().Add(10 * time.Second); e.jobs.calls.Load() < int32(1+authz.MaxJobCalls); {
		if time.Now().After(deadline) {
			t.Fatalf("%d calls started", e.jobs.calls.Load())
		}
		time.Sleep(time.Millisecond)
	}
	// Without the bound this would wait on GitLab: give up after a while.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	id, err := e.v.Verify(ctx, authz.Credential{Token: "glcbt-one-more"})
	wantRefusal(t, id, err, 503, authz.ReasonGitLabBusy)
	if n := e.jobs.calls.Load(); n != int32(1+authz.MaxJobCalls) {
		t.Errorf("%d calls, want %d", n, 1+authz.MaxJobCalls)
	}
	if _, err := e.verify(jobTok); err != nil {
		t.Errorf("a cached job while GitLab is busy: %v", err)
	}
	joined := make(chan error, 1)
	go func() { _, err := e.verify("glcbt-slow-0"); joined <- err }()
	close(e.jobs.gate)
	wg.Wait()
	if err := <-joined; err != nil {
		t.Errorf("a token joining a call in flight: %v", err)
	}
	// Room again.
	id, err = e.verify("glcbt-one-more")
	wantRefusal(t, id, err, 401, authz.ReasonJobNotRunning)
}

func TestNewVerifier(t *testing.T) {
	testKeys(t)
	ks := &keySource{}
	sum := sha256.Sum256([]byte("x"))
	for _, tc := range []struct {
		name string
		c    authz.Config
		want string
	}{
		{"negative TTL", authz.Config{JobCacheTTL: -time.Second}, "negative"},
		{"static without name", authz.Config{Static: []authz.StaticToken{{SHA256: sum}}}, "no name"},
		{"static twice", authz.Config{Static: []authz.StaticToken{{Name: "a", SHA256: sum}, {Name: "a", SHA256: sha256.Sum256(nil)}}}, "used twice"},
		{"static same hash", authz.Config{Static: []authz.StaticToken{{Name: "a", SHA256: sum}, {Name: "b", SHA256: sum}}}, "another"},
		{"static no hash", authz.Config{Static: []authz.StaticToken{{Name: "a"}}}, "no SHA-256"},
		{"no issuer", authz.Config{OIDC: &authz.OIDC{Audiences: []string{"k"}, Keys: ks}}, "issuer"},
		{"issuer not a URL", authz.Config{OIDC: &authz.OIDC{Issuer: "gitlab", Audiences: []string{"k"}, Keys: ks}}, "issuer"},
		{"no audience", authz.Config{OIDC: &authz.OIDC{Issuer: issuer, Keys: ks}}, "audience"},
		{"empty audience", authz.Config{OIDC: &authz.OIDC{Issuer: issuer, Audiences: []string{""}, Keys: ks}}, "audience"},
		{"no keys", authz.Config{OIDC: &authz.OIDC{Issuer: issuer, Audiences: []string{"k"}}}, "key source"},
		{"negative refresh", authz.Config{OIDC: &authz.OIDC{Issuer: issuer, Audiences: []string{"k"}, Keys: ks, MinRefresh: -1}}, "negative"},
		{"huge leeway", authz.Config{OIDC: &authz.OIDC{Issuer: issuer, Audiences: []string{"k"}, Keys: ks, Leeway: time.Hour}}, "leeway"},
		{"job tokens without GitLab's URL", authz.Config{Jobs: &jobSource{}}, "GitLab URL"},
		{"GitLab's URL not a URL", authz.Config{Jobs: &jobSource{}, GitLabURL: "gitlab.example.com"}, "GitLab URL"},
		{"GitLab's URL with a query", authz.Config{Jobs: &jobSource{}, GitLabURL: issuer + "?a=b"}, "GitLab URL"},
		{"two runner pins", authz.Config{RunnerIDs: []int64{7}, OIDC: &authz.OIDC{Issuer: issuer, Audiences: []string{"k"}, Keys: ks, RunnerIDs: []int64{8}}}, "pinned twice"},
	} {
		if _, err := authz.NewVerifier(tc.c); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error saying %q", tc.name, err, tc.want)
		}
	}
	if _, err := authz.NewVerifier(authz.Config{}); err != nil {
		t.Errorf("the zero config: %v", err)
	}
}

// TestNoTokenInLogsOrErrors: every refusal (and acceptance) is logged and
// returned without the token.
func TestNoTokenInLogsOrErrors(t *testing.T) {
	e := newEnv(t, nil)
	finished := runningJob(1009, "group/app")
	finished.Status = "success"
	e.jobs.set("glcbt-finished-job-token-value", finished, nil)
	tokens := []string{
		staticToken, jobTok, jwt(keyA, "a", e.claims()), "glcbt-finished-job-token-value", "garbage-token-nobody-issued",
		staticToken + "-wrong", jobTok + "\n", strings.Repeat("long-token", 500), "glcbt-\x1b[31mred",
	}
	for _, tc := range jwtCases(e) {
		tokens = append(tokens, tc.tok)
	}
	var errs []string
	check := func(e *env) {
		for _, tok := range tokens {
			_, err := e.verify(tok)
			if err != nil {
				errs = append(errs, err.Error())
				var ae *authz.Error
				if errors.As(err, &ae) {
					errs = append(errs, ae.Message)
				}
			}
		}
	}
	check(e)
	// And with GitLab and its keys down.
	down := newEnv(t, func(c *authz.Config) {
		c.Logger = slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	down.jobs.set(jobTok, nil, &gitlab.UnavailableError{URL: issuer + "/api/v4/job", Err: errors.New("connection refused")})
	down.keys.serve(nil, errors.New("connection refused"))
	check(down)
	logs := e.logs.String()
	if !strings.Contains(logs, "caller refused") || !strings.Contains(logs, authz.ReasonJWTSignature) {
		t.Fatalf("the refusals are not logged:\n%s", logs)
	}
	for i, tok := range tokens {
		if strings.Contains(logs, tok) {
			t.Errorf("the log holds token %d", i)
		}
		// Even a token's signature alone.
		if parts := strings.Split(tok, "."); len(parts) == 3 && len(parts[2]) > 20 && strings.Contains(logs, parts[2]) {
			t.Errorf("the log holds token %d's signature", i)
		}
		for _, s := range errs {
			if strings.Contains(s, tok) {
				t.Errorf("an error holds token %d: %s", i, s)
			}
		}
	}
}

func TestJWTShape(t *testing.T) {
	// Only JWT-shaped tokens reach the id_token checks, only job-token
	// shaped ones GitLab's job API; the rest are refused here.
	e := newEnv(t, nil)
	for _, tok := range []string{"a.b", "a.b.c.d", ".b.c", "a..c", "a.b.c=", "a+b.c.d", "garbage", "glcbt", "xglcbt-abc",
		"a.b-glcbt-c", "glpat-abcdefghijklmnopqrst", "abcdefghijklmnopqrst", " glcbt-x", "a b-glcbt-x"} {
		id, err := e.verify(tok)
		wantRefusal(t, id, err, 401, authz.ReasonUnknownToken)
	}
	if n := e.jobs.calls.Load(); n != 0 {
		t.Errorf("%d GitLab calls for tokens that are no job tokens", n)
	}
}

// TestJobTokenShape: tokens starting "glcbt-", after an instance's custom
// prefix or not, are job tokens, asked of GitLab's job API even when
// what follows is a JWT (GitLab's JWT-format job tokens).
func TestJobTokenShape(t *testing.T) {
	e := newEnv(t, nil)
	jwtJob := "glcbt-" + jwt(keyA, "a", e.claims())
	prefixed := "mycorp-glcbt-64_1234567890abcdef"
	prefixedJWT := "my_corp-" + jwtJob
	dashed := "my-corp-glcbt-xyz"
	for i, tok := range []string{jwtJob, prefixed, prefixedJWT, dashed} {
		if !authz.JobTokenShaped(tok) {
			t.Errorf("%d: not job-token shaped", i)
		}
		e.jobs.set(tok, runningJob(int64(3000+i), "group/app"), nil)
		id, err := e.verify(tok)
		if err != nil {
			t.Fatalf("%d: %v", i, err)
		}
		if id.Kind != authz.JobToken || id.Claims["job_id"] != fmt.Sprint(3000+i) {
			t.Errorf("%d: identity %v", i, id)
		}
	}
	if n := e.jobs.calls.Load(); n != 4 {
		t.Errorf("%d GitLab calls, want 4", n)
	}
	if n := e.keys.calls.Load(); n != 0 {
		t.Errorf("a job token was verified as an id_token: %d key fetches", n)
	}
	for _, tok := range []string{"glcbt", "glcbtx-", "aglcbt-", "a.b-glcbt-", "-glcbt-x", "eyJ.eyJ.sig"} {
		want := tok == "-glcbt-x"
		if authz.JobTokenShaped(tok) != want {
			t.Errorf("JobTokenShaped(%q) = %v", tok, !want)
		}
	}
}
