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

// TestReadRefusesAnotherUsersFIFO: the attack review had another user
// make a named pipe and write the CA password into it; whoever writes the
// pipe chooses the secret, so its owner must be this user or root.
func TestReadRefusesAnotherUsersFIFO(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "pw")
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
	// Opening a FIFO for reading waits for a writer: give it one.
	go func() {
		if w, err := os.OpenFile(fifo, os.O_WRONLY, 0); err == nil {
			w.WriteString("chosen-by-someone-else\n")
			w.Close()
		}
	}()
	var oe *secretfile.OwnerError
	if _, err := c.Read("--password-file", fifo, nil); !errors.As(err, &oe) {
		t.Fatalf("another user's named pipe: %v", err)
	}
}
