package release_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/keyless-dev/keyless/internal/testkit"
	"github.com/keyless-dev/keyless/interop/release"
)

func TestCheckVersion(t *testing.T) {
	for _, v := range []string{"v0.0.0", "v1.2.3", "v10.20.30", "v1.3.0-rc.1", "v1.0.0-alpha", "v1.0.0-0.3.7", "v1.0.0-x-y.7z.92"} {
		if err := release.CheckVersion(v); err != nil {
			t.Errorf("CheckVersion(%q) = %v, want nil", v, err)
		}
	}
	for v, want := range map[string]string{
		"":               "VERSION is empty",
		"1.2.3":          "use v1.2.3",
		"v1.2":           "vMAJOR.MINOR.PATCH",
		"v1.2.3.4":       "vMAJOR.MINOR.PATCH",
		"v01.2.3":        "no leading zeros",
		"v1.2.3-01":      "no leading zeros",
		"v1.2.3-":        "vMAJOR.MINOR.PATCH",
		"v1.2.3+build.5": "build metadata",
		"V1.2.3":         "vMAJOR.MINOR.PATCH",
		"v1.2.3-rc..1":   "vMAJOR.MINOR.PATCH",
		"latest":         "vMAJOR.MINOR.PATCH",
	} {
		err := release.CheckVersion(v)
		if !errors.Is(err, release.ErrBadVersion) || !strings.Contains(err.Error(), want) {
			t.Errorf("CheckVersion(%q) = %v, want ErrBadVersion saying %q", v, err, want)
		}
	}
}

func TestParseTargets(t *testing.T) {
	got, err := release.ParseTargets("windows-amd64, linux-armv7,linux-amd64")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tg := range got {
		names = append(names, tg.String())
	}
	if s := strings.Join(names, ","); s != "linux-amd64,linux-armv7,windows-amd64" {
		t.Errorf("ParseTargets = %s, want Targets' order linux-amd64,linux-armv7,windows-amd64", s)
	}
	if _, err := release.ParseTargets("linux-arm"); err == nil || !strings.Contains(err.Error(), "linux-armv7") {
		t.Errorf("ParseTargets(linux-arm) = %v, want an error listing the targets", err)
	}
	if _, err := release.ParseTargets(" , "); err == nil {
		t.Errorf("ParseTargets(empty list) = nil error")
	}
	if len(release.Targets) != 6 {
		t.Errorf("len(Targets) = %d, want the 6 platforms of issue 17", len(release.Targets))
	}
}

