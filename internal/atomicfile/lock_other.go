//go:build !unix

package atomicfile

import (
	"context"
	"os"
	"time"
)

func lock(*os.File) error { return nil }

// LockWait has no flock here (Windows): it takes nothing and returns at
// once, so concurrent writers are not kept apart.
func LockWait(context.Context, *os.File, time.Duration, func()) (func(), error) {
	return func() {}, nil
}

// removeIfAbandoned has no lock to ask, so it takes a temporary file
// untouched for StaleAfter as abandoned: no write takes that long.
func removeIfAbandoned(path string) bool {
	info, err := os.Lstat(path)
	if err != nil || time.Since(info.ModTime()) < StaleAfter {
		return false
	}
	return os.Remove(path) == nil
}
