package agentapi

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/keyless-dev/keyless/internal/testkit"
)

// rawDo is rawGet with the answer's headers.
func rawDo(t *testing.T, addr, request string) (*http.Response, []byte) {
	t.Helper()
	return testkit.Raw(t, addr, request)
}

// wantError checks a refusal: status, Content-Type exactly
// application/json, no-store, and {"code","message"} with nothing else.
func wantError(t *testing.T, resp *http.Response, body []byte, status int, code string) {
	t.Helper()
	if resp.StatusCode != status {
		t.Errorf("status %d, want %d: %s", resp.StatusCode, status, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q, want exactly application/json", ct)
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q", cc)
	}
	var e map[string]any
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("not JSON: %s", body)
	}
	if len(e) != 2 || e["code"] != code || e["message"] == "" || e["message"] == nil {
		t.Errorf("body %s, want {code: %q, message}", body, code)
	}
}

func TestContainerHostCheck(t *testing.T) {
	v := &vendor{creds: goodCreds()}
	addr := startContainer(t, v)
	_, port, _ := net.SplitHostPort(addr)
	for _, tc := range []struct {
		name, request string
		status        int
	}{
		{"the bound address", "GET /v1/credentials HTTP/1.1\r\nHost: " + addr + "\r\n", 200},
		{"localhost", "GET /v1/credentials HTTP/1.1\r\nHost: localhost:" + port + "\r\n", 200},
		{"any case", "GET /v1/credentials HTTP/1.1\r\nHost: LocalHost:" + port + "\r\n", 200},
		{"no Host (HTTP/1.0)", "GET /v1/credentials HTTP/1.0\r\n", 403},
		{"empty Host (HTTP/1.0)", "GET /v1/credentials HTTP/1.0\r\nHost: \r\n", 403},
		{"another name", "GET /v1/credentials HTTP/1.1\r\nHost: attacker.example:" + port + "\r\n", 403},
		{"a name resolving to loopback", "GET /v1/credentials HTTP/1.1\r\nHost: localtest.me:" + port + "\r\n", 403},
		{"another port", "GET /v1/credentials HTTP/1.1\r\nHost: 127.0.0.1:1\r\n", 403},
		{"a trailing dot", "GET /v1/credentials HTTP/1.1\r\nHost: localhost.:" + port + "\r\n", 403},
		{"a prefix of the host", "GET /v1/credentials HTTP/1.1\r\nHost: 127.0.0.1:" + port + "0\r\n", 403},
		{"absolute URI to another host", "GET http://attacker.example/v1/credentials HTTP/1.1\r\nHost: " + addr + "\r\n", 403},
		{"wrong host and a wrong method", "DELETE /v1/credentials HTTP/1.1\r\nHost: attacker.example\r\n", 403},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(v.requests())
			resp, body := rawDo(t, addr, tc.request+"Authorization: tok\r\nConnection: close\r\n\r\n")
			if tc.status == 200 {
				if resp.StatusCode != 200 {
					t.Fatalf("%d %s", resp.StatusCode, body)
				}
				return
			}
			wantError(t, resp, body, tc.status, "WrongHost")
			if len(v.requests()) != before {
				t.Error("the vendor was asked")
			}
		})
	}
}

