//go:build !unix

package atomicfile

import (
	"os"
	"time"
)

func lock(*os.File) error { return nil }

// removeIfAbandoned has no lock to ask, so it takes a temporary file
// untouched for StaleAfter as abandoned: no write takes that long.
func removeIfAbandoned(path string) bool {
	info, err := os.Lstat(path)
	if err != nil || time.Since(info.ModTime()) < StaleAfter {
		return false
	}
	return os.Remove(path) == nil
}
