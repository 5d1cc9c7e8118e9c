package iampolicy

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// family groups the condition operators that compare values the same way.
type family uint8

const (
	famString     family = iota // exact, case-sensitive
	famStringFold               // exact, ignoring case
	famStringLike               // wildcards, case-sensitive
	famNumeric
	famDate
	famBool
	famBinary
	famIP
	famARN
	famNull
)

// takesVariables reports whether policy variables are substituted in the
// values of operators of this family. AWS documents them for the string,
// ARN and Bool operators only ("Policy variables – Not supported" for
// Numeric, Date, Binary, IP address and Null): there "${...}" is literal.
func (f family) takesVariables() bool {
	switch f {
	case famString, famStringFold, famStringLike, famARN, famBool:
		return true
	}
	return false
}

type comparison uint8

const (
	cmpEq comparison = iota
	cmpLT
	cmpLE
	cmpGT
	cmpGE
)

func (c comparison) holds(order int) bool {
	switch c {
	case cmpLT:
		return order < 0
	case cmpLE:
		return order <= 0
	case cmpGT:
		return order > 0
	case cmpGE:
		return order >= 0
	}
	return order == 0
}

// operator is a base condition operator. A negated one (StringNotEquals,
// NotIpAddress, ...) holds for a request value that matches none of the
// policy values under the positive comparison.
type operator struct {
	fam     family
	cmp     comparison
	negated bool
}

// operators are the condition operators: a static table, not a map every
// keyless command would build at start (lookupOperator scans it).
var operators = [...]struct {
	name string
	op   operator
}{
	{"StringEquals", operator{fam: famString}},
	{"StringNotEquals", operator{fam: famString, negated: true}},
	{"StringEqualsIgnoreCase", operator{fam: famStringFold}},
	{"StringNotEqualsIgnoreCase", operator{fam: famStringFold, negated: true}},
	{"StringLike", operator{fam: famStringLike}},
	{"StringNotLike", operator{fam: famStringLike, negated: true}},
	{"NumericEquals", operator{fam: famNumeric}},
	{"NumericNotEquals", operator{fam: famNumeric, negated: true}},
	{"NumericLessThan", operator{fam: famNumeric, cmp: cmpLT}},
	{"NumericLessThanEquals", operator{fam: famNumeric, cmp: cmpLE}},
	{"NumericGreaterThan", operator{fam: famNumeric, cmp: cmpGT}},
	{"NumericGreaterThanEquals", operator{fam: famNumeric, cmp: cmpGE}},
	{"DateEquals", operator{fam: famDate}},
	{"DateNotEquals", operator{fam: famDate, negated: true}},
	{"DateLessThan", operator{fam: famDate, cmp: cmpLT}},
	{"DateLessThanEquals", operator{fam: famDate, cmp: cmpLE}},
	{"DateGreaterThan", operator{fam: famDate, cmp: cmpGT}},
	{"DateGreaterThanEquals", operator{fam: famDate, cmp: cmpGE}},
	{"Bool", operator{fam: famBool}},
	{"BinaryEquals", operator{fam: famBinary}},
	{"IpAddress", operator{fam: famIP}},
	{"NotIpAddress", operator{fam: famIP, negated: true}},
	// IAM: "The ArnEquals and ArnLike condition operators behave
	// identically", and so do ArnNotEquals and ArnNotLike.
	{"ArnEquals", operator{fam: famARN}},
	{"ArnLike", operator{fam: famARN}},
	{"ArnNotEquals", operator{fam: famARN, negated: true}},
	{"ArnNotLike", operator{fam: famARN, negated: true}},
	{"Null", operator{fam: famNull}},
}

// lookupOperator is the condition operator named name.
func lookupOperator(name string) (operator, bool) {
	for _, o := range operators {
		if o.name == name {
			return o.op, true
		}
	}
	return operator{}, false
}

// setOp is a condition set operator prefix.
type setOp uint8

const (
	setNone setOp = iota
	setAny        // ForAnyValue:
	setAll        // ForAllValues:
)

// opSpec is a full operator name taken apart.
type opSpec struct {
	operator
	set      setOp
	ifExists bool
}

