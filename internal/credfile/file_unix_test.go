//go:build unix

package credfile

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keyless-dev/keyless/internal/testkit"
)

// TestWriteRefusesFIFO: a named pipe in the file's place is refused
// before it is opened (opening it would wait for a writer).
func TestWriteRefusesFIFO(t *testing.T) {
	path := filepath.Join(t.TempDir(), "credentials")
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Skip(err)
	}
	if _, err := (&Writer{Path: path}).Write("default", testCreds); !errors.Is(err, ErrNotRegular) {
		t.Fatalf("got %v, want ErrNotRegular", err)
	}
}

// TestWriteGoesOnWhenTheLockIsHeldTooLong: someone holding the
// directory's lock forever cannot stop the write (they could make the
// credentials expire); Write warns and writes.
func TestWriteGoesOnWhenTheLockIsHeldTooLong(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "credentials")
	release := (&Writer{Path: path}).lock(dir)
	defer release()
	var logs testkit.Buffer
	w := &Writer{Path: path, LockTimeout: time.Nanosecond, Logger: slog.New(slog.NewTextHandler(&logs, nil))}
	if _, err := w.Write("default", testCreds); err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(path); !strings.Contains(string(data), "[default]") {
		t.Fatalf("not written: %q", data)
	}
	if !strings.Contains(logs.String(), "without its lock") {
		t.Fatalf("no warning: %s", logs.String())
	}
}

// TestWriteRefusesAHugeFile: a file far larger than any credentials file
// is refused, not read whole into memory and rewritten.
func TestWriteRefusesAHugeFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "credentials")
	big := strings.Repeat("# padding\n", MaxSize/10+1)
	if err := os.WriteFile(path, []byte(big), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := (&Writer{Path: path}).Write("default", testCreds)
	if err == nil || !strings.Contains(err.Error(), "that is not a credentials file") {
		t.Fatalf("got %v", err)
	}
	if data, _ := os.ReadFile(path); string(data) != big {
		t.Fatal("the file was changed")
	}
}

// TestWriteThroughALinkedDirectory: ~/.aws as a link to a directory of
// one's own is fine: the file is replaced in the real directory, and the
// link stays.
func TestWriteThroughALinkedDirectory(t *testing.T) {
	base := t.TempDir()
	real := filepath.Join(base, "dotfiles-aws")
	os.Mkdir(real, 0o700)
	link := filepath.Join(base, ".aws")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	if _, err := (&Writer{Path: filepath.Join(link, "credentials")}).Write("default", testCreds); err != nil {
		t.Fatal(err)
	}
	if info, err := os.Lstat(link); err != nil || info.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("the directory link was replaced: %v %v", info, err)
	}
	if data, err := os.ReadFile(filepath.Join(real, "credentials")); err != nil || !strings.Contains(string(data), "[default]") {
		t.Fatalf("not written in the real directory: %q %v", data, err)
	}
}
