package awsmodel

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Exchange is one HTTP request and the answer to it.
type Exchange struct {
	Method      string
	Path        string // escaped, as on the wire
	RawQuery    string
	ReqHeader   http.Header
	ReqBody     []byte
	Status      int
	RespHeader  http.Header
	RespBody    []byte
	Description string // "POST /trustanchors", for messages
}

// Mismatch is one way an exchange differs from the model.
type Mismatch struct {
	Model     string // the model file
	Operation string // "" when no operation matched
	Where     string // the member path: "trustAnchor.createdAt"; "" for the envelope
	Problem   string // "expected timestamp (iso8601), got 1700000000"
}

func (m Mismatch) String() string {
	op := m.Operation
	if op == "" {
		op = "(no operation)"
	}
	where := ""
	if m.Where != "" {
		where = " " + m.Where
	}
	return fmt.Sprintf("%s%s: %s [%s]", op, where, m.Problem, m.Model)
}

// Operation returns the operation an exchange is a call of: for
// rest-json by method and path, for query by its Action parameter. It
// returns nil when the model has none.
func (m *Model) Operation(x *Exchange) *Operation {
	if m.Protocol == "rest-json" {
		return m.FindREST(x.Method, x.Path)
	}
	return m.Operations[queryParams(x).Get("Action")]
}

// Check checks x against the model and returns every difference. The
// operation is the one x is a call of (see Operation).
func (m *Model) Check(x *Exchange) []Mismatch {
	c := &checker{m: m}
	op := m.Operation(x)
	if op == nil {
		what := x.Method + " " + x.Path
		if m.Protocol == "query" {
			what = "Action=" + queryParams(x).Get("Action")
		}
		c.add("", "%s is no operation of the model", what)
		return c.out
	}
	c.op = op.Name
	// Not in the model but in every AWS answer: the SDKs read it into
	// their errors' RequestID and into response metadata.
	if x.RespHeader.Get("X-Amzn-Requestid") == "" {
		c.add("", "no x-amzn-RequestId header (status %d); AWS sends one with every answer", x.Status)
	}
	switch m.Protocol {
	case "rest-json":
		c.restJSON(op, x)
	case "query":
		c.query(op, x)
	}
	return c.out
}

type checker struct {
	m   *Model
	op  string
	out []Mismatch
}

func (c *checker) add(where, format string, args ...any) {
	c.out = append(c.out, Mismatch{Model: c.m.Name, Operation: c.op, Where: where, Problem: fmt.Sprintf(format, args...)})
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// restJSONCommonErrors are the errors any rest-json service answers
// outside the model: signing and authentication, throttling, internal
// failures, unknown operations and bodies that do not parse.
var restJSONCommonErrors = []string{
	"AccessDeniedException", "IncompleteSignatureException", "InvalidSignatureException",
	"MissingAuthenticationTokenException", "UnrecognizedClientException", "ExpiredTokenException",
	"InvalidClientTokenId", "SignatureDoesNotMatch", "ThrottlingException", "InternalFailure",
	"InternalServerException", "ServiceUnavailable", "UnknownOperationException", "SerializationException",
	"ValidationException", "RequestExpired", "NotAuthorized",
}

func (c *checker) restJSON(op *Operation, x *Exchange) {
	if x.Method != op.Method {
		c.add("", "method %s, the model's is %s", x.Method, op.Method)
	}
	if _, ok := matchURI(op.RequestURI, x.Path); !ok {
		c.add("", "path %s does not match the model's %s", x.Path, op.RequestURI)
	}
	if x.Status >= 300 {
		c.restJSONError(op, x)
		return
	}
	if x.Status != op.ResponseCode {
		c.add("", "status %d, the model's is %d", x.Status, op.ResponseCode)
	}
	if op.Output == nil {
		if len(bytes.TrimSpace(x.RespBody)) > 0 && string(bytes.TrimSpace(x.RespBody)) != "{}" {
			c.add("", "a body (%d bytes) where the model has no output", len(x.RespBody))
		}
		return
	}
	body := op.Output
	members := body.Members()
	if body.Payload != "" {
		body = members[body.Payload]
	}
	if len(bytes.TrimSpace(x.RespBody)) == 0 {
		if len(body.Required) > 0 {
			c.add("", "empty body; the model requires %s", strings.Join(body.Required, ", "))
		}
		return
	}
	if ct := x.RespHeader.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		c.add("", "Content-Type %q, want application/json", ct)
	}
	var v any
	dec := json.NewDecoder(bytes.NewReader(x.RespBody))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		c.add("", "body is not JSON: %v", err)
		return
	}
	c.jsonValue("", body, v)
}

