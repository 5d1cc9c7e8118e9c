package gitlabfake_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/keyless-dev/keyless/internal/gitlab/gitlabfake"
	"github.com/keyless-dev/keyless/internal/testkit"
)

var t0 = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

func get(t *testing.T, url string, header map[string]string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s: Content-Type %q", url, ct)
	}
	return resp.StatusCode, body
}

func TestJobAPI(t *testing.T) {
	f := gitlabfake.New(gitlabfake.Options{})
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	tok := f.AddJob(gitlabfake.Job{ID: 12, ProjectPath: "a/b"})
	if !regexp.MustCompile(`^glcbt-[A-Za-z0-9_-]{40}$`).MatchString(tok) {
		t.Errorf("token %q does not look like GitLab's", tok)
	}
	if other := f.AddJob(gitlabfake.Job{ID: 13}); other == tok {
		t.Error("two jobs, one token")
	}
	// No issuer set: web_url is on the request's host.
	status, body := get(t, srv.URL+gitlabfake.JobPath, map[string]string{"JOB-TOKEN": tok})
	var j struct {
		ID     int64  `json:"id"`
		Status string `json:"status"`
		WebURL string `json:"web_url"`
	}
	if err := json.Unmarshal(body, &j); status != 200 || err != nil || j.ID != 12 || j.Status != "running" || j.WebURL != srv.URL+"/a/b/-/jobs/12" {
		t.Errorf("%d %s", status, body)
	}
	for name, h := range map[string]map[string]string{
		"no token": nil, "unknown": {"JOB-TOKEN": "glcbt-x"}, "wrong header": {"PRIVATE-TOKEN": tok},
	} {
		if status, body := get(t, srv.URL+gitlabfake.JobPath, h); status != 401 || !strings.Contains(string(body), "401 Unauthorized") {
			t.Errorf("%s: %d %s", name, status, body)
		}
	}
	if !f.FinishJob(12) || f.FinishJob(99) {
		t.Error("FinishJob's answers")
	}
	if status, _ := get(t, srv.URL+gitlabfake.JobPath, map[string]string{"JOB-TOKEN": tok}); status != 401 {
		t.Errorf("finished job: %d", status)
	}
	if n := f.Calls(gitlabfake.EndpointJob); n != 5 {
		t.Errorf("%d calls counted, want 5", n)
	}
	f.ResetCalls()
	if n := f.Calls(gitlabfake.EndpointJob); n != 0 {
		t.Errorf("%d calls after reset", n)
	}
	if status, _ := get(t, srv.URL+"/api/v4/projects", nil); status != 404 {
		t.Errorf("unknown path: %d", status)
	}
}

