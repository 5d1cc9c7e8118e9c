package agent

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/keyless-dev/keyless/internal/authz"
	"github.com/keyless-dev/keyless/internal/broker"
	"github.com/keyless-dev/keyless/internal/rolesanywhere"
	"github.com/keyless-dev/keyless/internal/yamlfile"
)

// maxConfigFile caps what is read for agent.yaml; real ones are a few
// kilobytes.
const maxConfigFile = 1 << 20

// Defaults that the configuration may override.
const (
	// DefaultRate keeps CreateSession well below AWS's quota of 10 per
	// second per account and region, which the runner shares with
	// everything else that calls Roles Anywhere.
	DefaultRate = 5.0
	// DefaultJobTokenCache is how long a job token GitLab confirmed is
	// trusted without asking again: short, because a job token dies
	// with its job, and the credentials it got live on in the SDK
	// anyway.
	DefaultJobTokenCache = 30 * time.Second
	// DefaultJWKSMinRefresh bounds refetches of GitLab's keys on an
	// unknown kid, so forged kids cannot make the agent hammer GitLab.
	DefaultJWKSMinRefresh = time.Minute
	// MaxDuration is Roles Anywhere's longest session.
	MaxDuration = 12 * time.Hour
)

// Config is a validated agent configuration. Build it with LoadConfig or
// ParseConfig.
type Config struct {
	// File names the configuration in messages.
	File     string
	Identity IdentityConfig
	AWS      AWSConfig
	// GitLab is nil when no GitLab identity is configured.
	GitLab *GitLabConfig
	Static []authz.StaticToken
	Listen ListenConfig
	Rules  []authz.Rule
}

// IdentityConfig is the runner's certificate and key, and the CA that
// issues and renews them.
type IdentityConfig struct {
	Certificate, Key, Intermediates string
	// CAURL and Root name the CA; empty means the certificate is
	// renewed by something else (keyless renew --daemon).
	CAURL, Root string
	// TokenFile enrolls at first start when the pair is absent; Subject
	// and SANs are the certificate's names.
	TokenFile string
	Subject   string
	SANs      []string
	// RenewBefore opens the renewal window; zero means the last third
	// of the lifetime.
	RenewBefore time.Duration
}

// AWSConfig says where credentials come from.
type AWSConfig struct {
	TrustAnchorARN string
	Region         string
	Endpoint       string
	CABundle       string
	// Rate is CreateSession calls per second across all roles.
	Rate float64
}

// GitLabConfig is how job identities are verified.
type GitLabConfig struct {
	// URL is the instance whose job API verifies CI_JOB_TOKEN; empty
	// means job tokens are refused.
	URL           string
	JobTokenCache time.Duration
	// RunnerIDs pins the runners whose jobs are served (job tokens and
	// id_tokens alike); empty serves any.
	RunnerIDs []int64
	// IDTokens is nil when id_tokens JWTs are refused.
	IDTokens *IDTokensConfig
}

// IDTokensConfig is how id_tokens JWTs are verified.
type IDTokensConfig struct {
	Issuer     string
	Audiences  []string
	MinRefresh time.Duration
}

// ListenConfig names the agent's listeners; each is optional.
type ListenConfig struct {
	ContainerCredentials []string
	// Relay are container-credentials listeners for keyless agent relay
	// (Docker Desktop): loopback, or an address of one of this host's
	// bridges (checked at start, when the interfaces are known).
	Relay        []string
	SetupNetwork bool
	Socket       *SocketConfig
	Metrics      string
}

// SocketConfig is the unix socket of the local API.
type SocketConfig struct {
	Path  string
	Mode  os.FileMode
	Group string
}

// ConfigError is a problem in agent.yaml, located by file, line and field.
type ConfigError = yamlfile.Error

// The raw configuration: exactly the YAML fields, decoded strictly.
type rawConfig struct {
	Identity     rawIdentity      `yaml:"identity"`
	AWS          rawAWS           `yaml:"aws"`
	GitLab       *rawGitLab       `yaml:"gitlab"`
	StaticTokens []rawStaticToken `yaml:"staticTokens"`
	Listen       rawListen        `yaml:"listen"`
	Rules        []rawRule        `yaml:"rules"`
}