func TestContainerAnswerShape(t *testing.T) {
	c := goodCreds()
	// A Vendor's time in another zone is still answered in UTC with Z.
	c.Expiration = time.Date(2099, 1, 2, 3, 4, 5, 600, time.FixedZone("x", 5*3600))
	v := &vendor{creds: c}
	addr := startContainer(t, v)
	resp, body := rawDo(t, addr, "GET /v1/credentials?x=1 HTTP/1.1\r\nHost: "+addr+"\r\nConnection: close\r\n\r\n")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("%d %v: %s", resp.StatusCode, resp.Header, body)
	}
	var got map[string]any
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	if got["Expiration"] != "2099-01-01T22:04:05Z" {
		t.Errorf("Expiration %v", got["Expiration"])
	}
	if len(got) != 5 {
		t.Errorf("fields %v", got)
	}
	// No AccountId: the field is left out, not empty.
	c.AccountID = ""
	_, body = rawDo(t, addr, "GET /v1/credentials HTTP/1.1\r\nHost: "+addr+"\r\nConnection: close\r\n\r\n")
	if strings.Contains(string(body), "AccountId") {
		t.Errorf("empty AccountId sent: %s", body)
	}
	// No Authorization: the Vendor is asked with an empty token (and
	// refuses: that is its decision, not the listener's).
	if r := v.requests(); r[len(r)-1].Token != "" || r[len(r)-1].Remote == "" {
		t.Errorf("asked %+v", r[len(r)-1])
	}
}

// TestContainerTokenVerbatim: the Authorization header's value reaches
// the Vendor as sent (no Bearer stripped, inner spaces kept).
func TestContainerTokenVerbatim(t *testing.T) {
	v := &vendor{creds: goodCreds()}
	addr := startContainer(t, v)
	for _, tok := range []string{"Bearer abc", "glcbt-64_abc.def", "eyJhbGciOiJSUzI1NiJ9.e30.c2ln", "a  b"} {
		resp, body := rawDo(t, addr, "GET /v1/credentials HTTP/1.1\r\nHost: "+addr+"\r\nAuthorization: "+tok+"\r\nConnection: close\r\n\r\n")
		if resp.StatusCode != 200 {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
		if r := v.requests(); r[len(r)-1].Token != tok {
			t.Errorf("sent %q, the vendor got %q", tok, r[len(r)-1].Token)
		}
	}
}

func TestContainerTwoAuthorizations(t *testing.T) {
	v := &vendor{creds: goodCreds()}
	addr := startContainer(t, v)
	resp, body := rawDo(t, addr, "GET /v1/credentials HTTP/1.1\r\nHost: "+addr+"\r\nAuthorization: a\r\nAuthorization: b\r\nConnection: close\r\n\r\n")
	wantError(t, resp, body, 400, "BadRequest")
	if len(v.requests()) != 0 {
		t.Error("the vendor was asked")
	}
}

// TestContainerRefusalStatuses: a Refusal's status is answered when it is
// an error status; a Refusal claiming success is a bug answered 500.
func TestContainerRefusalStatuses(t *testing.T) {
	for _, tc := range []struct {
		ref    *Refusal
		status int
		code   string
	}{
		{&Refusal{Status: 401, Code: "Unauthorized", Message: "no token"}, 401, "Unauthorized"},
		{&Refusal{Status: 403, Code: "AccessDenied", Message: "no rule"}, 403, "AccessDenied"},
		{&Refusal{Status: 503, Code: "CredentialsUnavailable", Message: "later"}, 503, "CredentialsUnavailable"},
		{&Refusal{Status: 429, Message: "slow down"}, 429, "TooManyRequests"},
		{&Refusal{Status: 401}, 401, "Unauthorized"},
		{&Refusal{Status: 200, Code: "OK", Message: "not a refusal"}, 500, "InternalError"},
		{&Refusal{Status: 0, Code: "X", Message: "no status"}, 500, "InternalError"},
		{&Refusal{Status: 302, Code: "X", Message: "redirect"}, 500, "InternalError"},
		{&Refusal{Status: 600, Code: "X", Message: "out of range"}, 500, "InternalError"},
	} {
		v := &vendor{creds: goodCreds(), err: tc.ref}
		addr := startContainer(t, v)
		resp, body := rawDo(t, addr, "GET /v1/credentials HTTP/1.1\r\nHost: "+addr+"\r\nConnection: close\r\n\r\n")
		wantError(t, resp, body, tc.status, tc.code)
		if strings.Contains(string(body), "ASIA") {
			t.Errorf("credentials with a refusal: %s", body)
		}
	}
}

// TestContainerNeverUnusable: credentials missing any field, or not
// expiring in the future, are never answered 200.
func TestContainerNeverUnusable(t *testing.T) {
	for name, mutate := range map[string]func(*Credentials){
		"no access key id":   func(c *Credentials) { c.AccessKeyID = "" },
		"no secret":          func(c *Credentials) { c.SecretAccessKey = "" },
		"no session token":   func(c *Credentials) { c.Token = "" },
		"no expiration":      func(c *Credentials) { c.Expiration = time.Time{} },
		"expired":            func(c *Credentials) { c.Expiration = time.Now().Add(-time.Minute) },
		"expiring right now": func(c *Credentials) { c.Expiration = time.Now() },
	} {
		t.Run(name, func(t *testing.T) {
			c := goodCreds()
			mutate(c)
			addr := startContainer(t, &vendor{creds: c})
			resp, body := rawDo(t, addr, "GET /v1/credentials HTTP/1.1\r\nHost: "+addr+"\r\nConnection: close\r\n\r\n")
			wantError(t, resp, body, 500, "InternalError")
			if strings.Contains(string(body), "secret") || strings.Contains(string(body), "session") {
				t.Errorf("leaks: %s", body)
			}
		})
	}
}

// TestHeaderLimitBoundary: 8 KiB exactly (request line and headers with
// the blank line) passes; one byte more gets 431 before the handler,
// whatever the Host.
func TestHeaderLimitBoundary(t *testing.T) {
	v := &vendor{creds: goodCreds()}
	addr := startContainer(t, v)
	build := func(host string, total int) string {
		head := "GET /v1/credentials HTTP/1.1\r\nHost: " + host + "\r\nConnection: close\r\nAuthorization: "
		r := head + strings.Repeat("a", total-len(head)-4) + "\r\n\r\n"
		if len(r) != total {
			t.Fatalf("built %d bytes", len(r))
		}
		return r
	}
	for _, size := range []int{MaxHeaderBytes - 1, MaxHeaderBytes} {
		if resp, body := rawDo(t, addr, build(addr, size)); resp.StatusCode != 200 {
			t.Errorf("%d bytes: %d %s", size, resp.StatusCode, body)
		}
	}
	n := len(v.requests())
	for _, host := range []string{addr, "attacker.example"} {
		if resp, _ := rawDo(t, addr, build(host, MaxHeaderBytes+1)); resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("%d bytes to %s: %d, want 431", MaxHeaderBytes+1, host, resp.StatusCode)
		}
	}
	// Many small headers add up the same way.
	many := "GET /v1/credentials HTTP/1.1\r\nHost: " + addr + "\r\nConnection: close\r\n" + strings.Repeat("X-A: b\r\n", MaxHeaderBytes/8) + "\r\n"
	if resp, _ := rawDo(t, addr, many); resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("many headers: %d, want 431", resp.StatusCode)
	}
	if len(v.requests()) != n {
		t.Error("an oversized request reached the vendor")
	}
}

