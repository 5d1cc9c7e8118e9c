package testkit

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	portsMu sync.Mutex
	given   = map[int]bool{}
)

// Addr returns "127.0.0.1:PORT" with a port nothing listens on, for a
// process or a configuration that must know its address before it
// starts (a test that can listen itself should: net.Listen on port 0
// never races). The port is drawn below the kernel's ephemeral range,
// which the kernel never hands out on its own, so only another test that
// picks ports explicitly could take it before the process binds it; and
// it is never handed out twice in one test process.
func Addr(t testing.TB) string {
	t.Helper()
	low, high := portRange()
	portsMu.Lock()
	defer portsMu.Unlock()
	for range 1000 {
		p := low + rand.IntN(high-low)
		if given[p] {
			continue
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		ln.Close()
		given[p] = true
		return addr
	}
	t.Fatal("testkit.Addr: found no free port in 1000 tries")
	return ""
}

// portRange is where Addr draws ports: from 10000 up to the start of the
// ephemeral range (ip_local_port_range), or above its end when it starts
// too low to leave room.
func portRange() (int, int) {
	low, high := 32768, 60999
	if data, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(data)); len(f) == 2 {
			l, err1 := strconv.Atoi(f[0])
			h, err2 := strconv.Atoi(f[1])
			if err1 == nil && err2 == nil {
				low, high = l, h
			}
		}
	}
	if low-10000 >= 1000 {
		return 10000, low
	}
	return high + 1, 65535
}

// Fataler is what WaitFor needs of a test: *testing.T has it, and so has
// testscript's *TestScript.
type Fataler interface {
	Fatalf(format string, args ...any)
}

// WaitFor polls cond until it holds, and fails t with what was awaited
// (and cond's last report) after timeout. Use it only for state another
// process changes, such as a file it writes or a port it opens, where no
// event can reach the test; within one process, synchronise on channels,
// events and the fake Clock instead.
func WaitFor(t Fataler, timeout time.Duration, what string, cond func() (bool, string)) {
	if h, ok := t.(interface{ Helper() }); ok {
		h.Helper()
	}
	deadline := time.Now().Add(timeout)
	wait := time.Millisecond
	for {
		ok, report := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			msg := fmt.Sprintf("waited %s for %s", timeout, what)
			if report != "" {
				msg += ": " + report
			}
			t.Fatalf("%s", msg)
		}
		time.Sleep(wait)
		wait = min(2*wait, 50*time.Millisecond)
	}
}
