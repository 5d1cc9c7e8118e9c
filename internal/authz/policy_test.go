package authz_test

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/keyless-dev/keyless/internal/authz"
)

const (
	roleDeploy = "arn:aws:iam::111122223333:role/deploy"
	roleRead   = "arn:aws:iam::111122223333:role/read"
	profile    = "arn:aws:rolesanywhere:us-east-1:111122223333:profile/p"
)

// hashed is the name SanitizeSessionName gives raw when it must change
// it: prefix (raw with other characters replaced, cut), '-', and 12 hex
// digits of SHA-256(raw).
func hashed(prefix, raw string) string {
	sum := sha256.Sum256([]byte(raw))
	return prefix + "-" + hex.EncodeToString(sum[:6])
}

func jobIdentity(project, ref, job string) *authz.Identity {
	ns := project[:strings.LastIndexByte(project, '/')]
	return &authz.Identity{Kind: authz.JobToken, Claims: map[string]string{"project_path": project, "namespace_path": ns,
		"ref": ref, "ref_type": "branch", "job_id": job, "project_id": "42", "pipeline_id": "900", "runner_id": "7"}}
}

func idTokenIdentity(project, ref, job string, protected bool) *authz.Identity {
	id := jobIdentity(project, ref, job)
	id.Kind = authz.IDToken
	id.Claims["ref_protected"] = "false"
	if protected {
		id.Claims["ref_protected"] = "true"
	}
	return id
}

func TestFields(t *testing.T) {
	for _, k := range authz.Kinds {
		if len(authz.Fields(k)) == 0 {
			t.Errorf("%s has no fields", k)
		}
	}
	f := authz.Fields(authz.JobToken)
	f[0] = "changed"
	if authz.Fields(authz.JobToken)[0] == "changed" {
		t.Error("Fields returns its own slice")
	}
	for _, f := range []string{"ref_protected", "environment", "environment_protected", "deployment_tier", "user_email", "ref_path"} {
		for _, jf := range authz.Fields(authz.JobToken) {
			if jf == f {
				t.Errorf("job tokens claim %s, which GET /api/v4/job does not answer", f)
			}
		}
	}
	if authz.Fields("nothing") != nil {
		t.Error("fields of an unknown kind")
	}
}

func TestDecide(t *testing.T) {
	p, err := authz.NewPolicy([]authz.Rule{
		{Name: "protected-deploy", Kinds: []authz.Kind{authz.IDToken}, Match: map[string][]string{"project_path": {"group/app"}, "ref_protected": {"true"}},
			RoleARN: roleDeploy, ProfileARN: profile, Duration: time.Hour, SessionName: "gitlab-{project_id}-{job_id}"},
		{Name: "read", Kinds: []authz.Kind{authz.JobToken, authz.IDToken}, Match: map[string][]string{"project_path": {"group/*", "other/app"}, "ref": {"main", "release-*"}},
			RoleARN: roleRead, ProfileARN: profile, Duration: 2 * time.Hour, SessionName: "ci-{project_path}-{ref}-{job_id}"},
		{Name: "backup", Kinds: []authz.Kind{authz.Static}, Match: map[string][]string{"token": {"backup-host"}},
			RoleARN: roleRead, ProfileARN: profile, SessionName: "keyless-{token}"},
		{Name: "root", Kinds: []authz.Kind{authz.Peer}, Match: map[string][]string{"uid": {"0"}}, RoleARN: roleDeploy, SessionName: "uid-{uid}"},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		id   *authz.Identity
		want authz.Decision
	}{
		{"protected id_token: first rule", idTokenIdentity("group/app", "main", "302", true),
			authz.Decision{Rule: "protected-deploy", RoleARN: roleDeploy, ProfileARN: profile, Duration: time.Hour, SessionName: "gitlab-42-302"}},
		{"unprotected id_token: second rule", idTokenIdentity("group/app", "main", "302", false),
			authz.Decision{Rule: "read", RoleARN: roleRead, ProfileARN: profile, Duration: 2 * time.Hour,
				SessionName: hashed("ci-group-app-main-302", "ci-group/app-main-302")}},
		{"job token: second rule", jobIdentity("group/app", "release-1.2", "1001"),
			authz.Decision{Rule: "read", RoleARN: roleRead, ProfileARN: profile, Duration: 2 * time.Hour,
				SessionName: hashed("ci-group-app-release-1.2-1001", "ci-group/app-release-1.2-1001")}},
		{"listed project", jobIdentity("other/app", "main", "1001"),
			authz.Decision{Rule: "read", RoleARN: roleRead, ProfileARN: profile, Duration: 2 * time.Hour,
				SessionName: hashed("ci-other-app-main-1001", "ci-other/app-main-1001")}},
		{"static", &authz.Identity{Kind: authz.Static, Claims: map[string]string{"token": "backup-host"}},
			authz.Decision{Rule: "backup", RoleARN: roleRead, ProfileARN: profile, SessionName: "keyless-backup-host"}},
		{"peer", &authz.Identity{Kind: authz.Peer, Claims: map[string]string{"uid": "0", "gid": "0"}, Audit: map[string]string{"pid": "1"}},
			authz.Decision{Rule: "root", RoleARN: roleDeploy, SessionName: "uid-0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := p.Decide(tc.id)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, d); diff != "" {
				t.Error(diff)
			}
		})
	}
}

