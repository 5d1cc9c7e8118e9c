package emulator_test

import (
	"encoding/base64"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func (e *env) listTags(arn string) []any {
	e.t.Helper()
	return e.mustRA(200, "GET", "/ListTagsForResource?resourceArn="+url.QueryEscape(arn), nil)["tags"].([]any)
}

func tagList(kv ...string) []any {
	var out []any
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, map[string]any{"key": kv[i], "value": kv[i+1]})
	}
	return out
}

func TestTags(t *testing.T) {
	e := newEnv(t, setup{})
	ta := e.mustRA(201, "POST", "/trustanchors", map[string]any{"name": "tagged", "tags": tagList("team", "ci"),
		"source": map[string]any{"sourceType": "CERTIFICATE_BUNDLE", "sourceData": map[string]any{"x509CertificateData": string(pemCert(e.root))}}})["trustAnchor"].(map[string]any)
	p := e.createProfile(map[string]any{"name": "tagged", "roleArns": []string{e.out.Roles["ci-deployer"]}, "tags": tagList("team", "ci")})
	crl := e.mustRA(201, "POST", "/crls", map[string]any{"name": "tagged", "crlData": base64.StdEncoding.EncodeToString(e.inter.CRL(t)),
		"trustAnchorArn": ta["trustAnchorArn"], "tags": tagList("team", "ci")})["crl"].(map[string]any)
	arns := map[string]string{"anchor": ta["trustAnchorArn"].(string), "profile": p["profileArn"].(string), "crl": crl["crlArn"].(string),
		"seed anchor": e.out.TrustAnchors["gitlab-runner-ca"]}
	for what, arn := range arns {
		t.Run(what, func(t *testing.T) {
			want := tagList("team", "ci")
			if what == "seed anchor" {
				want = []any{}
			}
			if diff := cmp.Diff(want, e.listTags(arn)); diff != "" {
				t.Errorf("tags at creation:\n%s", diff)
			}
			if status, out := e.ra(operator, "POST", "/TagResource", map[string]any{"resourceArn": arn, "tags": tagList("team", "ops", "env", "lab")}); status != 201 || len(out) != 0 {
				t.Fatalf("TagResource: %d %v", status, out)
			}
			if diff := cmp.Diff(tagList("team", "ops", "env", "lab"), e.listTags(arn)); diff != "" {
				t.Errorf("after TagResource (-want +got):\n%s", diff)
			}
			e.mustRA(200, "POST", "/UntagResource", map[string]any{"resourceArn": arn, "tagKeys": []string{"team", "absent"}})
			if diff := cmp.Diff(tagList("env", "lab"), e.listTags(arn)); diff != "" {
				t.Errorf("after UntagResource:\n%s", diff)
			}
		})
	}

	// A resource's tags go with it.
	e.mustRA(200, "DELETE", "/profile/"+p["profileId"].(string), nil)
	if status, out := e.ra(operator, "GET", "/ListTagsForResource?resourceArn="+url.QueryEscape(arns["profile"]), nil); status != 404 || out["__type"] != "ResourceNotFoundException" {
		t.Errorf("tags of a deleted profile: %d %v", status, out)
	}
}

func TestTagRefusals(t *testing.T) {
	e := newEnv(t, setup{})
	arn := e.out.TrustAnchors["gitlab-runner-ca"]
	var fifty []any
	for i := 0; i < 50; i++ {
		fifty = append(fifty, map[string]any{"key": fmt.Sprintf("k%d", i), "value": "v"})
	}
	e.mustRA(201, "POST", "/TagResource", map[string]any{"resourceArn": arn, "tags": fifty})
	var many []any
	for i := 0; i < 201; i++ {
		many = append(many, map[string]any{"key": fmt.Sprintf("m%d", i), "value": "v"})
	}
	unknown := strings.Replace(arn, "0001", "0999", 1)
	for _, c := range []struct {
		name, method, path string
		body               any
		status             int
		code, contains     string
	}{
		{"a 51st tag", "POST", "/TagResource", map[string]any{"resourceArn": arn, "tags": tagList("one", "more")}, 400, "TooManyTagsException", "would have 51 tags"},
		{"over 200 in one request", "POST", "/TagResource", map[string]any{"resourceArn": arn, "tags": many}, 400, "ValidationException", "at most 200"},
		{"unknown ARN", "POST", "/TagResource", map[string]any{"resourceArn": unknown, "tags": tagList("a", "b")}, 404, "ResourceNotFoundException", "no trust anchor, profile or CRL"},
		{"ARN of a role", "GET", "/ListTagsForResource?resourceArn=" + url.QueryEscape(e.out.Roles["ci-deployer"]), nil, 404, "ResourceNotFoundException", "no trust anchor, profile or CRL"},
		{"list without ARN", "GET", "/ListTagsForResource", nil, 400, "ValidationException", "'resourceArn'"},
		{"untag unknown ARN", "POST", "/UntagResource", map[string]any{"resourceArn": unknown, "tagKeys": []string{"a"}}, 404, "ResourceNotFoundException", "no trust anchor, profile or CRL"},
		{"tags missing", "POST", "/TagResource", map[string]any{"resourceArn": arn}, 400, "ValidationException", "'tags'"},
		{"tagKeys missing", "POST", "/UntagResource", map[string]any{"resourceArn": arn}, 400, "ValidationException", "'tagKeys'"},
		{"over 200 keys to remove", "POST", "/UntagResource", map[string]any{"resourceArn": arn, "tagKeys": make([]string, 201)}, 400, "ValidationException", "at most 200"},
		{"resourceArn over 1011 characters", "POST", "/TagResource", map[string]any{"resourceArn": arn + strings.Repeat("x", 1011), "tags": tagList("a", "b")}, 400, "ValidationException", "'resourceArn'"},
		{"empty tag key to remove", "POST", "/UntagResource", map[string]any{"resourceArn": arn, "tagKeys": []string{""}}, 400, "ValidationException", "'tagKeys'"},
		{"aws: prefix", "POST", "/TagResource", map[string]any{"resourceArn": arn, "tags": tagList("aws:x", "y")}, 400, "ValidationException", "aws:"},
		{"key twice", "POST", "/TagResource", map[string]any{"resourceArn": arn, "tags": tagList("k0", "a", "k0", "b")}, 400, "ValidationException", "given twice"},
		{"value too long", "POST", "/TagResource", map[string]any{"resourceArn": arn, "tags": tagList("k0", strings.Repeat("v", 257))}, 400, "ValidationException", "at most 256"},
		{"create over 50 tags", "POST", "/profiles", map[string]any{"name": "p", "roleArns": []string{e.out.Roles["ci-deployer"]}, "tags": append(fifty, map[string]any{"key": "x", "value": "y"})}, 400, "TooManyTagsException", "would have 51"},
	} {
		t.Run(c.name, func(t *testing.T) {
			status, out := e.ra(operator, c.method, c.path, c.body)
			msg, _ := out["message"].(string)
			if status != c.status || out["__type"] != c.code || !strings.Contains(msg, c.contains) {
				t.Errorf("%d %v, want %d %s containing %q", status, out, c.status, c.code, c.contains)
			}
		})
	}
	// Overwriting an existing key is not a 51st tag.
	e.mustRA(201, "POST", "/TagResource", map[string]any{"resourceArn": arn, "tags": tagList("k0", "new")})
}
