package docs_test

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/keyless-dev/keyless/interop/docs"
)

const sample = "# Title\n" +
	"\n" +
	"<!-- doc-test: Ctrl-C once it prints \"serving\" -->\n" +
	"```sh\n" +
	"keyless dev\n" +
	"```\n" +
	"\n" +
	"1. A list:\n" +
	"\n" +
	"   <!-- doc-test: needs real AWS -->\n" +
	"   ```sh\n" +
	"   aws iam create-role \\\n" +
	"     --role-name r\n" +
	"   ```\n" +
	"\n" +
	"<!-- doc-test: file ~/.aws/config -->\n" +
	"```ini\n" +
	"[profile p]\n" +
	"```\n" +
	"\n" +
	"````console\n" +
	"$ echo one \\\n" +
	"  two\n" +
	"one two\n" +
	"```\n" +
	"$ true\n" +
	"````\n" +
	"\n" +
	"```\n" +
	"output\n" +
	"```\n" +
	"\n" +
	"<!-- doc-test: measurement, run by hand -->\n" +
	"```sh\n" +
	"scripts/bench -only cp\n" +
	"```\n" +
	"<!-- doc-test: run by interop/release -->\n" +
	"```sh\n" +
	"sha256sum -c SHA256SUMS\n" +
	"```\n" +
	"<!-- doc-test: needs a published release -->\n" +
	"```sh\n" +
	"diff dist/SHA256SUMS SHA256SUMS\n" +
	"```\n"

func TestParse(t *testing.T) {
	got, err := docs.Parse("doc.md", sample)
	if err != nil {
		t.Fatal(err)
	}
	want := []docs.Block{
		{File: "doc.md", Line: 4, Lang: "sh", Text: "keyless dev\n", Directive: docs.Directive{Kind: docs.Interrupt, Arg: "serving"}},
		{File: "doc.md", Line: 11, Lang: "sh", Text: "aws iam create-role \\\n  --role-name r\n", Directive: docs.Directive{Kind: docs.NeedsAWS}},
		{File: "doc.md", Line: 17, Lang: "ini", Text: "[profile p]\n", Directive: docs.Directive{Kind: docs.File, Arg: "~/.aws/config"}},
		{File: "doc.md", Line: 21, Lang: "console", Text: "$ echo one \\\n  two\none two\n```\n$ true\n"},
		{File: "doc.md", Line: 29, Lang: "", Text: "output\n"},
		{File: "doc.md", Line: 34, Lang: "sh", Text: "scripts/bench -only cp\n", Directive: docs.Directive{Kind: docs.Measurement}},
		{File: "doc.md", Line: 38, Lang: "sh", Text: "sha256sum -c SHA256SUMS\n", Directive: docs.Directive{Kind: docs.Release}},
		{File: "doc.md", Line: 42, Lang: "sh", Text: "diff dist/SHA256SUMS SHA256SUMS\n", Directive: docs.Directive{Kind: docs.Published}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("Parse (-want +got):\n%s", diff)
	}
	if s := got[3].Script(); s != "echo one \\\n  two\ntrue\n" {
		t.Errorf("console script %q", s)
	}
	for i, cmd := range []bool{true, true, false, true, false, true, true, true} {
		if got[i].Command() != cmd {
			t.Errorf("block %d: Command() = %v", i, !cmd)
		}
	}
}

// TestParseRefuses: a doc-test comment the test cannot act on exactly is
// an error, never a silent skip.
func TestParseRefuses(t *testing.T) {
	for name, c := range map[string]struct{ doc, err string }{
		"typo":          {"<!-- doc-test: needs real aws -->\n```sh\nx\n```\n", `unknown doc-test directive "needs real aws"`},
		"no space":      {"<!--doc-test: needs real AWS-->\n```sh\nx\n```\n", "malformed doc-test comment"},
		"trailing text": {"<!-- doc-test: needs real AWS --> because\n```sh\nx\n```\n", "malformed doc-test comment"},
		"not before":    {"<!-- doc-test: needs real AWS -->\n\n```sh\nx\n```\n", "doc.md:1: a doc-test comment must be on the line right before a fence"},
		"at the end":    {"text\n<!-- doc-test: needs real AWS -->\n", "doc.md:2: a doc-test comment must be on the line right before a fence"},
		"macOS yaml":    {"<!-- doc-test: macOS only -->\n```yaml\nx: 1\n```\n", "a ```yaml block is not run"},
		"measure text":  {"<!-- doc-test: measurement, run by hand -->\n```text\nx\n```\n", "a ```text block is not run"},
		"measure typo":  {"<!-- doc-test: measurement -->\n```sh\nx\n```\n", `unknown doc-test directive "measurement"`},
		"skip a file":   {"<!-- doc-test: needs real AWS -->\n```yaml\nx: 1\n```\n", "a ```yaml block is not run"},
		"file a script": {"<!-- doc-test: file x.sh -->\n```sh\nx\n```\n", `"file" is for blocks a reader saves`},
		"unclosed":      {"```sh\nx\n", "doc.md:1: the fence is never closed"},
		"empty text":    {"<!-- doc-test: Ctrl-C once it prints \"\" -->\n```sh\nx\n```\n", "unknown doc-test directive"},
		"two paths":     {"<!-- doc-test: after a.md b.md -->\n```sh\nx\n```\n", "unknown doc-test directive"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := docs.Parse("doc.md", c.doc)
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("got %v, want an error containing %q", err, c.err)
			}
		})
	}
}

