// Package trustpolicy decides, offline, what a role's trust policy says
// when IAM Roles Anywhere asks to assume the role for a certificate: the
// session tags of the default attribute mapping (PrincipalTags), the
// request context AWS documents for that call (Context), and the three
// actions the policy must allow (Actions) for the service principal
// (Principal). Evaluate puts them together.
//
// It is a domain package: no I/O, no HTTP. The emulator decides
// CreateSession with it, and keyless doctor checks a certificate against
// a trust policy file with the very same rules.
package trustpolicy

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/keyless-dev/keyless/internal/iampolicy"
)

// Principal is the service principal a role's trust policy must allow.
var Principal = iampolicy.Principal{Type: "Service", ID: "rolesanywhere.amazonaws.com"}

// Actions are what Roles Anywhere does with the role: assume it, tag
// the session with the certificate's attributes, and set the source
// identity. The trust policy must allow all three.
var Actions = []string{"sts:AssumeRole", "sts:TagSession", "sts:SetSourceIdentity"}

// Context is the request context against which a role's trust
// policy is evaluated for a session: the keys AWS documents as present
// when Roles Anywhere assumes a role, and no others, so that a condition
// on a key AWS would not send does not match here either. Each key's
// source:
//
//   - aws:PrincipalTag/x509Subject/<attr>, x509Issuer/<attr>, x509SAN/DNS,
//     x509SAN/URI, x509SAN/Name/<attr>: the certificate's attributes under
//     the default attribute mapping (tags; reference roles-anywhere.md §4,
//     Roles Anywhere user guide "Certificate attribute mapping").
//   - aws:SourceArn (the trust anchor's ARN) and aws:SourceAccount
//     (roles-anywhere.md §4; IAM global condition keys: present when an
//     AWS service principal calls on a resource owner's behalf).
//   - sts:SourceIdentity: the source identity Roles Anywhere sets, as the
//     answer's sourceIdentity carries it (see SourceIdentity; user guide
//     "Trust model": the key "is present in the request when IAM Roles
//     Anywhere initially sets the source identity"). The CreateSession
//     body cannot set it: the API has no such field, and unknown keys are
//     ignored.
//   - aws:CurrentTime (ISO 8601, UTC, to the second) and aws:EpochTime
//     (seconds since 1970-01-01): now, from the caller's clock (IAM
//     global condition keys: always present; Date, and Date or Numeric).
//   - aws:SecureTransport "true" (IAM: always present): AWS's Roles
//     Anywhere and STS endpoints answer only over TLS, so the value does
//     not follow the emulator's own transport.
//   - aws:PrincipalIsAWSService "true" and aws:PrincipalServiceName
//     "rolesanywhere.amazonaws.com": the caller of sts:AssumeRole is the
//     service principal (IAM global condition keys: present in a request
//     an AWS service principal makes).
//
// Left out on purpose: aws:SourceIp and aws:VpcSourceIp (on AWS the call
// to STS comes from the service, never from the client, and the
// emulator cannot know the service's address), aws:RequestedRegion (the
// region of Roles Anywhere's STS call is not documented),
// aws:TokenIssueTime (only in requests signed with temporary
// credentials), aws:PrincipalArn, aws:PrincipalAccount, aws:userid and
// aws:username (properties of AWS principals, not of a service
// principal), sts:RoleSessionName and aws:RequestTag/aws:TagKeys (not
// documented for Roles Anywhere), aws:SourceOrgID and
// aws:SourceOrgPaths (AWS Organizations, which the emulator does not
// model) and aws:OriginIdentity/* (trusted identity propagation, a
// profile setting the seed does not have).
func Context(anchorARN, account string, tags map[string]string, sourceIdentity string, now time.Time) map[string][]string {
	now = now.UTC()
	ctx := make(map[string][]string, 8+len(tags))
	// One backing array holds every single-value list.
	vals := make([]string, 0, 8+len(tags))
	set := func(k, v string) {
		vals = append(vals, v)
		ctx[k] = vals[len(vals)-1 : len(vals) : len(vals)]
	}
	set("aws:SourceArn", anchorARN)
	set("aws:SourceAccount", account)
	set("aws:CurrentTime", now.Format("2006-01-02T15:04:05Z"))
	set("aws:EpochTime", strconv.FormatInt(now.Unix(), 10))
	set("aws:SecureTransport", "true")
	set("aws:PrincipalIsAWSService", "true")
	set("aws:PrincipalServiceName", Principal.ID)
	if sourceIdentity != "" {
		set("sts:SourceIdentity", sourceIdentity)
	}
	for k, v := range tags {
		set("aws:PrincipalTag/"+k, v)
	}
	return ctx
}

