package emulator_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keyless-dev/keyless/internal/emulator"
	"github.com/keyless-dev/keyless/internal/testkit"
)

func TestIAMInlinePolicies(t *testing.T) {
	e := newEnv(t, setup{})
	e.iamOK(act("PutRolePolicy", "RoleName", "ci-deployer", "PolicyName", "read", "PolicyDocument", readPolicy), nil)
	e.iamOK(act("PutRolePolicy", "RoleName", "CI-DEPLOYER", "PolicyName", "also", "PolicyDocument", readPolicy), nil)

	var pol struct {
		RoleName       string `xml:"GetRolePolicyResult>RoleName"`
		PolicyName     string `xml:"GetRolePolicyResult>PolicyName"`
		PolicyDocument string `xml:"GetRolePolicyResult>PolicyDocument"`
	}
	e.iamOK(act("GetRolePolicy", "RoleName", "Ci-Deployer", "PolicyName", "read"), &pol)
	doc, err := url.QueryUnescape(pol.PolicyDocument)
	if pol.RoleName != "ci-deployer" || pol.PolicyName != "read" || err != nil || doc != readPolicy || strings.ContainsAny(pol.PolicyDocument, "{\"+ ") {
		t.Errorf("GetRolePolicy: %+v, document decodes to %q (%v)", pol, doc, err)
	}

	type names struct {
		Names     []string `xml:"ListRolePoliciesResult>PolicyNames>member"`
		Truncated bool     `xml:"ListRolePoliciesResult>IsTruncated"`
		Marker    string   `xml:"ListRolePoliciesResult>Marker"`
	}
	var all, p1, p2 names
	e.iamOK(act("ListRolePolicies", "RoleName", "ci-deployer"), &all)
	if strings.Join(all.Names, ",") != "also,read" || all.Truncated {
		t.Errorf("ListRolePolicies: %+v", all)
	}
	e.iamOK(act("ListRolePolicies", "RoleName", "ci-deployer", "MaxItems", "1"), &p1)
	e.iamOK(act("ListRolePolicies", "RoleName", "ci-deployer", "MaxItems", "1", "Marker", p1.Marker), &p2)
	if strings.Join(p1.Names, ",") != "also" || !p1.Truncated || strings.Join(p2.Names, ",") != "read" || p2.Truncated {
		t.Errorf("ListRolePolicies pages: %+v %+v", p1, p2)
	}

	// Putting a policy of the same name replaces it.
	other := strings.Replace(readPolicy, "s3:GetObject", "s3:PutObject", 1)
	e.iamOK(act("PutRolePolicy", "RoleName", "ci-deployer", "PolicyName", "read", "PolicyDocument", other), nil)
	e.iamOK(act("GetRolePolicy", "RoleName", "ci-deployer", "PolicyName", "read"), &pol)
	if doc, _ := url.QueryUnescape(pol.PolicyDocument); doc != other {
		t.Errorf("after a second PutRolePolicy: %s", doc)
	}

	e.iamOK(act("DeleteRolePolicy", "RoleName", "ci-deployer", "PolicyName", "read"), nil)
	e.iamFails(act("DeleteRolePolicy", "RoleName", "ci-deployer", "PolicyName", "read"), 404, "NoSuchEntity", "The role policy with name read cannot be found.")
	e.iamFails(act("GetRolePolicy", "RoleName", "ci-deployer", "PolicyName", "read"), 404, "NoSuchEntity", "The role policy with name read cannot be found.")
	e.iamFails(act("GetRolePolicy", "RoleName", "nobody", "PolicyName", "read"), 404, "NoSuchEntity", "The role with name nobody cannot be found.")
	all = names{}
	e.iamOK(act("ListRolePolicies", "RoleName", "ci-deployer"), &all)
	if strings.Join(all.Names, ",") != "also" {
		t.Errorf("after DeleteRolePolicy: %+v", all)
	}
}

