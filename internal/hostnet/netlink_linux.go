package hostnet

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// AddAddresses puts each of addrs on this host, as a /32 (or /128): on
// the dummy interface Dummy, made and set up if the kernel has the
// driver, else on lo. Addresses already there are left as they are; so
// is an existing Dummy interface (it is set up if it is down). It returns
// the interface used. It needs CAP_NET_ADMIN; it talks netlink to the
// kernel and runs no program.
func AddAddresses(addrs []netip.Addr) (string, error) {
	if err := check(addrs); err != nil {
		return "", err
	}
	nl, err := dial()
	if err != nil {
		return "", err
	}
	defer nl.close()
	iface := Dummy
	if err := nl.addDummy(); err != nil {
		if !noDriver(err) {
			return "", fmt.Errorf("making the interface %s: %w", Dummy, err)
		}
		iface = "lo"
	}
	ifi, err := net.InterfaceByName(iface)
	if err != nil {
		return "", fmt.Errorf("finding the interface %s: %w", iface, err)
	}
	if ifi.Flags&net.FlagUp == 0 {
		if err := nl.setUp(ifi.Index); err != nil {
			return "", fmt.Errorf("setting %s up: %w", iface, err)
		}
	}
	for _, a := range addrs {
		if err := nl.addAddress(ifi.Index, a.Unmap()); err != nil && !errors.Is(err, unix.EEXIST) {
			return "", fmt.Errorf("adding %s to %s: %w", prefix(a), iface, err)
		}
	}
	return iface, nil
}

// noDriver reports whether the kernel refused a dummy link for want of
// the driver (not built, not loadable), as opposed to a refusal that
// would stop lo too (no CAP_NET_ADMIN).
func noDriver(err error) bool {
	return errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENODEV) || errors.Is(err, unix.ENOENT) ||
		errors.Is(err, unix.EAFNOSUPPORT) || errors.Is(err, unix.ENOSYS)
}

// conn is a netlink route socket; requests on it are one at a time.
type conn struct {
	fd  int
	seq uint32
}

func dial() (*conn, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("opening netlink: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("binding netlink: %w", err)
	}
	// The kernel answers at once; a bound keeps a wedged kernel from
	// hanging the agent's start.
	tv := unix.NsecToTimeval((5 * time.Second).Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("netlink timeout: %w", err)
	}
	return &conn{fd: fd, seq: uint32(time.Now().UnixNano())}, nil
}

func (c *conn) close() { unix.Close(c.fd) }

// attr encodes one rtattr, padded to 4 bytes.
func attr(typ uint16, data []byte) []byte {
	l := unix.SizeofRtAttr + len(data)
	b := make([]byte, (l+3)&^3)
	binary.NativeEndian.PutUint16(b[0:2], uint16(l))
	binary.NativeEndian.PutUint16(b[2:4], typ)
	copy(b[unix.SizeofRtAttr:], data)
	return b
}

// message is one netlink request asking for an acknowledgement.
func message(typ, flags uint16, seq uint32, body []byte) []byte {
	msg := make([]byte, unix.SizeofNlMsghdr+len(body))
	binary.NativeEndian.PutUint32(msg[0:4], uint32(len(msg)))
	binary.NativeEndian.PutUint16(msg[4:6], typ)
	binary.NativeEndian.PutUint16(msg[6:8], flags|unix.NLM_F_REQUEST|unix.NLM_F_ACK)
	binary.NativeEndian.PutUint32(msg[8:12], seq)
	copy(msg[unix.SizeofNlMsghdr:], body)
	return msg
}

// ack finds the acknowledgement of request seq in a datagram: done says
// it was there, err is the kernel's answer.
func ack(data []byte, seq uint32) (done bool, err error) {
	msgs, err := syscall.ParseNetlinkMessage(data)
	if err != nil {
		return false, fmt.Errorf("reading netlink: %w", err)
	}
	for _, m := range msgs {
		if m.Header.Seq != seq || m.Header.Type != unix.NLMSG_ERROR {
			continue
		}
		if len(m.Data) < 4 {
			return true, errors.New("reading netlink: a short acknowledgement")
		}
		if code := int32(binary.NativeEndian.Uint32(m.Data[0:4])); code != 0 {
			return true, unix.Errno(-code)
		}
		return true, nil
	}
	return false, nil
}

