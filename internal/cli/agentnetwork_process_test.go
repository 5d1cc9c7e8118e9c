//go:build linux

package cli_test

import (
	"bufio"
	"bytes"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/keyless-dev/keyless/internal/hostnet"
	"github.com/keyless-dev/keyless/internal/testkit"
)

func lockHostNetwork(t *testing.T) { testkit.LockHostNetwork(t) }

// netAdmin reports whether this process has CAP_NET_ADMIN.
func netAdmin() bool {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return false
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "CapEff:"); ok {
			caps, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return err == nil && caps&(1<<unix.CAP_NET_ADMIN) != 0
		}
	}
	return false
}

// nobody runs cmd as the user nobody, with no capabilities: a setuid
// away from root drops them all.
func nobody(cmd *exec.Cmd) *exec.Cmd {
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	return cmd
}

// TestAgentSetupNetworkThenUnprivilegedAgent is the systemd unit's split,
// for real: keyless agent setup-network as root adds the link-local
// addresses (again: no change); then the agent, as nobody without
// CAP_NET_ADMIN and with setupNetwork: true, gets past the network to its
// identity, rather than failing to add what is already there. The same
// agent with an address missing still refuses to start, naming it.
func TestAgentSetupNetworkThenUnprivilegedAgent(t *testing.T) {
	if !netAdmin() {
		testkit.Unavailable(t, "adding addresses needs CAP_NET_ADMIN (run the tests as root)")
	}
	ip := testkit.LookPath(t, "ip", "iproute2 (Debian: apt-get install iproute2), to remove the addresses afterwards")
	lockHostNetwork(t)
	addrs := []netip.Addr{netip.MustParseAddr("169.254.170.2"), netip.MustParseAddr("169.254.170.23")}
	had := map[netip.Addr]bool{}
	for _, a := range addrs {
		had[a] = hostnet.HasAddress(a)
	}
	_, err := os.Stat("/sys/class/net/" + hostnet.Dummy)
	hadDummy := err == nil

	// A directory nobody can read.
	dir, err := os.MkdirTemp("", "setup-network-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// keyless as it ships, where nobody can run it.
	bin, err := os.ReadFile(testkit.Keyless(t))
	if err != nil {
		t.Fatal(err)
	}
	keyless := filepath.Join(dir, "keyless")
	if err := os.WriteFile(keyless, bin, 0o755); err != nil {
		t.Fatal(err)
	}
	config := func(name, listen string) string {
		path := filepath.Join(dir, name)
		yaml := `identity:
  certificate: runner.crt
  key: runner.key
aws:
  trustAnchorArn: arn:aws:rolesanywhere:us-east-1:111122223333:trust-anchor/3f7c1a0e-0000-4000-8000-000000000001
gitlab:
  url: https://gitlab.example.com
listen:
  containerCredentials: ` + listen + `
  setupNetwork: true
rules:
  - name: plan
    identity: gitlab-job-token
    match: {project_path: "infra/*"}
    roleArn: arn:aws:iam::111122223333:role/ci-reader
    profileArn: arn:aws:rolesanywhere:us-east-1:111122223333:profile/8e2b6d4c-0000-4000-8000-000000000002
`
		if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	conf := config("agent.yaml", `["169.254.170.2:80", "169.254.170.23:80"]`)

	out, err := exec.Command(keyless, "agent", "setup-network", "--config", conf).CombinedOutput()
	iface := ""
	if m := regexp.MustCompile(`^keyless agent: 169\.254\.170\.2, 169\.254\.170\.23 on (\S+)\n$`).FindSubmatch(out); m != nil {
		iface = string(m[1])
	}
	t.Cleanup(func() {
		if iface == "" {
			return
		}
		for _, a := range addrs {
			if !had[a] {
				if out, err := exec.Command(ip, "addr", "del", a.String()+"/32", "dev", iface).CombinedOutput(); err != nil {
					t.Errorf("removing %s: %v\n%s", a, err, out)
				}
			}
		}
		if iface == hostnet.Dummy && !hadDummy {
			if out, err := exec.Command(ip, "link", "del", hostnet.Dummy).CombinedOutput(); err != nil {
				t.Errorf("removing %s: %v\n%s", hostnet.Dummy, err, out)
			}
		}
	})
	if err != nil || iface == "" {
		t.Fatalf("keyless agent setup-network: %v\n%s", err, out)
	}
	for _, a := range addrs {
		if !hostnet.HasAddress(a) {
			t.Errorf("%s is not on this host after setup-network", a)
		}
	}
	again, err := exec.Command(keyless, "agent", "setup-network", "--config", conf).CombinedOutput()
	if err != nil || !bytes.Equal(again, out) {
		t.Errorf("setup-network again: %v\n%s", err, again)
	}

	// Unprivileged, setup-network itself is refused, with the way out.
	var stderr bytes.Buffer
	cmd := nobody(exec.Command(keyless, "agent", "setup-network", "--config", conf))
	cmd.Stderr = &stderr
	if err := cmd.Run(); err == nil || !strings.Contains(stderr.String(), "operation not permitted") || !strings.Contains(stderr.String(), "it needs CAP_NET_ADMIN") {
		t.Errorf("setup-network as nobody: %v\n%s", err, stderr.String())
	}

	// The agent as nobody: past the network, to the identity it lacks.
	stderr.Reset()
	cmd = nobody(exec.Command(keyless, "agent", "--config", conf))
	cmd.Stderr = &stderr
	if err := cmd.Run(); err == nil || strings.Contains(stderr.String(), "container-credentials addresses") || !strings.Contains(stderr.String(), "the runner's identity: neither") {
		t.Errorf("the agent as nobody, its addresses there: %v, want it past the network to its identity\n%s", err, stderr.String())
	}

	// And with an address missing it still tries to add it, and cannot.
	missing := netip.MustParseAddr("fd00:ec2::23")
	if hostnet.HasAddress(missing) {
		t.Logf("%s is on this host already; not checking the agent's refusal without it", missing)
		return
	}
	stderr.Reset()
	cmd = nobody(exec.Command(keyless, "agent", "--config", config("missing.yaml", `["169.254.170.2:80", "[fd00:ec2::23]:80"]`)))
	cmd.Stderr = &stderr
	if err := cmd.Run(); err == nil || !strings.Contains(stderr.String(), "the container-credentials addresses [169.254.170.2 fd00:ec2::23]") {
		t.Errorf("the agent as nobody, an address missing: %v, want the network refused\n%s", err, stderr.String())
	}
}
