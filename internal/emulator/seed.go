package emulator

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base32"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/keyless-dev/keyless/internal/iampolicy"
	"github.com/keyless-dev/keyless/internal/pki"
	"github.com/keyless-dev/keyless/internal/rolesanywhere"
	"github.com/keyless-dev/keyless/internal/yamlfile"
)

// Limits that AWS enforces on the resources a seed describes.
const (
	// maxBundleChars is AWS's limit on a trust anchor's
	// x509CertificateData in the current Roles Anywhere service model.
	// Older models said 8000, then 16000; the larger limit leaves room
	// for ML-DSA certificates, several kilobytes each.
	maxBundleChars = 204800
	// maxAnchorCertificates and maxAnchorCRLs are Roles Anywhere's quotas
	// "Certificates per trust anchor" and "CRLs per trust anchor" (not
	// adjustable).
	maxAnchorCertificates = 2
	maxAnchorCRLs         = 2
	// Profile durationSeconds and role MaxSessionDuration ranges, per the
	// Roles Anywhere and IAM APIs.
	minProfileDuration = 900
	maxSessionSeconds  = 43200
	minRoleDuration    = 3600
	defaultDuration    = 3600
	// maxSeedFile caps what is read for one seed, bundle, CRL or policy
	// file; real ones are a few kilobytes.
	maxSeedFile = 4 << 20
)

// Seed is a validated seed file: the account, region and resources the
// emulator serves. Build it with LoadSeed or ParseSeed; it is not modified
// afterwards, so it may be shared between goroutines.
type Seed struct {
	Account      string
	Region       string
	Partition    string
	TrustAnchors []*TrustAnchor
	Roles        []*Role
	Profiles     []*Profile
	// Operators are the access keys that may call the control plane
	// (Roles Anywhere's and IAM's APIs, and STS as themselves).
	Operators []*Operator
	// Warnings are things that load but may not do what the author
	// meant; the emulator command prints them at start.
	Warnings []string
}

// TrustAnchor is a Roles Anywhere trust anchor with a CERTIFICATE_BUNDLE
// source. A TrustAnchor is never changed once the emulator serves it: a
// change makes a new one (see resources).
type TrustAnchor struct {
	Name, ID, ARN string
	Enabled       bool
	Certificates  []*x509.Certificate
	// BundlePEM is the x509CertificateData as given, which GetTrustAnchor
	// answers with.
	BundlePEM string
	// CRLs are the seed's CRLs for this anchor; the emulator keeps them,
	// and CRLs imported later, as CRL resources of its own.
	CRLs                 []*CRL
	CreatedAt, UpdatedAt time.Time
	// NotificationSettings are the anchor's, as PutNotificationSettings
	// left them (nil: AWS's defaults).
	NotificationSettings []NotificationSetting

	roots  *x509.CertPool
	digest [32]byte
}

// NotificationSetting is a trust anchor's notification setting.
type NotificationSetting struct {
	Enabled      bool   `json:"enabled"`
	Event        string `json:"event"`
	Threshold    int    `json:"threshold,omitempty"`
	Channel      string `json:"channel,omitempty"`
	ConfiguredBy string `json:"configuredBy,omitempty"`
}

// setCertificates sets the bundle and what is derived from it. Called
// only on an anchor not yet published.
func (ta *TrustAnchor) setCertificates(certs []*x509.Certificate, pemData string) {
	ta.Certificates = certs
	ta.BundlePEM = pemData
	ta.roots = x509.NewCertPool()
	for _, c := range certs {
		ta.roots.AddCert(c)
	}
	ta.digest = bundleDigest(ta)
}

// pool returns the bundle as a certificate pool. Never nil: a nil pool
// would make x509 verification trust the system's CAs.
func (ta *TrustAnchor) pool() *x509.CertPool {
	if ta.roots == nil {
		return x509.NewCertPool()
	}
	return ta.roots
}

