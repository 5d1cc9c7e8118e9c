package awscli_test

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/keyless-dev/keyless/internal/testkit"
)

// TestUpdateProfileReadByCLI: keyless update --once writes a profile into
// the shared credentials file beside one the user wrote, and every AWS CLI
// on the machine reads it and calls the emulator's STS with it (a SigV4
// signature over the secret and the session token); the user's profile is
// still there, byte for byte.
func TestUpdateProfileReadByCLI(t *testing.T) {
	clis := awsCLIs(t)
	s := newSetup(t, clis.paths[0], true)
	credentials := filepath.Join(s.dir, "credentials")
	mine := "# written by hand\n[default]\naws_access_key_id = AKIAIOSFODNN7EXAMPLE\naws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n"
	if err := os.WriteFile(credentials, []byte(mine), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(testkit.Keyless(t), "update", "--once", "--profile", "updated",
		"--certificate", filepath.Join(s.dir, "runner.crt"), "--private-key", filepath.Join(s.dir, "runner.key"),
		"--trust-anchor-arn", s.emu.TrustAnchorARN, "--profile-arn", s.emu.ProfileARN, "--role-arn", s.emu.RoleARN,
		"--endpoint", s.emu.URL)
	cmd.Env = s.env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if out, err := cmd.Output(); err != nil || !strings.HasPrefix(string(out), "keyless: wrote profile updated in "+credentials) {
		t.Fatalf("keyless update --once: %v: %s\n%s", err, out, stderr.Bytes())
	}
	data, err := os.ReadFile(credentials)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(data), mine+"\n[updated]\naws_access_key_id = ASIA") {
		t.Fatalf("credentials file:\n%s", data)
	}
	if info, _ := os.Stat(credentials); info.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", info.Mode())
	}
	for _, path := range clis.paths {
		version := clis.versions[path]
		t.Run(path+"@"+version, func(t *testing.T) {
			s.aws = path
			args := []string{"sts", "get-caller-identity", "--profile", "updated", "--region", "us-east-1", "--output", "json", "--endpoint-url", s.emu.URL}
			out := s.run(t, args...)
			var id struct{ Arn string }
			if err := json.Unmarshal(out, &id); err != nil {
				t.Fatalf("aws printed %q: %v", out, err)
			}
			if !regexp.MustCompile(`^arn:aws:sts::111122223333:assumed-role/ci-deployer/[0-9a-f]+$`).MatchString(id.Arn) {
				t.Errorf("Arn = %q", id.Arn)
			}
		})
	}
}
