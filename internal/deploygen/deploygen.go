// Package deploygen writes the service definitions committed under
// deploy/: systemd units and launchd property lists for the agent, the
// CA and renewal, from the same descriptions `keyless agent`, `keyless
// ca serve` and `keyless renew` print with --print-unit, for the default
// layout below. Its test fails when the committed files differ from what
// it writes, so they never drift; `go generate ./internal/deploygen`
// writes them again.
//
// The layout, the same on Linux and macOS:
//
//	/usr/local/bin/keyless          the binary (CGO_ENABLED=0 go build -o /usr/local/bin/keyless ./cmd/keyless)
//	/etc/keyless/agent.yaml         the agent's configuration
//	/etc/keyless/root_ca.crt        the CA's root, for renewal
//	/etc/keyless/ca-password        the CA's password (0600, owned by the CA's user)
//	/var/lib/keyless/runner.{crt,key}  the runner's identity (0700 directory, owned by the agent's user)
//	/var/lib/keyless-ca             the CA directory (0700, owned by the CA's user)
//	/run/keyless/agent.sock         the agent's socket (systemd makes /run/keyless)
//
// /usr/local/bin because keyless is built or downloaded by hand, not
// installed by a distribution's package manager, which owns /usr/bin.
// The agent and renewal run as the dedicated user keyless on Linux and
// _keyless on macOS (its convention for daemons' users); the CA as
// keyless-ca and _keyless-ca, and outside /var/lib/keyless, so that an
// agent or a renewal daemon taken over on a host that also runs the CA
// can neither read the CA's keys nor write its database.
//
// It is a development tool, not part of the keyless binary.
package deploygen

//go:generate go run ./cmd/gen-deploy ../../deploy

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/keyless-dev/keyless/internal/agent"
	"github.com/keyless-dev/keyless/internal/caops"
	"github.com/keyless-dev/keyless/internal/renewal"
	"github.com/keyless-dev/keyless/internal/svcunit"
)

// The default layout.
const (
	Executable  = "/usr/local/bin/keyless"
	AgentConfig = "/etc/keyless/agent.yaml"
	RootFile    = "/etc/keyless/root_ca.crt"
	CAPassword  = "/etc/keyless/ca-password"
	CertPath    = "/var/lib/keyless/runner.crt"
	KeyPath     = "/var/lib/keyless/runner.key"
	CADir       = "/var/lib/keyless-ca"
	CAAddress   = ":9000"
	Socket      = "/run/keyless/agent.sock"
	LinuxUser   = "keyless"
	MacOSUser   = "_keyless"
	LinuxCAUser = "keyless-ca"
	MacOSCAUser = "_keyless-ca"
	// RelayAddress is the agent's loopback listener on macOS, which the
	// Docker Desktop relay forwards to (9911 is keyless serve's port).
	RelayAddress = "127.0.0.1:9912"
)

// CAURL is the CA keyless-renew renews with: a placeholder for the
// operator's CA (a drop-in replaces the command line), a host name in
// the .internal domain set aside for private networks, so the unit
// allows any address rather than one that is wrong.
const CAURL = "https://ca.internal:9000"

// agentConfig is the agent.yaml the units assume: on Linux the
// link-local listeners of the Docker executor and the socket in
// /run/keyless; on macOS a loopback listener, which Docker Desktop's
// relay container reaches through host.docker.internal (macOS cannot
// give containers the host's 169.254.170.2), and no socket (launchd
// makes no /run directory; add one in a directory of your own).
func agentConfig(f svcunit.Format) *agent.Config {
	c := &agent.Config{File: AgentConfig, Identity: agent.IdentityConfig{
		Certificate: CertPath, Key: KeyPath, CAURL: CAURL, Root: RootFile, TokenFile: "/etc/keyless/runner.token", Subject: "gitlab-runner"}}
	if f == svcunit.Systemd {
		c.Listen = agent.ListenConfig{ContainerCredentials: []string{"169.254.170.2:80", "169.254.170.23:80"},
			Socket: &agent.SocketConfig{Path: Socket, Mode: 0o660}}
	} else {
		c.Listen = agent.ListenConfig{ContainerCredentials: []string{RelayAddress}}
	}
	return c
}

// Files returns each file of deploy/, by its path there.
func Files() (map[string]string, error) {
	out := map[string]string{}
	for _, f := range []struct {
		format            svcunit.Format
		dir, user, caUser string
		ext               string
	}{{svcunit.Systemd, "systemd", LinuxUser, LinuxCAUser, ".service"}, {svcunit.Launchd, "launchd", MacOSUser, MacOSCAUser, ".plist"}} {
		services, err := Services(f.format, Executable, f.user, f.caUser)
		if err != nil {
			return nil, err
		}
		for _, s := range services {
			text, err := svcunit.Render(f.format, s)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", s.Name, err)
			}
			name := s.Name + f.ext
			if f.format == svcunit.Launchd {
				name = s.Label + f.ext
			}
			out[filepath.Join(f.dir, name)] = text
		}
	}
	return out, nil
}

// Services describes the agent, the CA and renewal in the default
// layout for format f, run from executable as user (the CA as caUser).
// Packages (interop/release) describe their units with it too, with
// the executable they install.
func Services(f svcunit.Format, executable, user, caUser string) ([]svcunit.Service, error) {
	describe := []func() (svcunit.Service, error){
		func() (svcunit.Service, error) {
			return agent.Unit{Executable: executable, ConfigFile: AgentConfig, Config: agentConfig(f), User: user}.Service(f)
		},
		func() (svcunit.Service, error) {
			return caops.Unit{Executable: executable, Dir: CADir, PasswordFile: CAPassword, Address: CAAddress, User: caUser}.Service(f)
		},
		func() (svcunit.Service, error) {
			return renewal.Unit{Executable: executable, CertPath: CertPath, KeyPath: KeyPath, CAURL: CAURL, RootFile: RootFile, User: user}.Service(f)
		},
	}
	var out []svcunit.Service
	for _, d := range describe {
		s, err := d()
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// Write writes Files below dir, replacing what is there.
func Write(dir string) error {
	files, err := Files()
	if err != nil {
		return err
	}
	for name, text := range files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			return err
		}
	}
	return nil
}