// CRL is a certificate revocation list imported for a trust anchor.
type CRL struct {
	Name, ID, ARN  string
	TrustAnchorARN string
	Enabled        bool
	// Source is the seed's file name, or "crls[N]"; for an imported CRL,
	// its name.
	Source string
	// Data is the list as imported (PEM, as AWS documents, or DER);
	// GetCrl answers with these bytes.
	Data                 []byte
	List                 *x509.RevocationList
	CreatedAt, UpdatedAt time.Time
	revoked              map[string]bool // serial numbers, decimal
}

// Role is an IAM role with its trust policy.
type Role struct {
	Name, ID, ARN      string
	Path               string
	Description        string
	MaxSessionDuration int
	TrustPolicy        *iampolicy.Policy
	// TrustPolicyDocument is the trust policy as given (GetRole answers
	// with it).
	TrustPolicyDocument string
	ManagedPolicyARNs   []string
	// InlinePolicies are the role's policies by name (PutRolePolicy).
	InlinePolicies      map[string]string
	PermissionsBoundary string
	Tags                []Tag
	CreatedAt           time.Time
}

// Profile is a Roles Anywhere profile.
type Profile struct {
	Name, ID, ARN             string
	Enabled                   bool
	RoleARNs                  []string
	DurationSeconds           int
	AcceptRoleSessionName     bool
	RequireInstanceProperties bool
	ManagedPolicyARNs         []string
	SessionPolicy             string
	AttributeMappings         []AttributeMapping
	CreatedBy                 string
	CreatedAt, UpdatedAt      time.Time
}

// AttributeMapping is one certificate field's mapping rules (a profile's
// attributeMappings).
type AttributeMapping struct {
	CertificateField string        `json:"certificateField"`
	MappingRules     []MappingRule `json:"mappingRules"`
}

// MappingRule names one specifier of a certificate field.
type MappingRule struct {
	Specifier string `json:"specifier"`
}

// Operator is a long-lived access key allowed to call the control plane,
// as an IAM user in the seed's account.
type Operator struct {
	Name            string
	AccessKeyID     string
	SecretAccessKey string
}

// SeedError is a problem in a seed file, located by file, line and field.
type SeedError = yamlfile.Error

// The raw seed: exactly the YAML fields, decoded strictly.
type rawSeed struct {
	Account      string        `yaml:"account"`
	Region       string        `yaml:"region"`
	TrustAnchors []rawAnchor   `yaml:"trustAnchors"`
	Roles        []rawRole     `yaml:"roles"`
	Profiles     []rawProfile  `yaml:"profiles"`
	Operators    []rawOperator `yaml:"operators"`
}

type rawOperator struct {
	Name                string `yaml:"name"`
	AccessKeyID         string `yaml:"accessKeyId"`
	SecretAccessKey     string `yaml:"secretAccessKey"`
	SecretAccessKeyFile string `yaml:"secretAccessKeyFile"`
}

type rawAnchor struct {
	Name                 string   `yaml:"name"`
	ID                   string   `yaml:"id"`
	Enabled              *bool    `yaml:"enabled"`
	CertificateBundle    string   `yaml:"certificateBundle"`
	CertificateBundlePem string   `yaml:"certificateBundlePem"`
	CRLs                 []string `yaml:"crls"`
}

type rawRole struct {
	Name                 string   `yaml:"name"`
	MaxSessionDuration   *int     `yaml:"maxSessionDuration"`
	AssumeRolePolicy     string   `yaml:"assumeRolePolicy"`
	AssumeRolePolicyFile string   `yaml:"assumeRolePolicyFile"`
	ManagedPolicyArns    []string `yaml:"managedPolicyArns"`
}

type rawProfile struct {
	Name                      string   `yaml:"name"`
	ID                        string   `yaml:"id"`
	Enabled                   *bool    `yaml:"enabled"`
	Roles                     []string `yaml:"roles"`
	DurationSeconds           *int     `yaml:"durationSeconds"`
	AcceptRoleSessionName     bool     `yaml:"acceptRoleSessionName"`
	RequireInstanceProperties bool     `yaml:"requireInstanceProperties"`
	ManagedPolicyArns         []string `yaml:"managedPolicyArns"`
	SessionPolicy             string   `yaml:"sessionPolicy"`
}