// mappedName names an RDN type of the default attribute mapping (a
// switch, not a map every keyless command would build at start).
func mappedName(oid string) (string, bool) {
	switch oid {
	case "2.5.4.3":
		return "CN", true
	case "2.5.4.6":
		return "C", true
	case "2.5.4.7":
		return "L", true
	case "2.5.4.8":
		return "ST", true
	case "2.5.4.10":
		return "O", true
	case "2.5.4.11":
		return "OU", true
	case "2.5.4.5":
		return "serialNumber", true
	case "2.5.4.9":
		return "street", true
	case "2.5.4.17":
		return "postalCode", true
	case "2.5.4.12":
		return "title", true
	case "2.5.4.4":
		return "SN", true
	case "2.5.4.42":
		return "GN", true
	case "1.2.840.113549.1.9.1":
		return "emailAddress", true
	case "0.9.2342.19200300.100.1.25":
		return "DC", true
	case "0.9.2342.19200300.100.1.1":
		return "UID", true
	}
	return "", false
}

// PrincipalTags applies the default attribute mapping (reference §4):
// every subject and issuer RDN, and the first DNS, URI and directory-name
// SAN (x509SAN/DNS, x509SAN/URI, x509SAN/Name/<attr>). A repeated RDN's
// values are joined with "/" (unconfirmed against AWS). It also returns
// the attributes that are not valid session tag values, which AWS
// refuses.
func PrincipalTags(leaf *x509.Certificate) (map[string]string, []string) {
	return CheckTags(Attributes(leaf))
}

// Attributes returns every attribute of leaf that a mapping can name,
// keyed as session tags are ("x509Subject/CN").
func Attributes(leaf *x509.Certificate) map[string]string {
	tags := map[string]string{}
	add := func(key, value string) {
		if prev, ok := tags[key]; ok {
			value = prev + "/" + value
		}
		tags[key] = value
	}
	for _, rdn := range leaf.Subject.Names {
		add("x509Subject/"+attributeName(rdn.Type), fmt.Sprint(rdn.Value))
	}
	for _, rdn := range leaf.Issuer.Names {
		add("x509Issuer/"+attributeName(rdn.Type), fmt.Sprint(rdn.Value))
	}
	if len(leaf.DNSNames) > 0 {
		tags["x509SAN/DNS"] = leaf.DNSNames[0]
	}
	if len(leaf.URIs) > 0 {
		tags["x509SAN/URI"] = leaf.URIs[0].String()
	}
	if name, ok := firstDirectoryName(leaf); ok {
		for _, rdn := range name {
			for _, atv := range rdn {
				add("x509SAN/Name/"+attributeName(atv.Type), fmt.Sprint(atv.Value))
			}
		}
	}
	return tags
}

// Session tag limits of STS, which Roles Anywhere's session tags must
// meet (STS API reference, Tag and AssumeRole's Tags: "You can pass up
// to 50 session tags. The plain text session tag keys can't exceed 128
// characters", values 256).
const (
	MaxTags        = 50
	MaxTagKeyLen   = 128
	MaxTagValueLen = 256
)

// CheckTags returns tags and why they cannot all become session tags:
// more than MaxTags of them, or a key or value STS does not take (too
// long, or characters outside its pattern). AWS refuses such sessions.
func CheckTags(tags map[string]string) (map[string]string, []string) {
	var bad []string
	if len(tags) > MaxTags {
		bad = append(bad, fmt.Sprintf("the certificate maps to %d session tags; STS takes at most %d (map fewer attributes with the profile's attribute mappings)", len(tags), MaxTags))
	}
	for _, k := range sortedKeys(tags) {
		if !validTag(k, 1, MaxTagKeyLen) {
			bad = append(bad, fmt.Sprintf("%q is not a valid session tag key (1 to %d letters, digits, spaces and _.:/=+-@)", truncate(k, 150), MaxTagKeyLen))
			continue
		}
		if !validTag(tags[k], 0, MaxTagValueLen) {
			bad = append(bad, fmt.Sprintf("%s %q is not a valid session tag value (at most %d letters, digits, spaces and _.:/=+-@)", k, truncate(tags[k], 100), MaxTagValueLen))
		}
	}
	return tags, bad
}

