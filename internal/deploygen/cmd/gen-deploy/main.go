// Command gen-deploy writes keyless's service definitions into the
// deploy directory it is given (go generate ./internal/deploygen runs it
// with ../../deploy).
package main

import (
	"fmt"
	"os"

	"github.com/keyless-dev/keyless/internal/deploygen"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: gen-deploy DEPLOY-DIR")
		os.Exit(2)
	}
	if err := deploygen.Write(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "gen-deploy:", err)
		os.Exit(1)
	}
}
