package iampolicy

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"unicode"
)

// MaxDocumentSize is the largest policy document Parse accepts, in bytes.
// AWS's own limits are far lower (2048 characters for a trust policy by
// default); this one only bounds the work an untrusted document can cause.
const MaxDocumentSize = 128 << 10

// The policy language versions. Only 2012-10-17 substitutes policy variables.
const (
	Version20121017 = "2012-10-17"
	Version20081017 = "2008-10-17"
)

// maxDepth bounds JSON nesting; a valid policy nests six levels at most
// (document, Statement array, statement, Condition, operator, value array).
const maxDepth = 32

var errTooDeep = errors.New("policy document is nested too deeply")

// Parse parses a policy document strictly. The document is a JSON object
// with "Version" ("2012-10-17" or "2008-10-17"; when it is missing the
// version is 2008-10-17, in which policy variables are not substituted),
// an optional "Id", and "Statement": one statement object or a non-empty
// array of them. Each statement has an optional "Sid" (unique in the
// policy), "Effect" ("Allow" or "Deny", exactly), at most one of
// "Principal" and "NotPrincipal", exactly one of "Action" and "NotAction",
// at most one of "Resource" and "NotResource", and an optional
// "Condition".
//
// Parse refuses, with an error naming the statement (1-based) and the
// element: unknown or duplicate keys, values of the wrong JSON type, empty
// lists, actions that are not "*" or "service:action", resources that are
// not "*" or an ARN, unknown condition operators, and condition values
// that cannot be what their operator compares (a number for
// NumericEquals, a date for DateLessThan, a CIDR block for IpAddress,
// base64 for BinaryEquals, "true" or "false" for Bool and Null, an ARN of
// six components for the Arn operators). AWS would store some of these
// and then never match them; refusing them at once saves an operator a
// policy that silently grants or denies nothing. Documents larger than
// MaxDocumentSize and trailing data after the document are refused too.
func Parse(doc []byte) (*Policy, error) {
	if len(doc) > MaxDocumentSize {
		return nil, fmt.Errorf("policy document is %d bytes, more than the limit of %d", len(doc), MaxDocumentSize)
	}
	root, err := decodeJSON(doc)
	if err != nil {
		return nil, err
	}
	if root.kind != jObject {
		return nil, fmt.Errorf("policy document must be a JSON object, got %s", root.kind)
	}
	if k, dup := duplicateKey(root.obj); dup {
		return nil, fmt.Errorf("policy document has key %q twice", k)
	}
	p := &Policy{version: Version20081017}
	var stmts *jvalue
	for i := range root.obj {
		m := &root.obj[i]
		switch m.key {
		case "Version":
			if m.val.kind != jString {
				return nil, fmt.Errorf(`"Version" must be a string, got %s`, m.val.kind)
			}
			if m.val.str != Version20121017 && m.val.str != Version20081017 {
				return nil, fmt.Errorf(`"Version" must be %q or %q, got %s`, Version20121017, Version20081017, quote(m.val.str))
			}
			p.version = m.val.str
		case "Id":
			if m.val.kind != jString {
				return nil, fmt.Errorf(`"Id" must be a string, got %s`, m.val.kind)
			}
			p.id = m.val.str
		case "Statement":
			stmts = &m.val
		default:
			return nil, fmt.Errorf("policy document has unknown key %s%s", quote(m.key), didYouMean(m.key, "Version", "Id", "Statement"))
		}
	}
	if stmts == nil {
		return nil, errors.New(`policy document has no "Statement"`)
	}
	var list []jvalue
	switch stmts.kind {
	case jObject:
		list = []jvalue{*stmts}
	case jArray:
		if len(stmts.arr) == 0 {
			return nil, errors.New(`"Statement" must not be an empty array`)
		}
		list = stmts.arr
	default:
		return nil, fmt.Errorf(`"Statement" must be an object or an array of objects, got %s`, stmts.kind)
	}
	sids := make(map[string]int)
	p.statements = make([]statement, len(list))
	for i := range list {
		s := &p.statements[i]
		if err := s.parse(i+1, &list[i], p.version == Version20121017); err != nil {
			return nil, err
		}
		if s.sid != "" {
			if prev, ok := sids[s.sid]; ok {
				return nil, fmt.Errorf(`statement %d: "Sid" %s is already used by statement %d`, i+1, quote(s.sid), prev)
			}
			sids[s.sid] = i + 1
		}
	}
	return p, nil
}

