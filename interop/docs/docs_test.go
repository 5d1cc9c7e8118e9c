package docs_test

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/keyless-dev/keyless/internal/testkit"
	"github.com/keyless-dev/keyless/interop/docs"
)

func TestMain(m *testing.M) { os.Exit(testkit.Main(m).Run()) }

// repoRoot is the keyless repository, two levels above this module.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	mod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil || !strings.HasPrefix(string(mod), "module github.com/keyless-dev/keyless\n") {
		t.Fatalf("%s is not the keyless repository: %v", root, err)
	}
	return root
}

// documents parses README.md and docs/*.md, and returns their names (in
// that order) and blocks.
func documents(t *testing.T, root string) ([]string, map[string][]docs.Block) {
	t.Helper()
	names := []string{"README.md"}
	more, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range more {
		names = append(names, "docs/"+filepath.Base(m))
	}
	all := map[string][]docs.Block{}
	for _, name := range names {
		b, err := os.ReadFile(filepath.Join(root, name))
		if err != nil {
			t.Fatal(err)
		}
		if all[name], err = docs.Parse(name, string(b)); err != nil {
			t.Fatal(err)
		}
	}
	return names, all
}

// plans returns each document's session, leaving out documents with
// nothing to run.
func plans(t *testing.T, names []string, all map[string][]docs.Block) ([]string, map[string][]docs.Step) {
	t.Helper()
	var run []string
	steps := map[string][]docs.Step{}
	for _, name := range names {
		s, err := docs.Plan(all, name)
		if err != nil {
			t.Fatal(err)
		}
		if slices.ContainsFunc(s, func(s docs.Step) bool { return s.Kind == docs.Run || s.Kind == docs.RunInterrupt }) {
			run = append(run, name)
			steps[name] = s
		}
	}
	return run, steps
}

// TestDirectives needs no Docker: every document parses, its doc-test
// comments are known and in place, its session can be planned, and the
// scripts/test block names a script that runs the interop modules. It
// lists the blocks the docs test does not run.
func TestDirectives(t *testing.T) {
	root := repoRoot(t)
	names, all := documents(t, root)
	_, steps := plans(t, names, all)
	checkSelf(t, root, all)
	checkMacOSOnly(t, names, all)
	logNotRun(t, names, steps)
}

// checkSelf: the block the test cannot run (scripts/test, which runs this
// test) must at least name an executable script that runs every interop
// module, this one among them.
func checkSelf(t *testing.T, root string, all map[string][]docs.Block) {
	t.Helper()
	found := false
	for _, blocks := range all {
		for _, b := range blocks {
			found = found || (b.Command() && strings.TrimSpace(b.Script()) == docs.SelfCommand)
		}
	}
	if !found {
		return
	}
	path := filepath.Join(root, docs.SelfCommand)
	fi, err := os.Stat(path)
	if err != nil || fi.Mode()&0o111 == 0 {
		t.Fatalf("the documents run %s, which is missing or not executable: %v", docs.SelfCommand, err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^for module in interop/\*/; do$`).Match(b) {
		t.Errorf("%s no longer runs every interop module (for module in interop/*/), so the docs test's reason for not running it is wrong", docs.SelfCommand)
	}
}

// logNotRun lists every block a session leaves out, and why.
func logNotRun(t *testing.T, names []string, steps map[string][]docs.Step) {
	t.Helper()
	seen := map[string]bool{}
	var lines []string
	for _, name := range names {
		for _, s := range steps[name] {
			if (s.Kind == docs.Skip || s.Kind == docs.Self) && !seen[s.Block.Where()] {
				seen[s.Block.Where()] = true
				lines = append(lines, fmt.Sprintf("  %s: %s", s.Block.Where(), s.Why))
			}
		}
	}
	t.Logf("blocks not run (%d):\n%s", len(lines), strings.Join(lines, "\n"))
}

// TestDocs runs every document's command blocks, as written, one session
// per document in a container of its own (see harness). Each block must
// end with status 0, within blockLimit.
func TestDocs(t *testing.T) {
	root := repoRoot(t)
	names, all := documents(t, root)
	run, steps := plans(t, names, all)
	// Longest first: the sessions run in parallel, at most -parallel at
	// a time.
	slices.SortStableFunc(run, func(a, b string) int { return count(steps[b]) - count(steps[a]) })
	h := newHarness(t, root)
	t.Run("documents", func(t *testing.T) {
		for _, name := range run {
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				h.session(t, name, steps[name])
			})
		}
	})
	logNotRun(t, names, steps)
}

func count(steps []docs.Step) int {
	n := 0
	for _, s := range steps {
		if s.Kind == docs.Run || s.Kind == docs.RunInterrupt {
			n++
		}
	}
	return n
}

// secretRE finds what a block's output may hold that the test log must
// not: credentials (the emulator's, but credentials all the same) and
// tokens (JWTs and JWEs).
var secretRE = regexp.MustCompile(`((?i:secretAccessKey|sessionToken)"\s*:\s*"|(?:AWS_SECRET_ACCESS_KEY|AWS_SESSION_TOKEN)=)[^"\s]+|eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_.-]+`)

func redact(s string) string {
	return secretRE.ReplaceAllStringFunc(s, func(m string) string {
		if sub := secretRE.FindStringSubmatch(m); sub[1] != "" {
			return sub[1] + "REDACTED"
		}
		return "REDACTED-TOKEN"
	})
}

// tail is the end of a block's output, for a failure report.
func tail(lines []string) string {
	const max = 150
	if len(lines) > max {
		lines = append([]string{fmt.Sprintf("[%d lines before]", len(lines)-max)}, lines[len(lines)-max:]...)
	}
	var b strings.Builder
	for _, l := range lines {
		b.WriteString("    | " + redact(l) + "\n")
	}
	return b.String()
}

// lines reads r line by line, without bufio.Scanner's line limit.
func lines(r *bufio.Reader, each func(string)) {
	for {
		l, err := r.ReadString('\n')
		if l != "" {
			each(strings.TrimSuffix(l, "\n"))
		}
		if err != nil {
			return
		}
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		`{"AccessKeyId": "ASIA1", "SecretAccessKey": "abc/def+1", "SessionToken": "tok=="}`: `{"AccessKeyId": "ASIA1", "SecretAccessKey": "REDACTED", "SessionToken": "REDACTED"}`,
		`export AWS_SECRET_ACCESS_KEY=abc AWS_SESSION_TOKEN=xyz`:                            `export AWS_SECRET_ACCESS_KEY=REDACTED AWS_SESSION_TOKEN=REDACTED`,
		`token eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln done`:                              `token REDACTED-TOKEN done`,
		`keyless ca: serving https://10.0.0.5:9000`:                                         `keyless ca: serving https://10.0.0.5:9000`,
	} {
		if got := redact(in); got != want {
			t.Errorf("redact(%q) = %q, want %q", in, got, want)
		}
	}
}
