// Package svcunittest checks service definitions with the real tools that
// read them: systemd's own unit parser (systemd-analyze verify and
// security, and the service manager's test mode, which prints every
// setting as systemd understood it) and Python's plistlib. A missing tool
// skips the test with what to install, or fails it when
// KEYLESS_INTEROP=require.
//
// Tests only.
package svcunittest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/keyless-dev/keyless/internal/testkit"
)

// WriteUnit writes unit as name.service in a new directory that any user
// may read (systemd's test mode runs unprivileged) and returns its path.
func WriteUnit(t testing.TB, name, unit string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "svcunit-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name+".service")
	if err := os.WriteFile(path, []byte(unit), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func analyze(t testing.TB) string {
	t.Helper()
	return testkit.LookPath(t, "systemd-analyze", "systemd (Debian: apt-get install systemd)")
}

// Verify runs systemd-analyze verify on the unit file at path and fails t
// if systemd finds anything wrong with it, such as an unparsable line or
// a program that does not exist.
func Verify(t testing.TB, path string) {
	t.Helper()
	cmd := exec.Command(analyze(t), "verify", "--man=no", path)
	cmd.Env = append(os.Environ(), "SYSTEMD_COLORS=0", "SYSTEMD_PAGER=")
	out, err := cmd.CombinedOutput()
	if err != nil || bytes.Contains(out, []byte(filepath.Base(path))) {
		t.Errorf("systemd-analyze verify %s: %v\n%s", path, err, out)
	}
}

var overallRE = regexp.MustCompile(`Overall exposure level for \S+: ([0-9]+(?:\.[0-9]+)?)`)

// Exposure returns the overall exposure level `systemd-analyze security
// --offline=yes` gives the unit file at path: 0 (sandboxed) to 10 (not
// at all).
func Exposure(t testing.TB, path string) float64 {
	t.Helper()
	cmd := exec.Command(analyze(t), "security", "--offline=yes", "--no-pager", path)
	cmd.Env = append(os.Environ(), "SYSTEMD_COLORS=0", "SYSTEMD_PAGER=")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze security --offline=yes %s: %v\n%s", path, err, out)
	}
	m := overallRE.FindSubmatch(out)
	if m == nil {
		t.Fatalf("no overall exposure level in systemd-analyze security's output:\n%s", out)
	}
	v, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("systemd-analyze security --offline=yes %s: %s\n%s", filepath.Base(path), m[1], out)
	return v
}

// Parsed is a unit as systemd's service manager understood it.
type Parsed struct {
	// Settings are the unit's "Key: value" lines in systemd's dump
	// (Description, User, ProtectHome, ReadWritePaths...); a key given
	// several times keeps the last.
	Settings map[string]string
	// Exec holds the command lines of ExecStart, ExecReload...: each
	// the program and its arguments as systemd keeps them, before it
	// substitutes variables (see Args).
	Exec map[string][][]string
}

// Parse loads the unit file at path into systemd's service manager, in
// its test mode (`systemd --test --system`, which loads units and prints
// them, and starts nothing), and returns what systemd made of it.
func Parse(t testing.TB, path string) Parsed {
	t.Helper()
	manager := ""
	for _, p := range []string{"/lib/systemd/systemd", "/usr/lib/systemd/systemd"} {
		if _, err := os.Stat(p); err == nil {
			manager = p
			break
		}
	}
	if manager == "" {
		testkit.Unavailable(t, "systemd's service manager (/lib/systemd/systemd) not found; install systemd")
	}
	name := filepath.Base(path)
	cmd := exec.Command(manager, "--test", "--system", "--unit="+name)
	// The trailing colon keeps systemd's own directories, for the
	// targets the unit names.
	cmd.Env = append(os.Environ(), "SYSTEMD_UNIT_PATH="+filepath.Dir(path)+":", "SYSTEMD_COLORS=0")
	if os.Geteuid() == 0 {
		// systemd refuses to run its test mode as root.
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		testkit.Unavailable(t, "systemd --test --system could not run here: %v\n%s", err, stderr.Bytes())
	}
	p, err := parseDump(string(out), name)
	if err != nil {
		t.Fatalf("%v\nstderr:\n%s", err, stderr.Bytes())
	}
	if state := p.Settings["Unit Load State"]; state != "loaded" {
		t.Fatalf("systemd did not load %s: load state %q\nstderr:\n%s", path, state, stderr.Bytes())
	}
	return p
}

// parseDump reads unit's block from systemd's dump: lines "\t-> Unit
// NAME:", then "\t\tKey: value", with "\t\t-> ExecStart:" followed by
// "\t\t\tCommand Line: ...".
func parseDump(dump, unit string) (Parsed, error) {
	p := Parsed{Settings: map[string]string{}, Exec: map[string][][]string{}}
	lines := strings.Split(dump, "\n")
	start := -1
	for i, l := range lines {
		if l == "\t-> Unit "+unit+":" {
			start = i + 1
			break
		}
	}
	if start < 0 {
		return p, fmt.Errorf("systemd's dump has no unit %s", unit)
	}
	exec := ""
	for _, l := range lines[start:] {
		switch {
		case strings.HasPrefix(l, "\t\t\tCommand Line: ") && exec != "":
			argv, err := commandLine(strings.TrimPrefix(l, "\t\t\tCommand Line: "))
			if err != nil {
				return p, fmt.Errorf("%s: %w", exec, err)
			}
			p.Exec[exec] = append(p.Exec[exec], argv)
		case strings.HasPrefix(l, "\t\t-> "):
			exec = strings.TrimSuffix(strings.TrimPrefix(l, "\t\t-> "), ":")
		case strings.HasPrefix(l, "\t\t") && !strings.HasPrefix(l, "\t\t\t"):
			exec = ""
			k, v, _ := strings.Cut(strings.TrimPrefix(l, "\t\t"), ": ")
			p.Settings[k] = v
		case !strings.HasPrefix(l, "\t\t"):
			return p, nil
		}
	}
	return p, nil
}

// commandLine splits a command line as systemd dumps it: words quoted
// like a shell's when they need it, "...", with \ before " \ ` and $.
func commandLine(s string) ([]string, error) {
	var argv []string
	for s != "" {
		var w strings.Builder
		if s[0] == '"' {
			i := 1
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) {
					i++
				}
				w.WriteByte(s[i])
			}
			if i >= len(s) {
				return nil, fmt.Errorf("unterminated quote in %q", s)
			}
			s = s[i+1:]
		} else {
			end := strings.IndexByte(s, ' ')
			if end < 0 {
				end = len(s)
			}
			w.WriteString(s[:end])
			s = s[end:]
		}
		argv = append(argv, w.String())
		s = strings.TrimPrefix(s, " ")
	}
	return argv, nil
}

