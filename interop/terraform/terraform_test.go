package terraform_test

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keyless-dev/keyless/internal/pki"
	"github.com/keyless-dev/keyless/internal/pki/pkitest"
	"github.com/keyless-dev/keyless/internal/testkit"
)

// ProviderEnv names the AWS provider binary to use.
const ProviderEnv = "KEYLESS_TERRAFORM_PROVIDER_AWS"

// providerVersion is the provider's source version (the pseudo-version
// of its main branch that scripts/terraform-provider builds), and
// mirrorVersion the release number it is installed under in the test's
// filesystem mirror: any version the module's ">= 6.0" accepts.
const (
	providerVersion = "v1.60.1-0.20260602190131-5f2286d6d836"
	mirrorVersion   = "6.99.0"
)

// moduleDir is the module under test, from this package's directory.
const moduleDir = "../../deploy/terraform/roles-anywhere"

// Operator credentials in the emulator's seed; the provider gets them
// through the environment only.
const operatorKeyID = "AKIAKEYLESSTERRAFORM"

// provider finds the AWS provider binary: $KEYLESS_TERRAFORM_PROVIDER_AWS,
// else where scripts/terraform-provider puts it.
func provider(t *testing.T) string {
	t.Helper()
	path := os.Getenv(ProviderEnv)
	if path == "" {
		cache := os.Getenv("KEYLESS_CACHE")
		if cache == "" {
			home, err := os.UserHomeDir()
			if err != nil {
				testkit.Unavailable(t, "Terraform's AWS provider: %s is not set and there is no home directory to find its cache in", ProviderEnv)
			}
			cache = filepath.Join(home, ".cache", "keyless")
		}
		path = filepath.Join(cache, "terraform-provider-aws", providerVersion, "terraform-provider-aws")
	}
	if fi, err := os.Stat(path); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		testkit.Unavailable(t, "Terraform's AWS provider is not at %s; build it with scripts/terraform-provider (about 30 minutes, once) or set %s", path, ProviderEnv)
	}
	return path
}

// workspace is a Terraform root module using deploy/terraform/roles-anywhere,
// with a CLI configuration that installs the AWS provider from a local
// mirror, and an environment holding nothing of the test's own AWS setup.
type workspace struct {
	terraform, keyless, dir string
	env                     []string
}

func newWorkspace(t *testing.T) *workspace {
	t.Helper()
	tf := testkit.LookPath(t, "terraform", "Terraform 1.5 or later (https://developer.hashicorp.com/terraform/install)")
	bin := provider(t)
	dir := t.TempDir()

	// An unpacked filesystem mirror: registry.terraform.io/hashicorp/aws/
	// VERSION/OS_ARCH/terraform-provider-aws_vVERSION. terraform init
	// links to it rather than copying 1.27 GB.
	platform := runtime.GOOS + "_" + runtime.GOARCH
	pkgDir := filepath.Join(dir, "mirror", "registry.terraform.io", "hashicorp", "aws", mirrorVersion, platform)
	if err := os.MkdirAll(pkgDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(bin, filepath.Join(pkgDir, "terraform-provider-aws_v"+mirrorVersion)); err != nil {
		t.Fatal(err)
	}
	cliConfig := fmt.Sprintf(`provider_installation {
  filesystem_mirror {
    path    = %q
    include = ["registry.terraform.io/hashicorp/aws"]
  }
  direct {
    exclude = ["registry.terraform.io/hashicorp/aws"]
  }
}
`, filepath.Join(dir, "mirror"))
	cliConfigFile := pkitest.WriteFile(t, dir, "terraform.rc", []byte(cliConfig))

	home := filepath.Join(dir, "home")
	if err := os.MkdirAll(home, 0o700); err != nil {
		t.Fatal(err)
	}
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "AWS_") || strings.HasPrefix(name, "TF_") || strings.HasPrefix(name, "KEYLESS_") ||
			name == "HOME" || name == "XDG_CACHE_HOME" || name == "XDG_CONFIG_HOME" {
			continue
		}
		env = append(env, kv)
	}
	env = append(env, "HOME="+home, "XDG_CACHE_HOME="+filepath.Join(dir, "cache"),
		"TF_CLI_CONFIG_FILE="+cliConfigFile, "TF_IN_AUTOMATION=1", "TF_INPUT=0", "CHECKPOINT_DISABLE=1",
		"AWS_EC2_METADATA_DISABLED=true", "AWS_CONFIG_FILE="+filepath.Join(dir, "no-aws-config"),
		"AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(dir, "no-aws-credentials"))
	return &workspace{terraform: tf, keyless: testkit.Keyless(t), dir: dir, env: env}
}

// moduleSource is deploy/terraform/roles-anywhere relative to the
// workspace, as a module call's source names it.
func (w *workspace) moduleSource(t *testing.T) string {
	t.Helper()
	abs, err := filepath.Abs(moduleDir)
	if err != nil {
		t.Fatal(err)
	}
	rel, err := filepath.Rel(w.dir, abs)
	if err != nil {
		t.Fatal(err)
	}
	return rel
}

