package awscli_test

import (
	"encoding/json"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/keyless-dev/keyless/internal/testkit"
)

// clis are the AWS CLIs on this machine, in lookup order.
type clis struct {
	paths    []string
	versions map[string]string // path -> version, such as 2.9.19
}

// awsCLIs finds every AWS CLI on this machine (the aws on PATH, which may
// be v1 from pip, and Debian's /usr/bin/aws), with its version.
func awsCLIs(t *testing.T) clis {
	t.Helper()
	found := clis{versions: map[string]string{}}
	var candidates []string
	if p, err := exec.LookPath("aws"); err == nil {
		candidates = append(candidates, p)
	}
	candidates = append(candidates, "/usr/bin/aws")
	for _, c := range candidates {
		out, err := exec.Command(c, "--version").CombinedOutput()
		if _, dup := found.versions[c]; !dup && err == nil && strings.HasPrefix(string(out), "aws-cli/") {
			version, _, _ := strings.Cut(strings.TrimPrefix(string(out), "aws-cli/"), " ")
			found.paths = append(found.paths, c)
			found.versions[c] = version
		}
	}
	if len(found.paths) == 0 {
		testkit.Unavailable(t, "no AWS CLI found (tried %v); install the Debian awscli package", candidates)
	}
	return found
}

// honoursServiceEndpointEnv reports whether an AWS CLI version reads
// AWS_ENDPOINT_URL_<SERVICE>: v2 from 2.13.0, v1 from 1.29.0.
func honoursServiceEndpointEnv(version string) bool {
	parts := strings.SplitN(version, ".", 3)
	if len(parts) < 2 {
		return false
	}
	major, _ := strconv.Atoi(parts[0])
	minor, _ := strconv.Atoi(parts[1])
	return major == 2 && minor >= 13 || major == 1 && minor >= 29 || major > 2
}

// TestGetCallerIdentityThroughEmulator runs the whole chain with the AWS
// CLI: its credential_process is keyless credential-process against the
// emulator, and `aws sts get-caller-identity` goes to the emulator's STS,
// which verifies the CLI's SigV4 signature with the issued secret and
// session token and names the assumed role.
func TestGetCallerIdentityThroughEmulator(t *testing.T) {
	clis := awsCLIs(t)
	for _, path := range clis.paths {
		version := clis.versions[path]
		t.Run(path+"@"+version, func(t *testing.T) {
			s := newSetup(t, path, true)
			env := []string{"AWS_ENDPOINT_URL_STS=" + s.emu.URL}
			args := []string{"sts", "get-caller-identity", "--profile", "keyless", "--output", "json"}
			if !honoursServiceEndpointEnv(version) {
				// Older CLIs (Debian 12 ships 2.9.19) ignore
				// AWS_ENDPOINT_URL_STS and would call the real STS.
				t.Logf("aws-cli/%s predates AWS_ENDPOINT_URL_STS; passing --endpoint-url too", version)
				args = append(args, "--endpoint-url", s.emu.URL)
			}
			out := s.runEnv(t, env, args...)
			var id struct{ UserId, Account, Arn string }
			if err := json.Unmarshal(out, &id); err != nil {
				t.Fatalf("aws printed %q: %v", out, err)
			}
			if !regexp.MustCompile(`^arn:aws:sts::111122223333:assumed-role/ci-deployer/[0-9a-f]+$`).MatchString(id.Arn) {
				t.Errorf("Arn = %q", id.Arn)
			}
			if id.Account != "111122223333" || !strings.HasPrefix(id.UserId, "AROA") {
				t.Errorf("Account %q, UserId %q", id.Account, id.UserId)
			}
		})
	}
}