func TestIAMInlinePolicyRefusals(t *testing.T) {
	statement := func(n int) string {
		return fmt.Sprintf(`{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::%s"}`, strings.Repeat("b", n))
	}
	big := func(n int) string { return `{"Version":"2012-10-17","Statement":[` + statement(n) + `]}` }
	tests := []struct {
		name, policyName, doc string
		status                int
		code, contains        string
	}{
		{"principal", "p", `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"*"}]}`, 400, "MalformedPolicyDocument", "Policy document should not specify a principal"},
		{"no resource", "p", `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*"}]}`, 400, "MalformedPolicyDocument", "Policy statement must contain resources"},
		{"not JSON", "p", `{"Statement":`, 400, "MalformedPolicyDocument", "Syntax errors in policy."},
		{"empty", "p", "", 400, "ValidationError", "policyDocument"},
		{"bad name", "no spaces", readPolicy, 400, "ValidationError", "policyName"},
		{"over 10240 characters", "p", big(10240), 409, "LimitExceeded", "Maximum policy size of 10240 bytes exceeded for role ci-deployer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, setup{})
			e.iamFails(act("PutRolePolicy", "RoleName", "ci-deployer", "PolicyName", tt.policyName, "PolicyDocument", tt.doc), tt.status, tt.code, tt.contains)
			e.iamFails(act("GetRolePolicy", "RoleName", "ci-deployer", "PolicyName", "p"), 404, "NoSuchEntity")
		})
	}

	t.Run("aggregate over 10240 characters", func(t *testing.T) {
		e := newEnv(t, setup{})
		// Two policies of about 6000 characters: each fits, both do not.
		e.iamOK(act("PutRolePolicy", "RoleName", "ci-deployer", "PolicyName", "one", "PolicyDocument", big(6000)), nil)
		// Replacing the same policy counts it once.
		e.iamOK(act("PutRolePolicy", "RoleName", "ci-deployer", "PolicyName", "one", "PolicyDocument", big(6000)), nil)
		e.iamFails(act("PutRolePolicy", "RoleName", "ci-deployer", "PolicyName", "two", "PolicyDocument", big(6000)), 409, "LimitExceeded", "Maximum policy size")
		// Whitespace does not count.
		spaced := strings.ReplaceAll(big(3000), ",", ",\n"+strings.Repeat(" ", 2000))
		e.iamOK(act("PutRolePolicy", "RoleName", "ci-deployer", "PolicyName", "two", "PolicyDocument", spaced), nil)
	})
	t.Run("unknown role", func(t *testing.T) {
		e := newEnv(t, setup{})
		e.iamFails(act("PutRolePolicy", "RoleName", "nobody", "PolicyName", "p", "PolicyDocument", readPolicy), 404, "NoSuchEntity", "The role with name nobody cannot be found.")
	})
}

type attached struct {
	Policies []struct {
		PolicyName, PolicyArn string
	} `xml:"ListAttachedRolePoliciesResult>AttachedPolicies>member"`
	Truncated bool   `xml:"ListAttachedRolePoliciesResult>IsTruncated"`
	Marker    string `xml:"ListAttachedRolePoliciesResult>Marker"`
}

func (a attached) String() string {
	var s []string
	for _, p := range a.Policies {
		s = append(s, p.PolicyName+"="+p.PolicyArn)
	}
	return strings.Join(s, " ")
}

