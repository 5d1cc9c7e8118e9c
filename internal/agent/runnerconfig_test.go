package agent

import (
	"errors"
	"regexp"
	"strings"
	"testing"
)

// tomlKeys returns the snippet's non-comment lines, which must be exactly
// the keys GitLab Runner reads (the interop test parses them as TOML).
func tomlKeys(s string) []string {
	var out []string
	inString := false
	for _, l := range strings.Split(s, "\n") {
		switch {
		case inString:
			if l == "'''" {
				inString = false
			}
			continue
		case strings.HasSuffix(l, "= '''"):
			inString = true
		case strings.TrimSpace(l) == "" || strings.HasPrefix(strings.TrimSpace(l), "#"):
			continue
		}
		out = append(out, strings.TrimSpace(l))
	}
	return out
}

func mustConfig(t *testing.T, yaml string) *Config {
	t.Helper()
	c, err := ParseConfig([]byte(yaml), "agent.yaml", "/etc/keyless")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestRunnerConfig: each executor gets the full URI of a listener it can
// reach, pinned in pre_build_script with the job's token (nothing in
// environment, which job variables override), no volumes, cap_drop
// NET_RAW for Docker jobs and (Docker Desktop) the relay's network.
func TestRunnerConfig(t *testing.T) {
	cfg := mustConfig(t, validConfig)
	docker := []string{"[runners.docker]", `cap_drop = ["NET_RAW"]`}
	for _, tc := range []struct {
		executor Executor
		uri      string
		keys     []string
	}{
		{ExecutorDocker, "http://169.254.170.2/v1/credentials", append(docker, "[runners.feature_flags]", "FF_NETWORK_PER_BUILD = true")},
		{ExecutorDockerDesktop, "http://169.254.170.2/v1/credentials", append(docker, `network_mode = "keyless"`)},
		{ExecutorShell, "http://169.254.170.2/v1/credentials", nil},
	} {
		t.Run(string(tc.executor), func(t *testing.T) {
			out, warnings, err := RunnerConfig(cfg, RunnerOptions{Executor: tc.executor, RelayPort: 9912})
			if err != nil {
				t.Fatal(err)
			}
			if len(warnings) != 0 {
				t.Errorf("warnings: %q", warnings)
			}
			want := append([]string{"[[runners]]", "pre_build_script = '''"}, tc.keys...)
			if got := tomlKeys(out); strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("keys:\n%s\nwant:\n%s\nin:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"), out)
			}
			script := PreBuildScript(tc.uri, true, true)
			if !strings.Contains(out, "pre_build_script = '''\n"+script+"'''\n") {
				t.Errorf("no pre_build_script %q in:\n%s", script, out)
			}
			if !strings.Contains(script, "\nexport AWS_CONTAINER_CREDENTIALS_FULL_URI="+tc.uri+"\n") {
				t.Errorf("the pre_build_script does not pin the full URI:\n%s", script)
			}
			if strings.Contains(out, "volumes =") || strings.Contains(out, "runner.key") {
				t.Errorf("the snippet mounts something or names the key:\n%s", out)
			}
			if tc.executor == ExecutorDockerDesktop && !strings.Contains(out, "--upstream http://host.docker.internal:9912\n") {
				t.Errorf("no relay command for port 9912:\n%s", out)
			}
		})
	}
}

// TestRunnerConfigGuards: every executor's pre_build_script unsets the
// credentials a dotenv report could set and keeps the agent's host out of
// any proxy (the interop tests run them); Docker Desktop's comments say
// that services keep NET_RAW on the shared network, with the
// allowed_services example.
func TestRunnerConfigGuards(t *testing.T) {
	cfg := mustConfig(t, validConfig)
	for _, ex := range Executors {
		out, _, err := RunnerConfig(cfg, RunnerOptions{Executor: ex, RelayPort: 9912})
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{CredentialVariablesUnset, NoProxy("169.254.170.2")} {
			if !strings.Contains(out, want) {
				t.Errorf("%s: no %q in:\n%s", ex, want, out)
			}
		}
		services := strings.Contains(out, "service containers (services:)\n# with Docker's default capabilities, NET_RAW included") &&
			strings.Contains(out, `# allowed_services = [`)
		if services != (ex == ExecutorDockerDesktop) {
			t.Errorf("%s: says services keep NET_RAW on the shared network: %v\n%s", ex, services, out)
		}
	}
	for _, v := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN",
		"AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_PROFILE", "AWS_DEFAULT_PROFILE"} {
		if !strings.Contains(CredentialVariablesUnset, " "+v+" ") && !strings.Contains(CredentialVariablesUnset, " "+v+";") {
			t.Errorf("pre_build_script does not unset %s", v)
		}
	}
	if got := PreBuildScript("http://[fd00:ec2::23]/v1/credentials", true, false); !strings.Contains(got, NoProxy("fd00:ec2::23")) {
		t.Errorf("no NO_PROXY for fd00:ec2::23:\n%s", got)
	}
	if got := PreBuildScript("http://127.0.0.1:9911/v1/credentials", true, false); !strings.Contains(got, NoProxy("127.0.0.1")) {
		t.Errorf("no NO_PROXY for the loopback listener:\n%s", got)
	}
}

