// Package agent is keyless agent: the daemon on a runner host that owns the
// runner's certificate and key and hands each CI job credentials of its
// own, so that no job ever sees the key.
//
// It is a use case. It wires the others: enroll (first start), renewal
// (in process, as keyless renew --daemon), awscreds (one CreateSession),
// authz (who is asking, and which role they get) and broker (a cache per
// role, profile, session name and duration); and it starts the listeners
// of internal/agentapi. The CLI's keyless agent and keyless dev run it;
// the configuration is agent.yaml (LoadConfig).
//
// Every decision is one audit line on the Audit logger: outcome, reason,
// rule, role, and the caller's job, project and ref, never its token.
package agent

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"os/user"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keyless-dev/keyless/internal/agentapi"
	"github.com/keyless-dev/keyless/internal/authz"
	"github.com/keyless-dev/keyless/internal/awscreds"
	"github.com/keyless-dev/keyless/internal/broker"
	"github.com/keyless-dev/keyless/internal/caclient"
	"github.com/keyless-dev/keyless/internal/clock"
	"github.com/keyless-dev/keyless/internal/enroll"
	"github.com/keyless-dev/keyless/internal/gitlab"
	"github.com/keyless-dev/keyless/internal/hostnet"
	"github.com/keyless-dev/keyless/internal/identity"
	"github.com/keyless-dev/keyless/internal/metrics"
	"github.com/keyless-dev/keyless/internal/renewal"
	"github.com/keyless-dev/keyless/internal/rolesanywhere"
	"github.com/keyless-dev/keyless/internal/secretfile"
	"github.com/keyless-dev/keyless/internal/serve"
	"github.com/keyless-dev/keyless/internal/sigv4"
)

// Options shape an agent.
type Options struct {
	Config *Config
	// Clock drives caches, refreshes and renewal; nil means the real one.
	Clock clock.Clock
	// Logger gets what the agent does (listeners, renewals, refreshes);
	// Audit gets one line per decision (nil: Logger). nil discards.
	Logger, Audit *slog.Logger
	// Version is reported by status; UserAgent is sent to AWS, the CA
	// and GitLab.
	Version, UserAgent string
	// SetupNetwork adds the link-local listener addresses to this host
	// (needs CAP_NET_ADMIN); the configuration's setupNetwork also
	// sets it.
	SetupNetwork bool
	// Getenv reads the environment (AWS_ENDPOINT_URL_ROLESANYWHERE,
	// AWS_CA_BUNDLE); nil means os.Getenv.
	Getenv func(string) string
	// Events receives what the agent does, in order; nil ignores them.
	// It is called from the agent's goroutines and must not block.
	Events func(Event)
}

// Event is something the agent did: Enrolled, NetworkReady, Listening,
// Ready, Renewal.
type Event interface{ agentEvent() }

// Enrolled is the first certificate, got at start from the token file.
type Enrolled struct{ Leaf *x509.Certificate }

// NetworkReady says the link-local addresses are on Interface.
type NetworkReady struct {
	Interface string
	Addresses []netip.Addr
}

// Listening is a listener serving: Kind is "container-credentials",
// "relay", "socket" or "metrics"; Address a URL or a socket path.
type Listening struct{ Kind, Address string }

// Ready means every listener serves.
type Ready struct{}

// Renewal is an event of the in-process renewal scheduler.
type Renewal struct{ Event renewal.Event }

func (Enrolled) agentEvent()     {}
func (NetworkReady) agentEvent() {}
func (Listening) agentEvent()    {}
func (Ready) agentEvent()        {}
func (Renewal) agentEvent()      {}

// Agent is a configured agent. Run serves; Vend and Status answer the
// listeners (and tests) directly.
type Agent struct {
	o        Options
	cfg      *Config
	clock    clock.Clock
	log      *slog.Logger
	audit    *slog.Logger
	files    identity.Files
	verifier *authz.Verifier
	policy   *authz.Policy
	broker   *broker.Broker
	fetcher  *awscreds.Fetcher
	metrics  *agentMetrics
	gid      int               // the socket's group, -1 for the agent's own
	accounts map[string]string // role ARN to account, for AccountId
	granted  map[string]*metrics.Counter
	hits     *metrics.Counter

	mu        sync.Mutex
	leaf      *x509.Certificate
	lastErrs  []agentapi.ErrorStatus
	listeners []agentapi.ListenerStatus
}

