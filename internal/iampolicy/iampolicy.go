// Package iampolicy parses IAM policy documents and decides requests
// against them the way AWS IAM does: an applicable Deny statement beats
// any Allow, and what no statement allows is implicitly denied. Its first
// user is the emulator, which checks a role's trust policy before IAM
// Roles Anywhere hands out a session (the role must let the service
// rolesanywhere.amazonaws.com perform sts:AssumeRole, sts:TagSession and
// sts:SetSourceIdentity, under conditions on the certificate's principal
// tags); identity and session policies are decided by the same code.
// ParseTrustPolicy adds the rules IAM applies to a role's trust policy
// when it is created: a Principal in every statement, no NotPrincipal,
// no Resource.
//
// Every Decision carries a one-line reason naming the statement that
// decided and, when access is refused, the first condition that failed,
// what the request held and what the policy wanted, so that an operator
// can fix a policy without guessing.
//
// The package does no I/O and knows nothing of HTTP or the CLI: any keyless
// package may import it. A Policy is immutable once parsed and safe for
// concurrent use; Evaluate never panics, whatever the policy and request.
package iampolicy

import (
	"slices"
	"strconv"
	"strings"
)

// Principal types: the keys of a policy's Principal element.
const (
	AWSPrincipal           = "AWS"
	ServicePrincipal       = "Service"
	FederatedPrincipal     = "Federated"
	CanonicalUserPrincipal = "CanonicalUser"
)

// Principal is who makes a request.
type Principal struct {
	Type string // AWSPrincipal, ServicePrincipal, FederatedPrincipal or CanonicalUserPrincipal
	ID   string // e.g. "rolesanywhere.amazonaws.com", "arn:aws:iam::111122223333:role/ci"
}

// Request is what a policy is asked about.
type Request struct {
	// Principal is who is asking, e.g. {Type: "Service", ID:
	// "rolesanywhere.amazonaws.com"}. Leave it zero to evaluate an identity
	// policy, whose statements have no Principal: they apply to whoever
	// holds the policy. A statement without Principal or NotPrincipal
	// never applies to a request that names a principal, so a resource
	// or trust policy that lacks one grants (and denies) nothing.
	Principal Principal
	Action    string // e.g. "sts:AssumeRole"
	// Resource is the ARN acted on; "" means Resource and NotResource are
	// not checked (trust policies have neither).
	Resource string
	// Context holds the request context: condition key -> values. Keys
	// match case-insensitively, as IAM condition keys do; a key that is
	// absent, or has no values, is "not present".
	Context map[string][]string
}

// Effect is the outcome of an evaluation.
type Effect int

const (
	// ImplicitDeny: no statement allows the request, and none denies it.
	ImplicitDeny Effect = iota
	// Allow: a statement allows the request and none denies it.
	Allow
	// Deny: a statement explicitly denies the request.
	Deny
)

func (e Effect) String() string {
	switch e {
	case ImplicitDeny:
		return "implicit deny"
	case Allow:
		return "allow"
	case Deny:
		return "deny"
	}
	return "Effect(" + strconv.Itoa(int(e)) + ")"
}

// Decision is the result of Policy.Evaluate.
type Decision struct {
	Effect Effect
	// Statement names the statement that decided: its Sid if it has one,
	// else "statement N" (1-based). It is empty for an implicit deny.
	Statement string
	// Reason says in one line why, e.g.
	//	statement "AllowRunner" allows service rolesanywhere.amazonaws.com to perform sts:AssumeRole
	//	statement 1: condition StringEquals aws:PrincipalTag/x509Subject/CN: got "runner-2", want "gitlab-runner"
	//	no statement allows service rolesanywhere.amazonaws.com to perform sts:TagSession
	Reason string
}

// Allowed reports whether the request is allowed.
func (d Decision) Allowed() bool { return d.Effect == Allow }

// Policy is a parsed policy document. Make one with Parse.
type Policy struct {
	version    string
	id         string
	statements []statement
}

// Version returns the policy language version: "2012-10-17" or
// "2008-10-17" (also when the document has no Version).
func (p *Policy) Version() string { return p.version }

// ID returns the document's Id element, or "".
func (p *Policy) ID() string { return p.id }

type statement struct {
	index        int // 1-based
	sid          string
	effect       Effect
	principal    *principalSet // nil: neither Principal nor NotPrincipal
	notPrincipal bool
	actions      []pattern
	notAction    bool
	resources    []resourcePattern // nil: neither Resource nor NotResource
	notResource  bool
	conditions   []condition // sorted by operator, then key
}

type principalSet struct {
	any     bool // "Principal": "*"
	entries []Principal
}

type resourcePattern struct {
	tmpl template
	any  bool    // "*"
	pat  pattern // when tmpl has no variables
}