// TestHandlerHeaderLimitElsewhere: served by a server without the bound,
// the handler itself refuses headers over 8 KiB, after the Host check.
func TestHandlerHeaderLimitElsewhere(t *testing.T) {
	v := &vendor{creds: goodCreds()}
	srv := httptest.NewServer(nil)
	defer srv.Close()
	host := srv.Listener.Addr().String()
	srv.Config.Handler = ContainerHandler(v, []string{host}, "test")
	big := strings.Repeat("a", MaxHeaderBytes)
	resp, body := rawDo(t, host, "GET /v1/credentials HTTP/1.1\r\nHost: "+host+"\r\nAuthorization: "+big+"\r\nConnection: close\r\n\r\n")
	wantError(t, resp, body, 431, "RequestHeaderFieldsTooLarge")
	resp, body = rawDo(t, host, "GET /v1/credentials HTTP/1.1\r\nHost: elsewhere\r\nAuthorization: "+big+"\r\nConnection: close\r\n\r\n")
	wantError(t, resp, body, 403, "WrongHost")
	if len(v.requests()) != 0 {
		t.Error("the vendor was asked")
	}
}

// TestContainerPath: any path but ContainerPath is 404, before the
// vendor is asked, whatever the token.
func TestContainerPath(t *testing.T) {
	v := &vendor{creds: goodCreds()}
	addr := startContainer(t, v)
	for _, p := range []string{"/", "/anything?x=1", "/v1/credentials/", "/V1/credentials", "/v2/credentials/abc", "//v1/credentials"} {
		resp, body := rawDo(t, addr, "GET "+p+" HTTP/1.1\r\nHost: "+addr+"\r\nAuthorization: tok\r\nConnection: close\r\n\r\n")
		wantError(t, resp, body, 404, "NotFound")
	}
	if len(v.requests()) != 0 {
		t.Error("the vendor was asked")
	}
}

