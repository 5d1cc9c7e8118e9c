package atomicfile_test

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/keyless-dev/keyless/internal/atomicfile"
	"github.com/keyless-dev/keyless/internal/testkit"
)

// A writer process for TestCleanupAfterKilledWriter: it makes a
// temporary file for the target named in the environment, writes a key
// into it, says its name and waits to be killed.
func TestMain(m *testing.M) {
	if target := os.Getenv("ATOMICFILE_TEST_WRITER"); target != "" {
		f, err := atomicfile.CreateLocked(filepath.Dir(target), atomicfile.TempPrefix+filepath.Base(target)+"-")
		if err != nil {
			os.Exit(3)
		}
		f.WriteString("-----BEGIN PRIVATE KEY-----\n")
		os.Stdout.WriteString(f.Name() + "\n")
		select {}
	}
	os.Exit(m.Run())
}

// TestCleanupAfterKilledWriter: a live writer's temporary file is left
// alone; once the writer is SIGKILLed, the next WriteFile of the same
// target removes it, key and all.
func TestCleanupAfterKilledWriter(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no flock: Windows cleans up by age")
	}
	dir := t.TempDir()
	target := filepath.Join(dir, "runner.key")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "ATOMICFILE_TEST_WRITER="+target)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("the writer said nothing: %v", err)
	}
	tmp := strings.TrimSpace(line)

	if removed := atomicfile.Cleanup(target); len(removed) != 0 {
		t.Fatalf("removed a live writer's file: %v", removed)
	}
	if err := atomicfile.WriteFile(target, []byte("new key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(tmp); err != nil {
		t.Fatalf("a live writer's file went away: %v", err)
	}

	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	if err := atomicfile.WriteFile(target, []byte("newer key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := testkit.DirNames(t, dir); !slices.Equal(got, []string{"runner.key"}) {
		t.Fatalf("after the writer died and the target was written again: %v", got)
	}
}

// TestCleanupScope: Cleanup(path) removes only path's leftovers;
// CleanupDir removes every target's; neither touches other files.
func TestCleanupScope(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{".tmp-runner.key-1", ".tmp-runner.crt-2", ".tmp-runner.key.bak-3", "runner.key", ".tmp-notes"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if removed := atomicfile.Cleanup(filepath.Join(dir, "runner.key")); len(removed) != 1 || filepath.Base(removed[0]) != ".tmp-runner.key-1" {
		t.Fatalf("Cleanup removed %v", removed)
	}
	atomicfile.CleanupDir(dir)
	if got := testkit.DirNames(t, dir); !slices.Equal(got, []string{"runner.key"}) {
		t.Fatalf("after CleanupDir: %v", got)
	}
}