// TestDecideExplains: with no rule matching, the refusal's Detail (for
// the audit line) says why; its Message (for the caller) names no rule
// and no claim a rule wants, only the caller's own job, project and ref.
func TestDecideExplains(t *testing.T) {
	const sn = "gitlab-{project_id}-{job_id}"
	p, err := authz.NewPolicy([]authz.Rule{
		{Name: "prod", Kinds: []authz.Kind{authz.IDToken}, Match: map[string][]string{"project_path": {"group/app"}, "ref_protected": {"true"}}, RoleARN: roleDeploy, SessionName: sn},
		{Name: "id-only", Kinds: []authz.Kind{authz.IDToken}, Match: map[string][]string{"project_path": {"group/lib"}}, RoleARN: roleDeploy, SessionName: sn},
		{Name: "env", Kinds: []authz.Kind{authz.IDToken}, Match: map[string][]string{"environment": {"production"}, "project_path": {"group/env"}}, RoleARN: roleDeploy, SessionName: sn},
		{Name: "jobs", Kinds: []authz.Kind{authz.JobToken}, Match: map[string][]string{"project_path": {"group/ci"}, "ref": {"main"}}, RoleARN: roleRead, SessionName: sn},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		id      *authz.Identity
		message string
		want    []string
	}{
		{"job token for a rule that needs ref_protected", jobIdentity("group/app", "main", "1001"),
			`no rule gives this job credentials (job_id="1001" project_path="group/app" ref="main")`,
			[]string{`rule "prod" would need ref_protected, which a GitLab job token does not carry; use gitlab-id-token`, `project_path="group/app"`}},
		{"job token for an id_tokens-only rule", jobIdentity("group/lib", "main", "1001"),
			`no rule gives this job credentials (job_id="1001" project_path="group/lib" ref="main")`,
			[]string{`rule "id-only" matches, but accepts only gitlab-id-token, not gitlab-job-token`}},
		{"id_token without the environment claim", idTokenIdentity("group/env", "main", "1", true),
			`no rule gives this job credentials (job_id="1" project_path="group/env" ref="main")`,
			[]string{`rule "env" needs environment, which this gitlab-id-token does not have`}},
		{"id_token of another project", idTokenIdentity("group/x", "main", "1", true),
			`no rule gives this job credentials (job_id="1" project_path="group/x" ref="main")`,
			[]string{`rule "prod" wants another project_path`}},
		{"job token of another ref", jobIdentity("group/ci", "dev", "1001"),
			`no rule gives this job credentials (job_id="1001" project_path="group/ci" ref="dev")`,
			[]string{`rule "jobs" wants another ref`, `ref="dev"`}},
		{"static token", &authz.Identity{Kind: authz.Static, Claims: map[string]string{"token": "x"}},
			`no rule gives this caller credentials`,
			[]string{"no rule accepts static-token identities"}},
		{"unix peer", &authz.Identity{Kind: authz.Peer, Claims: map[string]string{"uid": "1000", "gid": "100"}},
			`no rule gives this caller credentials (uid="1000" gid="100")`,
			[]string{"no rule accepts unix-peer identities"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := p.Decide(tc.id)
			var ae *authz.Error
			if !errors.As(err, &ae) || ae.Status != 403 || ae.Reason != authz.ReasonNoRule {
				t.Fatalf("error %v", err)
			}
			if ae.Message != tc.message {
				t.Errorf("message %q, want %q", ae.Message, tc.message)
			}
			for _, w := range tc.want {
				if !strings.Contains(ae.Detail, w) {
					t.Errorf("detail %q does not say %q", ae.Detail, w)
				}
			}
			// The caller learns nothing of the rules: not in the
			// message, nor in the error's text.
			for _, secret := range []string{`"prod"`, `"id-only"`, `"env"`, `"jobs"`, "ref_protected", "environment", "gitlab-id-token", "rule \""} {
				if strings.Contains(ae.Message, secret) || strings.Contains(ae.Error(), secret) {
					t.Errorf("the caller's message %q tells %s", ae.Error(), secret)
				}
			}
		})
	}
	// A claim the identity's kind has, but this identity lacks.
	p, _ = authz.NewPolicy([]authz.Rule{{Name: "env", Kinds: []authz.Kind{authz.IDToken}, Match: map[string][]string{"environment": {"production"}}, RoleARN: roleDeploy, SessionName: sn}})
	_, err = p.Decide(idTokenIdentity("group/env", "main", "1", true))
	var ae *authz.Error
	if !errors.As(err, &ae) || !strings.Contains(ae.Detail, `rule "env" needs environment, which this gitlab-id-token does not have`) {
		t.Errorf("error %v", err)
	}
	if _, err := p.Decide(nil); err == nil {
		t.Error("a decision for no identity")
	}
}

// TestNewPolicyRefuses: rules that could never match, or name claims an
// identity does not carry, are refused at load time, naming the rule and
// the field.
func TestNewPolicyRefuses(t *testing.T) {
	both := []authz.Kind{authz.JobToken, authz.IDToken}
	for _, tc := range []struct {
		name  string
		rule  authz.Rule
		field string
		want  string
	}{
		{"ref_protected on job tokens", authz.Rule{Kinds: both, Match: map[string][]string{"ref_protected": {"true"}}},
			"ref_protected", "ref_protected is only in id_tokens JWTs; a GitLab job token does not carry it: set identity: gitlab-id-token"},
		{"environment on job tokens", authz.Rule{Kinds: []authz.Kind{authz.JobToken}, Match: map[string][]string{"environment": {"prod"}}},
			"environment", "environment is only in id_tokens JWTs; a GitLab job token does not carry it"},
		{"job_name on id_tokens", authz.Rule{Kinds: both, Match: map[string][]string{"job_name": {"deploy"}}},
			"job_name", "job_name is only in GitLab job tokens; an id_tokens JWT does not carry it: set identity: gitlab-job-token"},
		{"project_path on static tokens", authz.Rule{Kinds: []authz.Kind{authz.Static}, Match: map[string][]string{"project_path": {"a/b"}}},
			"project_path", "project_path is only in GitLab job tokens and id_tokens JWTs; a static token does not carry it: set identity: gitlab-job-token or gitlab-id-token"},
		{"unknown claim", authz.Rule{Kinds: both, Match: map[string][]string{"project": {"a/b"}}},
			"project", "project is not a claim of any identity; a GitLab job token carries job_id, job_name"},
		{"template placeholder", authz.Rule{Kinds: both, Match: map[string][]string{"ref": {"main"}}, SessionName: "gitlab-{environment}"},
			"environment", "sessionName {environment}: environment is only in id_tokens JWTs"},
		{"uid on job tokens", authz.Rule{Kinds: both, Match: map[string][]string{"uid": {"0"}}},
			"uid", "uid is only in unix-socket peers"},
		{"no values", authz.Rule{Kinds: both, Match: map[string][]string{"ref": {}}}, "ref", "give at least one value"},
		{"bad pattern", authz.Rule{Kinds: both, Match: map[string][]string{"ref": {"[main"}}}, "ref", "not a valid pattern"},
		{"no kinds", authz.Rule{Match: map[string][]string{"ref": {"main"}}}, "", "accepts no identity"},
		{"unknown kind", authz.Rule{Kinds: []authz.Kind{"gitlab-ci-job-jwt"}}, "", `"gitlab-ci-job-jwt" is not an identity`},
		{"unclosed placeholder", authz.Rule{Kinds: both, SessionName: "gitlab-{job_id"}, "", "a '{' with no '}'"},
		{"stray brace", authz.Rule{Kinds: both, SessionName: "gitlab-job_id}"}, "", "a '}' with no '{'"},
		{"nested brace", authz.Rule{Kinds: both, SessionName: "gitlab-{job_{id}}"}, "", "a '{' with no '}'"},
		{"empty placeholder", authz.Rule{Kinds: both, SessionName: "gitlab-{}"}, "", "is not a claim name"},
		{"odd placeholder", authz.Rule{Kinds: both, SessionName: "gitlab-{Job-ID}"}, "", "is not a claim name"},
		{"no role", authz.Rule{Kinds: both, RoleARN: "-"}, "", "names no role"},
		// Every job its own session: the broker keys credentials by
		// session name.
		{"job tokens without {job_id}", authz.Rule{Kinds: []authz.Kind{authz.JobToken}, SessionName: "gitlab-{project_id}"},
			"job_id", `sessionName "gitlab-{project_id}" has no {job_id}: every GitLab job must get its own session`},
		{"id_tokens without {job_id}", authz.Rule{Kinds: []authz.Kind{authz.IDToken}, SessionName: "ci-{project_path}-{pipeline_id}"},
			"job_id", "has no {job_id}: every GitLab job must get its own session"},
		{"no sessionName", authz.Rule{Kinds: both}, "job_id", `sessionName "" has no {job_id}`},
		{"GitLab and static", authz.Rule{Kinds: []authz.Kind{authz.JobToken, authz.Static}, SessionName: "keyless-agent"},
			"job_id", "give them a rule of their own"},
		// A process chooses its pid.
		{"pid in match", authz.Rule{Kinds: []authz.Kind{authz.Peer}, Match: map[string][]string{"pid": {"1"}}},
			"pid", "pid is not a claim: a process chooses its own pid"},
		{"pid in sessionName", authz.Rule{Kinds: []authz.Kind{authz.Peer}, SessionName: "peer-{pid}"},
			"pid", "sessionName {pid}: pid is not a claim"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.rule
			r.Name = "bad"
			if r.RoleARN == "" {
				r.RoleARN = roleDeploy
			} else if r.RoleARN == "-" {
				r.RoleARN = ""
			}
			good := authz.Rule{Name: "good", Kinds: both, Match: map[string][]string{"ref": {"main"}}, RoleARN: roleRead, SessionName: "gitlab-{job_id}"}
			_, err := authz.NewPolicy([]authz.Rule{good, r})
			var re *authz.RuleError
			if !errors.As(err, &re) {
				t.Fatalf("error %v (%T)", err, err)
			}
			if re.Index != 1 || re.Rule != "bad" || re.Field != tc.field {
				t.Errorf("RuleError{Index: %d, Rule: %q, Field: %q}, want 1, bad, %q", re.Index, re.Rule, re.Field, tc.field)
			}
			if !strings.Contains(re.Err.Error(), tc.want) {
				t.Errorf("error %q does not say %q", re.Err, tc.want)
			}
			if !strings.HasPrefix(err.Error(), `rule "bad": `) {
				t.Errorf("error %q does not name the rule", err)
			}
		})
	}
	// A rule with no match applies to every identity of its kinds.
	p, err := authz.NewPolicy([]authz.Rule{{Kinds: []authz.Kind{authz.Peer}, RoleARN: roleRead, SessionName: "peer-{uid}"}})
	if err != nil {
		t.Fatal(err)
	}
	if d, err := p.Decide(&authz.Identity{Kind: authz.Peer, Claims: map[string]string{"uid": "1000"}}); err != nil || d.SessionName != "peer-1000" {
		t.Errorf("%+v %v", d, err)
	}
}