// MaxTrustPolicyChars is IAM's default quota "Role trust policy length"
// (IAM and AWS STS quotas): 2,048 characters, white space not counted.
// An account can have it raised; the default is what a new account gets.
const MaxTrustPolicyChars = 2048

// ErrTrustPolicyTooLong means a trust policy is longer than
// MaxTrustPolicyChars. IAM's CreateRole and UpdateAssumeRolePolicy answer
// it with LimitExceeded ("Cannot exceed quota for ACLSizePerRole: 2048"),
// not MalformedPolicyDocument, so callers branch on it.
var ErrTrustPolicyTooLong = errors.New("trust policy exceeds IAM's quota")

// TrustPolicyChars counts a trust policy's characters the way IAM's quota
// does: white space is not counted.
func TrustPolicyChars(doc []byte) int {
	n := 0
	for _, r := range string(doc) {
		if !unicode.IsSpace(r) {
			n++
		}
	}
	return n
}

// ParseTrustPolicy parses a role's trust policy (its
// AssumeRolePolicyDocument) as Parse does, then applies the rules IAM adds
// for trust policies. A document longer than MaxTrustPolicyChars is
// refused first, with ErrTrustPolicyTooLong. CreateRole and
// UpdateAssumeRolePolicy answer the others with MalformedPolicyDocument:
//   - every statement names who may assume the role with "Principal"
//     (AWS: "Missing required field Principal");
//   - no statement has "NotPrincipal" (IAM documents that a role trust
//     policy cannot use it), "Resource" or "NotResource" (AWS: "Has
//     prohibited field Resource"): the resource of a trust policy is the
//     role itself.
//
// The error names the statement (1-based) and quotes AWS's words, so that
// a policy refused here is recognisably the one AWS would refuse. Other
// refusals of CreateRole are not made: an invalid or unknown principal
// depends on account state this package does not have, and AWS does not
// document which actions a trust policy may name.
func ParseTrustPolicy(doc []byte) (*Policy, error) {
	if n := TrustPolicyChars(doc); n > MaxTrustPolicyChars {
		return nil, fmt.Errorf("%w: it is %d characters without white space, and IAM's quota \"Role trust policy length\" is %d (AWS: Cannot exceed quota for ACLSizePerRole: %d); shorten it, for example by merging statements", ErrTrustPolicyTooLong, n, MaxTrustPolicyChars, MaxTrustPolicyChars)
	}
	p, err := Parse(doc)
	if err != nil {
		return nil, err
	}
	for i := range p.statements {
		s := &p.statements[i]
		e := stmtError(s.index)
		switch {
		case s.principal != nil && s.notPrincipal:
			return nil, e.errorf(`Has prohibited field NotPrincipal: a trust policy names who may assume the role with "Principal"`)
		case s.principal == nil:
			return nil, e.errorf(`Missing required field Principal: a trust policy names who may assume the role, as in "Principal": {"Service": "rolesanywhere.amazonaws.com"}`)
		case s.resources != nil && s.notResource:
			return nil, e.errorf(`Has prohibited field NotResource: the resource of a trust policy is the role itself; remove "NotResource"`)
		case s.resources != nil:
			return nil, e.errorf(`Has prohibited field Resource: the resource of a trust policy is the role itself; remove "Resource"`)
		}
	}
	return p, nil
}

// stmtError builds errors about statement n.
type stmtError int

func (n stmtError) errorf(format string, args ...any) error {
	return fmt.Errorf("statement %d: "+format, append([]any{int(n)}, args...)...)
}

