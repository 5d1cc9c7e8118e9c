package renewal_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/keyless-dev/keyless/internal/renewal"
)

// TestExecHookErrorHidesTheCommand: a failing --exec is reported by its
// exit status, never with its command line, which may hold a token.
func TestExecHookErrorHidesTheCommand(t *testing.T) {
	var out bytes.Buffer
	err := renewal.ExecHook(`echo reloading; TOKEN=glpat-secret; exit 3`, &out)(context.Background(), nil)
	if err == nil || err.Error() != "--exec: exit status 3" {
		t.Fatalf("error %v, want --exec: exit status 3", err)
	}
	if strings.Contains(err.Error(), "glpat") {
		t.Errorf("the command is in the error: %v", err)
	}
	if out.String() != "reloading\n" {
		t.Errorf("output %q", out.String())
	}
}
