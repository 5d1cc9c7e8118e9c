package docs_test

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"

	"github.com/keyless-dev/keyless/interop/docs"
)

// checkMacOSOnly: a block only a Mac can run is not run here, and neither
// is a measurement (scripts/bench), a block interop/release runs or one
// that needs a published release, but
// each must at least parse as shell (bash -n; macOS's bash and zsh read
// the commands the documents use the same way).
func checkMacOSOnly(t *testing.T, names []string, all map[string][]docs.Block) {
	t.Helper()
	n := map[docs.Kind]int{}
	var measurements []string
	for _, name := range names {
		for _, b := range all[name] {
			if k := b.Directive.Kind; k == docs.MacOSOnly || k == docs.Measurement || k == docs.Release || k == docs.Published {
				n[k]++
				if k == docs.Measurement {
					measurements = append(measurements, b.Where())
				}
				if err := shellSyntax(b); err != nil {
					t.Error(err)
				}
			}
		}
	}
	t.Logf("blocks checked by parsing: %d macOS-only, %d measurements (run by hand: %s), %d run by interop/release, %d needing a published release", n[docs.MacOSOnly], n[docs.Measurement], strings.Join(measurements, ", "), n[docs.Release], n[docs.Published])
}

// shellSyntax checks a block's script with bash -n.
func shellSyntax(b docs.Block) error {
	cmd := exec.Command("bash", "-n")
	cmd.Stdin = strings.NewReader(b.Script())
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s: a block the test does not run (%s) is not valid shell: %v\n%s", b.Where(), b.Directive.SkipReason(), err, out)
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
	blocks, err = docs.Parse("bench.md", "<!-- doc-test: measurement, run by hand -->\n```sh\nscripts/bench -only cp &&\n```\n")
	if err != nil {
		t.Fatal(err)
	}
	if err := shellSyntax(blocks[0]); err == nil || !strings.Contains(err.Error(), "bench.md:2: a block the test does not run (a measurement, run by hand") {
		t.Errorf("a measurement block ending in &&: %v", err)
	}
}