// TestRunnerConfigShellListener: the shell executor's jobs use a listener
// on a port below 1024 (which only root may open) when agent.yaml has
// one, loopback first; a port of 1024 or more, which any user may take
// while the agent is down, is printed with a warning.
func TestRunnerConfigShellListener(t *testing.T) {
	const listeners = `["169.254.170.2:80", "127.0.0.1:9911"]`
	for ls, want := range map[string]struct {
		uri  string
		warn bool
	}{
		listeners: {"http://169.254.170.2/v1/credentials", false},
		`["127.0.0.1:9911", "169.254.170.23:80"]`:  {"http://169.254.170.23/v1/credentials", false},
		`["127.0.0.1:80", "169.254.170.2:80"]`:     {"http://127.0.0.1/v1/credentials", false},
		`["127.0.0.1:9911"]`:                       {"http://127.0.0.1:9911/v1/credentials", true},
		`["169.254.170.2:8080", "127.0.0.1:9911"]`: {"http://127.0.0.1:9911/v1/credentials", true},
	} {
		out, warnings, err := RunnerConfig(mustConfig(t, strings.Replace(validConfig, listeners, ls, 1)), RunnerOptions{Executor: ExecutorShell})
		if err != nil {
			t.Fatalf("%s: %v", ls, err)
		}
		if !strings.Contains(out, "\nexport AWS_CONTAINER_CREDENTIALS_FULL_URI="+want.uri+"\n") {
			t.Errorf("%s: not %s:\n%s", ls, want.uri, out)
		}
		warned := len(warnings) == 1 && strings.Contains(warnings[0], "any user of this host") && strings.Contains(warnings[0], `"169.254.170.2:80"`)
		if commented := strings.Contains(out, "# WARNING: port "); warned != want.warn || commented != want.warn {
			t.Errorf("%s: warnings %q, comment %v; want a warning: %v\n%s", ls, warnings, commented, want.warn, out)
		}
	}
}

// TestRunnerConfigToken: the token a job shows follows what agent.yaml
// verifies; an id_tokens JWT is used only behind the job_id check.
func TestRunnerConfigToken(t *testing.T) {
	idOnly := strings.Replace(validConfig, "  url: https://gitlab.example.com\n", "", 1)
	idOnly = strings.Replace(idOnly, "identity: [gitlab-job-token, gitlab-id-token]", "identity: gitlab-id-token", 1)
	jobOnly := strings.Replace(validConfig, "  idTokens:\n    issuer: https://gitlab.example.com\n    audience: keyless\n", "", 1)
	jobOnly = strings.Replace(jobOnly, "identity: [gitlab-job-token, gitlab-id-token]", "identity: gitlab-job-token", 1)
	jobOnly = strings.Replace(jobOnly, "identity: gitlab-id-token\n    match: {project_path: infra/site, ref_protected: \"true\"}", "identity: gitlab-job-token\n    match: {project_path: infra/site}", 1)
	const useJWT = IDTokenJobCheck + ` export AWS_CONTAINER_AUTHORIZATION_TOKEN="$KEYLESS_ID_TOKEN";;`
	for name, tc := range map[string]struct {
		yaml, want string
		jwt        bool
	}{
		"both":     {validConfig, `export AWS_CONTAINER_AUTHORIZATION_TOKEN="$CI_JOB_TOKEN"`, true},
		"id only":  {idOnly, `export AWS_CONTAINER_AUTHORIZATION_TOKEN=`, true},
		"job only": {jobOnly, `export AWS_CONTAINER_AUTHORIZATION_TOKEN="$CI_JOB_TOKEN"`, false},
	} {
		out, _, err := RunnerConfig(mustConfig(t, tc.yaml), RunnerOptions{Executor: ExecutorDocker})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !strings.Contains(out, "\n"+tc.want+"\n") {
			t.Errorf("%s: no %q in:\n%s", name, tc.want, out)
		}
		if strings.Contains(out, "\n  "+useJWT+"\n") != tc.jwt || strings.Count(out, `="$KEYLESS_ID_TOKEN"`) > 1 {
			t.Errorf("%s: the JWT is used (%v) other than behind the job_id check:\n%s", name, tc.jwt, out)
		}
		if strings.Contains(out, "aud: keyless") != tc.jwt {
			t.Errorf("%s: the id_tokens note is wrong:\n%s", name, out)
		}
	}
}

