package hostnet

import (
	"bufio"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/keyless-dev/keyless/internal/testkit"
)

func lockHostNetwork(t *testing.T) { testkit.LockHostNetwork(t) }

// netAdmin reports whether this process has CAP_NET_ADMIN (bit 12 of
// CapEff), which root usually has and a container's root may lack.
func netAdmin(t *testing.T) bool {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return os.Geteuid() == 0
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

// delAddress and delLink undo what the test did, over netlink too (no
// dependency on iproute2).
func delAddress(iface string, a netip.Addr) error {
	ifi, err := net.InterfaceByName(iface)
	if err != nil {
		return err
	}
	nl, err := dial()
	if err != nil {
		return err
	}
	defer nl.close()
	return nl.request(unix.RTM_DELADDR, 0, addrBody(ifi.Index, a))
}

func delLink(name string) error {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return err
	}
	nl, err := dial()
	if err != nil {
		return err
	}
	defer nl.close()
	return nl.request(unix.RTM_DELLINK, 0, ifinfo(ifi.Index, false))
}

// TestAddAddresses adds 169.254.170.2 and .23 (to keyless0, or lo where
// the kernel has no dummy driver, as on these machines), checks they
// answer, and removes only what it added.
func TestAddAddresses(t *testing.T) {
	if !netAdmin(t) {
		testkit.Unavailable(t, "adding addresses needs CAP_NET_ADMIN (run the tests as root)")
	}
	lockHostNetwork(t)
	addrs := []netip.Addr{netip.MustParseAddr("169.254.170.2"), netip.MustParseAddr("169.254.170.23")}
	had := map[netip.Addr]bool{}
	for _, a := range addrs {
		had[a] = HasAddress(a)
	}
	_, dummyErr := net.InterfaceByName(Dummy)
	hadDummy := dummyErr == nil
	iface, err := AddAddresses(addrs)
	t.Cleanup(func() {
		if iface == "" {
			return
		}
		for _, a := range addrs {
			if !had[a] {
				if err := delAddress(iface, a); err != nil {
					t.Errorf("removing %s from %s: %v", a, iface, err)
				}
			}
		}
		if iface == Dummy && !hadDummy {
			if err := delLink(Dummy); err != nil {
				t.Errorf("removing %s: %v", Dummy, err)
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("the addresses are on %s (had before: %v)", iface, had)
	if iface != Dummy && iface != "lo" {
		t.Errorf("interface %q", iface)
	}
	if _, err := os.Stat("/sys/module/dummy"); err != nil && iface == Dummy && !hadDummy {
		t.Logf("made %s though /sys/module/dummy is absent (built in?)", Dummy)
	}
	ifi, err := net.InterfaceByName(iface)
	if err != nil {
		t.Fatal(err)
	}
	if ifi.Flags&net.FlagUp == 0 {
		t.Errorf("%s is down", iface)
	}
	onIface, err := ifi.Addrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if !HasAddress(a) {
			t.Errorf("%s is not on this host after AddAddresses", a)
		}
		found := false
		for _, o := range onIface {
			if n, ok := o.(*net.IPNet); ok && n.IP.Equal(a.AsSlice()) {
				ones, bits := n.Mask.Size()
				found = ones == 32 && bits == 32
			}
		}
		if !found {
			t.Errorf("%s/32 is not on %s: %v", a, iface, onIface)
		}
		// The address answers: a listener on it is reachable.
		ln, err := net.Listen("tcp", netip.AddrPortFrom(a, 0).String())
		if err != nil {
			t.Errorf("listening on %s: %v", a, err)
			continue
		}
		go func() {
			if c, err := ln.Accept(); err == nil {
				c.Close()
			}
		}()
		c, err := net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second)
		if err != nil {
			t.Errorf("connecting to %s: %v", ln.Addr(), err)
		} else {
			c.Close()
		}
		ln.Close()
	}
	// Again: already there is fine, and nothing changes.
	if again, err := AddAddresses(addrs); err != nil || again != iface {
		t.Errorf("second AddAddresses: %q, %v", again, err)
	}
	if after, _ := ifi.Addrs(); len(after) != len(onIface) {
		t.Errorf("the second call changed %s: %v, then %v", iface, onIface, after)
	}
}

// TestAddAddressesWithoutPrivilege: without CAP_NET_ADMIN the error says
// so (EPERM), rather than falling back to lo and failing there.
func TestAddAddressesWithoutPrivilege(t *testing.T) {
	if netAdmin(t) {
		t.Skip("this process has CAP_NET_ADMIN; TestAddAddresses covers it")
	}
	_, err := AddAddresses([]netip.Addr{netip.MustParseAddr("169.254.170.2")})
	if !errors.Is(err, unix.EPERM) {
		t.Errorf("without CAP_NET_ADMIN: %v, want EPERM", err)
	}
}

func TestEncoding(t *testing.T) {
	// Attributes are padded to 4 bytes; the length excludes the padding.
	for n, want := range map[int]int{0: 4, 1: 8, 4: 8, 5: 12} {
		b := attr(7, make([]byte, n))
		if len(b) != want || binary.NativeEndian.Uint16(b[0:2]) != uint16(4+n) || binary.NativeEndian.Uint16(b[2:4]) != 7 {
			t.Errorf("attr of %d bytes: % x", n, b)
		}
	}
	m := message(unix.RTM_NEWADDR, unix.NLM_F_CREATE, 42, []byte{1, 2, 3, 4})
	hdr := binary.NativeEndian
	if hdr.Uint32(m[0:4]) != uint32(len(m)) || hdr.Uint16(m[4:6]) != unix.RTM_NEWADDR || hdr.Uint32(m[8:12]) != 42 ||
		hdr.Uint16(m[6:8]) != unix.NLM_F_CREATE|unix.NLM_F_REQUEST|unix.NLM_F_ACK {
		t.Errorf("message % x", m)
	}
	v4 := addrBody(3, netip.MustParseAddr("169.254.170.2"))
	if v4[0] != unix.AF_INET || v4[1] != 32 || v4[2] != 0 || hdr.Uint32(v4[4:8]) != 3 || !strings.Contains(string(v4), "\xa9\xfe\xaa\x02") {
		t.Errorf("v4 body % x", v4)
	}
	v6 := addrBody(1, netip.MustParseAddr("fd00:ec2::23"))
	if v6[0] != unix.AF_INET6 || v6[1] != 128 || v6[2] != unix.IFA_F_NODAD || len(v6) != unix.SizeofIfAddrmsg+2*(4+16) {
		t.Errorf("v6 body % x", v6)
	}
	d := string(dummyBody())
	if !strings.Contains(d, Dummy+"\x00") || !strings.Contains(d, "dummy") {
		t.Errorf("dummy body %q", d)
	}
}

// TestAck reads the kernel's acknowledgements: 0 is success, a negative
// errno is that error, another sequence number is not ours.
func TestAck(t *testing.T) {
	reply := func(seq uint32, code int32) []byte {
		body := make([]byte, 4+unix.SizeofNlMsghdr)
		binary.NativeEndian.PutUint32(body[0:4], uint32(code))
		m := make([]byte, unix.SizeofNlMsghdr)
		binary.NativeEndian.PutUint32(m[0:4], uint32(len(m)+len(body)))
		binary.NativeEndian.PutUint16(m[4:6], unix.NLMSG_ERROR)
		binary.NativeEndian.PutUint32(m[8:12], seq)
		return append(m, body...)
	}
	if done, err := ack(reply(5, 0), 5); !done || err != nil {
		t.Errorf("success: %v %v", done, err)
	}
	if done, err := ack(reply(5, -int32(unix.EEXIST)), 5); !done || !errors.Is(err, unix.EEXIST) {
		t.Errorf("EEXIST: %v %v", done, err)
	}
	if done, err := ack(reply(5, -int32(unix.EOPNOTSUPP)), 5); !done || !noDriver(err) {
		t.Errorf("EOPNOTSUPP: %v %v", done, err)
	}
	if noDriver(unix.EPERM) {
		t.Error("EPERM taken for a missing driver")
	}
	if done, _ := ack(reply(4, 0), 5); done {
		t.Error("another request's acknowledgement taken")
	}
	if done, _ := ack([]byte{1, 2, 3}, 5); done {
		t.Error("a short datagram taken for an acknowledgement")
	}
	bad := reply(5, 0)
	binary.NativeEndian.PutUint32(bad[0:4], 1000) // longer than the datagram
	if done, err := ack(bad, 5); done || err == nil {
		t.Errorf("a truncated message: %v %v", done, err)
	}
	both := append(reply(4, -1), reply(5, 0)...)
	if done, err := ack(both, 5); !done || err != nil {
		t.Errorf("two in one datagram: %v %v", done, err)
	}
}

// FuzzParseLink: whatever the bytes of an RTM_NEWLINK body, parsing
// neither panics nor reads past them, and a name it returns is not empty.
func FuzzParseLink(f *testing.F) {
	f.Add(append(make([]byte, 16), attr(3, []byte("eth0\x00"))...))
	f.Add(append(make([]byte, 16), attr(18|1<<15, attr(1, []byte("bridge")))...))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		if l, ok := parseLink(data); ok && l.name == "" {
			t.Fatalf("ok without a name: %+v", l)
		}
	})
}
