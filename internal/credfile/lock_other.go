//go:build !unix

package credfile

import "os"

// lock does nothing where there is no flock (Windows): concurrent keyless
// processes there can lose each other's profile.
func (w *Writer) lock(string) func() { return func() {} }

func openNoFollow(path string) (*os.File, error) { return os.Open(path) }
