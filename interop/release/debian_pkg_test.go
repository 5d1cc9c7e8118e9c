package release

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keyless-dev/keyless/internal/testkit"
)

// debianImage is the Docker image of a minimal Debian the .deb is
// installed in: mmdebstrap's minbase with systemd (systemd-sysusers,
// systemd-analyze and the targets the units name) and adduser, made once
// into the cache directory and imported into Docker (there is no
// registry to pull from).
const (
	debianImage    = "keyless-test-debian:bookworm"
	debianTarball  = "debian-bookworm-relpkg-v2.tar" // v<n>: change it when the package list changes
	debianPackages = "systemd,adduser,procps"
)

func cacheDir() string {
	if d := os.Getenv("KEYLESS_CACHE"); d != "" {
		return d
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".cache", "keyless")
}

// docker returns the docker command, or skips (fails) t without a
// working daemon.
func docker(t *testing.T) string {
	t.Helper()
	bin := testkit.LookPath(t, "docker", "docker.io and start dockerd")
	if out, err := exec.Command(bin, "info", "--format", "{{.ServerVersion}}").CombinedOutput(); err != nil {
		testkit.Unavailable(t, "docker info: %v: %s (start dockerd)", err, strings.TrimSpace(string(out)))
	}
	return bin
}

// debianRoot makes the Debian image if it is missing or older than the
// cached root tarball, making the tarball first if it is missing.
func debianRoot(t *testing.T, dockerBin string) {
	t.Helper()
	dir := cacheDir()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// One maker at a time: other tests and helpers share the cache.
	lock, err := os.OpenFile(filepath.Join(dir, debianTarball+".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)

	tarball := filepath.Join(dir, debianTarball)
	st, err := os.Stat(tarball)
	if errors.Is(err, fs.ErrNotExist) {
		mm := testkit.LookPath(t, "mmdebstrap", "mmdebstrap (Debian: apt-get install mmdebstrap)")
		tmp := tarball + ".tmp"
		start := time.Now()
		cmd := exec.Command(mm, "--variant=minbase", "--include="+debianPackages, "--format=tar", "--quiet",
			"bookworm", tmp, "http://deb.debian.org/debian")
		if out, err := cmd.CombinedOutput(); err != nil {
			os.Remove(tmp)
			testkit.Unavailable(t, "mmdebstrap could not make a Debian root (deb.debian.org unreachable?): %v\n%s", err, out)
		}
		if err := os.Rename(tmp, tarball); err != nil {
			t.Fatal(err)
		}
		t.Logf("made the Debian root %s with mmdebstrap in %v (once: later runs reuse it)", tarball, time.Since(start).Round(time.Second))
		st, err = os.Stat(tarball)
	}
	if err != nil {
		t.Fatal(err)
	}
	label := fmt.Sprintf("%s-%d-%d", debianTarball, st.Size(), st.ModTime().Unix())
	out, err := exec.Command(dockerBin, "image", "inspect", "--format", `{{index .Config.Labels "dev.keyless.root"}}`, debianImage).Output()
	if err == nil && strings.TrimSpace(string(out)) == label {
		return
	}
	run(t, dockerBin, "import", "--change", "LABEL dev.keyless.root="+label, "--change", `CMD ["/bin/sh"]`, tarball, debianImage)
}

// container is a running Debian container with the packages in /pkgs.
type container struct {
	t      *testing.T
	docker string
	id     string
}

func startDebian(t *testing.T, dockerBin, pkgs string) *container {
	t.Helper()
	id := strings.TrimSpace(run(t, dockerBin, "run", "-d", "--rm", "--network", "none",
		"-v", pkgs+":/pkgs:ro", debianImage, "sleep", "infinity"))
	t.Cleanup(func() { exec.Command(dockerBin, "rm", "-f", id).Run() })
	return &container{t: t, docker: dockerBin, id: id}
}

// sh runs script in the container and returns its output; a failure
// fails the test.
func (c *container) sh(script string) string {
	c.t.Helper()
	out, err := exec.Command(c.docker, "exec", "-e", "SYSTEMD_COLORS=0", "-e", "SYSTEMD_PAGER=", c.id, "sh", "-ec", script).CombinedOutput()
	if err != nil {
		c.t.Fatalf("in the container: %s: %v\n%s", script, err, out)
	}
	return string(out)
}

// shFails runs script in the container, expects it to fail, and
// returns its output.
func (c *container) shFails(script string) string {
	c.t.Helper()
	out, err := exec.Command(c.docker, "exec", c.id, "sh", "-ec", script).CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		c.t.Fatalf("in the container: %s: %v, want it to fail:\n%s", script, err, out)
	}
	return string(out)
}

// script runs the shell text body in the container with sh -s and
// args, as rpm runs a scriptlet, and returns its output and error.
func (c *container) script(body string, args ...string) (string, error) {
	cmd := exec.Command(c.docker, append([]string{"exec", "-i", c.id, "sh", "-s", "--"}, args...)...)
	cmd.Stdin = strings.NewReader(body)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// fakeSystemd makes the maintainer scripts see a running systemd
// (/run/systemd/system) and replaces systemctl by one that logs its
// arguments to /tmp/systemctl.log; takeSystemctlLog prints and empties
// the log.
const (
	fakeSystemd = `mkdir -p /run/systemd/system
mv /usr/bin/systemctl /usr/bin/systemctl.real
printf '#!/bin/sh\necho "$*" >>/tmp/systemctl.log\n' >/usr/bin/systemctl
chmod 0755 /usr/bin/systemctl
: >/tmp/systemctl.log`
	takeSystemctlLog = `cat /tmp/systemctl.log; : >/tmp/systemctl.log`
)

// stateScript prints what an install must leave alone: the package's
// directories (and, for a symlink, where it points), the users and the
// groups.
const stateScript = `for d in /etc/keyless /var/lib/keyless /var/lib/keyless-ca; do
	if [ -L "$d" ]; then echo "$d -> $(readlink "$d")"; d=$(readlink -f "$d"); fi
	stat -c '%n %a %U:%G' "$d"
done
getent passwd keyless keyless-ca
getent group keyless keyless-ca`

// snapshotScript lists every file of the root (type, mode, owner, size
// but for directories, path) and every regular file's checksum, but the kernel's, Docker's and
// the mounted packages.
const snapshotScript = `prune='( -path /proc -o -path /sys -o -path /dev -o -path /run -o -path /tmp -o -path /pkgs -o -path /etc/hostname -o -path /etc/hosts -o -path /etc/resolv.conf )'
{ find / -xdev $prune -prune -o ! -type d -printf '%y %m %u:%g %s %p\n'
  # A directory's size is the file system's business (overlayfs copies a
  # changed one up at another size).
  find / -xdev $prune -prune -o -type d -printf '%y %m %u:%g %p\n'; } | LC_ALL=C sort -k4
find / -xdev $prune -prune -o -type f -print0 | xargs -0 md5sum | LC_ALL=C sort -k2`

// leftoverExceptions are paths the comparison before install and after
// purge ignores, with why.
var leftoverExceptions = []struct{ prefix, why string }{
	// The users stay (Debian policy); userLines checks these files
	// differ only by the users' lines. The prefix takes the shadow
	// tools' backups (/etc/passwd- ...) too.
	{"/etc/passwd", "the keyless users stay after purge (Debian policy)"},
	{"/etc/group", "the keyless users' groups stay after purge"},
	{"/etc/shadow", "the keyless users stay after purge"},
	{"/etc/gshadow", "the keyless users' groups stay after purge"},
	{"/var/lib/dpkg/status", "dpkg's package database and its backup (status-old)"},
	{"/var/log/dpkg.log", "dpkg's log"},
}

func exception(path string) bool {
	for _, e := range leftoverExceptions {
		if strings.HasPrefix(path, e.prefix) {
			return true
		}
	}
	return false
}

// snapshotDiff returns the lines of two snapshots that differ, but for
// the exceptions' paths, and the exceptions' paths that differ.
func snapshotDiff(before, after string) (diff, excepted []string) {
	set := func(s string) map[string]bool {
		m := map[string]bool{}
		for _, line := range strings.Split(s, "\n") {
			if strings.TrimSpace(line) != "" {
				m[line] = true
			}
		}
		return m
	}
	b, a := set(before), set(after)
	add := func(sign, line string) {
		fields := strings.Fields(line)
		if path := fields[len(fields)-1]; exception(path) {
			if !slices.Contains(excepted, path) {
				excepted = append(excepted, path)
			}
			return
		}
		diff = append(diff, sign+" "+line)
	}
	for line := range b {
		if !a[line] {
			add("-", line)
		}
	}
	for line := range a {
		if !b[line] {
			add("+", line)
		}
	}
	slices.Sort(diff)
	slices.Sort(excepted)
	return diff, excepted
}

// userLines returns the account files without the keyless users' lines.
const userLines = `for f in /etc/passwd /etc/group /etc/shadow /etc/gshadow; do echo "== $f"; grep -v -E '^keyless(-ca)?:' "$f" || true; done`

func testDebianInstall(t *testing.T, f *pkgFixture) {
	dockerBin := docker(t)
	debianRoot(t, dockerBin)
	deb := "/pkgs/" + DebName(f.plan, PackageArchs[0])

	// How the postinst makes the users: systemd-sysusers, else Debian's
	// adduser, else useradd (other distributions).
	for _, v := range []struct{ name, hide string }{
		{"sysusers", ""},
		{"adduser", "mv /usr/bin/systemd-sysusers /usr/bin/systemd-sysusers.hidden"},
		{"useradd", "mv /usr/bin/systemd-sysusers /usr/bin/systemd-sysusers.hidden; mv /usr/sbin/adduser /usr/sbin/adduser.hidden"},
	} {
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			c := startDebian(t, dockerBin, f.plan.Dist)
			if v.hide != "" {
				c.sh(v.hide)
			}
			before, beforeUsers := c.sh(snapshotScript), c.sh(userLines)

			c.sh("dpkg -i " + deb)
			if got, want := c.sh("keyless version"), "keyless "+f.plan.Version+"\ncommit "+f.plan.Commit+"\n"; !strings.HasPrefix(got, want) {
				t.Errorf("keyless version:\n%s\nwant it to start:\n%s", got, want)
			}
			for _, u := range []string{"keyless", "keyless-ca"} {
				fields := strings.Split(strings.TrimSpace(c.sh("getent passwd "+u)), ":")
				if len(fields) != 7 || !strings.HasSuffix(fields[6], "/nologin") || fields[5] != "/var/lib/"+u {
					t.Errorf("getent passwd %s: %q, want home /var/lib/%s and a nologin shell", u, fields, u)
				}
				if uid := fields[2]; len(uid) > 3 { // system users are below 1000
					t.Errorf("user %s has uid %s, not a system user's", u, uid)
				}
				c.sh("getent group " + u)
			}
			if got, want := c.sh("stat -c '%n %a %U:%G' /etc/keyless /var/lib/keyless /var/lib/keyless-ca"),
				"/etc/keyless 755 root:root\n/var/lib/keyless 700 keyless:keyless\n/var/lib/keyless-ca 700 keyless-ca:keyless-ca\n"; got != want {
				t.Errorf("directories:\n%s\nwant:\n%s", got, want)
			}
			if got := strings.Fields(c.sh("dpkg-query -L keyless | while read -r p; do [ -d \"$p\" ] || echo \"$p\"; done | LC_ALL=C sort")); !slices.Equal(got, f.files) {
				t.Errorf("dpkg -L keyless (files):\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(f.files, "\n"))
			}
			c.sh("for p in " + strings.Join(f.files, " ") + "; do test -s \"$p\"; done")
			if got := c.sh("zcat " + ManDir + "/keyless-ca-serve.1.gz | head -3"); !strings.Contains(got, `.TH "KEYLESS-CA-SERVE" "1"`) {
				t.Errorf("keyless-ca-serve(1) starts:\n%s", got)
			}
			if v.name == "sysusers" {
				// systemd's own parser, offline; it prints nothing for a
				// good unit.
				units := UnitDir + "/keyless-agent.service " + UnitDir + "/keyless-ca.service " + UnitDir + "/keyless-renew.service"
				if out := c.sh("systemd-analyze verify --man=no " + units + " 2>&1"); strings.Contains(out, "keyless") {
					t.Errorf("systemd-analyze verify:\n%s", out)
				}
				names := "keyless-agent.service keyless-ca.service keyless-renew.service"
				if out := c.sh("systemctl is-enabled " + names + " || true"); out != "disabled\ndisabled\ndisabled\n" {
					t.Errorf("systemctl is-enabled: %q, want every unit disabled", out)
				}
				// An operator enables one; removing the package must
				// not leave its symlink behind (the snapshot below).
				c.sh("systemctl enable keyless-renew.service 2>&1")
				c.sh("test -L /etc/systemd/system/multi-user.target.wants/keyless-renew.service")
			}

			// Remove keeps the state directories; purge removes them,
			// as they are empty, and keeps the users.
			c.sh("dpkg -r keyless")
			c.sh("test ! -e " + BinPath + " && test -d /var/lib/keyless && test -d /var/lib/keyless-ca && test -d /etc/keyless")
			c.sh("dpkg --purge keyless")
			c.sh("getent passwd keyless && getent passwd keyless-ca")
			diff, excepted := snapshotDiff(before, c.sh(snapshotScript))
			if len(diff) > 0 {
				t.Errorf("after purge the root differs from before install:\n%s", strings.Join(diff, "\n"))
			}
			t.Logf("changed, as expected (leftoverExceptions): %s", strings.Join(excepted, " "))
			if after := c.sh(userLines); after != beforeUsers {
				t.Errorf("account files differ by more than the keyless users' lines:\nbefore:\n%s\nafter:\n%s", beforeUsers, after)
			}
		})
	}
	units := "keyless-agent.service keyless-ca.service keyless-renew.service"
	const (
		keptCA     = "keyless: purge kept /var/lib/keyless-ca (not empty: the CA's keys and database; delete it yourself once you have a backup)\n"
		keptConfig = "keyless: purge kept /etc/keyless (not empty: configuration and secrets, such as the CA's password file; delete it yourself once you have a backup)\n"
	)

	// Purge removes a directory only if it is empty, and says which it
	// keeps.
	t.Run("PurgeKeepsData", func(t *testing.T) {
		t.Parallel()
		c := startDebian(t, dockerBin, f.plan.Dist)
		c.sh("dpkg -i " + deb)
		c.sh(`echo root-key >/var/lib/keyless-ca/root_ca.key && chown keyless-ca: /var/lib/keyless-ca/root_ca.key
echo password >/etc/keyless/ca-password && chmod 0600 /etc/keyless/ca-password`)
		c.sh("dpkg -r keyless")
		out := c.sh("dpkg --purge keyless 2>&1")
		for _, want := range []string{keptCA, keptConfig} {
			if !strings.Contains(out, want) {
				t.Errorf("dpkg --purge says:\n%s\nwant it to say:\n%s", out, want)
			}
		}
		if strings.Contains(out, "kept /var/lib/keyless ") {
			t.Errorf("dpkg --purge kept the empty /var/lib/keyless:\n%s", out)
		}
		got := c.sh(`test ! -e /var/lib/keyless
cat /var/lib/keyless-ca/root_ca.key /etc/keyless/ca-password
stat -c '%n %a %U:%G' /var/lib/keyless-ca /var/lib/keyless-ca/root_ca.key /etc/keyless /etc/keyless/ca-password`)
		want := "root-key\npassword\n/var/lib/keyless-ca 700 keyless-ca:keyless-ca\n/var/lib/keyless-ca/root_ca.key 644 keyless-ca:keyless-ca\n" +
			"/etc/keyless 755 root:root\n/etc/keyless/ca-password 600 root:root\n"
		if got != want {
			t.Errorf("after purge:\n%s\nwant:\n%s", got, want)
		}
	})

	// A CA made by hand (deploy/README's commands) before the package,
	// and a state directory that is a symlink: the package reuses the
	// system user, changes neither directory, and purge keeps both.
	t.Run("Preexisting", func(t *testing.T) {
		t.Parallel()
		c := startDebian(t, dockerBin, f.plan.Dist)
		c.sh(`useradd --system --home-dir /var/lib/keyless-ca --shell /usr/sbin/nologin keyless-ca
install -d -o keyless-ca -g keyless-ca -m 0700 /var/lib/keyless-ca
echo root-key >/var/lib/keyless-ca/root_ca.key
install -d -m 0750 /srv/keyless && ln -s /srv/keyless /var/lib/keyless`)
		ca := c.sh("getent passwd keyless-ca; getent group keyless-ca; stat -c '%n %a %U:%G' /var/lib/keyless-ca /var/lib/keyless-ca/root_ca.key /srv/keyless; readlink /var/lib/keyless")
		c.sh("dpkg -i " + deb)
		if got := c.sh("getent passwd keyless-ca; getent group keyless-ca; stat -c '%n %a %U:%G' /var/lib/keyless-ca /var/lib/keyless-ca/root_ca.key /srv/keyless; readlink /var/lib/keyless"); got != ca {
			t.Errorf("the install changed the CA's user or directories, or the symlink:\n%s\nwant:\n%s", got, ca)
		}
		out := c.sh("dpkg --purge keyless 2>&1")
		for _, want := range []string{keptCA, "keyless: purge kept /var/lib/keyless (a symlink, to /srv/keyless: left alone, with what it points to; delete them yourself once you have a backup)\n"} {
			if !strings.Contains(out, want) {
				t.Errorf("dpkg --purge says:\n%s\nwant it to say:\n%s", out, want)
			}
		}
		if got := c.sh("getent passwd keyless-ca; getent group keyless-ca; stat -c '%n %a %U:%G' /var/lib/keyless-ca /var/lib/keyless-ca/root_ca.key /srv/keyless; readlink /var/lib/keyless"); got != ca {
			t.Errorf("purge changed the CA's user or directories, or the symlink:\n%s\nwant:\n%s", got, ca)
		}
		c.sh("grep -qx root-key /var/lib/keyless-ca/root_ca.key && test ! -e /etc/keyless")
	})

	// An account named keyless or keyless-ca that is not a system
	// account stops the install (preinst) or the configuration
	// (postinst) before anything is made; a system one is reused.
	t.Run("LoginAccounts", func(t *testing.T) {
		t.Parallel()
		c := startDebian(t, dockerBin, f.plan.Dist)
		nothingMade := "test ! -e /etc/keyless && test ! -e /var/lib/keyless && test ! -e /var/lib/keyless-ca"
		refused := func(out, want string) {
			t.Helper()
			if !strings.Contains(out, want) {
				t.Errorf("got:\n%s\nwant it to say:\n%s", out, want)
			}
		}

		c.sh("useradd -m -s /bin/bash keyless && test \"$(id -u keyless)\" = 1000")
		refused(c.shFails("dpkg -i "+deb+" 2>&1"), "keyless: the user keyless exists with uid 1000, which is not a system user (system uids are 100-999, from /etc/login.defs); keyless will not give its directories to it, and made no user or directory. Rename the account (usermod -l NEWNAME keyless, and groupmod -n NEWNAME keyless for its group) or delete it (userdel keyless), then install the package again.\n")
		c.sh(nothingMade + " && test ! -e " + BinPath + " && ! getent passwd keyless-ca")

		// dpkg --unpack runs preinst only; the account appears before
		// dpkg --configure runs postinst.
		c.sh("userdel -r keyless && dpkg --unpack " + deb + " && useradd -m -s /bin/bash keyless-ca")
		refused(c.shFails("dpkg --configure keyless 2>&1"), "keyless: the user keyless-ca exists with uid 1000, which is not a system user")
		c.sh(nothingMade + " && ! getent passwd keyless")

		c.sh("userdel -r keyless-ca && groupadd keyless")
		refused(c.shFails("dpkg --configure keyless 2>&1"), "keyless: the group keyless exists with gid 1000, which is not a system group (system gids are 100-999, from /etc/login.defs); keyless will not give its directories to it, and made no user or directory. Rename the group (groupmod -n NEWNAME keyless) or delete it (groupdel keyless), then install the package again.\n")
		c.sh(nothingMade + " && ! getent passwd keyless")

		// Root's uid is never a system user's, whatever the range.
		c.sh("groupdel keyless && useradd -o -u 0 -g 0 -M -s /usr/sbin/nologin keyless && echo 'SYS_UID_MIN 0' >>/etc/login.defs")
		refused(c.shFails("dpkg --configure keyless 2>&1"), "keyless: the user keyless exists with uid 0, which is root's; keyless will not give its directories to it")
		c.sh(nothingMade + " && sed -i '/^keyless:/d' /etc/passwd /etc/shadow && sed -i '/^SYS_UID_MIN 0$/d' /etc/login.defs")

		// The range is /etc/login.defs's.
		c.sh("useradd --system -u 150 --home-dir /var/lib/keyless --shell /usr/sbin/nologin keyless && echo 'SYS_UID_MIN 200' >>/etc/login.defs")
		refused(c.shFails("dpkg --configure keyless 2>&1"), "keyless: the user keyless exists with uid 150, which is not a system user (system uids are 200-999, from /etc/login.defs)")
		c.sh(nothingMade)

		// A system user is reused.
		c.sh("sed -i '/^SYS_UID_MIN 200$/d' /etc/login.defs && dpkg --configure keyless")
		if got, want := c.sh("id -u keyless; stat -c '%n %a %U:%G' /var/lib/keyless"), "150\n/var/lib/keyless 700 keyless:keyless\n"; got != want {
			t.Errorf("with a system user keyless (uid 150):\n%s\nwant:\n%s", got, want)
		}
	})

	// What is at a directory's path but is not a directory stops the
	// install before anything is made.
	t.Run("NotADirectory", func(t *testing.T) {
		t.Parallel()
		c := startDebian(t, dockerBin, f.plan.Dist)
		for _, v := range []struct{ setup, want, undo string }{
			{"ln -s /nonexistent/keyless /var/lib/keyless", "keyless: /var/lib/keyless is a dangling symlink (to /nonexistent/keyless, which does not exist); keyless will not write through it, and made no user or directory. Remove it (or make it a directory, or a symlink to one), then install the package again.\n", "rm /var/lib/keyless"},
			{"touch /etc/keyless", "keyless: /etc/keyless exists and is not a directory; keyless will not write through it", "rm /etc/keyless"},
			{"touch /srv/ca && ln -s /srv/ca /var/lib/keyless-ca", "keyless: /var/lib/keyless-ca is a symlink to /srv/ca, which is not a directory; keyless will not write through it", "rm /var/lib/keyless-ca"},
		} {
			c.sh(v.setup)
			if out := c.shFails("dpkg -i " + deb + " 2>&1"); !strings.Contains(out, v.want) {
				t.Errorf("with %s, dpkg -i says:\n%s\nwant it to say:\n%s", v.setup, out, v.want)
			}
			c.sh("test ! -e " + BinPath + " && ! getent passwd keyless && ! getent passwd keyless-ca")
			c.sh(v.undo)
		}
		c.sh("test ! -e /etc/keyless && test ! -e /var/lib/keyless && test ! -e /var/lib/keyless-ca")
	})

	// Installing the same .deb again is dpkg's upgrade path: the
	// directories, made once, keep what an operator changed, the
	// services are restarted (when systemd runs), not stopped.
	t.Run("Reinstall", func(t *testing.T) {
		t.Parallel()
		c := startDebian(t, dockerBin, f.plan.Dist)
		c.sh(fakeSystemd)
		c.sh("dpkg -i " + deb)
		if got := c.sh(takeSystemctlLog); got != "daemon-reload\n" {
			t.Errorf("install: systemctl %q, want daemon-reload only", got)
		}
		c.sh(`chown root:keyless /etc/keyless && chmod 0750 /etc/keyless && chmod 0750 /var/lib/keyless
echo x >/var/lib/keyless-ca/db`)
		before := c.sh(stateScript)
		c.sh("dpkg -i " + deb)
		if after := c.sh(stateScript); after != before {
			t.Errorf("the reinstall changed the directories or the users:\n%s\nwant:\n%s", after, before)
		}
		// prerm upgrade, postrm upgrade, postinst configure 1.2.3.
		if got, want := c.sh(takeSystemctlLog), "daemon-reload\ndaemon-reload\ntry-restart "+units+"\n"; got != want {
			t.Errorf("reinstall: systemctl\n%s\nwant:\n%s", got, want)
		}
		c.sh("dpkg -r keyless")
		if got, want := c.sh(takeSystemctlLog), "stop "+units+"\n--no-reload disable "+units+"\ndaemon-reload\n"; got != want {
			t.Errorf("remove: systemctl\n%s\nwant:\n%s", got, want)
		}
		if out := c.sh("dpkg --purge keyless 2>&1"); !strings.Contains(out, keptCA) {
			t.Errorf("dpkg --purge says:\n%s\nwant it to say:\n%s", out, keptCA)
		}
		c.sh("test ! -e /etc/keyless && test ! -e /var/lib/keyless && test -s /var/lib/keyless-ca/db")
	})

	// The .rpm's scriptlets are the same text; rpm is not here to run
	// them, so they run as rpm would (sh, with the number of instances
	// left), over the .deb's files (the same files: see the RPM
	// subtest).
	t.Run("RPMScriptlets", func(t *testing.T) {
		t.Parallel()
		rpmBin := testkit.LookPath(t, "rpm", "rpm (Debian: apt-get install rpm)")
		path := filepath.Join(f.plan.Dist, RPMName(f.plan, PackageArchs[0]))
		scriptlet := map[string]string{}
		for _, tag := range []string{"PREIN", "POSTIN", "PREUN", "POSTUN"} {
			if interp := run(t, rpmBin, "-qp", "--queryformat", "%{"+tag+"PROG}", path); interp != "/bin/sh" {
				t.Fatalf("%s: %s runs with %q, want /bin/sh", filepath.Base(path), tag, interp)
			}
			scriptlet[tag] = run(t, rpmBin, "-qp", "--queryformat", "%{"+tag+"}", path)
		}
		c := startDebian(t, dockerBin, f.plan.Dist)
		c.sh(fakeSystemd + "\ndpkg-deb -x " + deb + " /")
		runs := func(tag, arg string) {
			t.Helper()
			if out, err := c.script(scriptlet[tag], arg); err != nil {
				t.Fatalf("%s %s: %v\n%s", tag, arg, err, out)
			}
		}

		c.sh("useradd -m -s /bin/bash keyless-ca")
		if out, err := c.script(scriptlet["PREIN"], "1"); err == nil || !strings.Contains(out, "keyless: the user keyless-ca exists with uid 1000, which is not a system user") {
			t.Errorf("%%pre with a login account keyless-ca: %v\n%s", err, out)
		}
		c.sh("userdel -r keyless-ca && test ! -e /etc/keyless && ! getent passwd keyless")

		// rpm -i.
		runs("PREIN", "1")
		runs("POSTIN", "1")
		if got, want := c.sh("stat -c '%n %a %U:%G' /etc/keyless /var/lib/keyless /var/lib/keyless-ca"),
			"/etc/keyless 755 root:root\n/var/lib/keyless 700 keyless:keyless\n/var/lib/keyless-ca 700 keyless-ca:keyless-ca\n"; got != want {
			t.Errorf("directories:\n%s\nwant:\n%s", got, want)
		}
		c.sh("getent passwd keyless && getent passwd keyless-ca")
		if got := c.sh(takeSystemctlLog); got != "daemon-reload\n" {
			t.Errorf("install: systemctl %q, want daemon-reload only", got)
		}

		// rpm -U: the new package's %pre and %post, the old one's
		// %preun and %postun.
		c.sh("chmod 0750 /etc/keyless && echo x >/var/lib/keyless-ca/db")
		before := c.sh(stateScript)
		runs("PREIN", "2")
		runs("POSTIN", "2")
		runs("PREUN", "1")
		runs("POSTUN", "1")
		if after := c.sh(stateScript); after != before {
			t.Errorf("the upgrade changed the directories or the users:\n%s\nwant:\n%s", after, before)
		}
		if got, want := c.sh(takeSystemctlLog), "daemon-reload\ndaemon-reload\ntry-restart "+units+"\n"; got != want {
			t.Errorf("upgrade: systemctl\n%s\nwant:\n%s", got, want)
		}

		// rpm -e: stops and disables, leaves the directories and users.
		runs("PREUN", "0")
		runs("POSTUN", "0")
		if got, want := c.sh(takeSystemctlLog), "stop "+units+"\n--no-reload disable "+units+"\ndaemon-reload\n"; got != want {
			t.Errorf("erase: systemctl\n%s\nwant:\n%s", got, want)
		}
		if after := c.sh(stateScript); after != before {
			t.Errorf("the erase changed the directories or the users:\n%s\nwant:\n%s", after, before)
		}
	})
}