// SeedSource says where seed data came from.
type SeedSource struct {
	// Name is the file name used in error messages.
	Name string
	// Dir resolves relative paths in the seed (bundles, CRLs, policies).
	Dir string
	// Rand generates ids the seed leaves out; nil means crypto/rand.
	Rand io.Reader
}

// LoadSeed reads and validates the seed file at path; relative paths in
// it are resolved against the file's directory.
func LoadSeed(path string) (*Seed, error) {
	data, err := readLimited(path)
	if err != nil {
		return nil, fmt.Errorf("reading seed file: %w", err)
	}
	return ParseSeed(data, SeedSource{Name: path, Dir: filepath.Dir(path)})
}

func readLimited(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxSeedFile+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxSeedFile {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, maxSeedFile)
	}
	return data, nil
}

// ParseSeed decodes a seed document strictly (an unknown field is an error
// naming its line) and validates it: names, ids and durations within AWS's
// limits, bundles Roles Anywhere accepts (parseBundle: at most 2 CA
// certificates with keyCertSign, signed with SHA-256 or stronger, in at
// most 204,800 characters), at most 2 CRLs per trust anchor, role
// references, and trust policies, after substituting
// ${trustAnchors.NAME.arn}, ${profiles.NAME.arn} and ${roles.NAME.arn}. A
// trust policy must be one IAM's CreateRole accepts
// (iampolicy.ParseTrustPolicy): at most 2,048 characters without white
// space, every statement has a Principal, none has NotPrincipal, Resource
// or NotResource.
func ParseSeed(data []byte, src SeedSource) (*Seed, error) {
	if src.Name == "" {
		src.Name = "seed"
	}
	if src.Rand == nil {
		src.Rand = rand.Reader
	}
	p := &seedParser{src: src}
	var raw rawSeed
	doc, probs := yamlfile.Decode(data, &raw, allowedFields)
	if len(probs) > 0 {
		return nil, yamlfile.Problems(src.Name, probs)
	}
	if doc == nil {
		return nil, &SeedError{File: src.Name, Err: errors.New("the seed is empty; it needs account, region, trustAnchors, roles and profiles")}
	}
	p.doc = doc
	return p.build(&raw)
}

type seedParser struct {
	src      SeedSource
	doc      *yamlfile.Doc
	warnings []string
	// roles finds the seed's roles by name and by ARN for profiles,
	// which come after every role.
	roles map[string]*Role
}

func allowedFields(typ string) string {
	switch strings.TrimPrefix(typ, "emulator.") {
	case "rawSeed":
		return "account, region, operators, trustAnchors, roles, profiles"
	case "rawOperator":
		return "name, accessKeyId, secretAccessKey, secretAccessKeyFile"
	case "rawAnchor":
		return "name, id, enabled, certificateBundle, certificateBundlePem, crls"
	case "rawRole":
		return "name, maxSessionDuration, assumeRolePolicy, assumeRolePolicyFile, managedPolicyArns"
	case "rawProfile":
		return "name, id, enabled, roles, durationSeconds, acceptRoleSessionName, requireInstanceProperties, managedPolicyArns, sessionPolicy"
	}
	return "see docs/emulator.md"
}

func (p *seedParser) fail(err error, path ...any) *SeedError {
	return &SeedError{File: p.src.Name, Line: p.doc.Line(path...), Field: yamlfile.Field(path...), Err: err}
}

