package release

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/goreleaser/nfpm/v2"
	"github.com/goreleaser/nfpm/v2/deb"
	"github.com/goreleaser/nfpm/v2/files"
	"github.com/goreleaser/nfpm/v2/rpm"

	"github.com/keyless-dev/keyless/internal/deploygen"
	"github.com/keyless-dev/keyless/internal/svcunit"
)

// Package metadata.
const (
	// Maintainer is a placeholder until the project names a contact.
	Maintainer = "keyless maintainers <maintainers@keyless.invalid>"
	Homepage   = "https://github.com/keyless-dev/keyless"
	// License is SPDX's NOASSERTION: the repository has no LICENSE file
	// yet, and a package must not claim one it does not have.
	License = "NOASSERTION"
)

// PackageArch is how Debian and RPM name a Linux target's architecture.
type PackageArch struct {
	Target   Target
	Deb, RPM string
}

// PackageArchs are the Linux targets BuildPackages packages.
var PackageArchs = []PackageArch{
	{Target{GOOS: "linux", GOARCH: "amd64"}, "amd64", "x86_64"},
	{Target{GOOS: "linux", GOARCH: "arm64"}, "arm64", "aarch64"},
	{Target{GOOS: "linux", GOARCH: "arm", GOARM: "7"}, "armhf", "armv7hl"},
}

// Installed paths.
const (
	BinPath      = "/usr/bin/keyless"
	ManDir       = "/usr/share/man/man1"
	BashPath     = "/usr/share/bash-completion/completions/keyless"
	ZshPath      = "/usr/share/zsh/vendor-completions/_keyless"
	FishPath     = "/usr/share/fish/vendor_completions.d/keyless.fish"
	UnitDir      = "/usr/lib/systemd/system"
	SysusersPath = "/usr/lib/sysusers.d/keyless.conf"
)

// DebName and RPMName are the packages' file names in dist/.
func DebName(p Plan, a PackageArch) string {
	return "keyless_" + strings.TrimPrefix(p.Version, "v") + "_" + a.Deb + ".deb"
}

// RPMName: see DebName.
func RPMName(p Plan, a PackageArch) string {
	return "keyless-" + strings.TrimPrefix(p.Version, "v") + "-1." + a.RPM + ".rpm"
}

// description is the packages' description: a synopsis line, then what
// the package does to the system, including what removing and purging
// it leave behind.
const description = `Short-lived AWS credentials from X.509 certificates
keyless gives CI runners and other machines outside AWS short-lived AWS
credentials through IAM Roles Anywhere: a certificate from your private CA
is exchanged for temporary STS credentials, and no long-lived AWS key is
stored. It includes the CA, certificate renewal and a per-job credentials
agent for CI runners.

The package installs /usr/bin/keyless, its man pages, bash, zsh and fish
completion, and hardened systemd units for the CA (keyless-ca.service),
the agent (keyless-agent.service) and renewal (keyless-renew.service),
none of them enabled. It creates the system users keyless (agent and
renewal) and keyless-ca (the CA, kept apart so that a compromised agent
cannot read the CA's keys), and the directories /etc/keyless (0755),
/var/lib/keyless and /var/lib/keyless-ca (0700, each owned by its user).

Removing the package stops and disables the units and leaves those
directories. Purging it (dpkg --purge) removes each of them only if it is
empty, and never one that is a symlink; it keeps one that holds anything
(the CA's keys and database, the runner's key, configuration and
secrets), prints "keyless: purge kept <directory> (...)" for each one it
keeps, and leaves deleting it to you, once you have a backup. The users
stay, as Debian's policy asks (files elsewhere may still belong to
them). An RPM erase (rpm -e) leaves the directories and the users.

The install stops, changing nothing, if an account named keyless or
keyless-ca exists that is not a system account (uid 0, or outside
SYS_UID_MIN..SYS_UID_MAX of /etc/login.defs, 100..999 by default; the
same for the groups with SYS_GID_MIN..SYS_GID_MAX), or if one of the
three directories exists but is not a directory (a dangling symlink, a
file). A directory that already exists, or a symlink to one, is used as
it is: the package never changes its owner or mode.`

// sysusers is the systemd-sysusers configuration for the users the
// units run as.
const sysusers = `# keyless's system users (installed by the keyless package).
u keyless - "keyless agent and renewal" /var/lib/keyless
u keyless-ca - "keyless CA" /var/lib/keyless-ca
`

// units lists the packaged units, for the maintainer scripts.
const units = "keyless-agent.service keyless-ca.service keyless-renew.service"

// The maintainer scripts serve both formats: dpkg passes install,
// configure, remove, purge, upgrade...; rpm passes the number of
// installed instances left (0 on erase, 1 or 2 on upgrade).