// maxLastErrors is how many recent errors status shows.
const maxLastErrors = 10

// New checks the options and builds the agent; nothing is read from disk
// or the network until Run.
func New(o Options) (*Agent, error) {
	if o.Config == nil {
		return nil, errors.New("agent: no configuration")
	}
	cfg := o.Config
	a := &Agent{o: o, cfg: cfg, clock: clock.Or(o.Clock), gid: -1,
		log:   orDiscard(o.Logger),
		files: identity.Files{Certificate: cfg.Identity.Certificate, PrivateKey: cfg.Identity.Key, Intermediates: cfg.Identity.Intermediates}}
	a.audit = a.log
	if o.Audit != nil {
		a.audit = o.Audit
	}
	if s := cfg.Listen.Socket; s != nil && s.Group != "" {
		g, err := lookupGroup(s.Group)
		if err != nil {
			return nil, &ConfigError{File: cfg.File, Field: "listen.socket.group", Err: err}
		}
		a.gid = g
	}
	a.metrics = newAgentMetrics()
	a.accounts, a.granted, a.hits = map[string]string{}, map[string]*metrics.Counter{}, a.metrics.cacheHits.With()
	for _, r := range cfg.Rules {
		// Resolved once: a vend from the cache should not look up
		// label values.
		a.granted[r.RoleARN] = a.metrics.vends.With(r.RoleARN, "granted")
		if arn, err := rolesanywhere.ParseRoleARN(r.RoleARN); err == nil {
			a.accounts[r.RoleARN] = arn.Account
		}
	}
	policy, err := authz.NewPolicy(cfg.Rules)
	if err != nil {
		return nil, &ConfigError{File: cfg.File, Field: "rules", Err: err}
	}
	a.policy = policy
	ac := authz.Config{Clock: a.clock, Logger: a.log, Static: cfg.Static}
	if g := cfg.GitLab; g != nil {
		gl, err := gitlab.New(gitlab.Config{BaseURL: g.URL, UserAgent: o.UserAgent})
		if err != nil {
			return nil, &ConfigError{File: cfg.File, Field: "gitlab.url", Err: err}
		}
		ac.RunnerIDs = g.RunnerIDs
		if g.URL != "" {
			ac.Jobs, ac.JobCacheTTL, ac.GitLabURL = gl, g.JobTokenCache, g.URL
		}
		if t := g.IDTokens; t != nil {
			ac.OIDC = &authz.OIDC{Issuer: t.Issuer, Audiences: t.Audiences, MinRefresh: t.MinRefresh, Keys: gl.OIDCKeys(t.Issuer)}
		}
	}
	if a.verifier, err = authz.NewVerifier(ac); err != nil {
		return nil, err
	}
	getenv := o.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	a.fetcher = &awscreds.Fetcher{Clock: a.clock, Logger: a.log, UserAgent: o.UserAgent,
		// A session per job: one connection pool for all their
		// CreateSessions, not a connection (and handshake) each.
		Clients: &rolesanywhere.HTTPClients{},
		Name:    func(field string) string { return configField(field) },
		Getenv: func(k string) string {
			if k == "AWS_CA_BUNDLE" && cfg.AWS.CABundle != "" {
				return cfg.AWS.CABundle
			}
			return getenv(k)
		}}
	a.broker, err = broker.New(broker.Config{Fetch: a.fetch, Clock: a.clock, Logger: a.log, Rate: cfg.AWS.Rate, Events: a.brokerEvent})
	if err != nil {
		return nil, err
	}
	return a, nil
}

func orDiscard(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}

