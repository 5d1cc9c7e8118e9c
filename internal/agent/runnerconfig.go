package agent

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Executor is a GitLab Runner executor that RunnerConfig writes a
// [[runners]] snippet for.
type Executor string

// The executors RunnerConfig knows.
const (
	// ExecutorDocker is the Docker executor on Linux: jobs reach the
	// agent on the host's 169.254.170.2 (or .23).
	ExecutorDocker Executor = "docker"
	// ExecutorDockerDesktop is the Docker executor with Docker Desktop
	// (macOS, Windows): jobs join the relay's network, where the relay
	// owns 169.254.170.2 and forwards to the agent on the host.
	ExecutorDockerDesktop Executor = "docker-desktop"
	// ExecutorShell is the shell executor: jobs run on the host as the
	// runner's user.
	ExecutorShell Executor = "shell"
)

// Executors lists them, for flags and messages.
var Executors = []Executor{ExecutorDocker, ExecutorDockerDesktop, ExecutorShell}

// IDTokenVariable is the job variable the CI template's id_tokens variant
// (deploy/gitlab) puts its JWT in; the runner's pre_build_script prefers it
// to CI_JOB_TOKEN when the agent verifies id_tokens.
const IDTokenVariable = "KEYLESS_ID_TOKEN"

// Relay defaults, as deploy/docker/relay and docs/gitlab.md set up the
// Docker Desktop network.
const (
	// RelayNetwork is the user-defined Docker network whose subnet holds
	// 169.254.170.2, the one address every SDK accepts over http.
	RelayNetwork = "keyless"
	// DefaultRelayPort is the agent's relay listener on the host's
	// loopback, which the relay reaches as host.docker.internal.
	DefaultRelayPort = 9912
)

// RunnerOptions says which snippet RunnerConfig writes.
type RunnerOptions struct {
	Executor Executor
	// ConfigFile names agent.yaml in the snippet's comments.
	ConfigFile string
	// RelayPort is the agent's relay listener port (docker-desktop only;
	// the relay forwards to host.docker.internal:RelayPort).
	RelayPort int
}

// RunnerConfigError says why agent.yaml cannot serve an executor's jobs.
type RunnerConfigError struct {
	Executor Executor
	Err      error
	// Fix is what to change in agent.yaml.
	Fix string
}

func (e *RunnerConfigError) Error() string {
	return fmt.Sprintf("the %s executor: %v", e.Executor, e.Err)
}

func (e *RunnerConfigError) Unwrap() error { return e.Err }

