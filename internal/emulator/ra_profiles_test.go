package emulator_test

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/keyless-dev/keyless/internal/sigv4"
)

// defaultMappings is what AWS's GetProfile shows for a new profile (user
// guide, "Certificate attribute mapping").
var defaultMappings = []any{
	map[string]any{"certificateField": "x509Issuer", "mappingRules": []any{map[string]any{"specifier": "*"}}},
	map[string]any{"certificateField": "x509SAN", "mappingRules": []any{map[string]any{"specifier": "DNS"}, map[string]any{"specifier": "URI"}, map[string]any{"specifier": "Name/*"}}},
	map[string]any{"certificateField": "x509Subject", "mappingRules": []any{map[string]any{"specifier": "*"}}},
}

const operatorARN = "arn:aws:iam::111122223333:user/admin"

// mustRA calls the control plane as the operator and fails the test
// unless the answer has status want.
func (e *env) mustRA(want int, method, path string, body any) map[string]any {
	e.t.Helper()
	status, out := e.ra(operator, method, path, body)
	if status != want {
		e.t.Fatalf("%s %s: %d %v, want %d", method, path, status, out, want)
	}
	return out
}

func (e *env) createProfile(body map[string]any) map[string]any {
	e.t.Helper()
	return e.mustRA(201, "POST", "/profiles", body)["profile"].(map[string]any)
}

