package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/keyless-dev/keyless/internal/buildinfo"
)

func newVersionCommand(s streams) *cobra.Command {
	return &cobra.Command{
		Use:     "version",
		Short:   "Print keyless's version, commit and Go version",
		Example: "  keyless version",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			b := buildinfo.Read()
			fmt.Fprintf(s.out, "keyless %s\ncommit %s\n%s %s\n", b.Version, b.Commit, b.Go, b.Platform)
			return nil
		},
	}
}
