package agent

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
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
// goes and what else to set up, and warnings about risks the operator
// should fix in agent.yaml (also written into the snippet's comments).
// Everything goes into pre_build_script, which runs in the job's shell
// after the job's variables are set and which no job variable or dotenv
// report can change: the endpoint (so a variable cannot point the SDKs
// elsewhere) and the job's token. Docker jobs lose CAP_NET_RAW (cap_drop),
// so a job cannot forge ARP on a shared network and catch its neighbours'
// tokens. Nothing of the host is mounted.
func RunnerConfig(cfg *Config, o RunnerOptions) (string, []string, error) {
	fail := func(fix string, format string, args ...any) error {
		return &RunnerConfigError{Executor: o.Executor, Err: fmt.Errorf(format, args...), Fix: fix}
	}
	g := cfg.GitLab
	jobTokens := g != nil && g.URL != ""
	idTokens := g != nil && g.IDTokens != nil
	if !jobTokens && !idTokens {
		return "", nil, fail("add gitlab.url (job tokens) or gitlab.idTokens (id_tokens JWTs) to agent.yaml, and a rule for gitlab-job-token or gitlab-id-token",
			"agent.yaml verifies no GitLab identity, so no job could show who it is")
	}
	var b strings.Builder
	var warnings []string
	file := o.ConfigFile
	if file == "" {
		file = cfg.File
	}
	fmt.Fprintf(&b, "# GitLab Runner config.toml for keyless agent (%s), from keyless agent\n", file)
	fmt.Fprintf(&b, "# print-runner-config --executor %s. Merge these keys into your runner's\n", o.Executor)
	b.WriteString("# [[runners]] section (keep its name, url, token and executor); if it has a\n")
	b.WriteString("# pre_build_script or a [runners.docker] section already, add these lines to\n")
	b.WriteString("# them. Never set privileged = true on this runner: a privileged job is root\n")
	b.WriteString("# on this host, and so holds the runner's key.\n")
	var uri string
	switch o.Executor {
	case ExecutorDocker:
		l, ok := containerListener(cfg.Listen.ContainerCredentials)
		if !ok {
			return "", nil, fail(`add "169.254.170.2:80" to listen.containerCredentials, and start the agent with --setup-network (or listen.setupNetwork: true)`,
				"agent.yaml has no listener a job container can reach: containers reach the host's 169.254.170.2, 169.254.170.23 or fd00:ec2::23, never its loopback")
		}
		if l.Port() == 0 {
			return "", nil, fail(`give the listener a fixed port, such as "169.254.170.2:80"`, "the listener %s has a port the kernel picks at start, which jobs cannot know", l)
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
			return "", nil, fail(`add listen.relay: ["127.0.0.1:9912"] to agent.yaml, or give the relay listener's port`, "no relay listener port: the relay forwards to the agent's relay listener on the host")
		}
		upstream := "http://host.docker.internal:" + strconv.Itoa(port)
		b.WriteString("#\n# Docker Desktop (macOS, Windows): containers cannot reach the host over any\n")
		b.WriteString("# address the SDKs accept over http, so a relay container owns 169.254.170.2\n")
		b.WriteString("# on a Docker network of its own and forwards each request, with its token,\n")
		fmt.Fprintf(&b, "# to the agent's relay listener (port %d on the host's loopback). Jobs join\n", port)
		b.WriteString("# that network (network_mode). Set it up once (the image: deploy/docker/relay):\n")
		fmt.Fprintf(&b, "#   docker network create --subnet 169.254.170.0/24 --ip-range 169.254.170.128/25 --gateway 169.254.170.1 %s\n", RelayNetwork)
		fmt.Fprintf(&b, "#   docker run -d --name keyless-relay --restart unless-stopped --network %s \\\n", RelayNetwork)
		fmt.Fprintf(&b, "#     --ip 169.254.170.2 keyless-relay agent relay --upstream %s\n", upstream)
		b.WriteString("# Nothing of the host is mounted: remove any volume that held the runner's\n")
		b.WriteString("# certificate or key (the reference setup's \"...:/certs:ro\").\n")
		b.WriteString("# Every job shares the keyless network (the relay's address must be on it),\n")
		b.WriteString("# so FF_NETWORK_PER_BUILD cannot be used here. cap_drop reaches only the\n")
		b.WriteString("# job's own container: GitLab Runner starts service containers (services:)\n")
		b.WriteString("# with Docker's default capabilities, NET_RAW included, so a job's service\n")
		b.WriteString("# running as root could forge ARP on that network and catch other jobs'\n")
		b.WriteString("# tokens. Allow only service images you trust (allowed_services, below),\n")
		b.WriteString("# or keep jobs with services off this runner (a Linux runner with\n")
		b.WriteString("# per-build networks suits them).\n")
	case ExecutorShell:
		l, ok := shellListener(cfg.Listen.ContainerCredentials)
		if !ok {
			fix := `add a listener on a port below 1024, such as "169.254.170.2:80" (with --setup-network), to listen.containerCredentials`
			if cfg.Listen.Socket != nil {
				fix += ", or give the runner's user the socket's AWS config (--aws-config), whose callers are known by their uid, not their job"
			}
			return "", nil, fail(fix, "agent.yaml has no container-credentials listener on this host, so jobs cannot show their job token")
		}
		if l.Port() == 0 {
			return "", nil, fail(`give the listener a fixed port, such as "169.254.170.2:80"`, "the listener %s has a port the kernel picks at start, which jobs cannot know", l)
		}
		uri = containerURI(l)
		b.WriteString("#\n# Shell executor: jobs run on this host as the runner's user and reach the\n")
		b.WriteString("# agent at " + l.String() + " with their own job token, so each job gets a\n")
		b.WriteString("# session of its own. Jobs of one user can read each other's environment:\n")
		b.WriteString("# give such a runner only roles any of its jobs may have (docs/gitlab.md).\n")
		if l.Port() >= 1024 {
			warnings = append(warnings, fmt.Sprintf("jobs send their tokens to %s, a port any user of this host (or a job's leftover process) can listen on while the agent is down, and so receive later jobs' tokens; "+
				`add "169.254.170.2:80" (a port only root may open; start the agent with --setup-network) to listen.containerCredentials`, l))
			fmt.Fprintf(&b, "#\n# WARNING: port %d is one any user of this host (or a job's leftover\n", l.Port())
			b.WriteString("# process) can listen on while the agent is down (boot, restart), and so\n")
			b.WriteString("# receive later jobs' tokens. Add \"169.254.170.2:80\" (a port only root may\n")
			b.WriteString("# open; start the agent with --setup-network) to listen.containerCredentials\n")
			b.WriteString("# and print this again.\n")
		}
		if s := cfg.Listen.Socket; s != nil {
			b.WriteString("# Tools of the runner's user outside jobs can use the agent's socket\n")
			b.WriteString("# instead (known by their uid); --aws-config prints that AWS config:\n")
			b.WriteString("#   [profile keyless]\n")
			fmt.Fprintf(&b, "#   credential_process = keyless credential-process --agent %s\n", s.Path)
		}
	default:
		return "", nil, fmt.Errorf("unknown executor %q: one of %s", o.Executor, executorList())
	}
	b.WriteString("#\n# pre_build_script runs in the job's shell after the job's variables (and\n")
	b.WriteString("# earlier jobs' dotenv reports) are set, and they cannot change it: it pins\n")
	b.WriteString("# AWS_CONTAINER_CREDENTIALS_FULL_URI (a job variable would override the\n")
	b.WriteString("# runner's environment), exports the job's own token, and unsets the\n")
	b.WriteString("# variables the SDKs would prefer: RELATIVE_URI (botocore takes it over\n")
	b.WriteString("# FULL_URI) and the token file. Service containers get neither. No region\n")
	b.WriteString("# is set: jobs choose theirs (AWS_REGION, or the tool's own).\n")
	if idTokens {
		fmt.Fprintf(&b, "# A job with id_tokens: {%s: {aud: %s}} (the CI template's\n", IDTokenVariable, g.IDTokens.Audiences[0])
		b.WriteString("# .keyless_aws_id_token, deploy/gitlab) sends that JWT instead of its\n")
		b.WriteString("# CI_JOB_TOKEN, only when the JWT's job_id is the job's CI_JOB_ID (so an\n")
		b.WriteString("# earlier job's JWT, passed on in a dotenv report, is not used).\n")
	}
	b.WriteString("# It unsets, naming each in the job's log, the credentials and files an\n")
	b.WriteString("# earlier job's dotenv report could set, which every SDK prefers to the\n")
	b.WriteString("# agent (static keys, web identity, config and credentials files, profile):\n")
	b.WriteString("# a job that wants them sets them in its own script. It adds the agent's\n")
	b.WriteString("# address to NO_PROXY, so an HTTP_PROXY (the runner's or a variable) never\n")
	b.WriteString("# receives the job's token.\n")
	if o.Executor != ExecutorShell {
		b.WriteString("# cap_drop: jobs cannot open raw or packet sockets, so a job cannot forge\n")
		b.WriteString("# ARP on a shared network and catch the tokens its neighbours send. The\n")
		b.WriteString("# runner applies it to the job's container only, not to its services.\n")
	}
	if o.Executor == ExecutorDocker {
		b.WriteString("# FF_NETWORK_PER_BUILD: each job and its services get a network of their\n")
		b.WriteString("# own, so a service container (which keeps NET_RAW) reaches only its own\n")
		b.WriteString("# job, and no job sees another's traffic.\n")
	}
	b.WriteString("[[runners]]\n")
	b.WriteString("  pre_build_script = '''\n")
	b.WriteString(PreBuildScript(uri, jobTokens, idTokens))
	b.WriteString("'''\n")
	if o.Executor != ExecutorShell {
		b.WriteString("  [runners.docker]\n")
		b.WriteString("    cap_drop = [\"NET_RAW\"]\n")
	}
	if o.Executor == ExecutorDockerDesktop {
		fmt.Fprintf(&b, "    network_mode = %s\n", tomlString(RelayNetwork))
		b.WriteString("    # Service containers keep NET_RAW on the shared network: list the\n")
		b.WriteString("    # service images you trust, for example\n")
		b.WriteString("    # allowed_services = [\"postgres:16\", \"redis:7\"]\n")
	}
	if o.Executor == ExecutorDocker {
		b.WriteString("  [runners.feature_flags]\n")
		b.WriteString("    FF_NETWORK_PER_BUILD = true\n")
	}
	return b.String(), warnings, nil
}