// RunnerConfig returns the [[runners]] snippet of GitLab Runner's
// config.toml for cfg and an executor: TOML whose comments say where it
// goes and what else to set up. Only non-secret values go into
// environment (which also reaches service containers); the job's token
// goes into AWS_CONTAINER_AUTHORIZATION_TOKEN in pre_build_script, which
// runs in the job's shell only. Nothing of the host is mounted.
func RunnerConfig(cfg *Config, o RunnerOptions) (string, error) {
	fail := func(fix string, format string, args ...any) error {
		return &RunnerConfigError{Executor: o.Executor, Err: fmt.Errorf(format, args...), Fix: fix}
	}
	tokenExpr, err := jobTokenExpr(cfg)
	if err != nil {
		return "", fail("add gitlab.url (job tokens) or gitlab.idTokens (id_tokens JWTs) to agent.yaml, and a rule for gitlab-job-token or gitlab-id-token", "%v", err)
	}
	var b strings.Builder
	file := o.ConfigFile
	if file == "" {
		file = cfg.File
	}
	fmt.Fprintf(&b, "# GitLab Runner config.toml for keyless agent (%s), from keyless agent\n", file)
	fmt.Fprintf(&b, "# print-runner-config --executor %s. Merge these keys into your runner's\n", o.Executor)
	b.WriteString("# [[runners]] section (keep its name, url, token and executor); if it has an\n")
	b.WriteString("# environment or pre_build_script already, add these lines to them.\n")
	var uri string
	switch o.Executor {
	case ExecutorDocker:
		l, ok := containerListener(cfg.Listen.ContainerCredentials)
		if !ok {
			return "", fail(`add "169.254.170.2:80" to listen.containerCredentials, and start the agent with --setup-network (or listen.setupNetwork: true)`,
				"agent.yaml has no listener a job container can reach: containers reach the host's 169.254.170.2, 169.254.170.23 or fd00:ec2::23, never its loopback")
		}
		if l.Port() == 0 {
			return "", fail(`give the listener a fixed port, such as "169.254.170.2:80"`, "the listener %s has a port the kernel picks at start, which jobs cannot know", l)
		}
		uri = containerURI(l)
		b.WriteString("#\n# Jobs reach the agent on this host's " + l.Addr().String() + "; the host firewall must let\n")
		b.WriteString("# the Docker bridges reach it. Nothing of the host is mounted: remove any\n")
		b.WriteString("# volume that held the runner's certificate or key (the reference setup's\n")
		b.WriteString("# \"...:/certs:ro\"), since only the agent reads them now.\n")
		if l.Addr() != containerHosts[0] {
			b.WriteString("# Debian 12's AWS CLI and boto3 (botocore 1.29) accept only 169.254.170.2;\n")
			b.WriteString("# add \"169.254.170.2:80\" to listen.containerCredentials for them.\n")
		}
	case ExecutorDockerDesktop:
		uri = "http://169.254.170.2" + ContainerPath
		port := o.RelayPort
		if port <= 0 || port > 65535 {
			return "", fail(`add listen.relay: ["127.0.0.1:9912"] to agent.yaml, or give the relay listener's port`, "no relay listener port: the relay forwards to the agent's relay listener on the host")
		}
		upstream := "http://host.docker.internal:" + strconv.Itoa(port)
		b.WriteString("#\n# Docker Desktop (macOS, Windows): containers cannot reach the host over any\n")
		b.WriteString("# address the SDKs accept over http, so a relay container owns 169.254.170.2\n")
		b.WriteString("# on a Docker network of its own and forwards each request, with its token,\n")
		fmt.Fprintf(&b, "# to the agent's relay listener (port %d on the host's loopback). Jobs join\n", port)
		b.WriteString("# that network (network_mode). Set it up once (the image: deploy/docker/relay):\n")
		fmt.Fprintf(&b, "#   docker network create --subnet 169.254.170.0/24 --gateway 169.254.170.1 %s\n", RelayNetwork)
		fmt.Fprintf(&b, "#   docker run -d --name keyless-relay --restart unless-stopped --network %s \\\n", RelayNetwork)
		fmt.Fprintf(&b, "#     --ip 169.254.170.2 keyless-relay agent relay --upstream %s\n", upstream)
		b.WriteString("# Nothing of the host is mounted: remove any volume that held the runner's\n")
		b.WriteString("# certificate or key (the reference setup's \"...:/certs:ro\").\n")
	case ExecutorShell:
		l, ok := shellListener(cfg.Listen.ContainerCredentials)
		if !ok {
			fix := `add a loopback listener such as "127.0.0.1:9911" to listen.containerCredentials`
			if cfg.Listen.Socket != nil {
				fix += ", or give the runner's user the socket's AWS config (--aws-config), whose callers are known by their uid, not their job"
			}
			return "", fail(fix, "agent.yaml has no container-credentials listener on this host, so jobs cannot show their job token")
		}
		if l.Port() == 0 {
			return "", fail(`give the listener a fixed port, such as "127.0.0.1:9911"`, "the listener %s has a port the kernel picks at start, which jobs cannot know", l)
		}
		uri = containerURI(l)
		b.WriteString("#\n# Shell executor: jobs run on this host as the runner's user and reach the\n")
		b.WriteString("# agent at " + l.String() + " with their own job token, so each job gets a\n")
		b.WriteString("# session of its own. Jobs of one user can read each other's environment:\n")
		b.WriteString("# give such a runner only roles any of its jobs may have (docs/gitlab.md).\n")
		if s := cfg.Listen.Socket; s != nil {
			b.WriteString("# Tools of the runner's user outside jobs can use the agent's socket\n")
			b.WriteString("# instead (known by their uid); --aws-config prints that AWS config:\n")
			b.WriteString("#   [profile keyless]\n")
			fmt.Fprintf(&b, "#   credential_process = keyless credential-process --agent %s\n", s.Path)
		}
	default:
		return "", fmt.Errorf("unknown executor %q: one of %s", o.Executor, executorList())
	}
	b.WriteString("#\n# AWS_CONTAINER_CREDENTIALS_FULL_URI is not secret, so environment carries it\n")
	b.WriteString("# (it reaches service containers too; without a token they get nothing).\n")
	b.WriteString("# The token is the job's own and goes only into the job's shell, through\n")
	b.WriteString("# pre_build_script, which also unsets the variables the SDKs would prefer:\n")
	b.WriteString("# RELATIVE_URI (botocore takes it over FULL_URI) and the token file.\n")
	b.WriteString("# No region is set: jobs choose theirs (AWS_REGION, or the tool's own).\n")
	if g := cfg.GitLab; g != nil && g.IDTokens != nil {
		fmt.Fprintf(&b, "# A job with id_tokens: {%s: {aud: %s}} (the CI template's\n", IDTokenVariable, g.IDTokens.Audiences[0])
		b.WriteString("# .keyless_aws_id_token, deploy/gitlab) sends that JWT instead of its CI_JOB_TOKEN.\n")
	}
	b.WriteString("[[runners]]\n")
	fmt.Fprintf(&b, "  environment = [%s]\n", tomlString("AWS_CONTAINER_CREDENTIALS_FULL_URI="+uri))
	b.WriteString("  pre_build_script = '''\n")
	b.WriteString(PreBuildScript(tokenExpr))
	b.WriteString("'''\n")
	if o.Executor == ExecutorDockerDesktop {
		b.WriteString("  [runners.docker]\n")
		fmt.Fprintf(&b, "    network_mode = %s\n", tomlString(RelayNetwork))
	}
	return b.String(), nil
}