// TestRulesAreCopied: changing the rules after NewPolicy changes nothing.
func TestRulesAreCopied(t *testing.T) {
	rules := []authz.Rule{{Name: "r", Kinds: []authz.Kind{authz.JobToken}, Match: map[string][]string{"project_path": {"group/app"}}, RoleARN: roleRead,
		SessionName: "gitlab-{job_id}"}}
	p, err := authz.NewPolicy(rules)
	if err != nil {
		t.Fatal(err)
	}
	rules[0].Match["project_path"][0] = "*/*"
	rules[0].Match["ref"] = []string{"x"}
	if _, err := p.Decide(jobIdentity("evil/app", "main", "1")); err == nil {
		t.Error("a rule changed after NewPolicy")
	}
	if _, err := p.Decide(jobIdentity("group/app", "main", "1")); err != nil {
		t.Error(err)
	}
}

func TestSessionName(t *testing.T) {
	claims := map[string]string{"project_id": "42", "job_id": "1001", "project_path": "group/sub/app", "ref": "feature/ünïcode branch",
		"user_email": "a+b=c,d@example.com", "long": strings.Repeat("x", 100)}
	for _, tc := range []struct{ tmpl, want string }{
		// Names AWS accepts as they are stay as they are.
		{"gitlab-{project_id}-{job_id}", "gitlab-42-1001"},
		{"{user_email}", "a+b=c,d@example.com"},
		{"{environment}-x", "-x"},
		{"", ""},
		{"gitlab-" + strings.Repeat("y", 57), "gitlab-" + strings.Repeat("y", 57)}, // 64, the most
		// Changed names end in a hash of what they were.
		{"{project_path}", hashed("group-sub-app", "group/sub/app")},
		{"ci-{ref}", hashed("ci-feature--n-code-branch", "ci-feature/ünïcode branch")},
		{"gitlab-{long}", hashed("gitlab-"+strings.Repeat("x", 44), "gitlab-"+strings.Repeat("x", 100))},
		{"plain name", hashed("plain-name", "plain name")},
		// A name that looks changed is changed, so it cannot be
		// another's changed name.
		{"plain-name-0123456789ab", hashed("plain-name-0123456789ab", "plain-name-0123456789ab")},
	} {
		got, err := authz.SessionName(tc.tmpl, claims)
		if err != nil || got != tc.want {
			t.Errorf("SessionName(%q) = %q, %v; want %q", tc.tmpl, got, err, tc.want)
		}
		if len(got) > authz.MaxSessionName {
			t.Errorf("SessionName(%q) = %q: %d characters", tc.tmpl, got, len(got))
		}
	}
	if got, want := authz.SanitizeSessionName(strings.Repeat("é", 100)), hashed(strings.Repeat("-", 51), strings.Repeat("é", 100)); got != want || len(got) != 64 {
		t.Errorf("SanitizeSessionName = %q, want %q", got, want)
	}
	if _, err := authz.SessionName("{", nil); err == nil {
		t.Error("a bad template rendered")
	}
}

