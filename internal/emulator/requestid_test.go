package emulator_test

import (
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/keyless-dev/keyless/internal/sigv4"
)

// TestRequestIDHeader: every answer, success or refusal, of every
// protocol carries its own x-amzn-RequestId, as AWS's do (the SDKs show
// it in their errors), and a Query answer's <RequestId> is the same id.
func TestRequestIDHeader(t *testing.T) {
	e := newEnv(t, setup{})
	wrong := sigv4.Credentials{AccessKeyID: operatorKeyID, SecretAccessKey: "not-the-operator-secret-000000"}
	for _, tt := range []struct {
		name, method, path, service, body string
		creds                             *sigv4.Credentials
	}{
		{name: "Roles Anywhere answer", method: "GET", path: "/trustanchors", service: "rolesanywhere", creds: &operator},
		{name: "Roles Anywhere refusal", method: "GET", path: "/trustanchor/3f7c1a0e-0000-4000-8000-00000000dead", service: "rolesanywhere", creds: &operator},
		{name: "IAM answer", method: "POST", path: "/", service: "iam", creds: &operator, body: "Action=GetRole&Version=2010-05-08&RoleName=ci-deployer"},
		{name: "IAM refusal", method: "POST", path: "/", service: "iam", creds: &wrong, body: "Action=GetRole&Version=2010-05-08&RoleName=ci-deployer"},
		{name: "STS answer", method: "POST", path: "/", service: "sts", creds: &operator, body: "Action=GetCallerIdentity&Version=2011-06-15"},
		{name: "STS refusal", method: "POST", path: "/", service: "sts", body: "Action=GetCallerIdentity&Version=2011-06-15"},
		{name: "unknown path", method: "GET", path: "/nothing"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ids := map[string]bool{}
			for range 2 {
				req, err := http.NewRequest(tt.method, e.srv.URL+tt.path, strings.NewReader(tt.body))
				if err != nil {
					t.Fatal(err)
				}
				if tt.body != "" {
					req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
				}
				if tt.creds != nil {
					if err := sigv4.SignHMAC(req, []byte(tt.body), *tt.creds, "us-east-1", tt.service, e.now()); err != nil {
						t.Fatal(err)
					}
				}
				resp, err := e.srv.Client().Do(req)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				id := resp.Header.Get("X-Amzn-RequestId")
				if !regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`).MatchString(id) {
					t.Fatalf("%d answer has x-amzn-RequestId %q, want a UUID", resp.StatusCode, id)
				}
				if m := regexp.MustCompile(`<RequestId>([^<]*)</RequestId>`).FindSubmatch(body); m != nil && string(m[1]) != id {
					t.Errorf("body says RequestId %s, header %s", m[1], id)
				} else if m == nil && strings.HasPrefix(string(body), "<?xml") {
					t.Errorf("XML answer without <RequestId>: %s", body)
				}
				ids[id] = true
			}
			if len(ids) != 2 {
				t.Errorf("two requests got the same id")
			}
		})
	}
}
