package awssdk_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	ra "github.com/aws/aws-sdk-go-v2/service/rolesanywhere"

	"github.com/keyless-dev/keyless/internal/emulator/emulatortest"
	"github.com/keyless-dev/keyless/interop/awssdk/cptest"
	"github.com/keyless-dev/keyless/interop/awssdk/sdksetup"
)

// TestProfilePoliciesThroughSDK: a profile's session policies within
// STS's limits, set through the SDK's UpdateProfile, keep sessions
// coming; 11 managed policy ARNs are refused with ValidationException
// (the answer checked against AWS's model); a managed policy of another
// account and a session policy over STS's packed allotment make
// CreateSession refuse, and keyless credential-process shows why.
func TestProfilePoliciesThroughSDK(t *testing.T) {
	ctx := context.Background()
	e := newCP(t)
	d := e.Setup(t, "policies", "runner-1")
	cert, key, _ := e.Identity(t, "runner-1")
	rac := e.RA(e.Operator)
	arns := func(n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprintf("arn:aws:iam::%s:policy/ci-%d", cptest.Account, i)
		}
		return out
	}

	_, err := rac.UpdateProfile(ctx, &ra.UpdateProfileInput{ProfileId: &d.ProfileID, ManagedPolicyArns: arns(11)})
	wantAPIError(t, "UpdateProfile with 11 managed policy ARNs", err, "ValidationException")
	_, err = rac.CreateProfile(ctx, &ra.CreateProfileInput{Name: aws.String("eleven"), RoleArns: []string{d.RoleARN}, ManagedPolicyArns: arns(11)})
	wantAPIError(t, "CreateProfile with 11 managed policy ARNs", err, "ValidationException")

	small := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}`
	if _, err := rac.UpdateProfile(ctx, &ra.UpdateProfileInput{ProfileId: &d.ProfileID, ManagedPolicyArns: append(arns(9), sdksetup.ManagedPolicy),
		SessionPolicy: aws.String(small)}); err != nil {
		t.Fatalf("UpdateProfile with 10 managed policies and a session policy: %v", err)
	}
	if _, stderr, err := e.credentialProcess(t, d, cert, key); err != nil {
		t.Fatalf("credential-process within STS's limits: %v\n%s", err, stderr)
	}

	for _, c := range []struct {
		name   string
		update *ra.UpdateProfileInput
		want   string
	}{
		{"managed policy of another account", &ra.UpdateProfileInput{ManagedPolicyArns: []string{"arn:aws:iam::444455556666:policy/theirs"}},
			"Policy arn:aws:iam::444455556666:policy/theirs does not exist or is not attachable."},
		{"packed policy too large", &ra.UpdateProfileInput{ManagedPolicyArns: []string{}, SessionPolicy: aws.String(emulatortest.SessionPolicy(1500))},
			"Packed policy consumes"},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.update.ProfileId = &d.ProfileID
			if _, err := rac.UpdateProfile(ctx, c.update); err != nil {
				t.Fatalf("UpdateProfile: %v", err)
			}
			_, stderr, err := e.credentialProcess(t, d, cert, key)
			if err == nil {
				t.Fatal("credential-process succeeded")
			}
			t.Logf("keyless credential-process said:\n%s", stderr)
			if !strings.Contains(stderr, c.want) || !strings.Contains(stderr, "ValidationException") {
				t.Errorf("refusal does not say %q and ValidationException:\n%s", c.want, stderr)
			}
		})
	}
}
