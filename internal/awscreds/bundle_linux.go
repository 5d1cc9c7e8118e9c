//go:build linux

package awscreds

import (
	"io/fs"
	"syscall"
	"time"
)

// fileID is the identity of the file info describes (see bundleID).
func fileID(info fs.FileInfo) (id fileIdentity, ok bool) {
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		return fileIdentity{}, false
	}
	return fileIdentity{dev: uint64(st.Dev), ino: uint64(st.Ino), size: st.Size,
		mtime: time.Unix(st.Mtim.Unix()), ctime: time.Unix(st.Ctim.Unix())}, true
}
