package gitlab_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/keyless-dev/keyless/internal/gitlab"
	"github.com/keyless-dev/keyless/internal/gitlab/gitlabfake"
)

func newClient(t *testing.T, base string) *gitlab.Client {
	t.Helper()
	c, err := gitlab.New(gitlab.Config{BaseURL: base, UserAgent: "keyless-test/1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// fake starts the fake GitLab behind httptest.
func fake(t *testing.T) (*gitlabfake.Server, *httptest.Server) {
	t.Helper()
	f := gitlabfake.New(gitlabfake.Options{})
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	f.SetIssuer(srv.URL)
	return f, srv
}

func TestJobRunning(t *testing.T) {
	f, srv := fake(t)
	var seen http.Header
	wrap := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = r.Header.Clone()
		f.ServeHTTP(w, r)
	}))
	t.Cleanup(wrap.Close)
	f.SetIssuer(srv.URL)
	tok := f.AddJob(gitlabfake.Job{ID: 1001, Name: "deploy", ProjectID: 42, ProjectPath: "group/sub/app", Ref: "v1.2", Tag: true,
		PipelineID: 77, SHA: strings.Repeat("ab", 20), UserID: 5, UserLogin: "alice", RunnerID: 9})
	j, err := newClient(t, wrap.URL+"/").Job(context.Background(), tok)
	if err != nil {
		t.Fatal(err)
	}
	if j.ID != 1001 || j.Name != "deploy" || j.Status != "running" || j.Ref != "v1.2" || !j.Tag ||
		j.WebURL != srv.URL+"/group/sub/app/-/jobs/1001" {
		t.Errorf("job %+v", j)
	}
	if p := j.Pipeline; p.ID != 77 || p.ProjectID != 42 || p.Ref != "v1.2" || p.SHA != strings.Repeat("ab", 20) || p.Status != "running" {
		t.Errorf("pipeline %+v", p)
	}
	if j.User == nil || j.User.ID != 5 || j.User.Username != "alice" || j.Runner == nil || j.Runner.ID != 9 {
		t.Errorf("user %+v runner %+v", j.User, j.Runner)
	}
	if seen.Get("Job-Token") != tok || seen.Get("User-Agent") != "keyless-test/1" || seen.Get("Accept") != "application/json" {
		t.Errorf("request headers %v", seen)
	}
	if n := f.Calls(gitlabfake.EndpointJob); n != 1 {
		t.Errorf("%d job API calls", n)
	}
}

// TestJobNotRunning: every way GitLab says the token is not a running
// job's is ErrJobNotRunning, and no error holds the token.
func TestJobNotRunning(t *testing.T) {
	f, srv := fake(t)
	c := newClient(t, srv.URL)
	finished := f.AddJob(gitlabfake.Job{ID: 1})
	f.FinishJob(1)
	pending := f.AddJob(gitlabfake.Job{ID: 2})
	f.SetJobStatus(2, "pending")
	replaced := f.AddJob(gitlabfake.Job{ID: 3})
	f.AddJob(gitlabfake.Job{ID: 3})
	for _, tc := range []struct{ name, token string }{
		{"unknown", gitlabfake.TokenPrefix + "nothing-like-it"},
		{"finished", finished},
		{"pending", pending},
		{"replaced", replaced},
		{"newline", "glcbt-abc\r\nX-Evil: 1"},
		{"empty", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j, err := c.Job(context.Background(), tc.token)
			if !errors.Is(err, gitlab.ErrJobNotRunning) || j != nil {
				t.Fatalf("job %v, error %v", j, err)
			}
			if tc.token != "" && strings.Contains(err.Error(), tc.token) {
				t.Errorf("the error holds the token: %v", err)
			}
		})
	}
	for _, status := range []int{401, 403, 404} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				http.Error(w, `{"message":"no"}`, status)
			}))
			t.Cleanup(srv.Close)
			_, err := newClient(t, srv.URL).Job(context.Background(), "glcbt-secret")
			if !errors.Is(err, gitlab.ErrJobNotRunning) {
				t.Fatalf("error %v", err)
			}
		})
	}
}

