//go:build unix

package identity

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// noFollow opens a file only if it is not a symbolic link, and never
// waits for a named pipe's writer.
const noFollow = syscall.O_NOFOLLOW | syscall.O_NONBLOCK

// lockPair takes the pair's lock: an exclusive flock on CERT+lockSuffix.
// The file exists only while someone holds or waits for it: the holder
// removes it before letting go, and a waiter that then gets a lock on the
// removed file sees that the name no longer leads to it and tries again,
// so no empty lock file stays beside the pair.
func lockPair(certPath string) (func(), error) {
	path := certPath + lockSuffix
	for {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0o600)
		if err != nil {
			return nil, err
		}
		// In a directory others can write (/tmp), another user could have
		// made the lock file and hold it forever: only ours or root's will
		// do, and only a regular file.
		if err := checkLockFile(f); err != nil {
			f.Close()
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if err := flock(f, syscall.LOCK_EX); err != nil {
			f.Close()
			return nil, err
		}
		a, err1 := f.Stat()
		b, err2 := os.Lstat(path)
		if err1 == nil && err2 == nil && os.SameFile(a, b) {
			return func() {
				os.Remove(path)
				flock(f, syscall.LOCK_UN)
				f.Close()
			}, nil
		}
		f.Close() // removed by the holder we waited for: take the new one
	}
}

func checkLockFile(f *os.File) error {
	info, err := f.Stat()
	if err != nil {
		return err
	}
	if !info.Mode().IsRegular() {
		return errors.New("not a regular file")
	}
	if st, ok := info.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() && st.Uid != 0 {
		return fmt.Errorf("made by uid %d, not by this user or root, who could hold it forever", st.Uid)
	}
	return nil
}

func flock(f *os.File, how int) error {
	for {
		if err := syscall.Flock(int(f.Fd()), how); err != syscall.EINTR {
			return err
		}
	}
}
