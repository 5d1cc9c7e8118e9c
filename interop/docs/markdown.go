package docs

import (
	"fmt"
	"regexp"
	"strings"
)

// Block is a fenced code block of a Markdown document.
type Block struct {
	File string // the document, as given to Parse (README.md, docs/ca.md)
	Line int    // the line of the opening fence, from 1
	Lang string // the first word of the info string: sh, yaml, ...
	// Text is the content, without the fence's indentation.
	Text string
	// Directive is the doc-test comment on the line before the fence.
	Directive Directive
}

// Where is FILE:LINE.
func (b Block) Where() string { return fmt.Sprintf("%s:%d", b.File, b.Line) }

// commandLangs are the info strings of blocks a reader runs in a shell.
var commandLangs = map[string]bool{"sh": true, "bash": true, "shell": true, "console": true}

// Command reports whether the block holds commands the test runs.
func (b Block) Command() bool { return commandLangs[b.Lang] }

// Script is what a reader types: the block's text, or for a ```console
// block only its "$ " lines (and the lines a trailing backslash
// continues), since the others are output.
func (b Block) Script() string {
	if b.Lang != "console" {
		return b.Text
	}
	var out []string
	cont := false
	for _, line := range strings.Split(b.Text, "\n") {
		switch {
		case cont:
			out = append(out, line)
		case strings.HasPrefix(line, "$ "):
			out = append(out, strings.TrimPrefix(line, "$ "))
		default:
			continue
		}
		cont = strings.HasSuffix(line, `\`)
	}
	return strings.Join(out, "\n") + "\n"
}

// Kind is what a directive asks.
type Kind int

// The directives, each written <!-- doc-test: TEXT --> on the line right
// before a fence, with TEXT exactly as shown.
const (
	// None: no directive; a command block runs as written.
	None Kind = iota
	// NeedsAWS, "needs real AWS": the block calls AWS itself (IAM,
	// Roles Anywhere's control plane), which nothing here emulates yet.
	// It is skipped and listed.
	NeedsAWS
	// NeedsGitLab, "needs a real GitLab": skipped and listed.
	NeedsGitLab
	// After, "after FILE": before this block, the session runs the
	// blocks of FILE (another document, relative to the repository
	// root), as a reader who followed its link would have. Each document
	// runs once per session.
	After
	// File, "file PATH", on a block that is not a command block: the
	// reader saves it as PATH (relative to the working directory, or
	// ~/...). The test writes a document's files before running its
	// commands.
	File
	// Interrupt, `Ctrl-C once it prints "TEXT"`: the block runs until
	// stopped. The test waits for a line holding TEXT, then sends SIGINT
	// to the block's process group, as a terminal's Ctrl-C does. Its
	// variables do not reach later blocks.
	Interrupt
	// MacOSOnly, "macOS only": the block runs on a Mac (Docker Desktop,
	// launchd), never on the Linux machine the test runs on. It is
	// skipped and listed, and checked by parsing: its shell syntax
	// (bash -n) in TestDirectives.
	MacOSOnly
	// Measurement, "measurement, run by hand": the block measures
	// (scripts/bench: minutes, and its figures need a quiet machine), so
	// a test run would take long and measure nothing worth keeping. It is
	// skipped and listed, and checked by parsing (bash -n) in
	// TestDirectives.
	Measurement
	// Release, "run by interop/release": the block installs or checks a
	// release's files (a .deb, an archive, SHA256SUMS), which a session
	// here does not have. interop/release's TestDocumentedInstall builds
	// a release and runs every such block, as written, in a Debian
	// container holding its files; this test skips and lists it.
	Release
	// Published, "needs a published release": the block compares with a
	// release's downloads, which do not exist here. It is skipped and
	// listed, and checked by parsing (bash -n) in TestDirectives.
	Published
)

// Directive is a parsed doc-test comment.
type Directive struct {
	Kind Kind
	Arg  string // FILE, PATH or TEXT
}

// SkipReason is why a block is not run, for NeedsAWS, NeedsGitLab,
// MacOSOnly and Measurement, and "" otherwise.
func (d Directive) SkipReason() string {
	switch d.Kind {
	case NeedsAWS:
		return "needs real AWS"
	case NeedsGitLab:
		return "needs a real GitLab"
	case MacOSOnly:
		return "macOS only (checked by parsing)"
	case Measurement:
		return "a measurement, run by hand (checked by parsing)"
	case Release:
		return "run by interop/release against a release it builds (TestDocumentedInstall)"
	case Published:
		return "needs a published release's downloads (checked by parsing)"
	}
	return ""
}

var (
	fenceRE     = regexp.MustCompile("^( *)(```+|~~~+)[ \t]*([^`\\s]*)")
	directiveRE = regexp.MustCompile(`^<!-- doc-test: (.*) -->$`)
	interruptRE = regexp.MustCompile(`^Ctrl-C once it prints "([^"]+)"$`)
	argRE       = regexp.MustCompile(`^(after|file) (\S+)$`)
)

func parseDirective(s string) (Directive, bool) {
	switch s {
	case "needs real AWS":
		return Directive{Kind: NeedsAWS}, true
	case "needs a real GitLab":
		return Directive{Kind: NeedsGitLab}, true
	case "macOS only":
		return Directive{Kind: MacOSOnly}, true
	case "measurement, run by hand":
		return Directive{Kind: Measurement}, true
	case "run by interop/release":
		return Directive{Kind: Release}, true
	case "needs a published release":
		return Directive{Kind: Published}, true
	}
	if m := interruptRE.FindStringSubmatch(s); m != nil {
		return Directive{Kind: Interrupt, Arg: m[1]}, true
	}
	if m := argRE.FindStringSubmatch(s); m != nil {
		if m[1] == "after" {
			return Directive{Kind: After, Arg: m[2]}, true
		}
		return Directive{Kind: File, Arg: m[2]}, true
	}
	return Directive{}, false
}

// Parse returns the fenced code blocks of a Markdown document, in order.
// It refuses a doc-test comment that is malformed, unknown, not on the
// line right before a fence, or of a kind that does not fit its block
// (a skip or Ctrl-C on a block that is not a command block, a file on one
// that is), and a fence that is never closed.
func Parse(file, content string) ([]Block, error) {
	lines := strings.Split(content, "\n")
	var (
		blocks  []Block
		pending *Directive
		pendAt  int
	)
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		m := fenceRE.FindStringSubmatch(line)
		if m == nil {
			if pending != nil {
				return nil, fmt.Errorf("%s:%d: a doc-test comment must be on the line right before a fence", file, pendAt)
			}
			if strings.Contains(line, "doc-test") && strings.Contains(line, "<!--") {
				d, err := directive(file, i+1, line)
				if err != nil {
					return nil, err
				}
				pending, pendAt = &d, i+1
			}
			continue
		}
		indent, fence := m[1], m[2]
		b := Block{File: file, Line: i + 1, Lang: m[3]}
		if pending != nil {
			b.Directive = *pending
			pending = nil
		}
		var text []string
		closed := false
		for i++; i < len(lines); i++ {
			l := lines[i]
			if t := strings.TrimLeft(l, " "); strings.HasPrefix(t, fence) && strings.Trim(t, fence[:1]+" \t") == "" {
				closed = true
				break
			}
			text = append(text, dedent(l, len(indent)))
		}
		if !closed {
			return nil, fmt.Errorf("%s:%d: the fence is never closed", file, b.Line)
		}
		b.Text = strings.Join(text, "\n") + "\n"
		if err := fits(b); err != nil {
			return nil, err
		}
		blocks = append(blocks, b)
	}
	if pending != nil {
		return nil, fmt.Errorf("%s:%d: a doc-test comment must be on the line right before a fence", file, pendAt)
	}
	return blocks, nil
}

