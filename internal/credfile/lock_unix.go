//go:build unix

package credfile

import (
	"context"
	"errors"
	"os"
	"syscall"

	"github.com/keyless-dev/keyless/internal/atomicfile"
)

// lock takes an exclusive flock on the directory itself, so that two
// keyless processes updating profiles of the same file (one service per
// profile is the usual setup) do not each write back what they read
// before the other's rename, losing its profile. Locking the directory
// leaves no lock file in ~/.aws. Other writers (aws configure) do not
// take it; nothing can make them. Anyone who can open the directory can
// hold its lock, so the wait is bounded: past LockTimeout Write goes on
// without it, with a warning, rather than let the credentials expire.
func (w *Writer) lock(dir string) func() {
	f, err := os.OpenFile(dir, os.O_RDONLY|syscall.O_DIRECTORY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		w.logger().Warn("writing the credentials file without its lock", "dir", dir, "reason", err.Error())
		return func() {}
	}
	timeout := w.LockTimeout
	if timeout <= 0 {
		timeout = DefaultLockTimeout
	}
	unlock, err := atomicfile.LockWait(context.Background(), f, timeout, w.waiting)
	w.waiting = nil
	switch {
	case errors.Is(err, atomicfile.ErrLockTimeout):
		f.Close()
		w.logger().Warn("writing the credentials file without its lock: another process has held it too long", "dir", dir, "waited", timeout.String())
		return func() {}
	case err != nil:
		f.Close()
		w.logger().Warn("writing the credentials file without its lock", "dir", dir, "reason", err.Error())
		return func() {}
	}
	return func() { unlock(); f.Close() }
}

func openNoFollow(path string) (*os.File, error) {
	// O_NONBLOCK: a name swapped for a named pipe must not hang us.
	return os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
}
