package docs_test

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"

	"github.com/keyless-dev/keyless/interop/docs"
)

// checkMacOSOnly: a block only a Mac can run is not run here, but it must
// at least parse as shell (bash -n; macOS's bash and zsh read the
// commands the documents use the same way).
func checkMacOSOnly(t *testing.T, names []string, all map[string][]docs.Block) {
	t.Helper()
	n := 0
	for _, name := range names {
		for _, b := range all[name] {
			if b.Directive.Kind == docs.MacOSOnly {
				n++
				if err := shellSyntax(b); err != nil {
					t.Error(err)
				}
			}
		}
	}
	t.Logf("macOS-only blocks checked by parsing: %d", n)
}

// shellSyntax checks a block's script with bash -n.
func shellSyntax(b docs.Block) error {
	cmd := exec.Command("bash", "-n")
	cmd.Stdin = strings.NewReader(b.Script())
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s: a macOS-only block is not valid shell: %v\n%s", b.Where(), err, out)
	}
	return nil
}

// TestMacOSOnlySyntax: the check refuses a block that does not parse, and
// accepts one that does.
func TestMacOSOnlySyntax(t *testing.T) {
	blocks, err := docs.Parse("mac.md", "<!-- doc-test: macOS only -->\n```sh\nif true; then echo\n```\n"+
		"<!-- doc-test: macOS only -->\n```sh\ndocker network create \\\n  keyless\n```\n")
	if err != nil {
		t.Fatal(err)
	}
	if err := shellSyntax(blocks[0]); err == nil || !strings.Contains(err.Error(), "mac.md:2") {
		t.Errorf("an unterminated if: %v", err)
	}
	if err := shellSyntax(blocks[1]); err != nil {
		t.Error(err)
	}
}
