package caops

import (
	"fmt"
	"net"
	"path/filepath"
	"strconv"

	"github.com/keyless-dev/keyless/internal/ca"
	"github.com/keyless-dev/keyless/internal/svcunit"
)

// DefaultUser runs the CA's systemd service when Unit.User is empty: a
// dedicated system user that owns the CA directory and the password
// file, because serving needs no privilege beyond them. launchd services
// run as root unless a user is given (macOS has no useradd to make one
// with). It is not the agent's and renewal's user (keyless), so that one
// of those taken over on a host that also runs the CA cannot read the
// CA's keys or write its store.
const DefaultUser = "keyless-ca"

// Unit describes the service that runs keyless ca serve.
type Unit struct {
	// Executable is keyless's path.
	Executable string
	// Dir is the CA directory; PasswordFile holds the CA's password.
	Dir, PasswordFile string
	// Address is where the CA listens, from its configuration: a port
	// below 1024 needs CAP_NET_BIND_SERVICE. Empty means a port above.
	Address string
	// DB is the CA database's path (Config.Path(Config.DB)); empty means
	// ca.DatabaseFile in Dir.
	DB string
	// Log are the server's logging flags, if any.
	Log []string
	// User runs the service; empty means DefaultUser for systemd and
	// root for launchd.
	User string
}

// Unit describes the service that serves d, with its address and
// database.
func (d *Dir) Unit(executable, passwordFile string, log []string, user string) Unit {
	return Unit{Executable: executable, Dir: d.Path, PasswordFile: passwordFile, Address: d.Config.Address,
		DB: d.Config.Path(d.Config.DB), Log: log, User: user}
}

// Service describes the CA server for a service manager, in format f.
// Paths are made absolute.
//
// The server writes only the database's directory (the records and
// bbolt's lock); it reads the rest of the CA directory and the password
// file. It reloads its configuration on SIGHUP and tells systemd when it
// is ready. Its only privilege, and only for a port below 1024, is
// CAP_NET_BIND_SERVICE.
func (u Unit) Service(f svcunit.Format) (svcunit.Service, error) {
	dir, pw := absPath(u.Dir), absPath(u.PasswordFile)
	db := u.DB
	if db == "" {
		db = filepath.Join(dir, ca.DatabaseFile)
	}
	db = absPath(db)
	user := u.User
	if user == "" && f == svcunit.Systemd {
		user = DefaultUser
	}
	if user != "" && user != "root" {
		// root's home is closed to other users (0700 on the common
		// distributions): a unit reading from it could never start.
		for _, p := range []string{u.Executable, dir, pw, db} {
			if rel, err := filepath.Rel("/root", p); err == nil && filepath.IsLocal(rel) {
				return svcunit.Service{}, fmt.Errorf("%s is in root's home directory, which user %s cannot read; move it to a directory of its own, such as /var/lib/keyless-ca, or run the service as root", p, user)
			}
		}
	}
	s := svcunit.Service{
		Name:        "keyless-ca",
		Label:       "dev.keyless.ca",
		Description: "keyless ca: the private CA in " + dir,
		Command:     append([]string{u.Executable, "ca", "serve", "--dir", dir, "--password-file", pw}, u.Log...),
		User:        user,
		WritePaths:  []string{filepath.Dir(db)},
		ReadPaths:   []string{dir, pw},
		Notify:      true,
		ReloadOnHUP: true,
		LogFile:     "/var/log/keyless-ca.log",
	}
	if _, port, err := net.SplitHostPort(u.Address); err == nil && f == svcunit.Systemd {
		if n, err := strconv.Atoi(port); err == nil && n > 0 && n < 1024 {
			s.Capabilities = []string{"CAP_NET_BIND_SERVICE"}
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
