//go:build linux

package containers_test

import (
	"os"
	"testing"

	"github.com/keyless-dev/keyless/internal/testkit"
)

func TestMain(m *testing.M) {
	code := testkit.Main(m).Run()
	imagesMu.Lock()
	removeImages(built)
	imagesMu.Unlock()
	os.Exit(code)
}
