package awshelper_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	helper "github.com/aws/rolesanywhere-credential-helper/aws_signing_helper"

	"github.com/keyless-dev/keyless/interop/awssdk/sdksetup"

	"github.com/keyless-dev/keyless/internal/pki"
	"github.com/keyless-dev/keyless/internal/pki/pkitest"
)

// TestHelperAgainstSDKSetup: AWS's helper (v1.4.0, as a library) gets
// credentials from a setup made only through the AWS SDK for Go v2's
// Roles Anywhere and IAM clients (see sdksetup; every control-plane call
// is checked against AWS's models), with a session name the profile
// accepts, and STS names the session; a certificate for another CN is
// refused.
func TestHelperAgainstSDKSetup(t *testing.T) {
	e := sdksetup.New(t)
	d := e.Setup(t, "helper", "runner-1")
	opts := func(cn, session string) *helper.CredentialsOpts {
		cert, key, _ := e.Identity(t, cn)
		// The helper sends only the certificate file's first certificate;
		// the intermediate goes in its own bundle file.
		bundle := pkitest.WriteFile(t, filepath.Dir(cert), "chain.pem", pki.EncodeCertificates(e.Inter.Cert))
		return &helper.CredentialsOpts{PrivateKeyId: key, CertificateId: cert, CertificateBundleId: bundle,
			RoleArn: d.RoleARN, ProfileArnStr: d.ProfileARN, TrustAnchorArnStr: d.AnchorARN,
			SessionDuration: 3600, Endpoint: e.URL, Version: "interop", RoleSessionName: session}
	}
	generate := func(o *helper.CredentialsOpts) (helper.CredentialProcessOutput, error) {
		signer, alg, err := helper.GetSigner(o)
		if err != nil {
			t.Fatalf("helper.GetSigner: %v", err)
		}
		return helper.GenerateCredentials(o, signer, alg)
	}

	out, err := generate(opts("runner-1", "helper-job-7"))
	if err != nil {
		t.Fatalf("helper.GenerateCredentials: %v", err)
	}
	id, err := e.STS(credentials.NewStaticCredentialsProvider(out.AccessKeyId, out.SecretAccessKey, out.SessionToken)).
		GetCallerIdentity(context.Background(), &sts.GetCallerIdentityInput{})
	if err != nil {
		t.Fatalf("GetCallerIdentity with the helper's credentials: %v", err)
	}
	if want := "arn:aws:sts::111122223333:assumed-role/" + d.RoleName + "/helper-job-7"; aws.ToString(id.Arn) != want {
		t.Errorf("STS says %s, want %s", aws.ToString(id.Arn), want)
	}

	if _, err := generate(opts("runner-2", "")); err == nil || !strings.Contains(err.Error(), "AccessDeniedException") {
		t.Errorf("a certificate for another CN: %v, want AccessDeniedException", err)
	}
}
