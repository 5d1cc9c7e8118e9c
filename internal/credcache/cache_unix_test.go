//go:build unix

package credcache

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

func TestForeignLockFile(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give the lock file to another user")
	}
	c, _, _ := newCache(t)
	c.LockTimeout = 100 * time.Millisecond
	os.MkdirAll(c.Dir, 0o700)
	lock := filepath.Join(c.Dir, ".lock")
	os.WriteFile(lock, nil, 0o666)
	os.Chown(lock, 4242, 4242)
	// The other user holds it.
	held, err := os.Open(lock)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	if err := syscall.Flock(int(held.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	unlock, err := c.lock(context.Background())
	if err != nil {
		t.Fatalf("a foreign lock file blocked the cache: %v", err)
	}
	unlock()
	info, _ := os.Stat(lock)
	if st := info.Sys().(*syscall.Stat_t); int(st.Uid) != os.Geteuid() {
		t.Fatal("lock file still foreign")
	}
}
