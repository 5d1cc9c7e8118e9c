//go:build !linux

package emulator

import "os"

// datasync makes what was written to f durable (os.File.Sync: fsync, or
// F_FULLFSYNC on macOS).
func datasync(f *os.File) error { return f.Sync() }
