package cli

import (
	"errors"
	"os"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/keyless-dev/keyless/internal/agent"
	"github.com/keyless-dev/keyless/internal/agentapi"
	"github.com/keyless-dev/keyless/internal/buildinfo"
	"github.com/keyless-dev/keyless/internal/sdnotify"
)

func newAgentRelayCommand(s streams) *cobra.Command {
	var (
		upstream, listen string
		timeout          time.Duration
		logs             *logFlags
	)
	cmd := &cobra.Command{
		Use:   "relay --upstream URL [--listen ADDR]",
		Short: "Relay container-credentials requests to the agent, for Docker Desktop",
		Long: `Serve the container-credentials endpoint at --listen (169.254.170.2:80 by
default) and forward each request to the keyless agent at --upstream, with
the caller's Authorization header and nothing else of its request. It
holds no key and no credentials: the agent decides and caches, and its
answers, refusals included, come back as they are.

For Docker Desktop (macOS, Windows), where containers reach the host only
as host.docker.internal, an address no AWS SDK accepts over plain http.
Run it from the keyless-relay image (deploy/docker/relay/Dockerfile) on a
Docker network whose subnet is 169.254.170.0/24, at 169.254.170.2, and put
the runner's jobs on that network (network_mode). The agent listens for
it with listen.relay (127.0.0.1:9912 on the Mac; docker0's address on
Linux). Plain http goes only to host.docker.internal, localhost, or a
loopback, private or link-local address; use https for anything else.
docs/gitlab.md has the whole setup.`,
		Example: `  docker network create --subnet 169.254.170.0/24 --ip-range 169.254.170.128/25 --gateway 169.254.170.1 keyless
  docker run -d --name keyless-relay --restart unless-stopped --network keyless --ip 169.254.170.2 \
    keyless-relay agent relay --upstream http://host.docker.internal:9912
  keyless agent relay --upstream http://host.docker.internal:9912 --listen 169.254.170.2:80`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if upstream == "" {
				return usageErrorf("--upstream is required: the agent's listen.relay as this relay reaches it, such as http://host.docker.internal:9912")
			}
			logger, err := logs.logger(cmd, s.err, true)
			if err != nil {
				return err
			}
			ctx, stop := daemonContext(cmd.Context(), nil)
			defer stop()
			err = agent.RunRelay(ctx, agent.RelayOptions{Upstream: upstream, Listen: listen, Timeout: timeout,
				UserAgent: buildinfo.UserAgent(), Logger: logger,
				Events: func(e agent.Event) {
					if _, ok := e.(agent.Ready); ok {
						notify(nil, sdnotify.Ready)
					}
				}})
			notify(logger, sdnotify.Stopping)
			return relayError(err)
		},
	}
	f := cmd.Flags()
	f.StringVar(&upstream, "upstream", "", "the agent's base `URL` as the relay reaches it (its listen.relay), such as http://host.docker.internal:9912")
	f.StringVar(&listen, "listen", agent.DefaultRelayListen, "the `address` jobs reach: an IP address and port")
	f.DurationVar(&timeout, "timeout", agentapi.DefaultRelayTimeout, "how long one request may wait for the agent")
	logs = registerLogFlags(cmd, "")
	return cmd
}

// relayError words the relay's errors with flags and fixes.
func relayError(err error) error {
	var oe *agent.RelayOptionError
	var le *agent.RelayListenError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &oe):
		return usageErrorf("--%s: %v", oe.Option, oe.Err)
	case errors.As(err, &le) && errors.Is(err, os.ErrPermission):
		return withHint(err, "a user other than root binds port 80 only with net.ipv4.ip_unprivileged_port_start=0 "+
			"(Docker's default for containers since 20.10; else add --sysctl net.ipv4.ip_unprivileged_port_start=0 to docker run) "+
			"or CAP_NET_BIND_SERVICE")
	case errors.As(err, &le) && errors.Is(err, syscall.EADDRNOTAVAIL):
		return withHint(err, "the relay's container must own the address: docker run --network keyless --ip 169.254.170.2 "+
			"on a network made with docker network create --subnet 169.254.170.0/24 --ip-range 169.254.170.128/25 --gateway 169.254.170.1 keyless")
	}
	return err
}