func lookupGroup(name string) (int, error) {
	if n, err := strconv.Atoi(name); err == nil && n >= 0 {
		return n, nil
	}
	g, err := user.LookupGroup(name)
	if err != nil {
		return 0, fmt.Errorf("group %q: %w", name, err)
	}
	return strconv.Atoi(g.Gid)
}

// configField names awscreds' fields as agent.yaml does.
func configField(field string) string {
	switch field {
	case "trust-anchor-arn":
		return "aws.trustAnchorArn"
	case "profile-arn":
		return "rules[].profileArn"
	case "role-arn":
		return "rules[].roleArn"
	case "region":
		return "aws.region"
	case "endpoint":
		return "aws.endpoint"
	case "certificate":
		return "identity.certificate"
	case "private-key":
		return "identity.key"
	case "intermediates":
		return "identity.intermediates"
	case "duration-seconds":
		return "rules[].duration"
	case "role-session-name":
		return "rules[].sessionName"
	case "AWS_CA_BUNDLE":
		return "aws.caBundle"
	}
	return field
}

func (a *Agent) emit(e Event) {
	if a.o.Events != nil {
		a.o.Events(e)
	}
}

// fetch is one CreateSession for k, through awscreds without its file
// cache: the broker is the cache, in memory, and the key file is read
// on each miss, so a renewed certificate is used without a restart.
func (a *Agent) fetch(ctx context.Context, k broker.Key) (sigv4.Credentials, error) {
	res, err := a.fetcher.Fetch(ctx, awscreds.Request{
		Files:          a.files,
		TrustAnchorARN: a.cfg.AWS.TrustAnchorARN, ProfileARN: k.ProfileARN, RoleARN: k.RoleARN,
		DurationSeconds: int(k.Duration / time.Second), SessionName: k.SessionName,
		Region: a.cfg.AWS.Region, Endpoint: a.cfg.AWS.Endpoint,
		NoCache: true,
		// One attempt: the broker retries with its own backoff, under
		// the rate limit, while it serves the last good credentials.
		MaxAttempts: 1,
	})
	if err != nil {
		a.noteError("create-session", err)
		return sigv4.Credentials{}, err
	}
	return res.Credentials, nil
}

func (a *Agent) noteError(what string, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.lastErrs = append(a.lastErrs, agentapi.ErrorStatus{At: a.clock.Now().UTC(), What: what, Error: err.Error()})
	if len(a.lastErrs) > maxLastErrors {
		a.lastErrs = a.lastErrs[len(a.lastErrs)-maxLastErrors:]
	}
}

// Run makes sure the identity exists (enrolling from the token file when
// the pair is absent), then serves until ctx ends, renewing the
// certificate in process. It returns nil when ctx ends, and an error when
// the identity cannot be had or a listener cannot start.
func (a *Agent) Run(ctx context.Context) error {
	defer a.broker.Close()
	// The network first: enrolling spends the one-time token, which is
	// wasted if the agent then cannot listen.
	if err := a.setupNetwork(); err != nil {
		return err
	}
	if err := a.checkRelayListeners(hostnet.NewBridges().Holding); err != nil {
		return err
	}
	if err := a.ensureIdentity(ctx); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	servers, err := a.listen()
	defer func() {
		for _, s := range servers {
			s.Close()
		}
	}()
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	if a.cfg.Identity.CAURL != "" {
		r, err := a.renewer()
		if err != nil {
			return err
		}
		wg.Go(func() {
			if err := r.Run(ctx, false); err != nil && ctx.Err() == nil {
				a.log.Error("renewal stopped", "err", err)
				a.noteError("renewal", err)
			}
		})
	}
	a.emit(Ready{})
	failed := make(chan error, len(servers))
	for _, s := range servers {
		go func() {
			select {
			case <-s.Done():
				if !errors.Is(s.Err(), errServerClosed) {
					failed <- fmt.Errorf("listener %s stopped: %w", s.Addr(), s.Err())
				}
			case <-ctx.Done():
			}
		}()
	}
	select {
	case <-ctx.Done():
		err = nil
	case err = <-failed:
	}
	cancel()
	wg.Wait()
	return err
}

