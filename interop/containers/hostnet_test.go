//go:build linux

package containers_test

import (
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"testing"

	"github.com/keyless-dev/keyless/internal/testkit"
)

// The addresses the agent listens on for containers.
var (
	ecsAddr = netip.MustParseAddr("169.254.170.2")
	eksAddr = netip.MustParseAddr("169.254.170.23")
)

// claimHostNet takes the machine-wide lock until t ends, then puts the
// link-local addresses on lo where they are not on an interface already,
// and removes, when t ends, only the ones it added.
func claimHostNet(t *testing.T) {
	t.Helper()
	lockHostNet(t)
	for _, a := range []netip.Addr{ecsAddr, eksAddr} {
		if hasAddr(t, a) {
			continue
		}
		ip := mustLookPath(t, "ip", "iproute2")
		if out, err := exec.Command(ip, "addr", "add", a.String()+"/32", "dev", "lo").CombinedOutput(); err != nil {
			unavailable(t, "adding %s to lo (ip addr add %s/32 dev lo) needs CAP_NET_ADMIN: %v: %s", a, a, err, strings.TrimSpace(string(out)))
		}
		t.Cleanup(func() {
			if out, err := exec.Command(ip, "addr", "del", a.String()+"/32", "dev", "lo").CombinedOutput(); err != nil {
				t.Errorf("removing %s from lo: %v: %s", a, err, out)
			}
		})
	}
}

// lockHostNet takes the machine-wide lock until t ends.
func lockHostNet(t *testing.T) { testkit.LockHostNetwork(t) }

func hasAddr(t *testing.T, a netip.Addr) bool {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range addrs {
		if n, ok := x.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP); ok && ip.Unmap() == a {
				return true
			}
		}
	}
	return false
}
