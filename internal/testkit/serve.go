package testkit

import (
	"bufio"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// EndpointLine is how keyless serve prints its URL once it serves.
const EndpointLine = "export AWS_EC2_METADATA_SERVICE_ENDPOINT="

// Serve starts `keyless serve` (the binary at bin) with args and env
// added to the test's environment, waits for the URL it prints once it
// serves, and returns it with the process. When the test ends the process
// gets SIGTERM and must exit 0. Its standard error is in the returned
// Buffer.
func Serve(t testing.TB, bin string, env []string, args ...string) (string, *exec.Cmd, *Buffer) {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"serve"}, args...)...)
	cmd.Env = append(cmd.Environ(), env...)
	stderr := &Buffer{}
	cmd.Stderr = stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if u, ok := strings.CutPrefix(sc.Text(), EndpointLine); ok {
				urls <- u
			}
		}
		exited <- cmd.Wait()
	}()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("keyless serve exited with %v on SIGTERM:\n%s", err, stderr)
			}
		case <-time.After(time.Minute):
			cmd.Process.Kill()
			t.Errorf("keyless serve did not stop within a minute of SIGTERM:\n%s", stderr)
		}
	})
	limit := time.NewTimer(time.Minute)
	defer limit.Stop()
	select {
	case u := <-urls:
		return u, cmd, stderr
	case err := <-exited:
		exited <- err
		t.Fatalf("keyless serve exited (%v) before serving:\n%s", err, stderr)
	case <-limit.C:
		t.Fatalf("keyless serve printed no URL within a minute:\n%s", stderr)
	}
	return "", nil, nil
}
