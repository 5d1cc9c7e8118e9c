// Package doctor checks a runner's whole keyless chain and says, for
// each link that is broken, what to change: the certificate and key,
// their lifetime and renewal, the chain to the trust anchor, the role's
// trust policy (offline, from a policy file), the clocks against the CA
// and AWS, the CA and its CRL, CreateSession, STS, and the agent. Each
// check is a Result (ok, warn, fail or skip) with a detail and, when it
// is not ok, a fix naming the command or setting to change; a check that
// needs an earlier one that failed is skipped, saying which.
//
// It is a use case: keyless doctor prints its Report. It takes the very
// request credential-process takes (awscreds.Request), an injected clock
// and logger, and calls the transports (caclient, rolesanywhere, sts,
// agentapi); it prints nothing and never reports a secret (credentials
// are used for STS and dropped).
package doctor

import (
	"context"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/keyless-dev/keyless/internal/awscreds"
	"github.com/keyless-dev/keyless/internal/caclient"
	"github.com/keyless-dev/keyless/internal/clock"
	"github.com/keyless-dev/keyless/internal/logline"
	"github.com/keyless-dev/keyless/internal/pki"
	"github.com/keyless-dev/keyless/internal/rolesanywhere"
)

// Status is a check's outcome.
type Status string

// The outcomes. Only Fail makes the report fail: Warn is something to
// fix before it breaks, Skip a check that could not run (not configured,
// or an earlier check it needs failed).
const (
	OK   Status = "ok"
	Warn Status = "warn"
	Fail Status = "fail"
	Skip Status = "skip"
)

// Check IDs, stable for scripts (keyless doctor --json) and tests.
const (
	CheckIdentity      = "certificate"
	CheckValidity      = "validity"
	CheckChain         = "chain"
	CheckTrustPolicy   = "trust-policy"
	CheckCA            = "ca"
	CheckCAClock       = "ca-clock"
	CheckCRL           = "crl"
	CheckAWSClock      = "aws-clock"
	CheckCreateSession = "create-session"
	CheckSTS           = "sts"
	CheckAgentConfig   = "agent-config"
	CheckAgent         = "agent"
)

// Result is one check's outcome.
type Result struct {
	ID     string `json:"id"`
	Title  string `json:"title"`
	Status Status `json:"status"`
	// Detail says what was found; Fix, for warn and fail, what to change.
	Detail string `json:"detail,omitempty"`
	Fix    string `json:"fix,omitempty"`
}

// Report is every check's Result, in the order they ran.
type Report struct {
	Results []Result `json:"checks"`
}

// Failed reports whether any check failed.
func (r *Report) Failed() bool {
	for _, c := range r.Results {
		if c.Status == Fail {
			return true
		}
	}
	return false
}

// Get returns the result of check id (zero when it did not run).
func (r *Report) Get(id string) Result {
	for _, c := range r.Results {
		if c.ID == id {
			return c
		}
	}
	return Result{}
}

// Thresholds of the clock checks. SigV4 refuses a request signed more
// than five minutes away from the service's clock; a minute is already
// worth fixing, as it eats into certificate and token lifetimes.
const (
	MaxSkew  = 5 * time.Minute
	WarnSkew = time.Minute
)

// DefaultAgentConfig is where deploy/ installs the agent's configuration
// (internal/deploygen's AgentConfig), which keyless doctor checks when it
// exists and no other is named.
const DefaultAgentConfig = "/etc/keyless/agent.yaml"

