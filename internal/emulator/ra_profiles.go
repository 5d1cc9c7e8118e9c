package emulator

import (
	"fmt"
	"net/http"
	"slices"
	"unicode/utf8"

	"github.com/keyless-dev/keyless/internal/rolesanywhere"
)

// Profiles: CreateProfile, GetProfile, ListProfiles, UpdateProfile,
// DeleteProfile, Enable/DisableProfile, Put/DeleteAttributeMapping.

func registerRAProfiles() {
	registerRA(http.MethodPost, "/profiles", "CreateProfile", (*Emulator).createProfile)
	registerRA(http.MethodGet, "/profiles", "ListProfiles", (*Emulator).listProfiles)
	registerRA(http.MethodGet, "/profile/{id}", "GetProfile", (*Emulator).getProfile)
	registerRA(http.MethodPatch, "/profile/{id}", "UpdateProfile", (*Emulator).updateProfile)
	registerRA(http.MethodDelete, "/profile/{id}", "DeleteProfile", (*Emulator).deleteProfile)
	registerRA(http.MethodPost, "/profile/{id}/enable", "EnableProfile", (*Emulator).enableProfile)
	registerRA(http.MethodPost, "/profile/{id}/disable", "DisableProfile", (*Emulator).disableProfile)
	registerRA(http.MethodPut, "/profiles/{id}/mappings", "PutAttributeMapping", (*Emulator).putAttributeMapping)
	registerRA(http.MethodDelete, "/profiles/{id}/mappings", "DeleteAttributeMapping", (*Emulator).deleteAttributeMapping)
}

// The API's limits on a profile (CreateProfile, UpdateProfile).
const (
	maxProfileRoles    = 50
	maxRoleARNChars    = 1011
	maxManagedPolicies = 50
	maxPolicyARNChars  = 200
	maxSpecifierChars  = 60
)

// Certificate fields a mapping may name.
var certificateFields = []string{"x509Subject", "x509Issuer", "x509SAN"}

// defaultAttributeMappings are the mappings AWS gives a new profile, in
// the order GetProfile returns them (Roles Anywhere user guide,
// "Certificate attribute mapping", default mapping rules): every subject
// and issuer RDN, and the first DNS, URI and directory-name SAN. It is
// what CreateSession applied before profiles had mappings.
func defaultAttributeMappings() []AttributeMapping {
	return []AttributeMapping{
		{CertificateField: "x509Issuer", MappingRules: []MappingRule{{Specifier: "*"}}},
		{CertificateField: "x509SAN", MappingRules: []MappingRule{{Specifier: "DNS"}, {Specifier: "URI"}, {Specifier: "Name/*"}}},
		{CertificateField: "x509Subject", MappingRules: []MappingRule{{Specifier: "*"}}},
	}
}

type jsonProfile struct {
	ProfileID                 string             `json:"profileId"`
	ProfileArn                string             `json:"profileArn"`
	Name                      string             `json:"name"`
	Enabled                   bool               `json:"enabled"`
	RoleArns                  []string           `json:"roleArns"`
	DurationSeconds           int                `json:"durationSeconds"`
	AcceptRoleSessionName     bool               `json:"acceptRoleSessionName"`
	RequireInstanceProperties bool               `json:"requireInstanceProperties"`
	ManagedPolicyArns         []string           `json:"managedPolicyArns,omitempty"`
	SessionPolicy             string             `json:"sessionPolicy,omitempty"`
	AttributeMappings         []AttributeMapping `json:"attributeMappings"`
	CreatedBy                 string             `json:"createdBy"`
	CreatedAt                 string             `json:"createdAt"`
	UpdatedAt                 string             `json:"updatedAt"`
}

type profileResponse struct {
	Profile jsonProfile `json:"profile"`
}

func toJSONProfile(p *Profile) jsonProfile {
	roles := p.RoleARNs
	if roles == nil {
		roles = []string{}
	}
	mappings := p.AttributeMappings
	if mappings == nil {
		mappings = []AttributeMapping{}
	}
	return jsonProfile{ProfileID: p.ID, ProfileArn: p.ARN, Name: p.Name, Enabled: p.Enabled, RoleArns: roles,
		DurationSeconds: p.DurationSeconds, AcceptRoleSessionName: p.AcceptRoleSessionName,
		RequireInstanceProperties: p.RequireInstanceProperties, ManagedPolicyArns: p.ManagedPolicyARNs,
		SessionPolicy: p.SessionPolicy, AttributeMappings: mappings, CreatedBy: p.CreatedBy,
		CreatedAt: isoTime(p.CreatedAt), UpdatedAt: isoTime(p.UpdatedAt)}
}

