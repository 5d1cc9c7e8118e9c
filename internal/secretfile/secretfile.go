// Package secretfile reads secrets (passwords, one-time tokens) from
// files or standard input, and checks that the files and directories
// that hold secrets belong to this user alone.
//
// One rule everywhere, for every flag that names a secret's file: the
// secret is the file's first line (its line ending removed); a regular
// file must be owned by this user or root and readable or writable by
// nobody else; "-" means standard input. A secret never comes from a
// command line, where any local user can read it in /proc.
//
// Directories holding secrets (a CA's) follow ssh's StrictModes: the
// directory and every directory above it must be owned by this user or
// root and writable by nobody else, except a sticky directory such as
// /tmp, where others cannot rename or remove what is not theirs.
//
// It is a domain package: any keyless package may import it. Its errors
// are typed (*ExposedError, *OwnerError, *EmptyError, *TooLargeError).
package secretfile

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/keyless-dev/keyless/internal/atomicfile"
)

// Stdin is the file name that means standard input.
const Stdin = "-"

// MaxSize bounds what is read for one secret: a password or a token is a
// line, not a file's worth (a step token is about 1 KB).
const MaxSize = 64 << 10

// ExposedError is a file or directory that users other than its owner
// can read or change.
type ExposedError struct {
	What, Path string
	Mode       fs.FileMode
	// Dir: a directory others can write; Writable: a file others can
	// write (it need not be secret).
	Dir, Writable bool
}

func (e *ExposedError) Error() string {
	if e.Writable {
		return fmt.Sprintf("%s %s has mode %04o: group or others can change it", e.What, e.Path, e.Mode&fs.ModePerm)
	}
	if e.Dir {
		return fmt.Sprintf("%s %s has mode %04o: group or others can write it, so they can replace what is in it", e.What, e.Path, e.Mode&fs.ModePerm)
	}
	return fmt.Sprintf("%s %s has mode %04o: group or others can read or change it", e.What, e.Path, e.Mode&fs.ModePerm)
}

// OwnerError is a file or directory owned by a user other than this one
// or root: that user could change it.
type OwnerError struct {
	What, Path string
	UID, Want  int
}

func (e *OwnerError) Error() string {
	return fmt.Sprintf("%s %s belongs to uid %d, not to this user (uid %d) or root: that user could change it", e.What, e.Path, e.UID, e.Want)
}

// EmptyError is a secret file whose first line is empty.
type EmptyError struct{ What, Path string }

func (e *EmptyError) Error() string {
	return fmt.Sprintf("%s %s is empty: the secret goes on its first line", e.What, e.Path)
}

// TooLargeError is a secret file longer than MaxSize.
type TooLargeError struct{ What, Path string }

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("%s %s is over %d KiB: that is not a password or token file", e.What, e.Path, MaxSize>>10)
}

// Checker applies the rules for one user: UID is who may own secrets
// besides root. Mine is the usual one.
type Checker struct{ UID int }

// Mine is the Checker for the user keyless runs as.
func Mine() Checker { return Checker{UID: os.Geteuid()} }

// Read returns the secret in path ("-" for stdin): its first line,
// without "\n" or "\r\n". what names the flag or setting, for errors.
func Read(what, path string, stdin io.Reader) ([]byte, error) {
	return Mine().Read(what, path, stdin)
}

// Read is the package's Read with c's rules.
func (c Checker) Read(what, path string, stdin io.Reader) ([]byte, error) {
	var r io.Reader
	name := path
	if path == Stdin {
		if stdin == nil {
			return nil, fmt.Errorf("%s: no standard input to read the secret from", what)
		}
		r, name = stdin, "(standard input)"
	} else {
		// A symbolic link another user owns could point at any of this
		// user's files, choosing which becomes the secret.
		if err := c.checkLinks(what, path); err != nil {
			return nil, err
		}
		// Opening a named pipe waits for a writer, so another user's pipe
		// is refused before it is opened, or it would hang keyless (the
		// second attack review).
		pre, err := os.Stat(path)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		if !pre.Mode().IsRegular() && !pre.IsDir() {
			if err := c.checkOwner(what, path, pre); err != nil {
				return nil, err
			}
		}
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		defer f.Close()
		// The checks look at the file opened, not at the name, which
		// someone could point elsewhere in between.
		info, err := f.Stat()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		if !os.SameFile(pre, info) {
			return nil, fmt.Errorf("%s %s changed while it was being opened; run the command again", what, path)
		}
		switch {
		case info.Mode().IsRegular():
			if err := c.checkFile(what, path, info); err != nil {
				return nil, err
			}
		case info.IsDir():
			return nil, fmt.Errorf("%s %s is a directory, not a file holding a secret", what, path)
		default:
			// A pipe (a shell's <(...)) or a device holds nothing at rest,
			// so its mode says little; but whoever owns a named pipe
			// writes what is read from it, and would choose the secret.
			if err := c.checkOwner(what, path, info); err != nil {
				return nil, err
			}
		}
		r = f
	}
	data, err := io.ReadAll(io.LimitReader(r, MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", what, name, err)
	}
	if len(data) > MaxSize {
		return nil, &TooLargeError{What: what, Path: name}
	}
	line, _, _ := bytes.Cut(data, []byte("\n"))
	line = bytes.TrimSuffix(line, []byte("\r"))
	if len(line) == 0 {
		return nil, &EmptyError{What: what, Path: name}
	}
	return line, nil
}

// CheckFile refuses a file holding a secret (a key, a password, a
// configuration with an encrypted key) that is not this user's alone.
func CheckFile(what, path string) error { return Mine().CheckFile(what, path) }

// CheckFile is the package's CheckFile with c's rules.
func (c Checker) CheckFile(what, path string) error {
	info, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("%s %s: %w", what, path, err)
	}
	return c.checkFile(what, path, info)
}

