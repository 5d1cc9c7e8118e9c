package cli_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/keyless-dev/keyless/internal/cli"
)

// TestPrintUnitUsageErrors: a service definition keyless cannot print
// faithfully is a usage error (exit 2) that names the flag.
func TestPrintUnitUsageErrors(t *testing.T) {
	ca := []string{"--ca-url", "https://10.0.0.5:9000", "--root", "/etc/keyless/root_ca.crt"}
	pair := []string{"renew", "/etc/keyless/runner.crt", "/etc/keyless/runner.key"}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--print-unit", "upstart"}, `--print-unit "upstart": want systemd or launchd`},
		{[]string{"--print-unit", "systemd", "--user", "key less"}, `--user "key less": want a user name`},
		{[]string{"--print-unit", "launchd", "--user", "-x"}, `--user "-x": want a user name`},
		{[]string{"--user", "keyless"}, "--user goes with --print-unit"},
		{[]string{"--print-unit", "systemd", "--exec", "a\nb"}, "--print-unit systemd: "},
	} {
		args := append(append(append([]string{}, pair...), tc.args...), ca...)
		var stdout, stderr bytes.Buffer
		code := cli.Main(args, strings.NewReader(""), &stdout, &stderr)
		if code != 2 || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("keyless %q: exit %d, stderr %q; want exit 2 and %q", args, code, stderr.String(), tc.want)
		}
		if stdout.Len() != 0 {
			t.Errorf("keyless %q printed %q", args, stdout.String())
		}
	}
}