// Mapping is one certificate field's attribute mapping in a profile:
// the field (x509Subject, x509Issuer, x509SAN) and its specifiers.
type Mapping struct {
	Field      string
	Specifiers []string
}

// MapAttributes keeps the attributes mappings name: for x509Subject and
// x509Issuer an RDN name or "*" (all); for x509SAN "DNS", "URI",
// "Name/<attr>" or "Name/*" (user guide, "Certificate attribute
// mapping"). Only the attributes kept become session tags, and only they
// must be valid tag values.
func MapAttributes(attrs map[string]string, mappings []Mapping) map[string]string {
	out := map[string]string{}
	for k, v := range attrs {
		field, spec, _ := strings.Cut(k, "/")
		for _, m := range mappings {
			if m.Field != field {
				continue
			}
			for _, r := range m.Specifiers {
				if r == spec || (field != "x509SAN" && r == "*") ||
					(field == "x509SAN" && r == "Name/*" && strings.HasPrefix(spec, "Name/")) {
					out[k] = v
				}
			}
		}
	}
	return out
}

var oidSubjectAltName = asn1.ObjectIdentifier{2, 5, 29, 17}

// firstDirectoryName returns the first directoryName of the leaf's
// subjectAltName, which Go's parser does not expose.
func firstDirectoryName(leaf *x509.Certificate) (pkix.RDNSequence, bool) {
	for _, ext := range leaf.Extensions {
		if !ext.Id.Equal(oidSubjectAltName) {
			continue
		}
		var seq asn1.RawValue
		if rest, err := asn1.Unmarshal(ext.Value, &seq); err != nil || len(rest) > 0 || seq.Tag != asn1.TagSequence {
			return nil, false
		}
		for inner := seq.Bytes; len(inner) > 0; {
			var gn asn1.RawValue
			var err error
			if inner, err = asn1.Unmarshal(inner, &gn); err != nil {
				return nil, false
			}
			// directoryName is [4], explicitly tagged (Name is a CHOICE).
			if gn.Class == asn1.ClassContextSpecific && gn.Tag == 4 {
				var name pkix.RDNSequence
				if rest, err := asn1.Unmarshal(gn.Bytes, &name); err == nil && len(rest) == 0 {
					return name, true
				}
				return nil, false
			}
		}
	}
	return nil, false
}

func attributeName(oid asn1.ObjectIdentifier) string {
	if n, ok := mappedName(oid.String()); ok {
		return n
	}
	return oid.String()
}

// validTag reports whether s is a session tag key or value: min to max
// characters of STS's pattern [\p{L}\p{Z}\p{N}_.:/=+\-@].
func validTag(s string, min, max int) bool {
	if n := len([]rune(s)); n < min || n > max {
		return false
	}
	for _, r := range s {
		if !(unicode.IsLetter(r) || unicode.IsNumber(r) || unicode.Is(unicode.Z, r) || strings.ContainsRune("_.:/=+-@", r)) {
			return false
		}
	}
	return true
}

// MaxCommonName is the longest subject CN a certificate may carry:
// X.520's ub-common-name, the upper bound RFC 5280 (appendix A.1) gives
// the attribute. It is also the longest source identity STS takes.
const MaxCommonName = 64

// maxSourceIdentity is STS's limit on a source identity (AssumeRole's
// SourceIdentity: 2 to 64 characters).
const maxSourceIdentity = 64

// CheckSubject refuses the leaf certificates Roles Anywhere does not
// take for their subject: an empty subject (AWS does not support such
// certificates), and a CN longer than MaxCommonName, which is not a
// valid certificate (RFC 5280's upper bound) and could not become a
// source identity; the stricter reading, since AWS documents neither
// case's answer.
func CheckSubject(leaf *x509.Certificate) error {
	if len(leaf.Subject.Names) == 0 {
		return fmt.Errorf("the certificate's subject is empty; Roles Anywhere does not support certificates without a subject (give it at least a CN)")
	}
	for _, cn := range commonNames(leaf) {
		if n := len([]rune(cn)); n > MaxCommonName {
			return fmt.Errorf("the subject's CN is %d characters; a CN has at most %d (RFC 5280's ub-common-name)", n, MaxCommonName)
		}
	}
	return nil
}

