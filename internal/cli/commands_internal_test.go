package cli

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// TestCommandsTable checks that the table newRootCommand picks from
// names each command as the command names itself, so that a run of
// `keyless NAME` finds NAME when only NAME is made.
func TestCommandsTable(t *testing.T) {
	var names []string
	for _, c := range commands {
		if got := c.make(streams{}).Name(); got != c.name {
			t.Errorf("commands lists %q, but its constructor makes %q", c.name, got)
		}
		names = append(names, c.name)
	}
	if n := len(slices.Compact(slices.Sorted(slices.Values(names)))); n != len(names) {
		t.Errorf("commands lists a name twice: %v", names)
	}
}

// TestOnlyNamedCommandIsMade checks that a run naming a command makes
// that command alone, and anything else makes the whole tree (with
// cobra's completion command).
func TestOnlyNamedCommandIsMade(t *testing.T) {
	whole := len(commands) + 1
	for _, tc := range []struct {
		args []string
		want int
	}{
		{[]string{"credential-process", "--help"}, 1},
		{[]string{"ca", "list"}, 1},
		{nil, whole},
		{[]string{"--version"}, whole},
		{[]string{"help", "ca"}, whole},
		{[]string{"credential-proces"}, whole},
		{[]string{"completion", "bash"}, whole},
	} {
		if got := len(newRootCommand(streams{}, tc.args).Commands()); got != tc.want {
			t.Errorf("args %q: root has %d commands, want %d", tc.args, got, tc.want)
		}
	}
}

// TestHelpSameWhenOnlyOneCommandIsMade runs --help, and a bad flag, on
// every command in the whole tree and in the tree made for that command
// alone: the output must be byte for byte the same.
func TestHelpSameWhenOnlyOneCommandIsMade(t *testing.T) {
	var paths [][]string
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Name() == "completion" {
			// Not in the commands table: it always comes with the
			// whole tree.
			return
		}
		if c.HasParent() {
			paths = append(paths, strings.Fields(c.CommandPath())[1:])
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(newRootCommand(streams{}, nil))
	if len(paths) < len(commands)+10 {
		t.Fatalf("found only %d commands", len(paths))
	}
	run := func(root *cobra.Command, args []string) (int, string) {
		var out, errb bytes.Buffer
		root.SetArgs(args)
		root.SetOut(&out)
		root.SetErr(&errb)
		_, err := root.ExecuteC()
		code := 0
		if err != nil {
			code = report(&errb, asUsage(err))
		}
		return code, out.String() + "\x00" + errb.String()
	}
	for _, path := range paths {
		for _, extra := range [][]string{{"--help"}, {"--no-such-flag"}} {
			args := append(slices.Clone(path), extra...)
			full := newRootCommand(streams{}, nil)
			only := newRootCommand(streams{}, args)
			if len(only.Commands()) != 1 {
				t.Fatalf("%q: made %d commands, want 1", args, len(only.Commands()))
			}
			c1, o1 := run(full, args)
			c2, o2 := run(only, args)
			if c1 != c2 || o1 != o2 {
				t.Errorf("keyless %s: whole tree exit %d:\n%s\nonly %s: exit %d:\n%s", strings.Join(args, " "), c1, o1, path[0], c2, o2)
			}
		}
	}
}

// FuzzCredentialProcessOutput: credential-process prints what
// json.Marshal would, byte for byte.
func FuzzCredentialProcessOutput(f *testing.F) {
	f.Add(1, "ASIAEXAMPLE", "se/cr+et=", "to<k>en&", "2030-01-02T03:04:05Z")
	f.Add(0, "", "\x00\xff", "\u2028", `"\`)
	f.Fuzz(func(t *testing.T, version int, id, secret, token, exp string) {
		o := credentialProcessOutput{Version: version, AccessKeyID: id, SecretAccessKey: secret, SessionToken: token, Expiration: exp}
		want, err := json.Marshal(o)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendCredentialProcessOutput(nil, o); !bytes.Equal(got, want) {
			t.Fatalf("got\n%s\njson.Marshal\n%s", got, want)
		}
	})
}
