package cli

import (
	"bytes"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// TestWrongArgumentsAreUsageErrors runs every command with one argument
// too many (and the ones that take some, with none): each must exit 2
// with its usage line and a hint, never cobra's bare message and exit 1.
func TestWrongArgumentsAreUsageErrors(t *testing.T) {
	var leaves []*cobra.Command
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Hidden || c.Name() == "help" || c.Name() == "completion" {
			return
		}
		if !c.HasSubCommands() {
			leaves = append(leaves, c)
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(newRootCommand(streams{}, nil))
	if len(leaves) < 15 {
		t.Fatalf("found only %d commands", len(leaves))
	}
	for _, c := range leaves {
		path := strings.Fields(c.CommandPath())[1:]
		cases := [][]string{append(append([]string{}, path...), "a1", "a2", "a3", "a4", "a5")}
		if strings.ContainsAny(strings.TrimPrefix(c.Use, c.Name()), "ABCDEFGHIJKLMNOPQRSTUVWXYZ") && !strings.Contains(c.Use, "--") {
			cases = append(cases, path) // takes arguments: give none
		}
		for _, args := range cases {
			var out, errb bytes.Buffer
			code := Main(args, strings.NewReader(""), &out, &errb)
			if code != exitUsage || !strings.Contains(errb.String(), "usage: "+c.CommandPath()) || !strings.Contains(errb.String(), "keyless: hint: run '"+c.CommandPath()+" --help'") {
				t.Errorf("keyless %s: exit %d\n%s", strings.Join(args, " "), code, errb.String())
			}
		}
	}
}

func TestVersionFlag(t *testing.T) {
	var a, b, e bytes.Buffer
	if code := Main([]string{"--version"}, nil, &a, &e); code != 0 {
		t.Fatalf("--version: exit %d: %s", code, e.String())
	}
	Main([]string{"version"}, nil, &b, &e)
	if a.String() != b.String() || !strings.HasPrefix(a.String(), "keyless ") {
		t.Errorf("--version printed %q, keyless version %q", a.String(), b.String())
	}
}

func TestBuiltByGoRun(t *testing.T) {
	for exe, want := range map[string]bool{
		"/tmp/go-build2218036514/b001/exe/keyless":            true,
		"/home/me/.cache/go-tmp/go-build123/b001/exe/keyless": true,
		"/usr/local/bin/keyless":                              false,
		"/tmp/go-build2218036514/b001/cli.test":               false,
		"/opt/exe/keyless":                                    false,
		"/home/me/go-build-tools/b001/exe/keyless":            true,
		"/home/me/src/keyless/keyless":                        false,
		"/root/.cache/go-build/ab/cdef/exe/keyless":           false,
	} {
		if got := builtByGoRun(exe); got != want {
			t.Errorf("builtByGoRun(%q) = %v, want %v", exe, got, want)
		}
		if note := goRunNote(exe); (note != "") != want || want && !strings.Contains(note, "go build -o ./keyless ./cmd/keyless") {
			t.Errorf("goRunNote(%q) = %q", exe, note)
		}
	}
}

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{
		"ASIAXR5GAB3IKV6JY3QT": "ASIAXR5GAB3IKV6JY3QT",
		"a/b+c=d":              "a/b+c=d",
		"=id":                  "'=id'", // zsh's =command expansion
		"":                     "''",
		"$(id)":                "'$(id)'",
		"it's":                 `'it'\''s'`,
		"~root":                "'~root'",
	} {
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %s, want %s", in, got, want)
		}
	}
}
