//go:build unix

package atomicfile_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/keyless-dev/keyless/internal/atomicfile"
)

// TestLockWait: a free lock is taken at once; a held one is waited for
// (waiting is called once), and the wait ends at the timeout with
// ErrLockTimeout or with ctx; after unlock another open file takes it.
func TestLockWait(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lock")
	open := func() *os.File {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return f
	}
	holder, other := open(), open()
	unlock, err := atomicfile.LockWait(context.Background(), holder, time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	waited := 0
	if _, err := atomicfile.LockWait(context.Background(), other, 30*time.Millisecond, func() { waited++ }); !errors.Is(err, atomicfile.ErrLockTimeout) {
		t.Errorf("a held lock: %v, want ErrLockTimeout", err)
	}
	if waited != 1 {
		t.Errorf("waiting called %d times, want 1", waited)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := atomicfile.LockWait(ctx, other, time.Minute, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("a held lock and a cancelled context: %v", err)
	}
	unlock()
	unlock2, err := atomicfile.LockWait(context.Background(), other, time.Second, nil)
	if err != nil {
		t.Fatalf("after unlock: %v", err)
	}
	if err := syscall.Flock(int(holder.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err == nil {
		t.Error("the lock LockWait took is not held")
	}
	unlock2()
}
