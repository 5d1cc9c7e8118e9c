package imds

import (
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// FuzzRequests: whatever the method, path, Host and header values, the
// handler does not panic, gives a token only to a PUT with an acceptable
// TTL, and answers credentials only with the token it issued.
func FuzzRequests(f *testing.F) {
	f.Add("GET", CredentialsPath+"ci-deployer", "127.0.0.1:9911", "", "21600", true)
	f.Add("PUT", TokenPath, "localhost", "", "1", false)
	f.Add("PUT", TokenPath, "[::1]:80", "", "021600", false)
	f.Add("GET", "/latest/meta-data/iam/security-credentials/../security-credentials/ci-deployer", "127.0.0.1", "x", "", true)
	f.Fuzz(func(t *testing.T, method, path, host, token, ttl string, useIssued bool) {
		fx := newFixture(t)
		issued := fx.token(t, "60")
		if useIssued {
			token = issued
		}
		if !strings.HasPrefix(path, "/") || strings.ContainsAny(path, " \r\n\t") || strings.ContainsAny(method, " \r\n\t/") || method == "" {
			return // not a request line net/http would parse
		}
		if _, err := url.ParseRequestURI(path); err != nil {
			return
		}
		r := httptest.NewRequest("GET", "http://127.0.0.1"+path, nil)
		r.Method = method
		r.Host = host
		r.Header.Set(TokenHeader, token)
		r.Header.Set(TTLHeader, ttl)
		w := httptest.NewRecorder()
		fx.h.ServeHTTP(w, r)
		body := w.Body.String()
		if w.Code == 200 && strings.Contains(body, "AccessKeyId") && token != issued {
			t.Fatalf("credentials for token %q", token)
		}
		if w.Code == 200 && r.URL.Path == TokenPath {
			if method != "PUT" {
				t.Fatalf("a token for %s", method)
			}
			if _, ok := parseTTL(ttl); !ok && ttl != "" {
				t.Fatalf("a token for TTL %q", ttl)
			}
		}
	})
}