var errServerClosed = http.ErrServerClosed

// ensureIdentity loads the pair, or enrolls when both files are absent
// and a token file is configured.
func (a *Agent) ensureIdentity(ctx context.Context) error {
	id := a.cfg.Identity
	_, certErr := os.Lstat(id.Certificate)
	_, keyErr := os.Lstat(id.Key)
	switch {
	case errors.Is(certErr, os.ErrNotExist) && errors.Is(keyErr, os.ErrNotExist):
		if id.TokenFile == "" {
			return &IdentityError{Err: fmt.Errorf("neither %s nor %s exists, and identity.enroll.tokenFile is not set", id.Certificate, id.Key)}
		}
		return a.enroll(ctx)
	case errors.Is(certErr, os.ErrNotExist) != errors.Is(keyErr, os.ErrNotExist):
		// Half a pair is never completed by enrolling: that would
		// replace a key someone may still rely on.
		return &IdentityError{Err: fmt.Errorf("only one of %s and %s exists; restore the other, or remove both to enroll again", id.Certificate, id.Key)}
	}
	if err := identity.RecoverPair(id.Certificate, id.Key); err != nil {
		return &IdentityError{Err: err}
	}
	leaf, err := identity.LoadCertificate(id.Certificate, nil)
	if err != nil {
		return &IdentityError{Err: err}
	}
	if err := identity.Check(a.files); err != nil {
		return &IdentityError{Err: err}
	}
	a.setLeaf(leaf)
	if now := a.clock.Now(); now.After(leaf.NotAfter) {
		a.log.Warn("the runner's certificate has expired; renewal will try to renew it", "certificate", id.Certificate, "notAfter", leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	return nil
}

// IdentityError is a runner identity the agent cannot use or make.
type IdentityError struct{ Err error }

func (e *IdentityError) Error() string { return "the runner's identity: " + e.Err.Error() }
func (e *IdentityError) Unwrap() error { return e.Err }

func (a *Agent) trust() (*enroll.Trust, error) {
	t, err := enroll.LoadTrust("", a.cfg.Identity.CAURL, a.cfg.Identity.Root)
	if err != nil {
		return nil, &IdentityError{Err: err}
	}
	return t, nil
}

func (a *Agent) enroll(ctx context.Context) error {
	id := a.cfg.Identity
	token, err := secretfile.Read("identity.enroll.tokenFile", id.TokenFile, nil)
	if err != nil {
		return &IdentityError{Err: err}
	}
	t, err := a.trust()
	if err != nil {
		return err
	}
	client, err := t.Client(a.caOptions())
	if err != nil {
		return &IdentityError{Err: err}
	}
	e := &enroll.Enroller{Client: client, Logger: a.log}
	certs, err := e.Enroll(ctx, enroll.Request{Subject: id.Subject, SANs: id.SANs, CertPath: id.Certificate, KeyPath: id.Key, Token: string(token)})
	if err != nil {
		return &IdentityError{Err: fmt.Errorf("enrolling with %s: %w", t.URL, err)}
	}
	a.setLeaf(certs.Leaf)
	a.emit(Enrolled{Leaf: certs.Leaf})
	a.log.Info("enrolled", "certificate", id.Certificate, "subject", certs.Leaf.Subject.CommonName, "serial", certs.Leaf.SerialNumber.String(),
		"notAfter", certs.Leaf.NotAfter.UTC().Format(time.RFC3339))
	return nil
}

func (a *Agent) caOptions() caclient.Options {
	return caclient.Options{Now: a.clock.Now}
}

func (a *Agent) setLeaf(leaf *x509.Certificate) {
	a.mu.Lock()
	a.leaf = leaf
	a.mu.Unlock()
	a.metrics.notAfter.With().Set(float64(leaf.NotAfter.Unix()))
}

func (a *Agent) renewer() (*renewal.Renewer, error) {
	t, err := a.trust()
	if err != nil {
		return nil, err
	}
	client, err := t.Client(a.caOptions())
	if err != nil {
		return nil, &IdentityError{Err: err}
	}
	return renewal.New(renewal.Config{Client: client, CertPath: a.cfg.Identity.Certificate, KeyPath: a.cfg.Identity.Key,
		ExpiresIn: a.cfg.Identity.RenewBefore, Clock: a.clock, Logger: a.log, Events: a.renewalEvent})
}

func (a *Agent) renewalEvent(e renewal.Event) {
	switch e := e.(type) {
	case renewal.Renewed:
		a.setLeaf(e.Leaf)
		a.metrics.renewals.With("renewed").Inc()
	case renewal.Failed:
		a.metrics.renewals.With("failed").Inc()
		a.noteError("renewal", e.Err)
	}
	a.emit(Renewal{Event: e})
}

// setupNetwork makes sure the link-local listener addresses exist on this
// host: adds them when asked, else says how. Addresses already there need
// nothing, so an agent whose addresses were added before it started (by
// keyless agent setup-network, as the systemd unit's privileged
// pre-start step does) runs without CAP_NET_ADMIN, setupNetwork or not.
func (a *Agent) setupNetwork() error {
	missing := missingAddresses(a.cfg.LinkLocal(), hostnet.HasAddress)
	if len(missing) == 0 {
		return nil
	}
	if a.o.SetupNetwork || a.cfg.Listen.SetupNetwork {
		ready, err := SetupNetwork(a.cfg)
		if err != nil {
			return err
		}
		a.log.Info("link-local addresses ready", "interface", ready.Interface, "addresses", fmt.Sprint(ready.Addresses))
		a.emit(ready)
		return nil
	}
	return &NetworkError{Addresses: missing, Err: errors.New("not on any interface of this host")}
}

// missingAddresses are those of addrs that has says this host lacks.
func missingAddresses(addrs []netip.Addr, has func(netip.Addr) bool) []netip.Addr {
	var missing []netip.Addr
	for _, ad := range addrs {
		if !has(ad) {
			missing = append(missing, ad)
		}
	}
	return missing
}

// LinkLocal returns the addresses of the configuration's link-local
// container-credentials listeners, each once, in order: the addresses
// to put on this host. Loopback listeners need none.
func (c *Config) LinkLocal() []netip.Addr {
	var addrs []netip.Addr
	for _, l := range c.Listen.ContainerCredentials {
		ap := netip.MustParseAddrPort(l)
		if !ap.Addr().IsLoopback() && !slices.Contains(addrs, ap.Addr()) {
			addrs = append(addrs, ap.Addr())
		}
	}
	return addrs
}

// SetupNetwork puts the configuration's link-local listener addresses on
// this host (hostnet.AddAddresses: needs CAP_NET_ADMIN, Linux only),
// leaving those already there, and returns where they are. It is what
// keyless agent setup-network does, and the agent at start with
// --setup-network. A configuration without link-local listeners needs
// nothing: the result has no addresses.
func SetupNetwork(cfg *Config) (NetworkReady, error) {
	return SetupAddresses(cfg.LinkLocal())
}

// SetupAddresses is SetupNetwork for addresses given directly, as the
// systemd unit's privileged pre-start step gives them, so that the step
// running as root reads no file the agent's user may write. Only the
// container-credentials link-local addresses (169.254.170.2,
// 169.254.170.23, fd00:ec2::23) are accepted: an *AddressError names
// any other.
func SetupAddresses(addrs []netip.Addr) (NetworkReady, error) {
	for _, a := range addrs {
		if !slices.Contains(containerHosts, a) {
			return NetworkReady{}, &AddressError{Address: a}
		}
	}
	if len(addrs) == 0 {
		return NetworkReady{}, nil
	}
	iface, err := hostnet.AddAddresses(addrs)
	if err != nil {
		return NetworkReady{}, &NetworkError{Addresses: addrs, Err: err}
	}
	return NetworkReady{Interface: iface, Addresses: addrs}, nil
}

// AddressError is an address SetupAddresses will not add.
type AddressError struct{ Address netip.Addr }

func (e *AddressError) Error() string {
	return fmt.Sprintf("%s: only the container-credentials addresses 169.254.170.2, 169.254.170.23 and fd00:ec2::23 are set up", e.Address)
}

// NetworkError is a link-local address the agent cannot listen on;
// Commands says how an operator adds it.
type NetworkError struct {
	Addresses []netip.Addr
	Err       error
}

func (e *NetworkError) Error() string {
	return fmt.Sprintf("the container-credentials addresses %v: %v", e.Addresses, e.Err)
}
func (e *NetworkError) Unwrap() error { return e.Err }

// Commands are the ip commands that add the addresses.
func (e *NetworkError) Commands() []string { return hostnet.Commands(e.Addresses) }

func (a *Agent) listen() ([]*serve.Server, error) {
	var servers []*serve.Server
	bridges := hostnet.NewBridges()
	for _, addr := range a.cfg.Listen.ContainerCredentials {
		s, err := a.startContainerListener(addr, "container-credentials", func(bound string) http.Handler {
			handler := agentapi.ContainerHandler(a, agentapi.Hosts(bound), "container:"+bound)
			if !netip.MustParseAddrPort(addr).Addr().IsLoopback() {
				// A link-local address answers the LAN too (ARP): only
				// loopback and the host's container bridges may ask.
				handler = agentapi.FromOnly(handler, bridges.Allow)
			}
			return handler
		})
		if err != nil {
			return servers, fmt.Errorf("listening for container credentials on %s: %w", addr, err)
		}
		servers = append(servers, s)
	}
	for _, addr := range a.cfg.Listen.Relay {
		s, err := a.startRelayListener(addr, bridges)
		if err != nil {
			return servers, err
		}
		servers = append(servers, s)
	}
	if sc := a.cfg.Listen.Socket; sc != nil {
		s, err := agentapi.StartUnix(sc.Path, sc.Mode, a.gid, agentapi.LocalHandler(a, a), a.log)
		if err != nil {
			return servers, fmt.Errorf("listening on %s: %w", sc.Path, err)
		}
		servers = append(servers, s)
		a.addListener("socket", sc.Path)
	}
	if m := a.cfg.Listen.Metrics; m != "" {
		s, err := agentapi.StartMetrics(m, a.metrics.reg.WriteText, a.log)
		if err != nil {
			return servers, fmt.Errorf("listening for metrics on %s: %w", m, err)
		}
		servers = append(servers, s)
		a.addListener("metrics", s.URL()+"/metrics")
	}
	return servers, nil
}

// startContainerListener listens on addr, serves the handler handler
// makes for the bound address (startBound), and lists it as a listener
// of kind.
func (a *Agent) startContainerListener(addr, kind string, handler func(bound string) http.Handler) (*serve.Server, error) {
	s, err := startBound(addr, a.log, handler)
	if err != nil {
		return nil, err
	}
	a.addListener(kind, s.URL()+ContainerPath)
	return s, nil
}

// startBound listens on addr with the container endpoint's bounds and
// serves the handler handler makes for the bound address: the Host check
// needs the port, known only once listening when addr says 0, and until
// then nothing is served (503).
func startBound(addr string, log *slog.Logger, handler func(bound string) http.Handler) (*serve.Server, error) {
	var h atomic.Pointer[http.Handler]
	s, err := agentapi.StartContainer(addr, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hp := h.Load(); hp != nil {
			(*hp).ServeHTTP(w, r)
			return
		}
		http.Error(w, "starting", http.StatusServiceUnavailable)
	}), log)
	if err != nil {
		return nil, err
	}
	hd := handler(s.Addr().String())
	h.Store(&hd)
	return s, nil
}