type rawIdentity struct {
	Certificate   string     `yaml:"certificate"`
	Key           string     `yaml:"key"`
	Intermediates string     `yaml:"intermediates"`
	CA            *rawCA     `yaml:"ca"`
	Enroll        *rawEnroll `yaml:"enroll"`
	RenewBefore   string     `yaml:"renewBefore"`
}

type rawCA struct {
	URL  string `yaml:"url"`
	Root string `yaml:"root"`
}

type rawEnroll struct {
	TokenFile string   `yaml:"tokenFile"`
	Subject   string   `yaml:"subject"`
	SANs      []string `yaml:"sans"`
}

type rawAWS struct {
	TrustAnchorARN    string   `yaml:"trustAnchorArn"`
	Region            string   `yaml:"region"`
	Endpoint          string   `yaml:"endpoint"`
	CABundle          string   `yaml:"caBundle"`
	CreateSessionRate *float64 `yaml:"createSessionRate"`
}

type rawGitLab struct {
	URL           string       `yaml:"url"`
	JobTokenCache string       `yaml:"jobTokenCache"`
	RunnerIDs     []int64      `yaml:"runnerIds"`
	IDTokens      *rawIDTokens `yaml:"idTokens"`
}

type rawIDTokens struct {
	Issuer         string      `yaml:"issuer"`
	Audience       stringOrSeq `yaml:"audience"`
	JWKSMinRefresh string      `yaml:"jwksMinRefresh"`
}

type rawStaticToken struct {
	Name   string `yaml:"name"`
	SHA256 string `yaml:"sha256"`
}

type rawListen struct {
	ContainerCredentials stringOrSeq `yaml:"containerCredentials"`
	Relay                stringOrSeq `yaml:"relay"`
	SetupNetwork         bool        `yaml:"setupNetwork"`
	Socket               *rawSocket  `yaml:"socket"`
	Metrics              string      `yaml:"metrics"`
}

type rawSocket struct {
	Path  string `yaml:"path"`
	Mode  string `yaml:"mode"`
	Group string `yaml:"group"`
}

type rawRule struct {
	Name        string                 `yaml:"name"`
	Identity    stringOrSeq            `yaml:"identity"`
	Match       map[string]stringOrSeq `yaml:"match"`
	RoleARN     string                 `yaml:"roleArn"`
	ProfileARN  string                 `yaml:"profileArn"`
	Duration    string                 `yaml:"duration"`
	SessionName string                 `yaml:"sessionName"`
}

// stringOrSeq is a YAML scalar or a sequence of scalars.
type stringOrSeq []string

func (s *stringOrSeq) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		*s = []string{n.Value}
		return nil
	case yaml.SequenceNode:
		out := make([]string, 0, len(n.Content))
		for _, c := range n.Content {
			if c.Kind != yaml.ScalarNode {
				return fmt.Errorf("line %d: expected a value, found a %s", c.Line, kindName(c.Kind))
			}
			out = append(out, c.Value)
		}
		*s = out
		return nil
	}
	return fmt.Errorf("line %d: expected a value or a list of values, found a %s", n.Line, kindName(n.Kind))
}

func kindName(k yaml.Kind) string {
	switch k {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "list"
	}
	return "value"
}

// LoadConfig reads and validates agent.yaml at path; relative paths in it
// are resolved against the file's directory.
func LoadConfig(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading the agent configuration: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxConfigFile+1))
	if err != nil {
		return nil, fmt.Errorf("reading the agent configuration: %w", err)
	}
	if len(data) > maxConfigFile {
		return nil, &ConfigError{File: path, Err: fmt.Errorf("larger than %d bytes", maxConfigFile)}
	}
	return ParseConfig(data, path, filepath.Dir(path))
}

// ParseConfig decodes an agent configuration strictly (an unknown field is
// an error naming its line) and validates it: paths, ARNs, durations,
// listen addresses the SDKs accept, identities and rules. name is used in
// messages; dir resolves relative paths.
func ParseConfig(data []byte, name, dir string) (*Config, error) {
	p := &configParser{file: name, dir: dir}
	var raw rawConfig
	doc, probs := yamlfile.Decode(data, &raw, allowedFields)
	if len(probs) > 0 {
		return nil, yamlfile.Problems(name, probs)
	}
	if doc == nil {
		return nil, &ConfigError{File: name, Err: errors.New("the configuration is empty; it needs identity, aws, listen and rules (docs/agent.md)")}
	}
	p.doc = doc
	return p.build(&raw)
}

