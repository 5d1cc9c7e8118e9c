package release

// This file is a stand-in for plan.go (the release-build helper's) so
// this branch compiles on its own; the lead deletes it at merge and keeps
// plan.go. It holds copies of the shared types only.

import "time"

// Target is a platform a binary is built for.
type Target struct{ GOOS, GOARCH, GOARM string }

// String is "linux-amd64", "linux-armv7", "darwin-arm64", "windows-amd64".
func (t Target) String() string {
	arch := t.GOARCH
	if t.GOARM != "" {
		arch += "v" + t.GOARM
	}
	return t.GOOS + "-" + arch
}

// Plan is one release.
type Plan struct {
	Version    string    // "v1.2.3" (leading v), validated
	Commit     string    // full 40-hex commit of the checkout
	Epoch      time.Time // SOURCE_DATE_EPOCH
	Source     string    // the checkout (repo root) the binaries are built from
	Dist       string    // output directory (default <Source>/dist)
	AllowDirty bool
}
