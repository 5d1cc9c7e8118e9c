// Package sdksetup creates a Roles Anywhere setup on keyless's emulator
// only through the AWS SDK for Go v2 (the Roles Anywhere and IAM clients
// Terraform's AWS provider uses): a trust anchor for a test CA, a role
// whose trust policy names a CN and the anchor's ARN, a profile that
// accepts session names, with attribute mappings, role policies and tags.
// The emulator runs behind cptest's model check. interop/awssdk's tests
// and interop/awshelper's (through a replace directive) use it; only tests
// may.
package sdksetup

import (
	"context"
	"math/big"
	"os"
	"path/filepath"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"
	ra "github.com/aws/aws-sdk-go-v2/service/rolesanywhere"
	ratypes "github.com/aws/aws-sdk-go-v2/service/rolesanywhere/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/keyless-dev/keyless/interop/awssdk/cptest"

	"github.com/keyless-dev/keyless/internal/pki"
	"github.com/keyless-dev/keyless/internal/pki/pkitest"
)

// Env is the emulator with an empty account and an operator key, the
// model check around it, and a CA (root and intermediate) whose
// certificates the setup trusts.
type Env struct {
	*cptest.Env
	Root, Inter *pkitest.CA
	Dir         string
	// Operator signs with the emulator's operator key.
	Operator aws.CredentialsProvider
}

// New starts the emulator for the test (see cptest.Start).
func New(t *testing.T) *Env {
	t.Helper()
	e := &Env{Env: cptest.Start(t), Dir: t.TempDir(),
		Operator: credentials.NewStaticCredentialsProvider(cptest.AccessKeyID, cptest.SecretAccessKey, "")}
	e.Root = pkitest.NewRoot(t, "sdk-root")
	e.Inter = e.Root.Intermediate(t, "sdk-int")
	return e
}

// RA, IAM and STS are the SDK's clients pointed at the emulator, signing
// with c, without retries.
func (e *Env) RA(c aws.CredentialsProvider) *ra.Client {
	return ra.New(ra.Options{Region: cptest.Region, BaseEndpoint: aws.String(e.URL), Credentials: c, HTTPClient: e.Client(), RetryMaxAttempts: 1})
}

func (e *Env) IAM(c aws.CredentialsProvider) *iam.Client {
	return iam.New(iam.Options{Region: cptest.Region, BaseEndpoint: aws.String(e.URL), Credentials: c, HTTPClient: e.Client(), RetryMaxAttempts: 1})
}

func (e *Env) STS(c aws.CredentialsProvider) *sts.Client {
	return sts.New(sts.Options{Region: cptest.Region, BaseEndpoint: aws.String(e.URL), Credentials: c, HTTPClient: e.Client(), RetryMaxAttempts: 1})
}

// TrustPolicy is the reference setup's trust policy, for certificates
// named cn coming through the trust anchor anchorARN.
func TrustPolicy(anchorARN, cn string) string {
	return `{"Version":"2012-10-17","Statement":[{"Effect":"Allow",
  "Principal":{"Service":"rolesanywhere.amazonaws.com"},
  "Action":["sts:AssumeRole","sts:TagSession","sts:SetSourceIdentity"],
  "Condition":{"ArnEquals":{"aws:SourceArn":"` + anchorARN + `"},
               "StringEquals":{"aws:PrincipalTag/x509Subject/CN":"` + cn + `"}}}]}`
}

// Deployment is what Setup made.
type Deployment struct {
	AnchorID, AnchorARN, ProfileID, ProfileARN, RoleARN, RoleName string
}

// Names of what Setup attaches to the role.
const (
	InlinePolicy  = "read"
	ManagedPolicy = "arn:aws:iam::aws:policy/ReadOnlyAccess"
)

