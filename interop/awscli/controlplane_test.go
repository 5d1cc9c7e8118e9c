package awscli_test

import (
	"bytes"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/keyless-dev/keyless/interop/awssdk/cptest"

	"github.com/keyless-dev/keyless/internal/pki"
	"github.com/keyless-dev/keyless/internal/pki/pkitest"
	"github.com/keyless-dev/keyless/internal/testkit"
)

// cliCP is the AWS CLI v2 pointed at the emulator's control plane (every
// call checked against AWS's models by cptest), with the operator key in
// the profile "admin" of its credentials file, never on a command line.
type cliCP struct {
	env         *cptest.Env
	aws, dir    string
	keyless     string
	environ     []string
	root, inter *pkitest.CA
}

func newCLICP(t *testing.T) *cliCP {
	t.Helper()
	c := &cliCP{aws: awsV2(t), env: cptest.Start(t), dir: t.TempDir(), keyless: testkit.Keyless(t)}
	c.root = pkitest.NewRoot(t, "cli-root")
	c.inter = c.root.Intermediate(t, "cli-int")
	creds := pkitest.WriteFile(t, c.dir, "credentials", []byte(fmt.Sprintf("[admin]\naws_access_key_id = %s\naws_secret_access_key = %s\n",
		cptest.AccessKeyID, cptest.SecretAccessKey)))
	config := pkitest.WriteFile(t, c.dir, "config", []byte("[profile admin]\nregion = us-east-1\n"))
	home := filepath.Join(c.dir, "home")
	os.MkdirAll(home, 0o700)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AWS_") && !strings.HasPrefix(kv, "KEYLESS_") && !strings.HasPrefix(kv, "HOME=") && !strings.HasPrefix(kv, "XDG_CACHE_HOME=") {
			c.environ = append(c.environ, kv)
		}
	}
	c.environ = append(c.environ, "HOME="+home, "XDG_CACHE_HOME="+filepath.Join(c.dir, "cache"), "AWS_CONFIG_FILE="+config,
		"AWS_SHARED_CREDENTIALS_FILE="+creds, "AWS_EC2_METADATA_DISABLED=true", "AWS_PAGER=")
	return c
}

// run runs aws with the admin profile against the emulator and returns
// its stdout, stderr and error.
func (c *cliCP) try(t *testing.T, profile string, args ...string) ([]byte, string, error) {
	t.Helper()
	args = append(args, "--profile", profile, "--endpoint-url", c.env.URL, "--output", "json")
	cmd := exec.Command(c.aws, args...)
	cmd.Env = c.environ
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	return out, stderr.String(), err
}

// run is try that fails the test on an error and decodes the JSON output
// into v (when not nil).
func (c *cliCP) run(t *testing.T, v any, args ...string) {
	t.Helper()
	out, stderr, err := c.try(t, "admin", args...)
	if err != nil {
		t.Fatalf("aws %s: %v\n%s", strings.Join(args, " "), err, stderr)
	}
	if v != nil {
		if err := json.Unmarshal(out, v); err != nil {
			t.Fatalf("aws %s printed %q: %v", strings.Join(args, " "), out, err)
		}
	}
}

func (c *cliCP) file(t *testing.T, name string, data []byte) string {
	t.Helper()
	return pkitest.WriteFile(t, c.dir, name, data)
}

type cliSetup struct {
	anchorID, anchorARN, profileID, profileARN, roleARN, roleName string
}