func (s *statement) parse(n int, v *jvalue, vars bool) error {
	e := stmtError(n)
	s.index = n
	if v.kind != jObject {
		return e.errorf("must be a JSON object, got %s", v.kind)
	}
	if k, dup := duplicateKey(v.obj); dup {
		return e.errorf("has key %q twice", k)
	}
	var effect, principal, notPrincipal, action, notAction, resource, notResource, condition *jvalue
	elements := []struct {
		key string
		val **jvalue
	}{
		{"Effect", &effect}, {"Principal", &principal}, {"NotPrincipal", &notPrincipal}, {"Action", &action},
		{"NotAction", &notAction}, {"Resource", &resource}, {"NotResource", &notResource}, {"Condition", &condition},
	}
	for i := range v.obj {
		m := &v.obj[i]
		if m.key == "Sid" {
			if m.val.kind != jString {
				return e.errorf(`"Sid" must be a string, got %s`, m.val.kind)
			}
			s.sid = m.val.str
			continue
		}
		known := []string{"Sid"}
		found := false
		for _, el := range elements {
			known = append(known, el.key)
			if el.key == m.key {
				*el.val, found = &m.val, true
			}
		}
		if !found {
			return e.errorf("unknown key %s%s", quote(m.key), didYouMean(m.key, known...))
		}
	}

	switch {
	case effect == nil:
		return e.errorf(`has no "Effect"`)
	case effect.kind != jString:
		return e.errorf(`"Effect" must be a string, got %s`, effect.kind)
	case effect.str == "Allow":
		s.effect = Allow
	case effect.str == "Deny":
		s.effect = Deny
	default:
		return e.errorf(`"Effect" must be "Allow" or "Deny", got %s`, quote(effect.str))
	}

	name, pv, not, err := either("Principal", principal, notPrincipal)
	if err == nil && pv != nil {
		s.notPrincipal = not
		s.principal, err = parsePrincipal(name, pv)
	}
	if err != nil {
		return e.errorf("%w", err)
	}
	name, av, not, err := either("Action", action, notAction)
	if err == nil && av == nil {
		err = errors.New(`has neither "Action" nor "NotAction"`)
	}
	if err == nil {
		s.notAction = not
		s.actions, err = parseActions(name, av)
	}
	if err != nil {
		return e.errorf("%w", err)
	}
	name, rv, not, err := either("Resource", resource, notResource)
	if err == nil && rv != nil {
		s.notResource = not
		s.resources, err = parseResources(name, rv, vars)
	}
	if err != nil {
		return e.errorf("%w", err)
	}
	if condition != nil {
		if err := s.parseConditions(condition, vars); err != nil {
			return e.errorf("%w", err)
		}
	}
	return nil
}

// parseActions reads an Action or NotAction element (name).
func parseActions(name string, v *jvalue) ([]pattern, error) {
	list, err := stringList(name, v)
	if err != nil {
		return nil, err
	}
	var out []pattern
	for _, a := range list {
		if err := checkAction(a); err != nil {
			return nil, fmt.Errorf("%q: %w", name, err)
		}
		out = append(out, appendPattern(nil, a, true))
	}
	return out, nil
}

// parseResources reads a Resource or NotResource element (name): "*" or
// ARNs, with policy variables when vars is set.
func parseResources(name string, v *jvalue, vars bool) ([]resourcePattern, error) {
	list, err := stringList(name, v)
	if err != nil {
		return nil, err
	}
	var out []resourcePattern
	for _, r := range list {
		if r != "*" && !isARN(r) {
			return nil, fmt.Errorf(`%q: resource %s must be "*" or an ARN ("arn:partition:service:region:account:resource")`, name, quote(r))
		}
		t, err := parseTemplate(r, vars)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", name, err)
		}
		res := resourcePattern{tmpl: t, any: r == "*"}
		if !t.vars {
			_, res.pat, _, _ = t.expand(nil, true, true)
		}
		out = append(out, res)
	}
	return out, nil
}

// either picks one of a pair of elements such as Action and NotAction:
// its name, its value (nil when neither is there) and whether it is the
// Not form. Both at once is an error.
func either(name string, v, not *jvalue) (string, *jvalue, bool, error) {
	switch {
	case v != nil && not != nil:
		return "", nil, false, fmt.Errorf(`has both %q and "Not%s"`, name, name)
	case not != nil:
		return "Not" + name, not, true, nil
	}
	return name, v, false, nil
}

// checkAction accepts "*" and "service:action" (either side may hold
// wildcards), as AWS does: an action without its service prefix is refused.
func checkAction(a string) error {
	if a == "" {
		return errors.New("an action must not be empty")
	}
	if a == "*" {
		return nil
	}
	svc, name, ok := strings.Cut(a, ":")
	if !ok || svc == "" || name == "" || strings.Contains(name, ":") {
		return fmt.Errorf(`action %s must be "*" or "service:action", as in "sts:AssumeRole"`, quote(a))
	}
	return nil
}