// preflight is the check preinst and postinst share: it stops the
// install, before anything is made, rather than give the key
// directories to an account that is not a system account (a person's
// login named keyless, say), or write through what is at a directory's
// path but is not a directory.
const preflight = `
login_def() { # key default: a number from /etc/login.defs (plain sh: rpm's
	# %pre may run before awk or sed is installed)
	v=
	if [ -r /etc/login.defs ]; then
		while read -r key val _; do
			if [ "$key" = "$1" ]; then v=$val; fi
		done </etc/login.defs
	fi
	case "$v" in '' | *[!0-9]*) v=$2 ;; esac
	echo "$v"
}
check_account() { # passwd|group name
	entry=$(getent "$1" "$2") || return 0
	num=${entry#*:*:}
	num=${num%%:*}
	if [ "$1" = passwd ]; then
		kind=user what=uid min=$(login_def SYS_UID_MIN 100) max=$(login_def SYS_UID_MAX 999)
		fix="Rename the account (usermod -l NEWNAME $2, and groupmod -n NEWNAME $2 for its group) or delete it (userdel $2)"
	else
		kind=group what=gid min=$(login_def SYS_GID_MIN 100) max=$(login_def SYS_GID_MAX 999)
		fix="Rename the group (groupmod -n NEWNAME $2) or delete it (groupdel $2)"
	fi
	why="not a system $kind (system ${what}s are $min-$max, from /etc/login.defs)"
	[ "$num" -ne 0 ] || why="root's"
	if [ "$num" -eq 0 ] || [ "$num" -lt "$min" ] || [ "$num" -gt "$max" ]; then
		echo "keyless: the $kind $2 exists with $what $num, which is $why; keyless will not give its directories to it, and made no user or directory. $fix, then install the package again." >&2
		exit 1
	fi
}
check_dir() { # path
	if { [ -L "$1" ] || [ -e "$1" ]; } && [ ! -d "$1" ]; then
		if [ -L "$1" ] && [ ! -e "$1" ]; then
			is="is a dangling symlink (to $(readlink "$1"), which does not exist)"
		elif [ -L "$1" ]; then
			is="is a symlink to $(readlink "$1"), which is not a directory"
		else
			is="exists and is not a directory"
		fi
		echo "keyless: $1 $is; keyless will not write through it, and made no user or directory. Remove it (or make it a directory, or a symlink to one), then install the package again." >&2
		exit 1
	fi
}
for u in keyless keyless-ca; do
	check_account passwd "$u"
	check_account group "$u"
done
for d in /etc/keyless /var/lib/keyless /var/lib/keyless-ca; do
	check_dir "$d"
done
`

const preinst = `#!/bin/sh
# keyless preinst: stop before unpacking if the users or directories
# cannot be the package's.
set -e
` + preflight + `exit 0
`

const postinst = `#!/bin/sh
# keyless postinst: the system users and directories the units run with.
set -e
# Again (preinst checked): dpkg --unpack and --configure may be apart.
` + preflight + `
nologin=/usr/sbin/nologin
[ -x "$nologin" ] || nologin=/sbin/nologin

add_user() { # name home comment
	getent passwd "$1" >/dev/null && return 0
	if [ -e /etc/debian_version ] && command -v adduser >/dev/null 2>&1; then
		adduser --system --group --quiet --no-create-home --home "$2" --shell "$nologin" --gecos "$3" "$1"
	else
		getent group "$1" >/dev/null || groupadd --system "$1"
		useradd --system --gid "$1" --no-create-home --home-dir "$2" --shell "$nologin" --comment "$3" "$1"
	fi
}

if command -v systemd-sysusers >/dev/null 2>&1; then
	systemd-sysusers ` + SysusersPath + `
else
	add_user keyless /var/lib/keyless "keyless agent and renewal"
	add_user keyless-ca /var/lib/keyless-ca "keyless CA"
fi

# Made once and left alone afterwards: an operator may have changed them,
# or made them (or symlinks to directories) before installing.
[ -d /etc/keyless ] || install -d -m 0755 -o root -g root /etc/keyless
[ -d /var/lib/keyless ] || install -d -m 0700 -o keyless -g keyless /var/lib/keyless
[ -d /var/lib/keyless-ca ] || install -d -m 0700 -o keyless-ca -g keyless-ca /var/lib/keyless-ca

# Only when systemd runs (not in a chroot or a container build).
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload || true
	# dpkg: configure <old version> is an upgrade; restart what runs.
	if [ "$1" = configure ] && [ -n "$2" ]; then
		systemctl try-restart ` + units + ` || true
	fi
fi
exit 0
`

const prerm = `#!/bin/sh
# keyless prerm: stop and disable the units before their files go.
set -e
case "$1" in
remove|0)
	if [ -d /run/systemd/system ]; then
		systemctl stop ` + units + ` || true
	fi
	if command -v systemctl >/dev/null 2>&1; then
		systemctl --no-reload disable ` + units + ` >/dev/null 2>&1 || true
	fi
	;;
esac
exit 0
`

