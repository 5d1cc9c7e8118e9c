//go:build unix

package atomicfile

import (
	"context"
	"errors"
	"os"
	"syscall"
	"time"
)

// LockWait takes an exclusive flock on f, polling every 10ms so that the
// wait is bounded by timeout and ends with ctx: past timeout it returns
// ErrLockTimeout, when ctx ends ctx's error. waiting, if set, is called
// once when the lock is found held. The returned function releases the
// lock; f stays open (the caller closes it, which releases it too).
func LockWait(ctx context.Context, f *os.File, timeout time.Duration, waiting func()) (func(), error) {
	deadline := time.Now().Add(timeout)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN) }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			return nil, err
		}
		if waiting != nil {
			waiting()
			waiting = nil
		}
		if time.Now().After(deadline) {
			return nil, ErrLockTimeout
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func lock(f *os.File) error {
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if err != syscall.EINTR {
			return err
		}
	}
}

// removeIfAbandoned removes a temporary file whose writer no longer
// holds its lock: the writer died, since a live one holds it until its
// rename. The file is removed while the lock is held, so a writer that
// created it a moment ago finds its name gone and starts again.
func removeIfAbandoned(path string) bool {
	// O_NONBLOCK: a name swapped for a named pipe must not hang us.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return false
	}
	defer f.Close()
	if info, err := f.Stat(); err != nil || !info.Mode().IsRegular() {
		return false
	}
	if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) != nil {
		return false // a live writer
	}
	same, err := stillNamed(f)
	if err != nil || !same {
		return false
	}
	return os.Remove(path) == nil
}