func TestContainerMethods(t *testing.T) {
	v := &vendor{creds: goodCreds()}
	addr := startContainer(t, v)
	for _, m := range []string{"POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"} {
		resp, body := rawDo(t, addr, m+" /v1/credentials HTTP/1.1\r\nHost: "+addr+"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
		if m == "HEAD" {
			// No body to check on a HEAD answer.
			if resp.StatusCode != 405 {
				t.Errorf("HEAD: %d", resp.StatusCode)
			}
			continue
		}
		wantError(t, resp, body, 405, "MethodNotAllowed")
		if resp.Header.Get("Allow") != "GET" {
			t.Errorf("%s: Allow %q", m, resp.Header.Get("Allow"))
		}
	}
	if len(v.requests()) != 0 {
		t.Error("the vendor was asked")
	}
}

func TestHostsMore(t *testing.T) {
	for addr, want := range map[string]string{
		"[::1]:9911":          "[::1]:9911 localhost:9911",
		"127.0.0.2:80":        "127.0.0.2:80 127.0.0.2 localhost:80 localhost",
		"not-an-addr":         "not-an-addr",
		"0.0.0.0:80":          "0.0.0.0:80 0.0.0.0",
		"[fd00:ec2::23]:8080": "[fd00:ec2::23]:8080",
	} {
		if got := strings.Join(Hosts(addr), " "); got != want {
			t.Errorf("Hosts(%s) = %s, want %s", addr, got, want)
		}
	}
}

// statusOf answers a fixed Status (nil: none).
type statusOf struct{ s *Status }

func (s statusOf) Status(context.Context) *Status { return s.s }

func TestLocalHandlerRoutes(t *testing.T) {
	v := &vendor{creds: goodCreds()}
	srv := httptest.NewServer(LocalHandler(v, statusOf{&Status{Version: "v1.2.3"}}))
	defer srv.Close()
	addr := srv.Listener.Addr().String()
	for _, tc := range []struct {
		request string
		status  int
		code    string
	}{
		{"GET /v1/credentials", 401, "NoPeer"}, // TCP: no peer
		{"POST /v1/credentials", 405, "MethodNotAllowed"},
		{"DELETE /v1/status", 405, "MethodNotAllowed"},
		{"GET /v1/credentials/", 404, "NotFound"},
		{"GET /", 404, "NotFound"},
		{"GET /v2/status", 404, "NotFound"},
	} {
		resp, body := rawDo(t, addr, tc.request+" HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
		wantError(t, resp, body, tc.status, tc.code)
	}
	resp, body := rawDo(t, addr, "GET /v1/status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"version":"v1.2.3"`) {
		t.Errorf("status: %d %s", resp.StatusCode, body)
	}
	if len(v.requests()) != 0 {
		t.Error("the vendor was asked without a peer")
	}
	// No status source, or a nil status: 404, not "null".
	for _, s := range []StatusSource{nil, statusOf{}} {
		srv := httptest.NewServer(LocalHandler(v, s))
		resp, body := rawDo(t, srv.Listener.Addr().String(), "GET /v1/status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
		srv.Close()
		wantError(t, resp, body, 404, "NotFound")
	}
}

func TestMetricsAddresses(t *testing.T) {
	for _, addr := range []string{"localhost:9464", "example.com:9464", "169.254.170.2:9464", "9464", "", ":9464", "[::ffff:10.0.0.1]:1"} {
		s, err := StartMetrics(addr, func(io.Writer) {}, nil)
		if err == nil {
			s.Close()
			t.Errorf("metrics on %q", addr)
			continue
		}
		if !strings.Contains(err.Error(), "metrics") {
			t.Errorf("%q: the error does not say what it is about: %v", addr, err)
		}
	}
	s, err := StartMetrics("127.0.0.1:0", func(w io.Writer) { io.WriteString(w, "x 1\n") }, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	resp, _ := rawDo(t, s.Addr().String(), "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
	if resp.StatusCode != 405 {
		t.Errorf("POST /metrics: %d", resp.StatusCode)
	}
	if ln, err := net.Listen("tcp", "[::1]:0"); err == nil {
		ln.Close()
		s, err := StartMetrics("[::1]:0", func(io.Writer) {}, nil)
		if err != nil {
			t.Errorf("metrics on [::1]: %v", err)
		} else {
			s.Close()
		}
	}
}

// FuzzContainerHandler: whatever the Host, method and headers, the answer
// is JSON, and 200 only for a GET of ContainerPath to an allowed Host
// with one Authorization at most, with all four fields.
func FuzzContainerHandler(f *testing.F) {
	f.Add("GET", "169.254.170.2", "tok", "/v1/credentials", false)
	f.Add("GET", "169.254.170.2:80", "", "/", true)
	f.Add("POST", "169.254.170.2", "tok", "/", false)
	f.Add("GET", "169.254.170.3", "tok", "/", false)
	f.Add("GET", "LOCALHOST", "Bearer x", "/?a=b", false)
	hosts := []string{"169.254.170.2", "169.254.170.2:80", "localhost"}
	f.Fuzz(func(t *testing.T, method, host, auth, path string, twice bool) {
		v := &vendor{creds: goodCreds()}
		h := ContainerHandler(v, hosts, "fuzz")
		req, err := http.NewRequest(method, "http://x"+path, nil)
		if err != nil {
			return
		}
		req.Host = host
		if auth != "" {
			req.Header.Set("Authorization", auth)
			if twice {
				req.Header.Add("Authorization", auth)
			}
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if ct := w.Header().Get("Content-Type"); ct != "application/json" {
			t.Fatalf("Content-Type %q", ct)
		}
		var body map[string]any
		if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
			t.Fatalf("not JSON: %q", w.Body.String())
		}
		allowed := false
		for _, a := range hosts {
			allowed = allowed || strings.EqualFold(a, host)
		}
		if w.Code == 200 {
			// net/http reads an empty method as GET.
			if !allowed || (method != "GET" && method != "") || (twice && auth != "") || req.URL.Path != ContainerPath {
				t.Fatalf("200 for %q %q twice=%v", method, host, twice)
			}
			for _, k := range []string{"AccessKeyId", "SecretAccessKey", "Token", "Expiration"} {
				if s, _ := body[k].(string); s == "" {
					t.Fatalf("200 without %s", k)
				}
			}
			if r := v.requests(); len(r) != 1 || r[0].Token != auth {
				t.Fatalf("the vendor got %+v for %q", r, auth)
			}
			return
		}
		if body["code"] == "" || body["code"] == nil {
			t.Fatalf("%d without a code: %v", w.Code, body)
		}
		if !allowed && (w.Code != 403 || len(v.requests()) != 0) {
			t.Fatalf("host %q: %d, vendor asked %d times", host, w.Code, len(v.requests()))
		}
	})
}