// ContainerPath is the path jobs put in AWS_CONTAINER_CREDENTIALS_FULL_URI.
const ContainerPath = agentapi.ContainerPath

func (a *Agent) addListener(kind, address string) {
	a.mu.Lock()
	a.listeners = append(a.listeners, agentapi.ListenerStatus{Kind: kind, Address: address})
	a.mu.Unlock()
	a.log.Info("listening", "kind", kind, "address", address)
	a.emit(Listening{Kind: kind, Address: address})
}

// Vend answers a caller: who it is (authz), what it may have (the rules),
// and credentials from the broker. Refusals are *agentapi.Refusal with
// the status the listener answers; each decision is one audit line.
func (a *Agent) Vend(ctx context.Context, r agentapi.Request) (*agentapi.Credentials, error) {
	cred := authz.Credential{Token: r.Token}
	if r.Peer != nil {
		cred = authz.Credential{Peer: &authz.PeerCred{UID: r.Peer.UID, GID: r.Peer.GID, PID: r.Peer.PID}}
	}
	// One audit line per decision, built as attributes (LogAttrs): it is
	// written for every request, so it should cost little.
	line := make([]slog.Attr, 0, 20)
	line = append(line, slog.String("listener", r.Listener))
	if r.Remote != "" {
		line = append(line, slog.String("remote", r.Remote))
	}
	if r.Peer != nil {
		line = append(line, slog.Int64("pid", int64(r.Peer.PID)))
	}
	id, err := a.verifier.Verify(ctx, cred)
	if err != nil {
		return nil, a.refuse(ctx, err, line)
	}
	line = appendIdentity(line, id)
	d, err := a.policy.Decide(id)
	if err != nil {
		return nil, a.refuse(ctx, err, line)
	}
	line = append(line, slog.String("rule", d.Rule), slog.String("role", d.RoleARN), slog.String("session", d.SessionName))
	res, err := a.broker.Get(ctx, broker.Key{RoleARN: d.RoleARN, ProfileARN: d.ProfileARN, SessionName: d.SessionName, Duration: d.Duration})
	if err != nil {
		a.metrics.vends.With(d.RoleARN, "error").Inc()
		a.audit.LogAttrs(ctx, slog.LevelWarn, "agent decision", append(line, slog.String("outcome", "error"), slog.String("reason", describeFetch(err)))...)
		// 503: the SDKs retry; the caller may get credentials once
		// Roles Anywhere answers again. The detail (paths, ARNs, AWS's
		// words) stays in the agent's log.
		return nil, &agentapi.Refusal{Status: 503, Code: "CredentialsUnavailable",
			Message: "no credentials for " + d.RoleARN + " right now; the agent's log says why, and a retry may succeed"}
	}
	a.granted[d.RoleARN].Inc()
	a.audit.LogAttrs(ctx, slog.LevelInfo, "agent decision", append(line, slog.String("outcome", "granted"), slog.String("reason", "rule matched"),
		slog.Bool("cached", res.Cached), slog.String("expires", res.Credentials.Expiration.UTC().Format(time.RFC3339)))...)
	c := res.Credentials
	return &agentapi.Credentials{AccessKeyID: c.AccessKeyID, SecretAccessKey: c.SecretAccessKey, Token: c.SessionToken,
		Expiration: c.Expiration, AccountID: a.accounts[d.RoleARN]}, nil
}

