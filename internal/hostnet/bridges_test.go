//go:build linux

package hostnet

import (
	"errors"
	"net"
	"net/netip"
	"testing"
)

// TestBridges: loopback and the subnets of bridge interfaces are allowed;
// an address on a non-bridge interface's subnet (the LAN) is not.
func TestBridges(t *testing.T) {
	// The test reads the interfaces twice (here and in Allow): a Docker
	// network another test adds or removes in between would look like a
	// refusal.
	lockHostNetwork(t)
	var links []link
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
				links = append(links, link{name: ifi.Name, kind: "bridge", index: ifi.Index},
					link{name: "veth-test", kind: "veth", index: 1 << 30, master: ifi.Index})
			}
		}
	}
	b := &Bridges{links: func() ([]link, error) { return links, nil }}
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
	var links []link
	b := &Bridges{links: func() ([]link, error) { return links, nil }}
	if got := b.Holding(ip); got != "" {
		t.Errorf("%s on %s, not a bridge: Holding says %q", ip, name, got)
	}
	links = []link{{name: name, kind: "bridge", index: 7}, {name: "veth0", kind: "veth", index: 8, master: 7}}
	if got := b.Holding(ip); got != name {
		t.Errorf("%s on the bridge %s: Holding says %q", ip, name, got)
	}
	// The same bridge with a physical port is the LAN's.
	links = append(links, link{name: "eth9", index: 9, master: 7})
	if got := b.Holding(ip); got != "" {
		t.Errorf("%s on %s, a bridge with a physical port: Holding says %q", ip, name, got)
	}
	if got := b.Holding(netip.MustParseAddr("203.0.113.7")); got != "" {
		t.Errorf("an address on no interface: Holding says %q", got)
	}
}

// TestContainerBridges: a bridge counts as containers' only when every
// port is a veth or a tap; a physical port, a bond, a VLAN, a tunnel or
// an L2 VPN makes it the LAN; when the interfaces cannot be listed, no
// bridge counts.
func TestContainerBridges(t *testing.T) {
	var links []link
	n := 100
	bridge := func(name string, portKinds ...string) {
		n++
		br := n
		links = append(links, link{name: name, kind: "bridge", index: br})
		for _, k := range portKinds {
			n++
			links = append(links, link{name: name + "-port" + k, kind: k, index: n, master: br})
		}
	}
	bridge("docker0", "veth", "veth")
	bridge("virbr0", "tun")
	bridge("br-empty")
	bridge("br0", "veth", "")   // a physical NIC
	bridge("br1", "bond")       // a bond over NICs
	bridge("br2", "vlan")       // a VLAN
	bridge("vmbr-sdn", "vxlan") // a VXLAN fabric
	bridge("br-gre", "gretap")  // a GRE tunnel
	bridge("br-geneve", "veth", "geneve")
	links = append(links, link{name: "eth0", index: 1}, link{name: "dummy0", kind: "dummy", index: 2})
	b := &Bridges{links: func() ([]link, error) { return links, nil }}
	got := b.containerBridges()
	for name, want := range map[string]bool{
		"docker0": true, "virbr0": true, "br-empty": true,
		"br0": false, "br1": false, "br2": false, "vmbr-sdn": false, "br-gre": false, "br-geneve": false, "eth0": false, "dummy0": false,
	} {
		if got[name] != want {
			t.Errorf("%s: a container bridge: %v, want %v", name, got[name], want)
		}
	}
	b = &Bridges{links: func() ([]link, error) { return nil, errors.New("no netlink") }}
	if got := b.containerBridges(); len(got) != 0 {
		t.Errorf("without the interfaces' list: %v", got)
	}
}

// TestListLinks: the kernel's own list has lo, and on a machine with
// Docker, docker0 as a bridge whose ports are veths.
func TestListLinks(t *testing.T) {
	links, err := listLinks()
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]link{}
	for _, l := range links {
		byName[l.name] = l
	}
	if lo, ok := byName["lo"]; !ok || lo.index <= 0 || lo.kind != "" {
		t.Errorf("lo: %+v (in %+v)", lo, links)
	}
	if d, ok := byName["docker0"]; ok {
		if d.kind != "bridge" {
			t.Errorf("docker0's kind %q", d.kind)
		}
		for _, l := range links {
			if l.master == d.index && l.kind != "veth" {
				t.Errorf("a port of docker0 that is not a veth: %+v", l)
			}
		}
	}
}
