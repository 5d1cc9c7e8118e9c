// Package buildinfo says which keyless this is: its version, commit, Go
// version and platform, for keyless version, the CA's /version answer and
// the User-Agent every keyless client sends. Any keyless package may
// import it.
package buildinfo

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// version and commit are set at release build time with
// -ldflags "-X github.com/keyless-dev/keyless/internal/buildinfo.version=v1.2.3 -X ...commit=abc123";
// otherwise they come from the module and VCS information Go embeds.
var (
	version = ""
	commit  = ""
)

// Info describes the running binary. Its JSON field names are what
// keyless version --json prints, a stable interface scripts parse: add
// fields, never rename or remove one.
type Info struct {
	Version  string `json:"version"`  // v1.2.3 as stamped, the module version, or "dev"
	Commit   string `json:"commit"`   // the full commit, "-dirty" appended for a modified checkout, or "unknown"
	Go       string `json:"go"`       // the Go release that built it, go1.26.0
	Platform string `json:"platform"` // GOOS/GOARCH, linux/arm64
}

// Read returns the running binary's Info.
func Read() Info {
	b := Info{Version: version, Commit: commit, Go: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if info, ok := debug.ReadBuildInfo(); ok {
		if b.Version == "" && info.Main.Version != "" && info.Main.Version != "(devel)" {
			b.Version = info.Main.Version
		}
		if b.Commit == "" {
			modified := false
			for _, s := range info.Settings {
				switch s.Key {
				case "vcs.revision":
					b.Commit = s.Value
				case "vcs.modified":
					modified = s.Value == "true"
				}
			}
			if b.Commit != "" && modified {
				b.Commit += "-dirty"
			}
		}
	}
	if b.Version == "" {
		b.Version = "dev"
	}
	if b.Commit == "" {
		b.Commit = "unknown"
	}
	return b
}

// UserAgent is what keyless's clients send: keyless/VERSION (GO; PLATFORM).
func UserAgent() string {
	b := Read()
	return fmt.Sprintf("keyless/%s (%s; %s)", b.Version, b.Go, b.Platform)
}