// describeFetch says why no credentials could be had, without secrets:
// what awscreds and the broker return names roles and services only.
func describeFetch(err error) string {
	var ie *awscreds.InputError
	if errors.As(err, &ie) {
		return "the agent's configuration: " + ie.Error()
	}
	return err.Error()
}

func (a *Agent) refuse(ctx context.Context, err error, line []slog.Attr) error {
	var ae *authz.Error
	if !errors.As(err, &ae) {
		a.audit.LogAttrs(ctx, slog.LevelError, "agent decision", append(line, slog.String("outcome", "error"), slog.String("reason", err.Error()))...)
		return &agentapi.Refusal{Status: 500, Code: "InternalError", Message: "the agent could not decide; see its log"}
	}
	a.metrics.authFailures.With(ae.Reason).Inc()
	a.metrics.vends.With("", "denied").Inc()
	detail := ae.Message
	if ae.Detail != "" {
		detail = ae.Detail
	}
	a.audit.LogAttrs(ctx, slog.LevelWarn, "agent decision", append(line, slog.String("outcome", "denied"), slog.String("reason", ae.Reason), slog.String("detail", detail))...)
	code := "AccessDenied"
	switch ae.Status {
	case 401:
		code = "Unauthorized"
	case 503:
		code = "IdentityUnavailable"
	}
	return &agentapi.Refusal{Status: ae.Status, Code: code, Message: ae.Message}
}

