package emulator_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/keyless-dev/keyless/internal/pki/pkitest"
	"github.com/keyless-dev/keyless/internal/sigv4"
)

func TestIAMRoleLifecycle(t *testing.T) {
	e := newEnv(t, setup{})
	e.createRole("deployer", "Path", "/ci/", "Description", "made by a test", "MaxSessionDuration", "7200",
		"Tags.member.1.Key", "team", "Tags.member.1.Value", "ci")
	r := e.getRole("deployer")
	if r.Arn != "arn:aws:iam::111122223333:role/ci/deployer" || r.Path != "/ci/" || r.Description != "made by a test" ||
		r.MaxSessionDuration != 7200 || len(r.Tags) != 1 || r.RoleLastUsed == nil || !strings.HasPrefix(r.RoleId, "AROA") ||
		!strings.HasSuffix(r.CreateDate, "Z") {
		t.Errorf("GetRole after CreateRole: %+v", r)
	}
	if doc, err := url.QueryUnescape(r.AssumeRolePolicyDocument); err != nil || doc != rolesAnywhereTrust {
		t.Errorf("AssumeRolePolicyDocument %q decodes (as Terraform does) to %q, %v", r.AssumeRolePolicyDocument, doc, err)
	}

	e.iamOK(act("UpdateRole", "RoleName", "deployer", "Description", "changed", "MaxSessionDuration", "3600"), nil)
	if r := e.getRole("deployer"); r.Description != "changed" || r.MaxSessionDuration != 3600 {
		t.Errorf("after UpdateRole: %+v", r)
	}
	// UpdateRole without MaxSessionDuration leaves it.
	e.iamOK(act("UpdateRole", "RoleName", "deployer", "Description", "again"), nil)
	if r := e.getRole("deployer"); r.Description != "again" || r.MaxSessionDuration != 3600 {
		t.Errorf("after UpdateRole of the description: %+v", r)
	}
	var desc struct {
		Role xmlRole `xml:"UpdateRoleDescriptionResult>Role"`
	}
	e.iamOK(act("UpdateRoleDescription", "RoleName", "DEPLOYER", "Description", ""), &desc)
	if desc.Role.RoleName != "deployer" || desc.Role.Description != "" || e.getRole("deployer").Description != "" {
		t.Errorf("UpdateRoleDescription to empty: %+v", desc.Role)
	}

	e.iamOK(act("PutRolePermissionsBoundary", "RoleName", "deployer", "PermissionsBoundary", "arn:aws:iam::aws:policy/PowerUserAccess"), nil)
	if r := e.getRole("deployer"); r.Boundary != "arn:aws:iam::aws:policy/PowerUserAccess" || r.BoundaryType != "PermissionsBoundaryPolicy" {
		t.Errorf("boundary after PutRolePermissionsBoundary: %q %q", r.Boundary, r.BoundaryType)
	}
	e.iamOK(act("DeleteRolePermissionsBoundary", "RoleName", "deployer"), nil)
	if r := e.getRole("deployer"); r.Boundary != "" {
		t.Errorf("boundary after DeleteRolePermissionsBoundary: %q", r.Boundary)
	}

	var profiles struct {
		Members   []string `xml:"ListInstanceProfilesForRoleResult>InstanceProfiles>member"`
		Truncated string   `xml:"ListInstanceProfilesForRoleResult>IsTruncated"`
	}
	body := e.iamOK(act("ListInstanceProfilesForRole", "RoleName", "deployer"), &profiles)
	if len(profiles.Members) != 0 || profiles.Truncated != "false" || !strings.Contains(body, "<InstanceProfiles></InstanceProfiles>") {
		t.Errorf("ListInstanceProfilesForRole: %s", body)
	}

	e.iamOK(act("DeleteRole", "RoleName", "deployer"), nil)
	e.iamFails(act("GetRole", "RoleName", "deployer"), http.StatusNotFound, "NoSuchEntity", "The role with name deployer cannot be found.")
	for _, a := range []string{"DeleteRole", "ListInstanceProfilesForRole", "UpdateRole", "ListRolePolicies", "ListAttachedRolePolicies", "ListRoleTags", "DeleteRolePermissionsBoundary"} {
		e.iamFails(act(a, "RoleName", "deployer"), http.StatusNotFound, "NoSuchEntity", "deployer")
	}
	// The name is free again, and the new role is another role.
	e.createRole("deployer")
	if r2 := e.getRole("deployer"); r2.RoleId == r.RoleId {
		t.Errorf("a role made again has the old RoleId %s", r.RoleId)
	}
}

