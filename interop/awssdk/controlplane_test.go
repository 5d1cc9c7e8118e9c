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
	"github.com/keyless-dev/keyless/interop/awssdk/sdksetup"

	"github.com/keyless-dev/keyless/internal/testkit"
)

// cp is sdksetup's environment plus the serial of the last identity a
// refusal test made.
type cp struct {
	*sdksetup.Env
	lastSerial *big.Int
}

func newCP(t *testing.T) *cp { return &cp{Env: sdksetup.New(t)} }

// processCreds is credential_process's output.
type processCreds struct {
	Version                                         int
	AccessKeyId, SecretAccessKey, SessionToken, Exp string
}

// credentialProcess runs keyless credential-process against the emulator
// for d and returns the credentials, or the error and what keyless
// printed.
func (e *cp) credentialProcess(t *testing.T, d sdksetup.Deployment, cert, key string, extra ...string) (aws.CredentialsProvider, string, error) {
	t.Helper()
	args := append([]string{"credential-process", "--certificate", cert, "--private-key", key,
		"--trust-anchor-arn", d.AnchorARN, "--profile-arn", d.ProfileARN, "--role-arn", d.RoleARN,
		"--endpoint", e.URL, "--no-cache"}, extra...)
	cmd := exec.Command(testkit.Keyless(t), args...)
	cmd.Env = append(os.Environ(), "XDG_CACHE_HOME="+filepath.Join(e.Dir, "cache"), "HOME="+e.Dir)
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
	d := e.Setup(t, "sdk", "runner-1")
	cert, key, _ := e.Identity(t, "runner-1")

	creds, stderr, err := e.credentialProcess(t, d, cert, key, "--role-session-name", "job-42")
	if err != nil {
		t.Fatalf("credential-process: %v\n%s", err, stderr)
	}
	id, err := e.STS(creds).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		t.Fatalf("GetCallerIdentity with the session: %v", err)
	}
	if want := "arn:aws:sts::111122223333:assumed-role/" + d.RoleName + "/job-42"; aws.ToString(id.Arn) != want {
		t.Errorf("session is %s, want %s", aws.ToString(id.Arn), want)
	}
	opID, err := e.STS(e.Operator).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		t.Fatalf("GetCallerIdentity with the operator key: %v", err)
	}
	if want := "arn:aws:iam::111122223333:user/" + cptest.OperatorName; aws.ToString(opID.Arn) != want {
		t.Errorf("operator is %s, want %s", aws.ToString(opID.Arn), want)
	}

	// Read back what Terraform reads back after creating.
	rac, iamc := e.RA(e.Operator), e.IAM(e.Operator)
	p, err := rac.GetProfile(ctx, &ra.GetProfileInput{ProfileId: &d.ProfileID})
	if err != nil {
		t.Fatalf("GetProfile: %v", err)
	}
	// AWS gives every profile default mappings for the subject, the
	// issuer and the SANs; PutAttributeMapping replaced the subject's.
	var subject []string
	for _, m := range p.Profile.AttributeMappings {
		if m.CertificateField == ratypes.CertificateFieldX509Subject {
			for _, r := range m.MappingRules {
				subject = append(subject, aws.ToString(r.Specifier))
			}
		}
	}
	if slices.Sort(subject); !aws.ToBool(p.Profile.AcceptRoleSessionName) || !slices.Equal(subject, []string{"CN", "OU"}) {
		t.Errorf("profile reads back as acceptRoleSessionName %v, x509Subject mapped to %v (want CN, OU)", aws.ToBool(p.Profile.AcceptRoleSessionName), subject)
	}
	tags, err := rac.ListTagsForResource(ctx, &ra.ListTagsForResourceInput{ResourceArn: &d.AnchorARN})
	if err != nil || len(tags.Tags) != 1 || aws.ToString(tags.Tags[0].Key) != "team" {
		t.Errorf("ListTagsForResource: %+v, %v", tags, err)
	}
	role, err := iamc.GetRole(ctx, &iam.GetRoleInput{RoleName: &d.RoleName})
	if err != nil {
		t.Fatalf("GetRole: %v", err)
	}
	doc, err := url.QueryUnescape(aws.ToString(role.Role.AssumeRolePolicyDocument))
	if err != nil || !json.Valid([]byte(doc)) || !strings.Contains(doc, d.AnchorARN) {
		t.Errorf("GetRole's AssumeRolePolicyDocument %q (URL-encoded JSON naming the anchor): %v", aws.ToString(role.Role.AssumeRolePolicyDocument), err)
	}
	if aws.ToInt32(role.Role.MaxSessionDuration) != 7200 || aws.ToString(role.Role.Description) == "" || !strings.HasPrefix(aws.ToString(role.Role.RoleId), "AROA") {
		t.Errorf("GetRole: %+v", role.Role)
	}
	inline, err := iamc.ListRolePolicies(ctx, &iam.ListRolePoliciesInput{RoleName: &d.RoleName})
	if err != nil || !slices.Equal(inline.PolicyNames, []string{sdksetup.InlinePolicy}) {
		t.Errorf("ListRolePolicies: %+v, %v", inline, err)
	}
	attached, err := iamc.ListAttachedRolePolicies(ctx, &iam.ListAttachedRolePoliciesInput{RoleName: &d.RoleName})
	if err != nil || len(attached.AttachedPolicies) != 1 {
		t.Errorf("ListAttachedRolePolicies: %+v, %v", attached, err)
	}
	rtags, err := iamc.ListRoleTags(ctx, &iam.ListRoleTagsInput{RoleName: &d.RoleName})
	if err != nil || len(rtags.Tags) != 1 {
		t.Errorf("ListRoleTags: %+v, %v", rtags, err)
	}
	if _, err := iamc.ListInstanceProfilesForRole(ctx, &iam.ListInstanceProfilesForRoleInput{RoleName: &d.RoleName}); err != nil {
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
	d := e.Setup(t, "gone", "runner-1")
	rac, iamc := e.RA(e.Operator), e.IAM(e.Operator)
	if _, err := rac.DeleteProfile(ctx, &ra.DeleteProfileInput{ProfileId: &d.ProfileID}); err != nil {
		t.Fatalf("DeleteProfile: %v", err)
	}
	if _, err := rac.DeleteTrustAnchor(ctx, &ra.DeleteTrustAnchorInput{TrustAnchorId: &d.AnchorID}); err != nil {
		t.Fatalf("DeleteTrustAnchor: %v", err)
	}
	steps := []func() error{
		func() error {
			_, err := iamc.DetachRolePolicy(ctx, &iam.DetachRolePolicyInput{RoleName: &d.RoleName, PolicyArn: aws.String(sdksetup.ManagedPolicy)})
			return err
		},
		func() error {
			_, err := iamc.DeleteRolePolicy(ctx, &iam.DeleteRolePolicyInput{RoleName: &d.RoleName, PolicyName: aws.String(sdksetup.InlinePolicy)})
			return err
		},
		func() error {
			_, err := iamc.DeleteRole(ctx, &iam.DeleteRoleInput{RoleName: &d.RoleName})
			return err
		},
	}
	for i, step := range steps {
		if err := step(); err != nil {
			t.Fatalf("teardown step %d: %v", i+1, err)
		}
	}
	_, err := rac.GetTrustAnchor(ctx, &ra.GetTrustAnchorInput{TrustAnchorId: &d.AnchorID})
	wantAPIError(t, "GetTrustAnchor after delete", err, "ResourceNotFoundException")
	_, err = rac.GetProfile(ctx, &ra.GetProfileInput{ProfileId: &d.ProfileID})
	wantAPIError(t, "GetProfile after delete", err, "ResourceNotFoundException")
	_, err = iamc.GetRole(ctx, &iam.GetRoleInput{RoleName: &d.RoleName})
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
		d := e.Setup(t, fmt.Sprintf("page%d", i), "runner-1")
		anchors, profiles, roles = append(anchors, d.AnchorARN), append(profiles, d.ProfileARN), append(roles, d.RoleARN)
	}
	rac, iamc := e.RA(e.Operator), e.IAM(e.Operator)

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

