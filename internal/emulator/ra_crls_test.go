package emulator_test

import (
	"encoding/base64"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"

	"github.com/keyless-dev/keyless/internal/pki/pkitest"
)

func pemCRL(der []byte) string {
	return base64.StdEncoding.EncodeToString(pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der}))
}

// TestImportedCRLRevokes: a CRL imported through the API is inert until
// enabled; enabled, it refuses the certificate it lists, naming itself;
// disabled again, the certificate works.
func TestImportedCRLRevokes(t *testing.T) {
	e := newEnv(t, setup{})
	serial := big.NewInt(0x5eed)
	leafKey := pkitest.Key(t, pkitest.P256)
	leaf := e.leaf(pkitest.LeafOptions{Key: leafKey, Serial: serial})
	session := func() answer { return e.createSession(call{key: leafKey, leaf: leaf}) }

	der := e.inter.CRL(t, serial)
	crl := e.mustRA(201, "POST", "/crls", map[string]any{"name": "runner-int-crl", "crlData": pemCRL(der),
		"trustAnchorArn": e.out.TrustAnchors["gitlab-runner-ca"]})["crl"].(map[string]any)
	id := crl["crlId"].(string)
	if crl["enabled"] != false || crl["name"] != "runner-int-crl" || crl["trustAnchorArn"] != e.out.TrustAnchors["gitlab-runner-ca"] ||
		crl["crlArn"] != "arn:aws:rolesanywhere:us-east-1:111122223333:crl/"+id || crl["crlData"] != pemCRL(der) {
		t.Errorf("ImportCrl: %v", crl)
	}
	if a := session(); a.status != 201 {
		t.Fatalf("with the CRL disabled: %d %s", a.status, a.message)
	}

	e.mustRA(200, "POST", "/crl/"+id+"/enable", nil)
	if a := session(); a.status != 403 || a.code != "AccessDeniedException" || !strings.Contains(a.message, "revoked by CRL runner-int-crl of trust anchor gitlab-runner-ca") {
		t.Errorf("with the CRL enabled: %d %s %s", a.status, a.code, a.message)
	}
	if a := e.createSession(call{}); a.status != 201 {
		t.Errorf("another certificate with the CRL enabled: %d %s", a.status, a.message)
	}

	e.mustRA(200, "POST", "/crl/"+id+"/disable", nil)
	if a := session(); a.status != 201 {
		t.Errorf("with the CRL disabled again: %d %s", a.status, a.message)
	}

	// UpdateCrl replaces the list: enabled, an empty list revokes nothing.
	e.mustRA(200, "POST", "/crl/"+id+"/enable", nil)
	u := e.mustRA(200, "PATCH", "/crl/"+id, map[string]any{"name": "renamed", "crlData": base64.StdEncoding.EncodeToString(e.inter.CRL(t))})["crl"].(map[string]any)
	if u["name"] != "renamed" || u["enabled"] != true {
		t.Errorf("UpdateCrl: %v", u)
	}
	if a := session(); a.status != 201 {
		t.Errorf("after UpdateCrl with an empty list: %d %s", a.status, a.message)
	}

	if got := e.mustRA(200, "GET", "/crl/"+id, nil)["crl"].(map[string]any); got["name"] != "renamed" {
		t.Errorf("GetCrl: %v", got)
	}
	if list := e.mustRA(200, "GET", "/crls", nil); len(list["crls"].([]any)) != 1 {
		t.Errorf("ListCrls: %v", list)
	}
	e.mustRA(200, "DELETE", "/crl/"+id, nil)
	if status, out := e.ra(operator, "GET", "/crl/"+id, nil); status != 404 || out["__type"] != "ResourceNotFoundException" {
		t.Errorf("GetCrl after delete: %d %v", status, out)
	}
}

func TestImportCRLEnabledAndDeletedWithAnchor(t *testing.T) {
	e := newEnv(t, setup{})
	serial := big.NewInt(0xbad)
	leafKey := pkitest.Key(t, pkitest.P256)
	leaf := e.leaf(pkitest.LeafOptions{Key: leafKey, Serial: serial})
	ta := e.mustRA(201, "POST", "/trustanchors", map[string]any{"name": "second", "enabled": true, "source": map[string]any{"sourceType": "CERTIFICATE_BUNDLE",
		"sourceData": map[string]any{"x509CertificateData": string(pemCert(e.root))}}})["trustAnchor"].(map[string]any)
	crl := e.mustRA(201, "POST", "/crls", map[string]any{"name": "now", "enabled": true, "crlData": base64.StdEncoding.EncodeToString(e.inter.CRL(t, serial)),
		"trustAnchorArn": ta["trustAnchorArn"]})["crl"].(map[string]any)
	if crl["enabled"] != true {
		t.Errorf("ImportCrl enabled: %v", crl)
	}
	// The CRL is the other anchor's: gitlab-runner-ca still accepts.
	if a := e.createSession(call{key: leafKey, leaf: leaf}); a.status != 201 {
		t.Errorf("through gitlab-runner-ca: %d %s", a.status, a.message)
	}
	e.mustRA(200, "DELETE", "/trustanchor/"+ta["trustAnchorId"].(string), nil)
	if status, _ := e.ra(operator, "GET", "/crl/"+crl["crlId"].(string), nil); status != 404 {
		t.Errorf("the anchor's CRL outlived it: %d", status)
	}
}