func (p *seedParser) build(raw *rawSeed) (*Seed, error) {
	s := &Seed{Account: raw.Account, Region: raw.Region}
	if !rolesanywhere.ValidAccount(raw.Account) {
		return nil, p.fail(fmt.Errorf("%q is not a 12-digit AWS account id (quote it so YAML keeps leading zeros)", raw.Account), "account")
	}
	if !rolesanywhere.ValidRegion(raw.Region) {
		return nil, p.fail(fmt.Errorf("%q is not an AWS region such as us-east-1", raw.Region), "region")
	}
	s.Partition = partition(raw.Region)
	if len(raw.TrustAnchors) == 0 && len(raw.Operators) == 0 {
		return nil, p.fail(errors.New("at least one trust anchor is needed, or an operator to create them through the control plane"), "trustAnchors")
	}
	for i, ro := range raw.Operators {
		op, err := p.operator(i, ro, s.Operators)
		if err != nil {
			return nil, err
		}
		s.Operators = append(s.Operators, op)
	}

	refs := map[string]string{} // "trustAnchors.NAME.arn" -> ARN
	ids := map[string]bool{}
	for i, ra := range raw.TrustAnchors {
		ta, err := p.anchor(i, ra, ids)
		if err != nil {
			return nil, err
		}
		ta.ARN = s.arn("rolesanywhere", s.Region, "trust-anchor/"+ta.ID)
		if err := p.addRef(refs, "trustAnchors", i, ta.Name, ta.ARN); err != nil {
			return nil, err
		}
		s.TrustAnchors = append(s.TrustAnchors, ta)
	}
	for i, rr := range raw.Roles {
		if !rolesanywhere.ValidRoleName(rr.Name) {
			return nil, p.fail(fmt.Errorf("%q is not an IAM role name (1 to 64 of A-Z a-z 0-9 _+=,.@-)", rr.Name), "roles", i, "name")
		}
		r := &Role{Name: rr.Name, Path: "/", ARN: "arn:" + s.Partition + ":iam::" + s.Account + ":role/" + rr.Name, ManagedPolicyARNs: rr.ManagedPolicyArns}
		r.ID = "AROA" + derivedID(s.Account+"/"+rr.Name, 17)
		if err := p.addRef(refs, "roles", i, r.Name, r.ARN); err != nil {
			return nil, err
		}
		r.MaxSessionDuration = defaultDuration
		if rr.MaxSessionDuration != nil {
			r.MaxSessionDuration = *rr.MaxSessionDuration
		}
		if r.MaxSessionDuration < minRoleDuration || r.MaxSessionDuration > maxSessionSeconds {
			return nil, p.fail(fmt.Errorf("%d is outside IAM's range %d to %d seconds", r.MaxSessionDuration, minRoleDuration, maxSessionSeconds), "roles", i, "maxSessionDuration")
		}
		for j, a := range rr.ManagedPolicyArns {
			if _, err := rolesanywhere.ParseARN(a); err != nil {
				return nil, p.fail(fmt.Errorf("%q is not an ARN", a), "roles", i, "managedPolicyArns", j)
			}
		}
		s.Roles = append(s.Roles, r)
	}
	for i, rp := range raw.Profiles {
		pr, err := p.profile(i, rp, ids, s)
		if err != nil {
			return nil, err
		}
		pr.ARN = s.arn("rolesanywhere", s.Region, "profile/"+pr.ID)
		if err := p.addRef(refs, "profiles", i, pr.Name, pr.ARN); err != nil {
			return nil, err
		}
		s.Profiles = append(s.Profiles, pr)
	}
	// Trust policies last: they may name any resource above.
	for i, rr := range raw.Roles {
		doc, field := rr.AssumeRolePolicy, "assumeRolePolicy"
		switch {
		case doc != "" && rr.AssumeRolePolicyFile != "":
			return nil, p.fail(errors.New("give assumeRolePolicy or assumeRolePolicyFile, not both"), "roles", i, "assumeRolePolicyFile")
		case rr.AssumeRolePolicyFile != "":
			field = "assumeRolePolicyFile"
			data, err := readLimited(p.path(rr.AssumeRolePolicyFile))
			if err != nil {
				return nil, p.fail(err, "roles", i, field)
			}
			doc = string(data)
		case doc == "":
			return nil, p.fail(errors.New("a role needs a trust policy: assumeRolePolicy (inline JSON) or assumeRolePolicyFile"), "roles", i)
		}
		doc, err := substitute(doc, refs)
		if err != nil {
			return nil, p.fail(err, "roles", i, field)
		}
		// AWS's CreateRole refuses a trust policy over IAM's quota
		// (LimitExceeded) or one it could never evaluate as one
		// (MalformedPolicyDocument: a statement without Principal, or
		// with Resource); so does the seed, with the same check.
		pol, err := iampolicy.ParseTrustPolicy([]byte(doc))
		if err != nil {
			return nil, p.fail(fmt.Errorf("trust policy of role %s: %w", s.Roles[i].Name, err), "roles", i, field)
		}
		s.Roles[i].TrustPolicy = pol
		s.Roles[i].TrustPolicyDocument = doc
	}
	s.Warnings = p.warnings
	return s, nil
}