func TestIAMDeleteRoleConflicts(t *testing.T) {
	e := newEnv(t, setup{})
	e.createRole("busy")
	e.iamOK(act("AttachRolePolicy", "RoleName", "busy", "PolicyArn", "arn:aws:iam::aws:policy/ReadOnlyAccess"), nil)
	e.iamOK(act("PutRolePolicy", "RoleName", "busy", "PolicyName", "read", "PolicyDocument", readPolicy), nil)
	e.iamFails(act("DeleteRole", "RoleName", "busy"), http.StatusConflict, "DeleteConflict", "Cannot delete entity, must detach all policies first.")
	e.iamOK(act("DetachRolePolicy", "RoleName", "busy", "PolicyArn", "arn:aws:iam::aws:policy/ReadOnlyAccess"), nil)
	e.iamFails(act("DeleteRole", "RoleName", "busy"), http.StatusConflict, "DeleteConflict", "Cannot delete entity, must delete policies first.")
	e.iamOK(act("DeleteRolePolicy", "RoleName", "busy", "PolicyName", "read"), nil)
	e.iamOK(act("DeleteRole", "RoleName", "busy"), nil)
}

func TestIAMTrustPolicyRefusals(t *testing.T) {
	long := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"rolesanywhere.amazonaws.com"},"Action":["sts:AssumeRole"],` +
		`"Condition":{"StringEquals":{"aws:PrincipalTag/x509Subject/CN":["` + strings.Repeat("r", 2000) + `"]}}}]}`
	tests := []struct {
		name, doc       string
		status          int
		code            string
		messageContains string
	}{
		{"no Principal", `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"sts:AssumeRole"}]}`, 400, "MalformedPolicyDocument", "Missing required field Principal"},
		{"a Resource", `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"rolesanywhere.amazonaws.com"},"Action":"sts:AssumeRole","Resource":"*"}]}`, 400, "MalformedPolicyDocument", "Has prohibited field Resource"},
		{"not JSON", `{"Version":`, 400, "MalformedPolicyDocument", "Invalid principal in policy or malformed policy document"},
		{"over 2048 characters", long, 409, "LimitExceeded", "Cannot exceed quota for ACLSizePerRole: 2048"},
		{"empty", "", 400, "ValidationError", "failed to satisfy constraint"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, setup{})
			e.iamFails(act("CreateRole", "RoleName", "refused", "AssumeRolePolicyDocument", tt.doc), tt.status, tt.code, tt.messageContains)
			e.iamFails(act("GetRole", "RoleName", "refused"), http.StatusNotFound, "NoSuchEntity")
			before := e.getRole("ci-deployer").AssumeRolePolicyDocument
			e.iamFails(act("UpdateAssumeRolePolicy", "RoleName", "ci-deployer", "PolicyDocument", tt.doc), tt.status, tt.code, tt.messageContains)
			if after := e.getRole("ci-deployer").AssumeRolePolicyDocument; after != before {
				t.Errorf("a refused UpdateAssumeRolePolicy changed the policy to %s", after)
			}
		})
	}
}

// TestIAMUpdateAssumeRolePolicyChangesCreateSession: a trust policy
// changed through the API decides the very next CreateSession.
func TestIAMUpdateAssumeRolePolicyChangesCreateSession(t *testing.T) {
	e := newEnv(t, setup{})
	if a := e.createSession(call{}); a.status != http.StatusCreated {
		t.Fatalf("before the change: %d %s", a.status, a.message)
	}
	policy := strings.Replace(referencePolicy, `"gitlab-runner"}`, `"runner-2"}`, 1)
	policy = strings.Replace(policy, "${trustAnchors.gitlab-runner-ca.arn}", e.out.TrustAnchors["gitlab-runner-ca"], 1)
	e.iamOK(act("UpdateAssumeRolePolicy", "RoleName", "ci-deployer", "PolicyDocument", policy), nil)
	if a := e.createSession(call{}); a.status != http.StatusForbidden || !strings.Contains(a.message, "runner-2") {
		t.Errorf("CN gitlab-runner after the change: %d %s %s, want 403 naming runner-2", a.status, a.code, a.message)
	}
	if a := e.createSession(call{leaf: e.leaf(pkitest.LeafOptions{CommonName: "runner-2"})}); a.status != http.StatusCreated {
		t.Errorf("CN runner-2 after the change: %d %s", a.status, a.message)
	}

	// A role deleted and made again through the API (the profile names
	// it by ARN) serves sessions under its new policy at once.
	e.iamOK(act("DeleteRole", "RoleName", "ci-deployer"), nil)
	if a := e.createSession(call{leaf: e.leaf(pkitest.LeafOptions{CommonName: "runner-2"})}); a.status == http.StatusCreated {
		t.Error("CreateSession for a deleted role succeeded")
	}
	original := strings.Replace(referencePolicy, "${trustAnchors.gitlab-runner-ca.arn}", e.out.TrustAnchors["gitlab-runner-ca"], 1)
	e.iamOK(act("CreateRole", "RoleName", "ci-deployer", "AssumeRolePolicyDocument", original), nil)
	if a := e.createSession(call{}); a.status != http.StatusCreated {
		t.Errorf("CN gitlab-runner with the role made again: %d %s", a.status, a.message)
	}
}

func TestIAMRoleRefusals(t *testing.T) {
	e := newEnv(t, setup{})
	e.iamFails(act("UpdateRole", "RoleName", "ci-deployer", "MaxSessionDuration", "43201"), 400, "ValidationError", "maxSessionDuration")
	e.iamFails(act("UpdateRole", "RoleName", "ci-deployer", "MaxSessionDuration", "3599"), 400, "ValidationError", "maxSessionDuration")
	e.iamFails(act("UpdateRole", "RoleName", "ci-deployer", "Description", strings.Repeat("d", 1001)), 400, "ValidationError", "description")
	e.iamFails(act("UpdateRoleDescription", "RoleName", "ci-deployer"), 400, "ValidationError", "description")
	e.iamFails(act("DeleteRole", "RoleName", "bad/name"), 400, "ValidationError", "roleName")
	e.iamFails(act("DeleteRole"), 400, "ValidationError", "roleName")
	e.iamFails(act("PutRolePermissionsBoundary", "RoleName", "ci-deployer", "PermissionsBoundary", "arn:aws:iam::999988887777:policy/other"), 404, "NoSuchEntity", "Scope ARN: arn:aws:iam::999988887777:policy/other does not exist or is not attachable.")
	e.iamFails(act("PutRolePermissionsBoundary", "RoleName", "ci-deployer", "PermissionsBoundary", "not-an-arn-at-all-really"), 400, "InvalidInput", "is not valid")
	e.iamFails(act("CreateRole", "RoleName", "bounded", "AssumeRolePolicyDocument", rolesAnywhereTrust, "PermissionsBoundary", "arn:aws:iam::999988887777:policy/other"), 404, "NoSuchEntity", "Scope ARN")
	e.iamFails(act("CreateRole", "RoleName", "CI-DEPLOYER", "AssumeRolePolicyDocument", rolesAnywhereTrust), 409, "EntityAlreadyExists", "Role with name CI-DEPLOYER already exists.")
	if r := e.getRole("ci-deployer"); r.MaxSessionDuration != 3600 || r.Description != "" || r.Boundary != "" {
		t.Errorf("refused calls changed the role: %+v", r)
	}
	// Session credentials may not call IAM.
	s := e.createSession(call{})
	c := s.session.CredentialSet[0].Credentials
	status, body := e.iam(sigv4.Credentials{AccessKeyID: c.AccessKeyID, SecretAccessKey: c.SecretAccessKey, SessionToken: c.SessionToken}, act("DeleteRole", "RoleName", "ci-deployer"))
	if status != 403 || !strings.Contains(body, "<Code>AccessDenied</Code>") {
		t.Errorf("DeleteRole with session credentials: %d %s", status, body)
	}
	e.getRole("ci-deployer")
}

func TestIAMListRoles(t *testing.T) {
	e := newEnv(t, setup{})
	e.createRole("b-role", "Path", "/team/", "Tags.member.1.Key", "k", "Tags.member.1.Value", "v")
	e.createRole("A-role", "Path", "/team/sub/")
	type page struct {
		Roles     []xmlRole `xml:"ListRolesResult>Roles>member"`
		Truncated bool      `xml:"ListRolesResult>IsTruncated"`
		Marker    string    `xml:"ListRolesResult>Marker"`
	}
	names := func(p page) string {
		var n []string
		for _, r := range p.Roles {
			n = append(n, r.RoleName)
		}
		return strings.Join(n, ",")
	}
	var all page
	e.iamOK(act("ListRoles"), &all)
	if got := names(all); got != "A-role,b-role,ci-deployer,not-in-profile" || all.Truncated || all.Marker != "" {
		t.Errorf("ListRoles: %s truncated %v marker %q", got, all.Truncated, all.Marker)
	}
	for _, r := range all.Roles {
		if len(r.Tags) != 0 || r.RoleLastUsed != nil || r.AssumeRolePolicyDocument == "" || r.MaxSessionDuration == 0 {
			t.Errorf("ListRoles member %+v: tags and RoleLastUsed are left out, the policy and duration are not", r)
		}
	}
	var p1, p2, p3 page
	e.iamOK(act("ListRoles", "MaxItems", "2"), &p1)
	if names(p1) != "A-role,b-role" || !p1.Truncated || p1.Marker == "" {
		t.Fatalf("page 1: %s %v %q", names(p1), p1.Truncated, p1.Marker)
	}
	// A role deleted before the marker does not shift the next page.
	e.iamOK(act("DeleteRole", "RoleName", "A-role"), nil)
	e.iamOK(act("ListRoles", "MaxItems", "2", "Marker", p1.Marker), &p2)
	if names(p2) != "ci-deployer,not-in-profile" || p2.Truncated || p2.Marker != "" {
		t.Errorf("page 2: %s %v %q", names(p2), p2.Truncated, p2.Marker)
	}
	e.iamOK(act("ListRoles", "PathPrefix", "/team/"), &p3)
	if names(p3) != "b-role" {
		t.Errorf("PathPrefix /team/: %s", names(p3))
	}
	e.iamFails(act("ListRoles", "MaxItems", "0"), 400, "ValidationError", "maxItems")
	e.iamFails(act("ListRoles", "MaxItems", "1001"), 400, "ValidationError", "maxItems")
	e.iamFails(act("ListRoles", "Marker", "!!"), 400, "ValidationError", "Invalid Marker")
	e.iamFails(act("ListRoles", "PathPrefix", "team"), 400, "ValidationError", "pathPrefix")
}

// TestIAMRefusalsByOperation breaks, once each, the rules the tests above
// do not reach.
func TestIAMRefusalsByOperation(t *testing.T) {
	e := newEnv(t, setup{})
	tests := []struct {
		p              url.Values
		status         int
		code, contains string
	}{
		{act("UpdateAssumeRolePolicy", "RoleName", "nobody", "PolicyDocument", rolesAnywhereTrust), 404, "NoSuchEntity", "The role with name nobody cannot be found."},
		{act("UpdateRoleDescription", "RoleName", "nobody", "Description", "d"), 404, "NoSuchEntity", "nobody"},
		{act("PutRolePermissionsBoundary", "RoleName", "nobody", "PermissionsBoundary", "arn:aws:iam::aws:policy/PowerUserAccess"), 404, "NoSuchEntity", "The role with name nobody"},
		{act("DetachRolePolicy", "RoleName", "nobody", "PolicyArn", "arn:aws:iam::aws:policy/ReadOnlyAccess"), 404, "NoSuchEntity", "The role with name nobody"},
		{act("DetachRolePolicy", "RoleName", "ci-deployer", "PolicyArn", "ReadOnlyAccess"), 400, "InvalidInput", "ARN ReadOnlyAccess is not valid."},
		{act("DeleteRolePolicy", "RoleName", "nobody", "PolicyName", "p"), 404, "NoSuchEntity", "The role with name nobody"},
		{act("ListAttachedRolePolicies", "RoleName", "ci-deployer", "PathPrefix", "x"), 400, "ValidationError", "pathPrefix"},
		{act("ListRolePolicies", "RoleName", "ci-deployer", "MaxItems", "x"), 400, "ValidationError", "maxItems"},
		{act("ListRoleTags", "RoleName", "ci-deployer", "Marker", "%%%"), 400, "ValidationError", "Invalid Marker"},
		{act("TagRole", "RoleName", "ci-deployer", "Tags.member.1.Key", strings.Repeat("k", 129), "Tags.member.1.Value", "v"), 400, "ValidationError", "length between 1 and 128"},
		{act("TagRole", "RoleName", "ci-deployer", "Tags.member.1.Key", "k", "Tags.member.1.Value", strings.Repeat("v", 257)), 400, "ValidationError", "256"},
		{act("TagRole", "RoleName", "ci-deployer", "Tags.member.1.Key", "k", "Tags.member.1.Value", "v", "Tags.member.2.Key", "K", "Tags.member.2.Value", "v"), 400, "InvalidInput", "Duplicate tag keys"},
		{act("UntagRole", "RoleName", "ci-deployer", "TagKeys.member.1", strings.Repeat("k", 129)), 400, "ValidationError", "tagKeys"},
		{act("NoSuchAction", "RoleName", "ci-deployer"), 400, "InvalidAction", "Could not find operation NoSuchAction"},
	}
	for _, tt := range tests {
		e.iamFails(tt.p, tt.status, tt.code, tt.contains)
	}
	if r := e.getRole("ci-deployer"); len(r.Tags) != 0 || r.Boundary != "" {
		t.Errorf("refused calls changed the role: %+v", r)
	}
}
