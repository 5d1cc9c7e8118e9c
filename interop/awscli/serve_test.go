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

	"github.com/keyless-dev/keyless/internal/emulator/emulatortest"
	"github.com/keyless-dev/keyless/internal/pki/pkitest"
	"github.com/keyless-dev/keyless/internal/testkit"
)

// TestCredentialsFromServe: every AWS CLI here, with no profile, no keys
// and only AWS_EC2_METADATA_SERVICE_ENDPOINT, gets credentials from
// keyless serve over IMDSv2 and calls STS on the emulator with them; with
// the endpoint gone it finds none.
func TestCredentialsFromServe(t *testing.T) {
	clis := awsCLIs(t)
	dir := t.TempDir()
	root := pkitest.NewRoot(t, "serve-root")
	inter := root.Intermediate(t, "serve-int")
	emu := emulatortest.New(t, nil, root.Cert)
	crt, keyFile := inter.WriteIdentity(t, dir)
	url, _, _ := testkit.Serve(t, testkit.Keyless(t), nil, "--certificate", crt, "--private-key", keyFile,
		"--trust-anchor-arn", emu.TrustAnchorARN, "--profile-arn", emu.ProfileARN, "--role-arn", emu.RoleARN,
		"--endpoint", emu.URL, "--port", "0")

	empty := pkitest.WriteFile(t, dir, "empty", nil)
	home := filepath.Join(dir, "home")
	os.MkdirAll(home, 0o700)
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AWS_") && !strings.HasPrefix(kv, "KEYLESS_") && !strings.HasPrefix(kv, "HOME=") {
			env = append(env, kv)
		}
	}
	env = append(env, "HOME="+home, "AWS_CONFIG_FILE="+empty, "AWS_SHARED_CREDENTIALS_FILE="+empty, "AWS_PAGER=")
	for _, path := range clis.paths {
		t.Run(path+"@"+clis.versions[path], func(t *testing.T) {
			cmd := exec.Command(path, "sts", "get-caller-identity", "--region", "us-east-1", "--endpoint-url", emu.URL, "--output", "json")
			cmd.Env = append(append([]string(nil), env...), "AWS_EC2_METADATA_SERVICE_ENDPOINT="+url)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("aws sts get-caller-identity through keyless serve at %s: %v\n%s", url, err, stderr.Bytes())
			}
			var id struct{ Arn string }
			if err := json.Unmarshal(out, &id); err != nil {
				t.Fatalf("aws printed %q: %v", out, err)
			}
			if !regexp.MustCompile(`^arn:aws:sts::111122223333:assumed-role/ci-deployer/[0-9a-f]+$`).MatchString(id.Arn) {
				t.Errorf("STS says %s", id.Arn)
			}

			// The same CLI with IMDS pointed at nothing has no credentials:
			// the answer above came from keyless serve.
			cmd = exec.Command(path, "sts", "get-caller-identity", "--region", "us-east-1", "--endpoint-url", emu.URL)
			cmd.Env = append(append([]string(nil), env...), "AWS_EC2_METADATA_SERVICE_ENDPOINT=http://127.0.0.1:1/",
				"AWS_METADATA_SERVICE_TIMEOUT=1", "AWS_METADATA_SERVICE_NUM_ATTEMPTS=1")
			if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "credentials") {
				t.Errorf("without keyless serve: %v %s", err, out)
			}
		})
	}
}