func (p *seedParser) anchor(i int, ra rawAnchor, ids map[string]bool) (*TrustAnchor, error) {
	if !rolesanywhere.ValidResourceName(ra.Name) {
		return nil, p.fail(fmt.Errorf("%q is not a trust anchor name (1 to 255 of A-Z a-z 0-9 space _ -)", ra.Name), "trustAnchors", i, "name")
	}
	ta := &TrustAnchor{Name: ra.Name, Enabled: ra.Enabled == nil || *ra.Enabled}
	id, err := p.id(ra.ID, ids)
	if err != nil {
		return nil, p.fail(err, "trustAnchors", i, "id")
	}
	ta.ID = id

	var bundle []byte
	field := "certificateBundle"
	switch {
	case ra.CertificateBundle != "" && ra.CertificateBundlePem != "":
		return nil, p.fail(errors.New("give certificateBundle (a file) or certificateBundlePem (inline PEM), not both"), "trustAnchors", i, "certificateBundlePem")
	case ra.CertificateBundle != "":
		bundle, err = readLimited(p.path(ra.CertificateBundle))
		if err != nil {
			return nil, p.fail(err, "trustAnchors", i, field)
		}
	case ra.CertificateBundlePem != "":
		field = "certificateBundlePem"
		bundle = []byte(ra.CertificateBundlePem)
	default:
		return nil, p.fail(errors.New("a trust anchor needs its CA certificates: certificateBundle (a PEM file) or certificateBundlePem"), "trustAnchors", i)
	}
	certs, err := parseBundle(bundle)
	if err != nil {
		return nil, p.fail(err, "trustAnchors", i, field)
	}
	ta.setCertificates(certs, strings.TrimSpace(string(bundle)))

	if len(ra.CRLs) > maxAnchorCRLs {
		return nil, p.fail(fmt.Errorf("%d CRLs for one trust anchor; Roles Anywhere allows at most %d (quota \"CRLs per trust anchor\", not adjustable)", len(ra.CRLs), maxAnchorCRLs), "trustAnchors", i, "crls", maxAnchorCRLs)
	}
	for j, name := range ra.CRLs {
		data, err := readLimited(p.path(name))
		if err != nil {
			return nil, p.fail(err, "trustAnchors", i, "crls", j)
		}
		crl, err := parseCRL(data)
		if err != nil {
			return nil, p.fail(fmt.Errorf("%s: %w", name, err), "trustAnchors", i, "crls", j)
		}
		crl.Source = name
		crl.Name = crlName(name)
		crl.Enabled = true
		if err := p.checkCRLIssuer(crl, certs); err != nil {
			return nil, p.fail(fmt.Errorf("%s: %w", name, err), "trustAnchors", i, "crls", j)
		}
		ta.CRLs = append(ta.CRLs, crl)
	}
	return ta, nil
}

// parseBundle checks a trust anchor's x509CertificateData as AWS does
// and parses it: at most maxBundleChars characters of PEM, at most
// maxAnchorCertificates certificates, each a CA certificate Roles Anywhere
// accepts (pki.CheckCA: CA=true, keyUsage with keyCertSign, SHA-256 or
// stronger, an accepted key). The seed, the state file and
// CreateTrustAnchor/UpdateTrustAnchor share it.
func parseBundle(bundle []byte) ([]*x509.Certificate, error) {
	if n, long := bundleTooLong(string(bundle)); long {
		return nil, fmt.Errorf("the bundle is %d characters; AWS accepts at most %d (keep only the CA certificates the runners chain to)", n, maxBundleChars)
	}
	if !bytes.Contains(bundle, []byte("-----BEGIN")) {
		return nil, errors.New("the bundle must be PEM certificates (AWS takes x509CertificateData as PEM)")
	}
	certs, err := pki.ParseCertificates(bundle)
	if err != nil {
		return nil, err
	}
	if len(certs) > maxAnchorCertificates {
		return nil, fmt.Errorf("the bundle holds %d certificates; Roles Anywhere allows at most %d per trust anchor (quota \"Certificates per trust anchor\", not adjustable): keep the root, or the root and one intermediate, and make another trust anchor for another CA", len(certs), maxAnchorCertificates)
	}
	for j, c := range certs {
		if err := pki.CheckCA(c); err != nil {
			return nil, fmt.Errorf("certificate %d (%s): %w", j+1, c.Subject, err)
		}
	}
	return certs, nil
}

