package hostnet

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"

	"golang.org/x/sys/unix"
)

// AddAddresses puts each of addrs on this host, as a /32 (or /128): on
// the dummy interface Dummy, made and set up if the kernel has the
// driver, else on lo. Addresses already there are left as they are. It
// returns the interface used. It needs CAP_NET_ADMIN.
func AddAddresses(addrs []netip.Addr) (string, error) {
	nl, err := dial()
	if err != nil {
		return "", err
	}
	defer unix.Close(nl)
	iface := Dummy
	if err := addDummy(nl); err != nil {
		if !errors.Is(err, unix.EOPNOTSUPP) && !errors.Is(err, unix.ENODEV) && !errors.Is(err, unix.ENOENT) {
			return "", fmt.Errorf("making the interface %s: %w", Dummy, err)
		}
		iface = "lo"
	}
	ifi, err := net.InterfaceByName(iface)
	if err != nil {
		return "", err
	}
	if iface == Dummy && ifi.Flags&net.FlagUp == 0 {
		if err := setUp(nl, ifi.Index); err != nil {
			return "", fmt.Errorf("setting %s up: %w", iface, err)
		}
	}
	for _, a := range addrs {
		if err := addAddress(nl, ifi.Index, a.Unmap()); err != nil && !errors.Is(err, unix.EEXIST) {
			return "", fmt.Errorf("adding %s to %s: %w", prefix(a), iface, err)
		}
	}
	return iface, nil
}

func dial() (int, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return -1, fmt.Errorf("opening netlink: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("binding netlink: %w", err)
	}
	return fd, nil
}

// attr encodes one rtattr, padded to 4 bytes.
func attr(typ uint16, data []byte) []byte {
	l := unix.SizeofRtAttr + len(data)
	b := make([]byte, (l+3)&^3)
	binary.NativeEndian.PutUint16(b[0:2], uint16(l))
	binary.NativeEndian.PutUint16(b[2:4], typ)
	copy(b[unix.SizeofRtAttr:], data)
	return b
}

// request sends one netlink message and waits for its acknowledgement.
func request(fd int, typ uint16, flags uint16, body []byte) error {
	const seq = 1
	msg := make([]byte, unix.SizeofNlMsghdr+len(body))
	binary.NativeEndian.PutUint32(msg[0:4], uint32(len(msg)))
	binary.NativeEndian.PutUint16(msg[4:6], typ)
	binary.NativeEndian.PutUint16(msg[6:8], flags|unix.NLM_F_REQUEST|unix.NLM_F_ACK)
	binary.NativeEndian.PutUint32(msg[8:12], seq)
	copy(msg[unix.SizeofNlMsghdr:], body)
	if err := unix.Sendto(fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return err
	}
	buf := make([]byte, 8192)
	for {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			return err
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			return err
		}
		for _, m := range msgs {
			if m.Header.Seq != seq || m.Header.Type != unix.NLMSG_ERROR || len(m.Data) < 4 {
				continue
			}
			if code := int32(binary.NativeEndian.Uint32(m.Data[0:4])); code != 0 {
				return unix.Errno(-code)
			}
			return nil
		}
	}
}

func ifinfo(index int, up bool) []byte {
	b := make([]byte, unix.SizeofIfInfomsg)
	b[0] = unix.AF_UNSPEC
	binary.NativeEndian.PutUint32(b[4:8], uint32(index))
	if up {
		binary.NativeEndian.PutUint32(b[8:12], unix.IFF_UP)  // flags
		binary.NativeEndian.PutUint32(b[12:16], unix.IFF_UP) // change
	}
	return b
}

func addDummy(fd int) error {
	body := ifinfo(0, true)
	body = append(body, attr(unix.IFLA_IFNAME, append([]byte(Dummy), 0))...)
	body = append(body, attr(unix.IFLA_LINKINFO|unix.NLA_F_NESTED, attr(unix.IFLA_INFO_KIND, []byte("dummy")))...)
	err := request(fd, unix.RTM_NEWLINK, unix.NLM_F_CREATE|unix.NLM_F_EXCL, body)
	if errors.Is(err, unix.EEXIST) {
		return nil
	}
	return err
}

func setUp(fd, index int) error {
	return request(fd, unix.RTM_NEWLINK, 0, ifinfo(index, true))
}

func addAddress(fd, index int, a netip.Addr) error {
	family, bits := byte(unix.AF_INET), byte(32)
	if a.Is6() {
		family, bits = unix.AF_INET6, 128
	}
	body := make([]byte, unix.SizeofIfAddrmsg)
	body[0], body[1] = family, bits
	binary.NativeEndian.PutUint32(body[4:8], uint32(index))
	raw := a.AsSlice()
	body = append(body, attr(unix.IFA_LOCAL, raw)...)
	body = append(body, attr(unix.IFA_ADDRESS, raw)...)
	return request(fd, unix.RTM_NEWADDR, unix.NLM_F_CREATE|unix.NLM_F_EXCL, body)
}