func (c *checker) restJSONError(op *Operation, x *Exchange) {
	name := x.RespHeader.Get("X-Amzn-ErrorType")
	name, _, _ = strings.Cut(name, ":")
	var v map[string]any
	if err := json.Unmarshal(x.RespBody, &v); err != nil {
		c.add("", "error %d: body is not a JSON object: %.80q", x.Status, x.RespBody)
	}
	if name == "" {
		// AWS's JSON protocols also allow the code in the body's __type or code.
		if t, ok := v["__type"].(string); ok {
			name = t[strings.LastIndex(t, "#")+1:]
		}
	}
	if name == "" {
		c.add("", "error %d without X-Amzn-ErrorType", x.Status)
		return
	}
	if msg, ok := v["message"]; !ok {
		if _, ok := v["Message"]; !ok {
			c.add("", "error %s: body has no message", name)
		}
	} else if _, ok := msg.(string); !ok {
		c.add("message", "error %s: message is %T, want string", name, msg)
	}
	c.errorName(op, name, x.Status, restJSONCommonErrors)
}

// errorName checks an error code against the operation's errors (full
// models only) and, when the model gives it, the status.
func (c *checker) errorName(op *Operation, code string, status int, common []string) {
	if !c.m.Full {
		return
	}
	for _, e := range op.Errors {
		if e.wireCode() == code || e.Name == code {
			if e.ErrorStatus != 0 && e.ErrorStatus != status {
				c.add("", "error %s with status %d, the model's is %d", code, status, e.ErrorStatus)
			}
			return
		}
	}
	if slices.Contains(common, code) {
		return
	}
	var names []string
	for _, e := range op.Errors {
		names = append(names, e.wireCode())
	}
	c.add("", "error %s (status %d) is neither one of the operation's errors %v nor a common one", code, status, names)
}

// jsonValue checks a decoded JSON value against a shape.
func (c *checker) jsonValue(path string, s *Shape, v any) {
	if v == nil {
		c.add(path, "null; AWS leaves out a member that has no value")
		return
	}
	switch s.Type {
	case "structure":
		obj, ok := v.(map[string]any)
		if !ok {
			c.add(path, "expected structure (JSON object), got %s", describe(v))
			return
		}
		members := s.Members()
		byWire := map[string]string{}
		for name, ms := range members {
			// Members bound to headers, the URI or the status are not in
			// the body.
			if ms.Location != "" {
				continue
			}
			wire := name
			if ms.LocationName != "" {
				wire = ms.LocationName
			}
			byWire[wire] = name
		}
		for _, k := range sortedKeys(obj) {
			name, ok := byWire[k]
			if !ok {
				c.add(join(path, k), "not a member of %s (members: %s)", shapeName(s), strings.Join(s.MemberNames(), ", "))
				continue
			}
			c.jsonValue(join(path, k), members[name], obj[k])
		}
		for _, r := range s.Required {
			ms := members[r]
			if ms != nil && ms.Location != "" {
				continue
			}
			wire := r
			if ms != nil && ms.LocationName != "" {
				wire = ms.LocationName
			}
			if val, ok := obj[wire]; !ok || val == nil {
				c.add(join(path, r), "required by the model, missing")
			}
		}
	case "list":
		arr, ok := v.([]any)
		if !ok {
			c.add(path, "expected list (JSON array), got %s", describe(v))
			return
		}
		ms := s.Member()
		for i, e := range arr {
			c.jsonValue(fmt.Sprintf("%s[%d]", path, i), ms, e)
		}
	case "map":
		obj, ok := v.(map[string]any)
		if !ok {
			c.add(path, "expected map (JSON object), got %s", describe(v))
			return
		}
		vs := s.Value()
		for _, k := range sortedKeys(obj) {
			c.jsonValue(fmt.Sprintf("%s[%q]", path, k), vs, obj[k])
		}
	case "string":
		str, ok := v.(string)
		if !ok {
			c.add(path, "expected string, got %s", describe(v))
			return
		}
		c.enum(path, s, str)
	case "boolean":
		if _, ok := v.(bool); !ok {
			c.add(path, "expected boolean, got %s", describe(v))
		}
	case "integer", "long":
		n, ok := v.(json.Number)
		if !ok {
			c.add(path, "expected %s (JSON number), got %s", s.Type, describe(v))
			return
		}
		i, err := strconv.ParseInt(n.String(), 10, 64)
		if err != nil || s.Type == "integer" && (i > math.MaxInt32 || i < math.MinInt32) {
			c.add(path, "expected %s, got %s", s.Type, n)
		}
	case "float", "double":
		if _, ok := v.(json.Number); !ok {
			c.add(path, "expected %s (JSON number), got %s", s.Type, describe(v))
		}
	case "timestamp":
		c.jsonTimestamp(path, s, v)
	case "blob":
		str, ok := v.(string)
		if !ok {
			c.add(path, "expected blob (base64 string), got %s", describe(v))
			return
		}
		if _, err := base64.StdEncoding.DecodeString(str); err != nil {
			c.add(path, "expected blob (base64), got a string that is not base64: %v", err)
		}
	default:
		c.add(path, "the checker does not know type %s", s.Type)
	}
}

