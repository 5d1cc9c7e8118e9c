package awscli_test

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keyless-dev/keyless/internal/emulator/emulatortest"
	"github.com/keyless-dev/keyless/internal/pki"
	"github.com/keyless-dev/keyless/internal/pki/pkitest"
	"github.com/keyless-dev/keyless/internal/rolesanywhere/rolesanywheretest"
	"github.com/keyless-dev/keyless/internal/testkit"
)

const (
	taARN   = rolesanywheretest.TrustAnchorARN
	profARN = rolesanywheretest.ProfileARN
	roleARN = rolesanywheretest.RoleARN
)

// awsV2 finds AWS CLI v2 (which has `configure export-credentials`): the
// aws on PATH, else Debian's /usr/bin/aws.
func awsV2(t *testing.T) string {
	t.Helper()
	clis := awsCLIs(t)
	for _, path := range clis.paths {
		if strings.HasPrefix(clis.versions[path], "2.") {
			return path
		}
	}
	testkit.Unavailable(t, "AWS CLI v2 not found (found %v); install the Debian awscli package", clis.versions)
	return ""
}

type setup struct {
	aws, dir string
	env      []string
	srv      *rolesanywheretest.Server // the fake endpoint, unless emulated
	emu      *emulatortest.Server      // the emulator, when emulated
}

// newSetup builds keyless and writes an AWS CLI config whose profile
// "keyless" runs keyless credential-process against a loopback endpoint:
// the fake endpoint (which counts sessions), or with emulated the
// emulator, whose STS the CLI can call too.
func newSetup(t *testing.T, aws string, emulated bool) *setup {
	t.Helper()
	dir := t.TempDir()
	keyless := testkit.Keyless(t)

	root := pkitest.NewRoot(t, "awscli-root")
	inter := root.Intermediate(t, "awscli-int")
	key := pkitest.Key(t, pkitest.P256)
	leaf := inter.Leaf(t, pkitest.LeafOptions{Key: key})
	keyPEM, err := pki.EncodePrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	cert := pkitest.WriteFile(t, dir, "runner.crt", pki.EncodeCertificates(leaf, inter.Cert))
	keyFile := pkitest.WriteFile(t, dir, "runner.key", keyPEM)

	s := &setup{aws: aws, dir: dir}
	endpoint, ta, prof, role := "", taARN, profARN, roleARN
	if emulated {
		s.emu = emulatortest.New(t, nil, root.Cert)
		endpoint, ta, prof, role = s.emu.URL, s.emu.TrustAnchorARN, s.emu.ProfileARN, s.emu.RoleARN
	} else {
		s.srv = rolesanywheretest.NewServer()
		t.Cleanup(s.srv.Close)
		s.srv.Roots = x509Pool(root)
		s.srv.Region = "us-east-1"
		endpoint = s.srv.URL
	}

	config := fmt.Sprintf("[profile keyless]\nregion = us-east-1\ncredential_process = %s credential-process --certificate %s --private-key %s --trust-anchor-arn %s --profile-arn %s --role-arn %s --endpoint %s\n",
		keyless, cert, keyFile, ta, prof, role, endpoint)
	configFile := pkitest.WriteFile(t, dir, "config", []byte(config))
	credentialsFile := pkitest.WriteFile(t, dir, "credentials", nil)
	home := filepath.Join(dir, "home")
	os.MkdirAll(home, 0o700)

	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AWS_") && !strings.HasPrefix(kv, "KEYLESS_") && !strings.HasPrefix(kv, "HOME=") && !strings.HasPrefix(kv, "XDG_CACHE_HOME=") {
			env = append(env, kv)
		}
	}
	env = append(env, "HOME="+home, "XDG_CACHE_HOME="+filepath.Join(dir, "cache"),
		"AWS_CONFIG_FILE="+configFile, "AWS_SHARED_CREDENTIALS_FILE="+credentialsFile,
		"AWS_EC2_METADATA_DISABLED=true", "AWS_PAGER=")
	s.env = env
	return s
}

func (s *setup) run(t *testing.T, args ...string) []byte {
	t.Helper()
	return s.runEnv(t, nil, args...)
}

func (s *setup) runEnv(t *testing.T, extraEnv []string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(s.aws, args...)
	cmd.Env = append(append([]string(nil), s.env...), extraEnv...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("aws %s: %v\n%s", strings.Join(args, " "), err, stderr.Bytes())
	}
	return out
}

type processCreds struct {
	Version         int
	AccessKeyId     string
	SecretAccessKey string
	SessionToken    string
	Expiration      string
}

// TestHundredCommandsOneSession: the AWS CLI runs credential_process for
// every command; with keyless's cache, 100 consecutive commands cost one
// CreateSession and all see the same credentials.
func TestHundredCommandsOneSession(t *testing.T) {
	s := newSetup(t, awsV2(t), false)
	var first processCreds
	for i := 0; i < 100; i++ {
		out := s.run(t, "configure", "export-credentials", "--profile", "keyless", "--format", "process")
		var got processCreds
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("command %d: AWS CLI printed %q: %v", i+1, out, err)
		}
		if got.Version != 1 || !strings.HasPrefix(got.AccessKeyId, "ASIA") || got.SessionToken == "" || got.Expiration == "" {
			t.Fatalf("command %d: credentials %+v", i+1, got)
		}
		if i == 0 {
			first = got
		} else if got != first {
			t.Fatalf("command %d got other credentials than the first", i+1)
		}
	}
	if n := s.srv.Sessions(); n != 1 {
		t.Fatalf("100 AWS CLI commands cost %d CreateSession calls, want 1", n)
	}

	// The env format the CLI derives from the same credential_process.
	out := s.run(t, "configure", "export-credentials", "--profile", "keyless", "--format", "env")
	if !strings.Contains(string(out), "export AWS_ACCESS_KEY_ID="+first.AccessKeyId) {
		t.Fatalf("env export: %s", out)
	}
}

// TestShortCredentialsAreRefetched: credentials with 15 minutes or less
// left are refreshed by botocore at once (this AWS CLI even runs
// credential_process a second time within the same command for them), so
// keyless never serves them from its cache: every run fetches.
func TestShortCredentialsAreRefetched(t *testing.T) {
	s := newSetup(t, awsV2(t), false)
	s.srv.SetLifetime(14 * time.Minute)
	for i := 0; i < 3; i++ {
		s.run(t, "configure", "export-credentials", "--profile", "keyless")
	}
	if n := s.srv.Sessions(); n < 3 {
		t.Fatalf("3 commands with 14-minute credentials cost %d sessions; the cache served credentials too close to expiry", n)
	}
}

func x509Pool(ca *pkitest.CA) *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

func TestMain(m *testing.M) { os.Exit(testkit.Main(m).Run()) }
