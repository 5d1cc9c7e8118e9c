package hostnet

import (
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// Bridges answers whether a caller's address is on this host's loopback,
// one of the host's own addresses (a process on the host connecting to
// 169.254.170.2 comes from it), or inside the subnet of one of its Linux
// bridges (docker0, the br-* of per-build networks): where job
// containers are. A bridge counts only when every port is a veth (a
// container) or a tap (a local VM): one with a physical NIC (a
// hypervisor's br0 holding eth0), a bond or VLAN, a tunnel or an L2 VPN
// carries other machines, so it is the LAN. The link-local
// addresses the agent listens on answer ARP on every interface, so a
// machine on the LAN that routes 169.254.170.2 to this host reaches them;
// this is how the agent tells such a caller from a container.
//
// It keeps a snapshot of the bridges' subnets, taken again, at most ten times
// a second, when an address is not in it (Docker makes a bridge for each
// per-build network). It is safe for concurrent use.
type Bridges struct {
	mu      sync.Mutex
	nets    []netip.Prefix
	taken   time.Time
	refresh time.Duration
	links   func() ([]link, error) // nil: listLinks (tests replace it)
}

// NewBridges returns a Bridges for this host.
func NewBridges() *Bridges { return &Bridges{refresh: 100 * time.Millisecond} }

// Allow reports whether addr is loopback or on a bridge's subnet.
func (b *Bridges) Allow(addr netip.Addr) bool {
	addr = addr.Unmap()
	if addr.IsLoopback() {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.contains(addr) {
		return true
	}
	if time.Since(b.taken) < b.refresh {
		return false
	}
	b.nets, b.taken = b.snapshot(), time.Now()
	return b.contains(addr)
}

func (b *Bridges) contains(addr netip.Addr) bool {
	for _, p := range b.nets {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// snapshot lists the subnets of the host's bridge interfaces.
func (b *Bridges) snapshot() []netip.Prefix {
	ifaces, err := net.Interfaces()
	if err != nil {
		return nil
	}
	var out []netip.Prefix
	bridges := b.containerBridges()
	for _, ifi := range ifaces {
		bridge := bridges[ifi.Name]
		addrs, err := ifi.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			n, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			ip, ok := netip.AddrFromSlice(n.IP)
			if !ok {
				continue
			}
			ip = ip.Unmap()
			// The host's own address, exactly; a bridge's whole subnet.
			out = append(out, netip.PrefixFrom(ip, ip.BitLen()))
			if bridge {
				ones, _ := n.Mask.Size()
				out = append(out, netip.PrefixFrom(ip, ones).Masked())
			}
		}
	}
	return out
}

// Holding names the bridge interface (docker0, a br-* of a user-defined
// network) that has addr as one of its own addresses, or "" when no
// bridge has. The agent's relay listener may listen only there or on
// loopback: a bridge's address faces containers, any other faces a
// network.
func (b *Bridges) Holding(addr netip.Addr) string {
	addr = addr.Unmap()
	ifaces, err := net.Interfaces()
	if err != nil {
		return ""
	}
	bridges := b.containerBridges()
	for _, ifi := range ifaces {
		if !bridges[ifi.Name] {
			continue
		}
		addrs, err := ifi.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok {
				if ip, ok := netip.AddrFromSlice(n.IP); ok && ip.Unmap() == addr {
					return ifi.Name
				}
			}
		}
	}
	return ""
}

// link is what the kernel says of one interface: its kind
// (IFLA_INFO_KIND, "" for a physical device) and the bridge it is a port
// of (master, an interface index; 0 for none).
type link struct {
	name, kind    string
	index, master int
}

// containerPortKinds are the ports a container bridge may have: the veth
// pairs of containers and the taps (tun) of local VMs. Any other port (a
// physical NIC, a bond or VLAN over one, a VXLAN, geneve or GRE tunnel,
// an L2 VPN) carries other machines' traffic into the bridge.
var containerPortKinds = []string{"veth", "tun"}

// containerBridges names the Linux bridges whose ports are all of
// containerPortKinds, so their subnets are this host's containers and not
// a network outside. When the interfaces cannot be listed, none counts.
func (b *Bridges) containerBridges() map[string]bool {
	links := b.links
	if links == nil {
		links = listLinks
	}
	all, err := links()
	if err != nil {
		return nil
	}
	out := map[string]bool{}
	for _, br := range all {
		if br.kind != "bridge" {
			continue
		}
		ok := true
		for _, l := range all {
			if l.master == br.index && !slices.Contains(containerPortKinds, l.kind) {
				ok = false
			}
		}
		if ok {
			out[br.name] = true
		}
	}
	return out
}
