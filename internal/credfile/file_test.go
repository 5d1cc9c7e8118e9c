package credfile

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"testing"

	"github.com/keyless-dev/keyless/internal/secretfile"
)

var testCreds = Credentials{AccessKeyID: "ASIA1", SecretAccessKey: "S1", SessionToken: "T1"}

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	info, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	return info.Mode()
}

func names(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var n []string
	for _, e := range entries {
		n = append(n, e.Name())
	}
	return n
}

// TestWriteCreatesPrivately: a missing directory is made 0700, the file
// 0600, and nothing else is left in the directory.
func TestWriteCreatesPrivately(t *testing.T) {
	dir := filepath.Join(t.TempDir(), ".aws")
	w := &Writer{Path: filepath.Join(dir, "credentials")}
	ch, err := w.Write("default", testCreds)
	if err != nil || !ch.Created {
		t.Fatalf("%+v %v", ch, err)
	}
	if m := mode(t, dir); m.Perm() != 0o700 {
		t.Errorf("directory mode %v, want 0700", m)
	}
	if m := mode(t, w.Path); m.Perm() != 0o600 {
		t.Errorf("file mode %v, want 0600", m)
	}
	if n := names(t, dir); !slices.Equal(n, []string{"credentials"}) {
		t.Errorf("directory holds %v, want the file alone", n)
	}
	data, _ := os.ReadFile(w.Path)
	if c, ok := Get(data, "default"); !ok || c != testCreds {
		t.Errorf("read back %+v", c)
	}
}

// TestWriteTightensMode: a file others could read is replaced by one
// they cannot, with the other profiles in it.
func TestWriteTightensMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "credentials")
	if err := os.WriteFile(path, []byte("[other]\nk = v\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chmod(path, 0o644)
	w := &Writer{Path: path}
	if _, err := w.Write("ci", testCreds); err != nil {
		t.Fatal(err)
	}
	if m := mode(t, path); m.Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", m)
	}
	data, _ := os.ReadFile(path)
	if want := "[other]\nk = v\n\n[ci]\naws_access_key_id = ASIA1\naws_secret_access_key = S1\naws_session_token = T1\n"; string(data) != want {
		t.Errorf("file %q, want %q", data, want)
	}
}

// TestWriteRefuses: each refusal leaves the file (or link) as it was.
func TestWriteRefuses(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no modes or links to check on Windows")
	}
	t.Run("symlink", func(t *testing.T) {
		dir := t.TempDir()
		target := filepath.Join(dir, "real")
		os.WriteFile(target, []byte("[default]\n"), 0o600)
		path := filepath.Join(dir, "credentials")
		if err := os.Symlink(target, path); err != nil {
			t.Fatal(err)
		}
		_, err := (&Writer{Path: path}).Write("default", testCreds)
		var fe *FileError
		if !errors.Is(err, ErrSymlink) || !errors.As(err, &fe) || fe.Path != path {
			t.Fatalf("got %v, want ErrSymlink for %s", err, path)
		}
		if mode(t, path)&os.ModeSymlink == 0 {
			t.Error("the link was replaced")
		}
		if data, _ := os.ReadFile(target); string(data) != "[default]\n" {
			t.Errorf("the link's target was changed: %q", data)
		}
	})
	t.Run("not a file", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "credentials")
		os.Mkdir(path, 0o700)
		if _, err := (&Writer{Path: path}).Write("default", testCreds); !errors.Is(err, ErrNotRegular) {
			t.Fatalf("got %v, want ErrNotRegular", err)
		}
	})
	t.Run("directory others can write", func(t *testing.T) {
		dir := t.TempDir()
		os.Chmod(dir, 0o777)
		path := filepath.Join(dir, "credentials")
		os.WriteFile(path, []byte("[default]\n"), 0o600)
		_, err := (&Writer{Path: path}).Write("default", testCreds)
		var exp *secretfile.ExposedError
		if !errors.As(err, &exp) || !exp.Dir {
			t.Fatalf("got %v, want an exposed directory", err)
		}
		if data, _ := os.ReadFile(path); string(data) != "[default]\n" {
			t.Errorf("file changed: %q", data)
		}
	})
	t.Run("duplicate profile", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "credentials")
		old := "[ci]\n[ci]\n"
		os.WriteFile(path, []byte(old), 0o600)
		_, err := (&Writer{Path: path}).Write("ci", testCreds)
		var dup *DuplicateProfileError
		var fe *FileError
		if !errors.As(err, &dup) || !errors.As(err, &fe) {
			t.Fatalf("got %v, want a duplicate profile in a FileError", err)
		}
		if data, _ := os.ReadFile(path); string(data) != old {
			t.Errorf("file changed: %q", data)
		}
		if n := names(t, filepath.Dir(path)); len(n) != 1 {
			t.Errorf("left behind: %v", n)
		}
	})
}

// TestWriteWaitsForTheLock: a writer holding the directory's lock makes
// another wait, and both profiles end up in the file.
func TestWriteWaitsForTheLock(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no flock on Windows")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "credentials")
	holder := &Writer{Path: path}
	release := holder.lock(dir)
	waiting := make(chan struct{})
	w := &Writer{Path: path, waiting: func() { close(waiting) }}
	done := make(chan error, 1)
	go func() {
		_, err := w.Write("b", testCreds)
		done <- err
	}()
	<-waiting
	// While b waits, a is written (as the holder would, under its lock).
	data, _, err := Set(nil, "a", testCreds)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	release()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	data, _ = os.ReadFile(path)
	for _, p := range []string{"a", "b"} {
		if _, ok := Get(data, p); !ok {
			t.Errorf("profile %s lost: %q", p, data)
		}
	}
}

func TestPath(t *testing.T) {
	home, err := os.UserHomeDir()
	if err != nil {
		t.Skip(err)
	}
	for env, want := range map[string]string{
		"":               filepath.Join(home, ".aws", "credentials"),
		"/etc/aws/creds": "/etc/aws/creds",
		"~/creds":        filepath.Join(home, "creds"),
		"relative/creds": "relative/creds",
		"~other/x":       "~other/x",
	} {
		got, err := Path(func(string) string { return env })
		if err != nil || got != want {
			t.Errorf("%s=%q: got %q %v, want %q", EnvFile, env, got, err, want)
		}
	}
}
