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
// same assumed role keyless dev found, then that Ctrl-C stops it.
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