// Config is what to check.
type Config struct {
	// Request is the session, as credential-process's flags say it. Its
	// NoCache and CacheDir are ignored: the doctor always calls
	// CreateSession and never touches the cache.
	Request awscreds.Request
	// Name renders a field as the user gave it ("--role-arn"); nil
	// leaves it as it is.
	Name func(field string) string
	// Getenv reads the environment; nil means os.Getenv.
	Getenv func(string) string

	// TrustBundle is a PEM file of the trust anchor's certificates;
	// empty means the CA's root (RootFile), when there is one.
	TrustBundle string
	// TrustPolicy is a role trust policy JSON file to check the
	// certificate against; empty skips the check.
	TrustPolicy string
	// CAURL and RootFile are the CA and its pinned root (from the flags
	// or keyless bootstrap); empty skips the CA checks. CASource says
	// where they came from, for messages ("keyless bootstrap").
	CAURL, RootFile, CASource string
	// CAFromFlags says CAURL and RootFile were given on the command line;
	// otherwise an agent configuration's identity.ca replaces them.
	CAFromFlags bool
	// STSEndpoint is where GetCallerIdentity goes; empty means
	// AWS_ENDPOINT_URL_STS, else the region's STS when the Roles Anywhere
	// endpoint is AWS's, else the Roles Anywhere endpoint itself (the
	// keyless emulator serves both).
	STSEndpoint string
	// AgentConfig is the agent's agent.yaml; AgentSocket its unix socket
	// (default: the configuration's listen.socket.path). Both empty
	// skips the agent checks.
	AgentConfig, AgentSocket string

	Clock     clock.Clock
	Logger    *slog.Logger
	UserAgent string
	// Timeout bounds each network check; zero means 10 s.
	Timeout time.Duration
}

// Run checks everything cfg names. The error is for a request that
// cannot be checked at all (a missing flag, a malformed ARN: an
// *awscreds.InputError); everything else is in the Report.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	r := &run{cfg: cfg, clk: clock.Or(cfg.Clock), log: logline.Or(cfg.Logger), report: &Report{}}
	if r.cfg.Timeout == 0 {
		r.cfg.Timeout = 10 * time.Second
	}
	if r.cfg.Getenv == nil {
		r.cfg.Getenv = os.Getenv
	}
	if r.cfg.Name == nil {
		r.cfg.Name = func(s string) string { return s }
	}
	r.now = r.clk.Now()
	if r.cfg.Request.Files.Certificate == "" && r.cfg.AgentConfig != "" {
		if err := r.fromAgent(); err != nil {
			return nil, err
		}
	}
	if r.cfg.Request.Files.Certificate == "" && r.cfg.AgentSocket != "" {
		// credential-process --agent SOCKET: the agent holds the key.
		for _, id := range []string{CheckIdentity, CheckValidity, CheckChain, CheckTrustPolicy, CheckCA, CheckCAClock, CheckCRL,
			CheckAWSClock, CheckCreateSession, CheckSTS} {
			r.skip(id, "no %s: only the agent is checked (give credential-process's flags, or --agent-config, to check the chain)", r.n("certificate"))
		}
		r.agentConfig()
		r.agent(ctx)
		return r.report, nil
	}
	f := &awscreds.Fetcher{Clock: r.clk, Name: r.cfg.Name, Getenv: r.cfg.Getenv, Logger: cfg.Logger, UserAgent: cfg.UserAgent}
	plan, err := f.Check(r.cfg.Request)
	if err != nil {
		return nil, err
	}
	r.plan = plan
	r.identity()
	r.validity()
	r.chain()
	r.trustPolicy()
	r.ca(ctx)
	r.caClock()
	r.crl(ctx)
	r.awsClock(ctx)
	r.createSession(ctx)
	r.sts(ctx)
	r.agentConfig()
	r.agent(ctx)
	return r.report, nil
}

// run is one Run's state: what earlier checks found, for later ones.
type run struct {
	cfg    Config
	clk    clock.Clock
	log    *slog.Logger
	now    time.Time
	plan   *awscreds.Plan
	report *Report

	id       *pki.Identity
	caRoot   *x509.Certificate
	caClient *caclient.Client
	caDate   time.Time
	awsDate  time.Time
	session  *rolesanywhere.Session
	socket   string
}

