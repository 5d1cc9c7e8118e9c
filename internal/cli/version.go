package cli

import (
	"fmt"
	"io"

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
			printVersion(s.out)
			return nil
		},
	}
}

func printVersion(w io.Writer) {
	b := buildinfo.Read()
	fmt.Fprintf(w, "keyless %s\ncommit %s\n%s %s\n", b.Version, b.Commit, b.Go, b.Platform)
}
