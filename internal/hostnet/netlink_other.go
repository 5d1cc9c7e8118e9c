//go:build !linux

package hostnet

import (
	"errors"
	"net/netip"
)

// AddAddresses is Linux only: on macOS, Docker Desktop's containers do
// not reach the host's link-local addresses anyway (docs/agent.md).
func AddAddresses(addrs []netip.Addr) (string, error) {
	return "", errors.New("adding link-local addresses is supported on Linux only")
}
