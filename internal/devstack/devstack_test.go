package devstack_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/keyless-dev/keyless/internal/devstack"
	"github.com/keyless-dev/keyless/internal/sigv4"
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
		checkAdmin(t, s, path, profile)
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

// checkAdmin: the operator key is new for each run, its secret only in
// 0600 files (never in the profile text keyless dev prints), the admin
// profile points every control-plane service at the emulator, and the
// key lists the dev trust anchor through the control plane.
func checkAdmin(t *testing.T, s *devstack.Stack, configPath, printed string) {
	t.Helper()
	creds := s.OperatorCredentials()
	if !regexp.MustCompile(`^AKIA[A-Z2-7]{16}$`).MatchString(creds.AccessKeyID) || len(creds.SecretAccessKey) != 40 {
		t.Errorf("operator key %s, secret of %d characters; want AKIA and 16 of A-Z2-7, 40 characters", creds.AccessKeyID, len(creds.SecretAccessKey))
	}
	if seen[creds.AccessKeyID] {
		t.Errorf("operator key %s reused from an earlier run", creds.AccessKeyID)
	}
	seen[creds.AccessKeyID] = true
	if strings.Contains(printed, creds.SecretAccessKey) {
		t.Errorf("the printed profile holds the operator's secret")
	}
	config, err := os.ReadFile(configPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"[profile keyless-dev-admin]\n", "aws_access_key_id = " + creds.AccessKeyID + "\n", "aws_secret_access_key = " + creds.SecretAccessKey + "\n",
		"services = keyless-dev-admin\n", "[services keyless-dev-admin]\n", "rolesanywhere =\n  endpoint_url = " + s.AWSURL + "\n",
		"iam =\n  endpoint_url = " + s.AWSURL + "\n", "sts =\n  endpoint_url = " + s.AWSURL + "\n"} {
		if !strings.Contains(string(config), want) {
			t.Errorf("aws-config lacks %q:\n%s", want, config)
		}
	}
	if info, err := os.Stat(s.OperatorSecretPath); err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("%s: %v %v, want 0600", s.OperatorSecretPath, err, info.Mode().Perm())
	}
	seed, err := os.ReadFile(filepath.Join(s.Dir, "emulator.yaml"))
	if err != nil || strings.Contains(string(seed), creds.SecretAccessKey) {
		t.Errorf("the seed (0644) holds the operator's secret, or: %v", err)
	}
	req, err := http.NewRequest(http.MethodGet, s.AWSURL+"/trustanchors", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := sigv4.SignHMAC(req, nil, creds, devstack.Region, "rolesanywhere", time.Now()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var list struct {
		TrustAnchors []struct{ Name, TrustAnchorArn string }
	}
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil || resp.StatusCode != 200 || len(list.TrustAnchors) != 1 ||
		list.TrustAnchors[0].Name != devstack.TrustAnchor || list.TrustAnchors[0].TrustAnchorArn != s.TrustAnchorARN {
		t.Errorf("ListTrustAnchors as the operator: %d %+v %v", resp.StatusCode, list, err)
	}
}

var seen = map[string]bool{}
