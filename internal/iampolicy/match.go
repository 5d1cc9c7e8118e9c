package iampolicy

import (
	"cmp"
	"encoding/base64"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// A pattern is a compiled wildcard pattern: each element is a literal byte
// (0–255), tokStar (any run of characters, possibly empty) or tokOne
// (exactly one character, that is one UTF-8 sequence or one invalid byte).
// Keeping literal and wildcard apart lets a policy variable or an escape
// such as ${*} put a literal '*' into a pattern.
type pattern []int16

const (
	tokStar int16 = -1
	tokOne  int16 = -2
)

// appendPattern appends s to p; with wild, '*' and '?' in s are wildcards,
// otherwise every byte is literal.
func appendPattern(p pattern, s string, wild bool) pattern {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case wild && c == '*':
			p = append(p, tokStar)
		case wild && c == '?':
			p = append(p, tokOne)
		default:
			p = append(p, int16(c))
		}
	}
	return p
}

// match reports whether p matches all of s; with fold, ASCII letters
// compare case-insensitively. It is the two-pointer greedy algorithm: on a
// mismatch it backtracks only to the most recent '*', which then swallows
// one more character, so the cost is at most len(p)×len(s) steps and never
// exponential.
func (p pattern) match(s string, fold bool) bool {
	pi, si := 0, 0
	star, mark := -1, 0 // index in p of the last '*', and where in s it started
	for si < len(s) {
		if pi < len(p) {
			switch t := p[pi]; {
			case t == tokStar:
				star, mark = pi, si
				pi++
				continue
			case t == tokOne:
				pi++
				si += charLen(s[si:])
				continue
			case byteEqual(byte(t), s[si], fold):
				pi++
				si++
				continue
			}
		}
		if star < 0 {
			return false
		}
		pi = star + 1
		mark += charLen(s[mark:])
		si = mark
	}
	for pi < len(p) && p[pi] == tokStar {
		pi++
	}
	return pi == len(p)
}

// charLen is the length in bytes of the first character of a non-empty s.
func charLen(s string) int {
	if s[0] < utf8.RuneSelf {
		return 1
	}
	_, n := utf8.DecodeRuneInString(s)
	return n
}

func byteEqual(a, b byte, fold bool) bool {
	if a == b {
		return true
	}
	return fold && lowerASCII(a) == lowerASCII(b)
}

func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// splitARN splits a compiled ARN pattern at its first five ':' bytes into
// the six components IAM compares one by one (the last, the resource, may
// hold further colons). ok is false when there are fewer than six.
// The parts share p's storage.
func splitARN(p pattern) (parts [6]pattern, ok bool) {
	n := 0
	start := 0
	for i, t := range p {
		if n == 5 {
			break
		}
		if t == ':' {
			parts[n] = p[start:i:i]
			n++
			start = i + 1
		}
	}
	if n < 5 {
		return parts, false
	}
	parts[5] = p[start:]
	return parts, true
}

// matchARN compares the six ':'-separated components of s with parts, each
// with wildcards; a value that is not an ARN of six components matches
// nothing.
func matchARN(parts *[6]pattern, s string) bool {
	for i := range 5 {
		j := strings.IndexByte(s, ':')
		if j < 0 || !parts[i].match(s[:j], false) {
			return false
		}
		s = s[j+1:]
	}
	return parts[5].match(s, false)
}

// isARN reports whether s has the six ':'-separated components of an ARN
// and starts with "arn:".
func isARN(s string) bool {
	return strings.HasPrefix(s, "arn:") && strings.Count(s, ":") >= 5
}

// A template is a string from the policy that may hold policy variables.
type template struct {
	parts []part
	vars  bool // at least one part is a variable
}

type partKind uint8

const (
	partText    partKind = iota // policy text: '*' and '?' are wildcards where the operator has them
	partLiteral                 // ${*}, ${?} or ${$}: always literal
	partVar                     // ${key} or ${key, 'default'}
)

type part struct {
	kind   partKind
	text   string // partText, partLiteral; the default value for partVar
	key    string // partVar
	hasDef bool   // partVar has a default value
}

// parseTemplate parses s. Without vars (policy version 2008-10-17, or an
// operator that does not take policy variables) all of s is text.
func parseTemplate(s string, vars bool) (template, error) {
	if !vars || !strings.Contains(s, "${") {
		return template{parts: []part{{kind: partText, text: s}}}, nil
	}
	var t template
	rest := s
	for rest != "" {
		i := strings.Index(rest, "${")
		if i < 0 {
			t.parts = append(t.parts, part{kind: partText, text: rest})
			break
		}
		if i > 0 {
			t.parts = append(t.parts, part{kind: partText, text: rest[:i]})
		}
		j := strings.IndexByte(rest[i+2:], '}')
		if j < 0 {
			return template{}, fmt.Errorf("unterminated policy variable in %s", quote(s))
		}
		inner := rest[i+2 : i+2+j]
		rest = rest[i+2+j+1:]
		switch inner {
		case "*", "?", "$":
			t.parts = append(t.parts, part{kind: partLiteral, text: inner})
			continue
		}
		p := part{kind: partVar, key: strings.TrimSpace(inner)}
		if k, def, ok := strings.Cut(inner, ","); ok {
			def = strings.TrimSpace(def)
			if len(def) < 2 || def[0] != '\'' || def[len(def)-1] != '\'' {
				return template{}, fmt.Errorf("policy variable %s: the default value must be in single quotes, as in ${aws:username, 'anonymous'}", quote("${"+inner+"}"))
			}
			p.key, p.text, p.hasDef = strings.TrimSpace(k), def[1:len(def)-1], true
		}
		if p.key == "" || strings.ContainsAny(p.key, "${ \t\r\n") {
			return template{}, fmt.Errorf("invalid policy variable %s in %s", quote("${"+inner+"}"), quote(s))
		}
		t.parts = append(t.parts, p)
		t.vars = true
	}
	return t, nil
}