func (c *checker) jsonTimestamp(path string, s *Shape, v any) {
	switch f := s.timestampFormat(); f {
	case "iso8601":
		str, ok := v.(string)
		if !ok {
			c.add(path, "expected timestamp (iso8601 string), got %s", describe(v))
			return
		}
		if _, err := time.Parse(time.RFC3339Nano, str); err != nil {
			c.add(path, "expected timestamp (iso8601), got %q", str)
		}
	case "unixTimestamp":
		if _, ok := v.(json.Number); !ok {
			c.add(path, "expected timestamp (epoch seconds, a JSON number), got %s", describe(v))
		}
	case "rfc822":
		str, ok := v.(string)
		if !ok {
			c.add(path, "expected timestamp (rfc822 string), got %s", describe(v))
			return
		}
		if _, err := http.ParseTime(str); err != nil {
			c.add(path, "expected timestamp (rfc822), got %q", str)
		}
	default:
		c.add(path, "the checker does not know timestamp format %s", f)
	}
}

func (c *checker) enum(path string, s *Shape, v string) {
	if len(s.Enum) > 0 && !slices.Contains(s.Enum, v) {
		c.add(path, "%q is not one of the enum %s's values %v", v, shapeName(s), s.Enum)
	}
}

func shapeName(s *Shape) string {
	if s.Name != "" {
		return s.Name
	}
	return "the " + s.Type
}