type configParser struct {
	file, dir string
	doc       *yamlfile.Doc
}

func allowedFields(typ string) string {
	switch strings.TrimPrefix(typ, "agent.") {
	case "rawConfig":
		return "identity, aws, gitlab, staticTokens, listen, rules"
	case "rawIdentity":
		return "certificate, key, intermediates, ca, enroll, renewBefore"
	case "rawCA":
		return "url, root"
	case "rawEnroll":
		return "tokenFile, subject, sans"
	case "rawAWS":
		return "trustAnchorArn, region, endpoint, caBundle, createSessionRate"
	case "rawGitLab":
		return "url, jobTokenCache, runnerIds, idTokens"
	case "rawIDTokens":
		return "issuer, audience, jwksMinRefresh"
	case "rawStaticToken":
		return "name, sha256"
	case "rawListen":
		return "containerCredentials, relay, setupNetwork, socket, metrics"
	case "rawSocket":
		return "path, mode, group"
	case "rawRule":
		return "name, identity, match, roleArn, profileArn, duration, sessionName"
	}
	return "see docs/agent.md"
}

func (p *configParser) fail(err error, path ...any) *ConfigError {
	return &ConfigError{File: p.file, Line: p.doc.Line(path...), Field: yamlfile.Field(path...), Err: err}
}

func (p *configParser) failf(format string, args ...any) func(path ...any) *ConfigError {
	return func(path ...any) *ConfigError { return p.fail(fmt.Errorf(format, args...), path...) }
}

func (p *configParser) path(s string) string {
	if s == "" || filepath.IsAbs(s) {
		return s
	}
	return filepath.Join(p.dir, s)
}

func (p *configParser) duration(s string, def time.Duration, path ...any) (time.Duration, error) {
	if s == "" {
		return def, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, p.fail(fmt.Errorf("%q is not a positive duration such as 30s, 15m or 1h", s), path...)
	}
	return d, nil
}

func (p *configParser) build(raw *rawConfig) (*Config, error) {
	c := &Config{File: p.file}
	var err error
	if c.Identity, err = p.identity(&raw.Identity); err != nil {
		return nil, err
	}
	if c.AWS, err = p.aws(&raw.AWS); err != nil {
		return nil, err
	}
	if raw.GitLab != nil {
		if c.GitLab, err = p.gitlab(raw.GitLab); err != nil {
			return nil, err
		}
	}
	if c.Static, err = p.static(raw.StaticTokens); err != nil {
		return nil, err
	}
	if c.Listen, err = p.listen(&raw.Listen); err != nil {
		return nil, err
	}
	if c.Rules, err = p.rules(raw.Rules, c); err != nil {
		return nil, err
	}
	return c, nil
}

func (p *configParser) identity(r *rawIdentity) (IdentityConfig, error) {
	id := IdentityConfig{Certificate: p.path(r.Certificate), Key: p.path(r.Key), Intermediates: p.path(r.Intermediates)}
	if r.Certificate == "" {
		return id, p.failf("required: the runner's certificate file (the agent renews it and reads it for each new session)")("identity", "certificate")
	}
	if r.Key == "" {
		return id, p.failf("required: the runner's private key file, readable only by the agent's user")("identity", "key")
	}
	if r.CA != nil {
		if r.CA.URL == "" || !strings.HasPrefix(r.CA.URL, "https://") {
			return id, p.failf("%q: the CA's URL, https://host:port", r.CA.URL)("identity", "ca", "url")
		}
		if r.CA.Root == "" {
			return id, p.failf("required: the CA's root certificate, which the agent trusts to renew")("identity", "ca", "root")
		}
		id.CAURL, id.Root = r.CA.URL, p.path(r.CA.Root)
	}
	if r.Enroll != nil {
		if r.CA == nil {
			return id, p.failf("enrolling needs the CA: add identity.ca with url and root")("identity", "enroll")
		}
		if r.Enroll.TokenFile == "" {
			return id, p.failf("required: a file holding a one-time token from the CA (keyless ca token ... --out FILE)")("identity", "enroll", "tokenFile")
		}
		id.TokenFile, id.Subject, id.SANs = p.path(r.Enroll.TokenFile), r.Enroll.Subject, r.Enroll.SANs
	}
	var err error
	if id.RenewBefore, err = p.duration(r.RenewBefore, 0, "identity", "renewBefore"); err != nil {
		return id, err
	}
	if id.RenewBefore != 0 && r.CA == nil {
		return id, p.failf("renewing needs the CA: add identity.ca with url and root")("identity", "renewBefore")
	}
	return id, nil
}