// gitRepo makes a one-commit repository with a fixed committer time and
// returns its directory and commit.
func gitRepo(t *testing.T, when time.Time) (dir, commit string) {
	t.Helper()
	testkit.LookPath(t, "git", "Debian's git")
	dir = t.TempDir()
	run := func(args ...string) string {
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t",
			"GIT_COMMITTER_EMAIL=t@example.com", "GIT_COMMITTER_DATE="+when.Format(time.RFC3339), "GIT_AUTHOR_DATE=2001-01-01T00:00:00Z")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(string(out))
	}
	run("init", "-q")
	if err := os.WriteFile(filepath.Join(dir, "README.md"), []byte("x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	run("add", "README.md")
	run("commit", "-q", "-m", "one")
	return dir, run("rev-parse", "HEAD")
}

func TestNewPlan(t *testing.T) {
	when := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	dir, commit := gitRepo(t, when)
	ctx := context.Background()
	t.Setenv("SOURCE_DATE_EPOCH", "")

	p, err := release.NewPlan(ctx, "v1.2.3", dir, "", false)
	if err != nil {
		t.Fatal(err)
	}
	if p.Commit != commit || !p.Epoch.Equal(when) || p.Dist != filepath.Join(dir, "dist") || p.Source != dir {
		t.Errorf("NewPlan = %+v, want commit %s, epoch %s (the committer time), dist %s/dist", p, commit, when, dir)
	}

	t.Run("SOURCE_DATE_EPOCH overrides the commit time", func(t *testing.T) {
		t.Setenv("SOURCE_DATE_EPOCH", "1700000000")
		p, err := release.NewPlan(ctx, "v1.2.3", dir, "", false)
		if err != nil || p.Epoch.Unix() != 1700000000 || p.Epoch.Location() != time.UTC {
			t.Errorf("NewPlan with SOURCE_DATE_EPOCH = %v, %v; want epoch 1700000000 UTC", p.Epoch, err)
		}
		t.Setenv("SOURCE_DATE_EPOCH", "yesterday")
		if _, err := release.NewPlan(ctx, "v1.2.3", dir, "", false); err == nil || !strings.Contains(err.Error(), "SOURCE_DATE_EPOCH") {
			t.Errorf("NewPlan with SOURCE_DATE_EPOCH=yesterday = %v, want an error naming it", err)
		}
	})

	t.Run("a bad version is refused before git runs", func(t *testing.T) {
		if _, err := release.NewPlan(ctx, "1.2.3", t.TempDir(), "", false); !errors.Is(err, release.ErrBadVersion) {
			t.Errorf("NewPlan(1.2.3) = %v, want ErrBadVersion", err)
		}
	})

	t.Run("not a checkout", func(t *testing.T) {
		if _, err := release.NewPlan(ctx, "v1.2.3", t.TempDir(), "", false); err == nil || !strings.Contains(err.Error(), "git checkout") {
			t.Errorf("NewPlan outside git = %v, want an error saying it needs a git checkout", err)
		}
	})

	t.Run("the dist directory and its staging siblings do not make the tree dirty", func(t *testing.T) {
		for _, d := range []string{"out/dist", "out/dist.tmp-123", "out/dist.old-456"} {
			if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, d, "f"), nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		t.Cleanup(func() { os.RemoveAll(filepath.Join(dir, "out")) })
		if p, err := release.NewPlan(ctx, "v1.2.3", dir, filepath.Join(dir, "out/dist"), false); err != nil || p.Commit != commit {
			t.Errorf("NewPlan with files only in dist = %v, %v; want clean", p.Commit, err)
		}
	})

	// The security check: a release never claims to be a commit its
	// source is not. Each kind of change is refused without AllowDirty,
	// and stamped -dirty with it.
	dirty := map[string]func(t *testing.T){
		"untracked file": func(t *testing.T) { write(t, filepath.Join(dir, "new.go"), "package x\n") },
		"modified file":  func(t *testing.T) { write(t, filepath.Join(dir, "README.md"), "changed\n") },
		"deleted file":   func(t *testing.T) { os.Remove(filepath.Join(dir, "README.md")) },
	}
	for name, change := range dirty {
		t.Run("dirty: "+name, func(t *testing.T) {
			change(t)
			t.Cleanup(func() {
				os.Remove(filepath.Join(dir, "new.go"))
				exec.Command("git", "-C", dir, "checkout", "-q", "--", "README.md").Run()
			})
			_, err := release.NewPlan(ctx, "v1.2.3", dir, "", false)
			if !errors.Is(err, release.ErrDirty) || !strings.Contains(err.Error(), "--allow-dirty") {
				t.Fatalf("NewPlan on a dirty tree = %v, want ErrDirty naming --allow-dirty", err)
			}
			p, err := release.NewPlan(ctx, "v1.2.3", dir, "", true)
			if err != nil || p.Commit != commit+"-dirty" || !p.AllowDirty {
				t.Errorf("NewPlan(allowDirty) = %q, %v; want commit %s-dirty", p.Commit, err, commit)
			}
		})
	}
	if regexp.MustCompile(`^[0-9a-f]{40}$`).FindString(commit) == "" {
		t.Errorf("commit %q is not 40 hex", commit)
	}
}

func write(t *testing.T, path, s string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}