func TestCRLRefusals(t *testing.T) {
	e := newEnv(t, setup{})
	anchor := e.out.TrustAnchors["gitlab-runner-ca"]
	good := base64.StdEncoding.EncodeToString(e.inter.CRL(t))
	impostor := pkitest.NewRootWithKey(t, "runner-root", pkitest.Key(t, "p256#impostor"))
	forged := base64.StdEncoding.EncodeToString(impostor.CRL(t))
	id := e.mustRA(201, "POST", "/crls", map[string]any{"name": "c", "crlData": good, "trustAnchorArn": anchor})["crl"].(map[string]any)["crlId"].(string)
	big := base64.StdEncoding.EncodeToString(make([]byte, 300_001))
	for _, c := range []struct {
		name, method, path string
		body               any
		status             int
		code, contains     string
	}{
		{"name missing", "POST", "/crls", map[string]any{"crlData": good, "trustAnchorArn": anchor}, 400, "ValidationException", "'name'"},
		{"anchor missing", "POST", "/crls", map[string]any{"name": "c", "crlData": good}, 400, "ValidationException", "'trustAnchorArn'"},
		{"anchor ARN of a profile", "POST", "/crls", map[string]any{"name": "c", "crlData": good, "trustAnchorArn": e.out.Profiles["homelab-profile"]}, 400, "ValidationException", "'trustAnchorArn'"},
		{"anchor unknown", "POST", "/crls", map[string]any{"name": "c", "crlData": good, "trustAnchorArn": strings.Replace(anchor, "0001", "0999", 1)}, 404, "ResourceNotFoundException", "no trust anchor"},
		{"data missing", "POST", "/crls", map[string]any{"name": "c", "trustAnchorArn": anchor}, 400, "ValidationException", "'crlData'"},
		{"data over 300,000 bytes", "POST", "/crls", map[string]any{"name": "c", "crlData": big, "trustAnchorArn": anchor}, 400, "ValidationException", "300000"},
		{"data not a CRL", "POST", "/crls", map[string]any{"name": "c", "crlData": base64.StdEncoding.EncodeToString([]byte("nope")), "trustAnchorArn": anchor}, 400, "ValidationException", "not a CRL"},
		{"data not base64", "POST", "/crls", map[string]any{"name": "c", "crlData": "%%%", "trustAnchorArn": anchor}, 400, "SerializationException", "JSON"},
		{"signed by an impostor of the bundle's CA", "POST", "/crls", map[string]any{"name": "c", "crlData": forged, "trustAnchorArn": anchor}, 400, "ValidationException", "signature does not verify"},
		{"update to a forged list", "PATCH", "/crl/" + id, map[string]any{"crlData": forged}, 400, "ValidationException", "signature does not verify"},
		{"update name with a slash", "PATCH", "/crl/" + id, map[string]any{"name": "a/b"}, 400, "ValidationException", "'name'"},
		{"unknown CRL", "GET", "/crl/00000000-0000-4000-8000-000000000000", nil, 404, "ResourceNotFoundException", "no CRL with id"},
		{"enable unknown CRL", "POST", "/crl/00000000-0000-4000-8000-000000000000/enable", nil, 404, "ResourceNotFoundException", "no CRL with id"},
		{"delete unknown CRL", "DELETE", "/crl/00000000-0000-4000-8000-000000000000", nil, 404, "ResourceNotFoundException", "no CRL with id"},
	} {
		t.Run(c.name, func(t *testing.T) {
			status, out := e.ra(operator, c.method, c.path, c.body)
			msg, _ := out["message"].(string)
			if status != c.status || out["__type"] != c.code || !strings.Contains(msg, c.contains) {
				t.Errorf("%d %v, want %d %s containing %q", status, out, c.status, c.code, c.contains)
			}
		})
	}
}

func pemCert(ca *pkitest.CA) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Cert.Raw})
}
