package agent

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keyless-dev/keyless/internal/authz"
)

const (
	testAnchor  = "arn:aws:rolesanywhere:us-east-1:111122223333:trust-anchor/3f7c1a0e-0000-4000-8000-000000000001"
	testProfile = "arn:aws:rolesanywhere:us-east-1:111122223333:profile/8e2b6d4c-0000-4000-8000-000000000002"
	testRole    = "arn:aws:iam::111122223333:role/ci-deployer"
)

// validConfig is a configuration every case below breaks in one place.
const validConfig = `identity:
  certificate: runner.crt
  key: runner.key
aws:
  trustAnchorArn: ` + testAnchor + `
gitlab:
  url: https://gitlab.example.com
  idTokens:
    issuer: https://gitlab.example.com
    audience: keyless
staticTokens:
  - name: backup
    sha256: 5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8
listen:
  containerCredentials: ["169.254.170.2:80", "127.0.0.1:9911"]
  socket: {path: /run/keyless/agent.sock, mode: "0660"}
  metrics: 127.0.0.1:9464
rules:
  - name: deploy
    identity: gitlab-id-token
    match: {project_path: infra/site, ref_protected: "true"}
    roleArn: ` + testRole + `
    profileArn: ` + testProfile + `
  - name: plan
    identity: [gitlab-job-token, gitlab-id-token]
    match: {project_path: "infra/*"}
    roleArn: ` + testRole + `
    profileArn: ` + testProfile + `
    duration: 2h
  - name: host
    identity: unix-peer
    match: {uid: "1000"}
    roleArn: ` + testRole + `
    profileArn: ` + testProfile + `
`

func TestParseConfigValid(t *testing.T) {
	c, err := ParseConfig([]byte(validConfig), "agent.yaml", "/etc/keyless")
	if err != nil {
		t.Fatal(err)
	}
	if c.Identity.Certificate != filepath.Join("/etc/keyless", "runner.crt") {
		t.Errorf("certificate %q: relative paths are resolved against the file's directory", c.Identity.Certificate)
	}
	if len(c.Rules) != 3 {
		t.Fatalf("%d rules", len(c.Rules))
	}
	if d := c.Rules[0].Duration; d != time.Hour {
		t.Errorf("default duration %s, want 1h", d)
	}
	if d := c.Rules[1].Duration; d != 2*time.Hour {
		t.Errorf("duration %s, want 2h", d)
	}
	if s := c.Rules[0].SessionName; s != "gitlab-{project_id}-{job_id}" {
		t.Errorf("default GitLab session name %q", s)
	}
	if s := c.Rules[2].SessionName; s != "keyless-uid-{uid}" {
		t.Errorf("default unix-peer session name %q", s)
	}
	if c.Listen.Socket.Mode != 0o660 {
		t.Errorf("socket mode %o", c.Listen.Socket.Mode)
	}
	if c.AWS.Rate != DefaultRate || c.GitLab.JobTokenCache != DefaultJobTokenCache {
		t.Errorf("defaults: rate %v, job token cache %s", c.AWS.Rate, c.GitLab.JobTokenCache)
	}
	if c.Rules[1].Kinds[0] != authz.JobToken {
		t.Errorf("kinds %v", c.Rules[1].Kinds)
	}
}

