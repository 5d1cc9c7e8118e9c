package ca

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/mail"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"go.yaml.in/yaml/v3"

	"github.com/keyless-dev/keyless/internal/caproto"
	"github.com/keyless-dev/keyless/internal/pki"
)

// Layout of a CA directory, as `keyless ca init` writes it (the names
// follow step-ca's, so people find their way around).
const (
	ConfigFile       = "config/ca.yaml"
	RootCertFile     = "certs/root_ca.crt"
	IntermediateFile = "certs/intermediate_ca.crt"
	RootKeyFile      = "secrets/root_ca_key"
	IntermediateKey  = "secrets/intermediate_ca_key"
	DatabaseFile     = "db/keyless.db"
)

// Policy defaults. Lifetimes are short because a certificate cannot be
// taken back once copied, but 7 days must fit: that is what runners in
// the reference setup ask for, and step-ca's 24 h maximum is the first
// thing its users trip over.
const (
	DefaultLifetime    = 24 * time.Hour
	DefaultMinLifetime = 5 * time.Minute
	DefaultMaxLifetime = 7 * 24 * time.Hour
)

// Config is a CA's configuration file (config/ca.yaml), decoded strictly.
type Config struct {
	// Dir is the CA directory; relative paths below are resolved in it.
	Dir string `yaml:"-"`

	Name     string   `yaml:"name"`
	Address  string   `yaml:"address"`
	DNSNames []string `yaml:"dnsNames"`
	Root     string   `yaml:"root"`
	Crt      string   `yaml:"crt"`
	Key      string   `yaml:"key"`
	RootKey  string   `yaml:"rootKey,omitempty"`
	DB       string   `yaml:"db"`
	// CRL lifetime: how long a published CRL stays valid (nextUpdate).
	CRLValidity Duration `yaml:"crlValidity,omitempty"`

	Provisioners []ProvisionerConfig `yaml:"provisioners"`
}

// ProvisionerConfig is a JWK provisioner and its policy.
type ProvisionerConfig struct {
	Name         string `yaml:"name"`
	Type         string `yaml:"type"`
	Key          string `yaml:"key"`          // public JWK, JSON
	EncryptedKey string `yaml:"encryptedKey"` // private JWK, step's JWE
	// Allow lists the subject common names and SANs this provisioner may
	// put in a certificate; "*" matches any run of characters within one
	// part of a name: a DNS label, a URI path segment ("gitlab-runner-*",
	// see matchName). A plain pattern is for DNS names and the common
	// name; "uri:", "email:" and "ip:" patterns for those kinds of SAN
	// ("uri:spiffe://ci/*"). "*" alone allows anything. Empty means
	// nothing.
	Allow           []string `yaml:"allow"`
	DefaultDuration Duration `yaml:"defaultDuration,omitempty"`
	MinDuration     Duration `yaml:"minDuration,omitempty"`
	MaxDuration     Duration `yaml:"maxDuration,omitempty"`
	// RenewAfterExpiry lets an expired certificate renew for this long
	// after it expired; zero (the default) refuses: an expired
	// certificate's key may be long gone from the machine it was for.
	RenewAfterExpiry Duration `yaml:"renewAfterExpiry,omitempty"`
	DisableRenewal   bool     `yaml:"disableRenewal,omitempty"`
	// ServerAuth adds the serverAuth extended key usage; certificates are
	// for clientAuth only by default, which is all Roles Anywhere needs.
	ServerAuth bool `yaml:"serverAuth,omitempty"`

	jwk *jose.JSONWebKey
}