// bundleTooLong reports the length of x509CertificateData in characters,
// as AWS's model counts it (surrounding whitespace aside), and whether it
// is over maxBundleChars.
func bundleTooLong(data string) (int, bool) {
	n := utf8.RuneCountInString(strings.TrimSpace(data))
	return n, n > maxBundleChars
}

// checkCRLIssuer refuses a CRL whose issuer is in the bundle but whose
// signature does not verify with it (crlIssuerInBundle). A CRL from a CA
// outside the bundle (an intermediate the runners send) can only be
// checked per request, against the issuer in the chain; that is worth a
// warning.
func (p *seedParser) checkCRLIssuer(crl *CRL, bundle []*x509.Certificate) error {
	inBundle, err := crlIssuerInBundle(crl, bundle)
	if err != nil {
		return err
	}
	if !inBundle {
		p.warnings = append(p.warnings, fmt.Sprintf("%s: CRL %s is issued by %q, which is not in the bundle; it applies to certificates that CA issued, and its signature is checked against the CA certificate in each request's chain", p.src.Name, crl.Source, crl.List.Issuer.String()))
	}
	return nil
}

// crlIssuerInBundle reports whether the CRL's issuer is a certificate of
// the bundle, and refuses a CRL whose issuer is there but whose signature
// does not verify with it: a revocation list that would never be applied
// must not look as if it were. The seed and ImportCrl/UpdateCrl share it.
func crlIssuerInBundle(crl *CRL, bundle []*x509.Certificate) (bool, error) {
	for _, c := range bundle {
		if bytes.Equal(c.RawSubject, crl.List.RawIssuer) {
			if err := checkCRLSignature(crl.List, c); err != nil {
				return true, fmt.Errorf("issued by %q, but its signature does not verify with that certificate of the bundle: %w", c.Subject.String(), err)
			}
			return true, nil
		}
	}
	return false, nil
}

// crlName makes a CRL resource name from a seed's file name: its base
// name, with what a name may not hold replaced.
func crlName(file string) string {
	base := strings.TrimSuffix(filepath.Base(file), filepath.Ext(file))
	b := []byte(base)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == ' ' || c == '-' || c == '_') {
			b[i] = '-'
		}
	}
	if len(b) == 0 {
		return "crl"
	}
	if len(b) > 255 {
		b = b[:255]
	}
	return string(b)
}

