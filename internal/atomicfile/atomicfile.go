// Package atomicfile replaces files so that a crash at any instant leaves
// either the old content or the new, never a torn file: write a temporary
// file in the same directory, fsync it, rename it over the target, fsync
// the directory. Keys, certificates, credentials and anything a script
// reads while keyless may be rewriting it go through here. Any keyless
// package may import it.
package atomicfile

import (
	"os"
	"path/filepath"
	"runtime"
)

// WriteFile atomically replaces path with data. The file gets mode perm
// before any data is written, so secrets are never readable by others,
// even briefly.
func WriteFile(path string, data []byte, perm os.FileMode) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
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
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	return SyncDir(dir)
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
