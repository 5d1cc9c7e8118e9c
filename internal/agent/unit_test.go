package agent_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/keyless-dev/keyless/internal/agent"
	"github.com/keyless-dev/keyless/internal/svcunit"
	"github.com/keyless-dev/keyless/internal/svcunit/svcunittest"
)

// unitConfig is agent.yaml with the listeners given, the files where
// docs/agent.md puts them.
func unitConfig(t *testing.T, listen string) *agent.Config {
	t.Helper()
	cfg, err := agent.ParseConfig([]byte(`identity:
  certificate: /var/lib/keyless/runner.crt
  key: /var/lib/keyless/runner.key
  ca: { url: "https://10.0.0.5:9000", root: /etc/keyless/root_ca.crt }
  enroll: { tokenFile: /etc/keyless/runner.token, subject: gitlab-runner }
aws:
  trustAnchorArn: arn:aws:rolesanywhere:us-east-1:111122223333:trust-anchor/3f7c1a0e-0000-4000-8000-000000000001
gitlab:
  url: https://gitlab.example.com
listen:
`+listen+`
rules:
  - name: plan
    identity: gitlab-job-token
    match: {project_path: "infra/*"}
    roleArn: arn:aws:iam::111122223333:role/ci-reader
    profileArn: arn:aws:rolesanywhere:us-east-1:111122223333:profile/8e2b6d4c-0000-4000-8000-000000000002
`), "/etc/keyless/agent.yaml", "/etc/keyless")
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

const (
	linkLocal = `  containerCredentials: ["169.254.170.2:80", "169.254.170.23:80"]
  socket: { path: /run/keyless/agent.sock, mode: "0660" }`
	loopback = `  containerCredentials: ["127.0.0.1:9911"]
  socket: { path: /var/lib/keyless/sock/agent.sock, mode: "0660", group: gitlab-runner }`
)

// program is an executable keyless for systemd-analyze verify to find.
func program(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "agent-unit-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "keyless")
	if err := os.WriteFile(path, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestUnitSystemd(t *testing.T) {
	exe := program(t)
	for _, tc := range []struct {
		name, listen string
		want         svcunit.Service
	}{
		{"link-local", linkLocal, svcunit.Service{
			PreStart:         []string{exe, "agent", "setup-network", "169.254.170.2", "169.254.170.23"},
			Capabilities:     []string{"CAP_NET_BIND_SERVICE"},
			ReadsInterfaces:  true,
			RuntimeDirectory: "keyless",
			WritePaths:       []string{"/var/lib/keyless"},
		}},
		{"loopback", loopback, svcunit.Service{
			WritePaths: []string{"/var/lib/keyless", "/var/lib/keyless/sock"},
			Groups:     []string{"gitlab-runner"},
		}},
		{"loopback below 1024", `  containerCredentials: ["127.0.0.1:80"]
  metrics: 127.0.0.1:9464`, svcunit.Service{
			Capabilities: []string{"CAP_NET_BIND_SERVICE"},
			WritePaths:   []string{"/var/lib/keyless"},
		}},
		{"socket elsewhere in /run, metrics below 1024", `  socket: { path: /run/keyless/agent/agent.sock }
  metrics: 127.0.0.1:443`, svcunit.Service{
			Capabilities: []string{"CAP_NET_BIND_SERVICE"},
			WritePaths:   []string{"/var/lib/keyless", "/run/keyless/agent"},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := agent.Unit{Executable: exe, ConfigFile: "/etc/keyless/agent.yaml", Config: unitConfig(t, tc.listen), Log: []string{"--log-format", "json"}}
			s, err := u.Service(svcunit.Systemd)
			if err != nil {
				t.Fatal(err)
			}
			want := tc.want
			want.Name, want.Label, want.User, want.Notify, want.LogFile = "keyless-agent", "dev.keyless.agent", agent.DefaultUser, true, "/var/log/keyless-agent.log"
			want.Description = "keyless agent: AWS credentials for each CI job, from /etc/keyless/agent.yaml"
			want.Command = []string{exe, "agent", "--config", "/etc/keyless/agent.yaml", "--log-format", "json"}
			want.ReadPaths = []string{"/etc/keyless/agent.yaml", "/var/lib/keyless/runner.crt", "/var/lib/keyless/runner.key", "/etc/keyless/root_ca.crt", "/etc/keyless/runner.token"}
			if diff := cmp.Diff(want, s); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			unit, err := svcunit.Render(svcunit.Systemd, s)
			if err != nil {
				t.Fatal(err)
			}
			path := svcunittest.WriteUnit(t, s.Name, unit)
			svcunittest.Verify(t, path)
			if got := svcunittest.Exposure(t, path); got > 3.5 {
				t.Errorf("exposure %.1f, want 3.5 or less:\n%s", got, unit)
			}
		})
	}
}

func TestUnitLaunchd(t *testing.T) {
	u := agent.Unit{Executable: "/usr/local/bin/keyless", ConfigFile: "/etc/keyless/agent.yaml", Config: unitConfig(t, loopback)}
	s, err := u.Service(svcunit.Launchd)
	if err != nil {
		t.Fatal(err)
	}
	if s.User != "" || len(s.PreStart)+len(s.Capabilities)+len(s.Groups) != 0 || s.RuntimeDirectory != "" {
		t.Errorf("launchd service with root or systemd settings: %+v", s)
	}
	plist, err := svcunit.Render(svcunit.Launchd, s)
	if err != nil {
		t.Fatal(err)
	}
	got := svcunittest.Plist(t, plist)
	if diff := cmp.Diff([]any{"/usr/local/bin/keyless", "agent", "--config", "/etc/keyless/agent.yaml"}, got["ProgramArguments"]); diff != "" {
		t.Errorf("ProgramArguments (-want +got):\n%s", diff)
	}

	// macOS cannot give containers 169.254.170.2: said, not printed.
	u.Config = unitConfig(t, linkLocal)
	if _, err := u.Service(svcunit.Launchd); !errors.Is(err, agent.ErrLinkLocalOnLaunchd) || !strings.Contains(err.Error(), "169.254.170.2") {
		t.Errorf("launchd with link-local listeners: %v, want ErrLinkLocalOnLaunchd", err)
	}
}

func TestUnitRefusals(t *testing.T) {
	u := agent.Unit{Executable: "/usr/local/bin/keyless", ConfigFile: "/root/agent.yaml", Config: unitConfig(t, loopback)}
	if _, err := u.Service(svcunit.Systemd); err == nil || !strings.Contains(err.Error(), "root's home directory, which user keyless cannot read") {
		t.Errorf("config in /root for user keyless: %v", err)
	}
	u.User = "root"
	if _, err := u.Service(svcunit.Systemd); err != nil {
		t.Errorf("config in /root for root: %v", err)
	}
	u.Config = nil
	if _, err := u.Service(svcunit.Systemd); err == nil {
		t.Error("a unit without a configuration")
	}
}
