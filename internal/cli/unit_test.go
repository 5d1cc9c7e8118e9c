package cli_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keyless-dev/keyless/internal/cli"
)

// TestPrintUnitSystemd: keyless agent --print-unit systemd wires the
// configuration into the unit: the privileged pre-start step with the
// same keyless and configuration, the capability for port 80, the
// socket's runtime directory and group, the logging flags.
func TestPrintUnitSystemd(t *testing.T) {
	conf, err := filepath.Abs("testdata/units/agent.yaml")
	if err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if strings.HasPrefix(conf, "/tmp/") || strings.HasPrefix(conf, "/var/tmp/") {
		t.Skipf("the repository is under a temporary directory (%s), which a unit cannot read from", conf)
	}
	var stdout, stderr bytes.Buffer
	if code := cli.Main([]string{"agent", "--config", conf, "--print-unit", "systemd", "--log-format", "json"}, strings.NewReader(""), &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	unit := stdout.String()
	for _, want := range []string{
		"\nExecStartPre=+" + exe + " agent setup-network 169.254.170.2\n",
		"\nExecStart=" + exe + " agent --config " + conf + " --log-format json\n",
		"\nUser=keyless\n",
		"\nSupplementaryGroups=keyless\n",
		"\nRuntimeDirectory=keyless\n",
		"\nReadWritePaths=/var/lib/keyless\n",
		"\nCapabilityBoundingSet=CAP_NET_BIND_SERVICE\n",
		"\nAmbientCapabilities=CAP_NET_BIND_SERVICE\n",
	} {
		if !strings.Contains(unit, want) {
			t.Errorf("no %q in:\n%s", want, unit)
		}
	}
}
