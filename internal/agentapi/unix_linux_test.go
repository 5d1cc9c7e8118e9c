package agentapi

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

func startUnix(t *testing.T, path string, mode os.FileMode, gid int, h http.Handler) {
	t.Helper()
	s, err := StartUnix(path, mode, gid, h, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if s.Addr().String() != path || s.Addr().Network() != "unix" {
		t.Errorf("Addr %s %s, want unix %s", s.Addr().Network(), s.Addr(), path)
	}
}

func TestUnixModes(t *testing.T) {
	for _, mode := range []os.FileMode{0o600, 0o660, 0o666, 0o4660} {
		path := filepath.Join(t.TempDir(), "agent.sock")
		startUnix(t, path, mode, -1, LocalHandler(&vendor{}, status{}))
		fi, err := os.Lstat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != mode.Perm() || fi.Mode()&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky) != 0 {
			t.Errorf("mode %v: the socket is %v", mode, fi.Mode())
		}
		if st := fi.Sys().(*syscall.Stat_t); int(st.Uid) != os.Geteuid() || int(st.Gid) != os.Getegid() {
			t.Errorf("owner %d:%d", st.Uid, st.Gid)
		}
	}
}

// TestUnixGroup: the socket is given the group asked for (root may give
// any; others only their own groups).
func TestUnixGroup(t *testing.T) {
	gid := os.Getgid()
	if os.Geteuid() == 0 {
		gid = 4242 // no such group is needed: root chowns to any gid
	}
	path := filepath.Join(t.TempDir(), "agent.sock")
	startUnix(t, path, 0o660, gid, LocalHandler(&vendor{}, status{}))
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); int(st.Gid) != gid || fi.Mode().Perm() != 0o660 {
		t.Errorf("socket %v gid %d, want 0660 gid %d", fi.Mode(), st.Gid, gid)
	}
	if os.Geteuid() != 0 {
		// A group this user is not in: refused, and nothing is left.
		dir := t.TempDir()
		if _, err := StartUnix(filepath.Join(dir, "agent.sock"), 0o660, 4242, LocalHandler(&vendor{}, status{}), nil); err == nil || !strings.Contains(err.Error(), "group 4242") {
			t.Errorf("a foreign group: %v", err)
		}
		if names, _ := os.ReadDir(dir); len(names) != 0 {
			t.Errorf("left behind: %v", names)
		}
	}
}

// TestUnixPeer: the kernel's view of the caller reaches the Vendor, and
// the answer is credential_process JSON.
func TestUnixPeer(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agent.sock")
	c := goodCreds()
	v := &vendor{creds: c}
	startUnix(t, path, 0o600, -1, LocalHandler(v, status{}))
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", path)
	}}}
	defer hc.CloseIdleConnections()
	// Two requests on one connection, two on another: the peer is the
	// same each time, and a forged header changes nothing.
	for range 2 {
		req, _ := http.NewRequest("GET", "http://agent/v1/credentials", nil)
		req.Header.Set("Authorization", "forged")
		req.Header.Set("X-Peer-Uid", "0")
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var got map[string]any
		err = json.NewDecoder(resp.Body).Decode(&got)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("%d %v %v", resp.StatusCode, got, err)
		}
		want := map[string]any{"Version": 1.0, "AccessKeyId": c.AccessKeyID, "SecretAccessKey": c.SecretAccessKey,
			"SessionToken": c.Token, "Expiration": c.Expiration.UTC().Format("2006-01-02T15:04:05Z")}
		if len(got) != len(want) {
			t.Errorf("fields %v", got)
		}
		for k, w := range want {
			if got[k] != w {
				t.Errorf("%s = %v, want %v", k, got[k], w)
			}
		}
	}
	for _, r := range v.requests() {
		if r.Peer == nil || r.Peer.UID != uint32(os.Getuid()) || r.Peer.GID != uint32(os.Getgid()) || r.Peer.PID != int32(os.Getpid()) {
			t.Errorf("peer %+v, want uid %d gid %d pid %d", r.Peer, os.Getuid(), os.Getgid(), os.Getpid())
		}
		if r.Token != "" || r.Listener != "socket" {
			t.Errorf("request %+v", r)
		}
	}
}

// TestUnixRefusesToReplace: anything at the path but a stale socket of
// ours is left alone.
func TestUnixRefusesToReplace(t *testing.T) {
	dir := t.TempDir()
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := StartUnix(sub, 0o600, -1, LocalHandler(&vendor{}, status{}), nil); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("over a directory: %v", err)
	}
	if fi, err := os.Lstat(sub); err != nil || !fi.IsDir() {
		t.Errorf("the directory is gone: %v", err)
	}
	// A dangling link is not followed either.
	link := filepath.Join(dir, "dangling.sock")
	if err := os.Symlink(filepath.Join(dir, "nowhere"), link); err != nil {
		t.Fatal(err)
	}
	if _, err := StartUnix(link, 0o600, -1, LocalHandler(&vendor{}, status{}), nil); err == nil {
		t.Error("a dangling link was replaced")
	}
	if _, err := os.Lstat(filepath.Join(dir, "nowhere")); !errors.Is(err, fs.ErrNotExist) {
		t.Error("a socket was made through the link")
	}
	if os.Geteuid() == 0 {
		// Another user's stale socket: not ours to replace.
		other := filepath.Join(dir, "other.sock")
		ln, err := net.Listen("unix", other)
		if err != nil {
			t.Fatal(err)
		}
		ln.(*net.UnixListener).SetUnlinkOnClose(false)
		ln.Close()
		if err := os.Lchown(other, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		if _, err := StartUnix(other, 0o600, -1, LocalHandler(&vendor{}, status{}), nil); err == nil || !strings.Contains(err.Error(), "another user's") {
			t.Errorf("another user's socket: %v", err)
		}
		if _, err := os.Lstat(other); err != nil {
			t.Errorf("another user's socket was removed: %v", err)
		}
	}
	// Only the entries made here remain: no temporary directory.
	names, _ := os.ReadDir(dir)
	for _, n := range names {
		if strings.HasPrefix(n.Name(), ".keyless-sock-") {
			t.Errorf("left behind: %s", n.Name())
		}
	}
	// A missing parent directory is an error naming the path.
	if _, err := StartUnix(filepath.Join(dir, "no", "agent.sock"), 0o600, -1, LocalHandler(&vendor{}, status{}), nil); err == nil {
		t.Error("a socket in a missing directory")
	}
}

