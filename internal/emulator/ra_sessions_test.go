package emulator_test

import (
	"encoding/base64"
	"math/big"
	"net/url"
	"strings"
	"testing"

	"github.com/keyless-dev/keyless/internal/pki/pkitest"
)

// trustPolicyFor is the reference trust policy for an anchor's ARN.
func trustPolicyFor(anchorARN string) string {
	return `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"rolesanywhere.amazonaws.com"},` +
		`"Action":["sts:AssumeRole","sts:TagSession","sts:SetSourceIdentity"],` +
		`"Condition":{"ArnEquals":{"aws:SourceArn":"` + anchorARN + `"},"StringEquals":{"aws:PrincipalTag/x509Subject/CN":"gitlab-runner"}}}]}`
}

func (e *env) createRoleWithPolicy(name, policy string) string {
	e.t.Helper()
	status, body := e.iam(operator, url.Values{"Action": {"CreateRole"}, "RoleName": {name}, "AssumeRolePolicyDocument": {policy}})
	if status != 200 {
		e.t.Fatalf("CreateRole %s: %d %s", name, status, body)
	}
	return "arn:aws:iam::111122223333:role/" + name
}

// TestSessionThroughAPIResources: resources made only through the control
// plane serve CreateSession at once, and every check refuses with its
// rule.
func TestSessionThroughAPIResources(t *testing.T) {
	e := newEnv(t, setup{})
	ta := e.mustRA(201, "POST", "/trustanchors", map[string]any{"name": "api-anchor", "enabled": true,
		"source": map[string]any{"sourceType": "CERTIFICATE_BUNDLE", "sourceData": map[string]any{"x509CertificateData": string(pemCert(e.root))}}})["trustAnchor"].(map[string]any)
	anchorARN, anchorID := ta["trustAnchorArn"].(string), ta["trustAnchorId"].(string)
	role := e.createRoleWithPolicy("api-role", trustPolicyFor(anchorARN))
	otherRole := e.createRoleWithPolicy("trusts-other", trustPolicyFor(e.out.TrustAnchors["other-ca"]))
	outsider := e.createRoleWithPolicy("not-in-profile-api", trustPolicyFor(anchorARN))
	p := e.createProfile(map[string]any{"name": "api-profile", "enabled": true, "roleArns": []string{role, otherRole}})
	profileARN, profileID := p["profileArn"].(string), p["profileId"].(string)

	base := call{ta: anchorARN, profile: profileARN, role: role}
	if a := e.createSession(base); a.status != 201 || a.session.CredentialSet[0].RoleArn != role {
		t.Fatalf("session through API resources: %d %s", a.status, a.message)
	}

	wrongCNKey := pkitest.Key(t, pkitest.P256)
	wrongCN := base
	wrongCN.key, wrongCN.leaf = wrongCNKey, e.leaf(pkitest.LeafOptions{Key: wrongCNKey, CommonName: "someone-else"})
	otherAnchor := base
	otherAnchor.role = otherRole
	notInProfile := base
	notInProfile.role = outsider

	revokedKey := pkitest.Key(t, pkitest.P256)
	revokedSerial := big.NewInt(0x7e7e)
	revoked := base
	revoked.key, revoked.leaf = revokedKey, e.leaf(pkitest.LeafOptions{Key: revokedKey, Serial: revokedSerial})

	for _, c := range []struct {
		name   string
		call   call
		before func()
		after  func()
		want   string
	}{
		{name: "wrong CN", call: wrongCN, want: "trust policy of role api-role"},
		{name: "role trusts another anchor", call: otherAnchor, want: "trust policy of role trusts-other"},
		{name: "role not in profile", call: notInProfile, want: "is not in profile api-profile"},
		{name: "anchor disabled", call: base, want: "trust anchor api-anchor",
			before: func() { e.mustRA(200, "POST", "/trustanchor/"+anchorID+"/disable", nil) },
			after:  func() { e.mustRA(200, "POST", "/trustanchor/"+anchorID+"/enable", nil) }},
		{name: "profile disabled", call: base, want: "profile api-profile",
			before: func() { e.mustRA(200, "POST", "/profile/"+profileID+"/disable", nil) },
			after:  func() { e.mustRA(200, "POST", "/profile/"+profileID+"/enable", nil) }},
		{name: "certificate revoked by an imported CRL", call: revoked, want: "revoked by CRL api-crl of trust anchor api-anchor",
			before: func() {
				id := e.mustRA(201, "POST", "/crls", map[string]any{"name": "api-crl", "trustAnchorArn": anchorARN,
					"crlData": base64.StdEncoding.EncodeToString(e.inter.CRL(t, revokedSerial))})["crl"].(map[string]any)["crlId"].(string)
				e.mustRA(200, "POST", "/crl/"+id+"/enable", nil)
			}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.before != nil {
				c.before()
			}
			a := e.createSession(c.call)
			if a.status != 403 || a.code != "AccessDeniedException" || !strings.Contains(a.message, c.want) {
				t.Errorf("%d %s %q, want 403 AccessDeniedException naming %q", a.status, a.code, a.message, c.want)
			}
			if c.after != nil {
				c.after()
				if a := e.createSession(base); a.status != 201 {
					t.Errorf("after undoing: %d %s", a.status, a.message)
				}
			}
		})
	}
}
