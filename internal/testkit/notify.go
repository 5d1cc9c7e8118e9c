package testkit

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Notifications listens, as systemd would, for the notify messages
// (READY=1, STATUS=..., STOPPING=1) of a daemon the test starts: give the
// process Env, then wait for its messages. They are events, so a test
// never has to read a daemon's log to know where it is.
type Notifications struct {
	// Env is NOTIFY_SOCKET=<path>, for the process's environment.
	Env string
	ch  chan string
}

// ListenNotify opens a notify socket that closes when the test ends.
func ListenNotify(t testing.TB) *Notifications {
	t.Helper()
	// A short directory: unix socket paths are limited to about 100 bytes.
	dir, err := os.MkdirTemp("", "kn")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	n := &Notifications{Env: "NOTIFY_SOCKET=" + path, ch: make(chan string, 64)}
	go func() {
		buf := make([]byte, 4096)
		for {
			k, err := conn.Read(buf)
			if err != nil {
				close(n.ch)
				return
			}
			for _, line := range strings.Split(strings.TrimSpace(string(buf[:k])), "\n") {
				n.ch <- line
			}
		}
	}()
	t.Cleanup(func() { conn.Close() })
	return n
}

// WaitFor returns the first message, from now on, that starts with
// prefix; it fails t if none comes within a minute, which means the
// daemon never got there.
func (n *Notifications) WaitFor(t testing.TB, prefix string) string {
	t.Helper()
	limit := time.NewTimer(time.Minute)
	defer limit.Stop()
	var seen []string
	for {
		select {
		case m, ok := <-n.ch:
			if !ok {
				t.Fatalf("the notify socket closed waiting for %q; seen %q", prefix, seen)
			}
			if strings.HasPrefix(m, prefix) {
				return m
			}
			seen = append(seen, m)
		case <-limit.C:
			t.Fatalf("no %q notification within a minute; seen %q", prefix, seen)
		}
	}
}
