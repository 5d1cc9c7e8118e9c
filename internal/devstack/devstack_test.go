package devstack_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keyless-dev/keyless/internal/devstack"
)

func start(t *testing.T, dir string) *devstack.Stack {
	t.Helper()
	s, err := devstack.New(devstack.Config{Dir: dir, ListenCA: "127.0.0.1:0", ListenAWS: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestWholeChain runs every step as keyless dev does: the assumed role
// STS names is the one CreateSession gave, and a kept directory's CA is
// reused.
func TestWholeChain(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "stack")
	ctx := context.Background()
	for run, wantReused := range []bool{false, true} {
		s := start(t, dir)
		if err := s.StartCA(); err != nil || s.ReusedCA != wantReused {
			t.Fatalf("run %d: StartCA: %v, reused %v", run, err, s.ReusedCA)
		}
		if err := s.StartEmulator(); err != nil {
			t.Fatal(err)
		}
		leaf, err := s.Enroll(ctx)
		if err != nil || leaf.Subject.CommonName != devstack.Subject {
			t.Fatalf("Enroll: %v", err)
		}
		res, err := s.CreateSession(ctx)
		if err != nil || !strings.HasPrefix(res.AssumedRoleARN, "arn:aws:sts::111122223333:assumed-role/keyless-dev-runner/") {
			t.Fatalf("CreateSession: %+v %v", res, err)
		}
		id, err := s.CallerIdentity(ctx)
		if err != nil || id.Arn != res.AssumedRoleARN {
			t.Fatalf("CallerIdentity: %+v %v, want %s", id, err, res.AssumedRoleARN)
		}
		path, profile, err := s.WriteAWSConfig("/usr/local/bin/keyless")
		if err != nil || !strings.Contains(profile, "credential_process = /usr/local/bin/keyless credential-process --certificate "+s.CertPath) {
			t.Fatalf("WriteAWSConfig: %v\n%s", err, profile)
		}
		if info, err := os.Stat(path); err != nil || info.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v", path, err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	// A temporary stack leaves nothing behind.
	s := start(t, "")
	if err := s.StartCA(); err != nil {
		t.Fatal(err)
	}
	tmp := s.Dir
	s.Close()
	if _, err := os.Stat(tmp); !os.IsNotExist(err) {
		t.Errorf("the temporary stack %s is still there: %v", tmp, err)
	}
}

func TestLoopbackOnly(t *testing.T) {
	for _, c := range []devstack.Config{{ListenCA: "0.0.0.0:0", ListenAWS: "127.0.0.1:0"}, {ListenCA: "127.0.0.1:0", ListenAWS: "[::]:8443"}, {ListenCA: "nonsense", ListenAWS: "127.0.0.1:0"}} {
		var ae *devstack.AddressError
		if _, err := devstack.New(c); !errors.As(err, &ae) || !errors.Is(err, devstack.ErrNotLoopback) {
			t.Errorf("%+v: got %v", c, err)
		}
	}
}