// Evaluate decides r. A statement applies when
//   - its principal matches: "*" matches anyone; otherwise the types must be
//     equal and one of the listed IDs equal to r's, where "*" matches any ID
//     of that type (so {"AWS": "*"} matches AWS principals but not services:
//     AWS notes that some services treat it like "*", and the narrower
//     reading is the safe one), and an AWS account ID matches that
//     account's root ARN (IAM treats them as the same principal); with
//     NotPrincipal, when the principal does not match; a statement with
//     neither applies only to a request with a zero Principal (an identity
//     policy's statement), never to one that names a principal: a missing
//     Principal is not "anyone";
//   - its action matches: any Action pattern (or no NotAction pattern)
//     matches r.Action, ignoring ASCII case, with wildcards * and ?;
//   - its resource matches, when r.Resource is not "" and the statement has
//     Resource or NotResource: like the action, with wildcards, but
//     case-sensitive, and with policy variables substituted;
//   - every condition holds: operators and keys are ANDed, the values of
//     one key ORed (for a negated operator, the request value must match
//     none of them).
//
// A condition on a key that the request does not have is false, except
// that it is true for a negated operator (StringNotEquals, ArnNotLike,
// NotIpAddress, ...), with IfExists, and with ForAllValues, as IAM
// documents; Null tests presence alone. When the key has several values,
// ForAnyValue holds if one of them satisfies the operator and ForAllValues
// if every one does; an operator with neither behaves like ForAnyValue.
//
// Policy variables (version 2012-10-17 only) are substituted in resources
// and in the values of the String, Arn and Bool operators, the ones AWS
// documents as taking them; a substituted value is literal text, never a
// wildcard. BinaryEquals compares bytes: the request value is base64 too,
// as in the context entries of IAM's policy simulator.
//
// Any applicable Deny makes the decision Deny; otherwise any applicable
// Allow makes it Allow; otherwise it is ImplicitDeny. A policy value whose
// policy variable cannot be resolved (its key is absent and it has no
// default, or the key has several values) matches nothing, and neither
// does a request value that cannot be read as the operator's type (not a
// number for NumericEquals, not an ARN for ArnLike, ...): so for a
// negated operator such a value counts as matching none.
//
// Evaluating a nil Policy gives ImplicitDeny.
func (p *Policy) Evaluate(r Request) Decision {
	if p == nil {
		return Decision{Reason: "no policy"}
	}
	var allow *statement
	var misses, others []string // why Allow statements did not apply
	for i := range p.statements {
		s := &p.statements[i]
		if allow != nil && s.effect == Allow {
			continue // only a Deny can change the decision now
		}
		if !s.matchAction(r.Action) {
			continue
		}
		principalOK, principalWhy := s.matchPrincipal(r.Principal)
		resourceOK, resourceWhy := s.matchResource(r.Resource, r.Context)
		switch {
		case !principalOK:
			if s.effect == Allow && resourceOK {
				others = append(others, principalWhy)
			}
			continue
		case !resourceOK:
			if s.effect == Allow {
				misses = append(misses, s.label()+": "+resourceWhy)
			}
			continue
		}
		if ok, why := s.evalConditions(r.Context); !ok {
			if s.effect == Allow {
				misses = append(misses, s.label()+": "+why)
			}
			continue
		}
		if s.effect == Deny {
			return Decision{Effect: Deny, Statement: s.name(), Reason: s.denyReason(r)}
		}
		allow = s
	}
	switch {
	case allow != nil:
		return Decision{Effect: Allow, Statement: allow.name(), Reason: allow.label() + " allows " + describe(r)}
	case len(misses) > 0:
		return Decision{Reason: joinLimited(misses, "; ")}
	}
	reason := "no statement allows " + describe(r)
	if len(others) > 0 {
		reason += " (" + joinLimited(others, "; ") + ")"
	}
	return Decision{Reason: reason}
}

// name is how a Decision names the statement.
func (s *statement) name() string {
	if s.sid != "" {
		return s.sid
	}
	return "statement " + strconv.Itoa(s.index)
}

// label is how a reason names the statement.
func (s *statement) label() string {
	if s.sid != "" {
		return "statement " + quote(s.sid)
	}
	return "statement " + strconv.Itoa(s.index)
}

func (s *statement) matchAction(a string) bool {
	matched := false
	for _, p := range s.actions {
		if p.match(a, true) {
			matched = true
			break
		}
	}
	return matched != s.notAction
}

func (s *statement) matchPrincipal(p Principal) (bool, string) {
	if s.principal == nil {
		if p == (Principal{}) {
			return true, ""
		}
		return false, s.label() + " has no Principal, so it applies to no named principal"
	}
	if s.principal.match(p) != s.notPrincipal {
		return true, ""
	}
	if s.notPrincipal {
		return false, s.label() + " excludes it with NotPrincipal"
	}
	names := make([]string, len(s.principal.entries))
	for i, e := range s.principal.entries {
		names[i] = principalPhrase(e)
	}
	return false, s.label() + " names other principals: " + joinLimited(names, ", ")
}