// setup creates a trust anchor, a role and a profile with the CLI.
func (c *cliCP) setup(t *testing.T, name, cn string) cliSetup {
	t.Helper()
	var s cliSetup
	source, _ := json.Marshal(map[string]any{"sourceType": "CERTIFICATE_BUNDLE",
		"sourceData": map[string]string{"x509CertificateData": string(pki.EncodeCertificates(c.root.Cert))}})
	var anchor struct {
		TrustAnchor struct{ TrustAnchorId, TrustAnchorArn string }
	}
	c.run(t, &anchor, "rolesanywhere", "create-trust-anchor", "--name", name+"-ca", "--enabled",
		"--source", "file://"+c.file(t, name+"-source.json", source), "--tags", "key=team,value=ci")
	s.anchorID, s.anchorARN = anchor.TrustAnchor.TrustAnchorId, anchor.TrustAnchor.TrustAnchorArn

	s.roleName = name + "-deployer"
	policy := fmt.Sprintf(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow",
  "Principal":{"Service":"rolesanywhere.amazonaws.com"},
  "Action":["sts:AssumeRole","sts:TagSession","sts:SetSourceIdentity"],
  "Condition":{"ArnEquals":{"aws:SourceArn":%q},"StringEquals":{"aws:PrincipalTag/x509Subject/CN":%q}}}]}`, s.anchorARN, cn)
	var role struct{ Role struct{ Arn, RoleId string } }
	c.run(t, &role, "iam", "create-role", "--role-name", s.roleName, "--assume-role-policy-document", "file://"+c.file(t, name+"-trust.json", []byte(policy)),
		"--tags", "Key=team,Value=ci")
	s.roleARN = role.Role.Arn
	c.run(t, nil, "iam", "put-role-policy", "--role-name", s.roleName, "--policy-name", "read",
		"--policy-document", `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}`)
	c.run(t, nil, "iam", "attach-role-policy", "--role-name", s.roleName, "--policy-arn", "arn:aws:iam::aws:policy/ReadOnlyAccess")

	var profile struct {
		Profile struct{ ProfileId, ProfileArn string }
	}
	c.run(t, &profile, "rolesanywhere", "create-profile", "--name", name+"-profile", "--role-arns", s.roleARN, "--enabled", "--duration-seconds", "3600")
	s.profileID, s.profileARN = profile.Profile.ProfileId, profile.Profile.ProfileArn
	return s
}

// identity writes a key and a certificate for cn (leaf, then the
// intermediate) and returns the paths and the serial.
func (c *cliCP) identity(t *testing.T, cn string) (cert, key string, serial *big.Int) {
	t.Helper()
	k := pkitest.Key(t, pkitest.P256)
	keyPEM, err := pki.EncodePrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	leaf := c.inter.Leaf(t, pkitest.LeafOptions{CommonName: cn, Key: k})
	dir := filepath.Join(c.dir, "id-"+leaf.SerialNumber.Text(16))
	os.MkdirAll(dir, 0o700)
	return pkitest.WriteFile(t, dir, "runner.crt", pki.EncodeCertificates(leaf, c.inter.Cert)), pkitest.WriteFile(t, dir, "runner.key", keyPEM), leaf.SerialNumber
}

// runnerProfile adds a profile "runner" whose credential_process is keyless
// against the setup, and returns its name.
func (c *cliCP) runnerProfile(t *testing.T, s cliSetup, cert, key string) string {
	t.Helper()
	config := fmt.Sprintf("[profile admin]\nregion = us-east-1\n[profile runner]\nregion = us-east-1\ncredential_process = %s credential-process --certificate %s --private-key %s --trust-anchor-arn %s --profile-arn %s --role-arn %s --endpoint %s --no-cache\n",
		c.keyless, cert, key, s.anchorARN, s.profileARN, s.roleARN, c.env.URL)
	c.file(t, "config", []byte(config))
	return "runner"
}

// TestSetupThroughAWSCLI: a setup made only with `aws rolesanywhere` and
// `aws iam` commands (Debian's AWS CLI v2, whose model predates
// acceptRoleSessionName) works for keyless credential-process, and `aws
// sts get-caller-identity` through it names the role; the CLI reads back
// and pages through what it made.
func TestSetupThroughAWSCLI(t *testing.T) {
	c := newCLICP(t)
	s := c.setup(t, "cli", "runner-1")
	second := c.setup(t, "cli2", "runner-1")
	cert, key, _ := c.identity(t, "runner-1")
	profile := c.runnerProfile(t, s, cert, key)

	out, stderr, err := c.try(t, profile, "sts", "get-caller-identity")
	if err != nil {
		t.Fatalf("aws sts get-caller-identity through keyless: %v\n%s", err, stderr)
	}
	var id struct{ Arn, Account, UserId string }
	if err := json.Unmarshal(out, &id); err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^arn:aws:sts::111122223333:assumed-role/cli-deployer/[0-9a-f]+$`).MatchString(id.Arn) {
		t.Errorf("Arn = %q", id.Arn)
	}

	var role struct {
		Role struct {
			RoleName, AssumeRolePolicyDocument any
			MaxSessionDuration                 int
		}
	}
	c.run(t, &role, "iam", "get-role", "--role-name", s.roleName)
	// The CLI decodes the URL-encoded document into JSON.
	if doc, ok := role.Role.AssumeRolePolicyDocument.(map[string]any); !ok || doc["Version"] != "2012-10-17" {
		t.Errorf("get-role's AssumeRolePolicyDocument is %#v", role.Role.AssumeRolePolicyDocument)
	}
	var policies struct{ PolicyNames []string }
	c.run(t, &policies, "iam", "list-role-policies", "--role-name", s.roleName)
	var attached struct{ AttachedPolicies []struct{ PolicyArn string } }
	c.run(t, &attached, "iam", "list-attached-role-policies", "--role-name", s.roleName)
	if len(policies.PolicyNames) != 1 || len(attached.AttachedPolicies) != 1 {
		t.Errorf("role policies %v, attached %v", policies.PolicyNames, attached.AttachedPolicies)
	}

	// --page-size makes the CLI fetch pages of one and join them.
	var anchors struct {
		TrustAnchors []struct{ TrustAnchorArn string }
	}
	c.run(t, &anchors, "rolesanywhere", "list-trust-anchors", "--page-size", "1")
	var profiles struct{ Profiles []struct{ ProfileArn string } }
	c.run(t, &profiles, "rolesanywhere", "list-profiles", "--page-size", "1")
	var roles struct{ Roles []struct{ Arn string } }
	c.run(t, &roles, "iam", "list-roles", "--page-size", "1")
	if len(anchors.TrustAnchors) != 2 || len(profiles.Profiles) != 2 || len(roles.Roles) != 2 {
		t.Errorf("listed %d anchors, %d profiles, %d roles in pages of one; want 2 each", len(anchors.TrustAnchors), len(profiles.Profiles), len(roles.Roles))
	}
	if calls := c.env.Recorder.Calls(); calls["rolesanywhere:ListTrustAnchors 200"] < 2 || calls["iam:ListRoles 200"] < 2 {
		t.Errorf("the CLI did not page: %v", calls)
	}

	var tags struct{ Tags []struct{ Key, Value string } }
	c.run(t, &tags, "rolesanywhere", "list-tags-for-resource", "--resource-arn", second.anchorARN)
	if len(tags.Tags) != 1 {
		t.Errorf("tags of the trust anchor: %+v", tags.Tags)
	}
}

// TestRefusalsThroughAWSCLI: the CLI's revocation (import-crl, then
// enable-crl) stops keyless's sessions; a trust policy IAM would refuse,
// a wrong secret and an unknown key are refused with AWS's codes.
func TestRefusalsThroughAWSCLI(t *testing.T) {
	c := newCLICP(t)
	s := c.setup(t, "cli", "runner-1")
	cert, key, serial := c.identity(t, "runner-1")
	profile := c.runnerProfile(t, s, cert, key)
	if _, stderr, err := c.try(t, profile, "sts", "get-caller-identity"); err != nil {
		t.Fatalf("before revocation: %v\n%s", err, stderr)
	}

	var crl struct{ Crl struct{ CrlId string } }
	c.run(t, &crl, "rolesanywhere", "import-crl", "--name", "int-crl", "--trust-anchor-arn", s.anchorARN,
		"--crl-data", "fileb://"+c.file(t, "int.crl", pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: c.inter.CRL(t, serial)})))
	c.run(t, nil, "rolesanywhere", "enable-crl", "--crl-id", crl.Crl.CrlId)
	var crls struct{ Crls []struct{ Enabled bool } }
	c.run(t, &crls, "rolesanywhere", "list-crls")
	if len(crls.Crls) != 1 || !crls.Crls[0].Enabled {
		t.Errorf("list-crls after enable-crl: %+v", crls)
	}
	_, stderr, err := c.try(t, profile, "sts", "get-caller-identity")
	if err == nil || !strings.Contains(stderr, "revoked") {
		t.Errorf("after import-crl and enable-crl: err %v, want a refusal naming revocation:\n%s", err, stderr)
	}

	for _, tt := range []struct {
		name, profile, code string
		args                []string
	}{
		{name: "trust policy without Principal", profile: "admin", code: "MalformedPolicyDocument",
			args: []string{"iam", "create-role", "--role-name", "bad", "--assume-role-policy-document", `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"sts:AssumeRole"}]}`}},
		{name: "wrong secret", profile: "wrong-secret", code: "InvalidSignatureException", args: []string{"rolesanywhere", "list-trust-anchors"}},
		{name: "unknown key", profile: "unknown", code: "InvalidClientTokenId", args: []string{"iam", "list-roles"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c.file(t, "credentials", []byte(fmt.Sprintf("[admin]\naws_access_key_id = %s\naws_secret_access_key = %s\n[wrong-secret]\naws_access_key_id = %[1]s\naws_secret_access_key = x%[2]s\n[unknown]\naws_access_key_id = AKIAUNKNOWNOPERATOR1\naws_secret_access_key = %[2]s\n",
				cptest.AccessKeyID, cptest.SecretAccessKey)))
			c.file(t, "config", []byte("[profile admin]\nregion = us-east-1\n[profile wrong-secret]\nregion = us-east-1\n[profile unknown]\nregion = us-east-1\n"))
			_, stderr, err := c.try(t, tt.profile, tt.args...)
			if err == nil || !strings.Contains(stderr, "("+tt.code+")") {
				t.Errorf("aws %s: err %v, want (%s):\n%s", strings.Join(tt.args, " "), err, tt.code, stderr)
			}
		})
	}
}
