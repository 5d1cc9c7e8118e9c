package sigv4_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/keyless-dev/keyless/internal/sigv4"
)

// AWS's documented example keys (not a secret: they sign nothing real).
var exampleCreds = sigv4.Credentials{AccessKeyID: "AKIDEXAMPLE", SecretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"}

var exampleTime = time.Date(2015, 8, 30, 12, 36, 0, 0, time.UTC)

// TestHMACKnownAnswers signs the requests of AWS's published SigV4
// examples (the test suite's get-vanilla, and the IAM ListUsers request
// of the SigV4 documentation) and expects the published signatures.
func TestHMACKnownAnswers(t *testing.T) {
	for _, tc := range []struct {
		name, method, url, service string
		header                     map[string]string
		want                       string
	}{
		{
			name: "get-vanilla", method: "GET", url: "https://example.amazonaws.com/", service: "service",
			want: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
		},
		{
			name: "iam-list-users", method: "GET", url: "https://iam.amazonaws.com/?Action=ListUsers&Version=2010-05-08", service: "iam",
			header: map[string]string{"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
			want:   "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(tc.method, tc.url, nil)
			req.Header = http.Header{}
			for k, v := range tc.header {
				req.Header.Set(k, v)
			}
			if err := sigv4.SignHMAC(req, nil, exampleCreds, "us-east-1", tc.service, exampleTime); err != nil {
				t.Fatal(err)
			}
			if got := req.Header.Get("Authorization"); got != tc.want {
				t.Fatalf("Authorization:\n got %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestCanonicalURIEscapesTwice(t *testing.T) {
	req := httptest.NewRequest("GET", "https://h/a%20b/c~d/e%2Ff", nil)
	if got, want := sigv4.CanonicalURI(req.URL), "/a%2520b/c~d/e%252Ff"; got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
	req = httptest.NewRequest("GET", "https://h", nil)
	req.URL.Path, req.URL.RawPath = "", ""
	if got := sigv4.CanonicalURI(req.URL); got != "/" {
		t.Fatalf("empty path: got %q", got)
	}
}

// hmacRequest is an STS call signed with temporary credentials.
func hmacRequest(t testing.TB, body string, now time.Time) *http.Request {
	t.Helper()
	req := httptest.NewRequest("POST", "http://127.0.0.1:8443/", strings.NewReader(body))
	req.Header = http.Header{"Content-Type": {"application/x-www-form-urlencoded; charset=utf-8"}}
	c := exampleCreds
	c.SessionToken = "session-token"
	if err := sigv4.SignHMAC(req, []byte(body), c, "us-east-1", "sts", now); err != nil {
		t.Fatal(err)
	}
	return req
}

func secretOf(_ *http.Request, id string) (string, error) {
	if id != exampleCreds.AccessKeyID {
		return "", errUnknownKey
	}
	return exampleCreds.SecretAccessKey, nil
}

var errUnknownKey = errors.New("unknown access key id")

const stsBody = "Action=GetCallerIdentity&Version=2011-06-15"

func TestHMACRoundTrip(t *testing.T) {
	req := hmacRequest(t, stsBody, exampleTime)
	if req.Header.Get(sigv4.HeaderSecurityToken) != "session-token" {
		t.Fatal("the session token was not sent")
	}
	a, err := sigv4.VerifyHMAC(req, []byte(stsBody), sigv4.HMACVerifyOptions{Service: "sts", Regions: []string{"us-east-1"}, Now: exampleTime, Secret: secretOf})
	if err != nil {
		t.Fatal(err)
	}
	if a.Credential != "AKIDEXAMPLE" || a.Service != "sts" || !strings.Contains(strings.Join(a.SignedHeaders, ";"), "x-amz-security-token") {
		t.Fatalf("verified %+v", a)
	}
}

// signWithEmptySecret re-signs r as an attacker would if an empty secret
// were accepted: the HMAC chain keyed with "AWS4" alone.
func signWithEmptySecret(t *testing.T, r *http.Request, body string) {
	t.Helper()
	a, err := sigv4.ParseAuthorization(r.Header.Get("Authorization"))
	if err != nil {
		t.Fatal(err)
	}
	canonical, err := sigv4.SDKRules.CanonicalRequest(r.Method, sigv4.CanonicalURI(r.URL), r.URL.RawQuery, r.Header, r.Host, a.SignedHeaders, sigv4.PayloadHash([]byte(body)))
	if err != nil {
		t.Fatal(err)
	}
	mac := func(key []byte, data string) []byte {
		m := hmac.New(sha256.New, key)
		m.Write([]byte(data))
		return m.Sum(nil)
	}
	key := []byte("AWS4")
	for _, part := range []string{a.Day, a.Region, a.Service, "aws4_request"} {
		key = mac(key, part)
	}
	a.Signature = mac(key, sigv4.StringToSign(a.Algorithm, r.Header.Get(sigv4.HeaderDate), sigv4.Scope(a.Day, a.Region, a.Service), canonical))
	r.Header.Set("Authorization", a.String())
}

// TestHMACRefusals breaks each rule VerifyHMAC checks, once.
func TestHMACRefusals(t *testing.T) {
	opts := sigv4.HMACVerifyOptions{Service: "sts", Regions: []string{"us-east-1"}, Now: exampleTime, Secret: secretOf}
	for _, tc := range []struct {
		name   string
		change func(r *http.Request, o *sigv4.HMACVerifyOptions) string // returns the body
		want   error
	}{
		{"no authorization", func(r *http.Request, _ *sigv4.HMACVerifyOptions) string {
			r.Header.Del("Authorization")
			return stsBody
		}, sigv4.ErrNoAuthorization},
		{"x509 algorithm", func(r *http.Request, _ *sigv4.HMACVerifyOptions) string {
			r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), sigv4.AlgorithmHMAC, sigv4.AlgorithmECDSA, 1))
			return stsBody
		}, sigv4.ErrMalformed},
		{"short signature", func(r *http.Request, _ *sigv4.HMACVerifyOptions) string {
			a := r.Header.Get("Authorization")
			r.Header.Set("Authorization", a[:len(a)-2])
			return stsBody
		}, sigv4.ErrMalformed},
		{"unknown key", func(r *http.Request, o *sigv4.HMACVerifyOptions) string {
			o.Secret = func(*http.Request, string) (string, error) { return "", errUnknownKey }
			return stsBody
		}, errUnknownKey},
		{"empty secret", func(r *http.Request, o *sigv4.HMACVerifyOptions) string {
			// A signature anyone can make: with an empty secret the
			// signing key starts from the public "AWS4".
			signWithEmptySecret(t, r, stsBody)
			o.Secret = func(*http.Request, string) (string, error) { return "", nil }
			return stsBody
		}, sigv4.ErrSignature},
		{"bad date", func(r *http.Request, _ *sigv4.HMACVerifyOptions) string {
			r.Header.Set(sigv4.HeaderDate, "yesterday")
			return stsBody
		}, sigv4.ErrDate},
		{"scope date", func(r *http.Request, _ *sigv4.HMACVerifyOptions) string {
			r.Header.Set(sigv4.HeaderDate, "20150831T000100Z")
			return stsBody
		}, sigv4.ErrScopeDate},
		{"service", func(r *http.Request, o *sigv4.HMACVerifyOptions) string { o.Service = "iam"; return stsBody }, sigv4.ErrScopeService},
		{"region", func(r *http.Request, o *sigv4.HMACVerifyOptions) string {
			o.Regions = []string{"eu-west-1"}
			return stsBody
		}, sigv4.ErrScopeRegion},
		{"clock skew", func(r *http.Request, o *sigv4.HMACVerifyOptions) string {
			o.Now = exampleTime.Add(6 * time.Minute)
			return stsBody
		}, sigv4.ErrClockSkew},
		{"signed header missing", func(r *http.Request, _ *sigv4.HMACVerifyOptions) string { r.Header.Del("Content-Type"); return stsBody }, sigv4.ErrHeaderMissing},
		{"host not signed", func(r *http.Request, _ *sigv4.HMACVerifyOptions) string {
			r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), "SignedHeaders=content-type;host;", "SignedHeaders=content-type;", 1))
			return stsBody
		}, sigv4.ErrSignedHeaders},
		{"bad query", func(r *http.Request, _ *sigv4.HMACVerifyOptions) string { r.URL.RawQuery = "a=%zz"; return stsBody }, sigv4.ErrQuery},
		{"other body", func(r *http.Request, _ *sigv4.HMACVerifyOptions) string { return stsBody + "&x=1" }, sigv4.ErrSignature},
		{"other path", func(r *http.Request, _ *sigv4.HMACVerifyOptions) string { r.URL.Path = "/other"; return stsBody }, sigv4.ErrSignature},
		{"other token header value", func(r *http.Request, _ *sigv4.HMACVerifyOptions) string {
			r.Header.Set(sigv4.HeaderSecurityToken, "another")
			return stsBody
		}, sigv4.ErrSignature},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := hmacRequest(t, stsBody, exampleTime)
			o := opts
			body := tc.change(req, &o)
			_, err := sigv4.VerifyHMAC(req, []byte(body), o)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

// TestCanonicalQuery: parameters sort by their encoded key, then value,
// as AWS's SDKs sort them: "a/" (encoded "a%2F") before "a-", which a sort
// of the decoded keys would put the other way round.
func TestCanonicalQuery(t *testing.T) {
	got, err := sigv4.SDKRules.CanonicalQuery("b=2&a%2F=1&a-=2&a=x%2Fy&a=x-y&s=a+b&t=%7E")
	if err != nil {
		t.Fatal(err)
	}
	if want := "a=x%2Fy&a=x-y&a%2F=1&a-=2&b=2&s=a%20b&t=~"; got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

// TestRulesDiffer pins where the two forms' rules part: the X509 form
// canonicalises as AWS's credential helper does, the HMAC form as the
// SDKs do (interop/awssdk checks the latter against the SDK itself).
func TestRulesDiffer(t *testing.T) {
	for _, tc := range []struct {
		query, helper, sdk string
	}{
		{"b=2&b=1", "b=2&b=1", "b=1&b=2"},
		{"a.=1&a/=2", "a.=1&a%2F=2", "a%2F=2&a.=1"},
		{"k=a+b", "k=a%20b", "k=a%20b"},
	} {
		h, err1 := sigv4.HelperRules.CanonicalQuery(tc.query)
		s, err2 := sigv4.SDKRules.CanonicalQuery(tc.query)
		if err1 != nil || err2 != nil || h != tc.helper || s != tc.sdk {
			t.Errorf("%q: helper %q, SDK %q; want %q, %q", tc.query, h, s, tc.helper, tc.sdk)
		}
	}
	header := http.Header{"X-Multi": {"a ", " b"}, "X-Tab": {"x\t"}}
	signed := []string{"host", "x-multi", "x-tab"}
	h, _ := sigv4.HelperRules.CanonicalRequest("GET", "/", "", header, "h", signed, "e3")
	s, _ := sigv4.SDKRules.CanonicalRequest("GET", "/", "", header, "h", signed, "e3")
	if want := "GET\n/\n\nhost:h\nx-multi:a , b\nx-tab:x\t\n\nhost;x-multi;x-tab\ne3"; h != want {
		t.Errorf("helper rules:\n%q\nwant\n%q", h, want)
	}
	if want := "GET\n/\n\nhost:h\nx-multi:a,b\nx-tab:x\n\nhost;x-multi;x-tab\ne3"; s != want {
		t.Errorf("SDK rules:\n%q\nwant\n%q", s, want)
	}
}
