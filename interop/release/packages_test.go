package release

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/keyless-dev/keyless/internal/testkit"
)

// pkgFixture is one release's binaries, docs and packages.
type pkgFixture struct {
	plan     Plan
	bins     map[Target]string
	docs     string
	packages []string
	// files are the paths every package installs, sorted.
	files []string
}

// buildPkgFixture builds the binaries (3 Linux targets), the docs and
// the packages in dir.
func buildPkgFixture(t *testing.T, dir string) *pkgFixture {
	t.Helper()
	ctx := t.Context()
	f := &pkgFixture{plan: pkgTestPlan(t, filepath.Join(dir, "dist")), docs: filepath.Join(dir, "docs")}
	var err error
	if f.bins, err = testBinaries(ctx, f.plan, filepath.Join(dir, "bin")); err != nil {
		t.Fatal(err)
	}
	if err := GenerateDocs(ctx, f.plan, f.docs); err != nil {
		t.Fatal(err)
	}
	if f.packages, err = BuildPackages(ctx, f.plan, f.bins, f.docs); err != nil {
		t.Fatal(err)
	}
	f.files = []string{BinPath, BashPath, ZshPath, FishPath, SysusersPath,
		UnitDir + "/keyless-agent.service", UnitDir + "/keyless-ca.service", UnitDir + "/keyless-renew.service"}
	pages, _ := filepath.Glob(filepath.Join(f.docs, "man", "man1", "*.1.gz"))
	for _, p := range pages {
		f.files = append(f.files, ManDir+"/"+filepath.Base(p))
	}
	slices.Sort(f.files)
	return f
}

