package agent

import (
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"

	"github.com/keyless-dev/keyless/internal/renewal"
	"github.com/keyless-dev/keyless/internal/svcunit"
)

// DefaultUser runs the agent's systemd service when Unit.User is empty:
// the dedicated user that owns the runner's key (docs/agent.md, the
// threat model), the same one keyless renew's unit runs as. launchd
// services run as root unless a user is given, as renew's do.
const DefaultUser = renewal.DefaultUser

// Unit describes the service that runs keyless agent --config.
type Unit struct {
	// Executable is keyless's path.
	Executable string
	// ConfigFile is agent.yaml's path, absolute; Config is what it says,
	// which decides what the service may do.
	ConfigFile string
	Config     *Config
	// Log are the daemon's logging flags (such as --log-format json), if
	// any.
	Log []string
	// User runs the service; empty means DefaultUser for systemd and
	// root for launchd.
	User string
}

// ErrLinkLocalOnLaunchd is a configuration with link-local listeners
// described for launchd: macOS does not route a container's
// 169.254.170.2 to the host (Docker Desktop runs containers in a VM), so
// there the agent listens on loopback for the relay instead.
var ErrLinkLocalOnLaunchd = errors.New("on macOS the agent cannot serve containers on 169.254.170.2 (Docker Desktop's containers do not reach the host's link-local addresses): listen on loopback, such as 127.0.0.1:9911, and run the relay in Docker Desktop's network")

// Service describes the agent for a service manager, in format f.
//
// The agent reads its configuration, the certificate, the key and the
// CA's root; it writes the certificate's and the key's directories (when
// it enrolls and renews), and the unix socket's directory (systemd makes
// /run/NAME for it when the socket is there). On systemd, link-local
// listeners come with a pre-start step, keyless agent setup-network, run
// as root outside the sandbox, so that the daemon never holds
// CAP_NET_ADMIN; and a listener on a port below 1024 (169.254.170.2:80)
// with CAP_NET_BIND_SERVICE, the only capability the daemon keeps.
func (u Unit) Service(f svcunit.Format) (svcunit.Service, error) {
	cfg := u.Config
	if cfg == nil {
		return svcunit.Service{}, errors.New("the agent's unit needs its configuration")
	}
	conf := absPath(u.ConfigFile)
	user := u.User
	if user == "" && f == svcunit.Systemd {
		user = DefaultUser
	}
	id := cfg.Identity
	var reads []string
	for _, p := range []string{conf, id.Certificate, id.Key, id.Intermediates, id.Root, id.TokenFile, cfg.AWS.CABundle} {
		if p != "" && !slices.Contains(reads, absPath(p)) {
			reads = append(reads, absPath(p))
		}
	}
	var writes []string
	for _, p := range []string{id.Certificate, id.Key} {
		if d := filepath.Dir(absPath(p)); !slices.Contains(writes, d) {
			writes = append(writes, d)
		}
	}
	if user != "" && user != "root" {
		if err := outsideRootHome(user, append([]string{u.Executable}, append(reads, writes...)...)); err != nil {
			return svcunit.Service{}, err
		}
	}
	s := svcunit.Service{
		Name:        "keyless-agent",
		Label:       "dev.keyless.agent",
		Description: "keyless agent: AWS credentials for each CI job, from " + conf,
		Command:     append([]string{u.Executable, "agent", "--config", conf}, u.Log...),
		User:        user,
		ReadPaths:   reads,
		Notify:      true,
		LogFile:     "/var/log/keyless-agent.log",
	}
	linkLocal := cfg.LinkLocal()
	if f != svcunit.Systemd {
		if len(linkLocal) > 0 {
			return svcunit.Service{}, fmt.Errorf("%s: listen.containerCredentials %v: %w", cfg.File, linkLocal, ErrLinkLocalOnLaunchd)
		}
		// launchd makes no directories: the socket's must exist, and
		// the service's user must be in the socket's group.
		s.WritePaths = writes
		return s, nil
	}
	if len(linkLocal) > 0 {
		// The addresses, not the file: this step runs as root, and
		// must not read a file the agent's user may be able to write.
		s.PreStart = []string{u.Executable, "agent", "setup-network"}
		for _, a := range linkLocal {
			s.PreStart = append(s.PreStart, a.String())
		}
		// The bridges a caller may come from, and whether the
		// addresses are there, are read over netlink.
		s.ReadsInterfaces = true
	}
	ports := slices.Clone(cfg.Listen.ContainerCredentials)
	if cfg.Listen.Metrics != "" {
		ports = append(ports, cfg.Listen.Metrics)
	}
	for _, l := range ports {
		if ap, err := netip.ParseAddrPort(l); err == nil && ap.Port() != 0 && ap.Port() < 1024 {
			s.Capabilities = []string{"CAP_NET_BIND_SERVICE"}
		}
	}
	if sc := cfg.Listen.Socket; sc != nil {
		dir := filepath.Dir(absPath(sc.Path))
		if name, ok := strings.CutPrefix(dir, "/run/"); ok && !strings.Contains(name, "/") {
			s.RuntimeDirectory = name
		} else if !slices.Contains(writes, dir) {
			writes = append(writes, dir)
		}
		if sc.Group != "" {
			s.Groups = []string{sc.Group}
		}
	}
	s.WritePaths = writes
	return s, nil
}

// outsideRootHome refuses paths in root's home for a service of another
// user: root's home is closed to others (0700 on the common
// distributions), so the service could never start.
func outsideRootHome(user string, paths []string) error {
	for _, p := range paths {
		if rel, err := filepath.Rel("/root", p); err == nil && filepath.IsLocal(rel) {
			return fmt.Errorf("%s is in root's home directory, which user %s cannot read; move it to a directory of its own, such as /etc/keyless or /var/lib/keyless, or run the service as root", p, user)
		}
	}
	return nil
}

func absPath(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return filepath.Clean(p)
}
