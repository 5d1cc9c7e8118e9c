package awssdk_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/keyless-dev/keyless/internal/emulator/emulatortest"
	"github.com/keyless-dev/keyless/internal/pki/pkitest"
	"github.com/keyless-dev/keyless/internal/testkit"
)

// TestCredentialsFromServe: the SDK's default credential chain, given
// only AWS_EC2_METADATA_SERVICE_ENDPOINT, gets credentials from keyless
// serve over IMDSv2 (token PUT, role list, role credentials) and calls
// STS on the emulator with them.
func TestCredentialsFromServe(t *testing.T) {
	dir := t.TempDir()
	root := pkitest.NewRoot(t, "serve-root")
	inter := root.Intermediate(t, "serve-int")
	emu := emulatortest.New(t, nil, root.Cert)
	crt, keyFile := inter.WriteIdentity(t, dir)
	url, _, _ := testkit.Serve(t, testkit.Keyless(t), nil, "--certificate", crt, "--private-key", keyFile,
		"--trust-anchor-arn", emu.TrustAnchorARN, "--profile-arn", emu.ProfileARN, "--role-arn", emu.RoleARN,
		"--endpoint", emu.URL, "--port", "0")

	// Nothing but IMDS may answer: no keys, files or other endpoints.
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); strings.HasPrefix(name, "AWS_") {
			t.Setenv(name, "")
			os.Unsetenv(name)
		}
	}
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, nil, 0o600)
	t.Setenv("AWS_CONFIG_FILE", empty)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", empty)
	t.Setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", url)

	cfg, err := config.LoadDefaultConfig(context.Background(), config.WithRegion("us-east-1"))
	if err != nil {
		t.Fatal(err)
	}
	creds, err := cfg.Credentials.Retrieve(context.Background())
	if err != nil {
		t.Fatalf("the SDK got no credentials from keyless serve at %s: %v", url, err)
	}
	if creds.Source != "EC2RoleProvider" || !strings.HasPrefix(creds.AccessKeyID, "ASIA") || !creds.CanExpire {
		t.Errorf("credentials from %s, key %.4s..., can expire %v", creds.Source, creds.AccessKeyID, creds.CanExpire)
	}
	out, err := sts.NewFromConfig(cfg, func(o *sts.Options) { o.BaseEndpoint = aws.String(emu.URL) }).
		GetCallerIdentity(context.Background(), &sts.GetCallerIdentityInput{})
	if err != nil {
		t.Fatalf("GetCallerIdentity with keyless serve's credentials: %v", err)
	}
	if arn := aws.ToString(out.Arn); !strings.HasPrefix(arn, "arn:aws:sts::111122223333:assumed-role/ci-deployer/") {
		t.Errorf("STS says %s", arn)
	}
}
