package agentapi

import (
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/keyless-dev/keyless/internal/testkit"
)

// upstream is a stand-in for the agent: it records what reaches it and
// answers what the test says.
type upstream struct {
	mu     sync.Mutex
	got    []*http.Request
	answer func(w http.ResponseWriter, r *http.Request)
}

func (u *upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	u.mu.Lock()
	u.got = append(u.got, r.Clone(r.Context()))
	answer := u.answer
	u.mu.Unlock()
	answer(w, r)
}

func (u *upstream) requests() []*http.Request {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]*http.Request(nil), u.got...)
}

// startRelay serves a relay to target on a loopback port and returns its
// address.
func startRelay(t *testing.T, target string, log *slog.Logger, timeout time.Duration) string {
	t.Helper()
	return serveBound(t, func(bound string) http.Handler {
		return Relay(RelayConfig{Target: target, Path: "/v1/credentials", Hosts: Hosts(bound), UserAgent: "keyless-relay-test",
			Logger: log, Timeout: timeout})
	})
}

func relayGet(t *testing.T, addr, token string, extra map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://"+addr+"/v1/credentials", nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", token)
	}
	for k, v := range extra {
		req.Header.Set(k, v)
	}
	return testkit.Do(t, http.DefaultClient, req)
}

// TestRelayForwardsOnlyTheToken: the agent gets the caller's
// Authorization header verbatim, the relay's User-Agent and nothing else
// of the caller's request (no cookie, no forwarding headers, no GitLab
// token headers, no query), at its own path under the base URL's; the
// caller gets the agent's status, Content-Type and body.
func TestRelayForwardsOnlyTheToken(t *testing.T) {
	u := &upstream{answer: func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Set-Cookie", "agent=1")
		w.Write([]byte(`{"AccessKeyId":"ASIAEXAMPLE","SecretAccessKey":"s","Token":"t","Expiration":"2030-01-01T00:00:00Z"}`))
	}}
	srv := httptest.NewServer(u)
	t.Cleanup(srv.Close)
	var logs testkit.Buffer
	addr := startRelay(t, srv.URL+"/base/v1/credentials", slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})), 0)

	const token = "glcbt-64_abc DEF=/+ token"
	resp, body := relayGet(t, addr+"", token, map[string]string{
		"Cookie": "session=x", "X-Forwarded-For": "10.9.9.9", "X-Real-Ip": "10.9.9.9", "Forwarded": "for=10.9.9.9",
		"Job-Token": "glcbt-other", "Private-Token": "glpat-x", "User-Agent": "aws-sdk-go-v2", "Proxy-Authorization": "Basic x",
	})
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" || !strings.Contains(string(body), `"AccessKeyId":"ASIAEXAMPLE"`) {
		t.Fatalf("%d %s %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	if resp.Header.Get("Cache-Control") != "no-store" || resp.Header.Get("Set-Cookie") != "" {
		t.Errorf("answer headers: %v", resp.Header)
	}
	got := u.requests()
	if len(got) != 1 {
		t.Fatalf("the agent got %d requests", len(got))
	}
	r := got[0]
	if r.Method != http.MethodGet || r.URL.Path != "/base/v1/credentials" || r.URL.RawQuery != "" || r.Host != strings.TrimPrefix(srv.URL, "http://") {
		t.Errorf("the agent got %s %s (Host %s)", r.Method, r.URL, r.Host)
	}
	want := http.Header{"Authorization": {token}, "User-Agent": {"keyless-relay-test"}, "Accept": {"application/json"}}
	if diff := cmp.Diff(want, r.Header); diff != "" {
		t.Errorf("headers the agent got (-want +got):\n%s", diff)
	}

	// With a query and no token: none of either reaches the agent.
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/v1/credentials?role=admin", nil)
	testkit.Do(t, http.DefaultClient, req)
	if got := u.requests(); len(got) != 2 || got[1].URL.RawQuery != "" || got[1].Header.Get("Authorization") != "" {
		t.Errorf("the agent got %v %v", got[1].URL, got[1].Header)
	}
	if strings.Contains(logs.String(), "glcbt") || !strings.Contains(logs.String(), "relayed") {
		t.Errorf("the relay's log:\n%s", logs.String())
	}
}

