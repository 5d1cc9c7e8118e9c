package emulator

import (
	"fmt"
	"strings"
	"testing"
)

// TestSessionPoliciesAtCreateSession: CreateSession applies STS's limits
// to whatever a profile holds, including a profile the control plane
// would now refuse (state persisted by an older emulator): 11 managed
// policy ARNs, or over 2,048 characters.
func TestSessionPoliciesAtCreateSession(t *testing.T) {
	e := &Emulator{st: &state{partition: "aws", account: "111122223333"}}
	role := &Role{Name: "ci-deployer"}
	arns := func(n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprintf("arn:aws:iam::111122223333:policy/p%d", i)
		}
		return out
	}
	for _, c := range []struct {
		name     string
		profile  Profile
		contains string
	}{
		{"11 managed policy ARNs", Profile{Name: "p", ManagedPolicyARNs: arns(11)},
			"1 validation error detected: Value at 'policyArns' failed to satisfy constraint: Member must have length less than or equal to 10"},
		{"over 2,048 characters", Profile{Name: "p", SessionPolicy: `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*","Sid":"` + strings.Repeat("a", 2048) + `"}]}`},
			"Member must have length less than or equal to 2048"},
		{"malformed session policy", Profile{Name: "p", SessionPolicy: `{"Statement":[]`}, "Syntax errors in policy."},
	} {
		t.Run(c.name, func(t *testing.T) {
			size, fail := e.sessionPolicies(&c.profile, role)
			if fail == nil {
				t.Fatalf("accepted, packed size %d", size)
			}
			if fail.status != 400 || fail.code != "ValidationException" || !strings.Contains(fail.message, c.contains) {
				t.Errorf("%d %s %q, want 400 ValidationException containing %q", fail.status, fail.code, fail.message, c.contains)
			}
		})
	}
	if size, fail := e.sessionPolicies(&Profile{Name: "p", ManagedPolicyARNs: arns(10)}, role); fail != nil || size == 0 {
		t.Errorf("10 managed policy ARNs: %d, %v", size, fail)
	}
}

// TestPackedPolicySizeCalibration pins the approximation to the published
// STS answers it was calibrated on (see packedPolicySize).
func TestPackedPolicySizeCalibration(t *testing.T) {
	ec2 := `{"Version":"2012-10-17","Statement":[` +
		`{"Effect":"Allow","Action":["ec2:DescribeInstances","ec2:DescribeImages","ec2:DescribeSecurityGroups","ec2:DescribeVpcs","ec2:DescribeSubnets"],"Resource":"*"},` +
		`{"Effect":"Allow","Action":["ec2:RunInstances","ec2:CreateSecurityGroup","ec2:CreateKeyPair","ec2:CreateTags"],"Resource":"*"},` +
		`{"Effect":"Allow","Action":["ec2:TerminateInstances","ec2:StopInstances","ec2:StartInstances","ec2:AuthorizeSecurityGroupIngress","ec2:RevokeSecurityGroupEgress","ec2:DeleteSecurityGroup","ec2:DeleteKeyPair","ec2:GetConsoleOutput","ec2:GetPasswordData"],"Resource":"*",` +
		`"Condition":{"StringEquals":{"aws:ResourceTag/agentspoppy:connection":"${aws:PrincipalTag/agentspoppy:connection}"}}}]}`
	// The report's three session tags, counted as the ARNs are.
	tags := []string{"agentspoppy:account=123456789012", "agentspoppy:app=com.vmpoppy.desktop", "agentspoppy:connection=3f7c1a0e-0000-4000-8000-000000000001"}
	for _, c := range []struct {
		name     string
		doc      string
		arns     []string
		min, max int
	}{
		{"AWS's AssumeRole example, 6%", `{"Version":"2012-10-17","Statement":[{"Sid":"Stmt1","Effect":"Allow","Action":"s3:*","Resource":"*"}]}`, nil, 6, 6},
		{"18 EC2 actions in about 730 characters with three tags, reported 82%", ec2, tags, 75, 90},
		{"nothing", "", nil, 0, 0},
		// Whitespace is not packed.
		{"indented example", "{\n  \"Version\": \"2012-10-17\",\n  \"Statement\": [\n    {\"Sid\": \"Stmt1\", \"Effect\": \"Allow\", \"Action\": \"s3:*\", \"Resource\": \"*\"}\n  ]\n}", nil, 6, 6},
	} {
		if got := packedPolicySize(c.doc, c.arns); got < c.min || got > c.max {
			t.Errorf("%s: packed size %d%%, want %d to %d", c.name, got, c.min, c.max)
		}
	}
}

func FuzzPackedPolicySize(f *testing.F) {
	f.Add(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}`, "arn:aws:iam::aws:policy/ReadOnlyAccess")
	f.Add(`{"a":[1,true,null,{"b":"c"}]}`, "")
	f.Add(`{"`, "x")
	f.Fuzz(func(t *testing.T, doc, arn string) {
		var arns []string
		if arn != "" {
			arns = []string{arn}
		}
		size := packedPolicySize(doc, arns)
		if size < 0 || (doc == "" && arn == "" && size != 0) {
			t.Errorf("packedPolicySize(%q, %q) = %d", doc, arn, size)
		}
		// The packed cost is never more than the text's bytes (an invalid
		// UTF-8 byte read as U+FFFD: 3) plus one per token, so the
		// percentage stays bounded by the input's length.
		if limit := (packedOverhead + 4*len(doc) + len(arn) + 2) * 100 / packedAllotment; size > limit+1 {
			t.Errorf("packedPolicySize(%q, %q) = %d, over %d", doc, arn, size, limit)
		}
	})
}
