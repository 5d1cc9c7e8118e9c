package authz

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Rule maps identities to a role. Every Match entry must hold: the
// identity has the claim and it matches one of the values, each a
// path.Match pattern ('*' matches within one path segment: group/*
// matches group/app, not group/sub/app).
type Rule struct {
	Name string
	// Kinds are the identities the rule applies to.
	Kinds []Kind
	// Match maps a claim to the values allowed (any of).
	Match               map[string][]string
	RoleARN, ProfileARN string
	Duration            time.Duration
	// SessionName is a template such as "gitlab-{project_id}-{job_id}";
	// placeholders are claim names (an absent claim renders empty). A
	// rule for GitLab identities must have {job_id}: the broker keeps
	// credentials per session name, so each job needs its own.
	SessionName string
}

// RuleError is a rule NewPolicy refuses. Index is the rule's position
// (from 0); Field is the claim at fault, "" when the fault is not one
// claim's.
type RuleError struct {
	Index       int
	Rule, Field string
	Err         error
}

func (e *RuleError) Error() string {
	return fmt.Sprintf("rule %s: %v", ruleLabel(e.Index, e.Rule), e.Err)
}

func (e *RuleError) Unwrap() error { return e.Err }

func ruleLabel(i int, name string) string {
	if name == "" {
		return fmt.Sprintf("#%d", i+1)
	}
	return strconv.Quote(name)
}

// Policy is a checked list of rules. It is safe for concurrent use.
type Policy struct {
	rules []rule
}

type rule struct {
	Rule
	index int
	keys  []string // Match's keys, sorted
	tmpl  []part
}

// part is a template's literal text or a placeholder.
type part struct {
	lit, field string
}

// Decision is what a matching rule gives.
type Decision struct {
	Rule, RoleARN, ProfileARN, SessionName string
	Duration                               time.Duration
}

// NewPolicy checks rules: each names known kinds and a role, every Match
// key and template placeholder is a field of every kind it lists, every
// value is a valid pattern, and a rule accepting GitLab identities has
// {job_id} in its session name. Refusals are *RuleError.
func NewPolicy(rules []Rule) (*Policy, error) {
	p := &Policy{}
	for i, r := range rules {
		fail := func(field string, format string, args ...any) error {
			return &RuleError{Index: i, Rule: r.Name, Field: field, Err: fmt.Errorf(format, args...)}
		}
		if len(r.Kinds) == 0 {
			return nil, fail("", "the rule accepts no identity: set identity to one or more of %s", kindNames(Kinds, ", "))
		}
		for _, k := range r.Kinds {
			if fieldsOf(k) == nil {
				return nil, fail("", "%q is not an identity: use %s", k, kindNames(Kinds, ", "))
			}
		}
		if r.RoleARN == "" {
			return nil, fail("", "the rule names no role")
		}
		if r.Duration < 0 {
			return nil, fail("", "duration %s is negative", r.Duration)
		}
		cr := rule{Rule: r, index: i, keys: slices.Sorted(maps.Keys(r.Match))}
		cr.Kinds, cr.Match = slices.Clone(r.Kinds), maps.Clone(r.Match)
		for _, key := range cr.keys {
			if err := fieldOf(key, r.Kinds); err != nil {
				return nil, fail(key, "%w", err)
			}
			vals := r.Match[key]
			if len(vals) == 0 {
				return nil, fail(key, "%s: give at least one value", key)
			}
			for _, v := range vals {
				if _, err := path.Match(v, ""); err != nil {
					return nil, fail(key, "%s: %q is not a valid pattern ('*' matches within a path segment)", key, v)
				}
			}
			cr.Match[key] = slices.Clone(vals)
		}
		tmpl, err := parseTemplate(r.SessionName)
		if err != nil {
			return nil, fail("", "sessionName %q: %w", r.SessionName, err)
		}
		for _, pt := range tmpl {
			if pt.field == "" {
				continue
			}
			if err := fieldOf(pt.field, r.Kinds); err != nil {
				return nil, fail(pt.field, "sessionName {%s}: %w", pt.field, err)
			}
		}
		if slices.ContainsFunc(r.Kinds, gitlabKind) && !slices.Contains(tmpl, part{field: "job_id"}) {
			also := ""
			if slices.ContainsFunc(r.Kinds, func(k Kind) bool { return !gitlabKind(k) }) {
				also = "; static tokens and unix peers have no job_id, so give them a rule of their own"
			}
			return nil, fail("job_id", "sessionName %q has no {job_id}: every GitLab job must get its own session, "+
				"since the agent keeps credentials per session name and would give two jobs the same ones; "+
				"use a name such as gitlab-{project_id}-{job_id}%s", cut(r.SessionName, 100), also)
		}
		cr.tmpl = tmpl
		p.rules = append(p.rules, cr)
	}
	return p, nil
}

