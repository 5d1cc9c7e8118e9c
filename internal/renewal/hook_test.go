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

// TestExecHookEnvironmentHasNoSecrets: the command after a renewal does
// not inherit keyless's secret variables (the second attack review), but
// does inherit the rest.
func TestExecHookEnvironmentHasNoSecrets(t *testing.T) {
	t.Setenv("KEYLESS_TOKEN", "eyJ.one-time.token")
	t.Setenv("KEYLESS_PKCS8_PASSWORD", "key-password")
	t.Setenv("KEYLESS_LOG_LEVEL", "debug")
	t.Setenv("SERVICE_NAME", "nginx")
	var out bytes.Buffer
	if err := renewal.ExecHook(`env`, &out)(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	env := out.String()
	for _, gone := range []string{"KEYLESS_TOKEN=", "KEYLESS_PKCS8_PASSWORD="} {
		if strings.Contains(env, gone) {
			t.Errorf("--exec's command saw %s", gone)
		}
	}
	for _, kept := range []string{"KEYLESS_LOG_LEVEL=debug", "SERVICE_NAME=nginx"} {
		if !strings.Contains(env, kept) {
			t.Errorf("--exec's command lost %s", kept)
		}
	}
}