// parseOperator takes apart "[ForAnyValue:|ForAllValues:]Base[IfExists]".
// Operator names are case-sensitive; a name that is only wrong in case gets
// a hint.
func parseOperator(name string) (opSpec, error) {
	var spec opSpec
	base := name
	if prefix, rest, ok := strings.Cut(name, ":"); ok {
		switch prefix {
		case "ForAnyValue":
			spec.set = setAny
		case "ForAllValues":
			spec.set = setAll
		default:
			return opSpec{}, unknownOperator(name)
		}
		base = rest
	}
	op, ok := lookupOperator(base)
	if !ok {
		if b, found := strings.CutSuffix(base, "IfExists"); found {
			op, ok = lookupOperator(b)
			spec.ifExists = true
		}
	}
	if !ok {
		return opSpec{}, unknownOperator(name)
	}
	if op.fam == famNull && (spec.ifExists || spec.set != setNone) {
		// IAM: IfExists can be added to "any condition operator name
		// except the Null condition"; Null tests presence, not values.
		return opSpec{}, fmt.Errorf("condition operator %s: Null takes neither IfExists nor ForAnyValue/ForAllValues", quote(name))
	}
	spec.operator = op
	return spec, nil
}

func unknownOperator(name string) error {
	hint := ""
	if c, ok := canonicalOperator(name); ok {
		hint = fmt.Sprintf(" (did you mean %q?)", c)
	}
	return fmt.Errorf("unknown condition operator %s%s", quote(name), hint)
}

// canonicalOperator finds the operator that name spells in another case.
func canonicalOperator(name string) (string, bool) {
	prefix := ""
	if p, rest, ok := strings.Cut(name, ":"); ok {
		switch {
		case strings.EqualFold(p, "ForAnyValue"):
			prefix = "ForAnyValue:"
		case strings.EqualFold(p, "ForAllValues"):
			prefix = "ForAllValues:"
		default:
			return "", false
		}
		name = rest
	}
	suffix := ""
	if len(name) > len("IfExists") && strings.EqualFold(name[len(name)-len("IfExists"):], "IfExists") {
		if _, ok := lookupOperator(name); !ok {
			suffix, name = "IfExists", name[:len(name)-len("IfExists")]
		}
	}
	for _, o := range operators {
		if strings.EqualFold(o.name, name) {
			return prefix + o.name + suffix, true
		}
	}
	return "", false
}

// A condition is one key under one operator, with its policy values.
type condition struct {
	op string // as written, e.g. "ForAnyValue:StringLikeIfExists"
	opSpec
	key     string
	values  []condValue
	res     []resolved // the values, resolved once when none holds a variable
	dynamic bool       // some value holds a policy variable
}

type condValue struct {
	raw  string
	tmpl template // for the families that take variables
}

// resolved is a policy value ready to compare with request values.
type resolved struct {
	ok   bool   // false: a policy variable could not be resolved; matches nothing
	note string // why not ok
	text string
	pat  pattern    // famStringLike
	arn  [6]pattern // famARN
	num  decimal
	time time.Time
	pfx  netip.Prefix
	bin  []byte
	flag bool // famNull: the value is "true" (the key must be absent)
}

func newCondition(op string, spec opSpec, key string, v *jvalue, vars bool) (condition, error) {
	if svc, name, ok := strings.Cut(key, ":"); !ok || svc == "" || name == "" {
		return condition{}, errors.New(`the condition key must be "service:name", as in "aws:SourceArn"`)
	}
	vals, err := conditionValues(v)
	if err != nil {
		return condition{}, err
	}
	c := condition{op: op, opSpec: spec, key: key, values: make([]condValue, len(vals)), res: make([]resolved, len(vals))}
	vars = vars && spec.fam.takesVariables()
	for i, s := range vals {
		c.values[i].raw = s
		r := resolved{ok: true, text: s}
		var ok bool
		switch spec.fam {
		case famNumeric:
			if r.num, ok = parseDecimal(s); !ok {
				return condition{}, fmt.Errorf("%s is not a decimal number", quote(s))
			}
		case famDate:
			if r.time, ok = parseDate(s); !ok {
				return condition{}, fmt.Errorf(`%s is not a date: use RFC 3339, as in "2026-01-02T15:04:05Z", or seconds since the Unix epoch`, quote(s))
			}
		case famIP:
			if r.pfx, ok = parsePrefix(s); !ok {
				return condition{}, fmt.Errorf("%s is not an IP address or CIDR block", quote(s))
			}
		case famBinary:
			if r.bin, ok = parseBase64(s); !ok {
				return condition{}, fmt.Errorf("%s is not standard base64", quote(s))
			}
		case famNull:
			if !isBool(s) {
				return condition{}, fmt.Errorf(`%s must be "true" (the key is absent) or "false" (the key is present)`, quote(s))
			}
			r.flag = strings.EqualFold(s, "true")
		default:
			t, err := parseTemplate(s, vars)
			if err != nil {
				return condition{}, err
			}
			c.values[i].tmpl = t
			if t.vars {
				c.dynamic = true
				continue
			}
			r = resolveValue(spec.fam, &t, nil)
			if !r.ok {
				switch spec.fam {
				case famBool:
					return condition{}, fmt.Errorf(`%s must be "true" or "false"`, quote(s))
				case famARN:
					return condition{}, fmt.Errorf("%s is not an ARN: %s compares the six ':'-separated components of an ARN; use StringLike for other patterns", quote(s), op)
				}
			}
		}
		c.res[i] = r
	}
	if c.dynamic {
		c.res = nil
	}
	return c, nil
}

