package imds

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/keyless-dev/keyless/internal/serve"
)

// topology is four network namespaces: the server S; a client N next to
// it on one link; a router R between S and a far client F on another
// link, so F is two hops from S:
//
//	N 198.18.3.2 ─── 198.18.3.1 S 198.18.2.2 ─── 198.18.2.1 R 198.18.1.1 ─── 198.18.1.2 F
//
// The namespaces are private to the test: no address of this host
// changes.
type topology struct {
	t          *testing.T
	s, n, r, f string // namespace names
}

func newTopology(t *testing.T) *topology {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("network namespaces need root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("no ip command (iproute2)")
	}
	b := make([]byte, 3)
	rand.Read(b)
	id := hex.EncodeToString(b)
	top := &topology{t: t, s: "kls" + id, n: "kln" + id, r: "klr" + id, f: "klf" + id}
	for _, ns := range []string{top.s, top.n, top.r, top.f} {
		if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
			t.Skipf("cannot make network namespaces here: %v: %s", err, out)
		}
		t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	}
	top.ip("link", "add", "a"+id, "netns", top.n, "type", "veth", "peer", "name", "b"+id, "netns", top.s)
	top.ip("link", "add", "c"+id, "netns", top.s, "type", "veth", "peer", "name", "d"+id, "netns", top.r)
	top.ip("link", "add", "e"+id, "netns", top.r, "type", "veth", "peer", "name", "f"+id, "netns", top.f)
	for _, a := range []struct{ ns, dev, addr string }{
		{top.n, "a" + id, "198.18.3.2/24"}, {top.s, "b" + id, "198.18.3.1/24"},
		{top.s, "c" + id, "198.18.2.2/24"}, {top.r, "d" + id, "198.18.2.1/24"},
		{top.r, "e" + id, "198.18.1.1/24"}, {top.f, "f" + id, "198.18.1.2/24"},
	} {
		top.ip("-n", a.ns, "addr", "add", a.addr, "dev", a.dev)
		top.ip("-n", a.ns, "link", "set", a.dev, "up")
	}
	for _, ns := range []string{top.s, top.n, top.r, top.f} {
		top.ip("-n", ns, "link", "set", "lo", "up")
	}
	top.ip("-n", top.s, "route", "add", "198.18.1.0/24", "via", "198.18.2.1")
	top.ip("-n", top.f, "route", "add", "default", "via", "198.18.1.1")
	top.ip("netns", "exec", top.r, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	return top
}

func (top *topology) ip(args ...string) {
	top.t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		top.t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// in runs f on a thread in namespace ns: the sockets f opens belong to
// ns for their whole life.
func (top *topology) in(ns string, f func()) {
	top.t.Helper()
	runtime.LockOSThread()
	self, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		top.t.Fatal(err)
	}
	defer self.Close()
	target, err := os.Open("/run/netns/" + ns)
	if err != nil {
		runtime.UnlockOSThread()
		top.t.Fatal(err)
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		top.t.Fatal(err)
	}
	f()
	if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err != nil {
		// The thread stays locked and dies with its goroutine.
		top.t.Fatal(err)
	}
	runtime.UnlockOSThread()
}

// timeExceeded is how many ICMP time-exceeded messages the router has
// sent: one for each packet it dropped for its TTL.
func (top *topology) timeExceeded() int {
	top.t.Helper()
	out, err := exec.Command("ip", "netns", "exec", top.r, "cat", "/proc/net/snmp").Output()
	if err != nil {
		top.t.Fatal(err)
	}
	lines := strings.Split(string(out), "\n")
	for i := 0; i+1 < len(lines); i++ {
		if !strings.HasPrefix(lines[i], "Icmp: ") || !strings.HasPrefix(lines[i+1], "Icmp: ") {
			continue
		}
		names, values := strings.Fields(lines[i]), strings.Fields(lines[i+1])
		for j, name := range names {
			if name == "OutTimeExcds" && j < len(values) {
				n, _ := strconv.Atoi(values[j])
				return n
			}
		}
	}
	top.t.Fatal("no Icmp OutTimeExcds in the router's /proc/net/snmp")
	return 0
}

// serveIn serves a token endpoint on 0.0.0.0 in the server namespace
// with hopLimit, and returns its port.
func (top *topology) serveIn(hopLimit int) int {
	top.t.Helper()
	f := newFixture(top.t)
	var srv *serve.Server
	top.in(top.s, func() {
		ln, err := Listen("0.0.0.0:0", hopLimit, nil)
		if err != nil {
			top.t.Fatal(err)
		}
		srv = serve.Serve(ln, f.h, serve.Options{})
	})
	top.t.Cleanup(func() { srv.Close() })
	return srv.Addr().(*net.TCPAddr).Port
}

// get asks for a token from namespace ns; the answer's status, or the
// error when none came before ctx ended.
func (top *topology) get(ctx context.Context, ns, addr string) (int, error) {
	client := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, address string) (net.Conn, error) {
			var c net.Conn
			var err error
			top.in(ns, func() { c, err = (&net.Dialer{}).DialContext(ctx, network, address) })
			return c, err
		},
		DisableKeepAlives: true,
	}}
	req, err := http.NewRequestWithContext(ctx, "PUT", "http://"+addr+TokenPath, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set(TTLHeader, "60")
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// TestHopLimitAcrossARouter: with a hop limit of 1, a client on the
// server's link gets an answer and a client behind a router gets none
// (the router drops the server's packets for their TTL); with 2 the far
// client is answered too.
func TestHopLimitAcrossARouter(t *testing.T) {
	top := newTopology(t)
	one, two := top.serveIn(1), top.serveIn(2)
	ctx := context.Background()

	// The paths work: the neighbour is answered at TTL 1, and the far
	// client at TTL 2.
	if status, err := top.get(ctx, top.n, fmt.Sprintf("198.18.3.1:%d", one)); err != nil || status != 200 {
		t.Fatalf("the neighbour, hop limit 1: %d %v", status, err)
	}
	if status, err := top.get(ctx, top.f, fmt.Sprintf("198.18.2.2:%d", two)); err != nil || status != 200 {
		t.Fatalf("the far client, hop limit 2: %d %v", status, err)
	}

	// The far client at TTL 1: the router drops the server's answer
	// (here its SYN-ACK) and says so; the client gets nothing.
	before := top.timeExceeded()
	ctx, cancel := context.WithCancel(context.Background())
	type result struct {
		status int
		err    error
	}
	done := make(chan result, 1)
	go func() {
		status, err := top.get(ctx, top.f, fmt.Sprintf("198.18.2.2:%d", one))
		done <- result{status, err}
	}()
	// The router's counter is the event: poll it, with a minute as a
	// guard against a path that never gets there.
	deadline := time.Now().Add(time.Minute)
	for top.timeExceeded() == before {
		select {
		case r := <-done:
			t.Fatalf("the far client got an answer at hop limit 1: %d %v", r.status, r.err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("the router dropped nothing within a minute")
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case r := <-done:
		t.Fatalf("the far client got an answer at hop limit 1: %d %v", r.status, r.err)
	default:
	}
	cancel()
	if r := <-done; r.err == nil {
		t.Fatalf("the far client got %d at hop limit 1", r.status)
	}
}
