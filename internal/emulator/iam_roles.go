package emulator

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/keyless-dev/keyless/internal/iampolicy"
)

// IAM roles: CreateRole, GetRole.

func registerIAMRoles() {
	registerIAM("CreateRole", (*Emulator).createRole)
	registerIAM("GetRole", (*Emulator).getRole)
}

// IAM's limits on roles.
const (
	maxDescriptionChars = 1000
	maxPathChars        = 512
)

// validIAMPath reports whether p is an IAM path: "/" or "/a/b/", at most
// 512 characters of ! through ~.
func validIAMPath(p string) bool {
	if len(p) == 0 || len(p) > maxPathChars || p[0] != '/' || p[len(p)-1] != '/' {
		return false
	}
	for i := 0; i < len(p); i++ {
		if p[i] < 0x21 || p[i] > 0x7e {
			return false
		}
	}
	return true
}

// trustPolicy checks a trust policy document as CreateRole and
// UpdateAssumeRolePolicy do.
func trustPolicy(doc string) (*iampolicy.Policy, *stsError) {
	if doc == "" {
		return nil, iamInvalid("assumeRolePolicyDocument", doc, "Member must have length greater than or equal to 1")
	}
	// One check for CreateRole, UpdateAssumeRolePolicy, the seed and the
	// state file: iampolicy.ParseTrustPolicy, which refuses an over-long
	// policy before it parses it.
	pol, err := iampolicy.ParseTrustPolicy([]byte(doc))
	if errors.Is(err, iampolicy.ErrTrustPolicyTooLong) {
		return nil, &stsError{status: http.StatusConflict, typ: "Sender", code: "LimitExceeded",
			message: fmt.Sprintf("Cannot exceed quota for ACLSizePerRole: %d", iampolicy.MaxTrustPolicyChars), rule: err.Error()}
	}
	if err != nil {
		return nil, &stsError{status: http.StatusBadRequest, typ: "Sender", code: "MalformedPolicyDocument", message: "Invalid principal in policy or malformed policy document", rule: err.Error()}
	}
	return pol, nil
}

// maxSessionDuration reads MaxSessionDuration (default 3600).
func maxSessionDuration(p url.Values) (int, *stsError) {
	v := first(p["MaxSessionDuration"])
	if v == "" {
		return defaultDuration, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < minRoleDuration || n > maxSessionSeconds {
		return 0, iamInvalid("maxSessionDuration", v, fmt.Sprintf("Member must have value between %d and %d", minRoleDuration, maxSessionSeconds))
	}
	return n, nil
}

type roleResult struct {
	Role xmlRole `xml:"Role"`
}

func (e *Emulator) createRole(p url.Values, _ caller) (any, *stsError) {
	name := first(p["RoleName"])
	if !validIAMName(name, 64) {
		return nil, iamInvalid("roleName", name, "Member must satisfy regular expression pattern: [\\w+=,.@-]+ and have length between 1 and 64")
	}
	path := "/"
	if v, ok := p["Path"]; ok {
		path = first(v)
		if !validIAMPath(path) {
			return nil, iamInvalid("path", path, "Member must satisfy regular expression pattern: (\\u002F)|(\\u002F[\\u0021-\\u007F]+\\u002F)")
		}
	}
	doc := first(p["AssumeRolePolicyDocument"])
	pol, fail := trustPolicy(doc)
	if fail != nil {
		return nil, fail
	}
	maxDur, fail := maxSessionDuration(p)
	if fail != nil {
		return nil, fail
	}
	desc := first(p["Description"])
	if len([]rune(desc)) > maxDescriptionChars {
		return nil, iamInvalid("description", desc, fmt.Sprintf("Member must have length less than or equal to %d", maxDescriptionChars))
	}
	tags, fail := queryTags(p, "Tags")
	if fail != nil {
		return nil, fail
	}
	boundary := first(p["PermissionsBoundary"])
	if boundary != "" {
		if fail := e.attachablePolicy(boundary, "Scope ARN: %s does not exist or is not attachable."); fail != nil {
			return nil, fail
		}
	}
	var raw [11]byte
	if _, err := e.rand.Read(raw[:]); err != nil {
		return nil, &stsError{status: http.StatusInternalServerError, typ: "Receiver", code: "ServiceFailure", message: "Internal error", rule: err.Error()}
	}
	role := &Role{Name: name, Path: path, ARN: e.roleARN(path, name), ID: "AROA" + base32Upper(raw[:])[:17],
		Description: desc, MaxSessionDuration: maxDur, TrustPolicy: pol, TrustPolicyDocument: doc,
		PermissionsBoundary: boundary, Tags: tags, CreatedAt: e.now().UTC()}
	err := e.st.update(func(r *resources) error {
		if r.roleByName(name) != nil {
			return &stsError{status: http.StatusConflict, typ: "Sender", code: "EntityAlreadyExists", message: fmt.Sprintf("Role with name %s already exists.", name)}
		}
		r.roles[name] = role
		return nil
	})
	if err != nil {
		return nil, asSTSError(err)
	}
	return roleResult{toXMLRole(role, false)}, nil
}

func (e *Emulator) getRole(p url.Values, _ caller) (any, *stsError) {
	name := first(p["RoleName"])
	role := e.st.snapshot().roleByName(name)
	if role == nil {
		return nil, iamNoSuchRole(name)
	}
	return roleResult{toXMLRole(role, true)}, nil
}

// validPolicyARN reports whether s is an IAM managed policy's ARN:
// arn:PARTITION:iam::ACCOUNT-or-aws:policy/PATH/NAME.
func validPolicyARN(s string) bool {
	parts := strings.SplitN(s, ":", 6)
	return len(parts) == 6 && parts[0] == "arn" && parts[2] == "iam" && parts[3] == "" &&
		(parts[4] == "aws" || len(parts[4]) == 12) && strings.HasPrefix(parts[5], "policy/") && len(parts[5]) > len("policy/")
}
