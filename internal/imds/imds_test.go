package imds

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/keyless-dev/keyless/internal/testkit"
)

var t0 = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

// source hands out what the test sets.
type source struct {
	mu    sync.Mutex
	creds Credentials
	err   error
	calls int
}

func (s *source) get(ctx context.Context) (Credentials, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	return s.creds, s.err
}

func (s *source) set(c Credentials, err error) {
	s.mu.Lock()
	s.creds, s.err = c, err
	s.mu.Unlock()
}

func goodCreds() Credentials {
	return Credentials{AccessKeyID: "ASIAEXAMPLE", SecretAccessKey: "secret/+=", Token: "session-token", Expiration: t0.Add(time.Hour), LastUpdated: t0.Add(-time.Minute)}
}

type fixture struct {
	h     *Handler
	clock *testkit.Clock
	src   *source
	logs  *testkit.Buffer
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{clock: testkit.NewClock(t0), src: &source{creds: goodCreds()}, logs: &testkit.Buffer{}}
	h, err := New(Config{RoleName: "ci-deployer", Source: f.src.get, Clock: f.clock, Logger: slog.New(slog.NewTextHandler(f.logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	f.h = h
	return f
}

type answer struct {
	status int
	header http.Header
	body   string
}

// do serves one request built from method, path and headers (name,
// value pairs), addressed to 127.0.0.1:9911.
func (f *fixture) do(method, path string, headers ...string) answer {
	r := httptest.NewRequest(method, "http://127.0.0.1:9911"+path, nil)
	for i := 0; i+1 < len(headers); i += 2 {
		r.Header.Add(headers[i], headers[i+1])
	}
	w := httptest.NewRecorder()
	f.h.ServeHTTP(w, r)
	return answer{status: w.Code, header: w.Header(), body: w.Body.String()}
}

func (f *fixture) token(t *testing.T, ttl string) string {
	t.Helper()
	a := f.do("PUT", TokenPath, TTLHeader, ttl)
	if a.status != 200 || a.body == "" {
		t.Fatalf("PUT token: %d %q", a.status, a.body)
	}
	return a.body
}

func TestTokenRequests(t *testing.T) {
	for _, tc := range []struct {
		name    string
		method  string
		headers []string
		status  int
		ttl     string // the TTL header echoed on success
	}{
		{"six hours", "PUT", []string{TTLHeader, "21600"}, 200, "21600"},
		{"one second", "PUT", []string{TTLHeader, "1"}, 200, "1"},
		{"no TTL header: six hours, as the helper", "PUT", nil, 200, "21600"},
		{"zero", "PUT", []string{TTLHeader, "0"}, 400, ""},
		{"over six hours", "PUT", []string{TTLHeader, "21601"}, 400, ""},
		{"negative", "PUT", []string{TTLHeader, "-5"}, 400, ""},
		{"signed", "PUT", []string{TTLHeader, "+5"}, 400, ""},
		{"not a number", "PUT", []string{TTLHeader, "ten"}, 400, ""},
		{"empty", "PUT", []string{TTLHeader, ""}, 400, ""},
		{"huge", "PUT", []string{TTLHeader, "99999999999999999999"}, 400, ""},
		{"X-Forwarded-For", "PUT", []string{TTLHeader, "60", "X-Forwarded-For", "10.0.0.1"}, 400, ""},
		{"X-Forwarded-For, empty", "PUT", []string{TTLHeader, "60", "X-Forwarded-For", ""}, 400, ""},
		{"GET", "GET", []string{TTLHeader, "60"}, 405, ""},
		{"POST", "POST", []string{TTLHeader, "60"}, 405, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			a := f.do(tc.method, TokenPath, tc.headers...)
			if a.status != tc.status {
				t.Fatalf("status %d, want %d: %q", a.status, tc.status, a.body)
			}
			switch {
			case tc.status == 200:
				if len(a.body) < 40 || a.header.Get(TTLHeader) != tc.ttl || a.header.Get("Content-Type") != "text/plain; charset=utf-8" {
					t.Errorf("token %q, headers %v", a.body, a.header)
				}
				if f.h.Tokens() != 1 {
					t.Errorf("%d tokens stored", f.h.Tokens())
				}
			case tc.status == 405:
				if a.header.Get("Allow") != "PUT" || f.h.Tokens() != 0 {
					t.Errorf("Allow %q, %d tokens", a.header.Get("Allow"), f.h.Tokens())
				}
			default:
				if f.h.Tokens() != 0 || a.header.Get(TTLHeader) != "" {
					t.Errorf("a refused request stored %d tokens; headers %v", f.h.Tokens(), a.header)
				}
			}
		})
	}
}

func TestTokensAreDistinct(t *testing.T) {
	f := newFixture(t)
	seen := map[string]bool{}
	for range 50 {
		tok := f.token(t, "60")
		if seen[tok] {
			t.Fatal("the same token twice")
		}
		seen[tok] = true
	}
}

// TestRoleAndCredentials: with a token, the role's name (with what is
// left of the token), then EC2's JSON; the paths around them answer as
// the helper's do.
func TestRoleAndCredentials(t *testing.T) {
	f := newFixture(t)
	tok := f.token(t, "600")
	f.clock.Advance(100*time.Second + 500*time.Millisecond)

	a := f.do("GET", CredentialsPath, TokenHeader, tok)
	if a.status != 200 || a.body != "ci-deployer" || a.header.Get(TTLHeader) != "499" {
		t.Fatalf("role list: %d %q ttl %q", a.status, a.body, a.header.Get(TTLHeader))
	}
	a = f.do("GET", CredentialsPath+"ci-deployer", TokenHeader, tok)
	if a.status != 200 || a.header.Get("Content-Type") != "text/plain; charset=utf-8" {
		t.Fatalf("credentials: %d %v %q", a.status, a.header, a.body)
	}
	want := `{"Code":"Success","LastUpdated":"2026-11-26T11:59:00Z","Type":"AWS-HMAC","AccessKeyId":"ASIAEXAMPLE",` +
		`"SecretAccessKey":"secret/+=","Token":"session-token","Expiration":"2026-11-26T13:00:00Z"}` + "\n"
	if a.body != want {
		t.Errorf("credentials\n got %s\nwant %s", a.body, want)
	}

	for _, tc := range []struct {
		method, path string
		status       int
	}{
		{"GET", "/latest/meta-data/iam/security-credentials", 307}, // ServeMux's redirect, as the helper's
		{"GET", CredentialsPath + "other-role", 404},
		{"GET", CredentialsPath + "ci-deployer/x", 404},
		{"GET", "/latest/meta-data/", 404},
		{"GET", "/", 404},
		{"GET", TokenPath + "/", 404},
		{"PUT", CredentialsPath, 405},
		{"POST", CredentialsPath + "ci-deployer", 405},
		{"HEAD", CredentialsPath + "ci-deployer", 405},
	} {
		if a := f.do(tc.method, tc.path, TokenHeader, tok); a.status != tc.status {
			t.Errorf("%s %s: %d, want %d", tc.method, tc.path, a.status, tc.status)
		} else if tc.status == 405 && a.header.Get("Allow") != "GET" {
			t.Errorf("%s %s: Allow %q", tc.method, tc.path, a.header.Get("Allow"))
		}
	}
}

// TestTokenRefusals: without a token, with an unknown one or an expired
// one, neither the role nor the credentials are answered: 401, and the
// source is not asked.
func TestTokenRefusals(t *testing.T) {
	f := newFixture(t)
	tok := f.token(t, "60")
	other := newFixture(t).token(t, "60")
	for _, path := range []string{CredentialsPath, CredentialsPath + "ci-deployer"} {
		for _, tc := range []struct {
			name    string
			headers []string
			body    string
		}{
			{"no token", nil, "no token provided"},
			{"empty token", []string{TokenHeader, ""}, "no token provided"},
			{"another server's token", []string{TokenHeader, other}, "invalid token provided"},
			{"a token with a byte changed", []string{TokenHeader, tok[:len(tok)-1] + "x"}, "invalid token provided"},
			{"the TTL header instead", []string{TTLHeader, tok}, "no token provided"},
		} {
			a := f.do("GET", path, tc.headers...)
			if a.status != 401 || a.body != tc.body {
				t.Errorf("%s %s: %d %q, want 401 %q", path, tc.name, a.status, a.body, tc.body)
			}
		}
	}
	if f.src.calls != 0 {
		t.Errorf("the source was asked %d times for refused requests", f.src.calls)
	}
	if strings.Contains(f.logs.String(), tok) || strings.Contains(f.logs.String(), other) {
		t.Error("a token was logged")
	}
}

// TestTokenExpiry: a token works until its TTL has passed on the clock,
// and not from that instant on.
func TestTokenExpiry(t *testing.T) {
	f := newFixture(t)
	tok := f.token(t, "60")
	f.clock.Advance(59*time.Second + 999*time.Millisecond)
	if a := f.do("GET", CredentialsPath+"ci-deployer", TokenHeader, tok); a.status != 200 {
		t.Fatalf("just before expiry: %d %q", a.status, a.body)
	}
	f.clock.Advance(time.Millisecond)
	for _, path := range []string{CredentialsPath, CredentialsPath + "ci-deployer"} {
		if a := f.do("GET", path, TokenHeader, tok); a.status != 401 || a.body != "invalid token provided" {
			t.Errorf("%s at expiry: %d %q", path, a.status, a.body)
		}
	}
	if f.h.Tokens() != 0 {
		t.Errorf("the expired token is still stored")
	}
	// A new one works.
	if a := f.do("GET", CredentialsPath+"ci-deployer", TokenHeader, f.token(t, "60")); a.status != 200 {
		t.Errorf("a new token: %d", a.status)
	}
}

// TestTokenBound: the store holds at most MaxTokens; expired tokens go
// first, then the earliest-expiring.
func TestTokenBound(t *testing.T) {
	f := newFixture(t)
	h, err := New(Config{RoleName: "r", Source: f.src.get, Clock: f.clock, MaxTokens: 3})
	if err != nil {
		t.Fatal(err)
	}
	f.h = h
	short := f.token(t, "10")
	long1 := f.token(t, "1000")
	long2 := f.token(t, "2000")
	newest := f.token(t, "500") // evicts short, the earliest-expiring
	if h.Tokens() != 3 {
		t.Fatalf("%d tokens", h.Tokens())
	}
	for tok, want := range map[string]int{short: 401, long1: 200, long2: 200, newest: 200} {
		if a := f.do("GET", CredentialsPath, TokenHeader, tok); a.status != want {
			t.Errorf("token %.6s: %d, want %d", tok, a.status, want)
		}
	}
}

// TestNeverEmptyCredentials: a source error, or credentials with an
// empty field or already expired, are 503 with no detail, never 200.
func TestNeverEmptyCredentials(t *testing.T) {
	expired := goodCreds()
	expired.Expiration = t0
	for name, tc := range map[string]struct {
		c   Credentials
		err error
	}{
		"source error":   {goodCreds(), errors.New("CreateSession failed at /etc/secret/path")},
		"empty":          {Credentials{}, nil},
		"no token":       {Credentials{AccessKeyID: "A", SecretAccessKey: "S", Expiration: t0.Add(time.Hour)}, nil},
		"no secret":      {Credentials{AccessKeyID: "A", Token: "T", Expiration: t0.Add(time.Hour)}, nil},
		"no key id":      {Credentials{SecretAccessKey: "S", Token: "T", Expiration: t0.Add(time.Hour)}, nil},
		"no expiration":  {Credentials{AccessKeyID: "A", SecretAccessKey: "S", Token: "T"}, nil},
		"expired at now": {expired, nil},
	} {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t)
			f.src.set(tc.c, tc.err)
			a := f.do("GET", CredentialsPath+"ci-deployer", TokenHeader, f.token(t, "60"))
			if a.status != 503 || strings.Contains(a.body, "Success") || strings.Contains(a.body, "/etc/secret") {
				t.Errorf("%d %q, want 503 with no detail", a.status, a.body)
			}
		})
	}
}

