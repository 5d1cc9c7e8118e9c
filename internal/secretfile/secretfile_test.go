package secretfile_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/keyless-dev/keyless/internal/secretfile"
)

func write(t *testing.T, data string, mode fs.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(p, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil { // past the umask
		t.Fatal(err)
	}
	return p
}

func TestReadFirstLine(t *testing.T) {
	for _, tc := range []struct{ name, data, want string }{
		{"bare", "hunter2hunter2", "hunter2hunter2"},
		{"newline", "hunter2hunter2\n", "hunter2hunter2"},
		{"crlf", "hunter2hunter2\r\n", "hunter2hunter2"},
		// The comment a user adds below, or a second password, is not
		// part of the secret.
		{"two lines", "first line\nsecond line\n", "first line"},
		{"spaces kept", " pass phrase \n", " pass phrase "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := secretfile.Read("--password-file", write(t, tc.data, 0o600), nil)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestReadStdin(t *testing.T) {
	got, err := secretfile.Read("--token-file", "-", strings.NewReader("eyJ.token.sig\n"))
	if err != nil || string(got) != "eyJ.token.sig" {
		t.Fatalf("got %q, %v", got, err)
	}
	if _, err := secretfile.Read("--token-file", "-", nil); err == nil {
		t.Error("no stdin: want an error")
	}
	var ee *secretfile.EmptyError
	if _, err := secretfile.Read("--token-file", "-", strings.NewReader("")); !errors.As(err, &ee) || ee.Path != "(standard input)" {
		t.Errorf("empty stdin: got %v", err)
	}
}

// Each refusal breaks one rule of a file that is otherwise fine.
func TestReadRefuses(t *testing.T) {
	t.Run("group-readable", func(t *testing.T) {
		var ee *secretfile.ExposedError
		_, err := secretfile.Read("--password-file", write(t, "longenoughpassword", 0o640), nil)
		if !errors.As(err, &ee) || ee.Mode.Perm() != 0o640 || !strings.Contains(err.Error(), "--password-file") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("others-writable", func(t *testing.T) {
		var ee *secretfile.ExposedError
		if _, err := secretfile.Read("--token-file", write(t, "tok", 0o602), nil); !errors.As(err, &ee) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("another user's", func(t *testing.T) {
		// The file is ours; a checker for another uid sees it as a
		// stranger's, which is what a real stranger's file looks like.
		p := write(t, "tok", 0o600)
		other := secretfile.Checker{UID: os.Geteuid() + 4242}
		if os.Geteuid() == 0 {
			// Root's files are always acceptable; hand this one to
			// nobody to see the check for real.
			if err := os.Chown(p, 65534, 65534); err != nil {
				t.Fatal(err)
			}
			other = secretfile.Mine()
		}
		var oe *secretfile.OwnerError
		if _, err := other.Read("--token-file", p, nil); !errors.As(err, &oe) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("empty first line", func(t *testing.T) {
		var ee *secretfile.EmptyError
		if _, err := secretfile.Read("--password-file", write(t, "\npassword on line two\n", 0o600), nil); !errors.As(err, &ee) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("too large", func(t *testing.T) {
		var te *secretfile.TooLargeError
		if _, err := secretfile.Read("--password-file", write(t, strings.Repeat("x", secretfile.MaxSize+1), 0o600), nil); !errors.As(err, &te) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("directory", func(t *testing.T) {
		if _, err := secretfile.Read("--password-file", t.TempDir(), nil); err == nil || !strings.Contains(err.Error(), "is a directory") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("missing", func(t *testing.T) {
		if _, err := secretfile.Read("--password-file", filepath.Join(t.TempDir(), "nope"), nil); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("got %v", err)
		}
	})
}

// A pipe has no mode to get wrong: bash's <(...) gives one.
func TestReadPipe(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	go func() { w.WriteString("from a pipe\n"); w.Close() }()
	defer r.Close()
	got, err := secretfile.Read("--password-file", "/dev/fd/"+strconv.Itoa(int(r.Fd())), nil)
	if err != nil || string(got) != "from a pipe" {
		t.Fatalf("got %q, %v", got, err)
	}
}

func TestCheckDir(t *testing.T) {
	base := t.TempDir() // under /tmp: sticky and world-writable, which is fine
	ok := filepath.Join(base, "ca")
	if err := os.Mkdir(ok, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := secretfile.CheckDir("the CA directory", ok); err != nil {
		t.Fatalf("a private directory: %v", err)
	}

	t.Run("writable by others", func(t *testing.T) {
		d := filepath.Join(base, "open")
		os.Mkdir(d, 0o700)
		os.Chmod(d, 0o777)
		var ee *secretfile.ExposedError
		if err := secretfile.CheckDir("the CA directory", d); !errors.As(err, &ee) || !ee.Dir {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("sticky is not enough for the directory itself", func(t *testing.T) {
		d := filepath.Join(base, "sticky")
		os.Mkdir(d, 0o700)
		os.Chmod(d, 0o777|fs.ModeSticky)
		var ee *secretfile.ExposedError
		if err := secretfile.CheckDir("the CA directory", d); !errors.As(err, &ee) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("a parent others can write", func(t *testing.T) {
		p := filepath.Join(base, "parent")
		os.Mkdir(p, 0o700)
		d := filepath.Join(p, "ca")
		os.Mkdir(d, 0o700)
		os.Chmod(p, 0o775)
		var ee *secretfile.ExposedError
		err := secretfile.CheckDir("the CA directory", d)
		if !errors.As(err, &ee) || ee.Path != p || !strings.Contains(err.Error(), "parent directory") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("a parent behind a symbolic link", func(t *testing.T) {
		p := filepath.Join(base, "linked")
		os.Mkdir(p, 0o700)
		os.Mkdir(filepath.Join(p, "ca"), 0o700)
		os.Chmod(p, 0o777)
		link := filepath.Join(t.TempDir(), "link")
		if err := os.Symlink(p, link); err != nil {
			t.Fatal(err)
		}
		var ee *secretfile.ExposedError
		if err := secretfile.CheckDir("the CA directory", filepath.Join(link, "ca")); !errors.As(err, &ee) || ee.Path != p {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("another user's", func(t *testing.T) {
		d := filepath.Join(base, "theirs")
		os.Mkdir(d, 0o700)
		c := secretfile.Checker{UID: os.Geteuid() + 4242}
		if os.Geteuid() == 0 {
			if err := os.Chown(d, 65534, 65534); err != nil {
				t.Fatal(err)
			}
			c = secretfile.Mine()
		}
		var oe *secretfile.OwnerError
		if err := c.CheckDir("the CA directory", d); !errors.As(err, &oe) {
			t.Fatalf("got %v", err)
		}
	})
}

func TestGenerateAndWriteNew(t *testing.T) {
	pw, err := secretfile.Generate()
	if err != nil {
		t.Fatal(err)
	}
	if err := secretfile.CheckStrength("generated", []byte(pw)); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "pw")
	if err := secretfile.WriteNew(p, []byte(pw)); err != nil {
		t.Fatal(err)
	}
	got, err := secretfile.Read("--password-file", p, nil)
	if err != nil || string(got) != pw {
		t.Fatalf("read back %q, %v", got, err)
	}
	if err := secretfile.WriteNew(p, []byte("other")); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("second write: %v, want fs.ErrExist", err)
	}
	if got, _ := secretfile.Read("--password-file", p, nil); string(got) != pw {
		t.Fatal("the existing secret was replaced")
	}
}

func TestCheckStrength(t *testing.T) {
	if err := secretfile.CheckStrength("--password-file pw", []byte("elevenchars")); !errors.Is(err, secretfile.ErrWeak) {
		t.Errorf("11 characters: %v", err)
	}
	if err := secretfile.CheckStrength("--password-file pw", []byte("twelve chars")); err != nil {
		t.Errorf("12 characters: %v", err)
	}
	// Characters, not bytes: é is two bytes.
	// Long enough, but a handful of characters repeated (the second
	// attack review: twelve spaces, twelve 0xff bytes).
	for _, pw := range []string{"            ", "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", "abcdabcdabcdabcd"} {
		if err := secretfile.CheckStrength("--password-file pw", []byte(pw)); !errors.Is(err, secretfile.ErrWeak) || !strings.Contains(err.Error(), "different characters") {
			t.Errorf("%q: %v", pw, err)
		}
	}
	if err := secretfile.CheckStrength("x", []byte("ééééééééééé")); !errors.Is(err, secretfile.ErrWeak) {
		t.Errorf("11 two-byte characters: %v", err)
	}
}

func TestCheckOwned(t *testing.T) {
	if err := secretfile.CheckOwned("the root certificate", write(t, "cert", 0o644)); err != nil {
		t.Fatalf("0644: %v", err)
	}
	var ee *secretfile.ExposedError
	if err := secretfile.CheckOwned("the root certificate", write(t, "cert", 0o664)); !errors.As(err, &ee) || !ee.Writable {
		t.Fatalf("0664: %v", err)
	}
	p := write(t, "cert", 0o644)
	c := secretfile.Checker{UID: os.Geteuid() + 4242}
	if os.Geteuid() == 0 {
		if err := os.Chown(p, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		c = secretfile.Mine()
	}
	var oe *secretfile.OwnerError
	if err := c.CheckOwned("the root certificate", p); !errors.As(err, &oe) {
		t.Fatalf("another user's: %v", err)
	}
}

// TestCheckDirPathAsGiven: a directory reached through another user's
// symbolic link, or through a directory another user owns, is refused
// even though where it leads now is fine: that user can repoint it (the
// attack review swapped a CA's configuration this way before a reload).
func TestCheckDirPathAsGiven(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give a link and a directory to another user")
	}
	base := t.TempDir()
	good := filepath.Join(base, "ca")
	if err := os.Mkdir(good, 0o700); err != nil {
		t.Fatal(err)
	}
	theirs := filepath.Join(base, "home-of-someone")
	if err := os.Mkdir(theirs, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(theirs, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	inTheirs := filepath.Join(theirs, "ca-link")
	if err := os.Symlink(good, inTheirs); err != nil {
		t.Fatal(err)
	}
	var oe *secretfile.OwnerError
	if err := secretfile.CheckDir("the CA directory", inTheirs); !errors.As(err, &oe) || oe.Path != theirs {
		t.Errorf("through another user's directory: %v", err)
	}
	theirLink := filepath.Join(base, "their-link")
	if err := os.Symlink(good, theirLink); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(theirLink, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if err := secretfile.CheckDir("the CA directory", theirLink); !errors.As(err, &oe) || oe.Path != theirLink {
		t.Errorf("through another user's link: %v", err)
	}
	ours := filepath.Join(base, "our-link")
	if err := os.Symlink(good, ours); err != nil {
		t.Fatal(err)
	}
	real, err := secretfile.RealDir("the CA directory", ours)
	if err != nil || real != good {
		t.Errorf("through our own link: %q, %v", real, err)
	}
}
