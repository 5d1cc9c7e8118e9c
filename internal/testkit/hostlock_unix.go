//go:build unix

package testkit

import (
	"os"
	"syscall"
	"testing"
)

// HostNetworkLock is the machine-wide lock file of every test that adds
// or depends on this host's link-local addresses or Docker networks
// (internal/hostnet, internal/cli, interop/containers): go test runs
// packages, and scripts/test runs modules, side by side.
const HostNetworkLock = "/tmp/keyless-hostnet.lock"

// LockHostNetwork takes HostNetworkLock until t ends. Cleanups run last
// first, so it is released after the ones the caller adds later.
func LockHostNetwork(t testing.TB) {
	t.Helper()
	f, err := os.OpenFile(HostNetworkLock, os.O_RDWR|os.O_CREATE, 0o666)
	if err != nil {
		t.Fatalf("opening the host-network lock: %v", err)
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		t.Fatalf("locking %s: %v", HostNetworkLock, err)
	}
	t.Cleanup(func() { f.Close() }) // closing releases the lock
}
