package atomicfile_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/keyless-dev/keyless/internal/atomicfile"
)

func TestWriteFileReplacesWithMode(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "key.pem")
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := atomicfile.WriteFile(path, []byte("new"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil || string(got) != "new" {
		t.Fatalf("content = %q, %v; want \"new\"", got, err)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Errorf("mode = %04o, want 0600", info.Mode().Perm())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only the target (temporary file left behind?)", len(entries))
	}
}

func TestWriteFileFailureLeavesTargetAndNoTemporary(t *testing.T) {
	// A rename over a non-empty directory fails, for root too, after the
	// temporary file was written: the target must be untouched and the
	// temporary file removed.
	dir := t.TempDir()
	target := filepath.Join(dir, "cert.pem")
	if err := os.Mkdir(target, 0o700); err != nil {
		t.Fatal(err)
	}
	keep := filepath.Join(target, "keep")
	if err := os.WriteFile(keep, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := atomicfile.WriteFile(target, []byte("new"), 0o600); err == nil {
		t.Fatal("WriteFile over a non-empty directory succeeded")
	}
	if got, _ := os.ReadFile(keep); string(got) != "old" {
		t.Errorf("target content changed to %q", got)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries after a failed write, want 1 (temporary file left behind)", len(entries))
	}
}
