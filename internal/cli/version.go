package cli

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/keyless-dev/keyless/internal/buildinfo"
)

func newVersionCommand(s streams) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print keyless's version, commit and Go version",
		Long: `Print keyless's version, the commit it was built from, the Go release that
built it and its platform. A release binary says the version and commit it
was stamped with; a binary built from a checkout says "dev" and the
checkout's commit ("-dirty" when it had changes).

--json prints one JSON object with the fields version, commit, go and
platform, for scripts; these names are stable (fields may be added, none
renamed or removed).`,
		Example: `  keyless version

  keyless version --json
  {"version":"v1.2.3","commit":"0123456789abcdef0123456789abcdef01234567","go":"go1.26.0","platform":"linux/arm64"}`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if asJSON {
				return json.NewEncoder(s.out).Encode(buildinfo.Read())
			}
			printVersion(s.out)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON object: version, commit, go, platform")
	return cmd
}

func printVersion(w io.Writer) {
	b := buildinfo.Read()
	fmt.Fprintf(w, "keyless %s\ncommit %s\n%s %s\n", b.Version, b.Commit, b.Go, b.Platform)
}
