//go:build linux

package containers_test

import (
	"crypto/x509"
	"net"
	"net/http/httptest"
	"net/netip"
	"testing"

	"github.com/keyless-dev/keyless/internal/emulator"
	"github.com/keyless-dev/keyless/internal/emulator/emulatortest"
	"github.com/keyless-dev/keyless/internal/pki"
)

// linkLocalEmulator is the emulator (Roles Anywhere and STS) of the
// reference deployment, with a profile that accepts role session names,
// serving on loopback (URL: the agent's Roles Anywhere endpoint, which
// keyless reaches over plain http only on loopback) and on 169.254.170.2
// (STSURL: so containers reach its STS), each on a port of its own.
type linkLocalEmulator struct {
	URL, STSURL                         string
	TrustAnchorARN, ProfileARN, RoleARN string
}

// startEmulatorOn serves STS for containers on stsAddr, an address of
// this host that they reach (169.254.170.2 needs claimHostNet first).
func startEmulatorOn(t *testing.T, stsAddr netip.Addr, bundle ...*x509.Certificate) *linkLocalEmulator {
	t.Helper()
	ref := emulatortest.Reference(pki.EncodeCertificates(bundle...))
	ref.AcceptRoleSessionName = true
	seed, err := emulator.ParseSeed([]byte(ref.Seed()), emulator.SeedSource{Name: "containers.yaml"})
	if err != nil {
		t.Fatal(err)
	}
	emu, err := emulator.New(emulator.Config{Seed: seed})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(emu)
	t.Cleanup(srv.Close)
	ln, err := net.Listen("tcp", net.JoinHostPort(stsAddr.String(), "0"))
	if err != nil {
		t.Fatal(err)
	}
	sts := httptest.NewUnstartedServer(emu)
	sts.Listener.Close()
	sts.Listener = ln
	sts.Start()
	t.Cleanup(sts.Close)
	out := seed.Outputs(srv.URL)
	return &linkLocalEmulator{URL: srv.URL, STSURL: sts.URL, TrustAnchorARN: out.TrustAnchors[emulatortest.TrustAnchor],
		ProfileARN: out.Profiles[emulatortest.Profile], RoleARN: out.Roles[emulatortest.Role]}
}