// Duration is a time.Duration written as "24h" in YAML.
type Duration time.Duration

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil || v < 0 {
		return fmt.Errorf("line %d: %q is not a duration such as 24h or 5m", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML implements yaml.Marshaler.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// LoadConfig reads dir/config/ca.yaml and validates it.
func LoadConfig(dir string) (*Config, error) {
	path := filepath.Join(dir, ConfigFile)
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading CA configuration: %w", err)
	}
	cfg, err := ParseConfig(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	cfg.Dir = dir
	return cfg, nil
}

// ParseConfig decodes a configuration strictly and validates it.
func ParseConfig(data []byte) (*Config, error) {
	var cfg Config
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("empty configuration")
		}
		return nil, errors.New(strings.TrimPrefix(strings.ReplaceAll(err.Error(), "yaml: unmarshal errors:\n  ", ""), "yaml: "))
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &cfg, nil
}

func (c *Config) validate() error {
	switch {
	case c.Name == "":
		return errors.New("name: the CA needs a name")
	case c.Address == "":
		return errors.New("address: the CA needs an address to listen on, such as :9000")
	case len(c.DNSNames) == 0:
		return errors.New("dnsNames: the CA needs at least one name or IP clients reach it by")
	case c.Root == "" || c.Crt == "" || c.Key == "" || c.DB == "":
		return errors.New("root, crt, key and db are required")
	case len(c.Provisioners) == 0:
		return errors.New("provisioners: at least one provisioner is needed")
	}
	seen := map[string]bool{}
	for i := range c.Provisioners {
		p := &c.Provisioners[i]
		field := fmt.Sprintf("provisioners[%d]", i)
		if p.Name == "" || seen[p.Name] {
			return fmt.Errorf("%s.name: empty or used twice", field)
		}
		seen[p.Name] = true
		if p.Type != "JWK" {
			return fmt.Errorf("%s.type: %q is not supported (only JWK)", field, p.Type)
		}
		var jwk jose.JSONWebKey
		if err := json.Unmarshal([]byte(p.Key), &jwk); err != nil || !jwk.IsPublic() || !jwk.Valid() {
			return fmt.Errorf("%s.key: not a public JWK", field)
		}
		if jwk.KeyID == "" {
			kid, err := caproto.Thumbprint(&jwk)
			if err != nil {
				return fmt.Errorf("%s.key: %w", field, err)
			}
			jwk.KeyID = kid
		}
		p.jwk = &jwk
		if p.DefaultDuration == 0 {
			p.DefaultDuration = Duration(DefaultLifetime)
		}
		if p.MinDuration == 0 {
			p.MinDuration = Duration(DefaultMinLifetime)
		}
		if p.MaxDuration == 0 {
			p.MaxDuration = Duration(DefaultMaxLifetime)
		}
		if p.MinDuration > p.DefaultDuration || p.DefaultDuration > p.MaxDuration {
			return fmt.Errorf("%s: durations must be minDuration <= defaultDuration <= maxDuration (got %s, %s, %s)", field,
				time.Duration(p.MinDuration), time.Duration(p.DefaultDuration), time.Duration(p.MaxDuration))
		}
		for _, pat := range p.Allow {
			kind, glob := splitPattern(pat)
			if glob == "" {
				return fmt.Errorf("%s.allow: empty pattern %q", field, pat)
			}
			if kind == pki.NameURI && (!strings.Contains(glob, "://") || strings.ContainsAny(glob, "?#@")) {
				return fmt.Errorf("%s.allow: URI pattern %q must be scheme://host/path, with no user, query or fragment (uri:spiffe://ci/runner/*)", field, pat)
			}
			if kind == pki.NameEmail && !strings.Contains(glob, "@") {
				return fmt.Errorf("%s.allow: email pattern %q must hold an @ (email:*@ci.example.com)", field, pat)
			}
		}
	}
	if c.CRLValidity == 0 {
		c.CRLValidity = Duration(24 * time.Hour)
	}
	return nil
}

// Path resolves a path from the configuration against the CA directory.
func (c *Config) Path(p string) string {
	if filepath.IsAbs(p) || c.Dir == "" {
		return p
	}
	return filepath.Join(c.Dir, p)
}

// Marshal encodes the configuration as YAML with a header comment.
func (c *Config) Marshal() ([]byte, error) {
	var b bytes.Buffer
	b.WriteString("# keyless CA configuration. Paths are relative to the CA directory.\n")
	b.WriteString("# Reload a running CA after editing: kill -HUP <pid>.\n")
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(c); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// provisioner returns the provisioner with this name, or nil.
func (c *Config) provisioner(name string) *ProvisionerConfig {
	for i := range c.Provisioners {
		if c.Provisioners[i].Name == name {
			return &c.Provisioners[i]
		}
	}
	return nil
}

// provisionerByKeyID is the one provisioner whose key has key id kid;
// nil when none has, or when more than one shares the key.
func (c *Config) provisionerByKeyID(kid string) *ProvisionerConfig {
	if kid == "" {
		return nil
	}
	var found *ProvisionerConfig
	for i := range c.Provisioners {
		if p := &c.Provisioners[i]; p.jwk != nil && p.jwk.KeyID == kid {
			if found != nil {
				return nil
			}
			found = p
		}
	}
	return found
}

// patternKinds are the prefixes an allow pattern may carry to match a
// kind of name other than DNS names and the common name.
var patternKinds = []string{pki.NameDNS, pki.NameIP, pki.NameURI, pki.NameEmail}

// splitPattern returns the kind a pattern is for and the glob: a pattern
// without a known "kind:" prefix is for DNS names and the common name.
func splitPattern(pat string) (kind, glob string) {
	for _, k := range patternKinds {
		if g, ok := strings.CutPrefix(pat, k+":"); ok {
			return k, g
		}
	}
	return pki.NameDNS, pat
}

// Allows reports whether the provisioner's policy lets it put name, of
// the given kind (pki.NameCN, or pki.NameKind(name) for a SAN), in a certificate.
// A pattern matches only its own kind of name: "*.runners.example.com"
// matches DNS names (and common names), never a URI or an email address
// that happens to end the same way; "uri:spiffe://ci/*" matches URIs.
// Patterns match part by part (see matchName): a '*' never crosses a dot
// of a host name or a slash of a path. The pattern "*" alone allows any name of any kind. A DNS name must be a
// valid host name and a common name may hold no control characters,
// whatever the patterns.
func (p *ProvisionerConfig) Allows(kind, name string) bool {
	switch kind {
	case pki.NameDNS:
		if !validDNSName(name) {
			return false
		}
	case pki.NameCN:
		if name == "" || strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			return false
		}
	}
	for _, pat := range p.Allow {
		if pat == "*" {
			return true
		}
		pk, glob := splitPattern(pat)
		if pk == kind || pk == pki.NameDNS && kind == pki.NameCN {
			if matchName(pk, glob, name) {
				return true
			}
		}
	}
	return false
}

// validDNSName reports whether n is a host name: dot-separated labels of
// letters, digits, hyphens and underscores, each 1 to 63 long, at most
// 253 in all, not starting or ending with a hyphen.
func validDNSName(n string) bool {
	if n == "" || len(n) > 253 {
		return false
	}
	for _, label := range strings.Split(n, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// globMatch matches s against a pattern where '*' stands for a run of
// one or more bytes for each of which part is true (so with labelChar, a
// '*' stays within one DNS label), and everything else for itself.
func globMatch(pattern, s string, part func(byte) bool) bool {
	// next[j] says whether pattern[i+1:] matches s[j:]; cur is row i.
	// Filled from the pattern's end: time len(pattern)*len(s), whatever
	// the stars.
	next := make([]bool, len(s)+1)
	cur := make([]bool, len(s)+1)
	next[len(s)] = true
	for i := len(pattern) - 1; i >= 0; i-- {
		for j := len(s); j >= 0; j-- {
			if pattern[i] == '*' {
				// Take s[j], then end the run or go on with it.
				cur[j] = j < len(s) && part(s[j]) && (next[j+1] || cur[j+1])
			} else {
				cur[j] = j < len(s) && pattern[i] == s[j] && next[j+1]
			}
		}
		next, cur = cur, next
	}
	return next[0]
}

// labelChar is what a '*' may stand for in a host name or common name:
// the letters, digits, '-' and '_' of one DNS label.
func labelChar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_'
}

// except is what a '*' may stand for within one part of a name whose
// parts stop separates.
func except(stop string) func(byte) bool {
	return func(c byte) bool { return strings.IndexByte(stop, c) < 0 }
}

// matchName matches a name of one kind against a glob of the same kind,
// part by part, so that a '*' (one or more characters) never stretches
// across a part:
//   - a DNS name or common name: '*' stands for letters, digits, '-' and
//     '_' within one label ("*.runners.example.com" matches
//     a.runners.example.com, not a.b.runners.example.com or
//     .runners.example.com; "gitlab-runner-*" not gitlab-runner-x.evil.com
//     or the common name gitlab-runner-x,OU=admin);
//   - an IP address: '*' stays within a dotted or colon-separated group;
//   - an email address: the bare address only (no display name or
//     comment), local part and domain matched apart, '*' within a label
//     of the domain;
//   - a URI: scheme://host/path only, with no user, port, query or
//     fragment, no "." or ".." segments and nothing escaped; the scheme
//     must be the pattern's, '*' stays within a label of the host (never
//     a port or an IPv6 literal) and a segment of the path.
func matchName(kind, glob, name string) bool {
	switch kind {
	case pki.NameURI:
		return matchURI(glob, name)
	case pki.NameEmail:
		addr, err := mail.ParseAddress(name)
		if err != nil || addr.Name != "" || addr.Address != name {
			return false
		}
		gi, ni := strings.LastIndexByte(glob, '@'), strings.LastIndexByte(name, '@')
		if gi < 0 || ni < 0 {
			return false
		}
		return globMatch(glob[:gi], name[:ni], except("@")) && globMatch(glob[gi+1:], name[ni+1:], labelChar)
	case pki.NameIP:
		return globMatch(glob, name, except(".:"))
	default:
		return globMatch(glob, name, labelChar)
	}
}

// matchURI matches a URI against a "scheme://host/path" glob (see
// matchName).
func matchURI(glob, name string) bool {
	u, err := url.Parse(name)
	if err != nil || u.User != nil || u.Opaque != "" || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" ||
		u.RawFragment != "" || u.RawPath != "" || u.Port() != "" || u.Host == "" || strings.HasSuffix(u.Host, ":") || u.String() != name {
		return false
	}
	for _, seg := range strings.Split(strings.TrimPrefix(u.Path, "/"), "/") {
		if seg == "." || seg == ".." || (seg == "" && u.Path != "" && u.Path != "/") {
			return false
		}
	}
	scheme, rest, ok := strings.Cut(glob, "://")
	if !ok || !strings.EqualFold(scheme, u.Scheme) {
		return false
	}
	host, path := rest, ""
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		host, path = rest[:i], rest[i:]
	}
	return globMatch(host, u.Host, labelChar) && globMatch(path, u.Path, except("/"))
}