func (p *configParser) aws(r *rawAWS) (AWSConfig, error) {
	a := AWSConfig{TrustAnchorARN: r.TrustAnchorARN, Region: r.Region, Endpoint: r.Endpoint, CABundle: p.path(r.CABundle), Rate: DefaultRate}
	if r.TrustAnchorARN == "" {
		return a, p.failf("required: the Roles Anywhere trust anchor that trusts the runner's CA")("aws", "trustAnchorArn")
	}
	if _, err := rolesanywhere.ParseTrustAnchorARN(r.TrustAnchorARN); err != nil {
		return a, p.fail(err, "aws", "trustAnchorArn")
	}
	if r.Region != "" && !rolesanywhere.ValidRegion(r.Region) {
		return a, p.failf("%q is not an AWS region name such as us-east-1", r.Region)("aws", "region")
	}
	if r.Endpoint != "" {
		if _, err := rolesanywhere.ParseEndpoint(r.Endpoint); err != nil {
			return a, p.fail(err, "aws", "endpoint")
		}
	}
	if r.CreateSessionRate != nil {
		// AWS allows 10 CreateSession calls per second per account and
		// region; more is refused, so more is never useful.
		if *r.CreateSessionRate <= 0 || *r.CreateSessionRate > 10 {
			return a, p.failf("%v: between 0 and 10 per second (AWS's CreateSession quota is 10/s)", *r.CreateSessionRate)("aws", "createSessionRate")
		}
		a.Rate = *r.CreateSessionRate
	}
	return a, nil
}

func (p *configParser) gitlab(r *rawGitLab) (*GitLabConfig, error) {
	g := &GitLabConfig{URL: strings.TrimSuffix(r.URL, "/"), RunnerIDs: r.RunnerIDs}
	for i, id := range r.RunnerIDs {
		if id <= 0 {
			return nil, p.failf("%d: a runner id is a positive number (GitLab's runner.id)", id)("gitlab", "runnerIds", i)
		}
	}
	if r.URL != "" {
		if err := checkBaseURL(r.URL); err != nil {
			return nil, p.fail(err, "gitlab", "url")
		}
	}
	var err error
	if g.JobTokenCache, err = p.duration(r.JobTokenCache, DefaultJobTokenCache, "gitlab", "jobTokenCache"); err != nil {
		return nil, err
	}
	if g.JobTokenCache > 5*time.Minute {
		return nil, p.failf("%s: at most 5m; a job token dies with its job and the agent should notice soon", r.JobTokenCache)("gitlab", "jobTokenCache")
	}
	if t := r.IDTokens; t != nil {
		if err := checkBaseURL(t.Issuer); err != nil {
			return nil, p.fail(err, "gitlab", "idTokens", "issuer")
		}
		if len(t.Audience) == 0 || slices.Contains(t.Audience, "") {
			return nil, p.failf("required: the aud the jobs' id_tokens ask for (id_tokens: {AWS_TOKEN: {aud: keyless}})")("gitlab", "idTokens", "audience")
		}
		it := &IDTokensConfig{Issuer: strings.TrimSuffix(t.Issuer, "/"), Audiences: t.Audience}
		if it.MinRefresh, err = p.duration(t.JWKSMinRefresh, DefaultJWKSMinRefresh, "gitlab", "idTokens", "jwksMinRefresh"); err != nil {
			return nil, err
		}
		g.IDTokens = it
	}
	if g.URL == "" && g.IDTokens == nil {
		return nil, p.failf("give url (job tokens), idTokens (id_tokens JWTs), or both")("gitlab")
	}
	return g, nil
}

func checkBaseURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return fmt.Errorf("%q is not a base URL such as https://gitlab.example.com (no user, query or fragment)", s)
	}
	switch u.Scheme {
	case "https":
	case "http":
		// Plain HTTP would let anyone on the path forge GitLab's
		// answers; only a loopback GitLab (tests, keyless dev) may use it.
		if a, err := netip.ParseAddr(u.Hostname()); err != nil || !a.Unmap().IsLoopback() {
			return fmt.Errorf("%q: use https (plain http only on loopback): GitLab's answers decide who gets AWS credentials", s)
		}
	default:
		return fmt.Errorf("%q is not an https:// URL", s)
	}
	return nil
}

func (p *configParser) static(rs []rawStaticToken) ([]authz.StaticToken, error) {
	var out []authz.StaticToken
	seen := map[string]bool{}
	for i, r := range rs {
		if r.Name == "" || !validName(r.Name) {
			return nil, p.failf("%q: a name of letters, digits, '.', '_' or '-' (rules match it as token)", r.Name)("staticTokens", i, "name")
		}
		if seen[r.Name] {
			return nil, p.failf("%q is used twice", r.Name)("staticTokens", i, "name")
		}
		seen[r.Name] = true
		sum, err := hex.DecodeString(r.SHA256)
		if err != nil || len(sum) != 32 {
			return nil, p.failf("the token's SHA-256 as 64 hex digits (keyless agent hash-token < TOKEN_FILE); never the token itself")("staticTokens", i, "sha256")
		}
		t := authz.StaticToken{Name: r.Name}
		copy(t.SHA256[:], sum)
		out = append(out, t)
	}
	return out, nil
}

func validName(s string) bool {
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return false
		}
	}
	return len(s) <= 64
}

// containerHosts are the addresses the SDKs accept over plain HTTP for the
// container-credentials endpoint, besides loopback.
var containerHosts = []netip.Addr{
	netip.MustParseAddr("169.254.170.2"),
	netip.MustParseAddr("169.254.170.23"),
	netip.MustParseAddr("fd00:ec2::23"),
}

func (p *configParser) listen(r *rawListen) (ListenConfig, error) {
	l := ListenConfig{SetupNetwork: r.SetupNetwork, Metrics: r.Metrics}
	seen := map[string]bool{}
	for i, a := range r.ContainerCredentials {
		ap, err := netip.ParseAddrPort(a)
		if err != nil {
			return l, p.failf("%q: an IP address and port, such as 169.254.170.2:80 or 127.0.0.1:9911", a)("listen", "containerCredentials", i)
		}
		if !ap.Addr().IsLoopback() && !slices.Contains(containerHosts, ap.Addr()) {
			return l, p.failf("%s: the AWS SDKs fetch container credentials over plain http only from loopback, 169.254.170.2, 169.254.170.23 or fd00:ec2::23, "+
				"and the endpoint must not be reachable from the network", ap.Addr())("listen", "containerCredentials", i)
		}
		if seen[ap.String()] {
			return l, p.failf("%s is listed twice", a)("listen", "containerCredentials", i)
		}
		seen[ap.String()] = true
		l.ContainerCredentials = append(l.ContainerCredentials, ap.String())
	}
	for i, a := range r.Relay {
		ap, err := netip.ParseAddrPort(a)
		if err != nil {
			return l, p.failf("%q: an IP address and port for keyless agent relay to reach, such as 127.0.0.1:9912 (Docker Desktop) or 172.17.0.1:9912 (docker0 on Linux)", a)("listen", "relay", i)
		}
		ad := ap.Addr().Unmap()
		if ad.IsUnspecified() || ad.IsMulticast() || ad.Zone() != "" {
			// Every interface would include the LAN's: the relay
			// listener belongs on loopback or a bridge only.
			return l, p.failf("%s: not every interface: loopback (127.0.0.1:9912, which Docker Desktop's host.docker.internal reaches) "+
				"or this host's address on a Docker bridge (docker0's, 172.17.0.1:9912 by default), never one the LAN reaches", a)("listen", "relay", i)
		}
		if slices.Contains(containerHosts, ad) {
			return l, p.failf("%s is a container-credentials address: list it under containerCredentials; the relay listener is where keyless agent relay forwards to, "+
				"loopback or a bridge's address", a)("listen", "relay", i)
		}
		if seen[ap.String()] {
			return l, p.failf("%s is listed twice", a)("listen", "relay", i)
		}
		seen[ap.String()] = true
		l.Relay = append(l.Relay, ap.String())
	}
	if r.SetupNetwork && !slices.ContainsFunc(l.ContainerCredentials, func(a string) bool { return !netip.MustParseAddrPort(a).Addr().IsLoopback() }) {
		return l, p.failf("there is no link-local listener to set up: add 169.254.170.2:80 to containerCredentials")("listen", "setupNetwork")
	}
	if s := r.Socket; s != nil {
		if s.Path == "" {
			return l, p.failf("required: where the local API's unix socket goes, such as /run/keyless/agent.sock")("listen", "socket", "path")
		}
		sc := &SocketConfig{Path: p.path(s.Path), Mode: 0o600, Group: s.Group}
		if s.Mode != "" {
			m, err := strconv.ParseUint(s.Mode, 8, 32)
			// Others never get the socket: whoever connects gets
			// credentials by the rules for its uid.
			if err != nil || m&^0o770 != 0 {
				return l, p.failf("%q: an octal mode such as \"0660\", without bits for others", s.Mode)("listen", "socket", "mode")
			}
			sc.Mode = os.FileMode(m)
		}
		l.Socket = sc
	}
	if r.Metrics != "" {
		ap, err := netip.ParseAddrPort(r.Metrics)
		if err != nil || !ap.Addr().IsLoopback() {
			return l, p.failf("%q: a loopback address and port, such as 127.0.0.1:9464 (metrics name roles and jobs)", r.Metrics)("listen", "metrics")
		}
		l.Metrics = ap.String()
	}
	if len(l.ContainerCredentials) == 0 && len(l.Relay) == 0 && l.Socket == nil {
		return l, p.failf("no listener: add containerCredentials (jobs), relay (jobs through keyless agent relay) or socket (host tools)")("listen")
	}
	return l, nil
}