// PreBuildScript is the runner's pre_build_script for the agent at uri:
// it unsets the variables the SDKs prefer to the full URI and the token,
// and those they prefer to container credentials altogether (which an
// earlier job's dotenv report could set), pins the full URI, keeps the
// agent's host out of any HTTP proxy (NO_PROXY), and exports the job's
// token: its CI_JOB_TOKEN when
// jobTokens, and its KEYLESS_ID_TOKEN JWT instead when idTokens and the
// JWT's job_id claim is the job's CI_JOB_ID. The JWT's payload is read
// with the shell, tr and base64 only (busybox and coreutils have both);
// a JWT whose payload does not say so, or an image without base64, means
// the JWT is not used, with a line on standard error.
func PreBuildScript(uri string, jobTokens, idTokens bool) string {
	var b strings.Builder
	b.WriteString("unset AWS_CONTAINER_CREDENTIALS_RELATIVE_URI AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE\n")
	b.WriteString(CredentialVariablesUnset)
	b.WriteString("export AWS_CONTAINER_CREDENTIALS_FULL_URI=" + uri + "\n")
	if u, err := url.Parse(uri); err == nil && u.Hostname() != "" {
		b.WriteString(NoProxy(u.Hostname()))
	}
	if jobTokens {
		b.WriteString("export AWS_CONTAINER_AUTHORIZATION_TOKEN=\"$CI_JOB_TOKEN\"\n")
	} else {
		b.WriteString("export AWS_CONTAINER_AUTHORIZATION_TOKEN=\n")
	}
	if idTokens {
		b.WriteString(idTokenGuard)
	}
	return b.String()
}

