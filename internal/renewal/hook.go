package renewal

import (
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"
)

// ExecHook returns an AfterRenew that runs command with sh -c (keyless
// renew's --exec: reload a service that read the old certificate), its
// output going to w. Its error does not repeat command, which may hold a
// secret (a curl with a token) and would go into every log that records
// the failure; the operator knows it from the unit.
func ExecHook(command string, w io.Writer) func(context.Context, *x509.Certificate) error {
	return func(ctx context.Context, _ *x509.Certificate) error {
		cmd := exec.CommandContext(ctx, "sh", "-c", command)
		cmd.Env = withoutSecrets(os.Environ())
		cmd.Stdout, cmd.Stderr = w, w
		// When w is not a file, its output comes through a pipe: a
		// command that leaves a background process holding it open is not
		// waited for beyond this.
		cmd.WaitDelay = 10 * time.Second
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("--exec: %w", err)
		}
		return nil
	}
}

// withoutSecrets drops keyless's own secret variables (KEYLESS_TOKEN,
// KEYLESS_PKCS8_PASSWORD, any KEYLESS_ name holding TOKEN or PASSWORD)
// from env: the command after a renewal needs none of them.
func withoutSecrets(env []string) []string {
	out := env[:0:0]
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "KEYLESS_") && (strings.Contains(name, "TOKEN") || strings.Contains(name, "PASSWORD")) {
			continue
		}
		out = append(out, kv)
	}
	return out
}
