// Package awsmodel checks HTTP exchanges with keyless's emulator against
// AWS's service models: the JSON the AWS SDKs are generated from, here
// the rest-json model of IAM Roles Anywhere and the query models of IAM
// and STS. It reads both forms the models are published in: the full
// api-2.json (shapes by name, each operation's errors, enums) and the
// minified .min.json of the npm aws-sdk package (shapes inlined or
// renamed, no errors or enums), so a check can use the newest shapes of
// one and the errors and enums of the other.
//
// Recorder wraps the emulator as an http.Handler in interop tests, so that
// every call the AWS SDK for Go v2 or the AWS CLI makes is checked. It
// imports only the standard library; interop/awscli uses it through a
// replace directive. Only interop tests import it.
package awsmodel

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Model is one service's model.
type Model struct {
	// Name says where the model came from, for messages:
	// "rolesanywhere-2018-05-10.min.json".
	Name string
	// Protocol is "rest-json" or "query".
	Protocol     string
	APIVersion   string
	SigningName  string
	XMLNamespace string
	// Full reports whether the model lists errors and enums (api-2.json);
	// a minified one leaves them out, so they go unchecked with it.
	Full       bool
	Operations map[string]*Operation
	shapes     map[string]*rawShape
}

// Operation is one operation of a model.
type Operation struct {
	Name         string
	Method       string // POST when the model says nothing
	RequestURI   string // "/trustanchor/{trustAnchorId}"; "/" for query
	ResponseCode int    // 200 when the model says nothing
	Input        *Shape // nil: no input
	Output       *Shape // nil: no output
	// ResultWrapper is the query protocol's element around the output's
	// members: CreateRoleResult.
	ResultWrapper string
	Errors        []*Shape
}

// Shape is a resolved shape: a reference's own traits (location,
// locationName, timestampFormat) over the shape it names.
type Shape struct {
	Name            string // the shape's name in the model ("" when inlined)
	Type            string // structure, list, map, string, boolean, integer, long, float, double, timestamp, blob
	Required        []string
	Enum            []string
	TimestampFormat string
	Location        string // header, headers, uri, querystring, statusCode; "" for the body
	LocationName    string
	Flattened       bool
	Payload         string // the member that is the whole body, when set
	// Error traits of an exception shape.
	ErrorCode   string // the code on the wire when it is not the shape's name
	ErrorStatus int
	Exception   bool

	m   *Model
	raw *rawShape
}

type rawShape struct {
	Shape           string               `json:"shape"`
	Type            string               `json:"type"`
	Members         map[string]*rawShape `json:"members"`
	Member          *rawShape            `json:"member"`
	Key             *rawShape            `json:"key"`
	Value           *rawShape            `json:"value"`
	Required        []string             `json:"required"`
	Enum            []string             `json:"enum"`
	TimestampFormat string               `json:"timestampFormat"`
	Location        string               `json:"location"`
	LocationName    string               `json:"locationName"`
	Flattened       bool                 `json:"flattened"`
	Payload         string               `json:"payload"`
	ResultWrapper   string               `json:"resultWrapper"`
	Exception       bool                 `json:"exception"`
	Error           *struct {
		Code           string `json:"code"`
		HTTPStatusCode int    `json:"httpStatusCode"`
	} `json:"error"`
}

type rawModel struct {
	Metadata struct {
		Protocol     string `json:"protocol"`
		APIVersion   string `json:"apiVersion"`
		SigningName  string `json:"signingName"`
		Prefix       string `json:"endpointPrefix"`
		XMLNamespace string `json:"xmlNamespace"`
	} `json:"metadata"`
	Operations map[string]struct {
		HTTP struct {
			Method       string `json:"method"`
			RequestURI   string `json:"requestUri"`
			ResponseCode int    `json:"responseCode"`
		} `json:"http"`
		Input  *rawShape   `json:"input"`
		Output *rawShape   `json:"output"`
		Errors []*rawShape `json:"errors"`
	} `json:"operations"`
	Shapes map[string]*rawShape `json:"shapes"`
}

// Load reads a model file in either form.
func Load(path string) (*Model, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading AWS model: %w", err)
	}
	m, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("AWS model %s: %w", path, err)
	}
	m.Name = filepath.Base(path)
	return m, nil
}

// Parse parses a model in either form.
func Parse(data []byte) (*Model, error) {
	var raw rawModel
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("parsing: %w", err)
	}
	if len(raw.Operations) == 0 {
		return nil, fmt.Errorf("no operations")
	}
	m := &Model{Protocol: raw.Metadata.Protocol, APIVersion: raw.Metadata.APIVersion, SigningName: raw.Metadata.SigningName,
		XMLNamespace: raw.Metadata.XMLNamespace, Operations: map[string]*Operation{}, shapes: raw.Shapes}
	if m.SigningName == "" {
		m.SigningName = raw.Metadata.Prefix
	}
	switch m.Protocol {
	case "rest-json", "query":
	default:
		return nil, fmt.Errorf("protocol %q: only rest-json and query are checked", m.Protocol)
	}
	for name, op := range raw.Operations {
		o := &Operation{Name: name, Method: op.HTTP.Method, RequestURI: op.HTTP.RequestURI, ResponseCode: op.HTTP.ResponseCode}
		if o.Method == "" {
			o.Method = "POST"
		}
		if o.RequestURI == "" {
			o.RequestURI = "/"
		}
		if o.ResponseCode == 0 {
			o.ResponseCode = 200
		}
		if op.Input != nil {
			o.Input = m.resolve(op.Input)
		}
		if op.Output != nil {
			o.Output = m.resolve(op.Output)
			o.ResultWrapper = op.Output.ResultWrapper
			if o.ResultWrapper == "" && op.Output.Shape != "" && raw.Shapes[op.Output.Shape] != nil {
				o.ResultWrapper = raw.Shapes[op.Output.Shape].ResultWrapper
			}
		}
		for _, e := range op.Errors {
			o.Errors = append(o.Errors, m.resolve(e))
			m.Full = true
		}
		m.Operations[name] = o
	}
	for _, s := range raw.Shapes {
		if len(s.Enum) > 0 || s.Exception {
			m.Full = true
		}
	}
	return m, nil
}

