package cli

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/keyless-dev/keyless/internal/agent"
)

func newAgentSetupNetworkCommand(s streams) *cobra.Command {
	var configFile string
	cmd := &cobra.Command{
		Use:   "setup-network {--config agent.yaml | ADDRESS...}",
		Short: "Add the agent's link-local listener addresses to this host, then exit",
		Long: `Put the link-local addresses of agent.yaml's container-credentials
listeners (169.254.170.2, 169.254.170.23, fd00:ec2::23) on this host: on a
dummy interface keyless0 where the kernel has the driver, else on lo.
Addresses already there are left as they are, so running it again
changes nothing. A configuration with only loopback listeners needs
nothing, and it says so and exits 0.

The addresses can be given instead of the file: only those three are
accepted. The systemd unit does that: it runs this command as root before
the agent (ExecStartPre=+), so that the agent itself never holds
CAP_NET_ADMIN, and a step running as root must not read a file the
agent's user might be able to write. It needs CAP_NET_ADMIN and starts
nothing. Linux only.`,
		Example: `  keyless agent setup-network --config /etc/keyless/agent.yaml
  keyless agent setup-network 169.254.170.2 169.254.170.23`,
		// There are three addresses to set up at most.
		Args: cobra.MaximumNArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			var (
				ready agent.NetworkReady
				err   error
			)
			switch {
			case configFile != "" && len(args) > 0:
				return usageErrorf("give --config or the addresses, not both")
			case configFile == "" && len(args) == 0:
				return usageErrorf("--config is required: the agent's agent.yaml (docs/agent.md), or the addresses to add")
			case len(args) > 0:
				var addrs []netip.Addr
				for _, a := range args {
					ip, perr := netip.ParseAddr(a)
					if perr != nil {
						return usageErrorf("%q: want an IP address such as 169.254.170.2", a)
					}
					if !slices.Contains(addrs, ip) {
						addrs = append(addrs, ip)
					}
				}
				ready, err = agent.SetupAddresses(addrs)
				var ae *agent.AddressError
				if errors.As(err, &ae) {
					return usageErrorf("%v", err)
				}
			default:
				cfg, lerr := agent.LoadConfig(configFile)
				if lerr != nil {
					return lerr
				}
				ready, err = agent.SetupNetwork(cfg)
			}
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
