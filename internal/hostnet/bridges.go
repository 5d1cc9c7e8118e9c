package hostnet

import (
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Bridges answers whether a caller's address is on this host's loopback,
// one of the host's own addresses (a process on the host connecting to
// 169.254.170.2 comes from it), or inside the subnet of one of its Linux
// bridges (docker0, the br-* of per-build networks): where job
// containers are. A bridge counts only when none of its ports reaches a
// physical network device (directly, as eth0 in a br0 a hypervisor
// host bridges its uplink with, or below a bond or VLAN): such a bridge
// is the LAN, not containers. The link-local
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
	sysfs   string // /sys/class/net
	refresh time.Duration
}

// NewBridges returns a Bridges for this host.
func NewBridges() *Bridges { return &Bridges{sysfs: "/sys/class/net", refresh: 100 * time.Millisecond} }

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
	for _, ifi := range ifaces {
		bridge := b.containerBridge(ifi.Name)
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
	for _, ifi := range ifaces {
		if !b.containerBridge(ifi.Name) {
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

// containerBridge reports whether the interface name is a Linux bridge
// whose ports are all virtual (veths of containers, taps of local VMs),
// so its subnet is this host's containers and not a network outside.
func (b *Bridges) containerBridge(name string) bool {
	fi, err := os.Stat(filepath.Join(b.sysfs, name, "bridge"))
	if err != nil || !fi.IsDir() {
		return false
	}
	ports, err := os.ReadDir(filepath.Join(b.sysfs, name, "brif"))
	if err != nil {
		return false // a bridge whose ports cannot be read is not known to be safe
	}
	for _, p := range ports {
		if b.uplink(p.Name(), 0) {
			return false
		}
	}
	return true
}

// uplink reports whether the interface is a physical device (it has a
// device link in sysfs) or is stacked on one (a bond, a VLAN: its lower_*
// links lead to one).
func (b *Bridges) uplink(name string, depth int) bool {
	if depth > 8 {
		return true // a loop, or a stack too deep to be a container's: not safe
	}
	if _, err := os.Lstat(filepath.Join(b.sysfs, name, "device")); err == nil {
		return true
	}
	entries, err := os.ReadDir(filepath.Join(b.sysfs, name))
	if err != nil {
		return false
	}
	for _, e := range entries {
		if lower, ok := strings.CutPrefix(e.Name(), "lower_"); ok && b.uplink(lower, depth+1) {
			return true
		}
	}
	return false
}