func (p *configParser) rules(rs []rawRule, c *Config) ([]authz.Rule, error) {
	if len(rs) == 0 {
		return nil, p.failf("no rules: the agent denies everything by default, so it needs at least one rule (docs/agent.md)")("rules")
	}
	anchor, _ := rolesanywhere.ParseTrustAnchorARN(c.AWS.TrustAnchorARN)
	names := map[string]bool{}
	var out []authz.Rule
	for i, r := range rs {
		at := func(field string) []any { return []any{"rules", i, field} }
		if r.Name == "" || !validName(r.Name) {
			return nil, p.failf("%q: each rule needs a name of letters, digits, '.', '_' or '-' (the audit log names it)", r.Name)(at("name")...)
		}
		if names[r.Name] {
			return nil, p.failf("%q names two rules", r.Name)(at("name")...)
		}
		names[r.Name] = true
		if len(r.Identity) == 0 {
			return nil, p.failf("required: which identities the rule accepts: %s", kindList())(at("identity")...)
		}
		var kinds []authz.Kind
		for _, k := range r.Identity {
			kind := authz.Kind(k)
			if !slices.Contains(allKinds, kind) {
				return nil, p.failf("%q: one of %s", k, kindList())(at("identity")...)
			}
			if why := c.unconfigured(kind); why != "" {
				return nil, p.failf("%s, but %s", k, why)(at("identity")...)
			}
			kinds = append(kinds, kind)
		}
		if len(r.Match) == 0 {
			return nil, p.failf("required: a rule with no match would give its role to every caller; say which projects, such as project_path: [\"group/app\", \"group/infra\"] or namespace_path: group")(at("match")...)
		}
		match := map[string][]string{}
		for k, v := range r.Match {
			if len(v) == 0 {
				return nil, p.failf("%s: give at least one value", k)("rules", i, "match", k)
			}
			match[k] = v
		}
		role, err := rolesanywhere.ParseRoleARN(r.RoleARN)
		if err != nil {
			return nil, p.fail(err, at("roleArn")...)
		}
		profile, err := rolesanywhere.ParseProfileARN(r.ProfileARN)
		if err != nil {
			return nil, p.fail(err, at("profileArn")...)
		}
		if profile.Account != anchor.Account || profile.Region != anchor.Region || profile.Partition != anchor.Partition {
			return nil, p.failf("the profile is in %s/%s, the trust anchor in %s/%s: Roles Anywhere needs both in one account and region",
				profile.Account, profile.Region, anchor.Account, anchor.Region)(at("profileArn")...)
		}
		if role.Account != anchor.Account {
			return nil, p.failf("the role is in account %s, the trust anchor in %s", role.Account, anchor.Account)(at("roleArn")...)
		}
		d, err := p.duration(r.Duration, broker.DefaultDuration, at("duration")...)
		if err != nil {
			return nil, err
		}
		if d < broker.MinDuration {
			return nil, p.failf("%s is too short: the agent hands out credentials only with at least %s left (botocore refreshes %s before expiry), "+
				"so sessions must last at least %s; the default is %s",
				d, broker.DefaultMargin, broker.DefaultMargin, broker.MinDuration, broker.DefaultDuration)(at("duration")...)
		}
		if d > MaxDuration || d%time.Second != 0 {
			return nil, p.failf("%s: whole seconds up to %s (Roles Anywhere's longest session)", d, MaxDuration)(at("duration")...)
		}
		if families(kinds) > 1 {
			// Each caller gets a session of its own, named by what
			// identifies it: a job, a token, a uid. One rule cannot name
			// all three.
			return nil, p.failf("a rule is for GitLab jobs, static tokens or unix peers, not a mix: give each its own rule")(at("identity")...)
		}
		tmpl := r.SessionName
		if tmpl == "" {
			tmpl = defaultSessionName(kinds)
		}
		out = append(out, authz.Rule{Name: r.Name, Kinds: kinds, Match: match, RoleARN: r.RoleARN, ProfileARN: r.ProfileARN, Duration: d, SessionName: tmpl})
	}
	if _, err := authz.NewPolicy(out); err != nil {
		var re *authz.RuleError
		if errors.As(err, &re) {
			path := []any{"rules", re.Index}
			if re.Field != "" {
				if _, ok := rs[re.Index].Match[re.Field]; ok {
					path = append(path, "match", re.Field)
				} else {
					path = append(path, "sessionName")
				}
			}
			return nil, p.fail(re.Err, path...)
		}
		return nil, p.fail(err, "rules")
	}
	return out, nil
}