// CredentialVariables are what every AWS SDK prefers to container
// credentials: static keys, web identity, the config and credentials
// files (which may hold keys or a credential_process) and the profile
// that picks from them. A job's variables, and an earlier job's dotenv
// report, can set them; pre_build_script unsets them.
var CredentialVariables = []string{
	"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
	"AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN", "AWS_ROLE_SESSION_NAME",
	"AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_PROFILE", "AWS_DEFAULT_PROFILE",
	// Older names some SDKs still read before container credentials:
	// botocore's, Java v1's and Ruby's.
	"AWS_CREDENTIAL_FILE", "BOTO_CONFIG", "AWS_ACCESS_KEY", "AWS_SECRET_KEY",
	"AMAZON_ACCESS_KEY_ID", "AMAZON_SECRET_ACCESS_KEY", "AMAZON_SESSION_TOKEN",
}

// CredentialVariablesUnset is the part of pre_build_script that unsets
// CredentialVariables, naming each it unsets (never its value) on the
// job's log (tests remove it to show it is what keeps a dotenv report's
// credentials out). The job's own script runs after it, so a job can
// still set them deliberately.
var CredentialVariablesUnset = "for keyless_v in " + strings.Join(CredentialVariables, " ") + `; do
  if eval "[ -n \"\${$keyless_v+set}\" ]"; then echo "keyless: unsetting $keyless_v (a CI/CD variable or an earlier job's dotenv report), which the AWS SDKs would use instead of the agent"; unset "$keyless_v"; fi
done
unset keyless_v
`

