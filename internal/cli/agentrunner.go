package cli

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/keyless-dev/keyless/internal/agent"
)

func newAgentPrintRunnerConfigCommand(s streams) *cobra.Command {
	var (
		configFile, executor string
		relayPort            int
		awsConfig            bool
	)
	cmd := &cobra.Command{
		Use:   "print-runner-config --config agent.yaml --executor docker|docker-desktop|shell",
		Short: "Print the GitLab Runner config.toml lines that give jobs this agent's credentials",
		Long: `Print the [[runners]] keys of GitLab Runner's config.toml that point every
job at this agent, for one executor, as TOML whose comments say where it
goes and what else to set up:

- docker: jobs reach the agent on the host's 169.254.170.2 (or .23);
- docker-desktop: jobs join the relay's network ("keyless"), where a relay
  container owns 169.254.170.2 and forwards to the agent's relay listener
  (listen.relay in agent.yaml, or --relay-port);
- shell: jobs reach the agent's listener on a port below 1024 (link-local
  169.254.170.2:80), else its loopback one, with a warning: any user may
  listen on a port of 1024 or more while the agent is down.

pre_build_script, which runs in the job's shell after the job's variables
and which they cannot change, pins AWS_CONTAINER_CREDENTIALS_FULL_URI and
exports the job's own token (its KEYLESS_ID_TOKEN id_tokens JWT when
agent.yaml verifies those and the JWT's job_id is the job's, else
CI_JOB_TOKEN) as AWS_CONTAINER_AUTHORIZATION_TOKEN, unsets the credentials
and files an earlier job's dotenv report could set (AWS_ACCESS_KEY_ID,
AWS_CONFIG_FILE, AWS_PROFILE, ...; the SDKs prefer them to the agent), and
adds the agent's address to NO_PROXY, so no HTTP proxy receives the token.
Docker jobs get cap_drop = ["NET_RAW"], so no job can forge ARP on a shared
network and catch another job's token; the runner does not apply it to
service containers, so the docker executor also gets FF_NETWORK_PER_BUILD
(each job and its services alone on a network), and docker-desktop, whose
jobs must share the relay's network, says to allow only trusted services.
Nothing of the host is mounted.
--aws-config prints instead the AWS config whose profile asks the agent's
socket (the caller known by its uid), for the runner's user.
docs/gitlab.md has the whole setup.`,
		Example: `  keyless agent print-runner-config --config /etc/keyless/agent.yaml --executor docker
  keyless agent print-runner-config --config agent.yaml --executor docker-desktop --relay-port 9912
  keyless agent print-runner-config --config agent.yaml --executor shell
  keyless agent print-runner-config --config agent.yaml --executor shell --aws-config >> ~/.aws/config`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if configFile == "" {
				return usageErrorf("--config is required: the agent's agent.yaml, whose listeners the jobs use")
			}
			if executor == "" {
				return usageErrorf("--executor is required: one of docker, docker-desktop, shell (the runner's executor; docker-desktop for Docker Desktop on macOS or Windows)")
			}
			ex, err := agent.ParseExecutor(executor)
			if err != nil {
				return usageErrorf("--executor %v", err)
			}
			if awsConfig && ex != agent.ExecutorShell {
				return usageErrorf("--aws-config is for --executor shell: job containers cannot reach the agent's socket")
			}
			if relayPort != 0 && ex != agent.ExecutorDockerDesktop {
				return usageErrorf("--relay-port is for --executor docker-desktop")
			}
			if relayPort < 0 || relayPort > 65535 {
				return usageErrorf("--relay-port %d: a TCP port, 1 to 65535", relayPort)
			}
			cfg, err := agent.LoadConfig(configFile)
			if err != nil {
				return err
			}
			if awsConfig {
				out, err := agent.SocketAWSConfig(cfg)
				if err != nil {
					return runnerConfigError(err)
				}
				fmt.Fprint(s.out, out)
				return nil
			}
			if ex == agent.ExecutorDockerDesktop && relayPort == 0 {
				if relayPort = agent.ConfiguredRelayPort(cfg); relayPort == 0 {
					return withHint(errors.New("agent.yaml has no relay listener (listen.relay) for the Docker Desktop relay to forward to"),
						`add listen.relay: ["127.0.0.1:%d"] to agent.yaml, or give --relay-port`, agent.DefaultRelayPort)
				}
			}
			out, warnings, err := agent.RunnerConfig(cfg, agent.RunnerOptions{Executor: ex, ConfigFile: configFile, RelayPort: relayPort})
			if err != nil {
				return runnerConfigError(err)
			}
			for _, w := range warnings {
				fmt.Fprintf(s.err, "keyless: warning: %s\n", w)
			}
			fmt.Fprint(s.out, out)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&configFile, "config", "", "the agent's configuration `file` (YAML; docs/agent.md)")
	f.StringVar(&executor, "executor", "", "the runner's `executor`: docker, docker-desktop or shell")
	f.IntVar(&relayPort, "relay-port", 0, "docker-desktop: the port of the agent's relay listener on the host (default: listen.relay in agent.yaml)")
	f.BoolVar(&awsConfig, "aws-config", false, "shell: print the AWS config (~/.aws/config) whose profile asks the agent's socket, instead of config.toml")
	return cmd
}

func runnerConfigError(err error) error {
	var re *agent.RunnerConfigError
	if errors.As(err, &re) && re.Fix != "" {
		return withHint(err, "%s", re.Fix)
	}
	return err
}
