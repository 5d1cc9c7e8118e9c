// Package release builds keyless releases (stand-in doc comment; plan.go
// has the real one).
package release

// This file is a stand-in for plan.go, which the release-build helper
// owns: copies of the shared types so that image.go and formula.go
// compile on their own branch. The lead deletes it at merge.

import "time"

// Target is one platform a release is built for.
type Target struct{ GOOS, GOARCH, GOARM string }

// String names the target as linux-amd64, linux-armv7, darwin-arm64.
func (t Target) String() string {
	if t.GOARCH == "arm" && t.GOARM != "" {
		return t.GOOS + "-armv" + t.GOARM
	}
	return t.GOOS + "-" + t.GOARCH
}

// Plan is one release: what is built, from where, into where.
type Plan struct {
	Version    string    // "v1.2.3" (leading v), validated
	Commit     string    // full 40-hex commit of the checkout
	Epoch      time.Time // SOURCE_DATE_EPOCH
	Source     string    // the checkout (repo root) the binaries are built from
	Dist       string    // output directory (default <Source>/dist)
	AllowDirty bool
}
