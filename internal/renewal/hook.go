package renewal

import (
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"os/exec"
)

// ExecHook returns an AfterRenew that runs command with sh -c (keyless
// renew's --exec: reload a service that read the old certificate), its
// output going to w.
func ExecHook(command string, w io.Writer) func(context.Context, *x509.Certificate) error {
	return func(ctx context.Context, _ *x509.Certificate) error {
		cmd := exec.CommandContext(ctx, "sh", "-c", command)
		cmd.Stdout, cmd.Stderr = w, w
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("--exec %q: %w", command, err)
		}
		return nil
	}
}