// writeRoot writes the root module: the provider pointed at endpoint for
// Roles Anywhere, IAM and STS, and a call of the module with body.
func (w *workspace) writeRoot(t *testing.T, endpoint, body string) {
	t.Helper()
	rel := w.moduleSource(t)
	root := fmt.Sprintf(`provider "aws" {
  region                      = "us-east-1"
  skip_metadata_api_check     = true
  skip_region_validation      = true
  endpoints {
    iam           = %[1]q
    rolesanywhere = %[1]q
    sts           = %[1]q
  }
}

module "ra" {
  source = %[2]q
%[3]s
}

output "ra" {
  value = {
    trust_anchor_arn   = module.ra.trust_anchor_arn
    role_arns          = module.ra.role_arns
    profile_arns       = module.ra.profile_arns
    credential_process = module.ra.credential_process
    agent_config       = module.ra.agent_config
    crl_import_command = module.ra.crl_import_command
  }
}
`, endpoint, rel, body)
	pkitest.WriteFile(t, w.dir, "main.tf", []byte(root))
}

// tf runs terraform in the workspace with extra environment, and returns
// its exit code and combined output; a failure to start fails t.
func (w *workspace) tf(t *testing.T, extraEnv []string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(w.terraform, append([]string{"-chdir=" + w.dir}, args...)...)
	cmd.Env = append(append([]string(nil), w.env...), extraEnv...)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode(), string(out)
	}
	if err != nil {
		t.Fatalf("terraform %s: %v", strings.Join(args, " "), err)
	}
	return 0, string(out)
}

// mustTF runs terraform and fails t unless it exits with want.
func (w *workspace) mustTF(t *testing.T, extraEnv []string, want int, args ...string) string {
	t.Helper()
	code, out := w.tf(t, extraEnv, args...)
	if code != want {
		t.Fatalf("terraform %s exited %d, want %d:\n%s", strings.Join(args, " "), code, want, out)
	}
	return out
}

// emulator is a keyless emulator process serving the control plane from
// a seed that declares only an operator key, keeping what it creates in
// a state file.
type emulator struct {
	keyless, seed, state, addr string
	cmd                        *exec.Cmd
	exited                     chan error
	stderr                     *testkit.Buffer
}

func newEmulator(t *testing.T, keyless, dir, secret string) *emulator {
	t.Helper()
	secretFile := pkitest.WriteFile(t, dir, "operator-secret", []byte(secret+"\n"))
	if err := os.Chmod(secretFile, 0o600); err != nil {
		t.Fatal(err)
	}
	seed := fmt.Sprintf(`account: "111122223333"
region: us-east-1
operators:
  - name: terraform
    accessKeyId: %s
    secretAccessKeyFile: %s
`, operatorKeyID, secretFile)
	e := &emulator{
		keyless: keyless,
		seed:    pkitest.WriteFile(t, dir, "emulator.yaml", []byte(seed)),
		state:   filepath.Join(dir, "emulator-state.json"),
		addr:    testkit.Addr(t),
	}
	e.start(t)
	t.Cleanup(func() {
		e.stop(t)
		if t.Failed() {
			t.Logf("keyless emulator's log:\n%s", e.stderr)
		}
	})
	return e
}

func (e *emulator) url() string { return "http://" + e.addr }

// start runs the emulator on its address and waits until it serves.
func (e *emulator) start(t *testing.T) {
	t.Helper()
	e.cmd = exec.Command(e.keyless, "emulator", "--config", e.seed, "--state", e.state, "--listen", e.addr)
	if e.stderr == nil {
		e.stderr = &testkit.Buffer{} // one log across restarts
	}
	e.cmd.Stderr = e.stderr
	out, err := e.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := e.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	cmd, exited := e.cmd, make(chan error, 1)
	e.exited = exited
	serving := make(chan struct{}, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "keyless emulator: serving ") {
				serving <- struct{}{}
			}
		}
		exited <- cmd.Wait()
	}()
	limit := time.NewTimer(time.Minute)
	defer limit.Stop()
	select {
	case <-serving:
	case err := <-e.exited:
		e.exited <- err
		t.Fatalf("keyless emulator exited (%v) before serving:\n%s", err, e.stderr)
	case <-limit.C:
		t.Fatalf("keyless emulator did not serve within a minute:\n%s", e.stderr)
	}
}

// stop ends the emulator with SIGTERM, which must make it exit 0.
func (e *emulator) stop(t *testing.T) {
	t.Helper()
	if e.cmd == nil {
		return
	}
	cmd := e.cmd
	e.cmd = nil
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-e.exited:
		if err != nil {
			t.Errorf("keyless emulator exited with %v on SIGTERM:\n%s", err, e.stderr)
		}
	case <-time.After(time.Minute):
		cmd.Process.Kill()
		t.Errorf("keyless emulator did not stop within a minute of SIGTERM:\n%s", e.stderr)
	}
}

