package emulator

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// IAM roles after CreateRole: DeleteRole, UpdateAssumeRolePolicy,
// UpdateRole, UpdateRoleDescription, ListRoles and the permissions
// boundary. Each change replaces the role with a changed copy, so a
// CreateSession that runs meanwhile sees the role before or after, never
// half of it, and the next one sees the change.

func registerIAMRoleChanges() {
	registerIAM("DeleteRole", (*Emulator).deleteRole)
	registerIAM("UpdateAssumeRolePolicy", (*Emulator).updateAssumeRolePolicy)
	registerIAM("UpdateRole", (*Emulator).updateRole)
	registerIAM("UpdateRoleDescription", (*Emulator).updateRoleDescription)
	registerIAM("ListRoles", (*Emulator).listRoles)
	registerIAM("PutRolePermissionsBoundary", (*Emulator).putRolePermissionsBoundary)
	registerIAM("DeleteRolePermissionsBoundary", (*Emulator).deleteRolePermissionsBoundary)
}

func deleteConflict(message, rule string) *stsError {
	return &stsError{status: http.StatusConflict, typ: "Sender", code: "DeleteConflict", message: message, rule: rule}
}

func (e *Emulator) deleteRole(p url.Values, _ caller) (any, *stsError) {
	name, fail := roleNameParam(p)
	if fail != nil {
		return nil, fail
	}
	err := e.st.update(func(r *resources) error {
		role := r.roleByName(name)
		switch {
		case role == nil:
			return iamNoSuchRole(name)
		case len(role.ManagedPolicyARNs) > 0:
			return deleteConflict("Cannot delete entity, must detach all policies first.",
				fmt.Sprintf("role %s has %d managed policies attached; DetachRolePolicy each (ListAttachedRolePolicies lists them)", role.Name, len(role.ManagedPolicyARNs)))
		case len(role.InlinePolicies) > 0:
			return deleteConflict("Cannot delete entity, must delete policies first.",
				fmt.Sprintf("role %s has %d inline policies; DeleteRolePolicy each (ListRolePolicies lists them)", role.Name, len(role.InlinePolicies)))
		}
		// Instance profiles would be checked here too; the emulator has
		// none. Profiles that name the role are left alone, as AWS does:
		// CreateSession for the role then fails.
		delete(r.roles, role.Name)
		return nil
	})
	if err != nil {
		return nil, asSTSError(err)
	}
	return nil, nil
}

func (e *Emulator) updateAssumeRolePolicy(p url.Values, _ caller) (any, *stsError) {
	name, fail := roleNameParam(p)
	if fail != nil {
		return nil, fail
	}
	doc := first(p["PolicyDocument"])
	if doc == "" {
		return nil, iamInvalid("policyDocument", doc, "Member must have length greater than or equal to 1")
	}
	pol, fail := trustPolicy(doc)
	if fail != nil {
		return nil, fail
	}
	_, fail = e.changeRole(name, func(_ *resources, role *Role) *stsError {
		role.TrustPolicy, role.TrustPolicyDocument = pol, doc
		return nil
	})
	return nil, fail
}

// description reads Description, when given.
func description(p url.Values) (string, bool, *stsError) {
	v, ok := p["Description"]
	if !ok {
		return "", false, nil
	}
	desc := first(v)
	if len([]rune(desc)) > maxDescriptionChars {
		return "", false, iamInvalid("description", desc, fmt.Sprintf("Member must have length less than or equal to %d", maxDescriptionChars))
	}
	return desc, true, nil
}

func (e *Emulator) updateRole(p url.Values, _ caller) (any, *stsError) {
	name, fail := roleNameParam(p)
	if fail != nil {
		return nil, fail
	}
	desc, setDesc, fail := description(p)
	if fail != nil {
		return nil, fail
	}
	_, setDur := p["MaxSessionDuration"]
	dur, fail := maxSessionDuration(p)
	if fail != nil {
		return nil, fail
	}
	_, fail = e.changeRole(name, func(_ *resources, role *Role) *stsError {
		if setDesc {
			role.Description = desc
		}
		if setDur {
			role.MaxSessionDuration = dur
		}
		return nil
	})
	if fail != nil {
		return nil, fail
	}
	return struct{}{}, nil
}