// TestUnixCloseLeavesAReplacement: Close removes its own socket, not a
// file that has taken the path since.
func TestUnixCloseLeavesAReplacement(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agent.sock")
	s, err := StartUnix(path, 0o600, -1, LocalHandler(&vendor{}, status{}), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("someone else's"), 0o600); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if data, err := os.ReadFile(path); err != nil || string(data) != "someone else's" {
		t.Errorf("the replacement: %q %v", data, err)
	}
}

func TestRenameNoReplace(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	os.WriteFile(a, []byte("a"), 0o600)
	os.WriteFile(b, []byte("b"), 0o600)
	if err := renameNoReplace(a, b); !errors.Is(err, fs.ErrExist) {
		t.Errorf("over an existing file: %v", err)
	}
	if data, _ := os.ReadFile(b); string(data) != "b" {
		t.Error("replaced")
	}
	c := filepath.Join(dir, "c")
	if err := renameNoReplace(a, c); err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(c); string(data) != "a" {
		t.Error("not renamed")
	}
}

// connectAs connects to the socket at path from a thread whose effective
// uid and gid are uid and gid (root only): SO_PEERCRED then reports them.
// The thread is never given back to the runtime: it ends with its
// goroutine.
func connectAs(t *testing.T, path string, uid, gid int) net.Conn {
	t.Helper()
	type result struct {
		fd  int
		err error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // and never unlock: the thread exits with the goroutine
		if _, _, e := unix.RawSyscall(unix.SYS_SETRESGID, ^uintptr(0), uintptr(gid), ^uintptr(0)); e != 0 {
			done <- result{-1, e}
			return
		}
		if _, _, e := unix.RawSyscall(unix.SYS_SETRESUID, ^uintptr(0), uintptr(uid), ^uintptr(0)); e != 0 {
			done <- result{-1, e}
			return
		}
		fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			done <- result{-1, err}
			return
		}
		if err := unix.Connect(fd, &unix.SockaddrUnix{Name: path}); err != nil {
			unix.Close(fd)
			done <- result{-1, err}
			return
		}
		done <- result{fd, nil}
	}()
	r := <-done
	if r.err != nil {
		t.Fatalf("connecting as %d:%d: %v", uid, gid, r.err)
	}
	f := os.NewFile(uintptr(r.fd), "peer")
	defer f.Close()
	c, err := net.FileConn(f)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestUnixPeerOtherUser: the peer is the kernel's view of whoever
// connected, here another user, not the agent's own identity.
func TestUnixPeerOtherUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("connecting as another user needs root")
	}
	dir := t.TempDir()
	// The other user must reach the socket: t.TempDir's directories are
	// private.
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(dir, "agent.sock")
	v := &vendor{err: &Refusal{Status: 403, Code: "AccessDenied", Message: "no rule for this uid"}}
	startUnix(t, path, 0o666, -1, LocalHandler(v, status{}))
	c := connectAs(t, path, 65534, 65533)
	defer c.Close()
	hc := &http.Client{Transport: &http.Transport{DialContext: func(context.Context, string, string) (net.Conn, error) { return c, nil }}}
	resp, err := hc.Get("http://agent/v1/credentials")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Errorf("status %d", resp.StatusCode)
	}
	r := v.requests()
	if len(r) != 1 || r[0].Peer == nil || r[0].Peer.UID != 65534 || r[0].Peer.GID != 65533 || r[0].Peer.PID != int32(os.Getpid()) {
		t.Errorf("the vendor was asked %+v, want uid 65534 gid 65533", r)
	}
	// This process is still root.
	if os.Geteuid() != 0 {
		t.Fatal("the test changed the process's uid")
	}
	// A socket of mode 0600 refuses that user outright.
	private := filepath.Join(dir, "private.sock")
	startUnix(t, private, 0o600, -1, LocalHandler(v, status{}))
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if _, _, e := unix.RawSyscall(unix.SYS_SETRESUID, ^uintptr(0), 65534, ^uintptr(0)); e != 0 {
			done <- e
			return
		}
		fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			done <- err
			return
		}
		defer unix.Close(fd)
		done <- unix.Connect(fd, &unix.SockaddrUnix{Name: private})
	}()
	if err := <-done; !errors.Is(err, unix.EACCES) {
		t.Errorf("connecting to a 0600 socket as another user: %v, want EACCES", err)
	}
}