// fieldOf checks that every kind carries field, saying which do when not.
func fieldOf(field string, kinds []Kind) error {
	if field == "pid" {
		return errors.New("pid is not a claim: a process chooses its own pid (it can fork until one fits) and it names no user; match uid or gid")
	}
	var carriers []Kind
	for _, k := range Kinds {
		if hasField(k, field) {
			carriers = append(carriers, k)
		}
	}
	for _, k := range kinds {
		if hasField(k, field) {
			continue
		}
		if len(carriers) == 0 {
			return fmt.Errorf("%s is not a claim of any identity; %s carries %s", field, describe(k, false), strings.Join(fieldsOf(k), ", "))
		}
		return fmt.Errorf("%s is only in %s; %s does not carry it: set identity: %s",
			field, describeKinds(carriers), describe(k, false), kindNames(carriers, " or "))
	}
	return nil
}

func describe(k Kind, plural bool) string {
	s := map[Kind][2]string{
		JobToken: {"a GitLab job token", "GitLab job tokens"},
		IDToken:  {"an id_tokens JWT", "id_tokens JWTs"},
		Static:   {"a static token", "static tokens"},
		Peer:     {"a unix-socket peer", "unix-socket peers"},
	}[k]
	if s[0] == "" {
		return string(k)
	}
	if plural {
		return s[1]
	}
	return s[0]
}

func describeKinds(ks []Kind) string {
	var s []string
	for _, k := range ks {
		s = append(s, describe(k, true))
	}
	return strings.Join(s, " and ")
}

func kindNames(ks []Kind, sep string) string {
	var s []string
	for _, k := range ks {
		s = append(s, string(k))
	}
	return strings.Join(s, sep)
}

// parseTemplate splits a session-name template into literals and
// {claim} placeholders.
func parseTemplate(s string) ([]part, error) {
	var out []part
	for s != "" {
		i := strings.IndexAny(s, "{}")
		if i < 0 {
			out = append(out, part{lit: s})
			break
		}
		if s[i] == '}' {
			return nil, errors.New("a '}' with no '{'")
		}
		if i > 0 {
			out = append(out, part{lit: s[:i]})
		}
		j := strings.IndexAny(s[i+1:], "{}")
		if j < 0 || s[i+1+j] != '}' {
			return nil, errors.New("a '{' with no '}'")
		}
		name := s[i+1 : i+1+j]
		if name == "" || strings.Trim(name, "abcdefghijklmnopqrstuvwxyz0123456789_") != "" {
			return nil, fmt.Errorf("{%s} is not a claim name", cut(name, 40))
		}
		out = append(out, part{field: name})
		s = s[i+1+j+1:]
	}
	return out, nil
}

// MaxSessionName is the longest role session name AWS accepts.
const MaxSessionName = 64

// sessionHashLen is how many hex digits of SHA-256 mark a session name
// that had to be changed.
const sessionHashLen = 12