func parsePrincipal(name string, v *jvalue) (*principalSet, error) {
	switch v.kind {
	case jString:
		if v.str != "*" {
			return nil, fmt.Errorf(`%q must be "*" or an object such as {"Service": "rolesanywhere.amazonaws.com"}, got %s`, name, quote(v.str))
		}
		return &principalSet{any: true}, nil
	case jObject:
	default:
		return nil, fmt.Errorf(`%q must be "*" or an object, got %s`, name, v.kind)
	}
	if len(v.obj) == 0 {
		return nil, fmt.Errorf("%q must name at least one principal", name)
	}
	if k, dup := duplicateKey(v.obj); dup {
		return nil, fmt.Errorf("%q has key %q twice", name, k)
	}
	ps := &principalSet{}
	for i := range v.obj {
		m := &v.obj[i]
		switch m.key {
		case AWSPrincipal, ServicePrincipal, FederatedPrincipal, CanonicalUserPrincipal:
		default:
			return nil, fmt.Errorf("%q has unknown principal type %s%s", name, quote(m.key),
				didYouMean(m.key, AWSPrincipal, ServicePrincipal, FederatedPrincipal, CanonicalUserPrincipal))
		}
		ids, err := stringList(name+"."+m.key, &m.val)
		if err != nil {
			return nil, err
		}
		for _, id := range ids {
			if id == "" {
				return nil, fmt.Errorf("%q has an empty principal", name+"."+m.key)
			}
			ps.entries = append(ps.entries, Principal{Type: m.key, ID: id})
		}
	}
	return ps, nil
}

// stringList reads a string or a non-empty array of strings.
func stringList(name string, v *jvalue) ([]string, error) {
	switch v.kind {
	case jString:
		return []string{v.str}, nil
	case jArray:
		if len(v.arr) == 0 {
			return nil, fmt.Errorf("%q must not be an empty array", name)
		}
		out := make([]string, len(v.arr))
		for i := range v.arr {
			if v.arr[i].kind != jString {
				return nil, fmt.Errorf("%q must hold only strings, got %s at index %d", name, v.arr[i].kind, i)
			}
			out[i] = v.arr[i].str
		}
		return out, nil
	}
	return nil, fmt.Errorf("%q must be a string or an array of strings, got %s", name, v.kind)
}

func (s *statement) parseConditions(v *jvalue, vars bool) error {
	if v.kind != jObject {
		return fmt.Errorf(`"Condition" must be an object, got %s`, v.kind)
	}
	if k, dup := duplicateKey(v.obj); dup {
		return fmt.Errorf(`"Condition" has operator %q twice`, k)
	}
	for i := range v.obj {
		op := &v.obj[i]
		base, err := parseOperator(op.key)
		if err != nil {
			return err
		}
		if op.val.kind != jObject {
			return fmt.Errorf("condition %s must be an object of condition keys, got %s", quote(op.key), op.val.kind)
		}
		if len(op.val.obj) == 0 {
			return fmt.Errorf("condition %s must name at least one condition key", op.key)
		}
		if k, dup := duplicateKey(op.val.obj); dup {
			return fmt.Errorf("condition %s has key %q twice", op.key, k)
		}
		for j := range op.val.obj {
			m := &op.val.obj[j]
			c, err := newCondition(op.key, base, m.key, &m.val, vars)
			if err != nil {
				return fmt.Errorf("condition %s %s: %w", op.key, bare(m.key), err)
			}
			s.conditions = append(s.conditions, c)
		}
	}
	// Evaluation reports the first condition that fails; sorting makes
	// that choice independent of the order of keys in the JSON text.
	slices.SortStableFunc(s.conditions, func(a, b condition) int {
		return cmp.Or(strings.Compare(a.op, b.op), strings.Compare(a.key, b.key))
	})
	return nil
}