func (ps *principalSet) match(p Principal) bool {
	if ps.any {
		return true
	}
	for _, e := range ps.entries {
		if e.Type != p.Type {
			continue
		}
		if e.ID == "*" || e.ID == p.ID {
			return true
		}
		if e.Type == AWSPrincipal {
			if a := rootAccount(e.ID); a != "" && a == rootAccount(p.ID) {
				return true
			}
		}
	}
	return false
}

// rootAccount returns the account of an AWS account principal, written as
// "111122223333" or "arn:aws:iam::111122223333:root", or "".
func rootAccount(id string) string {
	if len(id) == 12 && allDigits(id) {
		return id
	}
	if !strings.HasPrefix(id, "arn:") {
		return ""
	}
	f := strings.Split(id, ":")
	if len(f) == 6 && f[2] == "iam" && f[3] == "" && f[5] == "root" && len(f[4]) == 12 && allDigits(f[4]) {
		return f[4]
	}
	return ""
}

func (s *statement) matchResource(r string, ctx map[string][]string) (bool, string) {
	if r == "" || s.resources == nil {
		return true, ""
	}
	matched := false
	note := ""
	for i := range s.resources {
		rp := &s.resources[i]
		if rp.any {
			matched = true
			break
		}
		pat := rp.pat
		if rp.tmpl.vars {
			_, p, why, ok := rp.tmpl.expand(ctx, true, true)
			if !ok {
				if note == "" {
					note = why
				}
				continue
			}
			pat = p
		}
		if pat.match(r, false) {
			matched = true
			break
		}
	}
	if matched != s.notResource {
		return true, ""
	}
	if s.notResource {
		return false, "resource " + bare(r) + " is excluded by its NotResource"
	}
	why := "resource " + bare(r) + " does not match its Resource"
	if note != "" {
		why += " (" + note + ")"
	}
	return false, why
}

// evalConditions reports whether every condition holds, and if not, which
// failed first (in the order of operator names, then keys) and why.
func (s *statement) evalConditions(ctx map[string][]string) (bool, string) {
	for i := range s.conditions {
		c := &s.conditions[i]
		if ok, why := c.eval(ctx); !ok {
			return false, "condition " + c.op + " " + bare(c.key) + ": " + why
		}
	}
	return true, ""
}

func (s *statement) denyReason(r Request) string {
	var b strings.Builder
	b.WriteString(s.label() + " denies " + bare(r.Action))
	if who := principalPhrase(r.Principal); who != "" {
		b.WriteString(" for " + who)
	}
	if r.Resource != "" {
		b.WriteString(" on " + bare(r.Resource))
	}
	if len(s.conditions) == 0 {
		b.WriteString(": it has no conditions")
	} else {
		b.WriteString(": its conditions match")
	}
	return b.String()
}

// describe renders a request as "service X to perform A on R".
func describe(r Request) string {
	var b strings.Builder
	if who := principalPhrase(r.Principal); who != "" {
		b.WriteString(who + " to perform ")
	}
	b.WriteString(bare(r.Action))
	if r.Resource != "" {
		b.WriteString(" on " + bare(r.Resource))
	}
	return b.String()
}

func principalPhrase(p Principal) string {
	switch p.Type {
	case "":
		if p.ID == "" {
			return ""
		}
		return "principal " + bare(p.ID)
	case ServicePrincipal:
		return "service " + bare(p.ID)
	case AWSPrincipal:
		return "AWS principal " + bare(p.ID)
	case FederatedPrincipal:
		return "federated principal " + bare(p.ID)
	case CanonicalUserPrincipal:
		return "canonical user " + bare(p.ID)
	}
	return bare(p.Type) + " principal " + bare(p.ID)
}

// ContextKeysFor returns every request-context key the policy can read
// when it decides a request of principal for one of actions, in order
// and without repeats: the condition keys, and the keys of the policy
// variables in condition values and resources, as written, of the
// statements that name that principal and one of those actions. A
// statement for other principals or actions cannot change that decision,
// so its keys are left out. A nil policy reads none.
func (p *Policy) ContextKeysFor(principal Principal, actions []string) []string {
	if p == nil {
		return nil
	}
	var keys []string
	addVars := func(t template) {
		for _, pt := range t.parts {
			if pt.kind == partVar {
				keys = append(keys, pt.key)
			}
		}
	}
	for i := range p.statements {
		s := &p.statements[i]
		if ok, _ := s.matchPrincipal(principal); !ok || !slices.ContainsFunc(actions, s.matchAction) {
			continue
		}
		for _, c := range s.conditions {
			keys = append(keys, c.key)
			for _, v := range c.values {
				addVars(v.tmpl)
			}
		}
		for _, r := range s.resources {
			addVars(r.tmpl)
		}
	}
	slices.Sort(keys)
	return slices.Compact(keys)
}