// TestLifecycleThroughSDK makes every other Roles Anywhere call succeed
// once, as Terraform's updates and an operator's changes do, so the model
// check sees each operation's answer, not only its refusals: updates,
// enable/disable, tags, CRL reads and changes, attribute mapping removal,
// notification settings.
func TestLifecycleThroughSDK(t *testing.T) {
	e := newCP(t)
	ctx := context.Background()
	d := e.Setup(t, "life", "runner-1")
	rac := e.RA(e.Operator)
	step := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	_, err := rac.UpdateTrustAnchor(ctx, &ra.UpdateTrustAnchorInput{TrustAnchorId: &d.AnchorID, Name: aws.String("life-ca-renamed")})
	step("UpdateTrustAnchor", err)
	_, err = rac.DisableTrustAnchor(ctx, &ra.DisableTrustAnchorInput{TrustAnchorId: &d.AnchorID})
	step("DisableTrustAnchor", err)
	_, err = rac.EnableTrustAnchor(ctx, &ra.EnableTrustAnchorInput{TrustAnchorId: &d.AnchorID})
	step("EnableTrustAnchor", err)
	_, err = rac.PutNotificationSettings(ctx, &ra.PutNotificationSettingsInput{TrustAnchorId: &d.AnchorID,
		NotificationSettings: []ratypes.NotificationSetting{{Enabled: aws.Bool(true), Event: ratypes.NotificationEventCaCertificateExpiry, Threshold: aws.Int32(30)}}})
	step("PutNotificationSettings", err)
	_, err = rac.ResetNotificationSettings(ctx, &ra.ResetNotificationSettingsInput{TrustAnchorId: &d.AnchorID,
		NotificationSettingKeys: []ratypes.NotificationSettingKey{{Event: ratypes.NotificationEventCaCertificateExpiry}}})
	step("ResetNotificationSettings", err)

	_, err = rac.UpdateProfile(ctx, &ra.UpdateProfileInput{ProfileId: &d.ProfileID, DurationSeconds: aws.Int32(1800),
		AcceptRoleSessionName: aws.Bool(false), SessionPolicy: aws.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}`)})
	step("UpdateProfile", err)
	_, err = rac.DisableProfile(ctx, &ra.DisableProfileInput{ProfileId: &d.ProfileID})
	step("DisableProfile", err)
	_, err = rac.EnableProfile(ctx, &ra.EnableProfileInput{ProfileId: &d.ProfileID})
	step("EnableProfile", err)
	_, err = rac.DeleteAttributeMapping(ctx, &ra.DeleteAttributeMappingInput{ProfileId: &d.ProfileID,
		CertificateField: ratypes.CertificateFieldX509Subject, Specifiers: []string{"OU"}})
	step("DeleteAttributeMapping", err)

	_, err = rac.TagResource(ctx, &ra.TagResourceInput{ResourceArn: &d.ProfileARN, Tags: []ratypes.Tag{{Key: aws.String("env"), Value: aws.String("dev")}}})
	step("TagResource", err)
	_, err = rac.UntagResource(ctx, &ra.UntagResourceInput{ResourceArn: &d.ProfileARN, TagKeys: []string{"team"}})
	step("UntagResource", err)
	tags, err := rac.ListTagsForResource(ctx, &ra.ListTagsForResourceInput{ResourceArn: &d.ProfileARN})
	step("ListTagsForResource", err)
	if len(tags.Tags) != 1 || aws.ToString(tags.Tags[0].Key) != "env" {
		t.Errorf("profile tags after tag and untag: %+v", tags.Tags)
	}

	crl, err := rac.ImportCrl(ctx, &ra.ImportCrlInput{Name: aws.String("empty"), TrustAnchorArn: &d.AnchorARN, CrlData: pemCRL(e.Inter.CRL(t)), Enabled: aws.Bool(true)})
	step("ImportCrl", err)
	_, err = rac.GetCrl(ctx, &ra.GetCrlInput{CrlId: crl.Crl.CrlId})
	step("GetCrl", err)
	_, err = rac.UpdateCrl(ctx, &ra.UpdateCrlInput{CrlId: crl.Crl.CrlId, Name: aws.String("empty-renamed"), CrlData: pemCRL(e.Inter.CRL(t))})
	step("UpdateCrl", err)
	_, err = rac.DisableCrl(ctx, &ra.DisableCrlInput{CrlId: crl.Crl.CrlId})
	step("DisableCrl", err)
	crls, err := rac.ListCrls(ctx, &ra.ListCrlsInput{})
	step("ListCrls", err)
	if len(crls.Crls) != 1 || aws.ToBool(crls.Crls[0].Enabled) || aws.ToString(crls.Crls[0].Name) != "empty-renamed" {
		t.Errorf("ListCrls after update and disable: %+v", crls.Crls)
	}
	_, err = rac.DeleteCrl(ctx, &ra.DeleteCrlInput{CrlId: crl.Crl.CrlId})
	step("DeleteCrl", err)

	// The profile still serves sessions after all that (its mapping of CN
	// stays; session names are no longer accepted).
	cert, key, _ := e.Identity(t, "runner-1")
	if _, stderr, err := e.credentialProcess(t, d, cert, key); err != nil {
		t.Fatalf("credential-process after the changes: %v\n%s", err, stderr)
	}
	if _, stderr, err := e.credentialProcess(t, d, cert, key, "--role-session-name", "job-1"); err == nil || !strings.Contains(stderr, "session name") {
		t.Errorf("a session name after UpdateProfile turned acceptRoleSessionName off: err %v\n%s", err, stderr)
	}
}

// TestRoleLifecycleThroughSDK makes the IAM calls Terraform's
// aws_iam_role makes on update succeed once (trust policy, description
// and maximum duration, tags, inline policy read), so the model check
// sees their answers, and reads the changes back.
func TestRoleLifecycleThroughSDK(t *testing.T) {
	e := newCP(t)
	ctx := context.Background()
	d := e.Setup(t, "role", "runner-1")
	iamc := e.IAM(e.Operator)
	step := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	_, err := iamc.UpdateAssumeRolePolicy(ctx, &iam.UpdateAssumeRolePolicyInput{RoleName: &d.RoleName,
		PolicyDocument: aws.String(sdksetup.TrustPolicy(d.AnchorARN, "runner-2"))})
	step("UpdateAssumeRolePolicy", err)
	_, err = iamc.UpdateRole(ctx, &iam.UpdateRoleInput{RoleName: &d.RoleName, Description: aws.String("updated"), MaxSessionDuration: aws.Int32(3600)})
	step("UpdateRole", err)
	_, err = iamc.UpdateRoleDescription(ctx, &iam.UpdateRoleDescriptionInput{RoleName: &d.RoleName, Description: aws.String("updated again")})
	step("UpdateRoleDescription", err)
	_, err = iamc.TagRole(ctx, &iam.TagRoleInput{RoleName: &d.RoleName, Tags: []iamtypes.Tag{{Key: aws.String("env"), Value: aws.String("dev")}}})
	step("TagRole", err)
	_, err = iamc.UntagRole(ctx, &iam.UntagRoleInput{RoleName: &d.RoleName, TagKeys: []string{"team"}})
	step("UntagRole", err)
	policy, err := iamc.GetRolePolicy(ctx, &iam.GetRolePolicyInput{RoleName: &d.RoleName, PolicyName: aws.String(sdksetup.InlinePolicy)})
	step("GetRolePolicy", err)
	if doc, err := url.QueryUnescape(aws.ToString(policy.PolicyDocument)); err != nil || !strings.Contains(doc, "s3:GetObject") {
		t.Errorf("GetRolePolicy's document %q: %v", aws.ToString(policy.PolicyDocument), err)
	}

	role, err := iamc.GetRole(ctx, &iam.GetRoleInput{RoleName: &d.RoleName})
	step("GetRole", err)
	doc, _ := url.QueryUnescape(aws.ToString(role.Role.AssumeRolePolicyDocument))
	if !strings.Contains(doc, "runner-2") || aws.ToString(role.Role.Description) != "updated again" || aws.ToInt32(role.Role.MaxSessionDuration) != 3600 ||
		len(role.Role.Tags) != 1 || aws.ToString(role.Role.Tags[0].Key) != "env" {
		t.Errorf("GetRole after the updates: description %q, max %d, tags %+v, policy %s",
			aws.ToString(role.Role.Description), aws.ToInt32(role.Role.MaxSessionDuration), role.Role.Tags, doc)
	}

	// The new trust policy takes effect at once: runner-2, not runner-1.
	for cn, ok := range map[string]bool{"runner-1": false, "runner-2": true} {
		cert, key, _ := e.Identity(t, cn)
		_, stderr, err := e.credentialProcess(t, d, cert, key)
		if (err == nil) != ok {
			t.Errorf("%s after UpdateAssumeRolePolicy: err %v, want success %v\n%s", cn, err, ok, stderr)
		}
	}
}