// TestJobUnavailable: network errors, timeouts, unexpected statuses and
// answers that are not a job are *UnavailableError, never holding the
// token.
func TestJobUnavailable(t *testing.T) {
	const tok = "glcbt-the-secret-token-value"
	big := strings.Repeat("x", 2<<20)
	cases := []struct {
		name    string
		handler http.HandlerFunc
		status  int
	}{
		{"500", func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, `{"message":"500 Internal Server Error"}`, http.StatusInternalServerError)
		}, 500},
		{"502 html", func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "<html>bad gateway</html>", http.StatusBadGateway)
		}, 502},
		{"429", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "slow down", http.StatusTooManyRequests) }, 429},
		{"200 not json", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("<html>sign in</html>")) }, 200},
		{"200 no id", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(`{"status":"running"}`)) }, 200},
		{"200 too big", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(`{"id":1,"name":"` + big + `"}`)) }, 200},
		{"dropped", func(w http.ResponseWriter, r *http.Request) {
			c, _, _ := w.(http.Hijacker).Hijack()
			c.Close()
		}, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(tc.handler)
			t.Cleanup(srv.Close)
			_, err := newClient(t, srv.URL).Job(context.Background(), tok)
			var ue *gitlab.UnavailableError
			if !errors.As(err, &ue) || ue.Status != tc.status {
				t.Fatalf("error %v (%T), want *UnavailableError with status %d", err, err, tc.status)
			}
			if errors.Is(err, gitlab.ErrJobNotRunning) {
				t.Error("unavailable and not running at once")
			}
			if strings.Contains(err.Error(), tok) {
				t.Errorf("the error holds the token: %v", err)
			}
		})
	}
	t.Run("connection refused", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		_, err = newClient(t, "http://"+addr).Job(context.Background(), tok)
		var ue *gitlab.UnavailableError
		if !errors.As(err, &ue) || ue.Status != 0 || strings.Contains(err.Error(), tok) {
			t.Fatalf("error %v", err)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		release := make(chan struct{})
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-release }))
		t.Cleanup(srv.Close)
		t.Cleanup(func() { close(release) })
		c, err := gitlab.New(gitlab.Config{BaseURL: srv.URL, HTTP: &http.Client{Timeout: 100 * time.Millisecond}})
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.Job(context.Background(), tok)
		var ue *gitlab.UnavailableError
		if !errors.As(err, &ue) || strings.Contains(err.Error(), tok) {
			t.Fatalf("error %v", err)
		}
	})
}

// TestRedirects: the JOB-TOKEN header follows a redirect only on
// GitLab's own host.
func TestRedirects(t *testing.T) {
	const tok = "glcbt-redirected-token"
	var leaked atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Job-Token") != "" {
			leaked.Add(1)
		}
		w.Write([]byte(`{"id":1,"status":"running"}`))
	}))
	t.Cleanup(other.Close)
	mux := http.NewServeMux()
	mux.HandleFunc("/away/api/v4/job", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+"/api/v4/job", http.StatusFound)
	})
	mux.HandleFunc("/here/api/v4/job", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/there/api/v4/job", http.StatusMovedPermanently)
	})
	mux.HandleFunc("/there/api/v4/job", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Job-Token") != tok {
			http.Error(w, "no token", http.StatusUnauthorized)
			return
		}
		w.Write([]byte(`{"id":7,"status":"running"}`))
	})
	mux.HandleFunc("/loop/api/v4/job", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, r.URL.Path, http.StatusFound)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	_, err := newClient(t, srv.URL+"/away").Job(context.Background(), tok)
	var ue *gitlab.UnavailableError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "redirect") {
		t.Errorf("redirect to another host: %v", err)
	}
	if leaked.Load() != 0 {
		t.Error("the job token went to another host")
	}
	j, err := newClient(t, srv.URL+"/here").Job(context.Background(), tok)
	if err != nil || j.ID != 7 {
		t.Errorf("redirect on the same host: %v %v", j, err)
	}
	if _, err := newClient(t, srv.URL+"/loop").Job(context.Background(), tok); !errors.As(err, &ue) {
		t.Errorf("redirect loop: %v", err)
	}
}