func (p *seedParser) operator(i int, ro rawOperator, seen []*Operator) (*Operator, error) {
	op := &Operator{Name: ro.Name, AccessKeyID: ro.AccessKeyID}
	if op.Name == "" {
		op.Name = "keyless-operator"
	}
	if !validIAMName(op.Name, 64) {
		return nil, p.fail(fmt.Errorf("%q is not an IAM user name (1 to 64 of A-Z a-z 0-9 _+=,.@-)", op.Name), "operators", i, "name")
	}
	if !validAccessKeyID(op.AccessKeyID) {
		return nil, p.fail(fmt.Errorf("%q is not an access key id (16 to 128 upper-case letters and digits, such as AKIAIOSFODNN7EXAMPLE)", truncate(op.AccessKeyID)), "operators", i, "accessKeyId")
	}
	for _, o := range seen {
		if o.AccessKeyID == op.AccessKeyID {
			return nil, p.fail(fmt.Errorf("access key id %s is given twice", op.AccessKeyID), "operators", i, "accessKeyId")
		}
	}
	switch {
	case ro.SecretAccessKey != "" && ro.SecretAccessKeyFile != "":
		return nil, p.fail(errors.New("give secretAccessKey or secretAccessKeyFile, not both"), "operators", i, "secretAccessKeyFile")
	case ro.SecretAccessKeyFile != "":
		data, err := readLimited(p.path(ro.SecretAccessKeyFile))
		if err != nil {
			return nil, p.fail(err, "operators", i, "secretAccessKeyFile")
		}
		op.SecretAccessKey = strings.TrimSpace(string(data))
	default:
		op.SecretAccessKey = ro.SecretAccessKey
	}
	// A short secret would make the operator's signatures guessable; AWS's
	// are 40 characters.
	if len(op.SecretAccessKey) < 16 {
		field := "secretAccessKey"
		if ro.SecretAccessKeyFile != "" {
			field = "secretAccessKeyFile"
		}
		return nil, p.fail(errors.New("the operator's secret access key is missing or shorter than 16 characters (secretAccessKeyFile names a file holding it)"), "operators", i, field)
	}
	return op, nil
}

