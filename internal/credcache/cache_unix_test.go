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

// TestAbandonedTemporaryFilesArePruned: a temporary entry a killed writer
// left (no one holds its lock) goes at the next write, however new it
// is; one a live writer holds locked stays, however old.
func TestAbandonedTemporaryFilesArePruned(t *testing.T) {
	c, _, _ := newCache(t)
	c.Now = time.Now
	f := &fetcher{life: time.Hour, now: time.Now}
	os.MkdirAll(c.Dir, 0o700)
	abandoned := filepath.Join(c.Dir, ".tmp-"+Key{Certificate: "a"}.filename()+"-123")
	live := filepath.Join(c.Dir, ".tmp-"+Key{Certificate: "b"}.filename()+"-456")
	os.WriteFile(abandoned, []byte("x"), 0o600)
	os.WriteFile(live, []byte("x"), 0o600)
	old := time.Now().Add(-2 * time.Hour)
	os.Chtimes(live, old, old)
	held, err := os.Open(live)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	if err := syscall.Flock(int(held.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	c.GetOrFetch(context.Background(), testKey(), f.fetch)
	if _, err := os.Stat(abandoned); !os.IsNotExist(err) {
		t.Fatal("an abandoned temporary file was kept")
	}
	if _, err := os.Stat(live); err != nil {
		t.Fatal("a temporary file a live writer holds was removed")
	}
}