// NoProxy is the pre_build_script line that adds host, the agent's, to
// NO_PROXY and no_proxy: the SDKs' HTTP clients honour HTTP_PROXY for
// 169.254.170.2 (only loopback is exempt), so a proxy set for the runner
// or by a variable would otherwise receive every job's token.
//
// Tools read one spelling or the other first (Go NO_PROXY, curl and
// Python no_proxy), so both get the union of what either held, and "*"
// (no proxy for anything) is left alone.
func NoProxy(host string) string {
	return `keyless_np="${NO_PROXY:-}"; [ -z "${no_proxy:-}" ] || [ "$no_proxy" = "$keyless_np" ] || keyless_np="${keyless_np:+$keyless_np,}$no_proxy"
case "$keyless_np" in '*') ;; *) keyless_np="${keyless_np:+$keyless_np,}` + host + `";; esac
export NO_PROXY="$keyless_np" no_proxy="$keyless_np"; unset keyless_np
`
}

// IDTokenJobCheck is the pattern in pre_build_script that matches the
// JWT's job_id claim against the job's CI_JOB_ID (tests break it to show
// the check is what refuses another job's JWT).
const IDTokenJobCheck = `*'"job_id":"'"${CI_JOB_ID:-none}"'"'*)`

// idTokenGuard uses KEYLESS_ID_TOKEN only when its payload (the JWT's
// second part, base64url without padding) holds "job_id":"$CI_JOB_ID".
// That text cannot occur inside a JSON string (its quotes would be
// escaped), so only the claim itself matches, and the signature the agent
// verifies makes the claim GitLab's. No command in it ends the job under
// the runner's set -e.
const idTokenGuard = `if [ -n "${` + IDTokenVariable + `:-}" ]; then
  keyless_p="${` + IDTokenVariable + `#*.}"; keyless_p="${keyless_p%%.*}"
  case $((${#keyless_p} % 4)) in 2) keyless_p="$keyless_p==";; 3) keyless_p="$keyless_p=";; esac
  case "$(printf '%s' "$keyless_p" | tr '_-' '/+' | base64 -d 2>/dev/null || :)" in
  ` + IDTokenJobCheck + ` export AWS_CONTAINER_AUTHORIZATION_TOKEN="$` + IDTokenVariable + `";;
  *) echo "keyless: not using ` + IDTokenVariable + `: its job_id is not this job's CI_JOB_ID ($CI_JOB_ID), or this image has no base64" >&2;;
  esac
  unset keyless_p
fi
`

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

// shellListener is the listener a process on the host uses: one on a
// port below 1024 first (only root may open those, so no other user can
// take the port while the agent is down), loopback before link-local;
// else the first loopback or link-local one.
func shellListener(ls []string) (netip.AddrPort, bool) {
	var all []netip.AddrPort
	for _, l := range ls {
		if ap := netip.MustParseAddrPort(l); ap.Addr().IsLoopback() {
			all = append(all, ap)
		}
	}
	for _, h := range containerHosts {
		for _, l := range ls {
			if ap := netip.MustParseAddrPort(l); ap.Addr() == h {
				all = append(all, ap)
			}
		}
	}
	for _, ap := range all {
		if p := ap.Port(); p != 0 && p < 1024 {
			return ap, true
		}
	}
	if len(all) == 0 {
		return netip.AddrPort{}, false
	}
	return all[0], true
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

// ConfiguredRelayPort is the port of the configuration's first relay
// listener (listen.relay), 0 when it has none.
func ConfiguredRelayPort(cfg *Config) int {
	if len(cfg.Listen.Relay) == 0 {
		return 0
	}
	return int(netip.MustParseAddrPort(cfg.Listen.Relay[0]).Port())
}