// identity writes a runner certificate (with the intermediate after it)
// and key issued by inter for cn (and dnsNames, by default cn), and
// returns their paths.
func identity(t *testing.T, dir string, inter *pkitest.CA, cn string, dnsNames ...string) (cert, key string) {
	t.Helper()
	k := pkitest.Key(t, pkitest.P256)
	leaf := inter.Leaf(t, pkitest.LeafOptions{CommonName: cn, Key: k, DNSNames: dnsNames})
	keyPEM, err := pki.EncodePrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	cert = pkitest.WriteFile(t, dir, cn+".crt", pki.EncodeCertificates(leaf, inter.Cert))
	key = pkitest.WriteFile(t, dir, cn+".key", keyPEM)
	if err := os.Chmod(key, 0o600); err != nil {
		t.Fatal(err)
	}
	return cert, key
}

func randomSecret(t *testing.T) string {
	t.Helper()
	b := make([]byte, 30)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

type moduleOutputs struct {
	TrustAnchorARN    string            `json:"trust_anchor_arn"`
	RoleARNs          map[string]string `json:"role_arns"`
	ProfileARNs       map[string]string `json:"profile_arns"`
	CredentialProcess map[string]string `json:"credential_process"`
	AgentConfig       string            `json:"agent_config"`
	CRLImportCommand  string            `json:"crl_import_command"`
}

func (w *workspace) outputs(t *testing.T, env []string) moduleOutputs {
	t.Helper()
	out := w.mustTF(t, env, 0, "output", "-json", "ra")
	var o moduleOutputs
	if err := json.Unmarshal([]byte(out), &o); err != nil {
		t.Fatalf("terraform output -json ra: %v\n%s", err, out)
	}
	return o
}

type processCreds struct {
	Version         int
	AccessKeyId     string
	SecretAccessKey string
	SessionToken    string
	Expiration      string
}

// credentialProcess runs a credential_process line from the module's
// outputs, with extra flags, as the AWS CLI would (split on spaces: the
// test's paths have none).
func credentialProcess(t *testing.T, line string, extra ...string) (processCreds, string, error) {
	t.Helper()
	args := append(strings.Fields(line), extra...)
	args = append(args, "--no-cache")
	cmd := exec.Command(args[0], args[1:]...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return processCreds{}, stderr.String(), err
	}
	var c processCreds
	if err := json.Unmarshal(out, &c); err != nil {
		t.Fatalf("%s printed %q: %v", line, out, err)
	}
	return c, stderr.String(), nil
}

// moduleCall is the test's use of the module: two roles with different
// conditions, durations and policies, one with an agent rule.
const moduleCall = `
  trust_anchor_name = "keyless-runners"
  ca_bundle_path    = "%[1]s"
  rolesanywhere_endpoint  = "%[2]s"
  keyless_path            = "%[3]s"
  runner_certificate_path = "%[4]s"
  runner_key_path         = "%[5]s"
  tags = { team = "platform" }

  roles = {
    "ci-deployer" = {
      allowed_cn               = ["gitlab-runner"]
      allowed_san_dns          = ["gitlab-runner"]
      session_duration_seconds = 3600
      policy_arns              = ["arn:aws:iam::aws:policy/ReadOnlyAccess"]
      inline_policies = {
        "deploy-bucket" = jsonencode({
          Version   = "2012-10-17"
          Statement = [{ Effect = "Allow", Action = ["s3:PutObject"], Resource = ["arn:aws:s3:::site/*"] }]
        })
      }
      tags = { purpose = "deploy" }
      agent = {
        match        = { project_path = ["infra/site"], ref = ["main"] }
        session_name = "gitlab-{project_id}-{job_id}"
      }
    }
    "ci-reader" = {
      profile_name             = "ci-reader-profile"
      allowed_cn               = ["gitlab-runner", "gitlab-runner-2"]
      session_duration_seconds = 900
      accept_role_session_name = false
    }
  }
`

// TestModuleAppliesPlansCleanAndDestroys runs the module's whole life
// against keyless emulator's control plane, through Terraform and the AWS
// provider: init, apply, plan with no changes, updates of every resource
// in place (plan again with no changes), credentials through what
// it created (keyless credential-process with the output line), the
// agent config fragment accepted by keyless agent --check, the trust
// policy's CN condition refusing another CN, the profile's
// acceptRoleSessionName respected, the printed CRL import command
// revoking a certificate, a plan with no changes after the
// emulator restarts from its --state file, and destroy, after which the
// trust anchor no longer gives credentials.
func TestModuleAppliesPlansCleanAndDestroys(t *testing.T) {
	w := newWorkspace(t)
	secret := randomSecret(t)
	emu := newEmulator(t, w.keyless, w.dir, secret)
	env := []string{"AWS_ACCESS_KEY_ID=" + operatorKeyID, "AWS_SECRET_ACCESS_KEY=" + secret}

	root := pkitest.NewRoot(t, "terraform-root")
	inter := root.Intermediate(t, "terraform-int")
	// What `keyless ca bundle` prints: the root, then the intermediate.
	bundle := pkitest.WriteFile(t, w.dir, "bundle.pem", pki.EncodeCertificates(root.Cert, inter.Cert))
	cert, key := identity(t, w.dir, inter, "gitlab-runner")
	// The right DNS SAN, so that only the CN condition refuses it.
	otherCert, otherKey := identity(t, w.dir, inter, "someone-else", "gitlab-runner")

	w.writeRoot(t, emu.url(), fmt.Sprintf(moduleCall, bundle, emu.url(), w.keyless, cert, key))
	w.mustTF(t, env, 0, "init", "-no-color")
	w.mustTF(t, env, 0, "apply", "-auto-approve", "-no-color")
	if out := w.mustTF(t, env, 0, "plan", "-detailed-exitcode", "-no-color"); !strings.Contains(out, "No changes") {
		t.Fatalf("plan after apply:\n%s", out)
	}

	// A change to every kind of resource is applied in place and leaves
	// nothing to do: tags on all of them, a longer session (the profile's
	// duration and the role's maximum), another CN in a trust policy, an
	// inline policy's document, and the trust anchor switched off and on.
	changed := strings.NewReplacer(
		`tags = { team = "platform" }`, `tags = { team = "platform", env = "ci" }`,
		`session_duration_seconds = 3600`, `session_duration_seconds = 7200`,
		`allowed_cn               = ["gitlab-runner", "gitlab-runner-2"]`, `allowed_cn               = ["gitlab-runner", "gitlab-runner-2", "gitlab-runner-3"]`,
		`Action = ["s3:PutObject"]`, `Action = ["s3:PutObject", "s3:DeleteObject"]`,
	).Replace(moduleCall)
	if changed == moduleCall {
		t.Fatal("the changed module call is the same")
	}
	for _, step := range []string{"  trust_anchor_enabled = false\n" + changed, changed} {
		w.writeRoot(t, emu.url(), fmt.Sprintf(step, bundle, emu.url(), w.keyless, cert, key))
		out := w.mustTF(t, env, 0, "apply", "-auto-approve", "-no-color")
		if !strings.Contains(out, "0 added") || !strings.Contains(out, "0 destroyed") || strings.Contains(out, " 0 changed") {
			t.Fatalf("a change was not applied in place:\n%s", out)
		}
		if out := w.mustTF(t, env, 0, "plan", "-detailed-exitcode", "-no-color"); !strings.Contains(out, "No changes") {
			t.Fatalf("plan after an update:\n%s", out)
		}
	}

	o := w.outputs(t, env)
	if !strings.HasPrefix(o.TrustAnchorARN, "arn:aws:rolesanywhere:us-east-1:111122223333:trust-anchor/") {
		t.Errorf("trust_anchor_arn = %q", o.TrustAnchorARN)
	}
	if got := o.RoleARNs["ci-deployer"]; got != "arn:aws:iam::111122223333:role/ci-deployer" {
		t.Errorf("role_arns[ci-deployer] = %q", got)
	}
	if len(o.ProfileARNs) != 2 {
		t.Errorf("profile_arns = %v, want one per role", o.ProfileARNs)
	}

	// Credentials through the trust anchor, profile and role Terraform
	// made, named per job as the agent names them.
	c, stderr, err := credentialProcess(t, o.CredentialProcess["ci-deployer"], "--role-session-name", "gitlab-42-1001")
	if err != nil {
		t.Fatalf("credential_process for ci-deployer: %v\n%s", err, stderr)
	}
	if c.Version != 1 || c.AccessKeyId == "" || c.SessionToken == "" || c.Expiration == "" {
		t.Fatalf("credentials %+v", c)
	}
	// ci-reader trusts two CNs, and its profile refuses session names.
	if _, stderr, err := credentialProcess(t, o.CredentialProcess["ci-reader"]); err != nil {
		t.Fatalf("credential_process for ci-reader: %v\n%s", err, stderr)
	}
	if _, stderr, err := credentialProcess(t, o.CredentialProcess["ci-reader"], "--role-session-name", "gitlab-42-1001"); err == nil {
		t.Errorf("ci-reader's profile has accept_role_session_name = false, yet a session name was accepted")
	} else if !strings.Contains(stderr, "AccessDenied") {
		t.Errorf("a session name through ci-reader's profile: want AccessDenied, got:\n%s", stderr)
	}
	// The trust policy admits only the CNs given.
	other := strings.NewReplacer(cert, otherCert, key, otherKey).Replace(o.CredentialProcess["ci-deployer"])
	if _, stderr, err := credentialProcess(t, other); err == nil {
		t.Errorf("a certificate for CN someone-else got credentials for ci-deployer, which allows only gitlab-runner")
	} else if !strings.Contains(stderr, "AccessDenied") {
		t.Errorf("CN someone-else for ci-deployer: want AccessDenied, got:\n%s", stderr)
	} else if !strings.Contains(emu.stderr.String(), "StringEquals aws:PrincipalTag/x509Subject/CN") {
		t.Errorf("CN someone-else was refused for another reason than the CN condition:\n%s", emu.stderr)
	}

	// The agent fragment, dropped into an agent.yaml with the sections it
	// leaves to the user, is a configuration the agent accepts.
	agentYAML := fmt.Sprintf(`identity:
  certificate: %s
  key: %s
gitlab:
  url: https://gitlab.example.com
listen:
  containerCredentials: 127.0.0.1:9911
%s`, cert, key, o.AgentConfig)
	agentFile := pkitest.WriteFile(t, w.dir, "agent.yaml", []byte(agentYAML))
	check := exec.Command(w.keyless, "agent", "--config", agentFile, "--check")
	if out, err := check.CombinedOutput(); err != nil {
		t.Fatalf("keyless agent --check of the module's agent_config: %v\n%s\n--- agent.yaml:\n%s", err, out, agentYAML)
	} else if !strings.Contains(string(out), o.RoleARNs["ci-deployer"]) {
		t.Errorf("keyless agent --check does not show the rule for ci-deployer:\n%s", out)
	}
	importCRL(t, w, env, inter, o.CRLImportCommand, o.CredentialProcess["ci-deployer"], cert, key)
	otherAnchor(t, w, env, emu, bundle, o)

	// Everything the control plane made survives a restart from --state:
	// the next plan still has nothing to do.
	emu.stop(t)
	emu.start(t)
	if out := w.mustTF(t, env, 0, "plan", "-detailed-exitcode", "-no-color"); !strings.Contains(out, "No changes") {
		t.Fatalf("plan after the emulator restarted from its state file:\n%s", out)
	}
	if _, stderr, err := credentialProcess(t, o.CredentialProcess["ci-deployer"]); err != nil {
		t.Fatalf("credential_process for ci-deployer after the restart: %v\n%s", err, stderr)
	}

	w.mustTF(t, env, 0, "destroy", "-auto-approve", "-no-color")
	if out := w.mustTF(t, env, 0, "state", "list"); strings.TrimSpace(out) != "" {
		t.Errorf("state after destroy:\n%s", out)
	}
	if _, _, err := credentialProcess(t, o.CredentialProcess["ci-deployer"]); err == nil {
		t.Errorf("the trust anchor still gives credentials after terraform destroy")
	}
}

// importCRL runs the AWS CLI part of the module's crl_import_command with a
// CRL that revokes a second gitlab-runner certificate, as the module's
// README tells users to, and checks that Roles Anywhere then refuses that
// certificate and still serves the one not revoked. (The CRL stays outside
// Terraform's state: the AWS provider has no resource for it.)
func importCRL(t *testing.T, w *workspace, env []string, inter *pkitest.CA, command, line, cert, key string) {
	t.Helper()
	_, awsCmd, ok := strings.Cut(command, "&& ")
	if !ok || !strings.HasPrefix(command, "keyless ca crl --out ca.crl") || !strings.HasPrefix(awsCmd, "aws rolesanywhere import-crl ") {
		t.Fatalf("crl_import_command = %q, want keyless ca crl --out ca.crl && aws rolesanywhere import-crl ...", command)
	}
	aws := testkit.LookPath(t, "aws", "the AWS CLI (Debian's awscli package)")
	dir := t.TempDir()
	revokedCert, revokedKey := identity(t, dir, inter, "gitlab-runner")
	leaf, err := pki.ParseCertificates(mustRead(t, revokedCert))
	if err != nil {
		t.Fatal(err)
	}
	// What keyless ca crl writes: PEM.
	crl := pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: inter.CRL(t, leaf[0].SerialNumber)})
	pkitest.WriteFile(t, dir, "ca.crl", crl)

	sh := exec.Command("sh", "-c", awsCmd)
	sh.Dir = dir
	sh.Env = append(append(append([]string(nil), w.env...), env...), "AWS_PAGER=",
		"PATH="+filepath.Dir(aws)+string(os.PathListSeparator)+os.Getenv("PATH"))
	if out, err := sh.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", awsCmd, err, out)
	}
	revoked := strings.NewReplacer(cert, revokedCert, key, revokedKey).Replace(line)
	if _, stderr, err := credentialProcess(t, revoked); err == nil {
		t.Errorf("a certificate on the imported CRL still gets credentials")
	} else if !strings.Contains(stderr, "AccessDenied") {
		t.Errorf("a revoked certificate: want AccessDenied, got:\n%s", stderr)
	}
	if _, stderr, err := credentialProcess(t, line); err != nil {
		t.Fatalf("the certificate not on the CRL is refused after the import: %v\n%s", err, stderr)
	}
}