// SessionName renders a session-name template with claims, as Decide
// does: placeholders substituted (an absent claim renders empty), then
// made a name AWS accepts by SanitizeSessionName, which keeps distinct
// renderings distinct.
func SessionName(template string, claims map[string]string) (string, error) {
	t, err := parseTemplate(template)
	if err != nil {
		return "", err
	}
	return render(t, claims), nil
}

func render(t []part, claims map[string]string) string {
	var b strings.Builder
	for _, p := range t {
		if p.field != "" {
			b.WriteString(claims[p.field])
		} else {
			b.WriteString(p.lit)
		}
	}
	return SanitizeSessionName(b.String())
}

// SanitizeSessionName makes s a role session name AWS accepts, one to
// one: s itself when it is at most MaxSessionName characters of AWS's
// [A-Za-z0-9+=,.@_-] and does not end in '-' and 12 hex digits; else s
// with every other character replaced by '-', cut to leave room, then '-'
// and the first 12 hex digits of SHA-256(s). So two strings that differ
// (group/a-b and group-a/b; two long paths that differ past the cut)
// never share a name, and the broker, which keeps credentials per
// session name, never gives one's credentials to the other.
func SanitizeSessionName(s string) string {
	out := make([]byte, 0, min(len(s), MaxSessionName))
	changed := false
	for _, r := range s {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("+=,.@_-", r) {
			out = append(out, byte(r))
		} else {
			out = append(out, '-')
			changed = true
		}
		if len(out) > MaxSessionName {
			changed = true
			break
		}
	}
	// A name that looks hashed is hashed too, so a name left as it is
	// can never equal one made from another string.
	if !changed && !looksHashed(out) {
		return string(out)
	}
	sum := sha256.Sum256([]byte(s))
	out = out[:min(len(out), MaxSessionName-1-sessionHashLen)]
	out = append(out, '-')
	return string(hex.AppendEncode(out, sum[:sessionHashLen/2]))
}

