package release_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keyless-dev/keyless/internal/testkit"
	"github.com/keyless-dev/keyless/interop/release"
)

// A release is built from the commit, not the working tree: a Go file
// that .git/info/exclude hides from `git status` never reaches the
// binary, and a checkout whose README.md has CRLF line endings
// (core.autocrlf=true) gives the same SHA256SUMS as the shared one.
func TestReleaseFromCommit(t *testing.T) {
	r := needReleases(t)
	clone := filepath.Join(t.TempDir(), "crlf")
	testkit.Git(t, ".", "clone", "-q", "--shared", "--no-checkout", "-c", "core.autocrlf=true", r.root, clone)
	testkit.Git(t, clone, "checkout", "-q", "--detach", r.head)
	readme, err := os.ReadFile(filepath.Join(clone, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(readme, []byte("\r\n")) {
		t.Fatalf("core.autocrlf=true checked README.md out without CRLF; the test would prove nothing")
	}
	const marker = "IGNORED-FILE-COMPILED-IN"
	write(t, filepath.Join(clone, "cmd", "keyless", "zz_ignored.go"), "package main\n\nfunc init() { println(\""+marker+"\") }\n")
	excl := filepath.Join(clone, ".git", "info", "exclude")
	write(t, excl, "/cmd/keyless/zz_ignored.go\n")
	if out := testkit.Git(t, clone, "status", "--porcelain", "--untracked-files=all"); out != "" {
		t.Fatalf("the clone is not clean to git: %s", out)
	}

	dist := filepath.Join(t.TempDir(), "dist")
	res := runRelease(t, r.checkouts, clone, nil, "--dist", dist, "--only-targets", "linux-amd64", testVersion)
	if res.code != 0 {
		t.Fatalf("release in the clone: exit %d\n%s", res.code, res.stderr)
	}
	bin := unpackBinary(t, r, dist, release.Target{GOOS: "linux", GOARCH: "amd64"})
	out, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil || bytes.Contains(out, []byte(marker)) {
		t.Errorf("keyless version of the release: %v\n%s\nthe file git ignores was compiled in", err, out)
	}
	got, _ := os.ReadFile(filepath.Join(dist, release.SumsName))
	want, _ := os.ReadFile(filepath.Join(r.distCold, release.SumsName))
	if !bytes.Equal(got, want) {
		t.Errorf("SHA256SUMS from a core.autocrlf=true checkout:\n%s\nfrom the shared one:\n%s", got, want)
	}

	// The man pages and units come from the command tree compiled into
	// the release tool, from the working tree: an ignored Go file in one
	// of its packages is refused.
	write(t, filepath.Join(clone, "internal", "cli", "zz_ignored.go"), "package cli\n")
	write(t, excl, "/cmd/keyless/zz_ignored.go\n/internal/cli/zz_ignored.go\n")
	dist2 := filepath.Join(t.TempDir(), "dist")
	res = runRelease(t, r.checkouts, clone, nil, "--dist", dist2, "--only-targets", "linux-amd64", testVersion)
	if res.code != 2 || !strings.Contains(res.stderr, "internal/cli/zz_ignored.go") || !strings.Contains(res.stderr, "--allow-dirty") {
		t.Errorf("release with an ignored Go file in internal/cli: exit %d, stderr\n%s\nwant 2 naming the file and --allow-dirty", res.code, res.stderr)
	}
	if _, err := os.Stat(dist2); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused release left %s: %v", dist2, err)
	}
}

// --image-context lays out the image's build context from the release's
// linux/amd64 binary, beside the dist and not in it, and prints it.
func TestImageContextFlag(t *testing.T) {
	r := needReleases(t)
	dockerfile, err := os.ReadFile(filepath.Join(r.imageCold, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(dockerfile), "ARG REVISION="+r.head+"\n") || !strings.Contains(string(dockerfile), "ARG VERSION="+testVersion+"\n") {
		t.Errorf("the context's Dockerfile does not carry the release's version and commit:\n%s", dockerfile)
	}
	for _, f := range []string{"rootfs/etc/passwd", "rootfs/etc/group", "rootfs/etc/ssl/certs/ca-certificates.crt"} {
		if _, err := os.Stat(filepath.Join(r.imageCold, f)); err != nil {
			t.Errorf("the image context lacks %s: %v", f, err)
		}
	}
	inImage, err := os.ReadFile(filepath.Join(r.imageCold, "rootfs", "usr", "bin", "keyless"))
	if err != nil {
		t.Fatal(err)
	}
	released, err := os.ReadFile(unpackBinary(t, r, r.distCold, release.Target{GOOS: "linux", GOARCH: "amd64"}))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(inImage, released) {
		t.Errorf("the image's binary is not the released linux/amd64 one")
	}
	if !strings.Contains(r.stdoutCold, r.imageCold+"\n") {
		t.Errorf("release did not print the image context %s:\n%s", r.imageCold, r.stdoutCold)
	}
	sums, _ := os.ReadFile(filepath.Join(r.distCold, release.SumsName))
	if bytes.Contains(sums, []byte("Dockerfile")) || bytes.Contains(sums, []byte("rootfs")) {
		t.Errorf("SHA256SUMS lists the image context:\n%s", sums)
	}
}

// The .gitignore keeps a release's output out of `git status`, so an
// interrupted run (a dist.tmp- or dist.old- left behind) or an image
// context in build/ does not make the next release refuse as dirty.
func TestGitignoreKeepsReleaseOutput(t *testing.T) {
	root := testkit.Git(t, ".", "rev-parse", "--show-toplevel")
	ignore, err := os.ReadFile(filepath.Join(root, ".gitignore"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	testkit.Git(t, dir, "init", "-q")
	write(t, filepath.Join(dir, ".gitignore"), string(ignore))
	testkit.Git(t, dir, "add", ".gitignore")
	testkit.Git(t, dir, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", "one")
	for _, p := range []string{"dist/SHA256SUMS", "dist.tmp-123/SHA256SUMS", "dist.old-456/dist/SHA256SUMS", "build/image/Dockerfile"} {
		write(t, filepath.Join(dir, p), "x\n")
	}
	// A dist elsewhere, so the exclusion of dist itself does not count.
	if _, err := release.NewPlan(context.Background(), testVersion, dir, filepath.Join(t.TempDir(), "dist"), false); err != nil {
		t.Errorf("NewPlan with a release's leftovers in the checkout = %v, want clean (.gitignore lists them)", err)
	}
}

// Stage refuses, even with force, a dist whose replacement would delete
// the checkout, its git directory, its sources or $HOME, symlinks
// resolved; and a dist entry that is not a regular file is never a
// release's.
func TestStageRefuses(t *testing.T) {
	parent := t.TempDir()
	source := filepath.Join(parent, "clone")
	if err := os.Mkdir(source, 0o755); err != nil {
		t.Fatal(err)
	}
	testkit.Git(t, source, "init", "-q")
	write(t, filepath.Join(source, "internal", "a.go"), "package internal\n")
	testkit.Git(t, source, "add", ".")
	testkit.Git(t, source, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", "one")
	link := filepath.Join(parent, "link")
	if err := os.Symlink(parent, link); err != nil {
		t.Fatal(err)
	}
	home := filepath.Join(parent, "home")
	write(t, filepath.Join(home, "notes"), "mine")
	t.Setenv("HOME", home)

	for _, tc := range []struct{ name, dist, want string }{
		{"the checkout through a symlink", filepath.Join(link, "clone"), "contains the checkout"},
		{"the checkout's parent through a symlink", link, "contains the checkout"},
		{"inside .git", filepath.Join(source, ".git", "dist"), "git directory"},
		{"a source directory", filepath.Join(source, "internal"), "git tracks"},
		{"a source directory through a symlink", filepath.Join(link, "clone", "internal"), "git tracks"},
		{"$HOME", home, "$HOME"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := release.Stage(tc.dist, source, true)
			if !errors.Is(err, release.ErrProtectedDist) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Stage(%s, force) = %v, want ErrProtectedDist saying %q", tc.dist, err, tc.want)
			}
		})
	}
	// The checkout named through the symlink is the same checkout.
	if _, err := release.Stage(source, filepath.Join(link, "clone"), true); !errors.Is(err, release.ErrProtectedDist) || !strings.Contains(err.Error(), "contains the checkout") {
		t.Errorf("Stage(%s, source through a symlink, force) = %v, want ErrProtectedDist saying it contains the checkout", source, err)
	}
	if _, err := os.Stat(filepath.Join(source, "internal", "a.go")); err != nil {
		t.Errorf("a refusal touched the sources: %v", err)
	}

	// A dist inside the checkout that holds no tracked file is fine.
	tmp, err := release.Stage(filepath.Join(source, "dist"), source, true)
	if err != nil {
		t.Errorf("Stage(<checkout>/dist) = %v", err)
	} else {
		os.RemoveAll(tmp)
	}

	// The dirty check leaves a dist inside the checkout out, so a
	// change under a source directory given as dist passes NewPlan; Stage
	// must then refuse it.
	write(t, filepath.Join(source, "internal", "a.go"), "package internal // changed\n")
	p, err := release.NewPlan(context.Background(), testVersion, source, filepath.Join(source, "internal"), false)
	if err == nil {
		if _, err := release.Stage(p.Dist, p.Source, true); !errors.Is(err, release.ErrProtectedDist) {
			t.Errorf("Stage over a source directory with uncommitted changes = %v, want ErrProtectedDist", err)
		}
	}

	t.Run("a directory named in SHA256SUMS", func(t *testing.T) {
		dist := filepath.Join(t.TempDir(), "dist")
		write(t, filepath.Join(dist, "sub", "work.go"), "package x\n")
		write(t, filepath.Join(dist, release.SumsName), strings.Repeat("ab", 32)+"  sub\n")
		if _, err := release.Stage(dist, source, false); !errors.Is(err, release.ErrForeignDist) || !strings.Contains(err.Error(), "sub") {
			t.Errorf("Stage over a dist whose SHA256SUMS names a directory = %v, want ErrForeignDist naming sub", err)
		}
	})
	t.Run("an unparseable SHA256SUMS", func(t *testing.T) {
		dist := filepath.Join(t.TempDir(), "dist")
		write(t, filepath.Join(dist, "a.tar.gz"), "1")
		write(t, filepath.Join(dist, release.SumsName), "not a sums line\n")
		if _, err := release.Stage(dist, source, false); !errors.Is(err, release.ErrForeignDist) || !strings.Contains(err.Error(), "does not parse") {
			t.Errorf("Stage over a dist with a broken SHA256SUMS = %v, want ErrForeignDist saying it does not parse", err)
		}
	})
}

// Export gives the commit's bytes whatever the builder's line-ending
// settings, and nothing the working tree has that the commit does not.
func TestExport(t *testing.T) {
	dir, commit := gitRepo(t, time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC))
	testkit.Git(t, dir, "config", "core.autocrlf", "true")
	testkit.Git(t, dir, "config", "core.eol", "crlf")
	write(t, filepath.Join(dir, "ignored.go"), "package x\n")
	write(t, filepath.Join(dir, ".git", "info", "exclude"), "/ignored.go\n")
	out := filepath.Join(t.TempDir(), "src")
	if err := release.Export(context.Background(), dir, commit, out); err != nil {
		t.Fatal(err)
	}
	got := readDir(t, out)
	if len(got) != 1 || string(got["README.md"]) != "x\n" {
		t.Errorf("Export = %q, want only README.md with LF endings, \"x\\n\"", got)
	}
	if err := release.Export(context.Background(), dir, commit, out); err == nil {
		t.Errorf("Export into an existing directory succeeded")
	}
}