// awsCLI runs the AWS CLI against the emulator with the operator's
// credentials, and returns its standard output.
func awsCLI(t *testing.T, w *workspace, env []string, endpoint string, args ...string) []byte {
	t.Helper()
	aws := testkit.LookPath(t, "aws", "the AWS CLI (Debian's awscli package)")
	cmd := exec.Command(aws, append(args, "--region", "us-east-1", "--endpoint-url", endpoint, "--output", "json")...)
	cmd.Env = append(append(append([]string(nil), w.env...), env...), "AWS_PAGER=")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("aws %s: %v\n%s", strings.Join(args, " "), err, stderr.Bytes())
	}
	return out
}

// otherAnchor makes a second trust anchor for the same CA, outside
// Terraform, with a profile that lists the module's role, and checks that
// the role's aws:SourceArn condition refuses sessions through it: without
// that condition, any trust anchor in the account that trusts a CA
// issuing the CN would do.
func otherAnchor(t *testing.T, w *workspace, env []string, emu *emulator, bundle string, o moduleOutputs) {
	t.Helper()
	source, err := json.Marshal(map[string]any{"sourceType": "CERTIFICATE_BUNDLE", "sourceData": map[string]string{"x509CertificateData": string(mustRead(t, bundle))}})
	if err != nil {
		t.Fatal(err)
	}
	sourceFile := pkitest.WriteFile(t, t.TempDir(), "source.json", source)
	var ta struct {
		TrustAnchor struct{ TrustAnchorArn string }
	}
	if err := json.Unmarshal(awsCLI(t, w, env, emu.url(), "rolesanywhere", "create-trust-anchor", "--name", "other-anchor", "--enabled", "--source", "file://"+sourceFile), &ta); err != nil {
		t.Fatal(err)
	}
	var prof struct{ Profile struct{ ProfileArn string } }
	if err := json.Unmarshal(awsCLI(t, w, env, emu.url(), "rolesanywhere", "create-profile", "--name", "other-profile", "--enabled", "--role-arns", o.RoleARNs["ci-deployer"]), &prof); err != nil {
		t.Fatal(err)
	}
	line := strings.NewReplacer(o.TrustAnchorARN, ta.TrustAnchor.TrustAnchorArn, o.ProfileARNs["ci-deployer"], prof.Profile.ProfileArn).Replace(o.CredentialProcess["ci-deployer"])
	if _, stderr, err := credentialProcess(t, line); err == nil {
		t.Errorf("ci-deployer's role gave credentials through a trust anchor Terraform did not make")
	} else if !strings.Contains(stderr, "AccessDenied") {
		t.Errorf("another trust anchor for ci-deployer: want AccessDenied, got:\n%s", stderr)
	}
	// The refusal must be the SourceArn condition's, not some other rule's.
	if !strings.Contains(emu.stderr.String(), "ArnEquals aws:SourceArn") {
		t.Errorf("the emulator refused the other trust anchor for another reason than aws:SourceArn:\n%s", emu.stderr)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestMain(m *testing.M) { os.Exit(testkit.Main(m).Run()) }

// TestModuleRefusesBadVariables: terraform validate of a module call with
// each kind of bad input fails on the module's own validation rule with
// its message, before anything reaches AWS; and a good call validates.
func TestModuleRefusesBadVariables(t *testing.T) {
	w := newWorkspace(t)
	const pem = `"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"`
	good := `allowed_cn = ["gitlab-runner"]`
	cases := []struct{ name, body, want string }{
		{"no roles", `ca_bundle_pem = ` + pem + "\nroles = {}", "roles needs at least one role"},
		{"no CN", `ca_bundle_pem = ` + pem + "\nroles = { r = { allowed_cn = [] } }", "Each role needs allowed_cn"},
		{"empty CN", `ca_bundle_pem = ` + pem + "\nroles = { r = { allowed_cn = [\"\"] } }", "Each role needs allowed_cn"},
		{"empty OU", `ca_bundle_pem = ` + pem + "\nroles = { r = { " + good + ", allowed_ou = [\" \"] } }", "must not hold empty values"},
		{"short session", `ca_bundle_pem = ` + pem + "\nroles = { r = { " + good + ", session_duration_seconds = 899 } }", "from 900 (15 minutes) to 43200"},
		{"long session", `ca_bundle_pem = ` + pem + "\nroles = { r = { " + good + ", session_duration_seconds = 43201 } }", "from 900 (15 minutes) to 43200"},
		{"fractional session", `ca_bundle_pem = ` + pem + "\nroles = { r = { " + good + ", session_duration_seconds = 900.5 } }", "from 900 (15 minutes) to 43200"},
		{"short role maximum", `ca_bundle_pem = ` + pem + "\nroles = { r = { " + good + ", max_session_duration = 3599 } }", "from 3600 to 43200"},
		{"long role maximum", `ca_bundle_pem = ` + pem + "\nroles = { r = { " + good + ", max_session_duration = 43201 } }", "from 3600 to 43200"},
		{"role maximum below session", `ca_bundle_pem = ` + pem + "\nroles = { r = { " + good + ", session_duration_seconds = 7200, max_session_duration = 3600 } }", "at least its session_duration_seconds"},
		{"role name", `ca_bundle_pem = ` + pem + "\nroles = { \"no spaces\" = { " + good + " } }", "is an IAM role name"},
		{"profile name from role name", `ca_bundle_pem = ` + pem + "\nroles = { \"ci.deployer\" = { " + good + " } }", "needs a profile_name"},
		{"same profile names", `ca_bundle_pem = ` + pem + "\nroles = { a = { " + good + ", profile_name = \"p\" }, b = { " + good + ", profile_name = \"p\" } }", "profiles of the same name"},
		{"trust anchor name", `trust_anchor_name = "a/b"` + "\nca_bundle_pem = " + pem + "\nroles = { r = { " + good + " } }", "trust_anchor_name must be"},
		{"bundle not PEM", `ca_bundle_pem = "MIIB"` + "\nroles = { r = { " + good + " } }", "ca_bundle_pem must be PEM certificates"},
		{"bundle of 3 certificates", `ca_bundle_pem = "` + strings.Repeat(strings.Trim(pem, `"`), 3) + `"` + "\nroles = { r = { " + good + " } }", "at most 2 certificates and 204800 characters"},
		{"bundle over 204,800 characters", `ca_bundle_pem = "-----BEGIN CERTIFICATE-----\nMIIB` + strings.Repeat("A", 204800) + `\n-----END CERTIFICATE-----\n"` + "\nroles = { r = { " + good + " } }", "at most 2 certificates and 204800 characters"},
		{"policy ARN", `ca_bundle_pem = ` + pem + "\nroles = { r = { " + good + ", policy_arns = [\"ReadOnlyAccess\"] } }", "managed policy ARNs"},
		{"inline policy", `ca_bundle_pem = ` + pem + "\nroles = { r = { " + good + ", inline_policies = { p = \"{}\" } } }", "JSON policy document with a Statement"},
		{"11 profile managed policies", `ca_bundle_pem = ` + pem + "\nroles = { r = { " + good + ", profile_managed_policy_arns = [for i in range(11) : \"arn:aws:iam::aws:policy/P${i}\"] } }", "holds at most 10 ARNs"},
		{"profile session policy over 2048 characters", `ca_bundle_pem = ` + pem + "\nroles = { r = { " + good + ", profile_session_policy = jsonencode({ Statement = [], Pad = join(\"\", [for i in range(1000) : \"abc\"]) }) } }", "at most 2048 characters together"},
		{"profile session policy not a policy", `ca_bundle_pem = ` + pem + "\nroles = { r = { " + good + ", profile_session_policy = \"{}\" } }", "must be a JSON policy document"},
		{"path", `ca_bundle_pem = ` + pem + "\nroles = { r = { " + good + ", path = \"ci\" } }", "path must start and end with /"},
		{"agent without match", `ca_bundle_pem = ` + pem + "\nroles = { r = { " + good + ", agent = { match = {} } } }", "agent.match needs at least one claim"},
		{"agent identity", `ca_bundle_pem = ` + pem + "\nroles = { r = { " + good + ", agent = { identity = [\"root\"], match = { ref = [\"main\"] } } } }", "agent.identity lists"},
		{"agent without session names", `ca_bundle_pem = ` + pem + "\nroles = { r = { " + good + ", accept_role_session_name = false, agent = { match = { ref = [\"main\"] } } } }", "needs accept_role_session_name = true"},
		{"tag", `ca_bundle_pem = ` + pem + "\nroles = { r = { " + good + " } }\ntags = { \"a!\" = \"b\" }", "tags: at most 50"},
		{"endpoint", `ca_bundle_pem = ` + pem + "\nroles = { r = { " + good + " } }\nrolesanywhere_endpoint = \"localhost\"", "rolesanywhere_endpoint must be a URL"},
	}
	// One module call per case, and one good call, validated in one run:
	// each run starts the 1.27 GB provider, which takes seconds.
	rel := w.moduleSource(t)
	var root strings.Builder
	call := func(name, body string) {
		fmt.Fprintf(&root, "module %q {\n  source = %q\n%s\n}\n\n", name, rel, body)
	}
	call("good", "ca_bundle_pem = "+pem+"\nroles = { r = { "+good+" } }")
	for i, c := range cases {
		call(fmt.Sprintf("case%d", i), c.body)
	}
	pkitest.WriteFile(t, w.dir, "main.tf", []byte(root.String()))
	w.mustTF(t, nil, 0, "init", "-no-color")
	out := w.mustTF(t, nil, 1, "validate", "-json", "-no-color")
	var result struct {
		Diagnostics []struct {
			Severity, Summary, Detail string
			Snippet                   struct{ Context string }
		}
	}
	if err := json.Unmarshal([]byte(out), &result); err != nil {
		t.Fatalf("terraform validate -json: %v\n%s", err, out)
	}
	errs := map[string][]string{} // module call => its error details
	for _, d := range result.Diagnostics {
		if d.Severity != "error" {
			continue
		}
		name := strings.TrimSuffix(strings.TrimPrefix(d.Snippet.Context, `module "`), `"`)
		errs[name] = append(errs[name], d.Summary+": "+d.Detail)
	}
	if len(errs["good"]) > 0 {
		t.Errorf("a good module call failed validation: %v", errs["good"])
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := errs[fmt.Sprintf("case%d", i)]
			if len(got) == 0 {
				t.Fatalf("terraform validate accepted:\n%s", c.body)
			}
			for _, e := range got {
				if strings.Contains(strings.Join(strings.Fields(e), " "), c.want) {
					return
				}
			}
			t.Fatalf("terraform validate refused without %q:\n%s", c.want, strings.Join(got, "\n"))
		})
	}
}

