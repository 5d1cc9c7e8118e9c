// Package sdnotify tells the service manager how a keyless daemon is
// doing, with systemd's notify protocol: a datagram to the unix socket
// named by $NOTIFY_SOCKET. "READY=1" once the daemon serves (so
// `systemctl start` returns only then, and a unit's Type=notify works),
// "RELOADING=1" then "READY=1" around a reload, "STOPPING=1" on the way
// out, and "STATUS=..." lines systemctl status shows. Without
// $NOTIFY_SOCKET (launchd, a shell) every call does nothing. Tests use the
// same messages as events to wait on.
//
// Any keyless package may import it; the CLI's daemons call it.
package sdnotify

import (
	"fmt"
	"net"
	"os"
	"strings"
)

// Messages.
const (
	Ready     = "READY=1"
	Reloading = "RELOADING=1"
	Stopping  = "STOPPING=1"
)

// Notify sends state lines to $NOTIFY_SOCKET (an absolute path, or an
// abstract socket starting with @). It reports whether the message was
// sent; without $NOTIFY_SOCKET it sends nothing and returns false, nil.
func Notify(state ...string) (bool, error) {
	addr := os.Getenv("NOTIFY_SOCKET")
	if addr == "" {
		return false, nil
	}
	if !strings.HasPrefix(addr, "/") && !strings.HasPrefix(addr, "@") {
		return false, fmt.Errorf("NOTIFY_SOCKET %q: want an absolute path or an abstract socket", addr)
	}
	if addr[0] == '@' {
		addr = "\x00" + addr[1:]
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		return false, fmt.Errorf("NOTIFY_SOCKET: %w", err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(strings.Join(state, "\n") + "\n")); err != nil {
		return false, fmt.Errorf("NOTIFY_SOCKET: %w", err)
	}
	return true, nil
}

// Status formats a STATUS line.
func Status(format string, args ...any) string {
	return "STATUS=" + strings.ReplaceAll(fmt.Sprintf(format, args...), "\n", " ")
}
