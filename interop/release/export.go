package release

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
)

// Export writes the tree of commit, as git stores it, into dir (which
// must not exist yet): `git archive` of the commit, with LF line endings
// whatever the builder's core.autocrlf or core.eol, extracted with
// archive/tar. A release builds from this export rather than from the
// checkout, so files git ignores (.gitignore, .git/info/exclude,
// core.excludesFile) and the builder's line-ending settings cannot reach
// the artefacts of a commit the binaries claim to be.
func Export(ctx context.Context, source, commit, dir string) error {
	if err := os.Mkdir(dir, 0o755); err != nil {
		return fmt.Errorf("exporting %s: %w", commit, err)
	}
	cmd := exec.CommandContext(ctx, "git", "-c", "core.autocrlf=false", "-c", "core.eol=lf", "archive", "--format=tar", commit)
	cmd.Dir = source
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return fmt.Errorf("exporting %s: %w", commit, err)
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("exporting %s: git archive: %w", commit, err)
	}
	xerr := extract(out, dir)
	if xerr != nil {
		_, _ = io.Copy(io.Discard, out) // let git finish writing
	}
	werr := cmd.Wait()
	if werr != nil {
		return fmt.Errorf("exporting %s: git archive in %s: %w: %s", commit, source, werr, strings.TrimSpace(stderr.String()))
	}
	if xerr != nil {
		return fmt.Errorf("exporting %s: %w", commit, xerr)
	}
	return nil
}

// extract writes the directories, regular files and symlinks of the tar
// stream r under dir; any other entry, or a name that leaves dir, is an
// error.
func extract(r io.Reader, dir string) error {
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading git archive: %w", err)
		}
		if h.Typeflag == tar.TypeXGlobalHeader { // git's commit id comment
			continue
		}
		name := strings.TrimSuffix(h.Name, "/")
		if !filepath.IsLocal(name) {
			return fmt.Errorf("git archive holds %q, a path outside the tree", h.Name)
		}
		path := filepath.Join(dir, filepath.FromSlash(name))
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(path, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			mode := os.FileMode(0o644)
			if h.Mode&0o111 != 0 {
				mode = 0o755
			}
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				return err
			}
			f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
			if err != nil {
				return err
			}
			_, err = io.Copy(f, tr)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
		case tar.TypeSymlink:
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				return err
			}
			if err := os.Symlink(h.Linkname, path); err != nil {
				return err
			}
		default:
			return fmt.Errorf("git archive holds %q of tar type %q, which a release does not expect", h.Name, h.Typeflag)
		}
	}
}

// IgnoredToolSources lists the files git ignores in the checkout source
// that the release tool itself is compiled from: Go files in the
// checkout's directories of the packages `go list -deps ./cmd/release`
// names, in source/interop/release. Export keeps them out of the
// binaries, but the man pages, completions and systemd units come from
// the command tree compiled into the tool (scripts/release runs it with
// go run from the working tree), so a release refuses them unless
// --allow-dirty.
func IgnoredToolSources(ctx context.Context, source string) ([]string, error) {
	cmd := exec.CommandContext(ctx, "go", "list", "-deps", "-f", "{{if not .Standard}}{{.Dir}}{{end}}", "./cmd/release")
	cmd.Dir = filepath.Join(source, "interop", "release")
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=readonly")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("listing the release tool's packages: go list -deps ./cmd/release in %s: %w: %s", cmd.Dir, err, strings.TrimSpace(stderr.String()))
	}
	src, err := resolve(source)
	if err != nil {
		return nil, err
	}
	args := []string{"ls-files", "-z", "--others", "--ignored", "--exclude-standard", "--"}
	n := len(args)
	for _, dir := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if dir == "" {
			continue
		}
		real, err := resolve(dir)
		if err != nil {
			continue
		}
		if rel, ok := relWithin(src, real); ok {
			// glob magic: * does not cross /, so only this package's files.
			args = append(args, ":(glob)"+path.Join(filepath.ToSlash(rel), "*.go"))
		}
	}
	if len(args) == n {
		return nil, nil
	}
	list, err := git(ctx, src, args...)
	if err != nil {
		return nil, err
	}
	var files []string
	for _, f := range strings.Split(list, "\x00") {
		if f != "" {
			files = append(files, f)
		}
	}
	return files, nil
}