func sha256File(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	// dpkg-deb prints times in the local zone.
	cmd.Env = append(os.Environ(), "TZ=UTC")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestPackages builds the .deb and .rpm packages once and checks them:
// names, reproducibility, metadata and contents with rpm and dpkg-deb,
// and the amd64 .deb installed and purged in a Debian container.
func TestPackages(t *testing.T) {
	f := buildPkgFixture(t, t.TempDir())
	var names []string
	for _, p := range f.packages {
		names = append(names, filepath.Base(p))
	}
	want := []string{"keyless-1.2.3-1.aarch64.rpm", "keyless-1.2.3-1.armv7hl.rpm", "keyless-1.2.3-1.x86_64.rpm",
		"keyless_1.2.3_amd64.deb", "keyless_1.2.3_arm64.deb", "keyless_1.2.3_armhf.deb"}
	if !slices.Equal(names, want) {
		t.Fatalf("packages %q, want %q", names, want)
	}

	t.Run("Reproducible", func(t *testing.T) {
		// Again elsewhere, as another user: docs and packages, from the
		// same binaries (their reproducibility is the build's test).
		t.Setenv("HOME", t.TempDir())
		t.Setenv("XDG_DATA_HOME", "")
		dir := t.TempDir()
		p := f.plan
		p.Dist = filepath.Join(dir, "dist")
		docs := filepath.Join(dir, "docs")
		if err := GenerateDocs(t.Context(), p, docs); err != nil {
			t.Fatal(err)
		}
		again, err := BuildPackages(t.Context(), p, f.bins, docs)
		if err != nil {
			t.Fatal(err)
		}
		for i, path := range f.packages {
			a, _ := os.ReadFile(path)
			b, _ := os.ReadFile(again[i])
			if len(a) == 0 || !bytes.Equal(a, b) {
				t.Errorf("%s: two builds differ (%d and %d bytes)", filepath.Base(path), len(a), len(b))
			}
		}
	})

	t.Run("RPM", func(t *testing.T) {
		rpmBin := testkit.LookPath(t, "rpm", "rpm (Debian: apt-get install rpm)")
		for _, a := range PackageArchs {
			path := filepath.Join(f.plan.Dist, RPMName(f.plan, a))
			info := run(t, rpmBin, "-qp", "--queryformat", "%{NAME} %{VERSION} %{RELEASE} %{ARCH} %{LICENSE} %{BUILDHOST} %{BUILDTIME}\n", path)
			if want := fmt.Sprintf("keyless 1.2.3 1 %s %s reproducible %d\n", a.RPM, License, f.plan.Epoch.Unix()); info != want {
				t.Errorf("%s: rpm -qp: %q, want %q", filepath.Base(path), info, want)
			}
			qip := run(t, rpmBin, "-qip", path)
			for _, want := range []string{"Name        : keyless", "Version     : 1.2.3", "Architecture: " + a.RPM, "URL         : " + Homepage, "Summary     : Short-lived AWS credentials"} {
				if !strings.Contains(qip, want) {
					t.Errorf("%s: rpm -qip has no %q:\n%s", filepath.Base(path), want, qip)
				}
			}
			if got := strings.Fields(run(t, rpmBin, "-qlp", path)); !slices.Equal(got, f.files) {
				t.Errorf("%s: rpm -qlp:\n%s\nwant:\n%s", filepath.Base(path), strings.Join(got, "\n"), strings.Join(f.files, "\n"))
			}
			modes := run(t, rpmBin, "-qp", "--queryformat", "[%{FILEMODES:perms} %{FILEUSERNAME}:%{FILEGROUPNAME} %{FILEMTIMES} %{FILENAMES}\n]", path)
			for _, line := range strings.Split(strings.TrimSpace(modes), "\n") {
				fields := strings.Fields(line)
				wantMode := "-rw-r--r--"
				if fields[3] == BinPath {
					wantMode = "-rwxr-xr-x"
				}
				if fields[0] != wantMode || fields[1] != "root:root" || fields[2] != fmt.Sprint(f.plan.Epoch.Unix()) {
					t.Errorf("%s: %s, want %s root:root %d", filepath.Base(path), line, wantMode, f.plan.Epoch.Unix())
				}
			}
			// The right binary: the same bytes as the target's.
			digest := run(t, rpmBin, "-qp", "--queryformat", "[%{FILEDIGESTS} %{FILENAMES}\n]", path)
			if want := sha256File(t, f.bins[a.Target]) + " " + BinPath + "\n"; !strings.Contains(digest, want) {
				t.Errorf("%s: %s is not the %s binary:\n%s", filepath.Base(path), BinPath, a.Target, digest)
			}
			scripts := run(t, rpmBin, "-qp", "--scripts", path)
			for _, want := range []string{"postinstall scriptlet", "systemd-sysusers " + SysusersPath, "preuninstall scriptlet", "postuninstall scriptlet"} {
				if !strings.Contains(scripts, want) {
					t.Errorf("%s: rpm --scripts has no %q", filepath.Base(path), want)
				}
			}
		}
	})

	t.Run("DebForeignArchs", func(t *testing.T) {
		dpkgDeb := testkit.LookPath(t, "dpkg-deb", "dpkg (Debian's own)")
		for _, a := range PackageArchs {
			path := filepath.Join(f.plan.Dist, DebName(f.plan, a))
			info := run(t, dpkgDeb, "--info", path)
			for _, want := range []string{"Package: keyless\n", "Version: 1.2.3\n", "Architecture: " + a.Deb + "\n", "Maintainer: " + Maintainer + "\n", "Homepage: " + Homepage + "\n", "Section: admin\n", "Recommends: procps\n"} {
				if !strings.Contains(info, want) {
					t.Errorf("%s: dpkg-deb --info has no %q:\n%s", filepath.Base(path), want, info)
				}
			}
			for _, script := range []string{"postinst", "prerm", "postrm"} {
				if !regexp.MustCompile(`\* +` + script + ` +#!/bin/sh`).MatchString(info) {
					t.Errorf("%s: no %s script:\n%s", filepath.Base(path), script, info)
				}
			}
			if strings.Contains(info, "Depends:") {
				t.Errorf("%s depends on something; the binary is static:\n%s", filepath.Base(path), info)
			}
			var got []string
			for _, line := range strings.Split(strings.TrimSpace(run(t, dpkgDeb, "--contents", path)), "\n") {
				// -rwxr-xr-x root/root  123 2026-03-04 05:06 ./usr/bin/keyless
				fields := strings.Fields(line)
				if len(fields) != 6 {
					t.Fatalf("dpkg-deb --contents line %q", line)
				}
				if fields[1] != "root/root" || fields[3]+" "+fields[4] != f.plan.Epoch.Format("2006-01-02 15:04") {
					t.Errorf("%s: %s: want root/root and the epoch", filepath.Base(path), line)
				}
				name := strings.TrimPrefix(fields[5], ".")
				switch {
				case strings.HasPrefix(fields[0], "d"):
					continue
				case name == BinPath && fields[0] != "-rwxr-xr-x", name != BinPath && fields[0] != "-rw-r--r--":
					t.Errorf("%s: %s: wrong mode", filepath.Base(path), line)
				}
				got = append(got, name)
			}
			slices.Sort(got)
			// The right binary: the same bytes as the target's.
			tr := tar.NewReader(strings.NewReader(run(t, dpkgDeb, "--fsys-tarfile", path)))
			for {
				h, err := tr.Next()
				if err != nil {
					t.Fatalf("%s: no %s in the data (%v)", filepath.Base(path), BinPath, err)
				}
				if h.Name == "."+BinPath {
					sum := sha256.New()
					if _, err := io.Copy(sum, tr); err != nil {
						t.Fatal(err)
					}
					if got, want := hex.EncodeToString(sum.Sum(nil)), sha256File(t, f.bins[a.Target]); got != want {
						t.Errorf("%s: %s is not the %s binary (sha256 %s, want %s)", filepath.Base(path), BinPath, a.Target, got, want)
					}
					break
				}
			}
			if !slices.Equal(got, f.files) {
				t.Errorf("%s: dpkg-deb --contents:\n%s\nwant:\n%s", filepath.Base(path), strings.Join(got, "\n"), strings.Join(f.files, "\n"))
			}
		}
	})

	t.Run("DebianInstallPurge", func(t *testing.T) {
		testDebianInstall(t, f)
	})
}