// request sends one netlink message and waits for its acknowledgement.
func (c *conn) request(typ, flags uint16, body []byte) error {
	c.seq++
	seq := c.seq
	if err := unix.Sendto(c.fd, message(typ, flags, seq, body), 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return err
	}
	buf := make([]byte, 1<<16)
	for {
		n, from, err := unix.Recvfrom(c.fd, buf, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return err
		}
		if sa, ok := from.(*unix.SockaddrNetlink); !ok || sa.Pid != 0 {
			continue // not from the kernel
		}
		if done, err := ack(buf[:n], seq); done {
			return err
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

// addDummy makes Dummy, up; it existing already is fine.
func (c *conn) addDummy() error {
	err := c.request(unix.RTM_NEWLINK, unix.NLM_F_CREATE|unix.NLM_F_EXCL, dummyBody())
	if errors.Is(err, unix.EEXIST) {
		return nil
	}
	return err
}

func dummyBody() []byte {
	body := ifinfo(0, true)
	body = append(body, attr(unix.IFLA_IFNAME, append([]byte(Dummy), 0))...)
	return append(body, attr(unix.IFLA_LINKINFO|unix.NLA_F_NESTED, attr(unix.IFLA_INFO_KIND, []byte("dummy")))...)
}

func (c *conn) setUp(index int) error {
	return c.request(unix.RTM_NEWLINK, 0, ifinfo(index, true))
}

func (c *conn) addAddress(index int, a netip.Addr) error {
	return c.request(unix.RTM_NEWADDR, unix.NLM_F_CREATE|unix.NLM_F_EXCL, addrBody(index, a))
}

// addrBody is an ifaddrmsg for a as a host address on interface index,
// scope global. IPv6 skips duplicate address detection, as `ip addr add
// ... nodad` would: a tentative address cannot be listened on yet.
func addrBody(index int, a netip.Addr) []byte {
	family, bits, flags := byte(unix.AF_INET), byte(32), byte(0)
	if a.Is6() {
		family, bits, flags = unix.AF_INET6, 128, unix.IFA_F_NODAD
	}
	body := make([]byte, unix.SizeofIfAddrmsg)
	body[0], body[1], body[2] = family, bits, flags
	binary.NativeEndian.PutUint32(body[4:8], uint32(index))
	raw := a.AsSlice()
	body = append(body, attr(unix.IFA_LOCAL, raw)...)
	return append(body, attr(unix.IFA_ADDRESS, raw)...)
}

// listLinks dumps the host's interfaces over netlink (RTM_GETLINK): name,
// kind (IFLA_INFO_KIND: "bridge", "veth", "tun", "vxlan", ...; "" for a
// physical device) and master (the bridge a port belongs to).
func listLinks() ([]link, error) {
	c, err := dial()
	if err != nil {
		return nil, err
	}
	defer c.close()
	c.seq++
	seq := c.seq
	body := make([]byte, unix.SizeofIfInfomsg)
	body[0] = unix.AF_UNSPEC
	msg := message(unix.RTM_GETLINK, unix.NLM_F_DUMP, seq, body)
	// A dump answers with its messages and NLMSG_DONE, not an ack.
	binary.NativeEndian.PutUint16(msg[6:8], unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
	if err := unix.Sendto(c.fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return nil, err
	}
	var links []link
	buf := make([]byte, 1<<16)
	for {
		n, from, err := unix.Recvfrom(c.fd, buf, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("reading netlink: %w", err)
		}
		if sa, ok := from.(*unix.SockaddrNetlink); !ok || sa.Pid != 0 {
			continue
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			return nil, fmt.Errorf("reading netlink: %w", err)
		}
		for _, m := range msgs {
			if m.Header.Seq != seq {
				continue
			}
			switch m.Header.Type {
			case unix.NLMSG_DONE:
				return links, nil
			case unix.NLMSG_ERROR:
				if len(m.Data) >= 4 {
					if code := int32(binary.NativeEndian.Uint32(m.Data[0:4])); code != 0 {
						return nil, unix.Errno(-code)
					}
				}
				return nil, errors.New("reading netlink: an error answer to the link dump")
			case unix.RTM_NEWLINK:
				if l, ok := parseLink(m.Data); ok {
					links = append(links, l)
				}
			}
		}
	}
}

// parseLink reads one RTM_NEWLINK message's body.
func parseLink(data []byte) (link, bool) {
	if len(data) < unix.SizeofIfInfomsg {
		return link{}, false
	}
	l := link{index: int(int32(binary.NativeEndian.Uint32(data[4:8])))}
	for _, a := range attrs(data[unix.SizeofIfInfomsg:]) {
		switch a.typ &^ unix.NLA_F_NESTED {
		case unix.IFLA_IFNAME:
			l.name = strings.TrimRight(string(a.data), "\x00")
		case unix.IFLA_MASTER:
			if len(a.data) >= 4 {
				l.master = int(binary.NativeEndian.Uint32(a.data[:4]))
			}
		case unix.IFLA_LINKINFO:
			for _, in := range attrs(a.data) {
				if in.typ&^unix.NLA_F_NESTED == unix.IFLA_INFO_KIND {
					l.kind = strings.TrimRight(string(in.data), "\x00")
				}
			}
		}
	}
	return l, l.name != ""
}

type rtattr struct {
	typ  uint16
	data []byte
}

// attrs splits a run of rtattrs; a malformed one ends it.
func attrs(b []byte) []rtattr {
	var out []rtattr
	for len(b) >= unix.SizeofRtAttr {
		l := int(binary.NativeEndian.Uint16(b[0:2]))
		if l < unix.SizeofRtAttr || l > len(b) {
			break
		}
		out = append(out, rtattr{typ: binary.NativeEndian.Uint16(b[2:4]), data: b[unix.SizeofRtAttr:l]})
		b = b[min((l+3)&^3, len(b)):]
	}
	return out
}