// SourceIdentity is the source identity Roles Anywhere sets for leaf,
// as AWS forms it: "CN=<cn>" when that fits STS's 64 characters (a CN
// of up to 61), the CN alone when only it fits (62 to 64), and
// "ID=<serial in hex>" when the subject has no CN. A leaf CheckSubject
// refuses has none.
func SourceIdentity(leaf *x509.Certificate) string {
	cns := commonNames(leaf)
	if len(cns) == 0 {
		return "ID=" + leaf.SerialNumber.Text(16)
	}
	cn := cns[0]
	switch n := len([]rune(cn)); {
	case n+len("CN=") <= maxSourceIdentity:
		return "CN=" + cn
	case n <= maxSourceIdentity:
		return cn
	default:
		return ""
	}
}

// commonNames returns the subject's CN values in order: Go's parser
// keeps only the last in Subject.CommonName, and drops an empty one.
func commonNames(leaf *x509.Certificate) []string {
	var out []string
	for _, atv := range leaf.Subject.Names {
		if atv.Type.Equal(oidCommonName) {
			out = append(out, fmt.Sprint(atv.Value))
		}
	}
	return out
}

var oidCommonName = asn1.ObjectIdentifier{2, 5, 4, 3}

// Leaf is what Evaluate derives from a certificate alone: its subject
// check, its attributes and its source identity. A caller that decides
// many sessions for one certificate prepares it once (PrepareLeaf) and
// passes it in Session.Prepared. It is read-only once made.
type Leaf struct {
	cert           *x509.Certificate
	subjectErr     error
	attrs          map[string]string
	sourceIdentity string
}

// PrepareLeaf derives what Evaluate needs of leaf.
func PrepareLeaf(leaf *x509.Certificate) *Leaf {
	l := &Leaf{cert: leaf, subjectErr: CheckSubject(leaf)}
	if l.subjectErr == nil {
		l.attrs = Attributes(leaf)
		l.sourceIdentity = SourceIdentity(leaf)
	}
	return l
}

// Certificate returns the certificate l was prepared from.
func (l *Leaf) Certificate() *x509.Certificate { return l.cert }

// SourceIdentity is SourceIdentity of l's certificate.
func (l *Leaf) SourceIdentity() string {
	if l.subjectErr != nil {
		return SourceIdentity(l.cert)
	}
	return l.sourceIdentity
}

// Session is what Evaluate decides: a session for Leaf through the trust
// anchor AnchorARN of Account, at Now.
type Session struct {
	Leaf *x509.Certificate
	// Prepared, when set, is PrepareLeaf(Leaf), made earlier.
	Prepared  *Leaf
	AnchorARN string
	Account   string
	Now       time.Time
	// Mappings are the profile's attribute mappings; nil means the
	// default mapping (every attribute).
	Mappings []Mapping
}

// Refusal is why a policy refuses a session: the certificate's subject
// is one Roles Anywhere does not take (Subject, see CheckSubject), its
// attributes cannot become session tags (BadTags), or the policy does
// not allow Action (Decision says which statement and condition).
type Refusal struct {
	Subject error
	BadTags []string
	// Undecided is the context key the policy reads whose value AWS
	// leaves undefined for this session (see readsUnnamedAttribute and
	// readsRequestTags); Decision.Reason explains.
	Undecided string
	Action    string
	Decision  iampolicy.Decision
}

func (r *Refusal) Error() string {
	if r.Subject != nil {
		return r.Subject.Error()
	}
	if len(r.BadTags) > 0 {
		return "some attributes failed to be mapped into session tags: " + strings.Join(r.BadTags, "; ")
	}
	return fmt.Sprintf("%s: %s: %s", r.Action, r.Decision.Effect, r.Decision.Reason)
}

