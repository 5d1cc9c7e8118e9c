//go:build !linux

package hostnet

import (
	"fmt"
	"net/netip"
	"runtime"
)

// AddAddresses is Linux only: on macOS, Docker Desktop's containers do
// not reach the host's link-local addresses anyway (docs/agent.md).
func AddAddresses(addrs []netip.Addr) (string, error) {
	if err := check(addrs); err != nil {
		return "", err
	}
	return "", fmt.Errorf("adding the addresses %v is supported on Linux only, not %s", addrs, runtime.GOOS)
}

// listLinks is Linux only: elsewhere no interface counts as a container
// bridge.
func listLinks() ([]link, error) {
	return nil, fmt.Errorf("listing interfaces is supported on Linux only, not %s", runtime.GOOS)
}
