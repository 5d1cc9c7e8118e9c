package sdnotify_test

import (
	"net"
	"path/filepath"
	"testing"

	"github.com/keyless-dev/keyless/internal/sdnotify"
)

func TestNotify(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	if sent, err := sdnotify.Notify(sdnotify.Ready); sent || err != nil {
		t.Fatalf("without NOTIFY_SOCKET: %v %v", sent, err)
	}
	path := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	t.Setenv("NOTIFY_SOCKET", path)
	if sent, err := sdnotify.Notify(sdnotify.Ready, sdnotify.Status("renewed serial %d\nnext", 7)); !sent || err != nil {
		t.Fatalf("Notify: %v %v", sent, err)
	}
	buf := make([]byte, 512)
	n, err := conn.Read(buf)
	if err != nil || string(buf[:n]) != "READY=1\nSTATUS=renewed serial 7 next\n" {
		t.Fatalf("got %q, %v", buf[:n], err)
	}
	t.Setenv("NOTIFY_SOCKET", "relative/path")
	if _, err := sdnotify.Notify(sdnotify.Ready); err == nil {
		t.Error("a relative NOTIFY_SOCKET was used")
	}
}
