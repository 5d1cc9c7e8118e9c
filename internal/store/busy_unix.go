//go:build unix

package store

import (
	"os"
	"syscall"
)

// Busy reports, without waiting, whether another process holds the bbolt
// file at path in a way that would make OpenBolt with these options wait
// for it (a running CA holds it exclusively). It takes the same kind of
// flock bbolt takes, and lets go at once. A missing or unreadable file is
// not busy: OpenBolt then reports what is wrong.
func Busy(path string, opts BoltOptions) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	how := syscall.LOCK_EX
	if opts.ReadOnly {
		how = syscall.LOCK_SH
	}
	if err := syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB); err != nil {
		return err == syscall.EWOULDBLOCK
	}
	syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	return false
}
