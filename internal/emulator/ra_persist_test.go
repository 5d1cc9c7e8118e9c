package emulator_test

import (
	"encoding/base64"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestControlPlaneStateSurvivesRestart: profiles (with their mappings),
// CRLs, tags and notification settings are in the state file.
func TestControlPlaneStateSurvivesRestart(t *testing.T) {
	base := newEnv(t, setup{})
	path := filepath.Join(t.TempDir(), "state.json")
	e := base.withState(path)
	p := e.createProfile(map[string]any{"name": "kept", "roleArns": []string{e.out.Roles["ci-deployer"]}, "enabled": true,
		"sessionPolicy": `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}`, "tags": tagList("a", "b")})
	pid := p["profileId"].(string)
	e.mustRA(200, "DELETE", "/profiles/"+pid+"/mappings?certificateField=x509SAN", nil)
	e.mustRA(200, "DELETE", "/profiles/"+pid+"/mappings?certificateField=x509Issuer", nil)
	e.mustRA(200, "DELETE", "/profiles/"+pid+"/mappings?certificateField=x509Subject", nil)
	crl := e.mustRA(201, "POST", "/crls", map[string]any{"name": "kept", "enabled": true, "trustAnchorArn": e.out.TrustAnchors["gitlab-runner-ca"],
		"crlData": base64.StdEncoding.EncodeToString(e.inter.CRL(t)), "tags": tagList("c", "d")})["crl"].(map[string]any)
	e.mustRA(200, "PATCH", "/put-notifications-settings", map[string]any{"trustAnchorId": "3f7c1a0e-0000-4000-8000-000000000001",
		"notificationSettings": []map[string]any{{"enabled": false, "event": "CA_CERTIFICATE_EXPIRY"}}})

	before := map[string]any{
		"profile": e.mustRA(200, "GET", "/profile/"+pid, nil),
		"crl":     e.mustRA(200, "GET", "/crl/"+crl["crlId"].(string), nil),
		"anchor":  e.mustRA(200, "GET", "/trustanchor/3f7c1a0e-0000-4000-8000-000000000001", nil),
		"ptags":   e.listTags(p["profileArn"].(string)),
		"ctags":   e.listTags(crl["crlArn"].(string)),
	}
	if m := before["profile"].(map[string]any)["profile"].(map[string]any)["attributeMappings"].([]any); len(m) != 0 {
		t.Fatalf("mappings after deleting all: %v", m)
	}
	r := base.withState(path)
	after := map[string]any{
		"profile": r.mustRA(200, "GET", "/profile/"+pid, nil),
		"crl":     r.mustRA(200, "GET", "/crl/"+crl["crlId"].(string), nil),
		"anchor":  r.mustRA(200, "GET", "/trustanchor/3f7c1a0e-0000-4000-8000-000000000001", nil),
		"ptags":   r.listTags(p["profileArn"].(string)),
		"ctags":   r.listTags(crl["crlArn"].(string)),
	}
	if diff := cmp.Diff(before, after); diff != "" {
		t.Errorf("after restart (-before +after):\n%s", diff)
	}
	// With no mappings, no certificate attribute is a tag: the reference
	// trust policy's CN condition fails.
	if a := r.createSession(call{profile: p["profileArn"].(string)}); a.status != 403 {
		t.Errorf("session through a profile without mappings: %d %s", a.status, a.message)
	}
}
