package emulator_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/keyless-dev/keyless/internal/pki"
	"github.com/keyless-dev/keyless/internal/sigv4"
)

// The test environment's operator key (see newEnv's seed).
const (
	operatorKeyID  = "AKIAKEYLESSTESTOPER1"
	operatorSecret = "keyless-test-operator-secret-0000000000"
)

var operator = sigv4.Credentials{AccessKeyID: operatorKeyID, SecretAccessKey: operatorSecret}

// ra calls the Roles Anywhere control plane as creds, with body (nil for
// none) encoded as JSON, and returns the status and the decoded answer
// (with "__type" set from X-Amzn-ErrorType on errors).
func (e *env) ra(creds sigv4.Credentials, method, path string, body any) (int, map[string]any) {
	e.t.Helper()
	var data []byte
	if body != nil {
		var err error
		if data, err = json.Marshal(body); err != nil {
			e.t.Fatal(err)
		}
	}
	req, err := http.NewRequest(method, e.srv.URL+path, strings.NewReader(string(data)))
	if err != nil {
		e.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if err := sigv4.SignHMAC(req, data, creds, "us-east-1", "rolesanywhere", e.now()); err != nil {
		e.t.Fatal(err)
	}
	return e.doJSON(req)
}

func (e *env) doJSON(req *http.Request) (int, map[string]any) {
	e.t.Helper()
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	out := map[string]any{}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &out); err != nil {
			e.t.Fatalf("%s %s: %d, not JSON: %s", req.Method, req.URL.Path, resp.StatusCode, raw)
		}
	}
	if t := resp.Header.Get("X-Amzn-ErrorType"); t != "" {
		out["__type"] = t
	}
	return resp.StatusCode, out
}

// iam calls IAM's Query API as creds and returns the status and body.
func (e *env) iam(creds sigv4.Credentials, params url.Values) (int, string) {
	e.t.Helper()
	params.Set("Version", "2010-05-08")
	data := params.Encode()
	req, err := http.NewRequest(http.MethodPost, e.srv.URL+"/", strings.NewReader(data))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	if err := sigv4.SignHMAC(req, []byte(data), creds, "us-east-1", "iam", e.now()); err != nil {
		e.t.Fatal(err)
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(raw)
}

func TestControlPlaneTrustAnchorAndRole(t *testing.T) {
	e := newEnv(t, setup{})
	bundle := string(pki.EncodeCertificates(e.root.Cert))
	status, out := e.ra(operator, "POST", "/trustanchors", map[string]any{
		"name": "made-by-api", "source": map[string]any{"sourceType": "CERTIFICATE_BUNDLE", "sourceData": map[string]any{"x509CertificateData": bundle}},
		"tags": []map[string]string{{"key": "team", "value": "ci"}}})
	if status != 201 {
		t.Fatalf("CreateTrustAnchor: %d %v", status, out)
	}
	ta := out["trustAnchor"].(map[string]any)
	id := ta["trustAnchorId"].(string)
	if ta["enabled"] != true || !strings.HasSuffix(ta["trustAnchorArn"].(string), ":trust-anchor/"+id) {
		t.Errorf("CreateTrustAnchor answer: %v", ta)
	}
	if status, out := e.ra(operator, "POST", "/trustanchor/"+id+"/disable", nil); status != 200 || out["trustAnchor"].(map[string]any)["enabled"] != false {
		t.Errorf("DisableTrustAnchor: %d %v", status, out)
	}
	if status, out := e.ra(operator, "GET", "/trustanchors?pageSize=1", nil); status != 200 || len(out["trustAnchors"].([]any)) != 1 || out["nextToken"] == nil {
		t.Errorf("ListTrustAnchors pageSize=1: %d %v", status, out)
	}

	status, body := e.iam(operator, url.Values{"Action": {"CreateRole"}, "RoleName": {"made-by-api"},
		"AssumeRolePolicyDocument": {`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"rolesanywhere.amazonaws.com"},"Action":["sts:AssumeRole","sts:TagSession","sts:SetSourceIdentity"]}]}`}})
	if status != 200 || !strings.Contains(body, "<RoleName>made-by-api</RoleName>") {
		t.Fatalf("CreateRole: %d %s", status, body)
	}
	if status, body := e.iam(operator, url.Values{"Action": {"GetRole"}, "RoleName": {"MADE-BY-API"}}); status != 200 || !strings.Contains(body, "<Arn>arn:aws:iam::111122223333:role/made-by-api</Arn>") {
		t.Errorf("GetRole: %d %s", status, body)
	}
}

func TestControlPlaneRefusals(t *testing.T) {
	e := newEnv(t, setup{})
	wrongSecret := sigv4.Credentials{AccessKeyID: operatorKeyID, SecretAccessKey: "not-the-secret-000000000000"}
	unknown := sigv4.Credentials{AccessKeyID: "AKIAUNKNOWNKEY000000", SecretAccessKey: operatorSecret}
	for _, c := range []struct {
		name     string
		creds    sigv4.Credentials
		status   int
		raType   string
		iamCode  string
		contains string
	}{
		{"bad signature", wrongSecret, 403, "InvalidSignatureException", "SignatureDoesNotMatch", "does not match"},
		{"unknown key", unknown, 403, "UnrecognizedClientException", "InvalidClientTokenId", "security token included in the request is invalid"},
		// An operator's long-lived key never comes with a session token:
		// one that does is not the operator's signature.
		{"operator key with a session token", sigv4.Credentials{AccessKeyID: operatorKeyID, SecretAccessKey: operatorSecret, SessionToken: "not-a-session"},
			403, "UnrecognizedClientException", "InvalidClientTokenId", "long-lived key, and the request carries X-Amz-Security-Token"},
	} {
		t.Run(c.name, func(t *testing.T) {
			status, out := e.ra(c.creds, "GET", "/trustanchors", nil)
			if status != c.status || out["__type"] != c.raType || !strings.Contains(out["message"].(string), c.contains) {
				t.Errorf("ListTrustAnchors: %d %v, want %d %s", status, out, c.status, c.raType)
			}
			status, body := e.iam(c.creds, url.Values{"Action": {"GetRole"}, "RoleName": {"ci-deployer"}})
			if status != c.status || !strings.Contains(body, "<Code>"+c.iamCode+"</Code>") || !strings.Contains(body, c.contains) {
				t.Errorf("GetRole: %d %s, want %d %s", status, body, c.status, c.iamCode)
			}
		})
	}
}