func TestProfileLifecycle(t *testing.T) {
	e := newEnv(t, setup{})
	role := e.out.Roles["ci-deployer"]
	p := e.createProfile(map[string]any{"name": "api-profile", "roleArns": []string{role}})
	id := p["profileId"].(string)
	if p["enabled"] != false || p["durationSeconds"] != float64(3600) || p["createdBy"] != operatorARN ||
		p["acceptRoleSessionName"] != false || p["requireInstanceProperties"] != false ||
		p["profileArn"] != "arn:aws:rolesanywhere:us-east-1:111122223333:profile/"+id {
		t.Errorf("CreateProfile defaults: %v", p)
	}
	if diff := cmp.Diff(defaultMappings, p["attributeMappings"]); diff != "" {
		t.Errorf("attributeMappings (-want +got):\n%s", diff)
	}

	got := e.mustRA(200, "GET", "/profile/"+id, nil)["profile"].(map[string]any)
	if diff := cmp.Diff(p, got); diff != "" {
		t.Errorf("GetProfile differs from CreateProfile's answer:\n%s", diff)
	}

	policy := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}`
	e.advance(time.Second)
	u := e.mustRA(200, "PATCH", "/profile/"+id, map[string]any{"name": "renamed", "durationSeconds": 900, "sessionPolicy": policy,
		"managedPolicyArns": []string{"arn:aws:iam::aws:policy/ReadOnlyAccess"}, "acceptRoleSessionName": true})["profile"].(map[string]any)
	if u["name"] != "renamed" || u["durationSeconds"] != float64(900) || u["sessionPolicy"] != policy || u["acceptRoleSessionName"] != true ||
		u["roleArns"].([]any)[0] != role || u["updatedAt"] == u["createdAt"] || len(u["managedPolicyArns"].([]any)) != 1 {
		t.Errorf("UpdateProfile: %v", u)
	}

	if out := e.mustRA(200, "POST", "/profile/"+id+"/enable", nil); out["profile"].(map[string]any)["enabled"] != true {
		t.Errorf("EnableProfile: %v", out)
	}
	if out := e.mustRA(200, "POST", "/profile/"+id+"/disable", nil); out["profile"].(map[string]any)["enabled"] != false {
		t.Errorf("DisableProfile: %v", out)
	}

	// Mappings: a put replaces the field's rules; a delete removes
	// specifiers, or the whole field without them.
	out := e.mustRA(200, "PUT", "/profiles/"+id+"/mappings", map[string]any{"certificateField": "x509Subject",
		"mappingRules": []map[string]string{{"specifier": "CN"}, {"specifier": "OU"}}})
	ms := out["profile"].(map[string]any)["attributeMappings"].([]any)
	if diff := cmp.Diff(map[string]any{"certificateField": "x509Subject", "mappingRules": []any{map[string]any{"specifier": "CN"}, map[string]any{"specifier": "OU"}}}, ms[2]); diff != "" {
		t.Errorf("PutAttributeMapping:\n%s", diff)
	}
	out = e.mustRA(200, "DELETE", "/profiles/"+id+"/mappings?certificateField=x509Subject&specifiers=OU", nil)
	ms = out["profile"].(map[string]any)["attributeMappings"].([]any)
	if diff := cmp.Diff(map[string]any{"certificateField": "x509Subject", "mappingRules": []any{map[string]any{"specifier": "CN"}}}, ms[2]); diff != "" {
		t.Errorf("DeleteAttributeMapping OU:\n%s", diff)
	}
	out = e.mustRA(200, "DELETE", "/profiles/"+id+"/mappings?certificateField=x509Issuer", nil)
	if ms := out["profile"].(map[string]any)["attributeMappings"].([]any); len(ms) != 2 || ms[0].(map[string]any)["certificateField"] != "x509SAN" {
		t.Errorf("DeleteAttributeMapping x509Issuer: %v", ms)
	}
	out = e.mustRA(200, "PUT", "/profiles/"+id+"/mappings", map[string]any{"certificateField": "x509SAN", "mappingRules": []map[string]string{{"specifier": "Name"}}})
	if ms := out["profile"].(map[string]any)["attributeMappings"].([]any); ms[0].(map[string]any)["mappingRules"].([]any)[0].(map[string]any)["specifier"] != "Name/*" {
		t.Errorf("Name is recorded as Name/*: %v", ms)
	}

	// Lists: two pages of one, the seed's profile and this one.
	list := e.mustRA(200, "GET", "/profiles?pageSize=1", nil)
	if ps := list["profiles"].([]any); len(ps) != 1 || list["nextToken"] == nil {
		t.Fatalf("ListProfiles pageSize=1: %v", list)
	}
	first := list["profiles"].([]any)[0].(map[string]any)["profileId"]
	list = e.mustRA(200, "GET", "/profiles?pageSize=1&nextToken="+url.QueryEscape(list["nextToken"].(string)), nil)
	ps := list["profiles"].([]any)
	if len(ps) != 1 || list["nextToken"] != nil || (first != id && ps[0].(map[string]any)["profileId"] != id) || first == ps[0].(map[string]any)["profileId"] {
		t.Errorf("ListProfiles page 2: %v after %v", list, first)
	}

	if out := e.mustRA(200, "DELETE", "/profile/"+id, nil); out["profile"].(map[string]any)["profileId"] != id {
		t.Errorf("DeleteProfile: %v", out)
	}
	if status, out := e.ra(operator, "GET", "/profile/"+id, nil); status != 404 || out["__type"] != "ResourceNotFoundException" || !strings.Contains(out["message"].(string), "no profile with id "+id) {
		t.Errorf("GetProfile after delete: %d %v", status, out)
	}
}

// TestSeedProfileLikeCreated checks that the seed's profiles look as
// CreateProfile's do: createdBy, attribute mappings, member set.
func TestSeedProfileLikeCreated(t *testing.T) {
	e := newEnv(t, setup{})
	seedID := e.out.Profiles["homelab-profile"][strings.LastIndexByte(e.out.Profiles["homelab-profile"], '/')+1:]
	seed := e.mustRA(200, "GET", "/profile/"+seedID, nil)["profile"].(map[string]any)
	made := e.createProfile(map[string]any{"name": "homelab-profile", "roleArns": []string{e.out.Roles["ci-deployer"]}, "enabled": true})
	for _, k := range []string{"profileId", "profileArn", "createdAt", "updatedAt"} {
		if seed[k] == nil || made[k] == nil {
			t.Errorf("%s missing: seed %v, made %v", k, seed[k], made[k])
		}
		delete(seed, k)
		delete(made, k)
	}
	if diff := cmp.Diff(made, seed); diff != "" {
		t.Errorf("seed profile differs from a created one (-created +seed):\n%s", diff)
	}
}

func TestProfileRefusals(t *testing.T) {
	e := newEnv(t, setup{})
	role := e.out.Roles["ci-deployer"]
	id := e.createProfile(map[string]any{"name": "p", "roleArns": []string{role}})["profileId"].(string)
	many := make([]string, 51)
	for i := range many {
		many[i] = role
	}
	var tags []map[string]string
	for i := 0; i < 51; i++ {
		tags = append(tags, map[string]string{"key": "k" + strings.Repeat("x", i), "value": "v"})
	}
	for _, c := range []struct {
		name, method, path string
		body               any
		status             int
		code, contains     string
	}{
		{"name missing", "POST", "/profiles", map[string]any{"roleArns": []string{role}}, 400, "ValidationException", "'name'"},
		{"name with a slash", "POST", "/profiles", map[string]any{"name": "a/b", "roleArns": []string{role}}, 400, "ValidationException", "'name'"},
		{"roleArns missing", "POST", "/profiles", map[string]any{"name": "p"}, 400, "ValidationException", "'roleArns'"},
		{"role ARN of a user", "POST", "/profiles", map[string]any{"name": "p", "roleArns": []string{"arn:aws:iam::111122223333:user/bob"}}, 400, "ValidationException", "'roleArns'"},
		{"51 roles", "POST", "/profiles", map[string]any{"name": "p", "roleArns": many}, 400, "ValidationException", "at most 50"},
		{"duration 899", "POST", "/profiles", map[string]any{"name": "p", "roleArns": []string{role}, "durationSeconds": 899}, 400, "ValidationException", "'durationSeconds'"},
		{"duration 43201", "PATCH", "/profile/" + id, map[string]any{"durationSeconds": 43201}, 400, "ValidationException", "'durationSeconds'"},
		{"managed policy not a policy ARN", "POST", "/profiles", map[string]any{"name": "p", "roleArns": []string{role}, "managedPolicyArns": []string{role}}, 400, "ValidationException", "Invalid managed policy ARN"},
		{"51 managed policies", "PATCH", "/profile/" + id, map[string]any{"managedPolicyArns": many}, 400, "ValidationException", "'managedPolicyArns'"},
		{"session policy not a policy", "POST", "/profiles", map[string]any{"name": "p", "roleArns": []string{role}, "sessionPolicy": `{"Statement":"x"}`}, 400, "ValidationException", "Invalid session policy"},
		{"session policy not JSON", "PATCH", "/profile/" + id, map[string]any{"sessionPolicy": strings.Repeat(" ", 2049)}, 400, "ValidationException", "Invalid session policy"},
		{"tags over the per-resource limit", "POST", "/profiles", map[string]any{"name": "p", "roleArns": []string{role}, "tags": tags}, 400, "TooManyTagsException", "at most 50"},
		{"unknown profile", "GET", "/profile/00000000-0000-4000-8000-000000000000", nil, 404, "ResourceNotFoundException", "no profile with id"},
		{"update unknown profile", "PATCH", "/profile/00000000-0000-4000-8000-000000000000", map[string]any{"name": "x"}, 404, "ResourceNotFoundException", "no profile with id"},
		{"enable unknown profile", "POST", "/profile/00000000-0000-4000-8000-000000000000/enable", nil, 404, "ResourceNotFoundException", "no profile with id"},
		{"delete unknown profile", "DELETE", "/profile/00000000-0000-4000-8000-000000000000", nil, 404, "ResourceNotFoundException", "no profile with id"},
		{"mapping field unknown", "PUT", "/profiles/" + id + "/mappings", map[string]any{"certificateField": "x509Foo", "mappingRules": []map[string]string{{"specifier": "CN"}}}, 400, "ValidationException", "'certificateField'"},
		{"mapping rules missing", "PUT", "/profiles/" + id + "/mappings", map[string]any{"certificateField": "x509Subject"}, 400, "ValidationException", "'mappingRules'"},
		{"mapping rules over the emulator's bound", "PUT", "/profiles/" + id + "/mappings", map[string]any{"certificateField": "x509Subject", "mappingRules": manyRules(201)}, 400, "ValidationException", "at most 200"},
		{"mapping specifier of 61 characters", "PUT", "/profiles/" + id + "/mappings", map[string]any{"certificateField": "x509Subject", "mappingRules": []map[string]string{{"specifier": strings.Repeat("C", 61)}}}, 400, "ValidationException", "specifier"},
		{"role ARN over 1011 characters", "POST", "/profiles", map[string]any{"name": "p", "roleArns": []string{role + strings.Repeat("x", 1011)}}, 400, "ValidationException", "over 1011"},
		{"managed policy ARN over 200 characters", "POST", "/profiles", map[string]any{"name": "p", "roleArns": []string{role}, "managedPolicyArns": []string{"arn:aws:iam::aws:policy/" + strings.Repeat("x", 200)}}, 400, "ValidationException", "1 to 200"},
		{"pageSize 51", "GET", "/profiles?pageSize=51", nil, 400, "ValidationException", "pageSize"},
		{"delete mapping without field", "DELETE", "/profiles/" + id + "/mappings", nil, 400, "ValidationException", "'certificateField'"},
		{"not JSON", "POST", "/profiles", "{", 400, "SerializationException", "JSON"},
		{"wrong method", "PUT", "/profile/" + id, nil, 404, "UnknownOperationException", "does not take PUT"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var status int
			var out map[string]any
			if s, ok := c.body.(string); ok {
				status, out = e.raRaw(operator, c.method, c.path, s)
			} else {
				status, out = e.ra(operator, c.method, c.path, c.body)
			}
			msg, _ := out["message"].(string)
			if status != c.status || out["__type"] != c.code || !strings.Contains(msg, c.contains) {
				t.Errorf("%d %v, want %d %s containing %q", status, out, c.status, c.code, c.contains)
			}
		})
	}
}

// raRaw sends body as is.
func (e *env) raRaw(creds sigv4.Credentials, method, path, body string) (int, map[string]any) {
	e.t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if err := sigv4.SignHMAC(req, []byte(body), creds, "us-east-1", "rolesanywhere", e.now()); err != nil {
		e.t.Fatal(err)
	}
	return e.doJSON(req)
}

// TestControlPlaneRefusesSessionCredentials: credentials from
// CreateSession carry a role, not an operator, and may not change what
// the emulator serves.
func TestControlPlaneRefusesSessionCredentials(t *testing.T) {
	e := newEnv(t, setup{})
	a := e.createSession(call{})
	if a.status != 201 {
		t.Fatalf("CreateSession: %d %s", a.status, a.message)
	}
	c := a.session.CredentialSet[0].Credentials
	creds := sigv4.Credentials{AccessKeyID: c.AccessKeyID, SecretAccessKey: c.SecretAccessKey, SessionToken: c.SessionToken}
	for _, op := range []struct{ method, path string }{{"GET", "/profiles"}, {"POST", "/profiles"}, {"GET", "/trustanchors"}, {"GET", "/crls"}, {"POST", "/TagResource"}} {
		status, out := e.ra(creds, op.method, op.path, map[string]any{})
		msg, _ := out["message"].(string)
		if status != 403 || out["__type"] != "AccessDeniedException" || !strings.Contains(msg, "session credentials may not") {
			t.Errorf("%s %s with session credentials: %d %v", op.method, op.path, status, out)
		}
	}
}

// TestProfileMappingsApplyToSessions: the reference trust policy needs
// aws:PrincipalTag/x509Subject/CN, which only a profile mapping the
// subject's CN provides.
func TestProfileMappingsApplyToSessions(t *testing.T) {
	e := newEnv(t, setup{})
	arn := e.out.Profiles["homelab-profile"]
	id := arn[strings.LastIndexByte(arn, '/')+1:]
	e.mustRA(200, "PUT", "/profiles/"+id+"/mappings", map[string]any{"certificateField": "x509Subject", "mappingRules": []map[string]string{{"specifier": "OU"}}})
	if a := e.createSession(call{}); a.status != 403 || !strings.Contains(a.message, "x509Subject/CN") {
		t.Errorf("subject CN not mapped: %d %s", a.status, a.message)
	}
	e.mustRA(200, "PUT", "/profiles/"+id+"/mappings", map[string]any{"certificateField": "x509Subject", "mappingRules": []map[string]string{{"specifier": "CN"}}})
	if a := e.createSession(call{}); a.status != 201 {
		t.Errorf("subject CN mapped: %d %s", a.status, a.message)
	}
}

// manyRules makes n distinct mapping rules.
func manyRules(n int) []map[string]string {
	out := make([]map[string]string, n)
	for i := range out {
		out[i] = map[string]string{"specifier": fmt.Sprintf("2.5.4.%d", 1000+i)}
	}
	return out
}