// TestModuleNeedsOneBundle: the CA bundle is given as a file or as PEM,
// exactly once, which only a precondition can check (a variable's
// validation sees no other variable before Terraform 1.9), so terraform
// plan refuses both and neither.
func TestModuleNeedsOneBundle(t *testing.T) {
	w := newWorkspace(t)
	bundle := pkitest.WriteFile(t, w.dir, "bundle.pem", pki.EncodeCertificates(pkitest.NewRoot(t, "bundle-root").Cert))
	roles := `roles = { r = { allowed_cn = ["gitlab-runner"] } }`
	cases := map[string]string{
		"neither": roles,
		"both":    fmt.Sprintf("ca_bundle_path = %q\nca_bundle_pem = file(%q)\n%s", bundle, bundle, roles),
	}
	for name, body := range cases {
		t.Run(name, func(t *testing.T) {
			// Planning creations asks AWS nothing once the provider skips
			// its own checks, so no endpoint is needed.
			w.writeRoot(t, "http://127.0.0.1:9", body)
			main := strings.Replace(mustReadString(t, filepath.Join(w.dir, "main.tf")), "skip_region_validation      = true",
				"skip_region_validation      = true\n  skip_credentials_validation = true\n  skip_requesting_account_id  = true", 1)
			pkitest.WriteFile(t, w.dir, "main.tf", []byte(main))
			env := []string{"AWS_ACCESS_KEY_ID=" + operatorKeyID, "AWS_SECRET_ACCESS_KEY=unused-by-this-plan"}
			w.mustTF(t, env, 0, "init", "-no-color")
			code, out := w.tf(t, env, "plan", "-no-color")
			if code == 0 {
				t.Fatalf("terraform plan accepted:\n%s", body)
			}
			if !strings.Contains(strings.Join(strings.Fields(out), " "), "Give the CA bundle as exactly one of ca_bundle_path") {
				t.Fatalf("terraform plan failed without the module's message:\n%s", out)
			}
		})
	}
}