func (c Checker) checkFile(what, path string, info fs.FileInfo) error {
	if runtime.GOOS == "windows" {
		return nil // no such modes; ACLs are the operator's
	}
	if info.Mode().Perm()&0o077 != 0 {
		return &ExposedError{What: what, Path: path, Mode: info.Mode()}
	}
	return c.checkOwner(what, path, info)
}

func (c Checker) checkOwner(what, path string, info fs.FileInfo) error {
	uid, ok := owner(info)
	if ok && uid != c.UID && uid != 0 {
		return &OwnerError{What: what, Path: path, UID: uid, Want: c.UID}
	}
	return nil
}

// CheckOwned refuses a file that is not secret but must not be changed
// by anyone else (a CA's certificates, its database): owned by this user
// or root, writable by nobody else.
func CheckOwned(what, path string) error { return Mine().CheckOwned(what, path) }

// CheckOwned is the package's CheckOwned with c's rules.
func (c Checker) CheckOwned(what, path string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	info, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("%s %s: %w", what, path, err)
	}
	if info.Mode().Perm()&0o022 != 0 {
		return &ExposedError{What: what, Path: path, Mode: info.Mode(), Writable: true}
	}
	return c.checkOwner(what, path, info)
}

// CheckDir refuses a directory holding secrets that another user could
// change: the directory and every directory above it, both on the path as
// given and on the path its symbolic links resolve to, must be owned by
// this user or root and writable by nobody else, unless sticky; and every
// symbolic link on the way must be this user's or root's, since its owner
// can point it elsewhere. It does not look inside.
func CheckDir(what, path string) error { return Mine().CheckDir(what, path) }

// CheckDir is the package's CheckDir with c's rules.
func (c Checker) CheckDir(what, path string) error {
	_, err := c.RealDir(what, path)
	return err
}

// RealDir checks path as CheckDir does and returns it with its symbolic
// links resolved: open what is in it through that path, which no other
// user can redirect.
func RealDir(what, path string) (string, error) { return Mine().RealDir(what, path) }

// RealDir is the package's RealDir with c's rules.
func (c Checker) RealDir(what, path string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", fmt.Errorf("%s %s: %w", what, path, err)
	}
	if runtime.GOOS == "windows" {
		return abs, nil
	}
	// The path as given: a directory on it that another user controls, or
	// a link they own, could be swapped for one leading elsewhere, even
	// when where it leads now is fine.
	if err := c.checkGiven(what, abs); err != nil {
		return "", err
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return "", fmt.Errorf("%s %s: %w", what, path, err)
	}
	if err := c.checkChain(what, real); err != nil {
		return "", err
	}
	return real, nil
}

// checkGiven walks abs from the root, component by component, without
// resolving: each directory must pass the directory rule, each symbolic
// link the owner rule.
func (c Checker) checkGiven(what, abs string) error {
	parts := strings.Split(strings.Trim(abs, string(filepath.Separator)), string(filepath.Separator))
	cur := string(filepath.Separator)
	for i := 0; i <= len(parts); i++ {
		if i > 0 {
			if parts[i-1] == "" {
				continue
			}
			cur = filepath.Join(cur, parts[i-1])
		}
		info, err := os.Lstat(cur)
		if err != nil {
			return fmt.Errorf("%s %s: %w", what, abs, err)
		}
		last := i == len(parts)
		label := what
		if !last {
			label = fmt.Sprintf("%s's parent directory", what)
		}
		if info.Mode()&fs.ModeSymlink != 0 {
			if err := c.checkOwner(fmt.Sprintf("a symbolic link on the way to %s", what), cur, info); err != nil {
				return err
			}
			continue
		}
		if err := c.checkDirInfo(label, cur, info, last); err != nil {
			return err
		}
	}
	return nil
}

