package doctor

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/keyless-dev/keyless/internal/agent"
	"github.com/keyless-dev/keyless/internal/agentapi"
	"github.com/keyless-dev/keyless/internal/awscreds"
	"github.com/keyless-dev/keyless/internal/identity"
)

// agentField names the request's field as agent.yaml spells it, for
// messages and fixes when the request comes from it (a switch, not a map
// every keyless command would build at start).
func agentField(field string) (string, bool) {
	switch field {
	case "certificate":
		return "identity.certificate", true
	case "private-key":
		return "identity.key", true
	case "intermediates":
		return "identity.intermediates", true
	case "trust-anchor-arn":
		return "aws.trustAnchorArn", true
	case "region":
		return "aws.region", true
	case "endpoint":
		return "aws.endpoint", true
	case "role-arn":
		return "rules[0].roleArn", true
	case "profile-arn":
		return "rules[0].profileArn", true
	case "session-duration":
		return "rules[0].duration", true
	case "AWS_CA_BUNDLE":
		return "aws.caBundle", true
	}
	return "", false
}

// fromAgent takes what to check from agent.yaml when no certificate was
// given: the runner's identity, its CA, and the first rule's role and
// profile.
func (r *run) fromAgent() error {
	file := r.cfg.AgentConfig
	a, err := agent.LoadConfig(file)
	if err != nil {
		return &awscreds.InputError{Field: "agent-config", Err: fmt.Errorf("%s %s: %w", r.n("agent-config"), file, err)}
	}
	req := &r.cfg.Request
	req.Files = identity.Files{Certificate: a.Identity.Certificate, PrivateKey: a.Identity.Key, Intermediates: a.Identity.Intermediates}
	req.TrustAnchorARN, req.Region = a.AWS.TrustAnchorARN, a.AWS.Region
	if req.Endpoint == "" {
		req.Endpoint = a.AWS.Endpoint
	}
	if len(a.Rules) > 0 {
		rule := a.Rules[0]
		req.RoleARN, req.ProfileARN = rule.RoleARN, rule.ProfileARN
		if rule.Duration > 0 {
			req.DurationSeconds = int(rule.Duration.Seconds())
		}
	}
	if a.Identity.CAURL != "" && !r.cfg.CAFromFlags {
		r.cfg.CAURL, r.cfg.RootFile, r.cfg.CASource = a.Identity.CAURL, a.Identity.Root, "identity.ca in "+file
	}
	if bundle := a.AWS.CABundle; bundle != "" {
		getenv := r.cfg.Getenv
		r.cfg.Getenv = func(k string) string {
			if k == "AWS_CA_BUNDLE" {
				return bundle
			}
			return getenv(k)
		}
	}
	name := r.cfg.Name
	r.cfg.Name = func(field string) string {
		if f, ok := agentField(field); ok {
			return f + " in " + file
		}
		return name(field)
	}
	return nil
}

// agentConfig validates agent.yaml as the agent itself would at start.
func (r *run) agentConfig() {
	file := r.cfg.AgentConfig
	if file == "" {
		r.skip(CheckAgentConfig, "no agent configured (--agent-config FILE)")
		return
	}
	cfg, err := agent.LoadConfig(file)
	if err != nil {
		fix := fmt.Sprintf("fix %s: keyless agent --config %s --check shows the same error; docs/agent.md has every field", file, file)
		if errors.Is(err, fs.ErrNotExist) {
			fix = "give the agent's configuration with --agent-config FILE (keyless agent --config names it in the service unit)"
		}
		r.add(CheckAgentConfig, Fail, err.Error(), fix)
		return
	}
	if r.cfg.AgentSocket == "" && cfg.Listen.Socket != nil {
		r.socket = cfg.Listen.Socket.Path
	}
	var listeners []string
	for _, l := range cfg.Listen.ContainerCredentials {
		listeners = append(listeners, "http://"+l)
	}
	if cfg.Listen.Socket != nil {
		listeners = append(listeners, "socket "+cfg.Listen.Socket.Path)
	}
	r.ok(CheckAgentConfig, "%s: identity %s, %d rule(s), listening on %s", file, cfg.Identity.Certificate, len(cfg.Rules), strings.Join(listeners, ", "))
}

// agent asks the running agent for its status on its unix socket.
func (r *run) agent(ctx context.Context) {
	socket := r.cfg.AgentSocket
	if socket == "" {
		socket = r.socket
	}
	switch {
	case r.cfg.AgentConfig == "" && socket == "":
		r.skip(CheckAgent, "no agent configured (--agent-config FILE or --agent SOCKET)")
		return
	case r.status(CheckAgentConfig) == Fail && socket == "":
		r.skip(CheckAgent, "%s", r.failedBefore(CheckAgentConfig))
		return
	case socket == "":
		r.skip(CheckAgent, "the agent's configuration has no listen.socket, where keyless doctor asks for its status")
		return
	}
	if strings.Contains(socket, "://") {
		r.add(CheckAgent, Fail, fmt.Sprintf("%s is the agent's container-credentials URL; its status is on its unix socket", socket),
			"give the agent's socket with --agent SOCKET (listen.socket.path in agent.yaml), or --agent-config FILE")
		return
	}
	client, err := agentapi.NewClient(socket, "")
	if err != nil {
		r.add(CheckAgent, Fail, err.Error(), "give the agent's socket path (listen.socket.path in agent.yaml)")
		return
	}
	ctx, cancel := r.timeout(ctx)
	defer cancel()
	st, err := client.Status(ctx)
	if err != nil {
		unit := "keyless agent --config FILE"
		if r.cfg.AgentConfig != "" {
			unit = "keyless agent --config " + r.cfg.AgentConfig
		}
		r.add(CheckAgent, Fail, fmt.Sprintf("no answer on %s: %v", socket, err),
			fmt.Sprintf("start the agent (systemctl start keyless-agent, or %s) and read why it stopped (journalctl -u keyless-agent); if it runs, check listen.socket.path and that this user may open the socket (listen.socket.group)", unit))
		return
	}
	version := ""
	if st.Version != "" {
		version = " " + st.Version
	}
	detail := fmt.Sprintf("the agent%s answers on %s; %d cached session(s)", version, socket, len(st.Roles))
	if c := st.Certificate; c != nil {
		detail += fmt.Sprintf("; its certificate %s valid until %s", c.Subject, rfc(c.NotAfter))
		if !st.Now.Before(c.NotAfter) {
			r.add(CheckAgent, Fail, detail+" (expired)", "the agent's certificate expired: check its log for renewal errors (journalctl -u keyless-agent), and that identity.ca in agent.yaml reaches the CA")
			return
		}
	}
	if n := len(st.Errors); n > 0 {
		last := st.Errors[n-1]
		r.add(CheckAgent, Warn, fmt.Sprintf("%s; last error at %s: %s: %s", detail, rfc(last.At), last.What, last.Error), "keyless agent status --socket "+socket+" lists the recent errors; the agent's log has one line for each")
		return
	}
	r.ok(CheckAgent, "%s", detail)
}