func TestPlan(t *testing.T) {
	all := map[string][]docs.Block{}
	for name, doc := range map[string]string{
		"README.md": "```sh\nscripts/test\n```\n" +
			"<!-- doc-test: after docs/ca.md -->\n```sh\nkeyless ca token x\n```\n" +
			"<!-- doc-test: after docs/ca.md -->\n```sh\nagain\n```\n" +
			"<!-- doc-test: needs a real GitLab -->\n```sh\ngitlab-runner register\n```\n" +
			"<!-- doc-test: macOS only -->\n```sh\nlaunchctl list\n```\n" +
			"<!-- doc-test: measurement, run by hand -->\n```sh\nscripts/bench\n```\n",
		"docs/ca.md": "<!-- doc-test: file ca.yaml -->\n```yaml\na: 1\n```\n```sh\nkeyless ca init\n```\n",
		"a.md":       "<!-- doc-test: after b.md -->\n```sh\na\n```\n",
		"b.md":       "<!-- doc-test: after a.md -->\n```sh\nb\n```\n",
		"c.md":       "<!-- doc-test: after none.md -->\n```sh\nc\n```\n",
		"d.md":       "```sh\nKEYLESS_INTEROP=require scripts/test\n```\n",
	} {
		b, err := docs.Parse(name, doc)
		if err != nil {
			t.Fatal(err)
		}
		all[name] = b
	}
	steps, err := docs.Plan(all, "README.md")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range steps {
		got = append(got, s.Label()+" "+[]string{"run", "interrupt", "write", "skip", "self"}[s.Kind])
	}
	want := []string{
		"README.md:1 self",
		"docs/ca.md:2 (after, for README.md:5) write",
		"docs/ca.md:5 (after, for README.md:5) run",
		"README.md:5 run",
		"README.md:9 run",
		"README.md:13 skip",
		"README.md:17 skip",
		"README.md:21 skip",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Plan (-want +got):\n%s", diff)
	}
	for doc, want := range map[string]string{
		"a.md": "b.md:2: after a.md: a cycle (a.md → b.md → a.md)",
		"c.md": "c.md:2: after none.md: no such document",
		"d.md": "d.md:1: runs scripts/test among other commands",
	} {
		if _, err := docs.Plan(all, doc); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Plan(%s): got %v, want %q", doc, err, want)
		}
	}
}

// FuzzParse: any document parses or is refused, without panicking, and
// what parses is consistent: blocks in order, each starting at a fence.
func FuzzParse(f *testing.F) {
	f.Add(sample)
	f.Add("```sh\n```\n<!-- doc-test: after x -->\n")
	f.Add("  ~~~ bash\n  x\n  ~~~\n")
	f.Fuzz(func(t *testing.T, doc string) {
		blocks, err := docs.Parse("f.md", doc)
		if err != nil {
			return
		}
		lines := strings.Split(doc, "\n")
		last := 0
		for _, b := range blocks {
			if b.Line <= last || b.Line > len(lines) {
				t.Fatalf("block at line %d after %d, of %d lines", b.Line, last, len(lines))
			}
			if l := strings.TrimLeft(lines[b.Line-1], " "); !strings.HasPrefix(l, "```") && !strings.HasPrefix(l, "~~~") {
				t.Fatalf("block at line %d does not start at a fence: %q", b.Line, l)
			}
			last = b.Line
			b.Script()
		}
	})
}
