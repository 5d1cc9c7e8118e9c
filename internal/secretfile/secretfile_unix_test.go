//go:build unix

package secretfile_test

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/keyless-dev/keyless/internal/secretfile"
)

// TestReadDoesNotWaitOnAnotherUsersFIFO: whoever writes a named pipe
// chooses the secret read from it (the first attack review had another
// user write the CA password into one), so its owner must be this user or
// root; and with no writer, opening it would block forever (the second
// review), so it is refused before it is opened.
func TestReadDoesNotWaitOnAnotherUsersFIFO(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "token")
	if err := syscall.Mkfifo(fifo, 0o666); err != nil {
		t.Skipf("no named pipes here: %v", err)
	}
	c := secretfile.Checker{UID: os.Geteuid() + 4242}
	if os.Geteuid() == 0 {
		if err := os.Chown(fifo, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		c = secretfile.Mine()
	}
	var oe *secretfile.OwnerError
	if _, err := c.Read("--token-file", fifo, nil); !errors.As(err, &oe) {
		t.Fatalf("another user's named pipe, no writer: %v", err)
	}
}

// TestReadOwnFIFO: this user's own named pipe still works, written after
// keyless starts reading it.
func TestReadOwnFIFO(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "token")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("no named pipes here: %v", err)
	}
	go func() {
		if w, err := os.OpenFile(fifo, os.O_WRONLY, 0); err == nil {
			w.WriteString("my-token\n")
			w.Close()
		}
	}()
	got, err := secretfile.Read("--token-file", fifo, nil)
	if err != nil || string(got) != "my-token" {
		t.Fatalf("own named pipe: %q, %v", got, err)
	}
}
