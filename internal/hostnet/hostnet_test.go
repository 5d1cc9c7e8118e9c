package hostnet

import (
	"net/netip"
	"slices"
	"testing"
)

func TestCommands(t *testing.T) {
	got := Commands([]netip.Addr{netip.MustParseAddr("169.254.170.2"), netip.MustParseAddr("169.254.170.23"), netip.MustParseAddr("fd00:ec2::23")})
	want := []string{
		"ip link add keyless0 type dummy",
		"ip link set keyless0 up",
		"ip addr add 169.254.170.2/32 dev keyless0",
		"ip addr add 169.254.170.23/32 dev keyless0",
		"ip addr add fd00:ec2::23/128 dev keyless0",
		"# or, where the kernel has no dummy driver:",
		"ip addr add 169.254.170.2/32 dev lo",
		"ip addr add 169.254.170.23/32 dev lo",
		"ip addr add fd00:ec2::23/128 dev lo",
	}
	if !slices.Equal(got, want) {
		t.Errorf("Commands:\n%q\nwant\n%q", got, want)
	}
	// A v4-mapped address is the v4 address.
	if got := Commands([]netip.Addr{netip.MustParseAddr("::ffff:169.254.170.2")}); got[2] != "ip addr add 169.254.170.2/32 dev keyless0" {
		t.Errorf("mapped: %q", got[2])
	}
}

func TestHasAddress(t *testing.T) {
	if !HasAddress(netip.MustParseAddr("127.0.0.1")) {
		t.Error("127.0.0.1 is not on this host")
	}
	if !HasAddress(netip.MustParseAddr("::ffff:127.0.0.1")) {
		t.Error("::ffff:127.0.0.1 is not on this host")
	}
	// TEST-NET-1 (RFC 5737) is on no host.
	if HasAddress(netip.MustParseAddr("192.0.2.77")) {
		t.Error("192.0.2.77 is on this host")
	}
	if HasAddress(netip.Addr{}) {
		t.Error("the zero address is on this host")
	}
}

func TestAddAddressesRefusesNonHostAddresses(t *testing.T) {
	for _, a := range []netip.Addr{{}, netip.MustParseAddr("0.0.0.0"), netip.MustParseAddr("::"), netip.MustParseAddr("224.0.0.1"), netip.MustParseAddr("fe80::1%eth0")} {
		if _, err := AddAddresses([]netip.Addr{netip.MustParseAddr("169.254.170.2"), a}); err == nil {
			t.Errorf("AddAddresses accepted %q", a)
		}
	}
}