// PreBuildScript is the runner's pre_build_script: it hands the job its
// token (tokenExpr, a shell word) for the agent.
func PreBuildScript(tokenExpr string) string {
	return "unset AWS_CONTAINER_CREDENTIALS_RELATIVE_URI AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE\n" +
		"export AWS_CONTAINER_AUTHORIZATION_TOKEN=" + tokenExpr + "\n"
}

// jobTokenExpr is the shell word that gives a job's token: its id_tokens
// JWT when the agent verifies those and the job asked for one, else its
// CI_JOB_TOKEN when the agent verifies those.
func jobTokenExpr(cfg *Config) (string, error) {
	g := cfg.GitLab
	jobTokens := g != nil && g.URL != ""
	idTokens := g != nil && g.IDTokens != nil
	switch {
	case jobTokens && idTokens:
		return `"${` + IDTokenVariable + `:-$CI_JOB_TOKEN}"`, nil
	case jobTokens:
		return `"$CI_JOB_TOKEN"`, nil
	case idTokens:
		return `"$` + IDTokenVariable + `"`, nil
	}
	return "", errors.New("agent.yaml verifies no GitLab identity, so no job could show who it is")
}

// SocketAWSConfig returns an AWS config file (~/.aws/config) whose profile
// keyless gets credentials from the agent's socket, for the runner's user
// and host tools: the agent knows such callers by their uid (unix-peer
// rules).
func SocketAWSConfig(cfg *Config) (string, error) {
	s := cfg.Listen.Socket
	if s == nil {
		return "", &RunnerConfigError{Executor: ExecutorShell, Err: errors.New("agent.yaml has no socket"),
			Fix: "add listen.socket with path (and group, mode \"0660\" for the runner's user), and a unix-peer rule"}
	}
	return fmt.Sprintf(`# AWS config for the runner's user (~/.aws/config, or AWS_CONFIG_FILE), from
# keyless agent print-runner-config --executor shell --aws-config. The agent
# knows callers on its socket by their uid: a unix-peer rule decides.
[profile keyless]
credential_process = keyless credential-process --agent %s
`, s.Path), nil
}

// containerListener is the listener a job container uses: 169.254.170.2
// first (every SDK accepts it), then .23 and fd00:ec2::23.
func containerListener(ls []string) (netip.AddrPort, bool) {
	for _, h := range containerHosts {
		for _, l := range ls {
			if ap := netip.MustParseAddrPort(l); ap.Addr() == h {
				return ap, true
			}
		}
	}
	return netip.AddrPort{}, false
}

// shellListener is the listener a process on the host uses: loopback
// first, else a link-local one (the host holds those addresses).
func shellListener(ls []string) (netip.AddrPort, bool) {
	for _, l := range ls {
		if ap := netip.MustParseAddrPort(l); ap.Addr().IsLoopback() {
			return ap, true
		}
	}
	return containerListener(ls)
}

func containerURI(l netip.AddrPort) string {
	host := l.String()
	if l.Port() == 80 {
		host = l.Addr().String()
		if l.Addr().Is6() {
			host = "[" + host + "]"
		}
	}
	return "http://" + host + ContainerPath
}

// tomlString quotes s as a TOML basic string.
func tomlString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\u%04X`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

func executorList() string {
	var s []string
	for _, e := range Executors {
		s = append(s, string(e))
	}
	return strings.Join(s, ", ")
}

// ParseExecutor checks an executor's name.
func ParseExecutor(s string) (Executor, error) {
	if e := Executor(s); slices.Contains(Executors, e) {
		return e, nil
	}
	return "", fmt.Errorf("%q: one of %s", s, executorList())
}

// ConfiguredRelayPort reads the port of listen.relay's first address from
// the configuration file, 0 when it has none. It reads the file loosely,
// by itself, so it works with configurations from before the relay
// listener existed in Config.
func ConfiguredRelayPort(file string) (int, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return 0, fmt.Errorf("reading the agent configuration: %w", err)
	}
	var raw struct {
		Listen struct {
			Relay stringOrSeq `yaml:"relay"`
		} `yaml:"listen"`
	}
	if err := yaml.Unmarshal(data, &raw); err != nil {
		return 0, &ConfigError{File: file, Err: err}
	}
	if len(raw.Listen.Relay) == 0 {
		return 0, nil
	}
	ap, err := netip.ParseAddrPort(raw.Listen.Relay[0])
	if err != nil {
		return 0, &ConfigError{File: file, Field: "listen.relay", Err: fmt.Errorf("%q: an address and port, such as 127.0.0.1:9912", raw.Listen.Relay[0])}
	}
	return int(ap.Port()), nil
}
