//go:build linux

package hostnet

import (
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/keyless-dev/keyless/internal/testkit"
)

// lockHostNetwork takes the machine-wide lock every test that claims the
// link-local addresses takes (interop/containers too), since go test runs
// packages in parallel.
func lockHostNetwork(t *testing.T) {
	f, err := os.OpenFile("/tmp/keyless-hostnet.lock", os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
}

func TestAddAddresses(t *testing.T) {
	if os.Geteuid() != 0 {
		testkit.Unavailable(t, "adding addresses needs root (CAP_NET_ADMIN)")
	}
	ip, err := exec.LookPath("ip")
	if err != nil {
		testkit.Unavailable(t, "no ip command to undo the test with (Debian: iproute2)")
	}
	lockHostNetwork(t)
	addrs := []netip.Addr{netip.MustParseAddr("169.254.170.2"), netip.MustParseAddr("169.254.170.23")}
	var had []bool
	for _, a := range addrs {
		had = append(had, HasAddress(a))
	}
	iface, err := AddAddresses(addrs)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for i, a := range addrs {
			if !had[i] {
				if out, err := exec.Command(ip, "addr", "del", prefix(a), "dev", iface).CombinedOutput(); err != nil {
					t.Errorf("removing %s: %v: %s", a, err, out)
				}
			}
		}
		if iface == Dummy {
			exec.Command(ip, "link", "del", Dummy).Run()
		}
	})
	if iface != Dummy && iface != "lo" {
		t.Errorf("interface %q", iface)
	}
	for _, a := range addrs {
		if !HasAddress(a) {
			t.Errorf("%s is not on this host after AddAddresses", a)
		}
	}
	// Again: already there is fine.
	if again, err := AddAddresses(addrs); err != nil || again != iface {
		t.Errorf("second AddAddresses: %q, %v", again, err)
	}
	out, err := exec.Command(ip, "-o", "addr", "show", "dev", iface).Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if !strings.Contains(string(out), " "+prefix(a)+" ") {
			t.Errorf("ip does not show %s on %s:\n%s", prefix(a), iface, out)
		}
	}
}

func TestCommands(t *testing.T) {
	got := strings.Join(Commands([]netip.Addr{netip.MustParseAddr("169.254.170.2"), netip.MustParseAddr("fd00:ec2::23")}), "\n")
	for _, want := range []string{"ip link add keyless0 type dummy", "ip addr add 169.254.170.2/32 dev keyless0", "ip addr add fd00:ec2::23/128 dev lo"} {
		if !strings.Contains(got, want) {
			t.Errorf("commands do not say %q:\n%s", want, got)
		}
	}
}
