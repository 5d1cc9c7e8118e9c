package rolesanywhere

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// The client parses ARNs from users and answers from servers; neither may
// panic, and what parsing accepts must be sane.

func FuzzParseARNs(f *testing.F) {
	f.Add("arn:aws:rolesanywhere:us-east-1:111122223333:trust-anchor/3f7c1a0e-0000-4000-8000-000000000001")
	f.Add("arn:aws:iam::111122223333:role/path/ci-deployer")
	f.Add("arn:aws-cn:rolesanywhere:cn-north-1:111122223333:profile/p")
	f.Fuzz(func(t *testing.T, s string) {
		for _, parse := range []func(string) (ARN, error){ParseTrustAnchorARN, ParseProfileARN, ParseRoleARN} {
			a, err := parse(s)
			if err != nil {
				continue
			}
			if a.String() != s {
				t.Fatalf("accepted %q but it prints as %q", s, a)
			}
			if a.Service == "rolesanywhere" && !ValidRegion(a.Region) {
				t.Fatalf("accepted region %q", a.Region)
			}
		}
		if u, err := ParseEndpoint(s); err == nil && u.Scheme == "http" && !isLoopback(u.Hostname()) {
			t.Fatalf("plain http to %q accepted", u.Host)
		}
	})
}

func FuzzParseAnswers(f *testing.F) {
	f.Add([]byte(`{"credentialSet":[{"credentials":{"accessKeyId":"ASIA1","secretAccessKey":"s","sessionToken":"t","expiration":"2099-01-01T00:00:00Z"}}]}`), "AccessDeniedException:http://x")
	f.Add([]byte(`{"__type":"com.amazon#ValidationException","message":"bad"}`), "")
	f.Fuzz(func(t *testing.T, body []byte, errType string) {
		if sess, err := parseSession(body, time.Now()); err == nil {
			c := sess.Credentials
			for _, v := range []string{c.AccessKeyID, c.SecretAccessKey, c.SessionToken} {
				if v == "" || !printableToken(v) {
					t.Fatalf("accepted credential field %q", v)
				}
			}
		}
		resp := &http.Response{StatusCode: 403, Header: http.Header{}}
		resp.Header.Set("X-Amzn-Errortype", errType)
		e := parseAPIError(resp, body)
		if strings.ContainsAny(e.Error(), "\x1b\r\n\x00") {
			t.Fatalf("control characters reach the error line: %q", e.Error())
		}
	})
}
