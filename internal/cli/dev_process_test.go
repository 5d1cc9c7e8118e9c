package cli_test

import (
	"bufio"
	"net"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keyless-dev/keyless/internal/testkit"
)

// TestDevStopsCleanly runs keyless dev until it serves, then sends the
// Ctrl-C signal: it must exit 0, and its CA and emulator must be gone.
func TestDevStopsCleanly(t *testing.T) {
	cmd := exec.Command("keyless", "dev", "--dir", t.TempDir())
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr testkit.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	var out strings.Builder
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		out.WriteString(sc.Text() + "\n")
		if strings.HasPrefix(sc.Text(), "keyless dev: serving") {
			break
		}
	}
	if !strings.Contains(out.String(), "keyless dev: serving") {
		t.Fatalf("keyless dev did not reach serving:\n%s\n%s", out.String(), stderr.String())
	}
	var addrs []string
	for _, m := range regexp.MustCompile(`(?:https?)://(127\.0\.0\.1:\d+)`).FindAllStringSubmatch(out.String(), -1) {
		addrs = append(addrs, m[1])
	}
	if len(addrs) < 2 {
		t.Fatalf("no addresses in:\n%s", out.String())
	}
	for _, want := range []string{"[profile keyless-dev]", "credential_process = ", "export AWS_CONFIG_FILE=", "export AWS_ENDPOINT_URL_STS=http://127.0.0.1:", "aws sts get-caller-identity",
		"aws --profile keyless-dev-admin rolesanywhere list-trust-anchors --endpoint-url http://127.0.0.1:"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the instructions lack %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "aws_secret_access_key") {
		t.Errorf("keyless dev printed the admin profile's secret:\n%s", out.String())
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		for sc.Scan() {
		}
		done <- cmd.Wait()
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit after Ctrl-C: %v\n%s", err, stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("keyless dev did not stop within 15 s of Ctrl-C")
	}
	for _, a := range addrs {
		if c, err := net.DialTimeout("tcp", a, time.Second); err == nil {
			c.Close()
			t.Errorf("%s still accepts connections after keyless dev stopped", a)
		}
	}
}
