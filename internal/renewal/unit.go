package renewal

import (
	"fmt"
	"net/netip"
	"net/url"
	"path/filepath"

	"github.com/keyless-dev/keyless/internal/svcunit"
)

// DefaultUser runs the systemd service when Unit.User is empty: a
// dedicated system user, because renewing needs no privilege beyond
// writing the certificate's directory. launchd services run as root
// unless a user is given, because macOS has no useradd to make one with.
const DefaultUser = "keyless"

// Unit describes the service that runs keyless renew --daemon.
type Unit struct {
	// Executable is keyless's path.
	Executable        string
	CertPath, KeyPath string
	// CAURL and RootFile are written into the unit: the service may run
	// without the bootstrapping user's home directory.
	CAURL, RootFile string
	// Exec is the --exec command, if any.
	Exec string
	// Log are the daemon's logging flags (such as --log-format json),
	// if any; without them it logs text, with timestamps, since a
	// service's standard error is not a terminal.
	Log []string
	// User runs the service; empty means DefaultUser for systemd and
	// root for launchd.
	User string
}

// Service describes the renewal daemon for a service manager, in
// format f (which decides the default user). Paths are made absolute.
//
// The daemon writes only the certificate's directory: the new
// certificate, its temporary file, the .pending file and the lock all go
// next to it (identity.WritePair), and the key is only read. When the CA
// URL names an IP address, that address is the only one the daemon may
// talk to.
func (u Unit) Service(f svcunit.Format) (svcunit.Service, error) {
	crt, key, root := absPath(u.CertPath), absPath(u.KeyPath), absPath(u.RootFile)
	user := u.User
	if user == "" && f == svcunit.Systemd {
		user = DefaultUser
	}
	if user != "" && user != "root" {
		// root's home is closed to other users (mode 0700 on the common
		// distributions): a unit reading from it could never start.
		for _, p := range []string{u.Executable, crt, key, root} {
			if rel, err := filepath.Rel("/root", p); err == nil && filepath.IsLocal(rel) {
				return svcunit.Service{}, fmt.Errorf("%s is in root's home directory, which user %s cannot read; move it to a directory of its own, such as /etc/keyless, or run the service as root", p, user)
			}
		}
	}
	args := []string{u.Executable, "renew", crt, key, "--daemon", "--ca-url", u.CAURL, "--root", root}
	if u.Exec != "" {
		args = append(args, "--exec", u.Exec)
	}
	args = append(args, u.Log...)
	s := svcunit.Service{
		Name:        "keyless-renew",
		Label:       "dev.keyless.renew",
		Description: fmt.Sprintf("keyless: renew %s before it expires", crt),
		Command:     args,
		User:        user,
		WritePaths:  []string{filepath.Dir(crt)},
		ReadPaths:   []string{crt, key, root},
		Notify:      true,
		ReloadOnHUP: true,
		LogFile:     "/var/log/keyless-renew.log",
	}
	if ca, err := url.Parse(u.CAURL); err == nil {
		if ip, err := netip.ParseAddr(ca.Hostname()); err == nil {
			ip = ip.Unmap().WithZone("")
			s.IPAddressAllow = []netip.Prefix{netip.PrefixFrom(ip, ip.BitLen())}
		}
	}
	return s, nil
}

func absPath(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return filepath.Clean(p)
}