// Setup creates, through the SDK and in the order Terraform's AWS provider
// calls it, a trust anchor "<name>-ca" for the test's root CA, a role
// "<name>-deployer" trusting certificates named cn through it (inline
// policy InlinePolicy, ManagedPolicy attached, 2-hour sessions), and a
// profile "<name>-profile" for the role that accepts session names and
// maps the subject's CN and OU. Everything is tagged team=ci.
func (e *Env) Setup(t *testing.T, name, cn string) Deployment {
	t.Helper()
	ctx := context.Background()
	rac, iamc := e.RA(e.Operator), e.IAM(e.Operator)
	var d Deployment

	anchor, err := rac.CreateTrustAnchor(ctx, &ra.CreateTrustAnchorInput{
		Name:    aws.String(name + "-ca"),
		Enabled: aws.Bool(true),
		Source: &ratypes.Source{SourceType: ratypes.TrustAnchorTypeCertificateBundle,
			SourceData: &ratypes.SourceDataMemberX509CertificateData{Value: string(pki.EncodeCertificates(e.Root.Cert))}},
		Tags: []ratypes.Tag{{Key: aws.String("team"), Value: aws.String("ci")}},
	})
	if err != nil {
		t.Fatalf("CreateTrustAnchor: %v", err)
	}
	d.AnchorID, d.AnchorARN = aws.ToString(anchor.TrustAnchor.TrustAnchorId), aws.ToString(anchor.TrustAnchor.TrustAnchorArn)
	if _, err := rac.GetTrustAnchor(ctx, &ra.GetTrustAnchorInput{TrustAnchorId: &d.AnchorID}); err != nil {
		t.Fatalf("GetTrustAnchor: %v", err)
	}

	d.RoleName = name + "-deployer"
	role, err := iamc.CreateRole(ctx, &iam.CreateRoleInput{
		RoleName:                 aws.String(d.RoleName),
		AssumeRolePolicyDocument: aws.String(TrustPolicy(d.AnchorARN, cn)),
		Description:              aws.String("made through the AWS SDK for Go v2"),
		MaxSessionDuration:       aws.Int32(7200),
		Tags:                     []iamtypes.Tag{{Key: aws.String("team"), Value: aws.String("ci")}},
	})
	if err != nil {
		t.Fatalf("CreateRole: %v", err)
	}
	d.RoleARN = aws.ToString(role.Role.Arn)
	if _, err := iamc.PutRolePolicy(ctx, &iam.PutRolePolicyInput{RoleName: &d.RoleName, PolicyName: aws.String(InlinePolicy),
		PolicyDocument: aws.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}`)}); err != nil {
		t.Fatalf("PutRolePolicy: %v", err)
	}
	if _, err := iamc.AttachRolePolicy(ctx, &iam.AttachRolePolicyInput{RoleName: &d.RoleName, PolicyArn: aws.String(ManagedPolicy)}); err != nil {
		t.Fatalf("AttachRolePolicy: %v", err)
	}

	profile, err := rac.CreateProfile(ctx, &ra.CreateProfileInput{
		Name:                  aws.String(name + "-profile"),
		RoleArns:              []string{d.RoleARN},
		Enabled:               aws.Bool(true),
		DurationSeconds:       aws.Int32(3600),
		AcceptRoleSessionName: aws.Bool(true),
		Tags:                  []ratypes.Tag{{Key: aws.String("team"), Value: aws.String("ci")}},
	})
	if err != nil {
		t.Fatalf("CreateProfile: %v", err)
	}
	d.ProfileID, d.ProfileARN = aws.ToString(profile.Profile.ProfileId), aws.ToString(profile.Profile.ProfileArn)
	if _, err := rac.PutAttributeMapping(ctx, &ra.PutAttributeMappingInput{ProfileId: &d.ProfileID,
		CertificateField: ratypes.CertificateFieldX509Subject,
		MappingRules:     []ratypes.MappingRule{{Specifier: aws.String("CN")}, {Specifier: aws.String("OU")}}}); err != nil {
		t.Fatalf("PutAttributeMapping: %v", err)
	}
	return d
}

// Identity writes a P-256 key and a certificate for cn from the test's
// intermediate CA (the file holds the leaf, then the intermediate), and
// returns the two paths and the certificate's serial.
func (e *Env) Identity(t *testing.T, cn string) (cert, key string, serial *big.Int) {
	t.Helper()
	k := pkitest.Key(t, pkitest.P256)
	keyPEM, err := pki.EncodePrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	leaf := e.Inter.Leaf(t, pkitest.LeafOptions{CommonName: cn, Key: k})
	dir := filepath.Join(e.Dir, "id-"+leaf.SerialNumber.Text(16))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	return pkitest.WriteFile(t, dir, "runner.crt", pki.EncodeCertificates(leaf, e.Inter.Cert)),
		pkitest.WriteFile(t, dir, "runner.key", keyPEM), leaf.SerialNumber
}
