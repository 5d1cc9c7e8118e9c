package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/keyless-dev/keyless/internal/agentapi"
	"github.com/keyless-dev/keyless/internal/hostnet"
	"github.com/keyless-dev/keyless/internal/serve"
)

// Docker Desktop runs containers in a VM: they reach the host (its
// loopback) only as host.docker.internal, a name no SDK accepts over plain
// http. keyless agent relay, in a container that owns 169.254.170.2 on a
// user-defined network, forwards the jobs' requests to the agent's relay
// listener (listen.relay), which answers them as a container-credentials
// listener does.

// DockerHost is the name Docker gives the host inside containers (Docker
// Desktop always; Linux with --add-host host.docker.internal:host-gateway).
const DockerHost = "host.docker.internal"

// DefaultRelayListen is where keyless agent relay listens: the address
// every SDK accepts over plain http, which the relay's container owns on
// its network.
const DefaultRelayListen = "169.254.170.2:80"

// relayHosts are the Host values a relay listener bound at addr accepts:
// its own address (as a container-credentials listener) and DockerHost
// with its port, which is what keyless agent relay sends with the
// documented --upstream http://host.docker.internal:PORT. A page in a
// browser could still reach the listener under host.docker.internal
// where DNS, not Docker, answers that name (on a Mac it is not in
// /etc/hosts), so the Host check alone does not stop rebinding here;
// what does is that nothing is vended without a job's token, which a
// page does not have.
func relayHosts(addr string) []string {
	hosts := agentapi.Hosts(addr)
	if ap, err := netip.ParseAddrPort(addr); err == nil {
		hosts = append(hosts, DockerHost+":"+strconv.Itoa(int(ap.Port())))
		if ap.Port() == 80 {
			hosts = append(hosts, DockerHost)
		}
	}
	return hosts
}

// checkRelayListeners refuses a relay listener that is neither loopback
// nor an address of one of this host's bridges (holding names the bridge
// that has an address, or ""): any other address faces a network, where
// the job tokens the relay forwards would travel in clear. It runs before
// enrolling, which spends the one-time token.
func (a *Agent) checkRelayListeners(holding func(netip.Addr) string) error {
	for i, l := range a.cfg.Listen.Relay {
		ad := netip.MustParseAddrPort(l).Addr()
		if ad.IsLoopback() || holding(ad) != "" {
			continue
		}
		return &ConfigError{File: a.cfg.File, Field: fmt.Sprintf("listen.relay[%d]", i),
			Err: fmt.Errorf("%s is neither loopback nor this host's address on a bridge (docker0 or a br-* of a Docker network): "+
				"a relay listener must not face the LAN; use 127.0.0.1:PORT where Docker Desktop runs, "+
				"and on Linux docker0's address (ip -4 addr show docker0; 172.17.0.1 by default), which host-gateway resolves to", l)}
	}
	return nil
}

// startRelayListener serves the container-credentials handler on addr for
// keyless agent relay: the Host check accepts relayHosts, and only
// loopback, the host's own addresses and its bridges' subnets may ask
// (where the relay's container is), as on the link-local listeners.
func (a *Agent) startRelayListener(addr string, bridges *hostnet.Bridges) (*serve.Server, error) {
	s, err := a.startContainerListener(addr, "relay", func(bound string) http.Handler {
		return agentapi.FromOnly(agentapi.ContainerHandler(a, relayHosts(bound), "relay:"+bound), bridges.Allow)
	})
	if err != nil {
		return nil, fmt.Errorf("listening for keyless agent relay on %s (listen.relay): %w", addr, err)
	}
	return s, nil
}

// RelayOptions shape keyless agent relay.
type RelayOptions struct {
	// Upstream is the agent's base URL as the relay reaches it
	// (ParseRelayUpstream), such as http://host.docker.internal:9912.
	Upstream string
	// Listen is where the relay serves jobs; empty means
	// DefaultRelayListen.
	Listen string
	// Timeout bounds one forwarded request; zero means
	// agentapi.DefaultRelayTimeout.
	Timeout time.Duration
	// UserAgent is sent to the agent.
	UserAgent string
	// Logger gets the relay's own lines (never a header); nil discards.
	Logger *slog.Logger
	// Events gets Listening and Ready; nil ignores them. It must not
	// block.
	Events func(Event)
}

// RelayOptionError is a relay option that cannot work: Option names it
// (upstream, listen).
type RelayOptionError struct {
	Option string
	Err    error
}

func (e *RelayOptionError) Error() string { return e.Option + ": " + e.Err.Error() }
func (e *RelayOptionError) Unwrap() error { return e.Err }

// RelayListenError is a relay address the relay cannot listen on.
type RelayListenError struct {
	Address string
	Err     error
}

func (e *RelayListenError) Error() string {
	return fmt.Sprintf("listening on %s: %v", e.Address, e.Err)
}
func (e *RelayListenError) Unwrap() error { return e.Err }

