package release_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keyless-dev/keyless/interop/docs"
	"github.com/keyless-dev/keyless/interop/release"
)

// documentedBlocks returns the command blocks of README.md and docs/*.md
// marked "run by interop/release" (interop/docs skips them).
func documentedBlocks(t *testing.T, root string) []docs.Block {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	var out []docs.Block
	for _, f := range append([]string{filepath.Join(root, "README.md")}, files...) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(root, f)
		blocks, err := docs.Parse(rel, string(b))
		if err != nil {
			t.Fatal(err)
		}
		for _, bl := range blocks {
			if bl.Directive.Kind == docs.Release {
				out = append(out, bl)
			}
		}
	}
	return out
}

// TestDocumentedInstall runs, as written, every block of the README and
// docs/ that interop/docs leaves to this module: the block that builds a
// release (scripts/release) in a clean worktree of HEAD, then each
// install block in a Debian container of its own holding that release's
// files, as a user who downloaded them into one directory would (see
// prepare).
func TestDocumentedInstall(t *testing.T) {
	c := needCheckouts(t)
	blocks := documentedBlocks(t, c.root)
	var build []docs.Block
	var install []docs.Block
	for _, b := range blocks {
		if strings.Contains(b.Script(), "scripts/release") {
			build = append(build, b)
		} else {
			install = append(install, b)
		}
	}
	if len(build) != 1 || len(install) == 0 {
		t.Fatalf("want one documented block that runs scripts/release and at least one install block; got %d and %d", len(build), len(install))
	}

	wt := filepath.Join(c.base, "documented", "keyless")
	if out, err := exec.Command("git", "-C", c.root, "worktree", "add", "--detach", "-q", wt, c.head).CombinedOutput(); err != nil {
		t.Fatalf("git worktree add: %v\n%s", err, out)
	}
	t.Cleanup(func() { exec.Command("git", "-C", c.root, "worktree", "remove", "--force", wt).Run() })
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", build[0].Script())
	cmd.Dir = wt
	cmd.Env = withoutEpoch()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s, run in a clean checkout: %v\n%s", build[0].Where(), err, out)
	}
	dist := filepath.Join(wt, "dist")
	if err := release.Verify(dist); err != nil {
		t.Fatalf("the documented release does not verify: %v", err)
	}

	for _, b := range install {
		t.Run(b.Where(), func(t *testing.T) {
			sh := release.DebianShell(t, dist)
			out, err := sh(prepare + b.Script())
			if err != nil {
				t.Fatalf("%s failed in a Debian container: %v\n%s", b.Where(), err, out)
			}
			if strings.Contains(b.Script(), "keyless version") && !strings.Contains(out, testVersion) {
				t.Errorf("%s: keyless version did not print %s:\n%s", b.Where(), testVersion, out)
			}
		})
	}
}

// prepare makes the container a user's machine with the release's files
// downloaded into one directory: root, with sudo running the command as
// is, or with -u USER as that user (setpriv, with the user's HOME).
const prepare = `cat > /usr/local/bin/sudo <<'SUDO'
#!/bin/sh
if [ "$1" = -u ]; then
	user=$2
	shift 2
	home=$(getent passwd "$user" | cut -d: -f6)
	exec setpriv --reuid="$user" --regid="$user" --init-groups env HOME="$home" USER="$user" LOGNAME="$user" "$@"
fi
exec "$@"
SUDO
chmod 0755 /usr/local/bin/sudo
mkdir /root/downloads && cp /pkgs/* /root/downloads/ && cd /root/downloads
`

// withoutEpoch is the environment without SOURCE_DATE_EPOCH, so the
// commit's time counts, as for a user.
func withoutEpoch() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SOURCE_DATE_EPOCH=") {
			env = append(env, kv)
		}
	}
	return env
}
