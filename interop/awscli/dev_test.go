package awscli_test

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keyless-dev/keyless/internal/testkit"
)

// TestDevInstructions runs keyless dev, pastes the lines it prints into a
// shell, and checks that the AWS CLI's sts get-caller-identity names the
// same assumed role keyless dev found; then runs the control-plane
// commands it prints with the keyless-dev-admin profile (checkAdminProfile);
// then that Ctrl-C stops it.
func TestDevInstructions(t *testing.T) {
	clis := awsCLIs(t)
	dir := t.TempDir()
	keyless := testkit.Keyless(t)
	dev := exec.Command(keyless, "dev", "--dir", filepath.Join(dir, "stack"))
	dev.Env = append(os.Environ(), "XDG_CACHE_HOME="+filepath.Join(dir, "cache"))
	stdout, err := dev.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := dev.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dev.Process.Kill() })
	var out strings.Builder
	sc := bufio.NewScanner(stdout)
	deadline := time.AfterFunc(60*time.Second, func() { dev.Process.Kill() })
	for sc.Scan() {
		out.WriteString(sc.Text() + "\n")
		if strings.HasPrefix(sc.Text(), "keyless dev: serving") {
			break
		}
	}
	deadline.Stop()
	arn := regexp.MustCompile(`(?m)^arn:aws:sts::111122223333:assumed-role/keyless-dev-runner/[0-9a-f]+$`).FindString(out.String())
	if arn == "" {
		t.Fatalf("keyless dev printed no assumed-role ARN:\n%s", out.String())
	}
	// The block after "Paste these lines:", up to the blank line.
	_, block, ok := strings.Cut(out.String(), "Paste these lines:\n\n")
	if !ok {
		t.Fatalf("no instructions in:\n%s", out.String())
	}
	block, _, _ = strings.Cut(block, "\n\n")
	for _, path := range clis.paths {
		t.Run(path+"@"+clis.versions[path], func(t *testing.T) {
			// A clean environment, as in a new shell, with the AWS CLI
			// under test first on PATH.
			sh := exec.Command("sh", "-ec", block)
			sh.Env = []string{"HOME=" + filepath.Join(dir, "home"), "PATH=" + filepath.Dir(path) + ":/usr/bin:/bin",
				"XDG_CACHE_HOME=" + filepath.Join(dir, "cache"), "AWS_EC2_METADATA_DISABLED=true", "AWS_PAGER="}
			if strings.HasPrefix(path, "/root/.pyenv") || strings.Contains(path, "pyenv") {
				sh.Env = append(sh.Env, "PYENV_ROOT="+os.Getenv("PYENV_ROOT"), "PATH="+os.Getenv("PATH"))
			}
			got, err := sh.Output()
			if err != nil {
				var stderr []byte
				if ee, ok := err.(*exec.ExitError); ok {
					stderr = ee.Stderr
				}
				t.Fatalf("the pasted lines failed: %v\n%s\n--- lines:\n%s", err, stderr, block)
			}
			var id struct{ Arn string }
			if err := json.Unmarshal(got, &id); err != nil {
				t.Fatalf("aws printed %q: %v", got, err)
			}
			if id.Arn != arn {
				t.Errorf("aws sts get-caller-identity says %s; keyless dev said %s", id.Arn, arn)
			}
		})
	}
	checkAdminProfile(t, clis, dir, out.String())
	if err := dev.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	go func() {
		for sc.Scan() {
		}
	}()
	if err := dev.Wait(); err != nil {
		t.Errorf("keyless dev after Ctrl-C: %v", err)
	}
}

