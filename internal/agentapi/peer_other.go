//go:build !linux

package agentapi

import (
	"io/fs"
	"net"
	"os"
)

// peerOf is unknown off Linux: the local API then refuses every caller
// (no unix-peer rule can match), rather than guess.
func peerOf(c net.Conn) *Peer { return nil }

// ownedByUs is not checked off Linux, so a stale socket is left for the
// operator to remove.
func ownedByUs(fi fs.FileInfo) bool { return false }

// renameNoReplace renames oldpath to newpath unless newpath exists
// (checked, then renamed: not atomic off Linux).
func renameNoReplace(oldpath, newpath string) error {
	if _, err := os.Lstat(newpath); err == nil {
		return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: fs.ErrExist}
	}
	return os.Rename(oldpath, newpath)
}
