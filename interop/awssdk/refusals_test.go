package awssdk_test

import (
	"context"
	"encoding/pem"
	"fmt"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	ra "github.com/aws/aws-sdk-go-v2/service/rolesanywhere"
	ratypes "github.com/aws/aws-sdk-go-v2/service/rolesanywhere/types"

	"github.com/keyless-dev/keyless/interop/awssdk/cptest"
	"github.com/keyless-dev/keyless/interop/awssdk/sdksetup"

	"github.com/keyless-dev/keyless/internal/pki"
	"github.com/keyless-dev/keyless/internal/pki/pkitest"
)

// TestSessionRefusalsAfterSDKSetup: a setup made through the SDK refuses
// CreateSession for each broken condition the issue names, and keyless
// credential-process shows the rule the emulator names. Each case first
// gets credentials (so the refusal is exactly the broken condition), then
// breaks one thing through the SDK.
func TestSessionRefusalsAfterSDKSetup(t *testing.T) {
	for _, tt := range []struct {
		name string
		// breakIt changes the setup through the SDK; it may return other
		// ARNs or another certificate for the second attempt.
		breakIt func(t *testing.T, e *cp, d *sdksetup.Deployment, cert, key *string)
		rule    []string // what the refusal must say, any of
	}{
		{name: "wrong CN", rule: []string{"x509Subject/CN"}, breakIt: func(t *testing.T, e *cp, d *sdksetup.Deployment, cert, key *string) {
			*cert, *key, _ = e.Identity(t, "someone-else")
		}},
		{name: "SourceArn of another trust anchor", rule: []string{"aws:SourceArn"}, breakIt: func(t *testing.T, e *cp, d *sdksetup.Deployment, cert, key *string) {
			// A second anchor over the same CA: the certificate chains to it,
			// but the role trusts only the first one's ARN.
			other, err := e.RA(e.Operator).CreateTrustAnchor(context.Background(), &ra.CreateTrustAnchorInput{
				Name: aws.String("other-ca"), Enabled: aws.Bool(true),
				Source: &ratypes.Source{SourceType: ratypes.TrustAnchorTypeCertificateBundle,
					SourceData: &ratypes.SourceDataMemberX509CertificateData{Value: string(pki.EncodeCertificates(e.Root.Cert))}}})
			if err != nil {
				t.Fatalf("CreateTrustAnchor: %v", err)
			}
			d.AnchorARN = aws.ToString(other.TrustAnchor.TrustAnchorArn)
		}},
		{name: "disabled trust anchor", rule: []string{"Trust anchor is disabled"}, breakIt: func(t *testing.T, e *cp, d *sdksetup.Deployment, cert, key *string) {
			out, err := e.RA(e.Operator).DisableTrustAnchor(context.Background(), &ra.DisableTrustAnchorInput{TrustAnchorId: &d.AnchorID})
			if err != nil || aws.ToBool(out.TrustAnchor.Enabled) {
				t.Fatalf("DisableTrustAnchor: %+v, %v", out, err)
			}
		}},
		{name: "disabled profile", rule: []string{"Profile is disabled"}, breakIt: func(t *testing.T, e *cp, d *sdksetup.Deployment, cert, key *string) {
			if _, err := e.RA(e.Operator).DisableProfile(context.Background(), &ra.DisableProfileInput{ProfileId: &d.ProfileID}); err != nil {
				t.Fatalf("DisableProfile: %v", err)
			}
		}},
		{name: "revoked certificate after ImportCrl", rule: []string{"revoked"}, breakIt: func(t *testing.T, e *cp, d *sdksetup.Deployment, cert, key *string) {
			ctx := context.Background()
			crl, err := e.RA(e.Operator).ImportCrl(ctx, &ra.ImportCrlInput{Name: aws.String("int-crl"), TrustAnchorArn: &d.AnchorARN,
				CrlData: pemCRL(e.Inter.CRL(t, e.lastSerial))})
			if err != nil {
				t.Fatalf("ImportCrl: %v", err)
			}
			// AWS imports a CRL disabled unless told otherwise; enabling it
			// is what makes it count.
			if _, err := e.RA(e.Operator).EnableCrl(ctx, &ra.EnableCrlInput{CrlId: crl.Crl.CrlId}); err != nil {
				t.Fatalf("EnableCrl: %v", err)
			}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newCP(t)
			d := e.Setup(t, "refuse", "runner-1")
			cert, key, serial := e.Identity(t, "runner-1")
			e.lastSerial = serial
			if _, stderr, err := e.credentialProcess(t, d, cert, key); err != nil {
				t.Fatalf("before breaking the setup: %v\n%s", err, stderr)
			}
			tt.breakIt(t, e, &d, &cert, &key)
			_, stderr, err := e.credentialProcess(t, d, cert, key)
			if err == nil {
				t.Fatalf("credential-process succeeded after %s", tt.name)
			}
			t.Logf("keyless credential-process said:\n%s", stderr)
			found := false
			for _, r := range tt.rule {
				found = found || strings.Contains(stderr, r)
			}
			if !found || !strings.Contains(stderr, "AccessDenied") {
				t.Errorf("refusal does not name the rule (%q) and AccessDenied:\n%s", tt.rule, stderr)
			}
		})
	}
}