// TestRunnerConfigRefuses: an agent.yaml the executor's jobs cannot use
// is an error saying what to add, never a snippet that would not work.
func TestRunnerConfigRefuses(t *testing.T) {
	loopbackOnly := strings.Replace(validConfig, `["169.254.170.2:80", "127.0.0.1:9911"]`, `["127.0.0.1:9911"]`, 1)
	socketOnly := strings.Replace(validConfig, `  containerCredentials: ["169.254.170.2:80", "127.0.0.1:9911"]`+"\n", "", 1)
	noGitLab := `identity: {certificate: runner.crt, key: runner.key}
aws: {trustAnchorArn: ` + testAnchor + `}
listen:
  containerCredentials: ["169.254.170.2:80"]
  socket: {path: /run/keyless/agent.sock}
rules:
  - {name: host, identity: unix-peer, match: {uid: "1000"}, roleArn: ` + testRole + `, profileArn: ` + testProfile + `}
`
	for name, tc := range map[string]struct {
		yaml     string
		o        RunnerOptions
		err, fix string
	}{
		"docker, loopback only":     {loopbackOnly, RunnerOptions{Executor: ExecutorDocker}, "no listener a job container can reach", `"169.254.170.2:80"`},
		"shell, socket only":        {socketOnly, RunnerOptions{Executor: ExecutorShell}, "no container-credentials listener", "--aws-config"},
		"shell, only a kernel port": {strings.Replace(validConfig, `["169.254.170.2:80", "127.0.0.1:9911"]`, `["127.0.0.1:0"]`, 1), RunnerOptions{Executor: ExecutorShell}, "a port the kernel picks", "fixed port"},
		"desktop, no relay port":    {validConfig, RunnerOptions{Executor: ExecutorDockerDesktop}, "no relay listener port", "listen.relay"},
		"desktop, port too large":   {validConfig, RunnerOptions{Executor: ExecutorDockerDesktop, RelayPort: 70000}, "no relay listener port", "listen.relay"},
		"docker, port 0":            {strings.Replace(validConfig, "169.254.170.2:80", "169.254.170.2:0", 1), RunnerOptions{Executor: ExecutorDocker}, "a port the kernel picks", "fixed port"},
		"no GitLab identity":        {noGitLab, RunnerOptions{Executor: ExecutorDocker}, "verifies no GitLab identity", "gitlab.url"},
		"no GitLab identity, shell": {noGitLab, RunnerOptions{Executor: ExecutorShell}, "verifies no GitLab identity", "gitlab.url"},
	} {
		_, _, err := RunnerConfig(mustConfig(t, tc.yaml), tc.o)
		var re *RunnerConfigError
		if !errors.As(err, &re) || !strings.Contains(err.Error(), tc.err) || !strings.Contains(re.Fix, tc.fix) {
			t.Errorf("%s: got %v (fix %q), want %q with a fix naming %s", name, err, re, tc.err, tc.fix)
		}
	}
	if _, _, err := RunnerConfig(mustConfig(t, validConfig), RunnerOptions{Executor: "kubernetes"}); err == nil {
		t.Error("an unknown executor got a snippet")
	}
	if _, err := ParseExecutor("kubernetes"); err == nil {
		t.Error("ParseExecutor accepted kubernetes")
	}
}

func TestSocketAWSConfig(t *testing.T) {
	out, err := SocketAWSConfig(mustConfig(t, validConfig))
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^\[profile keyless\]\ncredential_process = keyless credential-process --agent /run/keyless/agent.sock\n$`).MatchString(out) {
		t.Errorf("AWS config:\n%s", out)
	}
	noSocket := strings.Replace(validConfig, "  socket: {path: /run/keyless/agent.sock, mode: \"0660\"}\n", "", 1)
	noSocket = strings.Replace(noSocket, "  - name: host\n    identity: unix-peer\n    match: {uid: \"1000\"}\n    roleArn: "+testRole+"\n    profileArn: "+testProfile+"\n", "", 1)
	if _, err := SocketAWSConfig(mustConfig(t, noSocket)); err == nil {
		t.Error("an AWS config for an agent with no socket")
	}
}

func TestContainerURI(t *testing.T) {
	for ls, want := range map[string]string{
		"169.254.170.23:80,169.254.170.2:8080": "http://169.254.170.2:8080/v1/credentials",
		"[fd00:ec2::23]:80":                    "http://[fd00:ec2::23]/v1/credentials",
		"169.254.170.23:80":                    "http://169.254.170.23/v1/credentials",
	} {
		l, ok := containerListener(strings.Split(ls, ","))
		if got := containerURI(l); !ok || got != want {
			t.Errorf("%s: %s, want %s", ls, got, want)
		}
	}
}

func TestConfiguredRelayPort(t *testing.T) {
	for listen, want := range map[string]int{
		"": 0, "  relay: [\"127.0.0.1:9912\"]\n": 9912, "  relay: [\"127.0.0.1:9999\", \"127.0.0.1:9912\"]\n": 9999,
	} {
		body := strings.Replace(validConfig, "listen:\n", "listen:\n"+listen, 1)
		cfg, err := ParseConfig([]byte(body), "agent.yaml", t.TempDir())
		if err != nil {
			t.Fatalf("%q: %v", listen, err)
		}
		if got := ConfiguredRelayPort(cfg); got != want {
			t.Errorf("%q: %d, want %d", listen, got, want)
		}
	}
}
