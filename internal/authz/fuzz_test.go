package authz_test

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/url"
	"strconv"
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
// segments and a positive job ID, or an error; when it parses, it is on
// GitLab's URL.
func FuzzParseWebURL(f *testing.F) {
	for _, s := range [][2]string{{"https://gitlab.example.com", "https://gitlab.example.com/group/app/-/jobs/1001"},
		{"https://g", "https://g/a/b/c/-/jobs/1"}, {"https://g", "https://g/a/-/jobs/1"}, {"https://g/", "https://g/a/b/-/jobs/1/"},
		{"https://g", "https://g/a/%2e%2e/-/jobs/1"}, {"http://[::1]:80", "http://[::1]:80/a/b/-/jobs/9223372036854775807"},
		{"https://e.com/gitlab", "https://e.com/gitlab/team/app/-/jobs/1"}, {"https://e.com/gitlab", "https://e.com/gitlabx/team/app/-/jobs/1"},
		{"https://e.com/gitlab", "https://e.com/team/app/-/jobs/1"}, {"https://e.com:8443/", "https://E.com:8443/a/b/-/jobs/1"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, base, s string) {
		project, job, err := authz.ParseWebURL(base, s)
		if err != nil {
			return
		}
		b, _ := url.Parse(base)
		u, _ := url.Parse(s)
		if b == nil || u == nil || u.Scheme != b.Scheme || !strings.EqualFold(u.Hostname(), b.Hostname()) ||
			!strings.HasSuffix(u.Path, "/"+project+"/-/jobs/"+strconv.FormatInt(job, 10)) ||
			!strings.HasPrefix(u.Path, strings.TrimRight(b.Path, "/")+"/") {
			t.Fatalf("%q under %q: project %q job %d", s, base, project, job)
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

// FuzzSanitizeSessionName: distinct strings get distinct names (a short
// clean name is itself), always names AWS accepts.
func FuzzSanitizeSessionName(f *testing.F) {
	for _, s := range [][2]string{{"grp/a-b", "grp-a/b"}, {"gitlab-42-1001", "gitlab-42-1002"},
		{strings.Repeat("a", 64), strings.Repeat("a", 65)}, {"x-0123456789ab", "x"}, {"é", "ü"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		na, nb := authz.SanitizeSessionName(a), authz.SanitizeSessionName(b)
		for _, n := range []string{na, nb} {
			if len(n) > authz.MaxSessionName || strings.Trim(n, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+=,.@_-") != "" {
				t.Fatalf("name %q", n)
			}
		}
		if a != b && na == nb {
			t.Fatalf("%q and %q both name %q", a, b, na)
		}
		if na != a {
			sum := sha256.Sum256([]byte(a))
			if !strings.HasSuffix(na, "-"+hex.EncodeToString(sum[:6])) {
				t.Fatalf("%q: changed to %q without its hash", a, na)
			}
		}
	})
}