// conditionValues reads a condition's values: a string, boolean or number,
// or a non-empty array of those, each turned into its string form (true
// becomes "true", a number stays as written in the JSON text).
func conditionValues(v *jvalue) ([]string, error) {
	scalar := func(v *jvalue) (string, bool) {
		switch v.kind {
		case jString, jNumber, jBool:
			return v.str, true
		}
		return "", false
	}
	if v.kind == jArray {
		if len(v.arr) == 0 {
			return nil, errors.New("the list of values must not be empty")
		}
		out := make([]string, len(v.arr))
		for i := range v.arr {
			s, ok := scalar(&v.arr[i])
			if !ok {
				return nil, fmt.Errorf("values must be strings, booleans or numbers, got %s at index %d", v.arr[i].kind, i)
			}
			out[i] = s
		}
		return out, nil
	}
	s, ok := scalar(v)
	if !ok {
		return nil, fmt.Errorf("the value must be a string, boolean or number, or an array of those, got %s", v.kind)
	}
	return []string{s}, nil
}

// didYouMean suggests the known name that differs from got only in case or
// in a trailing "s" ("Actions", "principal").
func didYouMean(got string, known ...string) string {
	for _, k := range known {
		if strings.EqualFold(got, k) || strings.EqualFold(got, k+"s") {
			return fmt.Sprintf(" (did you mean %q?)", k)
		}
	}
	return ""
}

// The JSON tree. Decoding into a tree of our own (rather than into structs)
// keeps the order of keys, finds duplicate keys, and keeps numbers as
// written.

type jkind uint8

const (
	jNull jkind = iota
	jString
	jNumber
	jBool
	jArray
	jObject
)

func (k jkind) String() string {
	switch k {
	case jString:
		return "a string"
	case jNumber:
		return "a number"
	case jBool:
		return "a boolean"
	case jArray:
		return "an array"
	case jObject:
		return "an object"
	}
	return "null"
}

type jvalue struct {
	kind jkind
	str  string // jString, jNumber (as written), jBool ("true" or "false")
	arr  []jvalue
	obj  []jmember
}

type jmember struct {
	key string
	val jvalue
}

func decodeJSON(doc []byte) (jvalue, error) {
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	v, err := readValue(dec, 0)
	if err != nil {
		if errors.Is(err, errTooDeep) {
			return jvalue{}, err
		}
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return jvalue{}, fmt.Errorf("policy document is not valid JSON: %w (at byte %d)", err, se.Offset)
		}
		return jvalue{}, fmt.Errorf("policy document is not valid JSON: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return jvalue{}, fmt.Errorf("policy document has data after its end, at byte %d", dec.InputOffset())
	}
	return v, nil
}

func readValue(dec *json.Decoder, depth int) (jvalue, error) {
	if depth > maxDepth {
		return jvalue{}, errTooDeep
	}
	tok, err := dec.Token()
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		return jvalue{}, err
	}
	switch t := tok.(type) {
	case string:
		return jvalue{kind: jString, str: t}, nil
	case json.Number:
		return jvalue{kind: jNumber, str: t.String()}, nil
	case bool:
		return jvalue{kind: jBool, str: strconv.FormatBool(t)}, nil
	case nil:
		return jvalue{kind: jNull}, nil
	case json.Delim:
		switch t {
		case '{':
			v := jvalue{kind: jObject}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return jvalue{}, err
				}
				key, ok := kt.(string)
				if !ok {
					return jvalue{}, fmt.Errorf("object key %v is not a string", kt)
				}
				val, err := readValue(dec, depth+1)
				if err != nil {
					return jvalue{}, err
				}
				v.obj = append(v.obj, jmember{key: key, val: val})
			}
			return v, closeDelim(dec)
		case '[':
			v := jvalue{kind: jArray}
			for dec.More() {
				val, err := readValue(dec, depth+1)
				if err != nil {
					return jvalue{}, err
				}
				v.arr = append(v.arr, val)
			}
			return v, closeDelim(dec)
		}
	}
	return jvalue{}, fmt.Errorf("unexpected %v", tok)
}

func closeDelim(dec *json.Decoder) error {
	_, err := dec.Token()
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// duplicateKey returns a key that occurs twice in obj.
func duplicateKey(obj []jmember) (string, bool) {
	if len(obj) < 2 {
		return "", false
	}
	seen := make(map[string]bool, len(obj))
	for _, m := range obj {
		if seen[m.key] {
			return m.key, true
		}
		seen[m.key] = true
	}
	return "", false
}
