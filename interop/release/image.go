package release

import (
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"time"
)

// ImageDir is where the image's Dockerfile, passwd and group live in the
// checkout.
const ImageDir = "deploy/docker/keyless"

// HostCACertificates is the CA bundle copied into the image: Debian's
// (and Ubuntu's) ca-certificates package writes it, and Go reads it at
// the same path inside the image.
const HostCACertificates = "/etc/ssl/certs/ca-certificates.crt"

// imageArgRE finds the Dockerfile's ARGs whose defaults ImageContext sets
// from the plan, so that a plain docker build labels the image.
var (
	imageArgRE      = regexp.MustCompile(`(?m)^ARG (VERSION|REVISION|CREATED)=.*$`)
	imageArgValueRE = regexp.MustCompile(`^[0-9A-Za-z.:+-]+$`)
)

// ImageContext lays out in dir a docker build context for the release's
// image:
//
//	Dockerfile                                ImageDir's, its VERSION, REVISION and CREATED defaults set from p
//	rootfs/etc/passwd, rootfs/etc/group       ImageDir's
//	rootfs/etc/ssl/certs/ca-certificates.crt  HostCACertificates
//	rootfs/usr/bin/keyless                    linuxAmd64Binary, which must be static
//	rootfs/var/lib/                           empty
//	state/keyless/                            empty, 0700: the user's /var/lib/keyless
//
// docker build dir then needs no network. dir must not exist or be
// empty, so nothing stale lands in the image. Every file and directory
// gets p.Epoch as its time.
func ImageContext(p Plan, linuxAmd64Binary string, dir string) error {
	if err := imageContext(p, linuxAmd64Binary, dir); err != nil {
		return fmt.Errorf("image context: %w", err)
	}
	return nil
}

func imageContext(p Plan, bin string, dir string) error {
	if p.Version == "" || p.Commit == "" || p.Epoch.IsZero() || p.Source == "" {
		return errors.New("the plan needs a version, commit, epoch and source")
	}
	if err := checkStaticLinuxAmd64(bin); err != nil {
		return err
	}
	if err := emptyDir(dir); err != nil {
		return err
	}
	src := filepath.Join(p.Source, ImageDir)
	dockerfile, err := os.ReadFile(filepath.Join(src, "Dockerfile"))
	if err != nil {
		return err
	}
	dockerfile, err = setImageArgs(dockerfile, map[string]string{
		"VERSION":  p.Version,
		"REVISION": p.Commit,
		"CREATED":  p.Epoch.UTC().Format(time.RFC3339),
	})
	if err != nil {
		return fmt.Errorf("%s: %w", filepath.Join(src, "Dockerfile"), err)
	}
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), dockerfile, 0o644); err != nil {
		return err
	}
	// Directories first, with their modes past the umask: COPY keeps
	// them, and the CA's checks refuse state others may read or change.
	for _, d := range []struct {
		name string
		mode os.FileMode
	}{
		{"rootfs", 0o755}, {"rootfs/etc", 0o755}, {"rootfs/etc/ssl", 0o755}, {"rootfs/etc/ssl/certs", 0o755},
		{"rootfs/usr", 0o755}, {"rootfs/usr/bin", 0o755}, {"rootfs/var", 0o755}, {"rootfs/var/lib", 0o755},
		{"state", 0o755}, {"state/keyless", 0o700},
	} {
		path := filepath.Join(dir, filepath.FromSlash(d.name))
		if err := os.Mkdir(path, d.mode); err != nil {
			return err
		}
		if err := os.Chmod(path, d.mode); err != nil {
			return err
		}
	}
	for _, c := range []struct {
		from, to string
		mode     os.FileMode
	}{
		{filepath.Join(src, "passwd"), "rootfs/etc/passwd", 0o644},
		{filepath.Join(src, "group"), "rootfs/etc/group", 0o644},
		{HostCACertificates, "rootfs/etc/ssl/certs/ca-certificates.crt", 0o644},
		{bin, "rootfs/usr/bin/keyless", 0o755},
	} {
		if err := copyFile(c.from, filepath.Join(dir, filepath.FromSlash(c.to)), c.mode); err != nil {
			if c.from == HostCACertificates && errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("%w (install Debian's ca-certificates package: apt-get install ca-certificates)", err)
			}
			return err
		}
	}
	return filepath.WalkDir(dir, func(path string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Chtimes(path, p.Epoch, p.Epoch)
	})
}

// setImageArgs replaces the default of each ARG in args, and fails when
// the Dockerfile lacks one, so that a renamed ARG cannot leave the image
// unlabelled.
func setImageArgs(dockerfile []byte, args map[string]string) ([]byte, error) {
	for name, v := range args {
		// Nothing that could end the line or the label's quotes: a value
		// is a version, a commit or a time.
		if !imageArgValueRE.MatchString(v) {
			return nil, fmt.Errorf("ARG %s: %q is not a plain version, commit or time", name, v)
		}
	}
	seen := map[string]bool{}
	out := imageArgRE.ReplaceAllFunc(dockerfile, func(line []byte) []byte {
		name := string(imageArgRE.FindSubmatch(line)[1])
		seen[name] = true
		return fmt.Appendf(nil, "ARG %s=%s", name, args[name])
	})
	for name := range args {
		if !seen[name] {
			return nil, fmt.Errorf("no line ARG %s=... to set the %s label from", name, name)
		}
	}
	return out, nil
}

// checkStaticLinuxAmd64 refuses anything but a statically linked
// linux/amd64 ELF executable: a dynamically linked one would build an
// image that cannot start (scratch has no loader or libc).
func checkStaticLinuxAmd64(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("binary %s: %w (want the linux/amd64 release binary)", path, err)
	}
	defer f.Close()
	if f.Machine != elf.EM_X86_64 {
		return fmt.Errorf("binary %s is for the machine %s, not linux/amd64's EM_X86_64", path, f.Machine)
	}
	if f.OSABI != elf.ELFOSABI_NONE && f.OSABI != elf.ELFOSABI_LINUX || f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN {
		return fmt.Errorf("binary %s is a %s %s file, not a linux executable", path, f.OSABI, f.Type)
	}
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			return fmt.Errorf("binary %s is dynamically linked; build it with CGO_ENABLED=0", path)
		}
	}
	return nil
}

// emptyDir makes dir, or accepts it when it exists and is empty.
func emptyDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	names, err := d.Readdirnames(1)
	if err != nil && err != io.EOF {
		return err
	}
	if len(names) > 0 {
		return fmt.Errorf("%s is not empty; give a new directory", dir)
	}
	return nil
}

// copyFile copies from to a new file to with mode.
func copyFile(from, to string, mode os.FileMode) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copying %s: %w", from, err)
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Chmod(to, mode) // past the umask
}
