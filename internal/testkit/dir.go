package testkit

import (
	"os"
	"testing"
)

// DirNames returns the names in dir, sorted, failing t when it cannot be
// read: what a test checks when nothing may be left behind.
func DirNames(t testing.TB, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}