func directive(file string, line int, s string) (Directive, error) {
	m := directiveRE.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return Directive{}, fmt.Errorf("%s:%d: malformed doc-test comment %q: want <!-- doc-test: ... --> alone on its line", file, line, s)
	}
	d, ok := parseDirective(m[1])
	if !ok {
		return Directive{}, fmt.Errorf(`%s:%d: unknown doc-test directive %q: want "needs real AWS", "needs a real GitLab", "macOS only", "measurement, run by hand", "run by interop/release", "needs a published release", "after FILE", "file PATH" or 'Ctrl-C once it prints "TEXT"'`, file, line, m[1])
	}
	return d, nil
}

func fits(b Block) error {
	k := b.Directive.Kind
	switch {
	case b.Command() && k == File:
		return fmt.Errorf("%s: \"file\" is for blocks a reader saves, not for ```%s", b.Where(), b.Lang)
	case !b.Command() && k != None && k != File:
		return fmt.Errorf("%s: a ```%s block is not run, so its doc-test directive means nothing", b.Where(), b.Lang)
	}
	return nil
}

// dedent removes up to n leading spaces: a fence's indentation, which its
// content lines carry too.
func dedent(l string, n int) string {
	for ; n > 0 && strings.HasPrefix(l, " "); n-- {
		l = l[1:]
	}
	return l
}
