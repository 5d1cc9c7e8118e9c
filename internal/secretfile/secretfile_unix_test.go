//go:build unix

package secretfile_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/keyless-dev/keyless/internal/secretfile"
)

// TestReadDoesNotWaitOnAnotherUsersFIFO: whoever writes a named pipe
// chooses the secret read from it (the first attack review had another
// user write the CA password into one), so its owner must be this user or
// root; and with no writer, opening it would block forever (the second
// review), so it is refused before it is opened.
func TestReadDoesNotWaitOnAnotherUsersFIFO(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "token")
	if err := syscall.Mkfifo(fifo, 0o666); err != nil {
		t.Skipf("no named pipes here: %v", err)
	}
	c := secretfile.Checker{UID: os.Geteuid() + 4242}
	if os.Geteuid() == 0 {
		if err := os.Chown(fifo, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		c = secretfile.Mine()
	}
	var oe *secretfile.OwnerError
	if _, err := c.Read("--token-file", fifo, nil); !errors.As(err, &oe) {
		t.Fatalf("another user's named pipe, no writer: %v", err)
	}
}

// TestReadOwnFIFO: this user's own named pipe still works, written after
// keyless starts reading it.
func TestReadOwnFIFO(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "token")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("no named pipes here: %v", err)
	}
	go func() {
		if w, err := os.OpenFile(fifo, os.O_WRONLY, 0); err == nil {
			w.WriteString("my-token\n")
			w.Close()
		}
	}()
	got, err := secretfile.Read("--token-file", fifo, nil)
	if err != nil || string(got) != "my-token" {
		t.Fatalf("own named pipe: %q, %v", got, err)
	}
}

// TestReadRefusesAnotherUsersLink: a symbolic link another user owns, as
// the secret file or on the way to it, could point at any of this user's
// 0600 files and choose which is read as the secret (the second attack
// review made a CA that way); this user's own links still work.
func TestReadRefusesAnotherUsersLink(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give a symbolic link to another user")
	}
	dir := t.TempDir()
	secret := filepath.Join(dir, "pw")
	if err := os.WriteFile(secret, []byte("a-good-password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	own := filepath.Join(dir, "own")
	if err := os.Symlink("pw", own); err != nil {
		t.Fatal(err)
	}
	if got, err := secretfile.Read("--password-file", own, nil); err != nil || string(got) != "a-good-password" {
		t.Fatalf("this user's own link: %q, %v", got, err)
	}
	theirs := filepath.Join(dir, "theirs")
	if err := os.Symlink(secret, theirs); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(theirs, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	theirDir := filepath.Join(dir, "d")
	if err := os.Symlink(".", theirDir); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(theirDir, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	// Through this user's link to theirs, too.
	chained := filepath.Join(dir, "chained")
	if err := os.Symlink("theirs", chained); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{theirs, filepath.Join(theirDir, "pw"), chained} {
		var oe *secretfile.OwnerError
		if _, err := secretfile.Read("--password-file", p, nil); !errors.As(err, &oe) || !strings.Contains(err.Error(), "symbolic link") {
			t.Errorf("%s: %v", p, err)
		}
	}
}

// TestReadChecksDotDotAfterALink: "link/../x" goes up from where another
// user's link leads, not from where it stands (the third attack review
// read a file the link's owner chose through /tmp/x/../../known); and a
// directory on the way that another user owns is refused.
func TestReadChecksDotDotAfterALink(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give a link and a directory to another user")
	}
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "d", "e"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "known"), []byte("chosen-by-the-link-owner\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "x")
	if err := os.Symlink(filepath.Join(dir, "d", "e"), link); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(link, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	var oe *secretfile.OwnerError
	if _, err := secretfile.Read("--password-file", link+"/../../known", nil); !errors.As(err, &oe) {
		t.Errorf("through another user's link and ..: %v", err)
	}
	theirs := filepath.Join(dir, "theirs")
	if err := os.Mkdir(theirs, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(theirs, "pw"), []byte("a-good-password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(theirs, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if _, err := secretfile.Read("--password-file", filepath.Join(theirs, "pw"), nil); !errors.As(err, &oe) || !strings.Contains(err.Error(), "directory on the way") {
		t.Errorf("in another user's directory: %v", err)
	}
}

// TestReadSymlinkLoop: a loop of links ends in an error, not a hang.
func TestReadSymlinkLoop(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	if err := os.Symlink("b", a); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("a", b); err != nil {
		t.Fatal(err)
	}
	if _, err := secretfile.Read("--password-file", a, nil); err == nil || !strings.Contains(err.Error(), "too many levels of symbolic links") {
		t.Errorf("a loop of links: %v", err)
	}
}
