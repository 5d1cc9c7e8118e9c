// Package atomicfile replaces files so that a crash at any instant leaves
// either the old content or the new, never a torn file: write a temporary
// file in the same directory, fsync it, rename it over the target, fsync
// the directory. Keys, certificates, credentials and anything a script
// reads while keyless may be rewriting it go through here. Any keyless
// package may import it.
//
// A writer killed before its rename leaves its temporary file behind,
// and for a key that file holds the whole key. Temporary files are named
// ".tmp-<target>-<random>", and a writer holds an exclusive flock on its
// temporary file from creation to rename: Cleanup removes the ones no
// live writer holds, and every WriteFile first cleans up after earlier
// writers of its own target. (Without flock, on Windows, Cleanup removes
// those older than StaleAfter instead.)
package atomicfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// TempPrefix begins the name of every temporary file WriteFile makes.
const TempPrefix = ".tmp-"

// ErrLockTimeout is LockWait's answer when another process held the lock
// for the whole wait.
var ErrLockTimeout = errors.New("the lock was held by another process for the whole wait")

// StaleAfter is how old a temporary file must be for Cleanup to remove
// it where there is no flock to tell whether its writer is alive.
const StaleAfter = time.Hour

// WriteFile atomically replaces path with data. The file gets mode perm
// before any data is written, so secrets are never readable by others,
// even briefly.
func WriteFile(path string, data []byte, perm os.FileMode) (err error) {
	dir := filepath.Dir(path)
	Cleanup(path)
	tmp, err := createLocked(dir, TempPrefix+filepath.Base(path)+"-")
	if err != nil {
		return err
	}
	renamed, closed := false, false
	defer func() {
		if !renamed {
			os.Remove(tmp.Name())
		}
		// Closing releases the lock: only now may a cleaner touch the
		// name, which by then is the target or gone.
		if !closed {
			if cerr := tmp.Close(); err == nil {
				err = cerr
			}
		}
	}()
	if err := tmp.Chmod(perm); err != nil {
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if runtime.GOOS == "windows" {
		// Windows renames no open file; it has no flock to keep either.
		closed = true
		if err := tmp.Close(); err != nil {
			return err
		}
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	renamed = true
	return SyncDir(dir)
}

// createLocked creates a temporary file and takes its lock. A cleaner
// that got to the new name before the lock did may have removed it; then
// the name no longer leads to this file, and another is made.
func createLocked(dir, prefix string) (*os.File, error) {
	for range 5 {
		f, err := os.CreateTemp(dir, prefix+"*")
		if err != nil {
			return nil, err
		}
		if err := lock(f); err != nil {
			f.Close()
			os.Remove(f.Name())
			return nil, err
		}
		if same, err := stillNamed(f); err == nil && same {
			return f, nil
		}
		f.Close()
	}
	return nil, fmt.Errorf("creating a temporary file in %s: removed each time before it could be locked", dir)
}

// stillNamed reports whether f's name still leads to f.
func stillNamed(f *os.File) (bool, error) {
	a, err := f.Stat()
	if err != nil {
		return false, err
	}
	b, err := os.Lstat(f.Name())
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return os.SameFile(a, b), nil
}

// Cleanup removes the temporary files that killed writers of path left
// behind, and leaves those of writers still at work. It reports what it
// removed; failures are not errors (the next call tries again).
func Cleanup(path string) []string {
	return cleanup(filepath.Dir(path), TempPrefix+filepath.Base(path)+"-")
}

// CleanupDir is Cleanup for every target in dir.
func CleanupDir(dir string) []string { return cleanup(dir, TempPrefix) }

func cleanup(dir, prefix string) []string {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var removed []string
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), prefix) || !e.Type().IsRegular() {
			continue
		}
		p := filepath.Join(dir, e.Name())
		if removeIfAbandoned(p) {
			removed = append(removed, p)
		}
	}
	return removed
}

// SyncDir fsyncs a directory so a rename in it survives a crash. It does
// nothing on Windows, where directories cannot be opened for syncing.
func SyncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
