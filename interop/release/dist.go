package release

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// ErrForeignDist means the dist directory holds files a release did not
// make, so replacing it could delete someone's work.
var ErrForeignDist = errors.New("dist directory holds files not made by release")

// Stage checks that dist may be replaced and makes the empty directory
// the new release is built in: <dist>.tmp-XXXX next to dist, so Publish
// is a rename on one file system. dist may be replaced when it does not
// exist, is empty, or holds only regular files its SHA256SUMS lists (a
// previous release); anything else is refused with ErrForeignDist unless
// force. Whatever force says, Stage refuses (symlinks resolved) a dist
// that is or contains the checkout source, $HOME or the temporary
// directory, that overlaps the repository's git directory, or that holds
// a file git tracks; source must be a git checkout.
func Stage(dist, source string, force bool) (string, error) {
	dist = filepath.Clean(dist)
	if err := protected(dist, source); err != nil {
		return "", err
	}
	fi, err := os.Lstat(dist)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return "", fmt.Errorf("dist %s: %w", dist, err)
	case !fi.IsDir():
		return "", fmt.Errorf("dist %s exists and is not a directory; remove it or pick another --dist", dist)
	case !force:
		if err := madeByRelease(dist); err != nil {
			return "", err
		}
	}
	if err := os.MkdirAll(filepath.Dir(dist), 0o755); err != nil {
		return "", fmt.Errorf("dist %s: %w", dist, err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dist), filepath.Base(dist)+".tmp-")
	if err != nil {
		return "", fmt.Errorf("dist %s: %w", dist, err)
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		os.RemoveAll(tmp)
		return "", fmt.Errorf("dist %s: %w", dist, err)
	}
	return tmp, nil
}

// madeByRelease reports whether every entry of dist is a regular file,
// SHA256SUMS or listed in it; the error names the entries that are not.
func madeByRelease(dist string) error {
	entries, err := os.ReadDir(dist)
	if err != nil {
		return fmt.Errorf("dist %s: %w", dist, err)
	}
	if len(entries) == 0 {
		return nil
	}
	listed := map[string]string{}
	why := ""
	b, err := os.ReadFile(filepath.Join(dist, SumsName))
	if err == nil {
		if listed, err = ParseSums(b); err != nil {
			why = fmt.Sprintf(" (its %s does not parse: %v)", SumsName, err)
		}
	} else {
		why = fmt.Sprintf(" (it has no %s, so no release made it)", SumsName)
	}
	var foreign []string
	for _, e := range entries {
		// Only regular files: a directory or symlink named like an
		// artefact is someone's, and RemoveAll would follow into it.
		if !e.Type().IsRegular() {
			foreign = append(foreign, e.Name())
			continue
		}
		if _, ok := listed[e.Name()]; !ok && e.Name() != SumsName {
			foreign = append(foreign, e.Name())
		}
	}
	if len(foreign) == 0 && why == "" {
		return nil
	}
	if len(foreign) == 0 {
		foreign = []string{SumsName}
	}
	if len(foreign) > 5 {
		foreign = append(foreign[:5], fmt.Sprintf("and %d more", len(foreign)-5))
	}
	return fmt.Errorf("%w: %s holds %s, which no release listed%s; move them away, pick another --dist, or pass --force to replace the directory anyway",
		ErrForeignDist, dist, strings.Join(foreign, ", "), why)
}