// relayHTTPHosts are the names plain http may reach: Docker's names for
// the host, whose traffic never leaves the machine (Docker Desktop's VM
// and its host), and loopback.
var relayHTTPHosts = []string{DockerHost, "gateway.docker.internal", "localhost"}

// ParseRelayUpstream checks the agent's base URL and returns the URL the
// relay asks: the base with ContainerPath. http or https, no user, query
// or fragment. Plain http carries the jobs' tokens and their credentials
// unencrypted, so it may reach only host.docker.internal,
// gateway.docker.internal, localhost, or a loopback, private (RFC 1918,
// fc00::/7) or link-local address: the host of Docker's VM or of its
// bridges, not the internet; anything else needs https (with the CA in
// SSL_CERT_FILE, since the relay's image has no bundle).
func ParseRelayUpstream(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.User != nil || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || u.Opaque != "" {
		return "", fmt.Errorf("%q is not a base URL such as http://%s:9912 (no user, query or fragment)", s, DockerHost)
	}
	switch u.Scheme {
	case "https":
	case "http":
		host := strings.ToLower(u.Hostname())
		ad, perr := netip.ParseAddr(host)
		local := perr == nil && (ad.Unmap().IsLoopback() || ad.Unmap().IsPrivate() || ad.Unmap().IsLinkLocalUnicast())
		for _, n := range relayHTTPHosts {
			local = local || host == n
		}
		if !local {
			return "", fmt.Errorf("%q: plain http carries job tokens and credentials unencrypted, so it goes only to %s, localhost, "+
				"or a loopback, private or link-local address; use https for anything else", s, DockerHost)
		}
	default:
		return "", fmt.Errorf("%q is not an http:// or https:// URL", s)
	}
	base := strings.TrimSuffix(u.EscapedPath(), "/")
	if strings.HasSuffix(base, ContainerPath) {
		return "", fmt.Errorf("%q: give the agent's base URL, without %s (the relay adds it)", s, ContainerPath)
	}
	u.Path, u.RawPath = "", ""
	return u.String() + base + ContainerPath, nil
}

// ParseRelayListen checks the relay's listen address: an IP address and
// port, not every interface (the Host check needs the address jobs use).
func ParseRelayListen(s string) (netip.AddrPort, error) {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return ap, fmt.Errorf("%q: an IP address and port, such as %s", s, DefaultRelayListen)
	}
	if ap.Addr().IsUnspecified() || ap.Addr().IsMulticast() {
		return ap, fmt.Errorf("%q: the address jobs reach, such as %s (the relay answers only requests addressed to it)", s, DefaultRelayListen)
	}
	return ap, nil
}

// RunRelay serves keyless agent relay until ctx ends: container
// credentials on Listen, each request forwarded to the agent at Upstream
// (agentapi.Relay says what passes). It holds no key and no credentials.
// It returns nil when ctx ends; a *RelayOptionError for options that
// cannot work, a *RelayListenError when it cannot listen.
func RunRelay(ctx context.Context, o RelayOptions) error {
	target, err := ParseRelayUpstream(o.Upstream)
	if err != nil {
		return &RelayOptionError{Option: "upstream", Err: err}
	}
	listen := o.Listen
	if listen == "" {
		listen = DefaultRelayListen
	}
	ap, err := ParseRelayListen(listen)
	if err != nil {
		return &RelayOptionError{Option: "listen", Err: err}
	}
	if t, _ := url.Parse(target); t != nil && sameEndpoint(t, ap) {
		return &RelayOptionError{Option: "upstream", Err: fmt.Errorf("%q is the relay's own address: give the agent's", o.Upstream)}
	}
	log := orDiscard(o.Logger)
	s, err := startBound(ap.String(), log, func(bound string) http.Handler {
		return agentapi.Relay(agentapi.RelayConfig{Target: target, Path: ContainerPath, Hosts: agentapi.Hosts(bound),
			Timeout: o.Timeout, UserAgent: o.UserAgent, Logger: log})
	})
	if err != nil {
		return &RelayListenError{Address: ap.String(), Err: err}
	}
	defer s.Close()
	bound := s.Addr().String()
	address := s.URL() + ContainerPath
	log.Info("relaying", "listen", address, "agent", target)
	if o.Events != nil {
		o.Events(Listening{Kind: "relay", Address: address})
		o.Events(Ready{})
	}
	select {
	case <-ctx.Done():
		return nil
	case <-s.Done():
		if err := s.Err(); !errors.Is(err, errServerClosed) {
			return fmt.Errorf("the relay on %s stopped: %w", bound, err)
		}
		return nil
	}
}

// sameEndpoint reports whether u points at ap itself.
func sameEndpoint(u *url.URL, ap netip.AddrPort) bool {
	ad, err := netip.ParseAddr(u.Hostname())
	if err != nil || ad.Unmap() != ap.Addr().Unmap() {
		return false
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	return port == strconv.Itoa(int(ap.Port()))
}