// resolve applies a reference's traits over the shape it names; an
// inline shape without a type is a string (the minified form's {}).
func (m *Model) resolve(ref *rawShape) *Shape {
	base := ref
	name := ""
	for i := 0; base.Shape != "" && i < 8; i++ {
		next, ok := m.shapes[base.Shape]
		if !ok {
			break
		}
		name = base.Shape
		base = next
	}
	s := &Shape{Name: name, Type: base.Type, Required: base.Required, Enum: base.Enum, TimestampFormat: base.TimestampFormat,
		Location: base.Location, LocationName: base.LocationName, Flattened: base.Flattened, Payload: base.Payload,
		Exception: base.Exception, m: m, raw: base}
	if s.Type == "" {
		s.Type = "string"
		if base.Members != nil {
			s.Type = "structure"
		}
	}
	if base.Error != nil {
		s.ErrorCode, s.ErrorStatus = base.Error.Code, base.Error.HTTPStatusCode
	}
	// A reference's own traits win over its target's.
	if ref != base {
		if ref.Location != "" {
			s.Location = ref.Location
		}
		if ref.LocationName != "" {
			s.LocationName = ref.LocationName
		}
		if ref.TimestampFormat != "" {
			s.TimestampFormat = ref.TimestampFormat
		}
		if ref.Flattened {
			s.Flattened = true
		}
	}
	return s
}

// Members returns a structure's members by name.
func (s *Shape) Members() map[string]*Shape {
	out := map[string]*Shape{}
	for name, ref := range s.raw.Members {
		out[name] = s.m.resolve(ref)
	}
	return out
}

// MemberNames returns a structure's member names, sorted.
func (s *Shape) MemberNames() []string {
	var out []string
	for name := range s.raw.Members {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

// Member is a list's element shape.
func (s *Shape) Member() *Shape {
	if s.raw.Member == nil {
		return &Shape{Type: "string", m: s.m, raw: &rawShape{}}
	}
	return s.m.resolve(s.raw.Member)
}

// Key and Value are a map's key and value shapes.
func (s *Shape) Key() *Shape {
	if s.raw.Key == nil {
		return &Shape{Type: "string", m: s.m, raw: &rawShape{}}
	}
	return s.m.resolve(s.raw.Key)
}

func (s *Shape) Value() *Shape {
	if s.raw.Value == nil {
		return &Shape{Type: "string", m: s.m, raw: &rawShape{}}
	}
	return s.m.resolve(s.raw.Value)
}

// timestampFormat is the format a timestamp has on the wire: its own, or
// the protocol's default (epoch seconds in rest-json bodies, ISO 8601 in
// query answers).
func (s *Shape) timestampFormat() string {
	if s.TimestampFormat != "" {
		return s.TimestampFormat
	}
	if s.m.Protocol == "rest-json" {
		return "unixTimestamp"
	}
	return "iso8601"
}

// wireCode is the error code an exception shape has on the wire.
func (s *Shape) wireCode() string {
	if s.ErrorCode != "" {
		return s.ErrorCode
	}
	return s.Name
}

// FindREST returns the rest-json operation a method and path are for:
// the one whose requestUri matches, literal segments before labels.
func (m *Model) FindREST(method, path string) *Operation {
	var best *Operation
	bestLiterals := -1
	for _, op := range m.Operations {
		if op.Method != method {
			continue
		}
		if n, ok := matchURI(op.RequestURI, path); ok && n > bestLiterals {
			best, bestLiterals = op, n
		}
	}
	return best
}

// matchURI matches a path against a requestUri ("/crl/{crlId}/enable",
// maybe with a query part) and returns how many literal segments matched.
func matchURI(uri, path string) (int, bool) {
	uri, _, _ = strings.Cut(uri, "?")
	us := strings.Split(strings.Trim(uri, "/"), "/")
	ps := strings.Split(strings.Trim(path, "/"), "/")
	greedy := len(us) > 0 && strings.HasSuffix(us[len(us)-1], "+}")
	if len(us) != len(ps) && !(greedy && len(ps) >= len(us)) {
		return 0, false
	}
	literals := 0
	for i, u := range us {
		if strings.HasPrefix(u, "{") && strings.HasSuffix(u, "}") {
			if ps[i] == "" {
				return 0, false
			}
			continue
		}
		if u != ps[i] {
			return 0, false
		}
		literals++
	}
	return literals, true
}