// pemCRL encodes a DER CRL as PEM: AWS's ImportCrl documentation says a
// CRL must be PEM to be imported properly.
func pemCRL(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der})
}

// TestControlPlaneRefusalsThroughSDK: what AWS refuses is refused with
// AWS's error codes, as the SDK surfaces them.
func TestControlPlaneRefusalsThroughSDK(t *testing.T) {
	ctx := context.Background()
	e := newCP(t)
	d := e.Setup(t, "auth", "runner-1")
	cert, key, _ := e.Identity(t, "runner-1")
	session, stderr, err := e.credentialProcess(t, d, cert, key)
	if err != nil {
		t.Fatalf("credential-process: %v\n%s", err, stderr)
	}
	wrongSecret := credentials.NewStaticCredentialsProvider(cptest.AccessKeyID, strings.ToUpper(cptest.SecretAccessKey), "")
	unknownKey := credentials.NewStaticCredentialsProvider("AKIAUNKNOWNOPERATOR1", cptest.SecretAccessKey, "")
	anchorInput := func() *ra.CreateTrustAnchorInput {
		return &ra.CreateTrustAnchorInput{Name: aws.String("refused"), Source: &ratypes.Source{SourceType: ratypes.TrustAnchorTypeCertificateBundle,
			SourceData: &ratypes.SourceDataMemberX509CertificateData{Value: string(pki.EncodeCertificates(e.Root.Cert))}}}
	}
	roleInput := func(policy string) *iam.CreateRoleInput {
		return &iam.CreateRoleInput{RoleName: aws.String("refused"), AssumeRolePolicyDocument: aws.String(policy)}
	}
	for _, tt := range []struct {
		name string
		call func() error
		code string
	}{
		{name: "Roles Anywhere, bad signature", code: "InvalidSignatureException", call: func() error {
			_, err := e.RA(wrongSecret).CreateTrustAnchor(ctx, anchorInput())
			return err
		}},
		{name: "Roles Anywhere, unknown operator key", code: "UnrecognizedClientException", call: func() error {
			_, err := e.RA(unknownKey).ListTrustAnchors(ctx, &ra.ListTrustAnchorsInput{})
			return err
		}},
		{name: "Roles Anywhere, session credentials create nothing", code: "AccessDeniedException", call: func() error {
			_, err := e.RA(session).CreateTrustAnchor(ctx, anchorInput())
			return err
		}},
		{name: "IAM, bad signature", code: "SignatureDoesNotMatch", call: func() error {
			_, err := e.IAM(wrongSecret).CreateRole(ctx, roleInput(sdksetup.TrustPolicy(d.AnchorARN, "x")))
			return err
		}},
		{name: "IAM, unknown operator key", code: "InvalidClientTokenId", call: func() error {
			_, err := e.IAM(unknownKey).GetRole(ctx, &iam.GetRoleInput{RoleName: &d.RoleName})
			return err
		}},
		{name: "IAM, session credentials create nothing", code: "AccessDenied", call: func() error {
			_, err := e.IAM(session).CreateRole(ctx, roleInput(sdksetup.TrustPolicy(d.AnchorARN, "x")))
			return err
		}},
		{name: "IAM, trust policy without Principal", code: "MalformedPolicyDocument", call: func() error {
			_, err := e.IAM(e.Operator).CreateRole(ctx, roleInput(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"sts:AssumeRole"}]}`))
			return err
		}},
		{name: "IAM, trust policy with Resource", code: "MalformedPolicyDocument", call: func() error {
			_, err := e.IAM(e.Operator).CreateRole(ctx, roleInput(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow",
  "Principal":{"Service":"rolesanywhere.amazonaws.com"},"Action":"sts:AssumeRole","Resource":"*"}]}`))
			return err
		}},
		{name: "IAM, policy update without Principal", code: "MalformedPolicyDocument", call: func() error {
			_, err := e.IAM(e.Operator).UpdateAssumeRolePolicy(ctx, &iam.UpdateAssumeRolePolicyInput{RoleName: &d.RoleName,
				PolicyDocument: aws.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"sts:AssumeRole"}]}`)})
			return err
		}},
		{name: "IAM, role that exists", code: "EntityAlreadyExists", call: func() error {
			in := roleInput(sdksetup.TrustPolicy(d.AnchorARN, "x"))
			in.RoleName = &d.RoleName
			_, err := e.IAM(e.Operator).CreateRole(ctx, in)
			return err
		}},
		{name: "Roles Anywhere, three certificates in a bundle", code: "ValidationException", call: func() error {
			in := anchorInput()
			in.Source.SourceData = &ratypes.SourceDataMemberX509CertificateData{Value: string(pki.EncodeCertificates(e.Root.Cert, e.Inter.Cert, e.Root.Intermediate(t, "sdk-int-2").Cert))}
			_, err := e.RA(e.Operator).CreateTrustAnchor(ctx, in)
			return err
		}},
		{name: "Roles Anywhere, CA without keyUsage", code: "ValidationException", call: func() error {
			in := anchorInput()
			in.Source.SourceData = &ratypes.SourceDataMemberX509CertificateData{Value: string(pki.EncodeCertificates(pkitest.NewCA(t, pkitest.CAOptions{Name: "sdk-no-ku", NoKeyUsage: true}).Cert))}
			_, err := e.RA(e.Operator).CreateTrustAnchor(ctx, in)
			return err
		}},
		{name: "Roles Anywhere, third CRL of a trust anchor", code: "ValidationException", call: func() error {
			for i := range 3 {
				_, err := e.RA(e.Operator).ImportCrl(ctx, &ra.ImportCrlInput{Name: aws.String(fmt.Sprintf("crl-%d", i)), TrustAnchorArn: &d.AnchorARN, CrlData: pemCRL(e.Inter.CRL(t))})
				if err != nil {
					return err
				}
			}
			return nil
		}},
		{name: "IAM, trust policy over 2,048 characters", code: "LimitExceeded", call: func() error {
			long := strings.Replace(sdksetup.TrustPolicy(d.AnchorARN, "x"), `"x"`, `"`+strings.Repeat("x", 2048)+`"`, 1)
			_, err := e.IAM(e.Operator).CreateRole(ctx, roleInput(long))
			return err
		}},
		{name: "Roles Anywhere, unknown trust anchor", code: "ResourceNotFoundException", call: func() error {
			_, err := e.RA(e.Operator).GetTrustAnchor(ctx, &ra.GetTrustAnchorInput{TrustAnchorId: aws.String("3f7c1a0e-0000-4000-8000-00000000dead")})
			return err
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			wantAPIError(t, tt.name, tt.call(), tt.code)
		})
	}
}
