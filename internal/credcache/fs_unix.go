//go:build unix

package credcache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"

	"github.com/keyless-dev/keyless/internal/atomicfile"
)

// checkDir makes sure the cache directory is safe to trust: a directory
// (not a symlink) owned by this user that no one else can use, since
// whoever can write there could plant credentials for their own account
// and have this user's jobs act in it, and whoever can read there reads
// credentials. Anything else is refused, a directory with loose modes
// too: --cache-dir may name a directory that is not keyless's, whose
// modes are not keyless's to change. With create, a missing directory is
// made 0700.
func (c *Cache) checkDir(create bool) error {
	info, err := c.statDir(create)
	if err != nil {
		return err
	}
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	if int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("%s belongs to uid %d, not to this user (uid %d)", c.Dir, st.Uid, os.Geteuid())
	}
	if info.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("%s has mode %04o: others could read the credentials or plant their own; chmod 700 it, or give --cache-dir a directory of its own", c.Dir, info.Mode().Perm())
	}
	return nil
}

// readPrivateFile reads a regular file owned by this user that no one
// else can read or write; others are treated as corrupt.
func readPrivateFile(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		if errors.Is(err, syscall.ELOOP) {
			return nil, errors.New("is a symlink")
		}
		return nil, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !info.Mode().IsRegular() {
		return nil, errors.New("not a regular file")
	}
	if st, ok := info.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() {
		return nil, fmt.Errorf("owned by uid %d, not this user", st.Uid)
	}
	if info.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("mode %04o lets others read or write it", info.Mode().Perm())
	}
	return io.ReadAll(io.LimitReader(f, 1<<20))
}

// lock takes an exclusive flock on dir/.lock, polling so the wait can be
// bounded and cancelled.
func (c *Cache) lock(ctx context.Context) (func(), error) {
	path := filepath.Join(c.Dir, ".lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, err
	}
	// A lock file left by another user (before the directory was made
	// private) could be held forever to stall every miss: replace it.
	if info, err := f.Stat(); err == nil {
		if st, ok := info.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() {
			f.Close()
			if err := os.Remove(path); err != nil {
				return nil, err
			}
			if f, err = os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600); err != nil {
				return nil, err
			}
		}
	}
	timeout := c.LockTimeout
	if timeout <= 0 {
		timeout = DefaultLockTimeout
	}
	unlock, err := atomicfile.LockWait(ctx, f, timeout, c.waiting)
	c.waiting = nil
	if err != nil {
		f.Close()
		if errors.Is(err, atomicfile.ErrLockTimeout) {
			return nil, fmt.Errorf("another keyless process held the cache lock for over %s", timeout)
		}
		return nil, err
	}
	return func() { unlock(); f.Close() }, nil
}