// auditClaims are the claims an audit line shows, and their names there.
var auditClaims = [...]struct{ claim, name string }{
	{"job_id", "job"}, {"project_path", "project"}, {"project_id", "project_id"}, {"ref", "ref"}, {"pipeline_id", "pipeline_id"},
	{"runner_id", "runner_id"}, {"token", "token"}, {"uid", "uid"}, {"gid", "gid"},
}

// appendIdentity appends the audit line's view of a caller.
func appendIdentity(line []slog.Attr, id *authz.Identity) []slog.Attr {
	line = append(line, slog.String("identity", string(id.Kind)))
	for _, c := range auditClaims {
		if v, ok := id.Claims[c.claim]; ok {
			line = append(line, slog.String(c.name, v))
		}
	}
	return line
}

func (a *Agent) brokerEvent(e broker.Event) {
	switch e := e.(type) {
	case broker.Hit:
		a.hits.Inc()
	case broker.Fetched:
		a.metrics.sessionSeconds.With().Observe(e.Took.Seconds())
		if e.Err != nil {
			a.metrics.sessionErrors.With().Inc()
		}
	}
}

// Status is what keyless agent status shows.
func (a *Agent) Status(ctx context.Context) *agentapi.Status {
	a.mu.Lock()
	defer a.mu.Unlock()
	st := &agentapi.Status{Version: a.o.Version, Now: a.clock.Now().UTC(), Listeners: slices.Clone(a.listeners), Errors: slices.Clone(a.lastErrs)}
	if a.leaf != nil {
		st.Certificate = &agentapi.CertificateStatus{Path: a.cfg.Identity.Certificate, Subject: a.leaf.Subject.CommonName,
			Serial: a.leaf.SerialNumber.String(), NotAfter: a.leaf.NotAfter.UTC()}
	}
	for _, e := range a.broker.Status() {
		st.Roles = append(st.Roles, agentapi.RoleStatus{Role: e.Key.RoleARN, Profile: e.Key.ProfileARN, Session: e.Key.SessionName,
			Expiration: e.Expiration.UTC(), LastError: e.LastError})
	}
	return st
}

