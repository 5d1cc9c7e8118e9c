package release

import (
	"os/exec"
	"testing"
)

// DebianShell starts a Debian container (the one the package tests
// install the .deb in) with dir mounted read-only at /pkgs, and returns a
// function that runs a bash script in it as root. Tests in package
// release_test use it to run the documents' install blocks.
func DebianShell(t *testing.T, dir string) func(script string) (string, error) {
	t.Helper()
	d := docker(t)
	debianRoot(t, d)
	c := startDebian(t, d, dir)
	return func(script string) (string, error) {
		out, err := exec.Command(d, "exec", c.id, "bash", "-euo", "pipefail", "-c", script).CombinedOutput()
		return string(out), err
	}
}