// expand substitutes the template's variables from ctx. It returns the
// resulting text and, with pat, the compiled pattern in which only the
// policy's own text has wildcards (wild). ok is false, with a note saying
// why, when a variable cannot be resolved: its key is not in the request
// and it has no default, or the key has several values.
func (t *template) expand(ctx map[string][]string, pat, wild bool) (text string, p pattern, note string, ok bool) {
	if len(t.parts) == 1 && t.parts[0].kind == partText {
		s := t.parts[0].text
		if pat {
			p = appendPattern(nil, s, wild)
		}
		return s, p, "", true
	}
	var b strings.Builder
	for _, pt := range t.parts {
		s := pt.text
		if pt.kind == partVar {
			vals := lookup(ctx, pt.key)
			switch {
			case len(vals) == 1:
				s = vals[0]
			case len(vals) > 1:
				return "", nil, "policy variable ${" + pt.key + "} has " + strconv.Itoa(len(vals)) + " values in the request", false
			case !pt.hasDef:
				return "", nil, "policy variable ${" + pt.key + "} is not in the request", false
			}
		}
		b.WriteString(s)
		if pat {
			p = appendPattern(p, s, wild && pt.kind == partText)
		}
	}
	return b.String(), p, "", true
}

// lookup returns the values of key in ctx, matching key case-insensitively
// as IAM does. An exact match wins; otherwise, of several keys that differ
// only in case, the one that sorts first is used, so the answer never
// depends on map order. A key with no values is not present.
func lookup(ctx map[string][]string, key string) []string {
	if v := ctx[key]; len(v) > 0 {
		return v
	}
	var best string
	var found []string
	for k, v := range ctx {
		if len(v) == 0 || !strings.EqualFold(k, key) {
			continue
		}
		if found == nil || k < best {
			best, found = k, v
		}
	}
	return found
}

// decimal is an exact decimal number: sign, integer digits without leading
// zeros, fraction digits without trailing zeros.
type decimal struct {
	neg        bool
	intp, frac string
}

// parseDecimal accepts an optional '-', digits, and an optional '.' followed
// by digits. Exponents are refused: they would let a short string stand
// for a number of any size.
func parseDecimal(s string) (decimal, bool) {
	var d decimal
	if strings.HasPrefix(s, "-") {
		d.neg, s = true, s[1:]
	}
	ip, fp, dot := strings.Cut(s, ".")
	if !allDigits(ip) || dot && !allDigits(fp) {
		return decimal{}, false
	}
	d.intp, d.frac = strings.TrimLeft(ip, "0"), strings.TrimRight(fp, "0")
	if d.intp == "" && d.frac == "" {
		d.neg = false // -0 == 0
	}
	return d, true
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func (a decimal) cmp(b decimal) int {
	if a.neg != b.neg {
		if a.neg {
			return -1
		}
		return 1
	}
	c := cmp.Compare(len(a.intp), len(b.intp))
	if c == 0 {
		c = strings.Compare(a.intp, b.intp)
	}
	if c == 0 {
		c = strings.Compare(a.frac, b.frac)
	}
	if a.neg {
		c = -c
	}
	return c
}

// dateLayouts are the W3C profiles of ISO 8601 that IAM documents, most
// specific first. time.RFC3339 also accepts fractional seconds.
var dateLayouts = [...]string{time.RFC3339, "2006-01-02T15:04Z07:00", "2006-01-02", "2006-01"}

// parseDate accepts RFC 3339 and the other W3C date formats, or an integer
// number of seconds since the Unix epoch (as in aws:EpochTime). A bare
// integer is always epoch seconds, never a year.
func parseDate(s string) (time.Time, bool) {
	if digits := strings.TrimPrefix(s, "-"); allDigits(digits) {
		if len(digits) > 12 { // beyond the year 33000: refuse rather than overflow
			return time.Time{}, false
		}
		n, err := strconv.ParseInt(s, 10, 64)
		return time.Unix(n, 0).UTC(), err == nil
	}
	for _, layout := range dateLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// parsePrefix parses a policy's IP address condition value: a CIDR block,
// or a single address, which means /32 (or /128).
func parsePrefix(s string) (netip.Prefix, bool) {
	var p netip.Prefix
	if strings.Contains(s, "/") {
		var err error
		if p, err = netip.ParsePrefix(s); err != nil {
			return netip.Prefix{}, false
		}
	} else {
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return netip.Prefix{}, false
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p.Masked(), true
}

// parseAddr parses a request's IP address; IPv4-mapped IPv6 addresses
// count as IPv4 and a zone is ignored.
func parseAddr(s string) (netip.Addr, bool) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, false
	}
	return a.WithZone("").Unmap(), true
}

func parseBase64(s string) ([]byte, bool) {
	b, err := base64.StdEncoding.DecodeString(s)
	return b, err == nil
}

// maxQuoted is how many bytes of a value a message shows.
const maxQuoted = 100

// quote returns s quoted as by %q, cut to about maxQuoted bytes.
func quote(s string) string {
	if len(s) <= maxQuoted {
		return strconv.Quote(s)
	}
	cut := maxQuoted
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strconv.Quote(s[:cut]) + "..."
}

// bare returns s as it is when it is a short run of printable non-space
// characters (an action, a service name, an ARN), and quoted otherwise, so
// that a reason always stays on one line.
func bare(s string) string {
	if s == "" || len(s) > maxQuoted {
		return quote(s)
	}
	for _, r := range s {
		if r == utf8.RuneError || r <= ' ' || r == '"' || r == 0x7f || r > '~' {
			return quote(s)
		}
	}
	return s
}