// Evaluate decides policy for s as Roles Anywhere would ask: nil when it
// allows every action, else the first refusal.
func Evaluate(policy *iampolicy.Policy, s Session) *Refusal {
	l := s.Prepared
	if l == nil || l.cert != s.Leaf {
		l = PrepareLeaf(s.Leaf)
	}
	if l.subjectErr != nil {
		return &Refusal{Subject: l.subjectErr}
	}
	// l.attrs is shared: MapAttributes makes a new map, and nothing below
	// changes the one it is given.
	attrs := l.attrs
	if s.Mappings != nil {
		attrs = MapAttributes(attrs, s.Mappings)
	}
	tags, bad := CheckTags(attrs)
	if len(bad) > 0 {
		return &Refusal{BadTags: bad}
	}
	if key, ok := readsUnnamedAttribute(policy, tags); ok {
		return &Refusal{Undecided: key, Action: Actions[0], Decision: iampolicy.Decision{Reason: fmt.Sprintf(
			"the trust policy reads %s, a certificate attribute whose type has no name AWS documents; AWS maps only the RDNs it recognises, so whether a session has this tag on AWS is unknown, and the emulator refuses rather than guess: condition on a named attribute (CN, O, OU, ...) instead", key)}}
	}
	if key, ok := readsRequestTags(policy); ok {
		return &Refusal{Undecided: key, Action: Actions[0], Decision: iampolicy.Decision{Reason: fmt.Sprintf(
			"the trust policy reads %s, which AWS does not document for Roles Anywhere sessions (whether the certificate's session tags are also request tags is unknown), so the emulator refuses rather than guess: condition on aws:PrincipalTag/... instead", key)}}
	}
	ctx := Context(s.AnchorARN, s.Account, tags, l.sourceIdentity, s.Now)
	for _, action := range Actions {
		d := policy.Evaluate(iampolicy.Request{Principal: Principal, Action: action, Context: ctx})
		if !d.Allowed() {
			return &Refusal{Action: action, Decision: d}
		}
	}
	return nil
}

// readsUnnamedAttribute reports the first context key of policy that is
// the session tag of a certificate attribute this session carries under
// its dotted OID (an RDN type without a documented name, such as
// aws:PrincipalTag/x509Subject/1.3.6.1.4.1.99999.1). AWS's attribute
// mapping takes "all recognizable RDNs" and does not say which those
// are, so a decision that depends on such a tag could go either way on
// AWS; the stricter reading refuses it. A policy that names such a key
// for a certificate without that attribute is unaffected: the tag is
// absent on AWS too.
func readsUnnamedAttribute(policy *iampolicy.Policy, tags map[string]string) (string, bool) {
	if policy == nil {
		return "", false
	}
	unnamed := map[string]bool{}
	for k := range tags {
		if i := strings.LastIndexByte(k, '/'); i >= 0 && isDottedOID(k[i+1:]) {
			unnamed[k] = true
		}
	}
	if len(unnamed) == 0 {
		return "", false
	}
	// Keys are matched as evaluation matches them (strings.EqualFold).
	const prefix = "aws:PrincipalTag/"
	for _, key := range policy.ContextKeysFor(Principal, Actions) {
		rest, ok := cutPrefixFold(key, prefix)
		if !ok {
			continue
		}
		for tag := range unnamed {
			if strings.EqualFold(rest, tag) {
				return key, true
			}
		}
	}
	return "", false
}

// readsRequestTags reports the first context key of policy that is
// aws:RequestTag/<key> or aws:TagKeys. AWS documents principal tags for
// Roles Anywhere sessions, not request tags: on AWS they may carry the
// certificate's tags (Roles Anywhere passes them to sts:TagSession) or
// be absent, and either reading could be wrong, so the stricter one
// refuses a decision that reads them.
func readsRequestTags(policy *iampolicy.Policy) (string, bool) {
	if policy == nil {
		return "", false
	}
	// Keys are matched as evaluation matches them (strings.EqualFold).
	const prefix = "aws:RequestTag/"
	for _, key := range policy.ContextKeysFor(Principal, Actions) {
		if _, ok := cutPrefixFold(key, prefix); ok || strings.EqualFold(key, "aws:TagKeys") {
			return key, true
		}
	}
	return "", false
}

// cutPrefixFold is strings.CutPrefix under Unicode case folding, the way
// evaluation matches condition keys (strings.EqualFold): "aws:RequeſtTag/x"
// has the prefix "aws:RequestTag/", though its bytes differ.
func cutPrefixFold(s, prefix string) (string, bool) {
	for i := range s {
		if i > 0 && strings.EqualFold(s[:i], prefix) {
			return s[i:], true
		}
		if i > 4*len(prefix) {
			break
		}
	}
	return "", strings.EqualFold(s, prefix)
}

// isDottedOID reports whether s is an OID in dotted form ("1.3.6.1").
func isDottedOID(s string) bool {
	if !strings.Contains(s, ".") {
		return false
	}
	for _, arc := range strings.Split(s, ".") {
		if arc == "" || strings.Trim(arc, "0123456789") != "" {
			return false
		}
	}
	return true
}

// sortedKeys returns m's keys in order, for deterministic output.
func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// truncate keeps certificate text in messages short.
func truncate(s string, n int) string {
	if len(s) > n {
		return strings.ToValidUTF8(s[:n], "") + "..."
	}
	return s
}