// WriteMetrics writes the agent's metrics in Prometheus's text format.
func (a *Agent) WriteMetrics(w io.Writer) { a.metrics.reg.WriteText(w) }

type agentMetrics struct {
	reg            *metrics.Registry
	notAfter       *metrics.GaugeVec
	renewals       *metrics.CounterVec
	vends          *metrics.CounterVec
	authFailures   *metrics.CounterVec
	sessionSeconds *metrics.HistogramVec
	sessionErrors  *metrics.CounterVec
	cacheHits      *metrics.CounterVec
}

func newAgentMetrics() *agentMetrics {
	r := metrics.NewRegistry()
	return &agentMetrics{reg: r,
		notAfter:       r.Gauge("keyless_agent_certificate_not_after_seconds", "When the runner's certificate expires, in Unix seconds."),
		renewals:       r.Counter("keyless_agent_renewals_total", "Certificate renewals by outcome.", "outcome"),
		vends:          r.Counter("keyless_agent_vends_total", "Credential requests by role and decision (granted, denied, error).", "role", "decision"),
		authFailures:   r.Counter("keyless_agent_authorization_failures_total", "Refused callers by reason.", "reason"),
		sessionSeconds: r.Histogram("keyless_agent_create_session_seconds", "Roles Anywhere CreateSession latency.", nil),
		sessionErrors:  r.Counter("keyless_agent_create_session_errors_total", "Failed CreateSession calls."),
		cacheHits:      r.Counter("keyless_agent_cache_hits_total", "Credential requests answered from the cache."),
	}
}
