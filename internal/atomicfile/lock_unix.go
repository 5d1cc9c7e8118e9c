//go:build unix

package atomicfile

import (
	"os"
	"syscall"
)

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
