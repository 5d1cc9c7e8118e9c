// Package hostnet puts the link-local addresses of the container
// credentials protocol (169.254.170.2, 169.254.170.23, fd00:ec2::23) on
// this host, so that job containers on any Docker bridge reach keyless
// agent at the address their SDK accepts over plain http. It is what
// keyless agent --setup-network does (with CAP_NET_ADMIN); without it,
// Commands says what an operator runs instead.
//
// It is a transport (it talks to the kernel over netlink); only
// internal/agent imports it.
package hostnet

import (
	"fmt"
	"net"
	"net/netip"
)

// Dummy is the interface AddAddresses makes where the kernel has the
// dummy driver; elsewhere the addresses go on the loopback interface.
const Dummy = "keyless0"

// HasAddress reports whether addr is on an interface of this host.
func HasAddress(addr netip.Addr) bool {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP); ok && ip.Unmap() == addr.Unmap() {
				return true
			}
		}
	}
	return false
}

func prefix(a netip.Addr) string {
	a = a.Unmap()
	if a.Is4() {
		return a.String() + "/32"
	}
	return a.String() + "/128"
}

// Commands are the ip commands that put addrs on this host, as
// AddAddresses would: a dummy interface, set up, with each address; then,
// after a comment line, the alternative where the kernel has no dummy
// driver: each address on the loopback interface.
func Commands(addrs []netip.Addr) []string {
	out := []string{"ip link add " + Dummy + " type dummy", "ip link set " + Dummy + " up"}
	for _, a := range addrs {
		out = append(out, fmt.Sprintf("ip addr add %s dev %s", prefix(a), Dummy))
	}
	out = append(out, "# or, where the kernel has no dummy driver:")
	for _, a := range addrs {
		out = append(out, fmt.Sprintf("ip addr add %s dev lo", prefix(a)))
	}
	return out
}

// check refuses what cannot be put on an interface as a host address.
func check(addrs []netip.Addr) error {
	for _, a := range addrs {
		if !a.IsValid() || a.Unmap().IsUnspecified() || a.Unmap().IsMulticast() || a.Zone() != "" {
			return fmt.Errorf("%q is not a host address to add", a)
		}
	}
	return nil
}