// TestSessionNamesOneToOne: two jobs whose renderings differ never share
// a session name, so never share credentials (the broker keys them by
// session name): not when '/' and '-' are swapped, not when a long
// project path pushes the job ID past the 64-character cut.
func TestSessionNamesOneToOne(t *testing.T) {
	p, err := authz.NewPolicy([]authz.Rule{{Name: "all", Kinds: []authz.Kind{authz.JobToken}, Match: map[string][]string{"project_path": {"*/*"}},
		RoleARN: roleRead, SessionName: "ci-{project_path}-{job_id}"}})
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("p", 70)
	for _, pair := range [][2]*authz.Identity{
		{jobIdentity("grp/a-b", "main", "1001"), jobIdentity("grp-a/b", "main", "1001")},
		{jobIdentity("group/"+long, "main", "1001"), jobIdentity("group/"+long, "main", "1002")},
	} {
		a, err1 := p.Decide(pair[0])
		b, err2 := p.Decide(pair[1])
		if err1 != nil || err2 != nil {
			t.Fatal(err1, err2)
		}
		if a.SessionName == b.SessionName {
			t.Errorf("%v and %v share the session %q", pair[0].Claims, pair[1].Claims, a.SessionName)
		}
		for _, n := range []string{a.SessionName, b.SessionName} {
			if len(n) > authz.MaxSessionName || !strings.HasPrefix(n, "ci-grp") && !strings.HasPrefix(n, "ci-group-ppp") {
				t.Errorf("session %q", n)
			}
		}
	}
}

