package imds

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"syscall"

	"github.com/keyless-dev/keyless/internal/logline"
)

// Hop limits.
const (
	// DefaultHopLimit is the helper's default on loopback, where it does
	// not matter: loopback traffic never crosses a router.
	DefaultHopLimit = 64
	// DefaultRemoteHopLimit is the default on any other address: an
	// answer with a TTL of 1 reaches only hosts on the same link (a
	// container on a bridge of this host, say), never one behind a
	// router. It is the condition AWS's helper maintainers set for a
	// bind address other than loopback.
	DefaultRemoteHopLimit = 1
	MaxHopLimit           = 255
)

// Listen listens on addr (host:port, port 0 picks one; an IPv4 address
// listens on IPv4 only, :: on both families) and sets the IP
// TTL (IPv4) or unicast hop limit (IPv6) of every accepted connection to
// hopLimit (1 to 255), so the answers go no further than that many hops,
// as the helper's ttl_listener does. A connection whose hop limit cannot
// be set is closed unanswered and logged, and the listener goes on.
func Listen(addr string, hopLimit int, logger *slog.Logger) (net.Listener, error) {
	if hopLimit < 1 || hopLimit > MaxHopLimit {
		return nil, fmt.Errorf("hop limit %d: must be 1 to %d", hopLimit, MaxHopLimit)
	}
	// The listening socket gets the hop limit too: the kernel answers a
	// connection's SYN from it, so a client beyond the limit never even
	// completes the handshake; accepted connections are set again, as
	// the helper sets them, in case a kernel does not pass it on.
	lc := net.ListenConfig{Control: func(network, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			if network == "tcp4" {
				serr = setsockoptInt(fd, syscall.IPPROTO_IP, syscall.IP_TTL, hopLimit)
				return
			}
			serr = setsockoptInt(fd, syscall.IPPROTO_IPV6, syscall.IPV6_UNICAST_HOPS, hopLimit)
			// IPv4 peers of a dual-stack socket: best effort here,
			// since not every kernel takes the IPv4 option on an IPv6
			// socket; Accept sets it on their connections.
			_ = setsockoptInt(fd, syscall.IPPROTO_IP, syscall.IP_TTL, hopLimit)
		})
		if err != nil {
			return err
		}
		if serr != nil {
			return fmt.Errorf("setting the hop limit to %d: %w", hopLimit, serr)
		}
		return nil
	}}
	// An IPv4 address listens on IPv4 only: Go's "tcp" would make
	// 0.0.0.0 a dual-stack socket on ::, answering IPv6 too, which
	// nobody asked for. :: stays dual-stack, as the system makes it.
	network := "tcp"
	if host, port, err := net.SplitHostPort(addr); err == nil {
		if ip, err := netip.ParseAddr(host); err == nil && ip.Unmap().Is4() {
			network, addr = "tcp4", net.JoinHostPort(ip.Unmap().String(), port)
		}
	}
	ln, err := lc.Listen(context.Background(), network, addr)
	if err != nil {
		return nil, err
	}
	return &ttlListener{Listener: ln, hopLimit: hopLimit, log: logline.Or(logger)}, nil
}

type ttlListener struct {
	net.Listener
	hopLimit int
	log      *slog.Logger
}

func (l *ttlListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if err := SetHopLimit(c, l.hopLimit); err != nil {
			// Fail closed: an answer must never leave with a larger
			// TTL than asked. Not an Accept error, which would stop
			// the server.
			l.log.Warn("closing a connection whose hop limit cannot be set", "remote", c.RemoteAddr().String(), "err", err)
			c.Close()
			continue
		}
		return c, nil
	}
}

// SetHopLimit sets c's IP TTL (an IPv4 peer, also on an IPv6 socket that
// carries IPv4) or IPv6 unicast hop limit.
func SetHopLimit(c net.Conn, hopLimit int) error {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return fmt.Errorf("not a TCP connection: %T", c)
	}
	remote, _ := tc.RemoteAddr().(*net.TCPAddr)
	local, _ := tc.LocalAddr().(*net.TCPAddr)
	if remote == nil || local == nil {
		return errors.New("no addresses")
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return err
	}
	v4 := remote.IP.To4() != nil
	// An IPv6 socket (bound to :: or an IPv6 address) needs the IPv6
	// option for IPv6 peers; for IPv4 peers on it, the kernel uses the
	// IPv4 option, which it takes on IPv6 sockets too.
	var serr error
	err = raw.Control(func(fd uintptr) {
		if v4 {
			serr = setsockoptInt(fd, syscall.IPPROTO_IP, syscall.IP_TTL, hopLimit)
			return
		}
		serr = setsockoptInt(fd, syscall.IPPROTO_IPV6, syscall.IPV6_UNICAST_HOPS, hopLimit)
	})
	if err != nil {
		return err
	}
	if serr != nil {
		return fmt.Errorf("setting the hop limit to %d: %w", hopLimit, serr)
	}
	return nil
}

// HopLimit reads c's IP TTL or IPv6 unicast hop limit back, as
// SetHopLimit chose the option (for tests and status).
func HopLimit(c net.Conn) (int, error) {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return 0, fmt.Errorf("not a TCP connection: %T", c)
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return 0, err
	}
	v4 := tc.RemoteAddr().(*net.TCPAddr).IP.To4() != nil
	var n int
	var gerr error
	err = raw.Control(func(fd uintptr) {
		if v4 {
			n, gerr = getsockoptInt(fd, syscall.IPPROTO_IP, syscall.IP_TTL)
			return
		}
		n, gerr = getsockoptInt(fd, syscall.IPPROTO_IPV6, syscall.IPV6_UNICAST_HOPS)
	})
	if err != nil {
		return 0, err
	}
	return n, gerr
}
