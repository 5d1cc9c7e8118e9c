// Package yamlfile decodes keyless's YAML files (the emulator's seed,
// agent.yaml) the one strict way: unknown fields are errors that name
// their line and the fields allowed there, one document only, and a
// validator can find the line of any field afterwards to put in its own
// error. Each file keeps its own error type; this package only finds
// lines and words the decoder's complaints.
//
// It is a domain package; any package that reads such a file may import
// it.
package yamlfile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Error is a problem in a file, located by file, line and field: what
// the emulator's seed (emulator.SeedError) and agent.yaml
// (agent.ConfigError) report.
type Error struct {
	File  string
	Line  int    // 0 when unknown
	Field string // e.g. rules[0].duration; may be empty
	Err   error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteString(":" + strconv.Itoa(e.Line))
	}
	b.WriteString(": ")
	if e.Field != "" {
		b.WriteString(e.Field + ": ")
	}
	b.WriteString(e.Err.Error())
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Problems returns ps as one error of *Error values naming file.
func Problems(file string, ps []Problem) error {
	var errs []error
	for _, p := range ps {
		errs = append(errs, &Error{File: file, Line: p.Line, Err: errors.New(p.Msg)})
	}
	return errors.Join(errs...)
}

// Problem is one thing wrong in a file: the line (0 when unknown) and
// what.
type Problem struct {
	Line int
	Msg  string
}

// Doc is a decoded document: its root node, for Line.
type Doc struct{ root *yaml.Node }

// Decode decodes data into v strictly. It returns the document, or nil
// with no problems when data holds no document at all (the caller says
// what the file needs). allowed names the fields a struct type allows,
// from go-yaml's type name (such as "agent.rawRule"), for the message
// about an unknown field.
func Decode(data []byte, v any, allowed func(typ string) string) (*Doc, []Problem) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, problems(err, allowed)
	}
	if len(root.Content) == 0 {
		return nil, nil
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		return nil, problems(err, allowed)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, []Problem{{Msg: "more than one YAML document; put everything in one"}}
	}
	return &Doc{root: root.Content[0]}, nil
}

// problems turns go-yaml's errors into Problems, keeping their lines.
func problems(err error, allowed func(string) string) []Problem {
	split := func(msg string) Problem {
		msg = strings.TrimPrefix(msg, "yaml: ")
		if rest, ok := strings.CutPrefix(msg, "line "); ok {
			n, tail, _ := strings.Cut(rest, ": ")
			if l, convErr := strconv.Atoi(n); convErr == nil {
				return Problem{Line: l, Msg: tail}
			}
		}
		return Problem{Msg: msg}
	}
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return []Problem{split(err.Error())}
	}
	var out []Problem
	for _, e := range te.Errors {
		p := split(e)
		if field, typ, ok := strings.Cut(strings.TrimPrefix(p.Msg, "field "), " not found in type "); ok && strings.HasPrefix(p.Msg, "field ") {
			p.Msg = fmt.Sprintf("unknown field %q (allowed here: %s)", field, allowed(typ))
		}
		out = append(out, p)
	}
	return out
}

// Line returns the line of the node at path (mapping keys as strings,
// sequence indexes as ints), or of the deepest node found on the way.
func (d *Doc) Line(path ...any) int {
	n := d.root
	line := n.Line
	for _, step := range path {
		var next *yaml.Node
		switch s := step.(type) {
		case string:
			if n.Kind == yaml.MappingNode {
				for i := 0; i+1 < len(n.Content); i += 2 {
					if n.Content[i].Value == s {
						next = n.Content[i+1]
					}
				}
			}
		case int:
			if n.Kind == yaml.SequenceNode && s < len(n.Content) {
				next = n.Content[s]
			}
		}
		if next == nil {
			return line
		}
		n, line = next, next.Line
	}
	return line
}

// Field writes path as a field name: trustAnchors[0].crls[1].
func Field(path ...any) string {
	var field strings.Builder
	for _, step := range path {
		switch s := step.(type) {
		case string:
			if field.Len() > 0 {
				field.WriteString(".")
			}
			field.WriteString(s)
		case int:
			fmt.Fprintf(&field, "[%d]", s)
		}
	}
	return field.String()
}