var allKinds = []authz.Kind{authz.JobToken, authz.IDToken, authz.Static, authz.Peer}

func kindList() string {
	var s []string
	for _, k := range allKinds {
		s = append(s, string(k))
	}
	return strings.Join(s, ", ")
}

// unconfigured says why an identity kind cannot be verified with c, or "".
func (c *Config) unconfigured(k authz.Kind) string {
	switch k {
	case authz.JobToken:
		if c.GitLab == nil || c.GitLab.URL == "" {
			return "gitlab.url is not set: job tokens are verified with GitLab's job API"
		}
	case authz.IDToken:
		if c.GitLab == nil || c.GitLab.IDTokens == nil {
			return "gitlab.idTokens is not set: id_tokens JWTs need the issuer and audience"
		}
	case authz.Static:
		if len(c.Static) == 0 {
			return "staticTokens is empty"
		}
	case authz.Peer:
		if c.Listen.Socket == nil {
			return "listen.socket is not set: unix-peer identities come from the local API's socket"
		}
	}
	return ""
}

// families counts the kinds of caller among kinds: GitLab jobs (either
// token), static tokens, unix peers.
func families(kinds []authz.Kind) int {
	var gitlab, static, peer int
	for _, k := range kinds {
		switch k {
		case authz.JobToken, authz.IDToken:
			gitlab = 1
		case authz.Static:
			static = 1
		case authz.Peer:
			peer = 1
		}
	}
	return gitlab + static + peer
}

// defaultSessionName names sessions after the caller, so CloudTrail does:
// the job, the static token's name, the uid.
func defaultSessionName(kinds []authz.Kind) string {
	switch kinds[0] {
	case authz.Static:
		return "keyless-{token}"
	case authz.Peer:
		return "keyless-uid-{uid}"
	}
	return "gitlab-{project_id}-{job_id}"
}