// TestRelayPassesRefusalsThrough: the agent's 401, 403 and 503 reach the
// caller as the agent wrote them.
func TestRelayPassesRefusalsThrough(t *testing.T) {
	for _, status := range []int{401, 403, 503} {
		u := &upstream{answer: func(w http.ResponseWriter, r *http.Request) {
			writeError(w, status, "Refused", "because")
		}}
		srv := httptest.NewServer(u)
		t.Cleanup(srv.Close)
		addr := startRelay(t, srv.URL+"/v1/credentials", nil, 0)
		resp, body := relayGet(t, addr, "tok", nil)
		wantError(t, resp, body, status, "Refused")
	}
}

// TestRelayEndToEnd: through the relay to a real container endpoint,
// whose Host check accepts the relay's request (addressed to the
// upstream's host).
func TestRelayEndToEnd(t *testing.T) {
	v := &vendor{creds: goodCreds()}
	agent := startContainer(t, v)
	addr := startRelay(t, "http://"+agent+"/v1/credentials", nil, 0)
	resp, body := relayGet(t, addr, "tok-e2e", nil)
	var c containerAnswer
	if resp.StatusCode != 200 || json.Unmarshal(body, &c) != nil || c.AccessKeyID != "ASIAEXAMPLE" {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	if got := v.requests(); len(got) != 1 || got[0].Token != "tok-e2e" {
		t.Errorf("the vendor got %+v", got)
	}
	v.mu.Lock()
	v.err = &Refusal{Status: 403, Code: "AccessDenied", Message: "no rule"}
	v.mu.Unlock()
	resp, body = relayGet(t, addr, "tok-e2e", nil)
	wantError(t, resp, body, 403, "AccessDenied")
}

// TestRelayRefusesBeforeForwarding: what the agent would refuse, the
// relay refuses the same way without asking it: another Host, another
// path, another method, two Authorization headers, oversized headers.
func TestRelayRefusesBeforeForwarding(t *testing.T) {
	u := &upstream{answer: func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(200) }}
	srv := httptest.NewServer(u)
	t.Cleanup(srv.Close)
	addr := startRelay(t, srv.URL+"/v1/credentials", nil, 0)
	for _, tc := range []struct {
		name, request string
		status        int
		code          string
	}{
		{"another host (DNS rebinding)", "GET /v1/credentials HTTP/1.1\r\nHost: attacker.example\r\n", 403, "WrongHost"},
		{"another path", "GET /latest/meta-data/ HTTP/1.1\r\nHost: " + addr + "\r\n", 404, "NotFound"},
		{"the path with a suffix", "GET /v1/credentials/x HTTP/1.1\r\nHost: " + addr + "\r\n", 404, "NotFound"},
		{"POST", "POST /v1/credentials HTTP/1.1\r\nHost: " + addr + "\r\nContent-Length: 0\r\n", 405, "MethodNotAllowed"},
		{"two Authorization headers", "GET /v1/credentials HTTP/1.1\r\nHost: " + addr + "\r\nAuthorization: a\r\nAuthorization: b\r\n", 400, "BadRequest"},
		{"headers over 8 KiB", "GET /v1/credentials HTTP/1.1\r\nHost: " + addr + "\r\nAuthorization: " + strings.Repeat("a", 9<<10) + "\r\n", 431, "RequestHeaderFieldsTooLarge"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := testkit.Raw(t, addr, tc.request+"Connection: close\r\n\r\n")
			if tc.status == 431 {
				// net/http's own 431 (before any handler) is plain text.
				if resp.StatusCode != 431 {
					t.Errorf("%d %s", resp.StatusCode, body)
				}
			} else {
				wantError(t, resp, body, tc.status, tc.code)
			}
			if tc.status == 405 && resp.Header.Get("Allow") != "GET" {
				t.Errorf("Allow %q", resp.Header.Get("Allow"))
			}
		})
	}
	if n := len(u.requests()); n != 0 {
		t.Errorf("the agent was asked %d times", n)
	}
}

