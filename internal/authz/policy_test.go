package authz_test

import (
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
			RoleARN: roleRead, ProfileARN: profile, Duration: 2 * time.Hour, SessionName: "ci-{project_path}-{ref}"},
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
			authz.Decision{Rule: "read", RoleARN: roleRead, ProfileARN: profile, Duration: 2 * time.Hour, SessionName: "ci-group-app-main"}},
		{"job token: second rule", jobIdentity("group/app", "release-1.2", "1001"),
			authz.Decision{Rule: "read", RoleARN: roleRead, ProfileARN: profile, Duration: 2 * time.Hour, SessionName: "ci-group-app-release-1.2"}},
		{"listed project", jobIdentity("other/app", "main", "1001"),
			authz.Decision{Rule: "read", RoleARN: roleRead, ProfileARN: profile, Duration: 2 * time.Hour, SessionName: "ci-other-app-main"}},
		{"static", &authz.Identity{Kind: authz.Static, Claims: map[string]string{"token": "backup-host"}},
			authz.Decision{Rule: "backup", RoleARN: roleRead, ProfileARN: profile, SessionName: "keyless-backup-host"}},
		{"peer", &authz.Identity{Kind: authz.Peer, Claims: map[string]string{"uid": "0", "gid": "0", "pid": "1"}},
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

// TestDecideExplains: with no rule matching, the refusal says why.
func TestDecideExplains(t *testing.T) {
	p, err := authz.NewPolicy([]authz.Rule{
		{Name: "prod", Kinds: []authz.Kind{authz.IDToken}, Match: map[string][]string{"project_path": {"group/app"}, "ref_protected": {"true"}}, RoleARN: roleDeploy},
		{Name: "id-only", Kinds: []authz.Kind{authz.IDToken}, Match: map[string][]string{"project_path": {"group/lib"}}, RoleARN: roleDeploy},
		{Name: "env", Kinds: []authz.Kind{authz.IDToken}, Match: map[string][]string{"environment": {"production"}, "project_path": {"group/env"}}, RoleARN: roleDeploy},
		{Name: "jobs", Kinds: []authz.Kind{authz.JobToken}, Match: map[string][]string{"project_path": {"group/ci"}, "ref": {"main"}}, RoleARN: roleRead},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		id   *authz.Identity
		want []string
	}{
		{"job token for a rule that needs ref_protected", jobIdentity("group/app", "main", "1001"),
			[]string{`rule "prod" would need ref_protected, which a GitLab job token does not carry; use gitlab-id-token`, `project_path="group/app"`}},
		{"job token for an id_tokens-only rule", jobIdentity("group/lib", "main", "1001"),
			[]string{`rule "id-only" matches, but accepts only gitlab-id-token, not gitlab-job-token`}},
		{"id_token without the environment claim", idTokenIdentity("group/env", "main", "1", true),
			[]string{`rule "env" needs environment, which this gitlab-id-token does not have`}},
		{"id_token of another project", idTokenIdentity("group/x", "main", "1", true),
			[]string{`rule "prod" wants another project_path`}},
		{"job token of another ref", jobIdentity("group/ci", "dev", "1001"),
			[]string{`rule "jobs" wants another ref`, `ref="dev"`}},
		{"static token", &authz.Identity{Kind: authz.Static, Claims: map[string]string{"token": "x"}},
			[]string{"no rule accepts static-token identities"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := p.Decide(tc.id)
			var ae *authz.Error
			if !errors.As(err, &ae) || ae.Status != 403 || ae.Reason != authz.ReasonNoRule {
				t.Fatalf("error %v", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(ae.Message, w) {
					t.Errorf("message %q does not say %q", ae.Message, w)
				}
			}
		})
	}
	// A claim the identity's kind has, but this identity lacks.
	p, _ = authz.NewPolicy([]authz.Rule{{Name: "env", Kinds: []authz.Kind{authz.IDToken}, Match: map[string][]string{"environment": {"production"}}, RoleARN: roleDeploy}})
	_, err = p.Decide(idTokenIdentity("group/env", "main", "1", true))
	if err == nil || !strings.Contains(err.Error(), `rule "env" needs environment, which this gitlab-id-token does not have`) {
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
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.rule
			r.Name = "bad"
			if r.RoleARN == "" {
				r.RoleARN = roleDeploy
			} else if r.RoleARN == "-" {
				r.RoleARN = ""
			}
			good := authz.Rule{Name: "good", Kinds: both, Match: map[string][]string{"ref": {"main"}}, RoleARN: roleRead}
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
	rules := []authz.Rule{{Name: "r", Kinds: []authz.Kind{authz.JobToken}, Match: map[string][]string{"project_path": {"group/app"}}, RoleARN: roleRead}}
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
		{"gitlab-{project_id}-{job_id}", "gitlab-42-1001"},
		{"{project_path}", "group-sub-app"},
		{"ci-{ref}", "ci-feature--n-code-branch"},
		{"{user_email}", "a+b=c,d@example.com"},
		{"{environment}-x", "-x"},
		{"gitlab-{long}", "gitlab-" + strings.Repeat("x", 57)},
		{"plain name", "plain-name"},
		{"", ""},
	} {
		got, err := authz.SessionName(tc.tmpl, claims)
		if err != nil || got != tc.want {
			t.Errorf("SessionName(%q) = %q, %v; want %q", tc.tmpl, got, err, tc.want)
		}
	}
	if got := authz.SanitizeSessionName(strings.Repeat("é", 100)); got != strings.Repeat("-", 64) {
		t.Errorf("SanitizeSessionName = %q", got)
	}
	if _, err := authz.SessionName("{", nil); err == nil {
		t.Error("a bad template rendered")
	}
}

func TestParseWebURL(t *testing.T) {
	for _, tc := range []struct {
		url, project string
		job          int64
	}{
		{"https://gitlab.example.com/group/app/-/jobs/1001", "group/app", 1001},
		{"https://gitlab.example.com/group/sub/sub2/app/-/jobs/7", "group/sub/sub2/app", 7},
		{"http://127.0.0.1:8080/a.b/c_d-e/-/jobs/1", "a.b/c_d-e", 1},
	} {
		p, j, err := authz.ParseWebURL(tc.url)
		if err != nil || p != tc.project || j != tc.job {
			t.Errorf("ParseWebURL(%q) = %q, %d, %v", tc.url, p, j, err)
		}
	}
	for _, bad := range []string{
		"", "gitlab.example.com/group/app/-/jobs/1", "ftp://g/group/app/-/jobs/1", "https://g/app/-/jobs/1",
		"https://g/group/app/-/jobs/x", "https://g/group/app/-/jobs/0", "https://g/group/app/-/jobs/01", "https://g/group/app/-/jobs/1/",
		"https://g/group/app/-/pipelines/1", "https://g/group//app/-/jobs/1", "https://g/group/../app/-/jobs/1",
		"https://g/group/a%2Fb/-/jobs/1", "https://g/group/app/-/jobs/1?x=1", "https://g/group/-/app/-/jobs/1",
		"https://g/gr oup/app/-/jobs/1", "https://u:p@g/group/app/-/jobs/1",
	} {
		if p, _, err := authz.ParseWebURL(bad); err == nil {
			t.Errorf("ParseWebURL(%q) = %q", bad, p)
		}
	}
}
