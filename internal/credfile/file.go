package credfile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/keyless-dev/keyless/internal/atomicfile"
	"github.com/keyless-dev/keyless/internal/logline"
	"github.com/keyless-dev/keyless/internal/secretfile"
)

// EnvFile is the variable that names the credentials file, as in the AWS
// CLI and SDKs.
const EnvFile = "AWS_SHARED_CREDENTIALS_FILE"

// MaxSize bounds the file Write reads: a credentials file is a few
// kilobytes; anything far larger is not one.
const MaxSize = 1 << 20

// DefaultLockTimeout bounds the wait for another keyless process's
// rewrite, which takes milliseconds; past it Write goes on without the
// lock (logging a warning) rather than leave credentials to expire
// because someone holds the lock forever.
const DefaultLockTimeout = 10 * time.Second

// Path returns the credentials file: AWS_SHARED_CREDENTIALS_FILE (with a
// leading ~/ expanded, as botocore does), else ~/.aws/credentials.
func Path(getenv func(string) string) (string, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	p := getenv(EnvFile)
	if p != "" && p != "~" && !strings.HasPrefix(p, "~/") {
		return p, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("finding the credentials file: %w (set %s)", err, EnvFile)
	}
	if p == "" {
		return filepath.Join(home, ".aws", "credentials"), nil
	}
	return filepath.Join(home, strings.TrimPrefix(p, "~")), nil
}

// FileError is a credentials file Write refuses to replace, or could not
// read or write. Path is the file.
type FileError struct {
	Path string
	Err  error
}

func (e *FileError) Error() string { return fmt.Sprintf("credentials file %s: %v", e.Path, e.Err) }
func (e *FileError) Unwrap() error { return e.Err }

// ErrSymlink is a credentials file that is a symbolic link. Replacing it
// atomically would replace the link with a file, silently breaking
// whatever the link was for (a dotfiles repository, a shared mount);
// writing through it would write wherever the link points. So Write
// refuses it: point AWS_SHARED_CREDENTIALS_FILE at the link's target.
var ErrSymlink = errors.New("is a symbolic link; keyless replaces the file atomically, which would replace the link, so it does not write through links")

// ErrNotRegular is a credentials file that is a directory, a pipe or a
// device.
var ErrNotRegular = errors.New("is not a regular file")

// Writer rewrites one credentials file.
type Writer struct {
	// Path is the credentials file.
	Path string
	// LockTimeout defaults to DefaultLockTimeout.
	LockTimeout time.Duration
	// Logger receives the warning when the lock could not be had; nil
	// discards. Credentials are never logged.
	Logger *slog.Logger

	// waiting, when set (by tests), is called when the lock is held by
	// someone else and Write starts waiting for it.
	waiting func()
}

// Write sets the profile's credentials in the file: it makes the file's
// directory (0700) if it is missing, checks that the directory is this
// user's alone to change (secretfile's rule), takes the directory's lock,
// reads the file (a missing one is empty), edits it with Set, and
// replaces it atomically with mode 0600. On any error the file is left as
// it was.
func (w *Writer) Write(profile string, c Credentials) (Change, error) {
	if err := CheckProfile(profile); err != nil {
		return Change{}, err
	}
	dir := filepath.Dir(w.Path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Change{}, &FileError{Path: w.Path, Err: err}
	}
	// The file's directory must be this user's (or root's) and writable
	// by nobody else, or another user could swap the file between our
	// read and our rename.
	real, err := secretfile.RealDir("the credentials file's directory", dir)
	if err != nil {
		return Change{}, err
	}
	path := filepath.Join(real, filepath.Base(w.Path))
	unlock := w.lock(real)
	defer unlock()
	old, err := read(path)
	if err != nil {
		return Change{}, &FileError{Path: w.Path, Err: err}
	}
	data, ch, err := Set(old, profile, c)
	if err != nil {
		return Change{}, &FileError{Path: w.Path, Err: err}
	}
	if err := atomicfile.WriteFile(path, data, 0o600); err != nil {
		return Change{}, &FileError{Path: w.Path, Err: err}
	}
	return ch, nil
}

// read returns the file's content, nothing when it is missing, and
// refuses a link or anything but a regular file.
func read(path string) ([]byte, error) {
	info, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if info.Mode()&fs.ModeSymlink != 0 {
		return nil, ErrSymlink
	}
	if !info.Mode().IsRegular() {
		return nil, ErrNotRegular
	}
	f, err := openNoFollow(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if got, err := f.Stat(); err != nil || !os.SameFile(info, got) {
		return nil, errors.New("changed while it was being opened; try again")
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxSize {
		return nil, fmt.Errorf("is over %d KiB: that is not a credentials file", MaxSize>>10)
	}
	return data, nil
}

func (w *Writer) logger() *slog.Logger { return logline.Or(w.Logger) }
