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
				for _, d := range []string{"bridge", "brif/veth0"} {
					if err := os.MkdirAll(filepath.Join(sys, ifi.Name, d), 0o755); err != nil {
						t.Fatal(err)
					}
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
	for _, d := range []string{"bridge", "brif/veth0"} {
		if err := os.MkdirAll(filepath.Join(sys, name, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if got := b.Holding(ip); got != name {
		t.Errorf("%s on the bridge %s: Holding says %q", ip, name, got)
	}
	// The same bridge with a physical port is the LAN's.
	if err := os.MkdirAll(filepath.Join(sys, "eth9", "device"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(sys, name, "brif", "eth9"), 0o755); err != nil {
		t.Fatal(err)
	}
	if got := b.Holding(ip); got != "" {
		t.Errorf("%s on %s, a bridge with a physical port: Holding says %q", ip, name, got)
	}
	if got := b.Holding(netip.MustParseAddr("203.0.113.7")); got != "" {
		t.Errorf("an address on no interface: Holding says %q", got)
	}
}

// TestContainerBridge: a bridge counts as containers' only when no port
// is, or is stacked on, a physical device; a bridged uplink (br0 with
// eth0, or with a bond or VLAN over it) is the LAN.
func TestContainerBridge(t *testing.T) {
	sys := t.TempDir()
	mk := func(parts ...string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Join(append([]string{sys}, parts...)...), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// Interfaces: eth0 is physical; bond0 and vlan10 sit on it; veths
	// and a tap are virtual.
	mk("eth0", "device")
	mk("bond0", "lower_eth0")
	mk("vlan10", "lower_bond0")
	mk("veth1")
	mk("veth2")
	mk("tap0")
	mk("loop1", "lower_loop2")
	mk("loop2", "lower_loop1")
	bridges := map[string][]string{
		"docker0": {"veth1", "veth2"}, "virbr0": {"tap0"}, "br-empty": nil,
		"br0": {"veth1", "eth0"}, "br1": {"bond0"}, "br2": {"vlan10"}, "br3": {"loop1"},
	}
	for br, ports := range bridges {
		mk(br, "bridge")
		mk(br, "brif")
		for _, p := range ports {
			mk(br, "brif", p)
		}
	}
	mk("notabridge")
	mk("noports", "bridge") // no brif: cannot tell, so not counted
	b := &Bridges{sysfs: sys}
	for name, want := range map[string]bool{
		"docker0": true, "virbr0": true, "br-empty": true,
		"br0": false, "br1": false, "br2": false, "br3": false, "notabridge": false, "noports": false, "eth0": false,
	} {
		if got := b.containerBridge(name); got != want {
			t.Errorf("%s: a container bridge: %v, want %v", name, got, want)
		}
	}
}
