package release_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keyless-dev/keyless/internal/testkit"
	"github.com/keyless-dev/keyless/interop/release"
)

// smallDist writes a few files and their SHA256SUMS into a new directory.
func smallDist(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	write(t, filepath.Join(dir, "b.tar.gz"), "bee")
	write(t, filepath.Join(dir, "a.zip"), "ay")
	write(t, filepath.Join(dir, "keyless.rb"), "class Keyless\nend\n")
	if _, err := release.WriteSums(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestWriteSums(t *testing.T) {
	dir := smallDist(t)
	b, err := os.ReadFile(filepath.Join(dir, release.SumsName))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(lines) != 3 || !strings.HasSuffix(lines[0], "  a.zip") || !strings.HasSuffix(lines[1], "  b.tar.gz") || !strings.HasSuffix(lines[2], "  keyless.rb") {
		t.Errorf("SHA256SUMS =\n%s\nwant a.zip, b.tar.gz, keyless.rb in order, nothing else", b)
	}
	if err := release.Verify(dir); err != nil {
		t.Errorf("Verify(fresh dist) = %v", err)
	}
}

// Each case breaks exactly one thing Verify checks and expects the refusal
// to name the file.
func TestVerifyRefuses(t *testing.T) {
	for _, c := range []struct {
		name, want string
		breakIt    func(t *testing.T, dir string)
	}{
		{"a changed byte", "b.tar.gz: SHA-256", func(t *testing.T, dir string) { write(t, filepath.Join(dir, "b.tar.gz"), "bea") }},
		{"a listed file missing", "a.zip: listed but missing", func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, "a.zip")) }},
		{"an unlisted file", "extra.deb: in the directory but not listed", func(t *testing.T, dir string) { write(t, filepath.Join(dir, "extra.deb"), "x") }},
		{"no SHA256SUMS", "SHA256SUMS", func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, release.SumsName)) }},
		{"an empty SHA256SUMS", "lists no files", func(t *testing.T, dir string) { write(t, filepath.Join(dir, release.SumsName), "") }},
		{"a line that is not a sum", "line 1", func(t *testing.T, dir string) {
			write(t, filepath.Join(dir, release.SumsName), "xyz  a.zip\n")
		}},
		{"a CRLF line", "line 1", func(t *testing.T, dir string) {
			b, _ := os.ReadFile(filepath.Join(dir, release.SumsName))
			write(t, filepath.Join(dir, release.SumsName), strings.ReplaceAll(string(b), "\n", "\r\n"))
		}},
		{"a path with a directory", "line 1", func(t *testing.T, dir string) {
			write(t, filepath.Join(dir, release.SumsName), strings.Repeat("0", 64)+"  ../a.zip\n")
		}},
		{"a cut-short file", "no newline", func(t *testing.T, dir string) {
			b, _ := os.ReadFile(filepath.Join(dir, release.SumsName))
			write(t, filepath.Join(dir, release.SumsName), strings.TrimSuffix(string(b), "\n"))
		}},
		{"a file listed twice", "listed twice", func(t *testing.T, dir string) {
			b, _ := os.ReadFile(filepath.Join(dir, release.SumsName))
			first := strings.SplitAfter(string(b), "\n")[0]
			write(t, filepath.Join(dir, release.SumsName), first+string(b))
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := smallDist(t)
			c.breakIt(t, dir)
			err := release.Verify(dir)
			if !errors.Is(err, release.ErrVerify) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Verify = %v, want ErrVerify saying %q", err, c.want)
			}
		})
	}
}

func TestStageAndPublish(t *testing.T) {
	parent := t.TempDir()
	source := filepath.Join(parent, "src")
	dist := filepath.Join(parent, "dist")
	if err := os.Mkdir(source, 0o755); err != nil {
		t.Fatal(err)
	}
	testkit.Git(t, source, "init", "-q") // Stage asks git what the checkout tracks

	// A first release: dist does not exist yet.
	tmp, err := release.Stage(dist, source, false)
	if err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(tmp, "one.tar.gz"), "1")
	if _, err := release.WriteSums(tmp); err != nil {
		t.Fatal(err)
	}
	if err := release.Publish(tmp, dist); err != nil {
		t.Fatal(err)
	}
	// A second release replaces it entirely.
	tmp, err = release.Stage(dist, source, false)
	if err != nil {
		t.Fatalf("Stage over a previous release = %v", err)
	}
	write(t, filepath.Join(tmp, "two.tar.gz"), "2")
	if _, err := release.WriteSums(tmp); err != nil {
		t.Fatal(err)
	}
	if err := release.Publish(tmp, dist); err != nil {
		t.Fatal(err)
	}
	if err := release.Verify(dist); err != nil {
		t.Error(err)
	}
	if _, err := os.Stat(filepath.Join(dist, "one.tar.gz")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the first release's file survived the second: %v", err)
	}
	entries, _ := os.ReadDir(parent)
	for _, e := range entries {
		if e.Name() != "dist" && e.Name() != "src" {
			t.Errorf("%s left beside dist", e.Name())
		}
	}

	// The check: a dist holding a file its SHA256SUMS does not list is
	// someone's, and is not replaced without force.
	write(t, filepath.Join(dist, "notes.txt"), "mine")
	if _, err := release.Stage(dist, source, false); !errors.Is(err, release.ErrForeignDist) || !strings.Contains(err.Error(), "notes.txt") || !strings.Contains(err.Error(), "--force") {
		t.Errorf("Stage over a dist with notes.txt = %v, want ErrForeignDist naming notes.txt and --force", err)
	}
	os.Remove(filepath.Join(dist, release.SumsName))
	if _, err := release.Stage(dist, source, false); !errors.Is(err, release.ErrForeignDist) {
		t.Errorf("Stage over a dist without SHA256SUMS = %v, want ErrForeignDist", err)
	}
	tmp, err = release.Stage(dist, source, true)
	if err != nil {
		t.Errorf("Stage with force = %v", err)
	} else {
		os.RemoveAll(tmp)
	}

	// A dist that is, or contains, the checkout is never replaced.
	for _, d := range []string{source, parent} {
		if _, err := release.Stage(d, source, true); err == nil || !strings.Contains(err.Error(), "contains the checkout") {
			t.Errorf("Stage(%s, source %s, force) = %v, want a refusal", d, source, err)
		}
	}
	// A file where dist should be.
	write(t, filepath.Join(parent, "file"), "x")
	if _, err := release.Stage(filepath.Join(parent, "file"), source, true); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("Stage over a file = %v, want a refusal", err)
	}
}

// ParseSums is strict, so whatever it accepts is exactly what FormatSums
// writes for the result; and it never panics.
func FuzzParseSums(f *testing.F) {
	h := strings.Repeat("ab", 32)
	f.Add([]byte(h + "  a.zip\n" + h + "  b.tar.gz\n"))
	f.Add([]byte(h + " *a.zip\n"))
	f.Add([]byte(h + "  ../x\n"))
	f.Add([]byte(""))
	f.Add([]byte(h + "  a.zip\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		sums, err := release.ParseSums(b)
		if err != nil {
			return
		}
		if got := release.FormatSums(sums); string(got) != string(b) {
			t.Errorf("ParseSums accepted %q, which FormatSums writes as %q", b, got)
		}
	})
}