// TestRelayHeaderSizeInHandler: the handler's own 8 KiB check, for a
// relay served elsewhere than StartContainer.
func TestRelayHeaderSizeInHandler(t *testing.T) {
	h := Relay(RelayConfig{Target: "http://127.0.0.1:1/v1/credentials", Path: "/v1/credentials", Hosts: []string{"169.254.170.2"}})
	r := httptest.NewRequest(http.MethodGet, "http://169.254.170.2/v1/credentials", nil)
	r.Header.Set("Authorization", strings.Repeat("a", 9<<10))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	wantError(t, w.Result(), w.Body.Bytes(), 431, "RequestHeaderFieldsTooLarge")
}

// TestRelayBoundsTheAnswer: an answer of MaxRelayAnswer bytes passes, one
// byte more is a 502, as are a redirect (not followed: it would carry the
// token elsewhere) and an informational status.
func TestRelayBoundsTheAnswer(t *testing.T) {
	elsewhere := &upstream{answer: func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(200) }}
	other := httptest.NewServer(elsewhere)
	t.Cleanup(other.Close)
	for _, tc := range []struct {
		name   string
		answer func(w http.ResponseWriter, r *http.Request)
		status int
	}{
		{"at the cap", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(strings.Repeat("x", MaxRelayAnswer))) }, 200},
		{"over the cap", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(strings.Repeat("x", MaxRelayAnswer+1))) }, 502},
		{"a redirect", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, other.URL+"/v1/credentials", http.StatusTemporaryRedirect)
		}, 502},
		{"not modified", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(304) }, 502},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(&upstream{answer: tc.answer})
			t.Cleanup(srv.Close)
			addr := startRelay(t, srv.URL+"/v1/credentials", nil, 0)
			resp, body := relayGet(t, addr, "tok", nil)
			if tc.status == 200 {
				if resp.StatusCode != 200 || len(body) != MaxRelayAnswer {
					t.Errorf("%d, %d bytes", resp.StatusCode, len(body))
				}
				return
			}
			wantError(t, resp, body, tc.status, "BadAgentAnswer")
		})
	}
	if n := len(elsewhere.requests()); n != 0 {
		t.Errorf("the redirect was followed %d times", n)
	}
}

// TestRelayAgentDown: an agent that refuses connections gets the caller a
// 502 JSON error, one that does not answer a 504; neither logs the token.
func TestRelayAgentDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := ln.Addr().String()
	ln.Close()
	var logs testkit.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	const token = "glcbt-64_secretsecretsecret"

	addr := startRelay(t, "http://"+down+"/v1/credentials", log, 0)
	resp, body := relayGet(t, addr, token, nil)
	wantError(t, resp, body, http.StatusBadGateway, "AgentUnreachable")

	release := make(chan struct{})
	stuck := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-release }))
	t.Cleanup(func() { close(release); stuck.Close() })
	// The agent never answers, so any timeout expires; a short one
	// keeps the test quick.
	addr = startRelay(t, stuck.URL+"/v1/credentials", log, 50*time.Millisecond)
	resp, body = relayGet(t, addr, token, nil)
	wantError(t, resp, body, http.StatusGatewayTimeout, "AgentTimeout")

	if strings.Contains(logs.String(), "secretsecret") {
		t.Errorf("the token is in the relay's log:\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), "the agent is unreachable") {
		t.Errorf("the relay logged no failure:\n%s", logs.String())
	}
}

// TestRelayTransportUsesNoProxy: HTTP_PROXY and HTTPS_PROXY would make a
// proxy see every job's token and credentials.
func TestRelayTransportUsesNoProxy(t *testing.T) {
	tr := relayTransport()
	if tr.Proxy != nil {
		t.Error("the relay's transport has a proxy function")
	}
	if !tr.DisableCompression || tr.MaxResponseHeaderBytes != MaxHeaderBytes {
		t.Errorf("transport bounds: %+v", tr)
	}
}
