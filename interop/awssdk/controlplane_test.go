package awssdk_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"
	ra "github.com/aws/aws-sdk-go-v2/service/rolesanywhere"
	ratypes "github.com/aws/aws-sdk-go-v2/service/rolesanywhere/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"

	"github.com/keyless-dev/keyless/interop/awssdk/cptest"

	"github.com/keyless-dev/keyless/internal/pki"
	"github.com/keyless-dev/keyless/internal/pki/pkitest"
	"github.com/keyless-dev/keyless/internal/testkit"
)

// cp is the emulator with an empty account, an operator key, and the
// model check around it, plus a CA whose certificates the test enrolls
// through the SDK.
type cp struct {
	*cptest.Env
	root, inter *pkitest.CA
	dir         string
	op          aws.CredentialsProvider
	lastSerial  *big.Int // of the last identity a refusal test made
}

func newCP(t *testing.T) *cp {
	t.Helper()
	e := &cp{Env: cptest.Start(t), dir: t.TempDir(),
		op: credentials.NewStaticCredentialsProvider(cptest.AccessKeyID, cptest.SecretAccessKey, "")}
	e.root = pkitest.NewRoot(t, "sdk-root")
	e.inter = e.root.Intermediate(t, "sdk-int")
	return e
}

func (e *cp) ra(c aws.CredentialsProvider) *ra.Client {
	return ra.New(ra.Options{Region: cptest.Region, BaseEndpoint: aws.String(e.URL), Credentials: c, HTTPClient: e.Client(), RetryMaxAttempts: 1})
}

func (e *cp) iam(c aws.CredentialsProvider) *iam.Client {
	return iam.New(iam.Options{Region: cptest.Region, BaseEndpoint: aws.String(e.URL), Credentials: c, HTTPClient: e.Client(), RetryMaxAttempts: 1})
}

func (e *cp) sts(c aws.CredentialsProvider) *sts.Client {
	return sts.New(sts.Options{Region: cptest.Region, BaseEndpoint: aws.String(e.URL), Credentials: c, HTTPClient: e.Client(), RetryMaxAttempts: 1})
}

// trustPolicy is the reference setup's trust policy, for certificates
// named cn coming through the trust anchor anchorARN.
func trustPolicy(anchorARN, cn string) string {
	return `{"Version":"2012-10-17","Statement":[{"Effect":"Allow",
  "Principal":{"Service":"rolesanywhere.amazonaws.com"},
  "Action":["sts:AssumeRole","sts:TagSession","sts:SetSourceIdentity"],
  "Condition":{"ArnEquals":{"aws:SourceArn":"` + anchorARN + `"},
               "StringEquals":{"aws:PrincipalTag/x509Subject/CN":"` + cn + `"}}}]}`
}

// deployment is what setup made.
type deployment struct {
	anchorID, anchorARN, profileID, profileARN, roleARN, roleName string
}

