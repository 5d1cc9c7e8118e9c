//go:build !unix

package credcache

import (
	"context"
	"errors"
	"io"
	"os"
)

// On systems without POSIX ownership and flock (Windows), the directory is
// created private to the user by the OS defaults and no cross-process lock
// is taken: concurrent misses may each call CreateSession once.
func (c *Cache) checkDir(create bool) error {
	if c.Dir == "" {
		return errors.New("no cache directory set")
	}
	if create {
		if err := os.MkdirAll(c.Dir, 0o700); err != nil {
			return err
		}
	}
	info, err := os.Stat(c.Dir)
	if err != nil {
		return err
	}
	if !info.IsDir() {
		return errors.New(c.Dir + " is not a directory")
	}
	return nil
}

func readPrivateFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, 1<<20))
}

func syncDir(string) error { return nil }

func (c *Cache) lock(context.Context) (func(), error) { return func() {}, nil }
