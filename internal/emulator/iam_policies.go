package emulator

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/keyless-dev/keyless/internal/iampolicy"
)

// A role's policies: inline ones (PutRolePolicy, GetRolePolicy,
// DeleteRolePolicy, ListRolePolicies) and managed ones attached by ARN
// (AttachRolePolicy, DetachRolePolicy, ListAttachedRolePolicies). The
// emulator stores them so that Terraform and the CLI see what they made;
// it does not evaluate them (sessions' permissions are not modelled).

func registerIAMPolicies() {
	registerIAM("PutRolePolicy", (*Emulator).putRolePolicy)
	registerIAM("GetRolePolicy", (*Emulator).getRolePolicy)
	registerIAM("DeleteRolePolicy", (*Emulator).deleteRolePolicy)
	registerIAM("ListRolePolicies", (*Emulator).listRolePolicies)
	registerIAM("AttachRolePolicy", (*Emulator).attachRolePolicy)
	registerIAM("DetachRolePolicy", (*Emulator).detachRolePolicy)
	registerIAM("ListAttachedRolePolicies", (*Emulator).listAttachedRolePolicies)
}

// IAM's quotas on a role's policies.
const (
	// maxInlinePolicyChars is the aggregate size of a role's inline
	// policies, whitespace not counted (IAM's RolePolicySizeQuota).
	maxInlinePolicyChars = 10240
	// maxAttachedPolicies is IAM's default quota of managed policies
	// per role (it can be raised to 20 on request).
	maxAttachedPolicies = 10
	// maxPolicyDocumentChars is the model's bound on PolicyDocument.
	maxPolicyDocumentChars = 131072
)

// policyChars counts a policy's characters as IAM's quotas do: without
// whitespace.
func policyChars(doc string) int {
	n := 0
	for _, c := range doc {
		if c != ' ' && c != '\t' && c != '\n' && c != '\r' {
			n++
		}
	}
	return n
}

func policyNameParam(p url.Values) (string, *stsError) {
	name := first(p["PolicyName"])
	if !validIAMName(name, 128) {
		return "", iamInvalid("policyName", name, "Member must satisfy regular expression pattern: [\\w+=,.@-]+ and have length between 1 and 128")
	}
	return name, nil
}

// roleAndPolicyName reads RoleName and PolicyName, as the inline-policy
// operations take them.
func roleAndPolicyName(p url.Values) (string, string, *stsError) {
	roleName, fail := roleNameParam(p)
	if fail != nil {
		return "", "", fail
	}
	name, fail := policyNameParam(p)
	return roleName, name, fail
}

// roleAndPolicyARN reads RoleName and PolicyArn, as Attach and
// DetachRolePolicy take them.
func roleAndPolicyARN(p url.Values) (string, string, *stsError) {
	roleName, fail := roleNameParam(p)
	if fail != nil {
		return "", "", fail
	}
	arn, fail := policyARNParam(p)
	return roleName, arn, fail
}

func noSuchRolePolicy(name string) *stsError {
	return &stsError{status: http.StatusNotFound, typ: "Sender", code: "NoSuchEntity", message: fmt.Sprintf("The role policy with name %s cannot be found.", truncate(name))}
}

func (e *Emulator) putRolePolicy(p url.Values, _ caller) (any, *stsError) {
	roleName, name, fail := roleAndPolicyName(p)
	if fail != nil {
		return nil, fail
	}
	doc := first(p["PolicyDocument"])
	if doc == "" || len([]rune(doc)) > maxPolicyDocumentChars {
		return nil, iamInvalid("policyDocument", doc, fmt.Sprintf("Member must have length between 1 and %d", maxPolicyDocumentChars))
	}
	if _, err := iampolicy.ParseIdentityPolicy([]byte(doc)); err != nil {
		return nil, &stsError{status: http.StatusBadRequest, typ: "Sender", code: "MalformedPolicyDocument", message: "Syntax errors in policy.", rule: err.Error()}
	}
	_, fail = e.changeRole(roleName, func(_ *resources, role *Role) *stsError {
		total := policyChars(doc)
		for n, d := range role.InlinePolicies {
			if n != name {
				total += policyChars(d)
			}
		}
		if total > maxInlinePolicyChars {
			return &stsError{status: http.StatusConflict, typ: "Sender", code: "LimitExceeded",
				message: fmt.Sprintf("Maximum policy size of %d bytes exceeded for role %s", maxInlinePolicyChars, role.Name),
				rule:    fmt.Sprintf("the role's inline policies would total %d characters without whitespace", total)}
		}
		if role.InlinePolicies == nil {
			role.InlinePolicies = map[string]string{}
		}
		role.InlinePolicies[name] = doc
		return nil
	})
	return nil, fail
}

