package cli_test

import (
	"testing"

	"github.com/keyless-dev/keyless/internal/cli"
)

// TestCommandTreeIsWhole expects the documentation tree to hold every
// top-level command, the completion command with its shells, and no
// generation date.
func TestCommandTreeIsWhole(t *testing.T) {
	root := cli.CommandTree()
	if !root.DisableAutoGenTag {
		t.Error("DisableAutoGenTag is false: generated man pages would carry today's date")
	}
	for _, path := range [][]string{
		{"version"}, {"credential-process"}, {"ca", "serve"}, {"agent"}, {"renew"}, {"doctor"},
		{"completion", "bash"}, {"completion", "zsh"}, {"completion", "fish"},
	} {
		c, rest, err := root.Find(path)
		if err != nil || len(rest) != 0 || c == root {
			t.Errorf("keyless %v: not in the tree (found %q, rest %v, err %v)", path, c.CommandPath(), rest, err)
			continue
		}
		if c.Hidden {
			t.Errorf("%s is hidden", c.CommandPath())
		}
	}
}
