package cli

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// version and commit are set at release build time with
// -ldflags "-X github.com/keyless-dev/keyless/internal/cli.version=v1.2.3 -X ...commit=abc123";
// otherwise they come from the module and VCS information Go embeds.
var (
	version = ""
	commit  = ""
)

type buildInfo struct {
	Version, Commit, Go, Platform string
}

func currentBuild() buildInfo {
	b := buildInfo{Version: version, Commit: commit, Go: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	info, ok := debug.ReadBuildInfo()
	if ok {
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

func userAgent() string {
	b := currentBuild()
	return fmt.Sprintf("keyless/%s (%s; %s)", b.Version, b.Go, b.Platform)
}

func newVersionCommand(s streams) *cobra.Command {
	return &cobra.Command{
		Use:     "version",
		Short:   "Print keyless's version, commit and Go version",
		Example: "  keyless version",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			b := currentBuild()
			fmt.Fprintf(s.out, "keyless %s\ncommit %s\n%s %s\n", b.Version, b.Commit, b.Go, b.Platform)
			return nil
		},
	}
}
