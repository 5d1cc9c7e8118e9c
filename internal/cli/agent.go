package cli

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/keyless-dev/keyless/internal/agent"
	"github.com/keyless-dev/keyless/internal/agentapi"
	"github.com/keyless-dev/keyless/internal/buildinfo"
	"github.com/keyless-dev/keyless/internal/renewal"
	"github.com/keyless-dev/keyless/internal/sdnotify"
	"github.com/keyless-dev/keyless/internal/secretfile"
)

func newAgentCommand(s streams) *cobra.Command {
	var (
		configFile   string
		setupNetwork bool
		check        bool
		unit, user   string
		logs         *logFlags
	)
	cmd := &cobra.Command{
		Use:   "agent --config agent.yaml",
		Short: "Serve every CI job credentials of its own; the runner's key never enters a job",
		Long: `Run the agent on a runner host. It owns the runner's certificate and key
(enrolling at first start from a one-time token file, then renewing in
process) and answers each caller with credentials for the role its rules
give it:

- jobs in containers, through the container-credentials endpoint every AWS
  SDK speaks (AWS_CONTAINER_CREDENTIALS_FULL_URI and
  AWS_CONTAINER_AUTHORIZATION_TOKEN, the job's CI_JOB_TOKEN or an id_tokens
  JWT), on 169.254.170.2:80 or a loopback port;
- host tools and shell-executor jobs, through a unix socket (keyless
  credential-process --agent SOCKET), identified by their uid.

Deny by default: a caller gets credentials only when a rule matches its
verified identity; every decision is one audit line (never a token).
Credentials are cached per role, profile, session name and duration,
refreshed ahead so each answer has at least 15 minutes left, and served
through a Roles Anywhere outage until that margin. docs/agent.md has the
configuration, the threat model and the network setup.

--print-unit writes a systemd unit or a launchd plist that runs the agent
with this configuration as a service: on systemd as the user keyless
(--user to choose), sandboxed, with the link-local addresses added by a
privileged pre-start step (keyless agent setup-network) so that the agent
itself holds at most CAP_NET_BIND_SERVICE, for port 80.`,
		Example: `  keyless agent --config /etc/keyless/agent.yaml
  keyless agent --config /etc/keyless/agent.yaml --check
  keyless agent --config /etc/keyless/agent.yaml --setup-network
  keyless agent --config /etc/keyless/agent.yaml --print-unit systemd > /etc/systemd/system/keyless-agent.service
  keyless agent status --socket /run/keyless/agent.sock`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if configFile == "" {
				return usageErrorf("--config is required: the agent's agent.yaml (docs/agent.md)")
			}
			cfg, err := agent.LoadConfig(configFile)
			if err != nil {
				return err
			}
			if check {
				printConfigSummary(s.out, cfg)
				return nil
			}
			if unit != "" {
				return printAgentUnit(s, unit, agent.Unit{ConfigFile: configFile, Config: cfg, User: user, Log: logs.args(cmd.Flags())})
			}
			if user != "" {
				return usageErrorf("--user goes with --print-unit: it names the user the service runs as")
			}
			logger, err := logs.logger(cmd, s.err, true)
			if err != nil {
				return err
			}
			a, err := agent.New(agent.Options{Config: cfg, Logger: logger, SetupNetwork: setupNetwork,
				Version: buildinfo.Read().Version, UserAgent: buildinfo.UserAgent(),
				Events: agentEvents(logger)})
			if err != nil {
				return err
			}
			ctx, stop := daemonContext(cmd.Context(), nil)
			defer stop()
			err = a.Run(ctx)
			notify(logger, sdnotify.Stopping)
			var ne *agent.NetworkError
			if errors.As(err, &ne) {
				return withHint(err, "start the agent with --setup-network (it needs CAP_NET_ADMIN), or run keyless agent setup-network --config %s as root before it (the systemd unit does), or add them yourself:\n  %s",
					configFile, strings.Join(ne.Commands(), "\n  "))
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&configFile, "config", "", "the agent's configuration `file` (YAML; docs/agent.md)")
	f.BoolVar(&setupNetwork, "setup-network", false, "add the link-local listener addresses (169.254.170.2, .23) to this host; needs CAP_NET_ADMIN")
	f.BoolVar(&check, "check", false, "check the configuration, print what it does, and exit")
	f.StringVar(&unit, "print-unit", "", "print a service definition that runs the agent with --config: systemd or launchd")
	f.StringVar(&user, "user", "", "with --print-unit: the `user` the service runs as (default: "+agent.DefaultUser+" for systemd, root for launchd)")
	logs = registerLogFlags(cmd, "")
	cmd.AddCommand(newAgentStatusCommand(s), newAgentHashTokenCommand(s))
	cmd.AddCommand(newAgentSetupNetworkCommand(s))
	cmd.AddCommand(newAgentPrintRunnerConfigCommand(s))
	cmd.AddCommand(newAgentRelayCommand(s))
	return cmd
}

func agentEvents(logger interface {
	Info(string, ...any)
}) func(agent.Event) {
	return func(e agent.Event) {
		switch e := e.(type) {
		case agent.Ready:
			notify(nil, sdnotify.Ready)
		case agent.Renewal:
			if r, ok := e.Event.(renewal.Renewed); ok {
				logger.Info("renewed", "serial", r.Leaf.SerialNumber.String(), "notAfter", r.Leaf.NotAfter.UTC().Format(time.RFC3339))
			}
			if r, ok := e.Event.(renewal.Failed); ok {
				msg, hint := describe(r.Err)
				logger.Info("renewal failed; keeping the current certificate", "err", msg, "hint", hint, "retryIn", r.RetryIn.String())
			}
		}
	}
}

func printConfigSummary(w io.Writer, cfg *agent.Config) {
	fmt.Fprintf(w, "%s: ok\n", cfg.File)
	fmt.Fprintf(w, "identity: %s (key %s)\n", cfg.Identity.Certificate, cfg.Identity.Key)
	for _, l := range cfg.Listen.ContainerCredentials {
		// As a job writes it in AWS_CONTAINER_CREDENTIALS_FULL_URI.
		fmt.Fprintf(w, "container credentials: http://%s%s\n", strings.TrimSuffix(l, ":80"), agent.ContainerPath)
	}
	for _, l := range cfg.Listen.Relay {
		fmt.Fprintf(w, "relay listener: http://%s (keyless agent relay --upstream)\n", l)
	}
	if s := cfg.Listen.Socket; s != nil {
		fmt.Fprintf(w, "socket: %s (mode %04o)\n", s.Path, s.Mode)
	}
	if cfg.Listen.Metrics != "" {
		fmt.Fprintf(w, "metrics: http://%s/metrics\n", cfg.Listen.Metrics)
	}
	for _, r := range cfg.Rules {
		var kinds []string
		for _, k := range r.Kinds {
			kinds = append(kinds, string(k))
		}
		fmt.Fprintf(w, "rule %s: %s -> %s for %s as %s\n", r.Name, strings.Join(kinds, ","), r.RoleARN, r.Duration, r.SessionName)
	}
	fmt.Fprintln(w, "anything else: denied")
}

func newAgentStatusCommand(s streams) *cobra.Command {
	var (
		socket  string
		asJSON  bool
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "status --socket PATH",
		Short: "Show the agent's certificate, cached roles and recent errors",
		Example: `  keyless agent status --socket /run/keyless/agent.sock
  keyless agent status --socket /run/keyless/agent.sock --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if socket == "" {
				return usageErrorf("--socket is required: the agent's listen.socket.path")
			}
			c, err := agentapi.NewClient(socket, "")
			if err != nil {
				return usageErrorf("--socket: %v", err)
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			st, err := c.Status(ctx)
			if err != nil {
				return withHint(err, "is the agent running, with listen.socket.path %s, and may this user open it (listen.socket.group)?", socket)
			}
			if asJSON {
				enc := json.NewEncoder(s.out)
				enc.SetIndent("", "  ")
				return enc.Encode(st)
			}
			printStatus(s.out, st)
			return nil
		},
	}
	cmd.Flags().StringVar(&socket, "socket", "", "the agent's unix socket")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the status as JSON")
	cmd.Flags().DurationVar(&timeout, "timeout", 5*time.Second, "how long to wait for the agent")
	return cmd
}

func printStatus(w io.Writer, st *agentapi.Status) {
	rfc := func(t time.Time) string { return t.UTC().Format(time.RFC3339) }
	fmt.Fprintf(w, "agent %s, now %s\n", st.Version, rfc(st.Now))
	if c := st.Certificate; c != nil {
		fmt.Fprintf(w, "certificate: %s, %s, serial %s, valid until %s (%s left)\n", c.Path, c.Subject, c.Serial, rfc(c.NotAfter), c.NotAfter.Sub(st.Now).Truncate(time.Second))
	}
	for _, l := range st.Listeners {
		fmt.Fprintf(w, "listening: %s %s\n", l.Kind, l.Address)
	}
	if len(st.Roles) == 0 {
		fmt.Fprintln(w, "cached: nothing yet")
	}
	for _, r := range st.Roles {
		line := fmt.Sprintf("cached: %s as %s until %s", r.Role, r.Session, rfc(r.Expiration))
		if r.LastError != "" {
			line += " (last refresh failed: " + r.LastError + ")"
		}
		fmt.Fprintln(w, line)
	}
	for _, e := range st.Errors {
		fmt.Fprintf(w, "error at %s: %s: %s\n", rfc(e.At), e.What, e.Error)
	}
}

// minStaticToken is the shortest static token hash-token accepts: the
// agent answers anyone who reaches its endpoint, so a token must be too
// long to guess (24 base64 characters are 144 bits).
const minStaticToken = 24

func newAgentHashTokenCommand(s streams) *cobra.Command {
	return &cobra.Command{
		Use:   "hash-token FILE",
		Short: "Print the SHA-256 of a static token, for staticTokens in agent.yaml",
		Long: `Read a static bearer token from FILE (- for standard input) and print
its SHA-256 in hex, which is what agent.yaml stores: the agent never keeps
the token itself. Make a token (0600, as every secret file keyless reads)
with, for example:
  (umask 077 && head -c 32 /dev/urandom | base64 | tr -d '=+/\n' > backup.token)`,
		Example: `  keyless agent hash-token backup.token
  keyless agent hash-token - < backup.token`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			tok, err := secretfile.Read("the token file", args[0], s.in)
			if err != nil {
				return err
			}
			if len(tok) < minStaticToken {
				return withHint(fmt.Errorf("the token is %d characters; a static token needs at least %d", len(tok), minStaticToken),
					"make one with: (umask 077 && head -c 32 /dev/urandom | base64 | tr -d '=+/\\n' > backup.token)")
			}
			if err := secretfile.CheckStrength("the token", tok); err != nil {
				return withHint(err, "a static token is a password anyone on the network could try: make one with head -c 32 /dev/urandom | base64")
			}
			sum := sha256.Sum256(tok)
			fmt.Fprintln(s.out, hex.EncodeToString(sum[:]))
			return nil
		},
	}
}