// TestParseConfigErrors breaks the valid configuration in one place each
// and expects an error naming the line and field, and saying why.
func TestParseConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name, old, new string
		want           []string // substrings of the error
	}{
		{"unknown field", "  key: runner.key\n", "  key: runner.key\n  keyFile: x\n", []string{"agent.yaml:4:", `unknown field "keyFile"`, "allowed here: certificate, key"}},
		{"wrong type", "  metrics: 127.0.0.1:9464\n", "  metrics: [a]\n", []string{"agent.yaml:17:", "cannot unmarshal"}},
		{"no certificate", "  certificate: runner.crt\n", "", []string{"identity.certificate: required"}},
		{"bad anchor", "trustAnchorArn: " + testAnchor, "trustAnchorArn: arn:aws:iam::111122223333:role/x", []string{"agent.yaml:5:", "aws.trustAnchorArn"}},
		{"short duration", "    duration: 2h\n", "    duration: 20m\n", []string{"agent.yaml:29:", "rules[1].duration", "too short", "at least 30m"}},
		{"long duration", "    duration: 2h\n", "    duration: 13h\n", []string{"rules[1].duration", "12h"}},
		{"not a duration", "    duration: 2h\n", "    duration: soon\n", []string{"rules[1].duration", "not a positive duration"}},
		{"duration fraction", "    duration: 2h\n", "    duration: 1h0m0.5s\n", []string{"rules[1].duration", "whole seconds"}},
		{"public listener", `"169.254.170.2:80"`, `"0.0.0.0:80"`, []string{"listen.containerCredentials[0]", "loopback, 169.254.170.2"}},
		{"listener hostname", `"169.254.170.2:80"`, `"localhost:80"`, []string{"listen.containerCredentials[0]", "IP address and port"}},
		{"metrics not loopback", "metrics: 127.0.0.1:9464", "metrics: 10.0.0.5:9464", []string{"listen.metrics", "loopback"}},
		{"socket for others", `mode: "0660"`, `mode: "0666"`, []string{"listen.socket.mode", "without bits for others"}},
		{"plain http gitlab", "  url: https://gitlab.example.com\n", "  url: http://gitlab.example.com\n", []string{"gitlab.url", "use https"}},
		{"loopback lookalike", "  url: https://gitlab.example.com\n", "  url: http://127.0.0.1.evil.example\n", []string{"gitlab.url", "use https"}},
		{"userinfo hides the host", "  url: https://gitlab.example.com\n", "  url: http://127.0.0.1:1@gitlab.evil.example\n", []string{"gitlab.url", "no user"}},
		{"query hides the host", "  url: https://gitlab.example.com\n", "  url: http://127.0.0.1:80?@gitlab.evil.example\n", []string{"gitlab.url", "no user, query"}},
		{"no audience", "    audience: keyless\n", "", []string{"gitlab.idTokens.audience", "required"}},
		{"static token in clear", "sha256: 5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8", "sha256: hunter2hunter2", []string{"staticTokens[0].sha256", "64 hex digits"}},
		{"no rules", validConfig[strings.Index(validConfig, "rules:"):], "rules: []\n", []string{"rules:", "denies everything by default"}},
		{"no match", "    match: {uid: \"1000\"}\n", "", []string{"rules[2].match", "every caller"}},
		{"unknown identity", "identity: unix-peer", "identity: gitlab", []string{"rules[2].identity", `"gitlab": one of gitlab-job-token`}},
		{"job token needs ref_protected", "    identity: gitlab-id-token\n", "    identity: [gitlab-job-token, gitlab-id-token]\n", []string{"rules[0]", "ref_protected", "id_tokens"}},
		{"unconfigured kind", "  socket: {path: /run/keyless/agent.sock, mode: \"0660\"}\n", "", []string{"rules[2].identity", "listen.socket is not set"}},
		{"profile elsewhere", "    profileArn: " + testProfile + "\n    duration: 2h", "    profileArn: arn:aws:rolesanywhere:eu-west-1:111122223333:profile/8e2b6d4c-0000-4000-8000-000000000002\n    duration: 2h", []string{"rules[1].profileArn", "one account and region"}},
		{"mixed callers", "identity: unix-peer", "identity: [unix-peer, static-token]", []string{"rules[2].identity", "not a mix"}},
		{"rule name twice", "  - name: plan\n", "  - name: deploy\n", []string{"rules[1].name", "names two rules"}},
		{"two documents", "rules:", "---\nrules:", []string{"agent.yaml"}},
		{"setup without link-local", `["169.254.170.2:80", "127.0.0.1:9911"]`, `["127.0.0.1:9911"]` + "\n  setupNetwork: true", []string{"listen.setupNetwork"}},
		{"job token trusted too long", "  url: https://gitlab.example.com\n", "  url: https://gitlab.example.com\n  jobTokenCache: 10m\n", []string{"gitlab.jobTokenCache", "at most 5m"}},
		{"listener twice", `["169.254.170.2:80", "127.0.0.1:9911"]`, `["169.254.170.2:80", "169.254.170.2:80"]`, []string{"listen.containerCredentials[1]", "listed twice"}},
		{"runner id", "  url: https://gitlab.example.com\n", "  url: https://gitlab.example.com\n  runnerIds: [0]\n", []string{"gitlab.runnerIds[0]", "positive"}},
		{"rate over quota", "  trustAnchorArn: " + testAnchor + "\n", "  trustAnchorArn: " + testAnchor + "\n  createSessionRate: 20\n", []string{"aws.createSessionRate", "quota"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(validConfig, tc.old) {
				t.Fatalf("the valid configuration has no %q", tc.old)
			}
			doc := strings.Replace(validConfig, tc.old, tc.new, 1)
			_, err := ParseConfig([]byte(doc), "agent.yaml", "/etc/keyless")
			if err == nil {
				t.Fatalf("accepted:\n%s", doc)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Errorf("error %T is not a *ConfigError", err)
			}
		})
	}
}

func TestParseConfigEmpty(t *testing.T) {
	for _, doc := range []string{"", "# nothing\n"} {
		if _, err := ParseConfig([]byte(doc), "agent.yaml", "."); err == nil || !strings.Contains(err.Error(), "empty") {
			t.Errorf("%q: %v", doc, err)
		}
	}
}

func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(validConfig))
	f.Add([]byte("rules: [{name: x, identity: static-token, match: {token: a}}]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseConfig(data, "agent.yaml", "/etc/keyless")
		if err != nil {
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("error %T is not a *ConfigError: %v", err, err)
			}
			return
		}
		for _, r := range c.Rules {
			if r.Duration < 30*time.Minute || r.Duration > MaxDuration {
				t.Fatalf("accepted duration %s", r.Duration)
			}
			if len(r.Match) == 0 {
				t.Fatal("accepted a rule with no match")
			}
		}
	})
}