func TestIAMManagedPolicies(t *testing.T) {
	e := newEnv(t, setup{})
	const (
		awsManaged = "arn:aws:iam::aws:policy/service-role/AmazonSSMRoleForInstancesQuickSetup"
		readOnly   = "arn:aws:iam::aws:policy/ReadOnlyAccess"
		customer   = "arn:aws:iam::111122223333:policy/ci/deploy"
	)
	for _, arn := range []string{awsManaged, readOnly, customer, readOnly} {
		e.iamOK(act("AttachRolePolicy", "RoleName", "ci-deployer", "PolicyArn", arn), nil)
	}
	var all, p1, p2, filtered attached
	e.iamOK(act("ListAttachedRolePolicies", "RoleName", "ci-deployer"), &all)
	// In order of ARN.
	want := "deploy=" + customer + " ReadOnlyAccess=" + readOnly + " AmazonSSMRoleForInstancesQuickSetup=" + awsManaged
	if all.String() != want || all.Truncated {
		t.Errorf("ListAttachedRolePolicies:\n got %s\nwant %s", all, want)
	}
	e.iamOK(act("ListAttachedRolePolicies", "RoleName", "ci-deployer", "MaxItems", "2"), &p1)
	e.iamOK(act("ListAttachedRolePolicies", "RoleName", "ci-deployer", "MaxItems", "2", "Marker", p1.Marker), &p2)
	if len(p1.Policies) != 2 || !p1.Truncated || len(p2.Policies) != 1 || p2.Truncated || p1.String()+" "+p2.String() != want {
		t.Errorf("pages: %s | %s", p1, p2)
	}
	e.iamOK(act("ListAttachedRolePolicies", "RoleName", "ci-deployer", "PathPrefix", "/service-role/"), &filtered)
	if filtered.String() != "AmazonSSMRoleForInstancesQuickSetup="+awsManaged {
		t.Errorf("PathPrefix /service-role/: %s", filtered)
	}

	e.iamOK(act("DetachRolePolicy", "RoleName", "ci-deployer", "PolicyArn", readOnly), nil)
	e.iamFails(act("DetachRolePolicy", "RoleName", "ci-deployer", "PolicyArn", readOnly), 404, "NoSuchEntity", "Policy "+readOnly+" was not found.")
	all = attached{}
	e.iamOK(act("ListAttachedRolePolicies", "RoleName", "ci-deployer"), &all)
	if len(all.Policies) != 2 {
		t.Errorf("after DetachRolePolicy: %s", all)
	}

	e.iamFails(act("AttachRolePolicy", "RoleName", "ci-deployer", "PolicyArn", "arn:aws:iam::999988887777:policy/theirs"), 404, "NoSuchEntity",
		"Policy arn:aws:iam::999988887777:policy/theirs does not exist or is not attachable.")
	e.iamFails(act("AttachRolePolicy", "RoleName", "ci-deployer", "PolicyArn", "arn:aws-cn:iam::aws:policy/ReadOnlyAccess"), 404, "NoSuchEntity", "does not exist or is not attachable")
	e.iamFails(act("AttachRolePolicy", "RoleName", "ci-deployer", "PolicyArn", "arn:aws:s3:::not-a-policy-at-all"), 400, "InvalidInput", "is not valid")
	e.iamFails(act("AttachRolePolicy", "RoleName", "ci-deployer"), 400, "ValidationError", "policyArn")
	e.iamFails(act("AttachRolePolicy", "RoleName", "nobody", "PolicyArn", readOnly), 404, "NoSuchEntity", "The role with name nobody cannot be found.")

	// At most 10 attached.
	for i := len(all.Policies); i < 10; i++ {
		e.iamOK(act("AttachRolePolicy", "RoleName", "ci-deployer", "PolicyArn", fmt.Sprintf("arn:aws:iam::111122223333:policy/p%d", i)), nil)
	}
	e.iamFails(act("AttachRolePolicy", "RoleName", "ci-deployer", "PolicyArn", "arn:aws:iam::111122223333:policy/eleventh"), 409, "LimitExceeded", "Cannot exceed quota for PoliciesPerRole: 10")
	// Attaching one that is attached is no change, even at the limit.
	e.iamOK(act("AttachRolePolicy", "RoleName", "ci-deployer", "PolicyArn", customer), nil)
}