func TestParseWebURL(t *testing.T) {
	for _, tc := range []struct {
		base, url, project string
		job                int64
	}{
		{"https://gitlab.example.com", "https://gitlab.example.com/group/app/-/jobs/1001", "group/app", 1001},
		{"https://gitlab.example.com/", "https://gitlab.example.com/group/sub/sub2/app/-/jobs/7", "group/sub/sub2/app", 7},
		{"http://127.0.0.1:8080", "http://127.0.0.1:8080/a.b/c_d-e/-/jobs/1", "a.b/c_d-e", 1},
		// GitLab under a relative URL root: the root is not the project's.
		{"https://example.com/gitlab", "https://example.com/gitlab/team/app/-/jobs/1", "team/app", 1},
		{"https://example.com/gitlab/", "https://example.com/gitlab/team/app/-/jobs/1", "team/app", 1},
		{"https://example.com/a/b", "https://example.com/a/b/team/app/-/jobs/1", "team/app", 1},
		// Hosts compare as hosts.
		{"https://GitLab.Example.com", "https://gitlab.example.com/group/app/-/jobs/1", "group/app", 1},
		{"https://gitlab.example.com:443", "https://gitlab.example.com/group/app/-/jobs/1", "group/app", 1},
	} {
		p, j, err := authz.ParseWebURL(tc.base, tc.url)
		if err != nil || p != tc.project || j != tc.job {
			t.Errorf("ParseWebURL(%q, %q) = %q, %d, %v", tc.base, tc.url, p, j, err)
		}
	}
	for _, tc := range [][2]string{
		{"https://example.com/gitlab", "https://example.com/team/app/-/jobs/1"},              // not under the root
		{"https://example.com/gitlab", "https://example.com/gitlabx/team/app/-/jobs/1"},      // not a path prefix
		{"https://example.com/gitlab", "https://example.com/gitlab/app/-/jobs/1"},            // the root and a project
		{"https://gitlab.example.com", "https://evil.example.com/group/app/-/jobs/1"},        // another host
		{"https://gitlab.example.com", "http://gitlab.example.com/group/app/-/jobs/1"},       // another scheme
		{"https://gitlab.example.com", "https://gitlab.example.com:8443/group/app/-/jobs/1"}, // another port
		{"", "https://gitlab.example.com/group/app/-/jobs/1"},
		{"gitlab.example.com", "https://gitlab.example.com/group/app/-/jobs/1"},
		{"https://gitlab.example.com?x=1", "https://gitlab.example.com/group/app/-/jobs/1"},
	} {
		if p, _, err := authz.ParseWebURL(tc[0], tc[1]); err == nil {
			t.Errorf("ParseWebURL(%q, %q) = %q", tc[0], tc[1], p)
		}
	}
	for _, bad := range []string{
		"", "gitlab.example.com/group/app/-/jobs/1", "ftp://g/group/app/-/jobs/1", "https://g/app/-/jobs/1",
		"https://g/group/app/-/jobs/x", "https://g/group/app/-/jobs/0", "https://g/group/app/-/jobs/01", "https://g/group/app/-/jobs/1/",
		"https://g/group/app/-/pipelines/1", "https://g/group//app/-/jobs/1", "https://g/group/../app/-/jobs/1",
		"https://g/group/a%2Fb/-/jobs/1", "https://g/group/app/-/jobs/1?x=1", "https://g/group/-/app/-/jobs/1",
		"https://g/gr oup/app/-/jobs/1", "https://u:p@g/group/app/-/jobs/1",
	} {
		if p, _, err := authz.ParseWebURL("https://g", bad); err == nil {
			t.Errorf("ParseWebURL(%q) = %q", bad, p)
		}
	}
}