func TestNew(t *testing.T) {
	for _, bad := range []string{"gitlab.example.com", "ftp://gitlab.example.com", "https://", "https://u:p@gitlab.example.com",
		"https://gitlab.example.com/?x=1", "https://gitlab.example.com/#f", "://"} {
		if _, err := gitlab.New(gitlab.Config{BaseURL: bad}); err == nil {
			t.Errorf("New accepted %q", bad)
		} else if strings.Contains(err.Error(), "u:p@") {
			t.Errorf("the error shows the password: %v", err)
		}
	}
	c, err := gitlab.New(gitlab.Config{BaseURL: "https://gitlab.example.com/"})
	if err != nil || c.URL() != "https://gitlab.example.com" {
		t.Errorf("URL %q, %v", c.URL(), err)
	}
	// No URL: a client for OIDC keys only.
	c, err = gitlab.New(gitlab.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Job(context.Background(), "glcbt-x"); err == nil || errors.Is(err, gitlab.ErrJobNotRunning) {
		t.Errorf("Job with no URL: %v", err)
	}
}

func TestOIDCKeys(t *testing.T) {
	f, srv := fake(t)
	ks := newClient(t, "").OIDCKeys(srv.URL)
	set, err := ks.Keys(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(set.Keys) != 1 || set.Keys[0].KeyID != f.KeyID() || !set.Keys[0].IsPublic() {
		t.Fatalf("keys %+v", set.Keys)
	}
	if pub, ok := set.Keys[0].Key.(*rsa.PublicKey); !ok || !pub.Equal(f.PublicKey()) {
		t.Errorf("key %T", set.Keys[0].Key)
	}
	if f.Calls(gitlabfake.EndpointDiscovery) != 1 || f.Calls(gitlabfake.EndpointKeys) != 1 {
		t.Errorf("calls: discovery %d keys %d", f.Calls(gitlabfake.EndpointDiscovery), f.Calls(gitlabfake.EndpointKeys))
	}
	kid := f.RotateKey()
	set, err = ks.Keys(context.Background())
	if err != nil || len(set.Keys) != 2 || set.Keys[0].KeyID != kid {
		t.Errorf("after rotation: %+v %v", set, err)
	}
}

// TestOIDCKeysRefused: the discovery document must name the configured
// issuer exactly and point at keys on its host.
func TestOIDCKeysRefused(t *testing.T) {
	var otherCalls atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		otherCalls.Add(1)
		w.Write([]byte(`{"keys":[]}`))
	}))
	t.Cleanup(other.Close)
	privJWKS := func() []byte {
		k, _ := rsa.GenerateKey(rand.Reader, 2048)
		b, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: k, KeyID: "x", Algorithm: "RS256", Use: "sig"}}})
		return b
	}()
	var base string
	cases := []struct {
		name      string
		discovery func() string
		keys      []byte
		keyStatus int
		want      string
	}{
		{"other issuer", func() string { return `{"issuer":"https://evil.example.com","jwks_uri":"` + base + `/keys"}` }, nil, 200, "names the issuer"},
		{"issuer with slash", func() string { return `{"issuer":"` + base + `/","jwks_uri":"` + base + `/keys"}` }, nil, 200, "names the issuer"},
		{"no jwks_uri", func() string { return `{"issuer":"` + base + `"}` }, nil, 200, "no jwks_uri"},
		{"jwks elsewhere", func() string { return `{"issuer":"` + base + `","jwks_uri":"` + other.URL + `/keys"}` }, nil, 200, "not on the issuer's host"},
		{"not json", func() string { return `<html>` }, nil, 200, "not an OIDC discovery document"},
		{"keys 500", func() string { return `{"issuer":"` + base + `","jwks_uri":"` + base + `/keys"}` }, []byte(`{}`), 500, "answered 500"},
		{"keys empty", func() string { return `{"issuer":"` + base + `","jwks_uri":"` + base + `/keys"}` }, []byte(`{"keys":[]}`), 200, "no usable key"},
		{"private key", func() string { return `{"issuer":"` + base + `","jwks_uri":"` + base + `/keys"}` }, privJWKS, 200, "private key"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				switch r.URL.Path {
				case "/.well-known/openid-configuration":
					w.Write([]byte(tc.discovery()))
				case "/keys":
					w.WriteHeader(tc.keyStatus)
					w.Write(tc.keys)
				default:
					http.NotFound(w, r)
				}
			}))
			t.Cleanup(srv.Close)
			base = srv.URL
			_, err := newClient(t, "").OIDCKeys(srv.URL).Keys(context.Background())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one saying %q", err, tc.want)
			}
		})
	}
	if otherCalls.Load() != 0 {
		t.Error("keys fetched from another host")
	}
	if _, err := newClient(t, "").OIDCKeys("not a url").Keys(context.Background()); err == nil {
		t.Error("a bad issuer URL fetched keys")
	}
}

// TestParseJWKS: keys of a type go-jose does not know are skipped.
func TestParseJWKS(t *testing.T) {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	good, _ := json.Marshal(jose.JSONWebKey{Key: &k.PublicKey, KeyID: "a", Algorithm: "RS256", Use: "sig"})
	set, err := gitlab.ParseJWKS([]byte(`{"keys":[{"kty":"XYZ","kid":"b"},` + string(good) + `]}`))
	if err != nil || len(set.Keys) != 1 || set.Keys[0].KeyID != "a" {
		t.Errorf("set %+v, %v", set, err)
	}
	for _, bad := range []string{``, `[]`, `{"keys":{}}`, `{"keys":[{"kty":"RSA"}]}`} {
		if _, err := gitlab.ParseJWKS([]byte(bad)); err == nil {
			t.Errorf("ParseJWKS(%q) succeeded", bad)
		}
	}
}

// FuzzParseJob: whatever GitLab answers parses to a job with an id, or an
// error, never a panic.
func FuzzParseJob(f *testing.F) {
	f.Add([]byte(`{"id":1,"name":"x","status":"running","ref":"main","tag":false,"web_url":"https://g/a/b/-/jobs/1",` +
		`"pipeline":{"id":2,"project_id":3,"ref":"main","sha":"abc","status":"running"},"user":{"id":4,"username":"u"},"runner":{"id":5}}`))
	f.Add([]byte(`{"id":-1}`))
	f.Add([]byte(`{"id":"1"}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		j, err := gitlab.ParseJob(data)
		if err == nil && (j == nil || j.ID <= 0) {
			t.Fatalf("parsed %+v", j)
		}
	})
}

// FuzzParseJWKS: a JWKS parses to public keys or an error.
func FuzzParseJWKS(f *testing.F) {
	f.Add([]byte(`{"keys":[{"kty":"RSA","kid":"a","n":"sXch","e":"AQAB"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"EC","crv":"P-256","x":"AA","y":"AA"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"oct","k":"AAAA"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		set, err := gitlab.ParseJWKS(data)
		if err != nil {
			return
		}
		if len(set.Keys) == 0 {
			t.Fatal("an empty set without an error")
		}
		for _, k := range set.Keys {
			if !k.IsPublic() {
				t.Fatal("a private key in the set")
			}
		}
	})
}