func isBool(s string) bool {
	return strings.EqualFold(s, "true") || strings.EqualFold(s, "false")
}

// resolveValue substitutes the policy variables of a value of one of the
// families that take them.
func resolveValue(fam family, t *template, ctx map[string][]string) resolved {
	switch fam {
	case famStringLike:
		text, p, note, ok := t.expand(ctx, true, true)
		return resolved{ok: ok, note: note, text: text, pat: p}
	case famARN:
		text, p, note, ok := t.expand(ctx, true, true)
		if !ok {
			return resolved{note: note}
		}
		parts, ok := splitARN(p)
		if !ok {
			return resolved{note: "the policy value " + quote(text) + " is not an ARN", text: text}
		}
		return resolved{ok: true, text: text, arn: parts}
	}
	text, _, note, ok := t.expand(ctx, false, false)
	if ok && fam == famBool && !isBool(text) {
		return resolved{note: "the policy value " + quote(text) + ` is not "true" or "false"`, text: text}
	}
	return resolved{ok: ok, note: note, text: text}
}

// resolve returns the condition's policy values for this request.
func (c *condition) resolve(ctx map[string][]string) []resolved {
	if !c.dynamic {
		return c.res
	}
	rs := make([]resolved, len(c.values))
	for i := range c.values {
		rs[i] = resolveValue(c.fam, &c.values[i].tmpl, ctx)
	}
	return rs
}

// eval reports whether the condition holds for the request context and,
// when it does not, why (without the operator and key, which the caller
// adds).
//
// Absent keys follow IAM's documentation: "If the key that you specify in
// a policy condition is not present in the request context, the values do
// not match and the condition is false. If the policy condition requires
// that the key is not matched, such as StringNotLike or ArnNotLike, and the
// right key is not present, the condition is true." ...IfExists makes an
// absent key true for every operator; ForAllValues is true and
// ForAnyValue false when the key is absent; Null tests presence only.
//
// A present key may have several values. ForAnyValue holds when at least
// one request value satisfies the operator, ForAllValues when every one
// does; without a set operator (which IAM says not to use with
// multivalued keys) this package treats the condition like ForAnyValue: it
// holds when any request value satisfies it.
func (c *condition) eval(ctx map[string][]string) (bool, string) {
	vals := lookup(ctx, c.key)
	if c.fam == famNull {
		present := len(vals) > 0
		for _, r := range c.res {
			if r.flag != present {
				return true, ""
			}
		}
		if present {
			return false, "key " + bare(c.key) + " is in the request (got " + quoteList(vals) + "), want it absent"
		}
		return false, "key " + bare(c.key) + " is not in the request, want it present"
	}
	if len(vals) == 0 {
		if c.ifExists || c.set == setAll || c.set == setNone && c.negated {
			return true, ""
		}
		return false, "key " + bare(c.key) + " is not in the request"
	}
	rs := c.resolve(ctx)
	if c.set == setAll {
		for i, v := range vals {
			if !c.satisfied(rs, v) {
				return false, c.explain(rs, vals[i:i+1], i, len(vals))
			}
		}
		return true, ""
	}
	for _, v := range vals {
		if c.satisfied(rs, v) {
			return true, ""
		}
	}
	return false, c.explain(rs, vals, 0, len(vals))
}

func (c *condition) satisfied(rs []resolved, v string) bool {
	m, _ := c.matchAny(rs, v)
	return m != c.negated
}