// TestHostCheck: a Host that is a name other than localhost is refused
// before anything else (DNS rebinding), token request included.
func TestHostCheck(t *testing.T) {
	f := newFixture(t)
	for host, want := range map[string]int{
		"127.0.0.1:9911": 200, "localhost:9911": 200, "LOCALHOST:9911": 200, "[::1]:9911": 200, "10.0.0.5:9911": 200,
		"169.254.169.254": 200, "127.0.0.1": 200,
		"attacker.example:9911": 403, "localtest.me:9911": 403, "": 403, "[fe80::1%eth0]:9911": 403,
	} {
		r := httptest.NewRequest("PUT", TokenPath, nil)
		r.Host = host
		w := httptest.NewRecorder()
		f.h.ServeHTTP(w, r)
		if w.Code != want {
			t.Errorf("Host %q: %d, want %d", host, w.Code, want)
		}
	}
}

// TestSourceAllow: with Allow set, a caller it refuses gets 403 for the
// token and for the credentials, before a token is checked or the
// source asked; an allowed caller is served.
func TestSourceAllow(t *testing.T) {
	src := &source{creds: goodCreds()}
	allowed := netip.MustParseAddr("172.17.0.5")
	h, err := New(Config{RoleName: "ci-deployer", Source: src.get, Clock: testkit.NewClock(t0),
		Allow: func(a netip.Addr) bool { return a == allowed }})
	if err != nil {
		t.Fatal(err)
	}
	serve := func(remote, method, path, token string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(method, "http://172.17.0.1:9911"+path, nil)
		r.RemoteAddr = remote
		r.Header.Set("X-aws-ec2-metadata-token-ttl-seconds", "60")
		if token != "" {
			r.Header.Set("X-aws-ec2-metadata-token", token)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	w := serve("172.17.0.5:40000", "PUT", TokenPath, "")
	if w.Code != 200 {
		t.Fatalf("allowed caller's token: %d %s", w.Code, w.Body)
	}
	token := w.Body.String()
	if w := serve("[::ffff:172.17.0.5]:40000", "GET", CredentialsPath+"ci-deployer", token); w.Code != 200 {
		t.Fatalf("allowed caller (v4-mapped) credentials: %d %s", w.Code, w.Body)
	}
	calls := src.calls
	for _, remote := range []string{"192.168.1.20:40000", "[fe80::1]:40000", "garbage"} {
		if w := serve(remote, "PUT", TokenPath, ""); w.Code != 403 {
			t.Errorf("%s: token request answered %d", remote, w.Code)
		}
		if w := serve(remote, "GET", CredentialsPath+"ci-deployer", token); w.Code != 403 || strings.Contains(w.Body.String(), goodCreds().SecretAccessKey) {
			t.Errorf("%s, with a valid token: credentials answered %d", remote, w.Code)
		}
	}
	if src.calls != calls {
		t.Errorf("the source was asked for refused callers")
	}
}

func TestNewRefuses(t *testing.T) {
	src := (&source{}).get
	for name, c := range map[string]Config{
		"no role":      {Source: src},
		"role path":    {RoleName: "a/b", Source: src},
		"no source":    {RoleName: "r"},
		"negative max": {RoleName: "r", Source: src, MaxTokens: -1},
	} {
		if _, err := New(c); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestHopLimit: every accepted connection's TTL is the hop limit, read
// back from the socket the answer leaves on (getsockopt), over IPv4 and
// IPv6; and an out-of-range limit is refused.
func TestHopLimit(t *testing.T) {
	for _, tc := range []struct {
		addr, dial string
		limit      int
	}{
		{"127.0.0.1:0", "127.0.0.1", 1}, {"127.0.0.1:0", "127.0.0.1", 64}, {"127.0.0.1:0", "127.0.0.1", 255},
		{"[::1]:0", "::1", 1}, {"[::1]:0", "::1", 7}, {"0.0.0.0:0", "127.0.0.1", 1},
		{"[::]:0", "::1", 3}, {"[::]:0", "127.0.0.1", 2}, // an IPv4 peer of a dual-stack socket
	} {
		t.Run(tc.addr+"/"+tc.dial+"/"+strconv.Itoa(tc.limit), func(t *testing.T) {
			conn, listener := acceptedHopLimit(t, tc.addr, tc.dial, tc.limit)
			if conn != tc.limit || listener != tc.limit {
				t.Errorf("hop limit %d on the connection, %d on the listener; want %d", conn, listener, tc.limit)
			}
		})
	}
	for _, bad := range []int{0, -1, 256} {
		if _, err := Listen("127.0.0.1:0", bad, nil); err == nil {
			t.Errorf("hop limit %d accepted", bad)
		}
	}
}

// acceptedHopLimit listens on addr with limit, connects from dial, and
// reads the hop limit of the accepted connection and of the listening
// socket (for dial's family).
func acceptedHopLimit(t *testing.T, addr, dial string, limit int) (conn, listener int) {
	t.Helper()
	ln, err := Listen(addr, limit, nil)
	if err != nil {
		if strings.Contains(addr, ":]") || strings.Contains(addr, "::") {
			t.Skipf("no IPv6 here: %v", err)
		}
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	c, err := net.Dial("tcp", net.JoinHostPort(dial, strconv.Itoa(port)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	if conn, err = HopLimit(sc); err != nil {
		t.Fatal(err)
	}
	raw, err := ln.(*ttlListener).Listener.(*net.TCPListener).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var gerr error
	raw.Control(func(fd uintptr) {
		if strings.Contains(dial, ":") {
			listener, gerr = getsockoptInt(fd, syscall.IPPROTO_IPV6, syscall.IPV6_UNICAST_HOPS)
		} else {
			listener, gerr = getsockoptInt(fd, syscall.IPPROTO_IP, syscall.IP_TTL)
		}
	})
	if gerr != nil {
		t.Fatal(gerr)
	}
	return conn, listener
}

// TestStartServes: Start serves a handler on a listener with the hop
// limit; one request end to end over TCP.
func TestStartServes(t *testing.T) {
	f := newFixture(t)
	s, err := Start("127.0.0.1:0", 1, f.h, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	req, _ := http.NewRequest("PUT", s.URL()+TokenPath, nil)
	req.Header.Set(TTLHeader, "21600")
	resp, body := testkit.Do(t, http.DefaultClient, req)
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	req, _ = http.NewRequest("GET", s.URL()+CredentialsPath+"ci-deployer", nil)
	req.Header.Set(TokenHeader, string(body))
	resp, body = testkit.Do(t, http.DefaultClient, req)
	var got map[string]string
	if resp.StatusCode != 200 || json.Unmarshal(body, &got) != nil || got["AccessKeyId"] != "ASIAEXAMPLE" {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	// Headers beyond MaxHeaderBytes are refused before the handler.
	resp, _ = testkit.Raw(t, s.Addr().String(), "GET "+CredentialsPath+" HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: "+strings.Repeat("a", MaxHeaderBytes)+"\r\n\r\n")
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("oversized headers: %d", resp.StatusCode)
	}
}

// TestListenFamily: 0.0.0.0 answers IPv4 only (Go alone would make it a
// dual-stack socket that answers IPv6 too).
func TestListenFamily(t *testing.T) {
	ln, err := Listen("0.0.0.0:0", 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	if ln.Addr().(*net.TCPAddr).IP.To4() == nil {
		t.Errorf("listening on %s", ln.Addr())
	}
	if c, err := net.Dial("tcp", net.JoinHostPort("::1", port)); err == nil {
		c.Close()
		t.Error("0.0.0.0 answered on ::1")
	}
}
