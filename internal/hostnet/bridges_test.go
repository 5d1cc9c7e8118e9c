//go:build linux

package hostnet

import (
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
)

// TestBridges: loopback and the subnets of bridge interfaces are allowed;
// an address on a non-bridge interface's subnet (the LAN) is not.
func TestBridges(t *testing.T) {
	// The test reads the interfaces twice (here and in Allow): a Docker
	// network another test adds or removes in between would look like a
	// refusal.
	lockHostNetwork(t)
	sys := t.TempDir()
	ifaces, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	// Pretend every interface but lo is a bridge in a fake sysfs, except
	// the first one found, which stands for the LAN.
	var lan, bridge netip.Prefix
	var lanIP netip.Addr
	for _, ifi := range ifaces {
		addrs, _ := ifi.Addrs()
		for _, a := range addrs {
			n, ok := a.(*net.IPNet)
			if !ok || n.IP.IsLoopback() || n.IP.To4() == nil {
				continue
			}
			ip, _ := netip.AddrFromSlice(n.IP.To4())
			ones, _ := n.Mask.Size()
			p := netip.PrefixFrom(ip, ones).Masked()
			switch {
			case !lan.IsValid():
				lan, lanIP = p, ip
			case !bridge.IsValid() && p != lan:
				bridge = p
				if err := os.MkdirAll(filepath.Join(sys, ifi.Name, "bridge"), 0o755); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	b := &Bridges{sysfs: sys, refresh: 0}
	if !b.Allow(netip.MustParseAddr("127.0.0.1")) || !b.Allow(netip.MustParseAddr("::1")) {
		t.Error("loopback refused")
	}
	if lan.IsValid() && !b.Allow(lanIP) {
		t.Errorf("%s, the host's own address, refused", lanIP)
	}
	if other := lan.Addr().Next(); lan.IsValid() && other != lanIP && b.Allow(other) {
		t.Errorf("%s, on a non-bridge interface's subnet, allowed", other)
	}
	if bridge.IsValid() && !b.Allow(bridge.Addr().Next()) {
		t.Errorf("%s, on a bridge's subnet, refused", bridge.Addr().Next())
	}
	if b.Allow(netip.MustParseAddr("203.0.113.7")) {
		t.Error("an address on no interface allowed")
	}
}

// TestBridgesHolding: an address of an interface that is a bridge (in a
// fake sysfs) is found with its interface's name; the same address when
// the interface is not a bridge, and an address on no interface, are
// not.
func TestBridgesHolding(t *testing.T) {
	ifaces, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	var name string
	var ip netip.Addr
	for _, ifi := range ifaces {
		addrs, _ := ifi.Addrs()
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil && name == "" {
				name, ip = ifi.Name, netip.AddrFrom4([4]byte(n.IP.To4()))
			}
		}
	}
	if name == "" {
		t.Skip("this machine has no IPv4 address besides loopback")
	}
	sys := t.TempDir()
	b := &Bridges{sysfs: sys}
	if got := b.Holding(ip); got != "" {
		t.Errorf("%s on %s, not a bridge: Holding says %q", ip, name, got)
	}
	if err := os.MkdirAll(filepath.Join(sys, name, "bridge"), 0o755); err != nil {
		t.Fatal(err)
	}
	if got := b.Holding(ip); got != name {
		t.Errorf("%s on the bridge %s: Holding says %q", ip, name, got)
	}
	if got := b.Holding(netip.MustParseAddr("203.0.113.7")); got != "" {
		t.Errorf("an address on no interface: Holding says %q", got)
	}
}