// profileFields are the members CreateProfile and UpdateProfile share.
type profileFields struct {
	Name                  *string  `json:"name"`
	RoleArns              []string `json:"roleArns"`
	DurationSeconds       *int     `json:"durationSeconds"`
	ManagedPolicyArns     []string `json:"managedPolicyArns"`
	SessionPolicy         *string  `json:"sessionPolicy"`
	AcceptRoleSessionName *bool    `json:"acceptRoleSessionName"`
}

// check validates the members given, as AWS's constraints say.
func (f *profileFields) check() *apiError {
	if f.Name != nil && !validResourceName(*f.Name) {
		return validationError("1 validation error detected: Value at 'name' failed to satisfy constraint: Member must be 1 to 255 of A-Z a-z 0-9 space _ -")
	}
	if f.RoleArns != nil {
		if fail := checkRoleARNs(f.RoleArns); fail != nil {
			return fail
		}
	}
	if d := f.DurationSeconds; d != nil && (*d < minProfileDuration || *d > maxSessionSeconds) {
		return validationError("1 validation error detected: Value '%d' at 'durationSeconds' failed to satisfy constraint: Member must have value between %d and %d", *d, minProfileDuration, maxSessionSeconds)
	}
	if len(f.ManagedPolicyArns) > maxManagedPolicies {
		return validationError("1 validation error detected: Value at 'managedPolicyArns' failed to satisfy constraint: Member must have length less than or equal to %d", maxManagedPolicies)
	}
	for _, a := range f.ManagedPolicyArns {
		if a == "" || len(a) > maxPolicyARNChars {
			return validationError("1 validation error detected: a member of 'managedPolicyArns' is not 1 to %d characters", maxPolicyARNChars)
		}
		if !validPolicyARN(a) {
			return &apiError{status: http.StatusBadRequest, code: "ValidationException", message: fmt.Sprintf("Invalid managed policy ARN %s", truncate(a)),
				rule: "a managed policy ARN is arn:aws:iam::ACCOUNT-or-aws:policy/NAME"}
		}
	}
	// The API's model allows 50 managed policies, but a session gets at
	// most 10 (STS's AssumeRole PolicyArns), so a profile with more could
	// never issue one; the emulator refuses it here, the stricter reading
	// (AWS documents no check at CreateProfile either way).
	if n := len(f.ManagedPolicyArns); n > maxSessionPolicyARNs {
		return &apiError{status: http.StatusBadRequest, code: "ValidationException",
			message: fmt.Sprintf("Cannot use more than %d managed policy ARNs: a session takes at most %d", maxSessionPolicyARNs, maxSessionPolicyARNs),
			rule:    fmt.Sprintf("%d managed policy ARNs; a session takes at most %d (STS AssumeRole PolicyArns), so this profile could never issue one", n, maxSessionPolicyARNs)}
	}
	if f.SessionPolicy != nil && *f.SessionPolicy != "" {
		if n := utf8.RuneCountInString(*f.SessionPolicy); n > maxProfileSessionPolicyChars {
			return validationError("1 validation error detected: Value at 'sessionPolicy' failed to satisfy constraint: Member must have length less than or equal to %d", maxProfileSessionPolicyChars)
		}
		if err := checkSessionPolicyText(*f.SessionPolicy); err != nil {
			return &apiError{status: http.StatusBadRequest, code: "ValidationException", message: "Invalid session policy", rule: err.Error()}
		}
	}
	return nil
}