func TestIAMRoleTags(t *testing.T) {
	e := newEnv(t, setup{})
	type tags struct {
		Tags      []struct{ Key, Value string } `xml:"ListRoleTagsResult>Tags>member"`
		Truncated bool                          `xml:"ListRoleTagsResult>IsTruncated"`
		Marker    string                        `xml:"ListRoleTagsResult>Marker"`
	}
	str := func(t tags) string {
		var s []string
		for _, kv := range t.Tags {
			s = append(s, kv.Key+"="+kv.Value)
		}
		return strings.Join(s, ",")
	}
	var got, p1, p2 tags
	body := e.iamOK(act("ListRoleTags", "RoleName", "ci-deployer"), &got)
	if len(got.Tags) != 0 || !strings.Contains(body, "<Tags></Tags>") {
		t.Errorf("ListRoleTags of an untagged role: %s", body)
	}
	e.iamOK(act("TagRole", "RoleName", "ci-deployer", "Tags.member.1.Key", "team", "Tags.member.1.Value", "ci",
		"Tags.member.2.Key", "env", "Tags.member.2.Value", "prod"), nil)
	e.iamOK(act("TagRole", "RoleName", "ci-deployer", "Tags.member.1.Key", "Team", "Tags.member.1.Value", "platform"), nil)
	got = tags{}
	e.iamOK(act("ListRoleTags", "RoleName", "ci-deployer"), &got)
	if str(got) != "Team=platform,env=prod" {
		t.Errorf("ListRoleTags: %s", str(got))
	}
	if r := e.getRole("ci-deployer"); len(r.Tags) != 2 {
		t.Errorf("GetRole tags: %+v", r.Tags)
	}
	e.iamOK(act("ListRoleTags", "RoleName", "ci-deployer", "MaxItems", "1"), &p1)
	e.iamOK(act("ListRoleTags", "RoleName", "ci-deployer", "MaxItems", "1", "Marker", p1.Marker), &p2)
	if str(p1) != "Team=platform" || !p1.Truncated || str(p2) != "env=prod" || p2.Truncated {
		t.Errorf("pages: %s %v | %s %v", str(p1), p1.Truncated, str(p2), p2.Truncated)
	}
	e.iamOK(act("UntagRole", "RoleName", "ci-deployer", "TagKeys.member.1", "team", "TagKeys.member.2", "absent"), nil)
	got = tags{}
	e.iamOK(act("ListRoleTags", "RoleName", "ci-deployer"), &got)
	if str(got) != "env=prod" {
		t.Errorf("after UntagRole: %s", str(got))
	}

	e.iamFails(act("TagRole", "RoleName", "ci-deployer", "Tags.member.1.Key", "aws:team", "Tags.member.1.Value", "x"), 400, "InvalidInput", "reserved")
	e.iamFails(act("TagRole", "RoleName", "ci-deployer"), 400, "ValidationError", "tags")
	e.iamFails(act("UntagRole", "RoleName", "ci-deployer"), 400, "ValidationError", "tagKeys")
	e.iamFails(act("TagRole", "RoleName", "nobody", "Tags.member.1.Key", "k", "Tags.member.1.Value", "v"), 404, "NoSuchEntity")
	many := act("TagRole", "RoleName", "ci-deployer")
	for i := 1; i <= 50; i++ {
		many.Set(fmt.Sprintf("Tags.member.%d.Key", i), fmt.Sprintf("k%02d", i))
		many.Set(fmt.Sprintf("Tags.member.%d.Value", i), "v")
	}
	// 50 new keys and env: 51.
	e.iamFails(many, http.StatusConflict, "LimitExceeded", "The number of tags has reached the maximum limit.")
	got = tags{}
	e.iamOK(act("ListRoleTags", "RoleName", "ci-deployer"), &got)
	if str(got) != "env=prod" {
		t.Errorf("a refused TagRole changed the tags: %s", str(got))
	}
}

// TestIAMSeedManagedPolicies: a seed role's managedPolicyArns are its
// attached policies, detached and attached like any.
func TestIAMSeedManagedPolicies(t *testing.T) {
	dir := t.TempDir()
	seed := `account: "111122223333"
region: us-east-1
operators:
  - name: admin
    accessKeyId: ` + operatorKeyID + `
    secretAccessKey: ` + operatorSecret + `
roles:
  - name: seeded
    assumeRolePolicy: '` + rolesAnywhereTrust + `'
    managedPolicyArns: [arn:aws:iam::aws:policy/ReadOnlyAccess, arn:aws:iam::111122223333:policy/mine]
`
	path := filepath.Join(dir, "emulator.yaml")
	writeFile(t, path, seed)
	parsed, err := emulator.LoadSeed(path)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, dir: dir, clock: testkit.NewClock(time.Now().Truncate(time.Second)), logs: &testkit.Buffer{}}
	e.emu, err = emulator.New(emulator.Config{Seed: parsed, Now: e.now})
	if err != nil {
		t.Fatal(err)
	}
	e.srv = httptest.NewServer(e.emu)
	t.Cleanup(e.srv.Close)

	var got attached
	e.iamOK(act("ListAttachedRolePolicies", "RoleName", "seeded"), &got)
	if want := "mine=arn:aws:iam::111122223333:policy/mine ReadOnlyAccess=arn:aws:iam::aws:policy/ReadOnlyAccess"; got.String() != want {
		t.Errorf("ListAttachedRolePolicies of a seed role:\n got %s\nwant %s", got, want)
	}
	e.iamFails(act("DeleteRole", "RoleName", "seeded"), http.StatusConflict, "DeleteConflict", "must detach all policies first")
	e.iamOK(act("DetachRolePolicy", "RoleName", "seeded", "PolicyArn", "arn:aws:iam::aws:policy/ReadOnlyAccess"), nil)
	e.iamOK(act("DetachRolePolicy", "RoleName", "seeded", "PolicyArn", "arn:aws:iam::111122223333:policy/mine"), nil)
	e.iamOK(act("DeleteRole", "RoleName", "seeded"), nil)
}