// matchAny reports whether request value v matches any policy value under
// the operator's positive comparison; valid is false when v cannot be read
// as the operator's type (not a number, not a date, ...), in which case it
// matches nothing.
func (c *condition) matchAny(rs []resolved, v string) (matched, valid bool) {
	switch c.fam {
	case famNumeric:
		d, ok := parseDecimal(v)
		if !ok {
			return false, false
		}
		for i := range rs {
			if c.cmp.holds(d.cmp(rs[i].num)) {
				return true, true
			}
		}
	case famDate:
		t, ok := parseDate(v)
		if !ok {
			return false, false
		}
		for i := range rs {
			if c.cmp.holds(t.Compare(rs[i].time)) {
				return true, true
			}
		}
	case famIP:
		a, ok := parseAddr(v)
		if !ok {
			return false, false
		}
		for i := range rs {
			if rs[i].pfx.Contains(a) {
				return true, true
			}
		}
	case famBinary:
		b, ok := parseBase64(v)
		if !ok {
			return false, false
		}
		for i := range rs {
			if bytes.Equal(b, rs[i].bin) {
				return true, true
			}
		}
	case famBool:
		if !isBool(v) {
			return false, false
		}
		for i := range rs {
			if rs[i].ok && strings.EqualFold(rs[i].text, v) {
				return true, true
			}
		}
	case famARN:
		if strings.Count(v, ":") < 5 {
			return false, false
		}
		for i := range rs {
			if rs[i].ok && matchARN(&rs[i].arn, v) {
				return true, true
			}
		}
	case famStringLike:
		for i := range rs {
			if rs[i].ok && rs[i].pat.match(v, false) {
				return true, true
			}
		}
	case famStringFold:
		for i := range rs {
			if rs[i].ok && strings.EqualFold(rs[i].text, v) {
				return true, true
			}
		}
	default:
		for i := range rs {
			if rs[i].ok && rs[i].text == v {
				return true, true
			}
		}
	}
	return false, true
}

// explain says why vals (the request values, or for ForAllValues the one
// that failed, number i of n) do not satisfy the condition.
func (c *condition) explain(rs []resolved, vals []string, i, n int) string {
	var b strings.Builder
	b.WriteString("got ")
	if len(vals) == 1 {
		b.WriteString(quote(vals[0]))
		if _, valid := c.matchAny(rs, vals[0]); !valid {
			b.WriteString(" (not " + c.typeName() + ")")
		}
		if c.set == setAll && n > 1 {
			fmt.Fprintf(&b, " (value %d of %d)", i+1, n)
		}
	} else {
		b.WriteString(quoteList(vals))
	}
	b.WriteString(", want ")
	b.WriteString(c.want(rs))
	return b.String()
}

func (c *condition) typeName() string {
	switch c.fam {
	case famNumeric:
		return "a number"
	case famDate:
		return "a date"
	case famIP:
		return "an IP address"
	case famBinary:
		return "base64"
	case famBool:
		return `"true" or "false"`
	case famARN:
		return "an ARN"
	}
	return "a string"
}

// want describes what the policy values accept.
func (c *condition) want(rs []resolved) string {
	items := make([]string, len(rs))
	note := ""
	for i := range rs {
		r := &rs[i]
		switch {
		case !r.ok:
			items[i] = quote(c.values[i].raw)
			if note == "" {
				note = r.note
			}
		case c.fam == famNumeric:
			items[i] = r.text
		default:
			items[i] = quote(r.text)
		}
		if c.cmp != cmpEq {
			items[i] = c.cmpWord() + items[i]
		}
	}
	var s string
	switch {
	case c.negated && c.fam == famIP:
		s = "an address outside " + oneOrList(items, "all of ")
	case c.negated && len(items) == 1:
		s = "anything but " + items[0]
	case c.negated:
		s = "none of " + joinLimited(items, ", ")
	case c.cmp != cmpEq:
		s = joinLimited(items, " or ")
	case c.fam == famIP:
		s = "an address in " + oneOrList(items, "one of ")
	default:
		s = oneOrList(items, "one of ")
	}
	if c.fam == famStringFold {
		s += " (ignoring case)"
	}
	if note != "" {
		s += " (" + note + ")"
	}
	return s
}

func (c *condition) cmpWord() string {
	if c.fam == famDate {
		switch c.cmp {
		case cmpLT:
			return "before "
		case cmpLE:
			return "at or before "
		case cmpGT:
			return "after "
		case cmpGE:
			return "at or after "
		}
		return ""
	}
	switch c.cmp {
	case cmpLT:
		return "< "
	case cmpLE:
		return "<= "
	case cmpGT:
		return "> "
	case cmpGE:
		return ">= "
	}
	return ""
}

// maxListed is how many values a message lists before "and N more".
const maxListed = 10

func oneOrList(items []string, many string) string {
	if len(items) == 1 {
		return items[0]
	}
	return many + joinLimited(items, ", ")
}

func joinLimited(items []string, sep string) string {
	if len(items) <= maxListed {
		return strings.Join(items, sep)
	}
	return strings.Join(items[:maxListed], sep) + " and " + strconv.Itoa(len(items)-maxListed) + " more"
}

// quoteList quotes request values: one alone, several in brackets.
func quoteList(vals []string) string {
	if len(vals) == 1 {
		return quote(vals[0])
	}
	n := min(len(vals), maxListed)
	q := make([]string, n, n+1)
	for i := range q {
		q[i] = quote(vals[i])
	}
	if len(vals) > n {
		q = append(q, "and "+strconv.Itoa(len(vals)-n)+" more")
	}
	return "[" + strings.Join(q, ", ") + "]"
}
