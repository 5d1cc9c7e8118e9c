package cli_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keyless-dev/keyless/internal/ca"
)

// TestTokenNeverOnTheCommandLine enrols with a token from each safe
// source, and shows that a token given on the command line, or in a file
// others can read, is refused before it reaches the CA: the same token
// still works afterwards, so nothing was spent that a local attacker
// reading /proc could have raced for.
func TestTokenNeverOnTheCommandLine(t *testing.T) {
	p := newCAProcess(t)
	p.start()
	dir := t.TempDir()
	rootFlags := []string{"--ca-url", p.url, "--root", filepath.Join(p.dir, "certs", "root_ca.crt")}
	token := func(name string) (file, tok string) {
		t.Helper()
		file = filepath.Join(dir, name+".token")
		run(t, "ca", "token", "gitlab-runner", "--dir", p.dir, "--password-file", p.pwFile, "--out", file)
		info, err := os.Stat(file)
		if err != nil {
			t.Fatal(err)
		}
		if info.Mode().Perm() != 0o600 {
			t.Fatalf("ca token --out wrote mode %04o, want 0600", info.Mode().Perm())
		}
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		return file, strings.TrimSpace(string(data))
	}
	certificate := func(name string, stdin string, env []string, extra ...string) (string, int) {
		t.Helper()
		args := append([]string{"certificate", "gitlab-runner", filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")}, rootFlags...)
		cmd := exec.Command("keyless", append(args, extra...)...)
		cmd.Stdin = strings.NewReader(stdin)
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return string(out), ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return string(out), 0
	}

	// On the command line: refused, exit 2, with the safe forms.
	file, tok := token("argv")
	out, code := certificate("argv", "", nil, "--token", tok)
	if code != 2 || !strings.Contains(out, "--token takes no secret on the command line") || !strings.Contains(out, "KEYLESS_TOKEN") {
		t.Fatalf("--token on argv: exit %d\n%s", code, out)
	}
	if strings.Contains(out, tok) {
		t.Fatal("the refusal repeats the token")
	}
	// In a file others can read: refused, and still unspent.
	if err := os.Chmod(file, 0o644); err != nil {
		t.Fatal(err)
	}
	out, code = certificate("exposed", "", nil, "--token-file", file)
	if code != 1 || !strings.Contains(out, "has mode 0644") {
		t.Fatalf("a readable token file: exit %d\n%s", code, out)
	}
	if err := os.Chmod(file, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, code = certificate("file", "", nil, "--token-file", file); code != 0 {
		t.Fatalf("the refused token, from its file, afterwards: exit %d\n%s", code, out)
	}

	// Standard input, as in: ssh ca-host keyless ca token ... | keyless certificate ... --token-file -
	_, tok = token("stdin")
	if out, code = certificate("stdin", tok+"\n", nil, "--token-file", "-"); code != 0 {
		t.Fatalf("--token-file -: exit %d\n%s", code, out)
	}
	// The environment.
	_, tok = token("env")
	if out, code = certificate("env", "", []string{"KEYLESS_TOKEN=" + tok}); code != 0 {
		t.Fatalf("KEYLESS_TOKEN: exit %d\n%s", code, out)
	}
	if strings.Contains(out, "warning") {
		t.Errorf("KEYLESS_TOKEN warned:\n%s", out)
	}
	// Both a file and the variable: which one was meant is unclear.
	file, tok = token("both")
	if out, code = certificate("both", "", []string{"KEYLESS_TOKEN=" + tok}, "--token-file", file); code != 2 {
		t.Fatalf("--token-file and KEYLESS_TOKEN: exit %d\n%s", code, out)
	}
}

// TestWeakPasswordOfAnOlderCAIsWarnedAbout: a CA made before keyless
// refused short passwords still opens, with a warning each time, since
// its provisioner key is served to anyone to guess at.
func TestWeakPasswordOfAnOlderCAIsWarnedAbout(t *testing.T) {
	dir := t.TempDir()
	caDir := filepath.Join(dir, "ca")
	if _, err := ca.Init(caDir, ca.InitOptions{Name: "Old CA", DNSNames: []string{"127.0.0.1"}, Address: "127.0.0.1:0", Provisioner: "p", Password: []byte("abc"), Allow: []string{"x"}}); err != nil {
		t.Fatal(err)
	}
	pw := filepath.Join(dir, "pw")
	if err := os.WriteFile(pw, []byte("abc\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("keyless", "ca", "token", "x", "--dir", caDir, "--password-file", pw).CombinedOutput()
	if err != nil {
		t.Fatalf("ca token: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "keyless: warning: the provisioner's password is 3 characters long: at least 12 are needed") {
		t.Errorf("no warning:\n%s", out)
	}
}