func (e *Emulator) getRolePolicy(p url.Values, _ caller) (any, *stsError) {
	roleName, name, fail := roleAndPolicyName(p)
	if fail != nil {
		return nil, fail
	}
	role := e.st.snapshot().roleByName(roleName)
	if role == nil {
		return nil, iamNoSuchRole(roleName)
	}
	doc, ok := role.InlinePolicies[name]
	if !ok {
		return nil, noSuchRolePolicy(name)
	}
	return struct {
		RoleName       string `xml:"RoleName"`
		PolicyName     string `xml:"PolicyName"`
		PolicyDocument string `xml:"PolicyDocument"`
	}{role.Name, name, iamEscape(doc)}, nil
}

func (e *Emulator) deleteRolePolicy(p url.Values, _ caller) (any, *stsError) {
	roleName, name, fail := roleAndPolicyName(p)
	if fail != nil {
		return nil, fail
	}
	_, fail = e.changeRole(roleName, func(_ *resources, role *Role) *stsError {
		if _, ok := role.InlinePolicies[name]; !ok {
			return noSuchRolePolicy(name)
		}
		delete(role.InlinePolicies, name)
		if len(role.InlinePolicies) == 0 {
			role.InlinePolicies = nil
		}
		return nil
	})
	return nil, fail
}

func (e *Emulator) listRolePolicies(p url.Values, _ caller) (any, *stsError) {
	roleName, fail := roleNameParam(p)
	if fail != nil {
		return nil, fail
	}
	role := e.st.snapshot().roleByName(roleName)
	if role == nil {
		return nil, iamNoSuchRole(roleName)
	}
	page, info, fail := iamPage(p, sortedKeys(role.InlinePolicies), func(s string) string { return s })
	if fail != nil {
		return nil, fail
	}
	return struct {
		PolicyNames xmlStrings `xml:"PolicyNames"`
		iamPageInfo
	}{xmlStrings{page}, info}, nil
}

// attachablePolicy checks a managed policy's ARN. The emulator has no
// store of managed policies: it takes AWS's (arn:PARTITION:iam::aws:
// policy/...) and any of the seed's account, and refuses those of other
// accounts or partitions as IAM refuses a policy that does not exist.
// notFound is IAM's message for the operation, with %s for the ARN.
func (e *Emulator) attachablePolicy(arn, notFound string) *stsError {
	if len(arn) < 20 || len(arn) > 2048 || !validPolicyARN(arn) {
		return &stsError{status: http.StatusBadRequest, typ: "Sender", code: "InvalidInput", message: fmt.Sprintf("ARN %s is not valid.", truncate(arn))}
	}
	parts := strings.SplitN(arn, ":", 6)
	if parts[1] != e.st.partition || (parts[4] != "aws" && parts[4] != e.st.account) {
		return &stsError{status: http.StatusNotFound, typ: "Sender", code: "NoSuchEntity", message: fmt.Sprintf(notFound, truncate(arn)),
			rule: fmt.Sprintf("the emulator takes managed policies of AWS (arn:%s:iam::aws:policy/...) and of account %s", e.st.partition, e.st.account)}
	}
	return nil
}

func policyARNParam(p url.Values) (string, *stsError) {
	arn := first(p["PolicyArn"])
	if arn == "" {
		return "", iamInvalid("policyArn", "null", "Member must not be null")
	}
	return arn, nil
}