// TestIDTokens: the fake's tokens verify with its published keys and
// carry GitLab's documented claims; forged ones do not verify; rotation
// publishes the new key beside the old one.
func TestIDTokens(t *testing.T) {
	clk := testkit.NewClock(t0)
	f := gitlabfake.New(gitlabfake.Options{Clock: clk, Issuer: "https://gitlab.example.com/"})
	if f.Issuer() != "https://gitlab.example.com" {
		t.Errorf("issuer %q", f.Issuer())
	}
	f.AddJob(gitlabfake.Job{ID: 302, ProjectID: 20, ProjectPath: "my-group/my-project", Ref: "main", RefProtected: true,
		Environment: "production", RunnerID: 7})
	tok := f.JobIDToken(302, "keyless", time.Hour)
	claims := verify(t, f, tok)
	want := map[string]any{
		"iss": "https://gitlab.example.com", "aud": "keyless", "iat": float64(t0.Unix()), "nbf": float64(t0.Unix() - 5),
		"exp": float64(t0.Add(time.Hour).Unix()), "namespace_path": "my-group", "project_id": "20", "project_path": "my-group/my-project",
		"job_id": "302", "ref": "main", "ref_type": "branch", "ref_path": "refs/heads/main", "ref_protected": "true",
		"environment": "production", "environment_protected": "false", "runner_id": float64(7), "runner_environment": "self-hosted",
		"sub": "project_path:my-group/my-project:ref_type:branch:ref:main",
	}
	for k, v := range want {
		if claims[k] != v {
			t.Errorf("claim %s = %v (%T), want %v", k, claims[k], claims[k], v)
		}
	}
	for _, k := range []string{"namespace_id", "user_id", "user_login", "user_email", "pipeline_id", "pipeline_source", "deployment_tier", "sha", "jti"} {
		if _, ok := claims[k]; !ok {
			t.Errorf("no %s claim", k)
		}
	}
	if f.JobIDToken(999, "keyless", 0) != "" {
		t.Error("a token for an unknown job")
	}
	// Overrides and removals.
	c := verify(t, f, f.IDToken(map[string]any{"iss": "https://other", "exp": nil}, "a", 0))
	if _, ok := c["exp"]; ok || c["iss"] != "https://other" || c["aud"] != "a" {
		t.Errorf("claims %v", c)
	}
	// Forged: GitLab's kid, another key.
	forged := f.ForgedIDToken(map[string]any{"aud": "keyless"})
	jws, err := jose.ParseSignedCompact(forged, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		t.Fatal(err)
	}
	if jws.Signatures[0].Header.KeyID != f.KeyID() {
		t.Error("the forged token does not name GitLab's key")
	}
	if _, err := jws.Verify(f.PublicKey()); err == nil {
		t.Error("the forged token verifies")
	}
	old := f.KeyID()
	kid := f.RotateKey()
	if kid == old || f.KeyID() != kid {
		t.Errorf("kid %s after rotation, was %s", kid, old)
	}
	set := f.JWKS()
	if len(set.Keys) != 2 || len(set.Key(old)) != 1 || len(set.Key(kid)) != 1 {
		t.Errorf("JWKS after rotation: %d keys", len(set.Keys))
	}
	verify(t, f, f.IDToken(nil, "keyless", 0))
}

func verify(t *testing.T, f *gitlabfake.Server, tok string) map[string]any {
	t.Helper()
	jws, err := jose.ParseSignedCompact(tok, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		t.Fatal(err)
	}
	kid := jws.Signatures[0].Header.KeyID
	keys := f.JWKS().Key(kid)
	if len(keys) != 1 {
		t.Fatalf("kid %q not in the JWKS", kid)
	}
	payload, err := jws.Verify(keys[0].Key)
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	return claims
}

func TestDiscovery(t *testing.T) {
	f := gitlabfake.New(gitlabfake.Options{})
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	f.SetIssuer(srv.URL)
	status, body := get(t, srv.URL+gitlabfake.DiscoveryPath, nil)
	var d struct {
		Issuer  string   `json:"issuer"`
		JWKSURI string   `json:"jwks_uri"`
		Algs    []string `json:"id_token_signing_alg_values_supported"`
	}
	if err := json.Unmarshal(body, &d); status != 200 || err != nil || d.Issuer != srv.URL || d.JWKSURI != srv.URL+gitlabfake.KeysPath ||
		len(d.Algs) != 1 || d.Algs[0] != "RS256" {
		t.Errorf("%d %s", status, body)
	}
	status, body = get(t, srv.URL+gitlabfake.KeysPath, nil)
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(body, &set); status != 200 || err != nil || len(set.Keys) != 1 || !set.Keys[0].IsPublic() ||
		set.Keys[0].KeyID != f.KeyID() || set.Keys[0].Algorithm != "RS256" || set.Keys[0].Use != "sig" {
		t.Errorf("%d %s", status, body)
	}
	if f.Calls(gitlabfake.EndpointDiscovery) != 1 || f.Calls(gitlabfake.EndpointKeys) != 1 {
		t.Error("calls not counted")
	}
}
