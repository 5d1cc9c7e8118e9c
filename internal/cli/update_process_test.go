package cli_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/keyless-dev/keyless/internal/credfile"
	"github.com/keyless-dev/keyless/internal/emulator/emulatortest"
	"github.com/keyless-dev/keyless/internal/pki"
	"github.com/keyless-dev/keyless/internal/pki/pkitest"
	"github.com/keyless-dev/keyless/internal/testkit"
)

// TestUpdateDaemonSignals runs keyless update as a service would: it is
// ready once the profile is written, SIGHUP writes new credentials, and
// SIGTERM stops it with exit 0, leaving the file 0600, the other profile
// as it was, and no temporary file. With an encrypted key whose password
// comes on standard input, which can be read once, the refresh works too:
// the daemon keeps the password.
func TestUpdateDaemonSignals(t *testing.T) {
	t.Run("plain key", func(t *testing.T) { updateDaemon(t, false) })
	t.Run("encrypted key, password on stdin", func(t *testing.T) { updateDaemon(t, true) })
}

func updateDaemon(t *testing.T, encrypted bool) {
	root := pkitest.NewRoot(t, "update-root")
	inter := root.Intermediate(t, "update-int")
	emu := emulatortest.New(t, nil, root.Cert)
	dir := t.TempDir()
	key := pkitest.Key(t, pkitest.P256)
	keyPEM, err := pki.EncodePrivateKey(key)
	if encrypted {
		keyPEM, err = pki.EncryptPrivateKey(key, []byte("correct horse battery"))
	}
	if err != nil {
		t.Fatal(err)
	}
	crt := pkitest.WriteFile(t, dir, "runner.crt", pki.EncodeCertificates(inter.Leaf(t, pkitest.LeafOptions{Key: key}), inter.Cert))
	keyFile := pkitest.WriteFile(t, dir, "runner.key", keyPEM)
	awsDir := filepath.Join(t.TempDir(), "aws")
	file := filepath.Join(awsDir, "credentials")
	const other = "[other]\n# mine\naws_access_key_id = AKIAOTHER\n"
	os.Mkdir(awsDir, 0o700)
	os.WriteFile(file, []byte(other), 0o600)

	n := testkit.ListenNotify(t)
	var stderr bytes.Buffer
	d := exec.Command("keyless", "update", "--profile", "ci", "--certificate", crt, "--private-key", keyFile,
		"--trust-anchor-arn", emu.TrustAnchorARN, "--profile-arn", emu.ProfileARN, "--role-arn", emu.RoleARN, "--endpoint", emu.URL)
	if encrypted {
		d.Args = append(d.Args, "--pkcs8-password-file", "-")
		d.Stdin = strings.NewReader("correct horse battery\n")
	}
	d.Stderr, d.Env = &stderr, append(os.Environ(), n.Env, "AWS_SHARED_CREDENTIALS_FILE="+file)
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Process.Kill() })
	n.WaitFor(t, "READY=1")
	n.WaitFor(t, "STATUS=profile ci: credentials until") // the first write's
	read := func() credfile.Credentials {
		t.Helper()
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(string(data), other+"\n[ci]\n") {
			t.Fatalf("file:\n%s", data)
		}
		c, _ := credfile.Get(data, "ci")
		if !emu.Emulator.Known(c.AccessKeyID) {
			t.Fatalf("the profile holds credentials the emulator did not issue")
		}
		return c
	}
	first := read()
	if err := d.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if m := n.WaitFor(t, "STATUS="); !strings.HasPrefix(m, "STATUS=profile ci: credentials until") {
		t.Fatalf("after SIGHUP: %s\n%s", m, stderr.Bytes())
	}
	if c := read(); c == first {
		t.Fatal("SIGHUP did not write new credentials")
	}
	if err := d.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	n.WaitFor(t, "STOPPING=1")
	if err := d.Wait(); err != nil {
		t.Fatalf("after SIGTERM: %v\n%s", err, stderr.Bytes())
	}
	if info, err := os.Stat(file); err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v %v", info, err)
	}
	if names := testkit.DirNames(t, awsDir); len(names) != 1 {
		t.Fatalf("left in the directory: %v", names)
	}
	if strings.Contains(stderr.String(), first.SecretAccessKey) || strings.Contains(stderr.String(), first.SessionToken) {
		t.Fatal("the log holds a secret")
	}
}
