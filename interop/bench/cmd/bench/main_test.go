package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestUsage: a usage error exits 2 and says what to fix.
func TestUsage(t *testing.T) {
	root := fakeRoot(t)
	for name, c := range map[string]struct {
		args []string
		err  string
	}{
		"unknown section": {[]string{"-root", root, "-bin", "/x", "-only", "cp,nope"}, `-only: no section "nope"; the sections are cp, ca,`},
		"no binaries":     {[]string{"-root", root}, "-bin is required to measure"},
		"arguments":       {[]string{"-root", root, "cp"}, `unexpected arguments ["cp"]`},
		"unknown flag":    {[]string{"-fast"}, "flag provided but not defined: -fast"},
	} {
		t.Run(name, func(t *testing.T) {
			var stderr bytes.Buffer
			if code := run(c.args, &stderr); code != 2 || !strings.Contains(stderr.String(), c.err) {
				t.Errorf("exit %d, stderr:\n%s\nwant 2 and %q", code, stderr.String(), c.err)
			}
		})
	}
}

// TestRenderOnly: -render measures nothing and writes the document from
// the stored results (none here: every section says so).
func TestRenderOnly(t *testing.T) {
	root := fakeRoot(t)
	var stderr bytes.Buffer
	if code := run([]string{"-root", root, "-render"}, &stderr); code != 0 {
		t.Fatalf("exit %d:\n%s", code, stderr.String())
	}
	b, err := os.ReadFile(filepath.Join(root, "docs", "benchmarks.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "**Not measured**: no results in docs/benchmarks/ (run `scripts/bench -only cp`)") {
		t.Errorf("document:\n%s", b)
	}
	if !strings.Contains(stderr.String(), "no scaling results, so no plot") {
		t.Errorf("stderr: %s", stderr.String())
	}
}

func fakeRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "docs"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "go.mod"), []byte("module github.com/keyless-dev/keyless\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return root
}