// title is the check's title (a switch, not a map every keyless command
// would build at start).
func title(id string) string {
	switch id {
	case CheckIdentity:
		return "certificate and key"
	case CheckValidity:
		return "expiry and renewal"
	case CheckChain:
		return "chain to the trust anchor"
	case CheckTrustPolicy:
		return "role trust policy"
	case CheckCA:
		return "CA reachable"
	case CheckCAClock:
		return "clock against the CA"
	case CheckCRL:
		return "revocation (CA's CRL)"
	case CheckAWSClock:
		return "clock against AWS"
	case CheckCreateSession:
		return "CreateSession"
	case CheckSTS:
		return "STS identity"
	case CheckAgentConfig:
		return "agent configuration"
	case CheckAgent:
		return "agent"
	}
	return ""
}

func (r *run) add(id string, st Status, detail, fix string) {
	r.report.Results = append(r.report.Results, Result{ID: id, Title: title(id), Status: st, Detail: detail, Fix: fix})
	r.log.Debug("check", "id", id, "status", string(st), "detail", detail)
}

func (r *run) ok(id, format string, args ...any) { r.add(id, OK, fmt.Sprintf(format, args...), "") }

func (r *run) skip(id, format string, args ...any) { r.add(id, Skip, fmt.Sprintf(format, args...), "") }

func (r *run) status(id string) Status { return r.report.Get(id).Status }

// failedBefore returns the reason to skip a check that needs the given
// earlier ones: the first of them that failed, or "".
func (r *run) failedBefore(ids ...string) string {
	for _, id := range ids {
		if res := r.report.Get(id); res.Status == Fail {
			return fmt.Sprintf("needs %q, which failed", res.Title)
		}
	}
	return ""
}

func (r *run) n(field string) string { return r.cfg.Name(field) }

func (r *run) timeout(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, r.cfg.Timeout)
}

// rfc formats a time for people and scripts alike.
func rfc(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// human rounds a duration for reading.
func human(d time.Duration) string {
	switch d = d.Abs(); {
	case d >= 48*time.Hour:
		return fmt.Sprintf("%dd", int(d.Hours()/24))
	case d >= time.Hour:
		return d.Round(time.Minute).String()
	default:
		return d.Round(time.Second).String()
	}
}

// certPaths renders "CERT KEY" as the user named them, for fixes.
func (r *run) certPaths() string {
	files := r.cfg.Request.Files
	if files.PrivateKey == "" {
		return files.Certificate
	}
	return files.Certificate + " " + files.PrivateKey
}

// subject is the certificate's CN, or a placeholder for fixes.
func (r *run) subject() string {
	if r.id != nil && r.id.Certificate.Subject.CommonName != "" {
		return r.id.Certificate.Subject.CommonName
	}
	return "NAME"
}

// reenroll is the fix that gets a fresh certificate from the CA.
func (r *run) reenroll() string {
	return fmt.Sprintf("get a new certificate: keyless ca token %s on the CA host, then keyless certificate %s %s --token-file TOKENFILE --force",
		r.subject(), r.subject(), r.certPaths())
}

// clockSkew judges the distance between this machine's clock and
// another's Date (which has whole seconds: a second of slack).
func clockSkew(now, theirs time.Time) (Status, time.Duration) {
	skew := now.Sub(theirs)
	a := skew.Abs()
	switch {
	case a > MaxSkew+time.Second:
		return Fail, skew
	case a > WarnSkew+time.Second:
		return Warn, skew
	}
	return OK, skew
}

func describeSkew(skew time.Duration, whose string) string {
	switch {
	case skew.Abs() <= time.Second:
		return "within a second of " + whose
	case skew > 0:
		return fmt.Sprintf("this machine's clock is %s ahead of %s", human(skew), whose)
	default:
		return fmt.Sprintf("this machine's clock is %s behind %s", human(skew), whose)
	}
}
