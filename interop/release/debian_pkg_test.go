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

			// Remove keeps the state directories; purge deletes them
			// and keeps the users.
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
}
