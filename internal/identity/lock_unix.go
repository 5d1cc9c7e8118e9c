//go:build unix

package identity

import (
	"os"
	"syscall"
)

// lockPair takes the pair's lock: an exclusive flock on CERT+lockSuffix.
// The file exists only while someone holds or waits for it: the holder
// removes it before letting go, and a waiter that then gets a lock on the
// removed file sees that the name no longer leads to it and tries again,
// so no empty lock file stays beside the pair.
func lockPair(certPath string) (func(), error) {
	path := certPath + lockSuffix
	for {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
		if err != nil {
			return nil, err
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

func flock(f *os.File, how int) error {
	for {
		if err := syscall.Flock(int(f.Fd()), how); err != syscall.EINTR {
			return err
		}
	}
}
