package emulator_test

import (
	"encoding/xml"
	"net/url"
	"strings"
)

// act builds an IAM request's parameters: an action and name/value
// pairs.
func act(action string, kv ...string) url.Values {
	p := url.Values{"Action": {action}}
	for i := 0; i+1 < len(kv); i += 2 {
		p.Add(kv[i], kv[i+1])
	}
	return p
}

// iamOK calls IAM as the operator, fails the test unless it answers 200,
// and decodes the answer into out (when not nil).
func (e *env) iamOK(p url.Values, out any) string {
	e.t.Helper()
	status, body := e.iam(operator, p)
	if status != 200 {
		e.t.Fatalf("%s: %d %s", p.Get("Action"), status, body)
	}
	if !strings.Contains(body, "<RequestId>") || !strings.HasPrefix(body, "<?xml") {
		e.t.Errorf("%s: answer without the XML header or a request id: %s", p.Get("Action"), body)
	}
	if out != nil {
		if err := xml.Unmarshal([]byte(body), out); err != nil {
			e.t.Fatalf("%s: decoding %s: %v", p.Get("Action"), body, err)
		}
	}
	return body
}

// iamFails calls IAM as the operator and fails the test unless it is
// refused with status and code, and a message holding each of contains.
func (e *env) iamFails(p url.Values, status int, code string, contains ...string) {
	e.t.Helper()
	got, body := e.iam(operator, p)
	var out struct {
		Type    string `xml:"Error>Type"`
		Code    string `xml:"Error>Code"`
		Message string `xml:"Error>Message"`
	}
	if err := xml.Unmarshal([]byte(body), &out); err != nil {
		e.t.Fatalf("%s: %d, not an error envelope: %s", p.Get("Action"), got, body)
	}
	if got != status || out.Code != code || out.Type != "Sender" {
		e.t.Errorf("%s: %d %s (%s), want %d %s", p.Get("Action"), got, out.Code, out.Message, status, code)
		return
	}
	for _, c := range contains {
		if !strings.Contains(out.Message, c) {
			e.t.Errorf("%s: message %q does not contain %q", p.Get("Action"), out.Message, c)
		}
	}
}

// xmlRole is the members of IAM's Role the tests read.
type xmlRole struct {
	RoleName, RoleId, Arn, Path, CreateDate string
	AssumeRolePolicyDocument, Description   string
	MaxSessionDuration                      int
	Boundary                                string                        `xml:"PermissionsBoundary>PermissionsBoundaryArn"`
	BoundaryType                            string                        `xml:"PermissionsBoundary>PermissionsBoundaryType"`
	Tags                                    []struct{ Key, Value string } `xml:"Tags>member"`
	RoleLastUsed                            *struct{}
}

func (e *env) getRole(name string) xmlRole {
	e.t.Helper()
	var out struct {
		Role xmlRole `xml:"GetRoleResult>Role"`
	}
	e.iamOK(act("GetRole", "RoleName", name), &out)
	return out.Role
}

const (
	// rolesAnywhereTrust is a trust policy CreateRole takes.
	rolesAnywhereTrust = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"rolesanywhere.amazonaws.com"},"Action":["sts:AssumeRole","sts:TagSession","sts:SetSourceIdentity"]}]}`
	// readPolicy is an identity policy PutRolePolicy takes.
	readPolicy = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:GetObject"],"Resource":"arn:aws:s3:::bucket/a+b c*"}]}`
)

func (e *env) createRole(name string, kv ...string) {
	e.t.Helper()
	e.iamOK(act("CreateRole", append([]string{"RoleName", name, "AssumeRolePolicyDocument", rolesAnywhereTrust}, kv...)...), nil)
}