func (e *Emulator) updateRoleDescription(p url.Values, _ caller) (any, *stsError) {
	name, fail := roleNameParam(p)
	if fail != nil {
		return nil, fail
	}
	desc, ok, fail := description(p)
	if fail != nil {
		return nil, fail
	}
	if !ok {
		return nil, iamInvalid("description", "null", "Member must not be null")
	}
	role, fail := e.changeRole(name, func(_ *resources, role *Role) *stsError {
		role.Description = desc
		return nil
	})
	if fail != nil {
		return nil, fail
	}
	return roleResult{toXMLRole(role, false)}, nil
}

// pathPrefix reads PathPrefix (default "/"): "/" followed by up to 511
// characters of ! through DEL.
func pathPrefix(p url.Values) (string, *stsError) {
	v, ok := p["PathPrefix"]
	if !ok {
		return "/", nil
	}
	prefix := first(v)
	valid := len(prefix) >= 1 && len(prefix) <= maxPathChars && prefix[0] == '/'
	for i := 0; valid && i < len(prefix); i++ {
		valid = prefix[i] >= 0x21 && prefix[i] <= 0x7f
	}
	if !valid {
		return "", iamInvalid("pathPrefix", prefix, "Member must satisfy regular expression pattern: \\u002F[\\u0021-\\u007F]*")
	}
	return prefix, nil
}

func (e *Emulator) listRoles(p url.Values, _ caller) (any, *stsError) {
	prefix, fail := pathPrefix(p)
	if fail != nil {
		return nil, fail
	}
	r := e.st.snapshot()
	var roles []*Role
	for _, role := range r.roles {
		if strings.HasPrefix(role.Path, prefix) {
			roles = append(roles, role)
		}
	}
	sortRoles(roles)
	page, info, fail := iamPage(p, roles, roleKey)
	if fail != nil {
		return nil, fail
	}
	out := struct {
		Roles struct {
			Member []xmlRole `xml:"member"`
		} `xml:"Roles"`
		iamPageInfo
	}{iamPageInfo: info}
	for _, role := range page {
		// ListRoles leaves out tags, the permissions boundary and
		// RoleLastUsed, as IAM documents; GetRole has them.
		x := toXMLRole(role, false)
		x.Tags, x.PermissionsBoundary = nil, nil
		out.Roles.Member = append(out.Roles.Member, x)
	}
	return out, nil
}

// roleKey orders roles by name as IAM's names are unique: regardless of
// case.
func roleKey(r *Role) string { return strings.ToLower(r.Name) }

func sortRoles(roles []*Role) {
	slices.SortFunc(roles, func(a, b *Role) int { return strings.Compare(roleKey(a), roleKey(b)) })
}

func (e *Emulator) putRolePermissionsBoundary(p url.Values, _ caller) (any, *stsError) {
	name, fail := roleNameParam(p)
	if fail != nil {
		return nil, fail
	}
	boundary := first(p["PermissionsBoundary"])
	if fail := e.attachablePolicy(boundary, "Scope ARN: %s does not exist or is not attachable."); fail != nil {
		return nil, fail
	}
	_, fail = e.changeRole(name, func(_ *resources, role *Role) *stsError {
		role.PermissionsBoundary = boundary
		return nil
	})
	return nil, fail
}

func (e *Emulator) deleteRolePermissionsBoundary(p url.Values, _ caller) (any, *stsError) {
	name, fail := roleNameParam(p)
	if fail != nil {
		return nil, fail
	}
	_, fail = e.changeRole(name, func(_ *resources, role *Role) *stsError {
		role.PermissionsBoundary = ""
		return nil
	})
	return nil, fail
}