func mustReadString(t *testing.T, path string) string { return string(mustRead(t, path)) }

// TestReferenceTfvars applies the module as a root module with
// examples/reference.tfvars, the reference setup's variables mapped onto
// it, against the emulator, gets credentials for the reference's CN
// through the line it outputs, and destroys it.
func TestReferenceTfvars(t *testing.T) {
	w := newWorkspace(t)
	for _, name := range []string{"versions.tf", "variables.tf", "main.tf", "outputs.tf", "examples/reference.tfvars"} {
		data, err := os.ReadFile(filepath.Join(moduleDir, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(w.dir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		pkitest.WriteFile(t, w.dir, name, data)
	}
	secret := randomSecret(t)
	emu := newEmulator(t, w.keyless, t.TempDir(), secret)
	env := []string{"AWS_ACCESS_KEY_ID=" + operatorKeyID, "AWS_SECRET_ACCESS_KEY=" + secret}
	pkitest.WriteFile(t, w.dir, "provider.tf", []byte(fmt.Sprintf(`provider "aws" {
  region                  = "us-east-1"
  skip_metadata_api_check = true
  endpoints {
    iam           = %[1]q
    rolesanywhere = %[1]q
    sts           = %[1]q
  }
}
`, emu.url())))

	root := pkitest.NewRoot(t, "reference-root")
	inter := root.Intermediate(t, "reference-int")
	if err := os.MkdirAll(filepath.Join(w.dir, "certs"), 0o755); err != nil {
		t.Fatal(err)
	}
	pkitest.WriteFile(t, filepath.Join(w.dir, "certs"), "bundle.pem", pki.EncodeCertificates(root.Cert, inter.Cert))
	cert, key := identity(t, t.TempDir(), inter, "gitlab-runner")

	// ca_bundle_path = "./certs/bundle.pem" is relative to where terraform
	// runs, as in the reference.
	vars := []string{"-var-file=examples/reference.tfvars", "-var=rolesanywhere_endpoint=" + emu.url(), "-var=keyless_path=" + w.keyless,
		"-var=runner_certificate_path=" + cert, "-var=runner_key_path=" + key}
	w.mustTF(t, env, 0, "init", "-no-color")
	w.mustTF(t, env, 0, append([]string{"apply", "-auto-approve", "-no-color"}, vars...)...)
	w.mustTF(t, env, 0, append([]string{"plan", "-detailed-exitcode", "-no-color"}, vars...)...)

	out := w.mustTF(t, env, 0, "output", "-json")
	var o struct {
		TrustAnchorARN    struct{ Value string }            `json:"trust_anchor_arn"`
		RoleARN           struct{ Value string }            `json:"role_arn"`
		ProfileARN        struct{ Value string }            `json:"profile_arn"`
		CredentialProcess struct{ Value map[string]string } `json:"credential_process"`
	}
	if err := json.Unmarshal([]byte(out), &o); err != nil {
		t.Fatalf("terraform output -json: %v\n%s", err, out)
	}
	if o.RoleARN.Value != "arn:aws:iam::111122223333:role/gitlab-runner-role" || !strings.Contains(o.ProfileARN.Value, ":profile/") || o.TrustAnchorARN.Value == "" {
		t.Errorf("the reference's three outputs: %s %s %s", o.TrustAnchorARN.Value, o.ProfileARN.Value, o.RoleARN.Value)
	}
	if _, stderr, err := credentialProcess(t, o.CredentialProcess.Value["gitlab-runner-role"]); err != nil {
		t.Fatalf("credential_process: %v\n%s", err, stderr)
	}
	w.mustTF(t, env, 0, append([]string{"destroy", "-auto-approve", "-no-color"}, vars...)...)
}
