// Command keyless gives machines outside AWS short-lived AWS credentials
// from X.509 certificates through IAM Roles Anywhere. See the README.
package main

import (
	"os"

	"github.com/keyless-dev/keyless/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
