package testkit

import (
	"os"
	"os/exec"
	"testing"
)

// InteropRequired reports whether missing peers are failures
// (KEYLESS_INTEROP=require, which CI sets).
func InteropRequired() bool { return os.Getenv("KEYLESS_INTEROP") == "require" }

// Unavailable skips t because a peer it needs is missing, saying what to
// install, or fails it when peers are required, so CI never passes by
// skipping.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	if InteropRequired() {
		t.Fatalf("KEYLESS_INTEROP=require: "+format, args...)
	}
	t.Skipf(format+" (set KEYLESS_INTEROP=require to make this a failure)", args...)
}

// LookPath returns the path of the named program, or skips (fails) t
// with what to install.
func LookPath(t testing.TB, name, install string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		Unavailable(t, "%s not found on PATH; install %s", name, install)
	}
	return p
}