// Publish replaces dist with the staged directory tmp: the old dist is
// renamed aside, tmp renamed to dist, then the old one removed. A crash
// leaves either the old dist or the new one (plus a .tmp- or .old-
// sibling to delete), never a half-written dist.
func Publish(tmp, dist string) error {
	dist = filepath.Clean(dist)
	if _, err := os.Lstat(dist); errors.Is(err, os.ErrNotExist) {
		if err := os.Rename(tmp, dist); err != nil {
			return fmt.Errorf("publishing %s: %w", dist, err)
		}
		return nil
	}
	old, err := os.MkdirTemp(filepath.Dir(dist), filepath.Base(dist)+".old-")
	if err != nil {
		return fmt.Errorf("publishing %s: %w", dist, err)
	}
	if err := os.Rename(dist, filepath.Join(old, "dist")); err != nil {
		os.Remove(old)
		return fmt.Errorf("publishing %s: moving the old one aside: %w", dist, err)
	}
	if err := os.Rename(tmp, dist); err != nil {
		if rerr := os.Rename(filepath.Join(old, "dist"), dist); rerr != nil {
			return fmt.Errorf("publishing %s: %w; the old dist is in %s (restoring it: %v)", dist, err, old, rerr)
		}
		os.Remove(old)
		return fmt.Errorf("publishing %s: %w", dist, err)
	}
	if err := os.RemoveAll(old); err != nil {
		return fmt.Errorf("publishing %s: removing the old one in %s: %w", dist, old, err)
	}
	return nil
}

// ErrProtectedDist means dist is a directory no release may replace, even
// with --force: the checkout, its git directory, tracked sources, $HOME.
var ErrProtectedDist = errors.New("dist may not be replaced")

// protected refuses a dist whose replacement would delete something
// that is not a release: see Stage. Paths are compared with their
// symlinks resolved, so /tmp/link/clone with /tmp/link -> /tmp is the
// checkout /tmp/clone.
func protected(dist, source string) error {
	real, err := resolve(dist)
	if err != nil {
		return fmt.Errorf("dist %s: %w", dist, err)
	}
	src, err := resolve(source)
	if err != nil {
		return fmt.Errorf("checkout %s: %w", source, err)
	}
	refuse := func(what string) error {
		return fmt.Errorf("%w: dist %s (%s) %s; pick an output directory that holds only releases, e.g. %s",
			ErrProtectedDist, dist, real, what, filepath.Join(source, "dist"))
	}
	if within(src, real) {
		return refuse("is or contains the checkout " + src)
	}
	for _, d := range []struct{ name, path string }{{"$HOME", os.Getenv("HOME")}, {"the temporary directory", os.TempDir()}} {
		if d.path == "" {
			continue
		}
		if p, err := resolve(d.path); err == nil && within(p, real) {
			return refuse(fmt.Sprintf("is or contains %s %s", d.name, p))
		}
	}
	for _, which := range []string{"--absolute-git-dir", "--git-common-dir"} {
		out, err := git(context.Background(), src, "rev-parse", which)
		if err != nil {
			return err
		}
		if !filepath.IsAbs(out) {
			out = filepath.Join(src, out)
		}
		gd, err := resolve(out)
		if err != nil {
			return fmt.Errorf("git directory %s: %w", out, err)
		}
		if within(gd, real) || within(real, gd) {
			return refuse("overlaps the git directory " + gd)
		}
	}
	if rel, ok := relWithin(src, real); ok {
		tracked, err := git(context.Background(), src, "ls-files", "--cached", "--", ":(literal)"+filepath.ToSlash(rel))
		if err != nil {
			return err
		}
		if tracked != "" {
			first, _, _ := strings.Cut(tracked, "\n")
			return refuse("holds files git tracks, such as " + first)
		}
	}
	return nil
}

// within reports whether path is dir or inside it (both clean, absolute).
func within(path, dir string) bool {
	_, ok := relWithin(dir, path)
	return ok
}

// relWithin is path relative to dir, when path is dir or inside it.
func relWithin(dir, path string) (string, bool) {
	rel, err := filepath.Rel(dir, path)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return "", false
	}
	return rel, true
}

// resolve makes path absolute with every symlink resolved, for the part
// of it that exists; the rest is joined on as written.
func resolve(path string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	var rest []string
	for p := abs; ; p = filepath.Dir(p) {
		real, err := filepath.EvalSymlinks(p)
		if err == nil {
			slices.Reverse(rest)
			return filepath.Join(append([]string{real}, rest...)...), nil
		}
		if !errors.Is(err, os.ErrNotExist) || filepath.Dir(p) == p {
			return "", err
		}
		rest = append(rest, filepath.Base(p))
	}
}
