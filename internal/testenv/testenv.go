// Package testenv decides what a test does when a peer tool it needs (the
// openssl or aws command, a compiler) is missing: it skips with a message
// that says what to install, unless KEYLESS_INTEROP=require, which CI sets,
// where a missing peer fails the test so that CI never passes by skipping.
// Only tests may import it.
package testenv

import (
	"os"
	"os/exec"
	"testing"
)

// Required reports whether missing peers are failures (KEYLESS_INTEROP=require).
func Required() bool { return os.Getenv("KEYLESS_INTEROP") == "require" }

// Unavailable skips t, or fails it when peers are required, saying why.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	if Required() {
		t.Fatalf("KEYLESS_INTEROP=require: "+format, args...)
	}
	t.Skipf(format+" (set KEYLESS_INTEROP=require to make this a failure)", args...)
}

// LookPath returns the path of the named program or skips/fails t.
func LookPath(t testing.TB, name, install string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		Unavailable(t, "%s not found on PATH; install %s", name, install)
	}
	return p
}