// setup creates a trust anchor for the test's CA, a role trusting
// certificates named cn through it, and a profile for the role, only
// through the SDK, the way Terraform's AWS provider calls it.
func (e *cp) setup(t *testing.T, name, cn string) deployment {
	t.Helper()
	ctx := context.Background()
	rac, iamc := e.ra(e.op), e.iam(e.op)
	var d deployment

	anchor, err := rac.CreateTrustAnchor(ctx, &ra.CreateTrustAnchorInput{
		Name:    aws.String(name + "-ca"),
		Enabled: aws.Bool(true),
		Source: &ratypes.Source{SourceType: ratypes.TrustAnchorTypeCertificateBundle,
			SourceData: &ratypes.SourceDataMemberX509CertificateData{Value: string(pki.EncodeCertificates(e.root.Cert))}},
		Tags: []ratypes.Tag{{Key: aws.String("team"), Value: aws.String("ci")}},
	})
	if err != nil {
		t.Fatalf("CreateTrustAnchor: %v", err)
	}
	d.anchorID, d.anchorARN = aws.ToString(anchor.TrustAnchor.TrustAnchorId), aws.ToString(anchor.TrustAnchor.TrustAnchorArn)
	if _, err := rac.GetTrustAnchor(ctx, &ra.GetTrustAnchorInput{TrustAnchorId: &d.anchorID}); err != nil {
		t.Fatalf("GetTrustAnchor: %v", err)
	}

	d.roleName = name + "-deployer"
	role, err := iamc.CreateRole(ctx, &iam.CreateRoleInput{
		RoleName:                 aws.String(d.roleName),
		AssumeRolePolicyDocument: aws.String(trustPolicy(d.anchorARN, cn)),
		Description:              aws.String("made through the AWS SDK for Go v2"),
		MaxSessionDuration:       aws.Int32(7200),
		Tags:                     []iamtypes.Tag{{Key: aws.String("team"), Value: aws.String("ci")}},
	})
	if err != nil {
		t.Fatalf("CreateRole: %v", err)
	}
	d.roleARN = aws.ToString(role.Role.Arn)
	if _, err := iamc.PutRolePolicy(ctx, &iam.PutRolePolicyInput{RoleName: &d.roleName, PolicyName: aws.String("read"),
		PolicyDocument: aws.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}`)}); err != nil {
		t.Fatalf("PutRolePolicy: %v", err)
	}
	if _, err := iamc.AttachRolePolicy(ctx, &iam.AttachRolePolicyInput{RoleName: &d.roleName, PolicyArn: aws.String("arn:aws:iam::aws:policy/ReadOnlyAccess")}); err != nil {
		t.Fatalf("AttachRolePolicy: %v", err)
	}

	profile, err := rac.CreateProfile(ctx, &ra.CreateProfileInput{
		Name:                  aws.String(name + "-profile"),
		RoleArns:              []string{d.roleARN},
		Enabled:               aws.Bool(true),
		DurationSeconds:       aws.Int32(3600),
		AcceptRoleSessionName: aws.Bool(true),
		Tags:                  []ratypes.Tag{{Key: aws.String("team"), Value: aws.String("ci")}},
	})
	if err != nil {
		t.Fatalf("CreateProfile: %v", err)
	}
	d.profileID, d.profileARN = aws.ToString(profile.Profile.ProfileId), aws.ToString(profile.Profile.ProfileArn)
	if _, err := rac.PutAttributeMapping(ctx, &ra.PutAttributeMappingInput{ProfileId: &d.profileID,
		CertificateField: ratypes.CertificateFieldX509Subject,
		MappingRules:     []ratypes.MappingRule{{Specifier: aws.String("CN")}, {Specifier: aws.String("OU")}}}); err != nil {
		t.Fatalf("PutAttributeMapping: %v", err)
	}
	return d
}

// identity writes a key and a certificate for cn from the test's
// intermediate CA (the file holds the leaf, then the intermediate), and
// returns the two paths and the serial.
func (e *cp) identity(t *testing.T, cn string) (cert, key string, serial *big.Int) {
	t.Helper()
	k := pkitest.Key(t, pkitest.P256)
	keyPEM, err := pki.EncodePrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	leaf := e.inter.Leaf(t, pkitest.LeafOptions{CommonName: cn, Key: k})
	dir := filepath.Join(e.dir, cn+"-"+leaf.SerialNumber.Text(16))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	return pkitest.WriteFile(t, dir, "runner.crt", pki.EncodeCertificates(leaf, e.inter.Cert)),
		pkitest.WriteFile(t, dir, "runner.key", keyPEM), leaf.SerialNumber
}

// processCreds is credential_process's output.
type processCreds struct {
	Version                                         int
	AccessKeyId, SecretAccessKey, SessionToken, Exp string
}

// credentialProcess runs keyless credential-process against the emulator
// for d and returns the credentials, or the error and what keyless
// printed.
func (e *cp) credentialProcess(t *testing.T, d deployment, cert, key string, extra ...string) (aws.CredentialsProvider, string, error) {
	t.Helper()
	args := append([]string{"credential-process", "--certificate", cert, "--private-key", key,
		"--trust-anchor-arn", d.anchorARN, "--profile-arn", d.profileARN, "--role-arn", d.roleARN,
		"--endpoint", e.URL, "--no-cache"}, extra...)
	cmd := exec.Command(testkit.Keyless(t), args...)
	cmd.Env = append(os.Environ(), "XDG_CACHE_HOME="+filepath.Join(e.dir, "cache"), "HOME="+e.dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, stderr.String(), err
	}
	var c processCreds
	if err := json.Unmarshal(out, &c); err != nil || c.Version != 1 || c.AccessKeyId == "" {
		t.Fatalf("credential-process printed %q: %v", out, err)
	}
	return credentials.NewStaticCredentialsProvider(c.AccessKeyId, c.SecretAccessKey, c.SessionToken), stderr.String(), nil
}

// TestSetupThroughSDK: a setup made only through the SDK's Roles
// Anywhere and IAM clients (trust anchor from the CA bundle, a role whose
// trust policy names the CN and the anchor's ARN, a profile that accepts
// session names, with attribute mappings and a role policy) gives
// credentials to keyless credential-process, which STS names; and what
// the SDK reads back is what it wrote.
func TestSetupThroughSDK(t *testing.T) {
	e := newCP(t)
	ctx := context.Background()
	d := e.setup(t, "sdk", "runner-1")
	cert, key, _ := e.identity(t, "runner-1")

	creds, stderr, err := e.credentialProcess(t, d, cert, key, "--role-session-name", "job-42")
	if err != nil {
		t.Fatalf("credential-process: %v\n%s", err, stderr)
	}
	id, err := e.sts(creds).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		t.Fatalf("GetCallerIdentity with the session: %v", err)
	}
	if want := "arn:aws:sts::111122223333:assumed-role/" + d.roleName + "/job-42"; aws.ToString(id.Arn) != want {
		t.Errorf("session is %s, want %s", aws.ToString(id.Arn), want)
	}
	opID, err := e.sts(e.op).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		t.Fatalf("GetCallerIdentity with the operator key: %v", err)
	}
	if want := "arn:aws:iam::111122223333:user/" + cptest.OperatorName; aws.ToString(opID.Arn) != want {
		t.Errorf("operator is %s, want %s", aws.ToString(opID.Arn), want)
	}

	// Read back what Terraform reads back after creating.
	rac, iamc := e.ra(e.op), e.iam(e.op)
	p, err := rac.GetProfile(ctx, &ra.GetProfileInput{ProfileId: &d.profileID})
	if err != nil {
		t.Fatalf("GetProfile: %v", err)
	}
	if !aws.ToBool(p.Profile.AcceptRoleSessionName) || len(p.Profile.AttributeMappings) != 1 ||
		p.Profile.AttributeMappings[0].CertificateField != ratypes.CertificateFieldX509Subject || len(p.Profile.AttributeMappings[0].MappingRules) != 2 {
		t.Errorf("profile reads back as acceptRoleSessionName %v, attribute mappings %+v", aws.ToBool(p.Profile.AcceptRoleSessionName), p.Profile.AttributeMappings)
	}
	tags, err := rac.ListTagsForResource(ctx, &ra.ListTagsForResourceInput{ResourceArn: &d.anchorARN})
	if err != nil || len(tags.Tags) != 1 || aws.ToString(tags.Tags[0].Key) != "team" {
		t.Errorf("ListTagsForResource: %+v, %v", tags, err)
	}
	role, err := iamc.GetRole(ctx, &iam.GetRoleInput{RoleName: &d.roleName})
	if err != nil {
		t.Fatalf("GetRole: %v", err)
	}
	doc, err := url.QueryUnescape(aws.ToString(role.Role.AssumeRolePolicyDocument))
	if err != nil || !json.Valid([]byte(doc)) || !strings.Contains(doc, d.anchorARN) {
		t.Errorf("GetRole's AssumeRolePolicyDocument %q (URL-encoded JSON naming the anchor): %v", aws.ToString(role.Role.AssumeRolePolicyDocument), err)
	}
	if aws.ToInt32(role.Role.MaxSessionDuration) != 7200 || aws.ToString(role.Role.Description) == "" || !strings.HasPrefix(aws.ToString(role.Role.RoleId), "AROA") {
		t.Errorf("GetRole: %+v", role.Role)
	}
	inline, err := iamc.ListRolePolicies(ctx, &iam.ListRolePoliciesInput{RoleName: &d.roleName})
	if err != nil || !slices.Equal(inline.PolicyNames, []string{"read"}) {
		t.Errorf("ListRolePolicies: %+v, %v", inline, err)
	}
	attached, err := iamc.ListAttachedRolePolicies(ctx, &iam.ListAttachedRolePoliciesInput{RoleName: &d.roleName})
	if err != nil || len(attached.AttachedPolicies) != 1 {
		t.Errorf("ListAttachedRolePolicies: %+v, %v", attached, err)
	}
	rtags, err := iamc.ListRoleTags(ctx, &iam.ListRoleTagsInput{RoleName: &d.roleName})
	if err != nil || len(rtags.Tags) != 1 {
		t.Errorf("ListRoleTags: %+v, %v", rtags, err)
	}
	if _, err := iamc.ListInstanceProfilesForRole(ctx, &iam.ListInstanceProfilesForRoleInput{RoleName: &d.roleName}); err != nil {
		t.Errorf("ListInstanceProfilesForRole: %v", err)
	}
	subjects, err := rac.ListSubjects(ctx, &ra.ListSubjectsInput{})
	if err != nil || len(subjects.Subjects) != 1 {
		t.Errorf("ListSubjects after one session: %+v, %v", subjects, err)
	} else if _, err := rac.GetSubject(ctx, &ra.GetSubjectInput{SubjectId: subjects.Subjects[0].SubjectId}); err != nil {
		t.Errorf("GetSubject: %v", err)
	}
}

// TestTeardownThroughSDK: everything setup made is removed the way
// Terraform destroys it, and then is gone.
func TestTeardownThroughSDK(t *testing.T) {
	e := newCP(t)
	ctx := context.Background()
	d := e.setup(t, "gone", "runner-1")
	rac, iamc := e.ra(e.op), e.iam(e.op)
	if _, err := rac.DeleteProfile(ctx, &ra.DeleteProfileInput{ProfileId: &d.profileID}); err != nil {
		t.Fatalf("DeleteProfile: %v", err)
	}
	if _, err := rac.DeleteTrustAnchor(ctx, &ra.DeleteTrustAnchorInput{TrustAnchorId: &d.anchorID}); err != nil {
		t.Fatalf("DeleteTrustAnchor: %v", err)
	}
	steps := []func() error{
		func() error {
			_, err := iamc.DetachRolePolicy(ctx, &iam.DetachRolePolicyInput{RoleName: &d.roleName, PolicyArn: aws.String("arn:aws:iam::aws:policy/ReadOnlyAccess")})
			return err
		},
		func() error {
			_, err := iamc.DeleteRolePolicy(ctx, &iam.DeleteRolePolicyInput{RoleName: &d.roleName, PolicyName: aws.String("read")})
			return err
		},
		func() error {
			_, err := iamc.DeleteRole(ctx, &iam.DeleteRoleInput{RoleName: &d.roleName})
			return err
		},
	}
	for i, step := range steps {
		if err := step(); err != nil {
			t.Fatalf("teardown step %d: %v", i+1, err)
		}
	}
	_, err := rac.GetTrustAnchor(ctx, &ra.GetTrustAnchorInput{TrustAnchorId: &d.anchorID})
	wantAPIError(t, "GetTrustAnchor after delete", err, "ResourceNotFoundException")
	_, err = rac.GetProfile(ctx, &ra.GetProfileInput{ProfileId: &d.profileID})
	wantAPIError(t, "GetProfile after delete", err, "ResourceNotFoundException")
	_, err = iamc.GetRole(ctx, &iam.GetRoleInput{RoleName: &d.roleName})
	wantAPIError(t, "GetRole after delete", err, "NoSuchEntity")
}

// TestPaginationThroughSDK: the SDK's paginators walk trust anchors,
// profiles and roles two at a time and see each exactly once.
func TestPaginationThroughSDK(t *testing.T) {
	e := newCP(t)
	ctx := context.Background()
	const n = 5
	var anchors, profiles, roles []string
	for i := range n {
		d := e.setup(t, fmt.Sprintf("page%d", i), "runner-1")
		anchors, profiles, roles = append(anchors, d.anchorARN), append(profiles, d.profileARN), append(roles, d.roleARN)
	}
	rac, iamc := e.ra(e.op), e.iam(e.op)

	var got []string
	pages := 0
	for pg := ra.NewListTrustAnchorsPaginator(rac, &ra.ListTrustAnchorsInput{PageSize: aws.Int32(2)}); pg.HasMorePages(); pages++ {
		out, err := pg.NextPage(ctx)
		if err != nil {
			t.Fatalf("ListTrustAnchors page %d: %v", pages+1, err)
		}
		for _, a := range out.TrustAnchors {
			got = append(got, aws.ToString(a.TrustAnchorArn))
		}
	}
	checkPages(t, "ListTrustAnchors", got, anchors, pages)

	got, pages = nil, 0
	for pg := ra.NewListProfilesPaginator(rac, &ra.ListProfilesInput{PageSize: aws.Int32(2)}); pg.HasMorePages(); pages++ {
		out, err := pg.NextPage(ctx)
		if err != nil {
			t.Fatalf("ListProfiles page %d: %v", pages+1, err)
		}
		for _, p := range out.Profiles {
			got = append(got, aws.ToString(p.ProfileArn))
		}
	}
	checkPages(t, "ListProfiles", got, profiles, pages)

	got, pages = nil, 0
	for pg := iam.NewListRolesPaginator(iamc, &iam.ListRolesInput{MaxItems: aws.Int32(2)}); pg.HasMorePages(); pages++ {
		out, err := pg.NextPage(ctx)
		if err != nil {
			t.Fatalf("ListRoles page %d: %v", pages+1, err)
		}
		for _, r := range out.Roles {
			got = append(got, aws.ToString(r.Arn))
		}
	}
	checkPages(t, "ListRoles", got, roles, pages)
}

func checkPages(t *testing.T, op string, got, want []string, pages int) {
	t.Helper()
	slices.Sort(got)
	want = slices.Sorted(slices.Values(want))
	if !slices.Equal(got, want) {
		t.Errorf("%s over %d pages listed %v, want each of %v once", op, pages, got, want)
	}
	if pages != 3 {
		t.Errorf("%s: %d pages of 2 for 5 items, want 3", op, pages)
	}
}

func wantAPIError(t *testing.T, what string, err error, code string) {
	t.Helper()
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) {
		t.Errorf("%s: got %v, want API error %s", what, err, code)
		return
	}
	if apiErr.ErrorCode() != code {
		t.Errorf("%s: got %s (%s), want %s", what, apiErr.ErrorCode(), apiErr.ErrorMessage(), code)
	}
}