func validAccessKeyID(s string) bool {
	if len(s) < 16 || len(s) > 128 {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// validIAMName reports whether s is an IAM user, role or policy name of
// at most max characters.
func validIAMName(s string, max int) bool {
	if len(s) == 0 || len(s) > max {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("_+=,.@-", c) >= 0) {
			return false
		}
	}
	return true
}

func parseCRL(data []byte) (*CRL, error) {
	der := data
	if block, _ := pem.Decode(data); block != nil {
		if block.Type != "X509 CRL" {
			return nil, fmt.Errorf("PEM block is %q, want \"X509 CRL\"", block.Type)
		}
		der = block.Bytes
	}
	list, err := x509.ParseRevocationList(der)
	if err != nil {
		return nil, fmt.Errorf("not a CRL (PEM or DER): %w", err)
	}
	crl := &CRL{List: list, Data: data, revoked: map[string]bool{}}
	for _, e := range list.RevokedCertificateEntries {
		crl.revoked[e.SerialNumber.String()] = true
	}
	return crl, nil
}

func (p *seedParser) profile(i int, rp rawProfile, ids map[string]bool, s *Seed) (*Profile, error) {
	if !rolesanywhere.ValidResourceName(rp.Name) {
		return nil, p.fail(fmt.Errorf("%q is not a profile name (1 to 255 of A-Z a-z 0-9 space _ -)", rp.Name), "profiles", i, "name")
	}
	pr := &Profile{
		Name:                      rp.Name,
		Enabled:                   rp.Enabled == nil || *rp.Enabled,
		DurationSeconds:           defaultDuration,
		AcceptRoleSessionName:     rp.AcceptRoleSessionName,
		RequireInstanceProperties: rp.RequireInstanceProperties,
		ManagedPolicyARNs:         rp.ManagedPolicyArns,
		SessionPolicy:             rp.SessionPolicy,
	}
	id, err := p.id(rp.ID, ids)
	if err != nil {
		return nil, p.fail(err, "profiles", i, "id")
	}
	pr.ID = id
	if rp.DurationSeconds != nil {
		pr.DurationSeconds = *rp.DurationSeconds
	}
	if pr.DurationSeconds < minProfileDuration || pr.DurationSeconds > maxSessionSeconds {
		return nil, p.fail(fmt.Errorf("%d is outside Roles Anywhere's range %d to %d seconds", pr.DurationSeconds, minProfileDuration, maxSessionSeconds), "profiles", i, "durationSeconds")
	}
	if len(rp.Roles) == 0 {
		return nil, p.fail(errors.New("a profile needs at least one role (a role name from roles, or its ARN)"), "profiles", i, "roles")
	}
	if p.roles == nil {
		p.roles = make(map[string]*Role, 2*len(s.Roles))
		for _, r := range s.Roles {
			p.roles[r.Name], p.roles[r.ARN] = r, r
		}
	}
	for j, ref := range rp.Roles {
		found := p.roles[ref]
		if found == nil {
			var names []string
			for _, r := range s.Roles {
				names = append(names, r.Name)
			}
			return nil, p.fail(fmt.Errorf("no role %q in this seed (roles: %s)", ref, strings.Join(names, ", ")), "profiles", i, "roles", j)
		}
		if !slices.Contains(pr.RoleARNs, found.ARN) {
			pr.RoleARNs = append(pr.RoleARNs, found.ARN)
		}
	}
	if err := p.profilePolicies(i, rp, s); err != nil {
		return nil, err
	}
	return pr, nil
}

// id validates a given id or makes a random (version 4) UUID.
func (p *seedParser) id(given string, seen map[string]bool) (string, error) {
	if given == "" {
		var b [16]byte
		if _, err := io.ReadFull(p.src.Rand, b[:]); err != nil {
			return "", fmt.Errorf("generating an id: %w", err)
		}
		b[6] = b[6]&0x0f | 0x40
		b[8] = b[8]&0x3f | 0x80
		given = fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
	}
	if !isUUID(given) {
		return "", fmt.Errorf("%q is not a UUID like 3f7c1a0e-0000-4000-8000-000000000001 (AWS ids are 36-character UUIDs)", given)
	}
	if seen[given] {
		return "", fmt.Errorf("id %s is used twice", given)
	}
	seen[given] = true
	return given, nil
}

func (p *seedParser) path(name string) string {
	if filepath.IsAbs(name) || p.src.Dir == "" {
		return name
	}
	return filepath.Join(p.src.Dir, name)
}

func (s *Seed) arn(service, region, resource string) string {
	return "arn:" + s.Partition + ":" + service + ":" + region + ":" + s.Account + ":" + resource
}

// addRef records the ARN of the i-th resource of kind ("roles"), named
// name, for ${kind.name.arn}; a second resource of that kind and name is
// an error at its name.
func (p *seedParser) addRef(refs map[string]string, kind string, i int, name, arn string) error {
	k := kind + "." + name + ".arn"
	if _, dup := refs[k]; dup {
		what := map[string]string{"trustAnchors": "trust anchor", "roles": "role", "profiles": "profile"}[kind]
		return p.fail(fmt.Errorf("another %s is already named %q", what, name), kind, i, "name")
	}
	refs[k] = arn
	return nil
}

// substitute replaces ${trustAnchors.NAME.arn}, ${profiles.NAME.arn} and
// ${roles.NAME.arn}; every other ${...} (IAM policy variables such as
// ${aws:username}) is left for the policy evaluator.
func substitute(doc string, refs map[string]string) (string, error) {
	var b strings.Builder
	for {
		i := strings.Index(doc, "${")
		if i < 0 {
			b.WriteString(doc)
			return b.String(), nil
		}
		end := strings.IndexByte(doc[i:], '}')
		if end < 0 {
			b.WriteString(doc)
			return b.String(), nil
		}
		ref := doc[i+2 : i+end]
		b.WriteString(doc[:i])
		kind, _, _ := strings.Cut(ref, ".")
		switch kind {
		case "trustAnchors", "profiles", "roles":
			arn, ok := refs[ref]
			if !ok {
				return "", fmt.Errorf("${%s} names nothing in this seed (write ${%s.NAME.arn} with NAME from %s)", ref, kind, kind)
			}
			b.WriteString(arn)
		default:
			b.WriteString(doc[i : i+end+1])
		}
		doc = doc[i+end+1:]
	}
}

func partition(region string) string {
	switch {
	case strings.HasPrefix(region, "cn-"):
		return "aws-cn"
	case strings.HasPrefix(region, "us-gov-"):
		return "aws-us-gov"
	}
	return "aws"
}

// derivedID makes a stable upper-case id of n characters from seed, for
// ids AWS assigns (role ids) that must not change between runs.
func derivedID(seed string, n int) string {
	sum := sha256.Sum256([]byte(seed))
	return base32.StdEncoding.EncodeToString(sum[:])[:n]
}

func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
				return false
			}
		}
	}
	return true
}