const postrm = `#!/bin/sh
# keyless postrm. Purge removes the directories the package made only
# if they are empty: what is in them (the CA's keys, the runner's key,
# configuration) may be the only copy, and may predate the package. It
# keeps the users (Debian policy: files elsewhere may belong to them).
set -e
purge_dir() { # path what-it-holds
	if [ -L "$1" ]; then
		echo "keyless: purge kept $1 (a symlink, to $(readlink "$1"): left alone, with what it points to; delete them yourself once you have a backup)" >&2
	elif [ -d "$1" ]; then
		if [ -n "$(ls -A "$1" 2>/dev/null || echo unreadable)" ]; then
			echo "keyless: purge kept $1 (not empty: $2; delete it yourself once you have a backup)" >&2
		elif ! rmdir "$1" 2>/dev/null; then
			echo "keyless: purge kept $1 (empty, but rmdir failed; delete it yourself)" >&2
		fi
	fi
}
case "$1" in
purge)
	purge_dir /var/lib/keyless "the runner's key and certificate"
	purge_dir /var/lib/keyless-ca "the CA's keys and database"
	purge_dir /etc/keyless "configuration and secrets, such as the CA's password file"
	;;
esac
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload || true
	# rpm: an upgrade leaves 1 instance; restart what runs.
	if [ "$1" = 1 ]; then
		systemctl try-restart ` + units + ` || true
	fi
fi
exit 0
`

// manPage is the man page of each unit's command.
var manPage = map[string]string{"keyless-agent": "keyless-agent", "keyless-ca": "keyless-ca-serve", "keyless-renew": "keyless-renew"}

// Units renders the packaged systemd units, by file name: the same
// descriptions as deploy/systemd (internal/deploygen), run from
// /usr/bin/keyless, with a header saying they come from the package.
func Units() (map[string]string, error) {
	services, err := deploygen.Services(svcunit.Systemd, BinPath, deploygen.LinuxUser, deploygen.LinuxCAUser)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, s := range services {
		text, err := svcunit.Render(svcunit.Systemd, s)
		if err != nil {
			return nil, fmt.Errorf("unit %s: %w", s.Name, err)
		}
		// svcunit's header says how to install a printed unit; this
		// one is installed.
		i := strings.Index(text, "[Unit]\n")
		if i < 0 {
			return nil, fmt.Errorf("unit %s: no [Unit] section", s.Name)
		}
		body := text[i:]
		name := s.Name + ".service"
		out[name] = "# " + name + ", installed by the keyless package and not enabled.\n" +
			"# Configure it (man " + manPage[s.Name] + "), then: systemctl enable --now " + s.Name + "\n" +
			"# Change it with a drop-in (systemctl edit " + s.Name + "): an upgrade\n" +
			"# replaces this file.\n" + body
	}
	return out, nil
}