// checkAdminProfile runs, with every AWS CLI found, the commands keyless
// dev prints for its control plane (the keyless-dev-admin profile of
// DIR/aws-config, with --endpoint-url): rolesanywhere list-trust-anchors
// lists keyless-dev-ca, iam get-role finds keyless-dev-runner, and sts
// get-caller-identity names the operator. A CLI that reads the profile's
// per-service endpoints (services = keyless-dev-admin; AWS CLI 2.13 and
// later, 1.29 and later) runs them without --endpoint-url too; one that
// does not (Debian 12's 2.9.19) still parses the file. The operator's
// secret is never printed.
func checkAdminProfile(t *testing.T, clis clis, dir, out string) {
	stack := filepath.Join(dir, "stack")
	secret, err := os.ReadFile(filepath.Join(stack, "operator-secret"))
	if err != nil || len(strings.TrimSpace(string(secret))) != 40 {
		t.Fatalf("operator-secret: %v %q", err, secret)
	}
	if strings.Contains(out, strings.TrimSpace(string(secret))) {
		t.Errorf("keyless dev printed the operator's secret")
	}
	_, block, ok := strings.Cut(out, "With AWS_CONFIG_FILE as above:\n\n")
	if !ok {
		t.Fatalf("no control-plane instructions in:\n%s", out)
	}
	block, _, _ = strings.Cut(block, "\n\n")
	endpoint, err := os.ReadFile(filepath.Join(stack, "aws-endpoint"))
	if err != nil {
		t.Fatal(err)
	}
	url := strings.TrimSpace(string(endpoint))
	lines := strings.Split(block, "\n")
	want := []string{
		"aws --profile keyless-dev-admin rolesanywhere list-trust-anchors --endpoint-url " + url,
		"aws --profile keyless-dev-admin iam get-role --role-name keyless-dev-runner --endpoint-url " + url,
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Fatalf("keyless dev prints:\n%s\nwant:\n%s", block, strings.Join(want, "\n"))
	}
	lines = append(lines, "aws --profile keyless-dev-admin sts get-caller-identity --endpoint-url "+url)
	for _, path := range clis.paths {
		version := clis.versions[path]
		t.Run("admin/"+path+"@"+version, func(t *testing.T) {
			run := func(line string) map[string]any {
				t.Helper()
				args := strings.Fields(line)[1:]
				cmd := exec.Command(path, args...)
				cmd.Env = []string{"HOME=" + filepath.Join(dir, "home"), "PATH=" + filepath.Dir(path) + ":/usr/bin:/bin",
					"AWS_CONFIG_FILE=" + filepath.Join(stack, "aws-config"), "AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(dir, "no-credentials"),
					"AWS_EC2_METADATA_DISABLED=true", "AWS_PAGER="}
				if strings.Contains(path, "pyenv") {
					cmd.Env = append(cmd.Env, "PYENV_ROOT="+os.Getenv("PYENV_ROOT"), "PATH="+os.Getenv("PATH"))
				}
				var stderr strings.Builder
				cmd.Stderr = &stderr
				got, err := cmd.Output()
				if err != nil {
					t.Fatalf("%s: %v\n%s", line, err, stderr.String())
				}
				var v map[string]any
				if err := json.Unmarshal(got, &v); err != nil {
					t.Fatalf("%s printed %q: %v", line, got, err)
				}
				return v
			}
			check := func(lines []string) {
				t.Helper()
				list := run(lines[0])
				anchors, _ := list["trustAnchors"].([]any)
				if len(anchors) != 1 || anchors[0].(map[string]any)["name"] != "keyless-dev-ca" {
					t.Errorf("%s: %v, want keyless-dev-ca", lines[0], list)
				}
				role, _ := run(lines[1])["Role"].(map[string]any)
				if role["Arn"] != "arn:aws:iam::111122223333:role/keyless-dev-runner" {
					t.Errorf("%s: %v", lines[1], role)
				}
				if id := run(lines[2]); id["Arn"] != "arn:aws:iam::111122223333:user/keyless-dev-admin" {
					t.Errorf("%s: %v", lines[2], id)
				}
			}
			check(lines)
			if honoursServiceEndpointEnv(version) {
				// The same, with the endpoints from the profile's services
				// section only.
				var bare []string
				for _, l := range lines {
					bare = append(bare, strings.TrimSuffix(l, " --endpoint-url "+url))
				}
				check(bare)
			}
		})
	}
}