func (e *Emulator) attachRolePolicy(p url.Values, _ caller) (any, *stsError) {
	roleName, arn, fail := roleAndPolicyARN(p)
	if fail != nil {
		return nil, fail
	}
	if fail := e.attachablePolicy(arn, "Policy %s does not exist or is not attachable."); fail != nil {
		return nil, fail
	}
	_, fail = e.changeRole(roleName, func(_ *resources, role *Role) *stsError {
		if slices.Contains(role.ManagedPolicyARNs, arn) {
			return nil // attaching an attached policy changes nothing
		}
		if len(role.ManagedPolicyARNs) >= maxAttachedPolicies {
			return &stsError{status: http.StatusConflict, typ: "Sender", code: "LimitExceeded",
				message: fmt.Sprintf("Cannot exceed quota for PoliciesPerRole: %d", maxAttachedPolicies),
				rule:    fmt.Sprintf("role %s has %d managed policies attached", role.Name, len(role.ManagedPolicyARNs))}
		}
		role.ManagedPolicyARNs = append(role.ManagedPolicyARNs, arn)
		return nil
	})
	return nil, fail
}

func (e *Emulator) detachRolePolicy(p url.Values, _ caller) (any, *stsError) {
	roleName, arn, fail := roleAndPolicyARN(p)
	if fail != nil {
		return nil, fail
	}
	if !validPolicyARN(arn) {
		return nil, &stsError{status: http.StatusBadRequest, typ: "Sender", code: "InvalidInput", message: fmt.Sprintf("ARN %s is not valid.", truncate(arn))}
	}
	_, fail = e.changeRole(roleName, func(_ *resources, role *Role) *stsError {
		i := slices.Index(role.ManagedPolicyARNs, arn)
		if i < 0 {
			return &stsError{status: http.StatusNotFound, typ: "Sender", code: "NoSuchEntity", message: fmt.Sprintf("Policy %s was not found.", truncate(arn)),
				rule: "it is not attached to role " + role.Name}
		}
		role.ManagedPolicyARNs = slices.Delete(role.ManagedPolicyARNs, i, i+1)
		if len(role.ManagedPolicyARNs) == 0 {
			role.ManagedPolicyARNs = nil
		}
		return nil
	})
	return nil, fail
}

// policyNameAndPath splits a managed policy's ARN into its name and path
// (arn:aws:iam::aws:policy/service-role/X: X and /service-role/).
func policyNameAndPath(arn string) (name, path string) {
	res := arn
	if i := strings.Index(arn, ":policy/"); i >= 0 {
		res = arn[i+len(":policy/"):]
	}
	i := strings.LastIndexByte(res, '/')
	if i < 0 {
		return res, "/"
	}
	return res[i+1:], "/" + res[:i+1]
}

type xmlAttachedPolicy struct {
	PolicyName string `xml:"PolicyName"`
	PolicyArn  string `xml:"PolicyArn"`
}

func (e *Emulator) listAttachedRolePolicies(p url.Values, _ caller) (any, *stsError) {
	roleName, fail := roleNameParam(p)
	if fail != nil {
		return nil, fail
	}
	prefix, fail := pathPrefix(p)
	if fail != nil {
		return nil, fail
	}
	role := e.st.snapshot().roleByName(roleName)
	if role == nil {
		return nil, iamNoSuchRole(roleName)
	}
	var items []xmlAttachedPolicy
	for _, arn := range role.ManagedPolicyARNs {
		name, path := policyNameAndPath(arn)
		if strings.HasPrefix(path, prefix) {
			items = append(items, xmlAttachedPolicy{PolicyName: name, PolicyArn: arn})
		}
	}
	// By ARN, so that the Marker (an ARN) finds its place.
	slices.SortFunc(items, func(a, b xmlAttachedPolicy) int { return strings.Compare(a.PolicyArn, b.PolicyArn) })
	items = slices.CompactFunc(items, func(a, b xmlAttachedPolicy) bool { return a.PolicyArn == b.PolicyArn })
	page, info, fail := iamPage(p, items, func(a xmlAttachedPolicy) string { return a.PolicyArn })
	if fail != nil {
		return nil, fail
	}
	return struct {
		AttachedPolicies struct {
			Member []xmlAttachedPolicy `xml:"member"`
		} `xml:"AttachedPolicies"`
		iamPageInfo
	}{struct {
		Member []xmlAttachedPolicy `xml:"member"`
	}{page}, info}, nil
}