// Args does to a command line what systemd does when it starts the
// program: in the arguments (not the program), "$$" becomes "$". A
// variable that would expand is an error: the program would not get
// what the unit meant to pass.
func Args(argv []string) ([]string, error) {
	out := append([]string(nil), argv...)
	for i := 1; i < len(out); i++ {
		a, err := substitute(out[i])
		if err != nil {
			return nil, err
		}
		out[i] = a
	}
	return out, nil
}

func substitute(a string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(a); i++ {
		if a[i] != '$' || i+1 == len(a) {
			b.WriteByte(a[i])
			continue
		}
		switch c := a[i+1]; {
		case c == '$':
			b.WriteByte('$')
			i++
		case c == '{' || c == '_' || 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z':
			return "", fmt.Errorf("argument %q: systemd would expand a variable in it", a)
		default:
			b.WriteByte('$')
		}
	}
	return b.String(), nil
}

// Plist parses a property list with Python's plistlib and returns it as
// JSON values (dict as map[string]any, array as []any, integer as
// float64, true as bool).
func Plist(t testing.TB, plist string) map[string]any {
	t.Helper()
	py := testkit.LookPath(t, "python3", "Python 3 (Debian: apt-get install python3)")
	cmd := exec.Command(py, "-c", "import json, plistlib, sys; json.dump(plistlib.loads(sys.stdin.buffer.read()), sys.stdout)")
	cmd.Stdin = strings.NewReader(plist)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("plistlib refuses the property list: %v\n%s\n%s", err, stderr.Bytes(), plist)
		}
		t.Fatal(err)
	}
	var v map[string]any
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatalf("plistlib's JSON: %v\n%s", err, out)
	}
	return v
}