func describe(v any) string {
	switch t := v.(type) {
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	case string:
		if len(t) > 40 {
			t = t[:40] + "..."
		}
		return fmt.Sprintf("string %q", t)
	case json.Number:
		return "number " + t.String()
	case bool:
		return fmt.Sprintf("boolean %v", t)
	}
	return fmt.Sprintf("%T", v)
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// queryParams are a query-protocol request's parameters: the form body of
// a POST, else the URL's query.
func queryParams(x *Exchange) url.Values {
	if x.Method == http.MethodPost && len(x.ReqBody) > 0 {
		if v, err := url.ParseQuery(string(x.ReqBody)); err == nil {
			return v
		}
	}
	v, _ := url.ParseQuery(x.RawQuery)
	return v
}

// queryCommonErrors are the errors any query service answers outside the
// model.
var queryCommonErrors = []string{
	"AccessDenied", "AccessDeniedException", "IncompleteSignature", "InternalFailure", "InvalidAction",
	"InvalidClientTokenId", "InvalidParameterCombination", "InvalidParameterValue", "InvalidQueryParameter",
	"MalformedQueryString", "MissingAction", "MissingAuthenticationToken", "MissingParameter", "NotAuthorized",
	"OptInRequired", "RequestExpired", "ServiceUnavailable", "SignatureDoesNotMatch", "Throttling",
	"ValidationError", "ExpiredToken", "InvalidAccessKeyId",
}

// node is an XML element.
type node struct {
	name     xml.Name
	attrs    []xml.Attr
	children []*node
	text     string
}

func (n *node) child(local string) *node {
	for _, c := range n.children {
		if c.name.Local == local {
			return c
		}
	}
	return nil
}

func parseXML(data []byte) (*node, error) {
	dec := xml.NewDecoder(bytes.NewReader(data))
	var stack []*node
	var root *node
	for {
		tok, err := dec.Token()
		if err != nil {
			if root != nil && len(stack) == 0 && err.Error() == "EOF" {
				return root, nil
			}
			return nil, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			n := &node{name: t.Name, attrs: t.Attr}
			if len(stack) > 0 {
				p := stack[len(stack)-1]
				p.children = append(p.children, n)
			} else if root != nil {
				return nil, fmt.Errorf("a second root element <%s>", t.Name.Local)
			} else {
				root = n
			}
			stack = append(stack, n)
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		case xml.CharData:
			if len(stack) > 0 {
				stack[len(stack)-1].text += string(t)
			} else if len(bytes.TrimSpace(t)) > 0 {
				return nil, fmt.Errorf("text outside the root element")
			}
		}
	}
}

func (c *checker) query(op *Operation, x *Exchange) {
	params := queryParams(x)
	if x.Method != http.MethodPost && x.Method != http.MethodGet {
		c.add("", "method %s; query services take POST (or GET)", x.Method)
	}
	if v := params.Get("Version"); v != c.m.APIVersion {
		c.add("", "request Version %q, the model's is %s", v, c.m.APIVersion)
	}
	root, err := parseXML(x.RespBody)
	if err != nil {
		c.add("", "answer (status %d) is not XML: %v", x.Status, err)
		return
	}
	if ct := x.RespHeader.Get("Content-Type"); !strings.HasPrefix(ct, "text/xml") && !strings.HasPrefix(ct, "application/xml") {
		c.add("", "Content-Type %q, want text/xml", ct)
	}
	if x.Status >= 300 {
		c.queryError(op, x, root)
		return
	}
	if x.Status != 200 {
		c.add("", "status %d; query services answer 200", x.Status)
	}
	if want := op.Name + "Response"; root.name.Local != want {
		c.add("", "root element <%s>, want <%s>", root.name.Local, want)
	}
	if root.name.Space != c.m.XMLNamespace {
		c.add("", "namespace %q, want %q", root.name.Space, c.m.XMLNamespace)
	}
	meta := root.child("ResponseMetadata")
	if meta == nil || meta.child("RequestId") == nil || strings.TrimSpace(meta.child("RequestId").text) == "" {
		c.add("ResponseMetadata.RequestId", "missing")
	}
	for _, ch := range root.children {
		if ch.name.Local != "ResponseMetadata" && (op.ResultWrapper == "" || ch.name.Local != op.ResultWrapper) {
			c.add(ch.name.Local, "unexpected element in <%s> (want %s and ResponseMetadata)", root.name.Local, op.ResultWrapper)
		}
	}
	if op.Output == nil || op.ResultWrapper == "" {
		return
	}
	result := root.child(op.ResultWrapper)
	if result == nil {
		if len(op.Output.Required) > 0 || len(op.Output.MemberNames()) > 0 {
			c.add(op.ResultWrapper, "missing")
		}
		return
	}
	c.xmlStructure("", op.Output, result)
}

func (c *checker) queryError(op *Operation, x *Exchange, root *node) {
	if root.name.Local != "ErrorResponse" {
		c.add("", "error %d: root element <%s>, want <ErrorResponse>", x.Status, root.name.Local)
		return
	}
	if root.name.Space != c.m.XMLNamespace {
		c.add("", "error namespace %q, want %q", root.name.Space, c.m.XMLNamespace)
	}
	e := root.child("Error")
	if e == nil {
		c.add("Error", "missing in <ErrorResponse>")
		return
	}
	typ, code, msg := e.child("Type"), e.child("Code"), e.child("Message")
	for _, ch := range e.children {
		switch ch.name.Local {
		case "Type", "Code", "Message":
		default:
			c.add("Error."+ch.name.Local, "unexpected element in <Error>")
		}
	}
	if typ == nil || (typ.text != "Sender" && typ.text != "Receiver") {
		c.add("Error.Type", "want Sender or Receiver")
	} else if want := map[bool]string{true: "Receiver", false: "Sender"}[x.Status >= 500]; typ.text != want {
		c.add("Error.Type", "%s with status %d, want %s", typ.text, x.Status, want)
	}
	if msg == nil {
		c.add("Error.Message", "missing")
	}
	if rid := root.child("RequestId"); rid == nil || strings.TrimSpace(rid.text) == "" {
		c.add("RequestId", "missing in <ErrorResponse>")
	}
	if code == nil || code.text == "" {
		c.add("Error.Code", "missing")
		return
	}
	c.errorName(op, code.text, x.Status, queryCommonErrors)
}

// xmlStructure checks an element's children against a structure shape.
func (c *checker) xmlStructure(path string, s *Shape, n *node) {
	members := s.Members()
	byWire := map[string]string{}
	for name, ms := range members {
		wire := name
		if ms.LocationName != "" {
			wire = ms.LocationName
		}
		byWire[wire] = name
	}
	seen := map[string]bool{}
	for _, ch := range n.children {
		name, ok := byWire[ch.name.Local]
		if !ok {
			c.add(join(path, ch.name.Local), "not a member of %s (members: %s)", shapeName(s), strings.Join(s.MemberNames(), ", "))
			continue
		}
		ms := members[name]
		if seen[name] && !(ms.Type == "list" && ms.Flattened) {
			c.add(join(path, name), "given twice")
		}
		seen[name] = true
		c.xmlValue(join(path, name), ms, ch)
	}
	for _, r := range s.Required {
		if !seen[r] {
			c.add(join(path, r), "required by the model, missing")
		}
	}
}

func (c *checker) xmlValue(path string, s *Shape, n *node) {
	text := n.text
	if s.Type != "structure" && s.Type != "list" && s.Type != "map" && len(n.children) > 0 {
		c.add(path, "expected %s, got an element with children", s.Type)
		return
	}
	switch s.Type {
	case "structure":
		c.xmlStructure(path, s, n)
	case "list":
		ms := s.Member()
		elem := "member"
		if ms.LocationName != "" {
			elem = ms.LocationName
		}
		for i, ch := range n.children {
			if ch.name.Local != elem {
				c.add(fmt.Sprintf("%s[%d]", path, i), "list element <%s>, want <%s>", ch.name.Local, elem)
				continue
			}
			c.xmlValue(fmt.Sprintf("%s[%d]", path, i), ms, ch)
		}
	case "map":
		for i, ch := range n.children {
			k, v := ch.child("key"), ch.child("value")
			if ch.name.Local != "entry" || k == nil || v == nil {
				c.add(fmt.Sprintf("%s[%d]", path, i), "map entry <%s>, want <entry><key/><value/></entry>", ch.name.Local)
				continue
			}
			c.xmlValue(fmt.Sprintf("%s[%q]", path, k.text), s.Value(), v)
		}
	case "string":
		c.enum(path, s, text)
	case "boolean":
		if text != "true" && text != "false" {
			c.add(path, "expected boolean, got %q", text)
		}
	case "integer", "long":
		bits := 64
		if s.Type == "integer" {
			bits = 32
		}
		if _, err := strconv.ParseInt(text, 10, bits); err != nil {
			c.add(path, "expected %s, got %q", s.Type, text)
		}
	case "float", "double":
		if _, err := strconv.ParseFloat(text, 64); err != nil {
			c.add(path, "expected %s, got %q", s.Type, text)
		}
	case "timestamp":
		if _, err := time.Parse(time.RFC3339Nano, text); err != nil {
			c.add(path, "expected timestamp (iso8601), got %q", text)
		}
	case "blob":
		if _, err := base64.StdEncoding.DecodeString(text); err != nil {
			c.add(path, "expected blob (base64), got %q", text)
		}
	default:
		c.add(path, "the checker does not know type %s", s.Type)
	}
}