// checkSessionPolicies checks what a profile will give STS as a whole:
// the inline session policy and the managed policy ARNs share STS's
// 2,048 characters of plain text, so a profile over it could never issue
// a session (refused here, the stricter reading, as for the count). The
// packed size, an approximation, and the policies' existence are checked
// where AWS checks them: at CreateSession.
func checkSessionPolicies(p *Profile) *apiError {
	if n := sessionPolicyPlainChars(p.SessionPolicy, p.ManagedPolicyARNs); n > maxSessionPolicyChars {
		return &apiError{status: http.StatusBadRequest, code: "ValidationException",
			message: fmt.Sprintf("1 validation error detected: Value at 'sessionPolicy' failed to satisfy constraint: Member must have length less than or equal to %d", maxSessionPolicyChars),
			rule:    fmt.Sprintf("the session policy and managed policy ARNs are %d characters of plain text; STS takes at most %d for a session's inline and managed session policies together", n, maxSessionPolicyChars)}
	}
	return nil
}

// checkRoleARNs checks a profile's roleArns: at most 50, each an IAM
// role's ARN. As on AWS, the roles need not exist yet.
func checkRoleARNs(arns []string) *apiError {
	if len(arns) > maxProfileRoles {
		return validationError("1 validation error detected: 'roleArns' has %d members; at most %d are allowed", len(arns), maxProfileRoles)
	}
	for _, a := range arns {
		if len(a) > maxRoleARNChars {
			return validationError("1 validation error detected: a member of 'roleArns' is over %d characters", maxRoleARNChars)
		}
		if _, err := rolesanywhere.ParseRoleARN(a); err != nil {
			return &apiError{status: http.StatusBadRequest, code: "ValidationException",
				message: fmt.Sprintf("1 validation error detected: Value '%s' at 'roleArns' failed to satisfy constraint: Member must satisfy regular expression pattern: ^arn:aws(-[^:]+)?:iam(:.*){2}(:role.*)$", truncate(a)),
				rule:    err.Error()}
		}
	}
	return nil
}

func (e *Emulator) createProfile(c *raCall) (int, any, *apiError) {
	var in struct {
		profileFields
		Enabled                   *bool     `json:"enabled"`
		RequireInstanceProperties *bool     `json:"requireInstanceProperties"`
		Tags                      []jsonTag `json:"tags"`
	}
	if fail := decodeJSON(c.body, &in); fail != nil {
		return 0, nil, fail
	}
	if in.Name == nil {
		return 0, nil, validationError("1 validation error detected: Value null at 'name' failed to satisfy constraint: Member must not be null")
	}
	if in.RoleArns == nil {
		return 0, nil, validationError("1 validation error detected: Value null at 'roleArns' failed to satisfy constraint: Member must not be null")
	}
	if fail := in.check(); fail != nil {
		return 0, nil, fail
	}
	tags, fail := raTags(in.Tags)
	if fail != nil {
		return 0, nil, fail
	}
	id, err := e.newID()
	if err != nil {
		return 0, nil, internalError(err)
	}
	now := e.now().UTC()
	p := &Profile{Name: *in.Name, ID: id, ARN: e.st.arn("rolesanywhere", e.st.region, "profile/"+id),
		RoleARNs: slices.Clone(in.RoleArns), DurationSeconds: defaultDuration, ManagedPolicyARNs: slices.Clone(in.ManagedPolicyArns),
		AttributeMappings: defaultAttributeMappings(), CreatedBy: c.caller.arn(e), CreatedAt: now, UpdatedAt: now}
	if in.DurationSeconds != nil {
		p.DurationSeconds = *in.DurationSeconds
	}
	if in.SessionPolicy != nil {
		p.SessionPolicy = *in.SessionPolicy
	}
	if in.AcceptRoleSessionName != nil {
		p.AcceptRoleSessionName = *in.AcceptRoleSessionName
	}
	if in.RequireInstanceProperties != nil {
		p.RequireInstanceProperties = *in.RequireInstanceProperties
	}
	// Disabled unless asked: the API documents no default, and Terraform's
	// aws_rolesanywhere_profile sends enabled only when true and reads it
	// back into a non-computed attribute, which stays clean only if a
	// profile created without it is disabled. The seed's profiles are
	// enabled unless the seed says otherwise (docs/emulator.md).
	p.Enabled = in.Enabled != nil && *in.Enabled
	if fail := checkSessionPolicies(p); fail != nil {
		return 0, nil, fail
	}
	if err := e.st.update(func(r *resources) error {
		r.profiles[id] = p
		if len(tags) > 0 {
			r.tags[p.ARN] = tags
		}
		return nil
	}); err != nil {
		return 0, nil, asAPIError(err)
	}
	return http.StatusCreated, profileResponse{toJSONProfile(p)}, nil
}