// checkLinks refuses a path on which a symbolic link (the file itself,
// or a directory on the way) belongs to someone other than this user or
// root. It follows links the way the open will, each from where it
// stands.
func (c Checker) checkLinks(what, path string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	// Not filepath.Abs, which cleans "x/.." away as text: the kernel
	// follows x first, if it is a link, and ".." goes up from where it
	// leads.
	abs := path
	if !filepath.IsAbs(path) {
		wd, err := os.Getwd()
		if err != nil {
			return fmt.Errorf("%s %s: %w", what, path, err)
		}
		abs = wd + "/" + path
	}
	pending := strings.Split(strings.Trim(abs, "/"), "/")
	cur := "/"
	for hops := 0; len(pending) > 0; {
		name := pending[0]
		pending = pending[1:]
		if name == "" || name == "." {
			continue
		}
		if name == ".." {
			cur = filepath.Dir(cur)
			continue
		}
		next := filepath.Join(cur, name)
		info, err := os.Lstat(next)
		if err != nil {
			return nil // the open reports it
		}
		if info.Mode()&fs.ModeSymlink == 0 {
			// A directory on the way that another user owns, or can
			// write without a sticky bit, lets them swap what is below
			// it between this check and the open.
			if info.IsDir() {
				if err := c.checkDirInfo(fmt.Sprintf("a directory on the way to %s", what), next, info, false); err != nil {
					return err
				}
			}
			cur = next
			continue
		}
		if err := c.checkOwner(fmt.Sprintf("a symbolic link on the way to %s", what), next, info); err != nil {
			return err
		}
		if hops++; hops > 40 {
			return fmt.Errorf("%s %s: too many levels of symbolic links", what, path)
		}
		target, err := os.Readlink(next)
		if err != nil {
			return fmt.Errorf("%s %s: %w", what, path, err)
		}
		if filepath.IsAbs(target) {
			cur = "/"
		}
		pending = append(strings.Split(strings.Trim(target, "/"), "/"), pending...)
	}
	return nil
}

// checkChain checks real, a path without symbolic links, and every
// directory above it.
func (c Checker) checkChain(what, real string) error {
	for dir, first := real, true; ; first = false {
		info, err := os.Stat(dir)
		if err != nil {
			return fmt.Errorf("%s %s: %w", what, real, err)
		}
		label := what
		if !first {
			label = fmt.Sprintf("%s's parent directory", what)
		}
		if err := c.checkDirInfo(label, dir, info, first); err != nil {
			return err
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return nil
		}
		dir = parent
	}
}

// checkDirInfo applies the directory rule; self is the secrets directory
// itself, which must not be shared even with a sticky bit.
func (c Checker) checkDirInfo(label, dir string, info fs.FileInfo, self bool) error {
	if !info.IsDir() {
		return fmt.Errorf("%s %s is not a directory", label, dir)
	}
	if err := c.checkOwner(label, dir, info); err != nil {
		return err
	}
	// The sticky bit lets others add entries but not rename or remove
	// ours; a secrets directory itself must not be sticky-shared.
	if info.Mode().Perm()&0o022 != 0 && (self || info.Mode()&fs.ModeSticky == 0) {
		return &ExposedError{What: label, Path: dir, Mode: info.Mode(), Dir: true}
	}
	return nil
}

// Generate returns a new random password: 32 characters of base64url,
// 192 bits, far past any guessing, and safe in any file or shell.
func Generate() (string, error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// WriteNew creates path holding secret and a newline, 0600, and fails
// with fs.ErrExist if it exists: a secret file is never replaced.
func WriteNew(path string, secret []byte) (err error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(path)
		}
	}()
	if _, err := f.Write(append(append([]byte(nil), secret...), '\n')); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := atomicfile.SyncDir(filepath.Dir(path)); err != nil {
		return err
	}
	return nil
}

// ErrWeak is a password shorter than MinPasswordLength.
var ErrWeak = errors.New("password too short")

// MinPasswordLength is the least a password protecting a CA key or a
// provisioner key may have: the provisioner key is served to anyone, so
// its password is all that stands between the internet and offline
// guessing.
const MinPasswordLength = 12

// MinDistinct is how many different bytes a password must hold: twelve
// spaces, or one character twelve times, is as short as one.
const MinDistinct = 5

// CheckStrength refuses a password shorter than MinPasswordLength
// characters (bytes of UTF-8 count one each: the bound is conservative),
// or made of fewer than MinDistinct different bytes.
func CheckStrength(what string, password []byte) error {
	if n := len([]rune(string(password))); n < MinPasswordLength {
		return fmt.Errorf("%s is %d characters long: at least %d are needed, because the key it encrypts can be fetched and guessed at offline: %w", what, n, MinPasswordLength, ErrWeak)
	}
	var seen [256]bool
	distinct := 0
	for _, b := range password {
		if !seen[b] {
			seen[b] = true
			distinct++
		}
	}
	if distinct < MinDistinct {
		return fmt.Errorf("%s repeats %d different characters: at least %d are needed (the key it encrypts can be fetched and guessed at offline): %w", what, distinct, MinDistinct, ErrWeak)
	}
	return nil
}