// BuildPackages writes a .deb and an .rpm for each Linux target of
// PackageArchs that p builds (all of them, unless --only-targets left
// some out) into p.Dist, from the binaries in bins (by target) and
// the man pages and completions GenerateDocs wrote to docs, and returns
// their paths. Every file in them is dated p.Epoch, so the same inputs
// give the same bytes.
func BuildPackages(ctx context.Context, p Plan, bins map[Target]string, docs string) ([]string, error) {
	stage, err := os.MkdirTemp("", "keyless-packages-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(stage)

	contents, err := packageContents(p, docs, stage)
	if err != nil {
		return nil, err
	}
	scripts := nfpm.Scripts{}
	for _, s := range []struct {
		name, text string
		field      *string
	}{
		{"preinst", preinst, &scripts.PreInstall}, {"postinst", postinst, &scripts.PostInstall},
		{"prerm", prerm, &scripts.PreRemove}, {"postrm", postrm, &scripts.PostRemove},
	} {
		path := filepath.Join(stage, s.name)
		if err := os.WriteFile(path, []byte(s.text), 0o755); err != nil {
			return nil, err
		}
		*s.field = path
	}
	if err := os.MkdirAll(p.Dist, 0o755); err != nil {
		return nil, err
	}

	type job struct {
		packager nfpm.Packager
		path     string
		arch     string
		bin      string
	}
	var jobs []job
	for _, a := range PackageArchs {
		if !slices.Contains(p.Platforms(), a.Target) {
			continue // --only-targets left it out
		}
		bin, ok := bins[a.Target]
		if !ok {
			return nil, fmt.Errorf("packages: no binary for %s", a.Target)
		}
		jobs = append(jobs,
			job{deb.Default, filepath.Join(p.Dist, DebName(p, a)), a.Deb, bin},
			job{rpm.DefaultRPM, filepath.Join(p.Dist, RPMName(p, a)), a.RPM, bin})
	}
	// At once: compressing the binary is most of the time.
	errs := make([]error, len(jobs))
	var wg sync.WaitGroup
	for i, j := range jobs {
		wg.Go(func() {
			if err := ctx.Err(); err != nil {
				errs[i] = err
				return
			}
			// The packagers fill in the contents they are given: each
			// gets its own copy.
			// (Not append(contents, ...): the jobs would share, and
			// race on, its spare capacity.)
			own := files.Contents{dated(p, &files.Content{Source: j.bin, Destination: BinPath}, 0o755)}
			for _, c := range contents {
				cc, fi := *c, *c.FileInfo
				cc.FileInfo = &fi
				own = append(own, &cc)
			}
			info := packageInfo(p, j.path, j.arch, own, scripts)
			if err := writePackage(j.packager, info, j.path); err != nil {
				errs[i] = fmt.Errorf("packages: %s: %w", filepath.Base(j.path), err)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	var out []string
	for _, j := range jobs {
		out = append(out, j.path)
	}
	slices.Sort(out)
	return out, nil
}

// packageContents lists every file but the binary, writing the units and
// the sysusers file into stage.
func packageContents(p Plan, docs, stage string) (files.Contents, error) {
	var c files.Contents
	pages, err := filepath.Glob(filepath.Join(docs, "man", "man1", "*.1.gz"))
	if err != nil {
		return nil, err
	}
	if len(pages) == 0 {
		return nil, fmt.Errorf("packages: no man pages in %s (run GenerateDocs first)", filepath.Join(docs, "man", "man1"))
	}
	slices.Sort(pages)
	for _, page := range pages {
		c = append(c, dated(p, &files.Content{Source: page, Destination: ManDir + "/" + filepath.Base(page)}, 0o644))
	}
	for src, dst := range map[string]string{BashCompletion: BashPath, ZshCompletion: ZshPath, FishCompletion: FishPath} {
		path := filepath.Join(docs, "completions", src)
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("packages: %w (run GenerateDocs first)", err)
		}
		c = append(c, dated(p, &files.Content{Source: path, Destination: dst}, 0o644))
	}
	unitFiles, err := Units()
	if err != nil {
		return nil, err
	}
	generated := map[string]string{"keyless.conf": sysusers}
	for name, text := range unitFiles {
		generated[name] = text
	}
	for name, text := range generated {
		path := filepath.Join(stage, name)
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			return nil, err
		}
		dst := UnitDir + "/" + name
		if name == "keyless.conf" {
			dst = SysusersPath
		}
		c = append(c, dated(p, &files.Content{Source: path, Destination: dst}, 0o644))
	}
	slices.SortFunc(c, func(a, b *files.Content) int { return strings.Compare(a.Destination, b.Destination) })
	return c, nil
}

// dated gives c its mode, root ownership and p.Epoch as its time.
func dated(p Plan, c *files.Content, mode os.FileMode) *files.Content {
	c.FileInfo = &files.ContentFileInfo{Owner: "root", Group: "root", Mode: mode, MTime: p.Epoch.UTC()}
	return c
}

func packageInfo(p Plan, name, arch string, contents files.Contents, scripts nfpm.Scripts) *nfpm.Info {
	info := &nfpm.Info{
		Name:        "keyless",
		Arch:        arch,
		Platform:    "linux",
		Version:     p.Version,
		Section:     "admin",
		Priority:    "optional",
		Maintainer:  Maintainer,
		Description: description,
		Vendor:      "keyless",
		Homepage:    Homepage,
		License:     License,
		MTime:       p.Epoch.UTC(),
		Overridables: nfpm.Overridables{
			Contents: contents,
			Umask:    0o022,
			Scripts:  scripts,
			// No Depends: the binary is static.
			RPM: nfpm.RPM{
				Group: "System Environment/Daemons",
				// Not os.Hostname(): the same bytes on every machine.
				BuildHost: "reproducible",
			},
		},
	}
	if strings.HasSuffix(name, ".deb") {
		// The units' ExecReload= runs /bin/kill, which Debian ships in
		// procps (priority important: on most systems, not in minimal
		// images). RPM systems have it in util-linux, always installed.
		info.Recommends = []string{"procps"}
	}
	// No Release: the .deb's version is the release's; the rpm
	// packager makes it 1 (keyless-<ver>-1.<arch>.rpm).
	return nfpm.WithDefaults(info)
}

// writePackage writes the package atomically enough for a build
// directory: a failed write leaves no file.
func writePackage(pkg nfpm.Packager, info *nfpm.Info, path string) (err error) {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			err = errors.Join(err, os.Remove(path))
		}
	}()
	return pkg.Package(info, f)
}
