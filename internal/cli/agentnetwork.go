package cli

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/keyless-dev/keyless/internal/agent"
)

func newAgentSetupNetworkCommand(s streams) *cobra.Command {
	var configFile string
	cmd := &cobra.Command{
		Use:   "setup-network --config agent.yaml",
		Short: "Add the agent's link-local listener addresses to this host, then exit",
		Long: `Put the link-local addresses of agent.yaml's container-credentials
listeners (169.254.170.2, 169.254.170.23, fd00:ec2::23) on this host: on a
dummy interface keyless0 where the kernel has the driver, else on lo.
Addresses already there are left as they are, so running it again
changes nothing. A configuration with only loopback listeners needs
nothing, and it says so and exits 0.

It needs CAP_NET_ADMIN; it reads agent.yaml only and starts nothing. The systemd unit
runs it as root before the agent (ExecStartPre=+), so that the agent
itself never holds CAP_NET_ADMIN. Linux only.`,
		Example: `  keyless agent setup-network --config /etc/keyless/agent.yaml`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if configFile == "" {
				return usageErrorf("--config is required: the agent's agent.yaml (docs/agent.md)")
			}
			cfg, err := agent.LoadConfig(configFile)
			if err != nil {
				return err
			}
			ready, err := agent.SetupNetwork(cfg)
			var ne *agent.NetworkError
			if errors.As(err, &ne) {
				return withHint(err, "it needs CAP_NET_ADMIN: run it as root (the systemd unit runs it with ExecStartPre=+), or add them yourself:\n  %s",
					strings.Join(ne.Commands(), "\n  "))
			}
			if err != nil {
				return err
			}
			if len(ready.Addresses) == 0 {
				fmt.Fprintf(s.out, "keyless agent: %s has no link-local listener; nothing to set up\n", configFile)
				return nil
			}
			addrs := make([]string, len(ready.Addresses))
			for i, a := range ready.Addresses {
				addrs[i] = a.String()
			}
			fmt.Fprintf(s.out, "keyless agent: %s on %s\n", strings.Join(addrs, ", "), ready.Interface)
			return nil
		},
	}
	cmd.Flags().StringVar(&configFile, "config", "", "the agent's configuration `file` (YAML; docs/agent.md)")
	return cmd
}
