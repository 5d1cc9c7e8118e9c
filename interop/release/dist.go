package release

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// ErrForeignDist means the dist directory holds files a release did not
// make, so replacing it could delete someone's work.
var ErrForeignDist = errors.New("dist directory holds files not made by release")

// Stage checks that dist may be replaced and makes the empty directory
// the new release is built in: <dist>.tmp-XXXX next to dist, so Publish
// is a rename on one file system. dist may be replaced when it does not
// exist, is empty, or holds only files its SHA256SUMS lists (a previous
// release); anything else is refused with ErrForeignDist unless force.
// A dist that is, or contains, the checkout source is always refused.
func Stage(dist, source string, force bool) (string, error) {
	dist = filepath.Clean(dist)
	if rel, err := filepath.Rel(dist, source); err == nil && (rel == "." || !strings.HasPrefix(rel, "..")) {
		return "", fmt.Errorf("dist %s is or contains the checkout %s; pick an output directory inside or beside it, e.g. %s",
			dist, source, filepath.Join(source, "dist"))
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

// madeByRelease reports whether every file in dist is SHA256SUMS or
// listed in it; the error names the files that are not.
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