// profileByID finds a profile by the id in a request's path.
func profileByID(r *resources, id string) (*Profile, *apiError) {
	return byID(r.profiles, id, "profile")
}

func (e *Emulator) getProfile(c *raCall) (int, any, *apiError) {
	p, fail := profileByID(e.st.snapshot(), c.params["id"])
	if fail != nil {
		return 0, nil, fail
	}
	return http.StatusOK, profileResponse{toJSONProfile(p)}, nil
}

func (e *Emulator) listProfiles(c *raCall) (int, any, *apiError) {
	items, next, fail := listPage(c, e.st.snapshot().profiles, func(v *Profile) (int64, string) { return v.CreatedAt.UnixNano(), v.ID }, toJSONProfile)
	if fail != nil {
		return 0, nil, fail
	}
	return http.StatusOK, struct {
		Profiles  []jsonProfile `json:"profiles"`
		NextToken string        `json:"nextToken,omitempty"`
	}{items, next}, nil
}

// changeProfile replaces the profile the request names with a copy that
// fn changed, and answers with it.
func (e *Emulator) changeProfile(c *raCall, fn func(p *Profile) *apiError) (int, any, *apiError) {
	var out *Profile
	err := e.st.update(func(r *resources) error {
		p, fail := profileByID(r, c.params["id"])
		if fail != nil {
			return fail
		}
		n := *p
		n.RoleARNs = slices.Clone(p.RoleARNs)
		n.ManagedPolicyARNs = slices.Clone(p.ManagedPolicyARNs)
		n.AttributeMappings = cloneMappings(p.AttributeMappings)
		if fail := fn(&n); fail != nil {
			return fail
		}
		n.UpdatedAt = e.now().UTC()
		r.profiles[n.ID] = &n
		out = &n
		return nil
	})
	if err != nil {
		return 0, nil, asAPIError(err)
	}
	return http.StatusOK, profileResponse{toJSONProfile(out)}, nil
}

func cloneMappings(in []AttributeMapping) []AttributeMapping {
	if in == nil {
		return nil
	}
	out := make([]AttributeMapping, len(in))
	for i, m := range in {
		out[i] = AttributeMapping{CertificateField: m.CertificateField, MappingRules: slices.Clone(m.MappingRules)}
	}
	return out
}

func (e *Emulator) updateProfile(c *raCall) (int, any, *apiError) {
	var in profileFields
	if fail := decodeJSON(c.body, &in); fail != nil {
		return 0, nil, fail
	}
	if fail := in.check(); fail != nil {
		return 0, nil, fail
	}
	return e.changeProfile(c, func(p *Profile) *apiError {
		if in.Name != nil {
			p.Name = *in.Name
		}
		if in.RoleArns != nil {
			p.RoleARNs = slices.Clone(in.RoleArns)
		}
		if in.DurationSeconds != nil {
			p.DurationSeconds = *in.DurationSeconds
		}
		if in.ManagedPolicyArns != nil {
			p.ManagedPolicyARNs = slices.Clone(in.ManagedPolicyArns)
		}
		if in.SessionPolicy != nil {
			p.SessionPolicy = *in.SessionPolicy
		}
		if in.AcceptRoleSessionName != nil {
			p.AcceptRoleSessionName = *in.AcceptRoleSessionName
		}
		return checkSessionPolicies(p)
	})
}

func (e *Emulator) deleteProfile(c *raCall) (int, any, *apiError) {
	var out *Profile
	err := e.st.update(func(r *resources) error {
		p, fail := profileByID(r, c.params["id"])
		if fail != nil {
			return fail
		}
		delete(r.profiles, p.ID)
		delete(r.tags, p.ARN)
		out = p
		return nil
	})
	if err != nil {
		return 0, nil, asAPIError(err)
	}
	return http.StatusOK, profileResponse{toJSONProfile(out)}, nil
}

func (e *Emulator) enableProfile(c *raCall) (int, any, *apiError) {
	return e.changeProfile(c, func(p *Profile) *apiError { p.Enabled = true; return nil })
}