// looksHashed reports whether name ends in '-' and sessionHashLen
// lower-case hex digits, as SanitizeSessionName's changed names do.
func looksHashed(name []byte) bool {
	n := len(name)
	if n < sessionHashLen+1 || name[n-sessionHashLen-1] != '-' {
		return false
	}
	for _, c := range name[n-sessionHashLen:] {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// matches reports whether r matches claims; when not, the first key (in
// sorted order) that failed and whether the claim was absent.
func (r *rule) matches(claims map[string]string) (ok bool, failed string, absent bool) {
	for _, k := range r.keys {
		v, has := claims[k]
		if !has {
			return false, k, true
		}
		if !slices.ContainsFunc(r.Match[k], func(p string) bool { m, _ := path.Match(p, v); return m }) {
			return false, k, false
		}
	}
	return true, "", false
}

// Decide returns the first rule's decision that matches id. With none,
// it is an *Error 403 no-rule. Its Message tells the caller no more than
// it knows (its own job, project and ref); its Detail, for the audit line
// only, says why, naming the rule that would have matched an identity of
// another kind and that kind: the rules are the operator's, not the
// caller's, to read.
func (p *Policy) Decide(id *Identity) (Decision, error) {
	if id == nil {
		return Decision{}, refuse(401, ReasonNoToken, "no verified caller")
	}
	for i := range p.rules {
		r := &p.rules[i]
		if !slices.Contains(r.Kinds, id.Kind) {
			continue
		}
		if ok, _, _ := r.matches(id.Claims); ok {
			return Decision{Rule: r.Name, RoleARN: r.RoleARN, ProfileARN: r.ProfileARN, Duration: r.Duration,
				SessionName: render(r.tmpl, id.Claims)}, nil
		}
	}
	e := refuse(403, ReasonNoRule, "%s", callerMessage(id))
	e.Detail = fmt.Sprintf("no rule matches %s: %s", describeIdentity(id), p.explain(id))
	return Decision{}, e
}

// callerMessage is the no-rule refusal a caller sees: nothing of the
// rules, only what the caller knows of itself.
func callerMessage(id *Identity) string {
	what, keys := "caller", []string{"uid", "gid"}
	if gitlabKind(id.Kind) {
		what, keys = "job", []string{"job_id", "project_path", "ref"}
	}
	var parts []string
	for _, k := range keys {
		if v, ok := id.Claims[k]; ok {
			parts = append(parts, k+"="+strconv.Quote(cut(v, 100)))
		}
	}
	msg := "no rule gives this " + what + " credentials"
	if len(parts) > 0 {
		msg += " (" + strings.Join(parts, " ") + ")"
	}
	return msg
}

// explain says why no rule matched id: first a rule that would match an
// identity of another kind, else the first rule for id's kind and the
// claim it wanted otherwise.
func (p *Policy) explain(id *Identity) string {
	for i := range p.rules {
		r := &p.rules[i]
		// Only a kind the caller could present instead: a GitLab job
		// can bring an id_token rather than its job token, a static
		// token or a socket peer cannot become a job.
		if slices.Contains(r.Kinds, id.Kind) || !slices.ContainsFunc(r.Kinds, func(k Kind) bool { return gitlabKind(k) && gitlabKind(id.Kind) }) {
			continue
		}
		var needs []string
		matched := true
		for _, k := range r.keys {
			if !hasField(id.Kind, k) {
				needs = append(needs, k)
				continue
			}
			v, has := id.Claims[k]
			if !has || !slices.ContainsFunc(r.Match[k], func(p string) bool { m, _ := path.Match(p, v); return m }) {
				matched = false
				break
			}
		}
		if !matched {
			continue
		}
		if len(needs) > 0 {
			return fmt.Sprintf("rule %s would need %s, which %s does not carry; use %s",
				ruleLabel(r.index, r.Name), strings.Join(needs, " and "), describe(id.Kind, false), kindNames(r.Kinds, " or "))
		}
		return fmt.Sprintf("rule %s matches, but accepts only %s, not %s", ruleLabel(r.index, r.Name), kindNames(r.Kinds, " or "), id.Kind)
	}
	// A rule that fails only for claims this identity lacks is the
	// closest; else the first rule for the kind and its first failure.
	first := ""
	for i := range p.rules {
		r := &p.rules[i]
		if !slices.Contains(r.Kinds, id.Kind) {
			continue
		}
		var absent []string
		other := ""
		for _, k := range r.keys {
			v, has := id.Claims[k]
			switch {
			case !has:
				absent = append(absent, k)
			case !slices.ContainsFunc(r.Match[k], func(p string) bool { m, _ := path.Match(p, v); return m }) && other == "":
				other = k
			}
		}
		if other == "" && len(absent) > 0 {
			return fmt.Sprintf("rule %s needs %s, which this %s does not have", ruleLabel(r.index, r.Name), strings.Join(absent, " and "), id.Kind)
		}
		if first == "" {
			k := other
			if k == "" && len(absent) > 0 {
				k = absent[0]
			}
			first = fmt.Sprintf("rule %s wants another %s", ruleLabel(r.index, r.Name), k)
		}
	}
	if first != "" {
		return first
	}
	return fmt.Sprintf("no rule accepts %s identities", id.Kind)
}

func gitlabKind(k Kind) bool { return k == JobToken || k == IDToken }

// describeIdentity names a caller in a message by the claims that tell
// who it is.
func describeIdentity(id *Identity) string {
	var parts []string
	for _, k := range []string{"project_path", "ref", "job_id", "token", "uid", "gid"} {
		if v, ok := id.Claims[k]; ok {
			parts = append(parts, k+"="+strconv.Quote(cut(v, 100)))
		}
	}
	if len(parts) == 0 {
		return "this " + string(id.Kind)
	}
	return "this " + string(id.Kind) + " (" + strings.Join(parts, " ") + ")"
}
