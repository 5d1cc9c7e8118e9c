package authz_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/keyless-dev/keyless/internal/authz"
)

// FuzzVerify: whatever a caller sends as its token is an identity or a
// refusal (401, 403 or 503, with a reason), never a panic, and neither
// the refusal nor the log quotes the token.
func FuzzVerify(f *testing.F) {
	e := newEnv(f, nil)
	good := jwt(keyA, "a", e.claims())
	for _, s := range []string{"", staticToken, jobTok, good, "a.b.c", "a.b.", "..", "eyJhbGciOiJub25lIn0.e30.", good + "x",
		strings.Replace(good, ".", "..", 1), "glcbt-\r\n", strings.Repeat("A", authz.MaxTokenLen)} {
		f.Add(s)
	}
	for _, tc := range jwtCases(e) {
		f.Add(tc.tok)
	}
	f.Fuzz(func(t *testing.T, tok string) {
		e.logs.Reset()
		id, err := e.verify(tok)
		if err == nil {
			if id == nil || id.Kind == "" || id.Claims == nil {
				t.Fatalf("no error and no identity: %v", id)
			}
			return
		}
		var ae *authz.Error
		if !errors.As(err, &ae) {
			t.Fatalf("error %v (%T) is not a refusal", err, err)
		}
		if ae.Reason == "" || ae.Message == "" || (ae.Status != 401 && ae.Status != 403 && ae.Status != 503) {
			t.Fatalf("refusal %+v", ae)
		}
		// Short tokens may be words of a message; longer ones must not
		// appear.
		if len(tok) >= 12 && (strings.Contains(err.Error(), tok) || strings.Contains(e.logs.String(), tok)) {
			t.Fatalf("the refusal or the log quotes the token: %v", err)
		}
	})
}

// FuzzParseWebURL: a web_url parses to a project path of GitLab path
// segments and a positive job ID, or an error.
func FuzzParseWebURL(f *testing.F) {
	for _, s := range []string{"https://gitlab.example.com/group/app/-/jobs/1001", "https://g/a/b/c/-/jobs/1", "https://g/a/-/jobs/1",
		"https://g/a/b/-/jobs/1/", "https://g/a/%2e%2e/-/jobs/1", "http://[::1]:80/a/b/-/jobs/9223372036854775807"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		project, job, err := authz.ParseWebURL(s)
		if err != nil {
			return
		}
		segs := strings.Split(project, "/")
		if job <= 0 || len(segs) < 2 {
			t.Fatalf("%q: project %q job %d", s, project, job)
		}
		for _, seg := range segs {
			if seg == "" || seg == "." || seg == ".." || seg == "-" || strings.Trim(seg, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") != "" {
				t.Fatalf("%q: segment %q of %q", s, seg, project)
			}
		}
	})
}

// FuzzSessionName: any template and claim values render to a name AWS
// accepts (at most 64 of [A-Za-z0-9+=,.@_-]) or a template error; a
// template NewPolicy accepts always renders.
func FuzzSessionName(f *testing.F) {
	for _, s := range [][2]string{{"gitlab-{project_id}-{job_id}", "42"}, {"{ref}", "feature/ü"}, {"{", ""}, {"}{", "x"},
		{"{project_path}{project_path}{project_path}", strings.Repeat("a/", 40)}, {"a\x00b", "\xff"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, tmpl, value string) {
		claims := map[string]string{}
		for _, k := range authz.Fields(authz.IDToken) {
			claims[k] = value
		}
		name, err := authz.SessionName(tmpl, claims)
		_, perr := authz.NewPolicy([]authz.Rule{{Kinds: []authz.Kind{authz.IDToken}, RoleARN: "r", SessionName: tmpl}})
		if err != nil {
			if perr == nil {
				t.Fatalf("NewPolicy accepted %q, which does not render: %v", tmpl, err)
			}
			return
		}
		if len(name) > authz.MaxSessionName {
			t.Fatalf("%d characters", len(name))
		}
		if strings.Trim(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+=,.@_-") != "" {
			t.Fatalf("name %q", name)
		}
		if perr == nil {
			p, _ := authz.NewPolicy([]authz.Rule{{Kinds: []authz.Kind{authz.IDToken}, RoleARN: "r", SessionName: tmpl, Duration: time.Hour}})
			d, err := p.Decide(&authz.Identity{Kind: authz.IDToken, Claims: claims})
			if err != nil || d.SessionName != name {
				t.Fatalf("Decide: %q, %v; SessionName: %q", d.SessionName, err, name)
			}
		}
	})
}