func (e *Emulator) disableProfile(c *raCall) (int, any, *apiError) {
	return e.changeProfile(c, func(p *Profile) *apiError { p.Enabled = false; return nil })
}

// checkCertificateField checks a certificateField member.
func checkCertificateField(field string, given bool) *apiError {
	if !given {
		return validationError("1 validation error detected: Value null at 'certificateField' failed to satisfy constraint: Member must not be null")
	}
	if !slices.Contains(certificateFields, field) {
		return validationError("1 validation error detected: Value '%s' at 'certificateField' failed to satisfy constraint: Member must satisfy enum value set: [x509Subject, x509Issuer, x509SAN]", truncate(field))
	}
	return nil
}

// normalSpecifier returns a specifier as AWS records it: Name and Name/
// are shown as Name/* (user guide, default mapping behavior).
func normalSpecifier(field, s string) string {
	if field == "x509SAN" && (s == "Name" || s == "Name/") {
		return "Name/*"
	}
	return s
}

func (e *Emulator) putAttributeMapping(c *raCall) (int, any, *apiError) {
	var in struct {
		CertificateField *string       `json:"certificateField"`
		MappingRules     []MappingRule `json:"mappingRules"`
	}
	if fail := decodeJSON(c.body, &in); fail != nil {
		return 0, nil, fail
	}
	field := ""
	if in.CertificateField != nil {
		field = *in.CertificateField
	}
	if fail := checkCertificateField(field, in.CertificateField != nil); fail != nil {
		return 0, nil, fail
	}
	if in.MappingRules == nil {
		return 0, nil, validationError("1 validation error detected: Value null at 'mappingRules' failed to satisfy constraint: Member must not be null")
	}
	// AWS publishes no limit; a certificate field has a few dozen
	// attributes at most, so the emulator bounds what one put may store.
	if len(in.MappingRules) > maxMappingRules {
		return 0, nil, validationError("1 validation error detected: 'mappingRules' has %d rules; the keyless emulator takes at most %d per field", len(in.MappingRules), maxMappingRules)
	}
	var rules []MappingRule
	seen := map[string]bool{}
	for _, r := range in.MappingRules {
		// The API allows 0 to 60 characters; an empty specifier maps
		// nothing.
		if len(r.Specifier) > maxSpecifierChars {
			return 0, nil, validationError("1 validation error detected: a specifier in 'mappingRules' is over %d characters", maxSpecifierChars)
		}
		s := normalSpecifier(field, r.Specifier)
		if !seen[s] {
			seen[s] = true
			rules = append(rules, MappingRule{Specifier: s})
		}
	}
	return e.changeProfile(c, func(p *Profile) *apiError {
		// A put replaces the field's rules (Terraform's provider reconciles
		// a profile's mappings by deleting removed fields and putting
		// each remaining one whole, which only works if a put replaces).
		for i := range p.AttributeMappings {
			if p.AttributeMappings[i].CertificateField == field {
				p.AttributeMappings[i].MappingRules = rules
				return nil
			}
		}
		p.AttributeMappings = append(p.AttributeMappings, AttributeMapping{CertificateField: field, MappingRules: rules})
		return nil
	})
}

// maxMappingRules bounds one field's mapping rules (see putAttributeMapping).
const maxMappingRules = 200

func (e *Emulator) deleteAttributeMapping(c *raCall) (int, any, *apiError) {
	field := c.query.Get("certificateField")
	if fail := checkCertificateField(field, c.query.Has("certificateField")); fail != nil {
		return 0, nil, fail
	}
	var specifiers []string
	for _, s := range c.query["specifiers"] {
		specifiers = append(specifiers, normalSpecifier(field, s))
	}
	return e.changeProfile(c, func(p *Profile) *apiError {
		var kept []AttributeMapping
		for _, m := range p.AttributeMappings {
			if m.CertificateField != field {
				kept = append(kept, m)
				continue
			}
			if len(specifiers) == 0 {
				continue // the whole field
			}
			m.MappingRules = slices.DeleteFunc(m.MappingRules, func(r MappingRule) bool { return slices.Contains(specifiers, r.Specifier) })
			if len(m.MappingRules) > 0 {
				kept = append(kept, m)
			}
		}
		if kept == nil {
			kept = []AttributeMapping{}
		}
		p.AttributeMappings = kept
		return nil
	})
}
