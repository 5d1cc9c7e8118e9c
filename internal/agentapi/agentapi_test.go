package agentapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyless-dev/keyless/internal/testkit"
)

// vendor answers what the test sets and records what it was asked.
type vendor struct {
	mu    sync.Mutex
	asked []Request
	creds *Credentials
	err   error
}

func (v *vendor) Vend(ctx context.Context, r Request) (*Credentials, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.asked = append(v.asked, r)
	return v.creds, v.err
}

func (v *vendor) requests() []Request {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]Request(nil), v.asked...)
}

func goodCreds() *Credentials {
	return &Credentials{AccessKeyID: "ASIAEXAMPLE", SecretAccessKey: "secret", Token: "session", AccountID: "111122223333",
		Expiration: time.Now().Add(time.Hour).Round(time.Second)}
}

type status struct{}

func (status) Status(context.Context) *Status { return &Status{Version: "test"} }

// rawGet sends a request exactly as written and returns the status, the
// Content-Type and the body.
func rawGet(t *testing.T, addr, request string) (int, string, []byte) {
	t.Helper()
	resp, body := testkit.Raw(t, addr, request)
	return resp.StatusCode, resp.Header.Get("Content-Type"), body
}

func startContainer(t *testing.T, v Vendor) string {
	t.Helper()
	return serveBound(t, func(bound string) http.Handler { return ContainerHandler(v, Hosts(bound), "test") })
}

// serveBound serves, with StartContainer on a loopback port, the handler
// handler makes for the bound address (as the agent builds its handlers
// for the port it got), and returns that address.
func serveBound(t *testing.T, handler func(bound string) http.Handler) string {
	t.Helper()
	var h http.Handler
	ready := make(chan struct{})
	s, err := StartContainer("127.0.0.1:0", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-ready
		h.ServeHTTP(w, r)
	}), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	h = handler(s.Addr().String())
	close(ready)
	return s.Addr().String()
}

func TestContainerAnswers(t *testing.T) {
	c := goodCreds()
	v := &vendor{creds: c}
	addr := startContainer(t, v)
	token := "glcbt-abc def\tverbatim"
	st, ct, body := rawGet(t, addr, "GET /v1/credentials HTTP/1.1\r\nHost: "+addr+"\r\nAuthorization: "+token+"\r\nConnection: close\r\n\r\n")
	if st != 200 || ct != "application/json" {
		t.Fatalf("%d %q: %s", st, ct, body)
	}
	var got map[string]string
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"AccessKeyId": c.AccessKeyID, "SecretAccessKey": c.SecretAccessKey, "Token": c.Token,
		"Expiration": c.Expiration.UTC().Format(time.RFC3339), "AccountId": c.AccountID}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s = %q, want %q", k, got[k], w)
		}
	}
	if !strings.HasSuffix(got["Expiration"], "Z") {
		t.Errorf("Expiration %q is not UTC with Z", got["Expiration"])
	}
	if r := v.requests(); len(r) != 1 || r[0].Token != token || r[0].Peer != nil || r[0].Listener != "test" {
		t.Errorf("the vendor was asked %+v", r)
	}
}

// TestContainerRefusals: every refusal is JSON {"code","message"} with
// Content-Type exactly application/json, and the vendor is not asked when
// the Host or the method is wrong.
func TestContainerRefusals(t *testing.T) {
	expired := goodCreds()
	expired.Expiration = time.Now().Add(-time.Second)
	for _, tc := range []struct {
		name    string
		creds   *Credentials
		err     error
		request func(addr string) string
		status  int
		code    string
		asked   bool
	}{
		{"wrong host", goodCreds(), nil, func(addr string) string {
			return "GET /v1/credentials HTTP/1.1\r\nHost: evil.example:80\r\nConnection: close\r\n\r\n"
		}, 403, "WrongHost", false},
		{"host without the port", goodCreds(), nil, func(addr string) string {
			return "GET /v1/credentials HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
		}, 403, "WrongHost", false},
		{"post", goodCreds(), nil, func(addr string) string {
			return "POST /v1/credentials HTTP/1.1\r\nHost: " + addr + "\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
		}, 405, "MethodNotAllowed", false},
		{"refused", nil, &Refusal{Status: 401, Code: "Unauthorized", Message: "no token"}, func(addr string) string {
			return "GET /v1/credentials HTTP/1.1\r\nHost: " + addr + "\r\nConnection: close\r\n\r\n"
		}, 401, "Unauthorized", true},
		{"forbidden", nil, fmt.Errorf("wrapped: %w", &Refusal{Status: 403, Code: "AccessDenied", Message: "no rule"}), func(addr string) string {
			return "GET /v1/credentials HTTP/1.1\r\nHost: " + addr + "\r\nConnection: close\r\n\r\n"
		}, 403, "AccessDenied", true},
		{"internal error hides its detail", nil, errors.New("secret detail"), func(addr string) string {
			return "GET /v1/credentials HTTP/1.1\r\nHost: " + addr + "\r\nConnection: close\r\n\r\n"
		}, 500, "InternalError", true},
		{"expired credentials", expired, nil, func(addr string) string {
			return "GET /v1/credentials HTTP/1.1\r\nHost: " + addr + "\r\nConnection: close\r\n\r\n"
		}, 500, "InternalError", true},
		{"empty credentials", &Credentials{Expiration: time.Now().Add(time.Hour)}, nil, func(addr string) string {
			return "GET /v1/credentials HTTP/1.1\r\nHost: " + addr + "\r\nConnection: close\r\n\r\n"
		}, 500, "InternalError", true},
		{"no credentials", nil, nil, func(addr string) string {
			return "GET /v1/credentials HTTP/1.1\r\nHost: " + addr + "\r\nConnection: close\r\n\r\n"
		}, 500, "InternalError", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := &vendor{creds: tc.creds, err: tc.err}
			addr := startContainer(t, v)
			st, ct, body := rawGet(t, addr, tc.request(addr))
			if st != tc.status || ct != "application/json" {
				t.Fatalf("%d %q, want %d application/json: %s", st, ct, tc.status, body)
			}
			var e map[string]string
			if err := json.Unmarshal(body, &e); err != nil || e["code"] != tc.code || e["message"] == "" {
				t.Errorf("body %s, want code %q and a message", body, tc.code)
			}
			if strings.Contains(string(body), "secret") || strings.Contains(string(body), "AccessKeyId") {
				t.Errorf("the refusal leaks: %s", body)
			}
			if asked := len(v.requests()) > 0; asked != tc.asked {
				t.Errorf("vendor asked: %v, want %v", asked, tc.asked)
			}
		})
	}
}

// TestHeaderLimit: a request whose line and headers pass 8 KiB gets 431
// and never reaches the vendor; one just under goes through.
func TestHeaderLimit(t *testing.T) {
	v := &vendor{creds: goodCreds()}
	addr := startContainer(t, v)
	build := func(total int) string {
		head := "GET /v1/credentials HTTP/1.1\r\nHost: " + addr + "\r\nConnection: close\r\nAuthorization: "
		pad := total - len(head) - len("\r\n\r\n")
		return head + strings.Repeat("a", pad) + "\r\n\r\n"
	}
	if st, _, body := rawGet(t, addr, build(MaxHeaderBytes-200)); st != 200 {
		t.Fatalf("a request of %d bytes: %d %s", MaxHeaderBytes-200, st, body)
	}
	for _, size := range []int{MaxHeaderBytes + 1, MaxHeaderBytes + 100, 64 << 10} {
		before := len(v.requests())
		st, _, _ := rawGet(t, addr, build(size))
		if st != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("a request of %d bytes: %d, want 431", size, st)
		}
		if len(v.requests()) != before {
			t.Errorf("a request of %d bytes reached the vendor", size)
		}
	}
}

func TestHosts(t *testing.T) {
	for addr, want := range map[string]string{
		"169.254.170.2:80":   "169.254.170.2:80 169.254.170.2",
		"127.0.0.1:9911":     "127.0.0.1:9911 localhost:9911",
		"[fd00:ec2::23]:80":  "[fd00:ec2::23]:80 [fd00:ec2::23]",
		"169.254.170.23:800": "169.254.170.23:800",
	} {
		if got := strings.Join(Hosts(addr), " "); got != want {
			t.Errorf("Hosts(%s) = %s, want %s", addr, got, want)
		}
	}
}

func TestUnixSocket(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "agent.sock")
	v := &vendor{creds: goodCreds()}
	s, err := StartUnix(path, 0o660, os.Getgid(), LocalHandler(v, status{}), nil)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(path)
	if err != nil || fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o660 {
		t.Fatalf("socket: %v %v", fi, err)
	}
	if names, _ := os.ReadDir(dir); len(names) != 1 {
		t.Errorf("left behind: %v", names)
	}
	c, err := NewClient(path, "")
	if err != nil {
		t.Fatal(err)
	}
	creds, err := c.Credentials(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if creds.AccessKeyID != "ASIAEXAMPLE" || creds.Token != "session" {
		t.Errorf("credentials %+v", creds)
	}
	r := v.requests()
	if len(r) != 1 || r[0].Peer == nil || r[0].Peer.UID != uint32(os.Getuid()) || r[0].Peer.GID != uint32(os.Getgid()) || r[0].Peer.PID != int32(os.Getpid()) || r[0].Token != "" {
		t.Errorf("the vendor was asked %+v", r)
	}
	st, err := c.Status(context.Background())
	if err != nil || st.Version != "test" {
		t.Errorf("status %+v, %v", st, err)
	}
	v.err = &Refusal{Status: 403, Code: "AccessDenied", Message: "no rule for uid 1000"}
	var ae *AgentError
	if _, err := c.Credentials(context.Background()); !errors.As(err, &ae) || ae.Status != 403 || ae.Message != "no rule for uid 1000" {
		t.Errorf("refusal: %v", err)
	}
	// A second agent on the same path is refused while the first runs.
	if _, err := StartUnix(path, 0o600, -1, LocalHandler(v, status{}), nil); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Errorf("second agent: %v", err)
	}
	s.Close()
	if _, err := os.Lstat(path); !os.IsNotExist(err) {
		t.Errorf("the socket outlives its agent: %v", err)
	}
}

func TestUnixSocketPath(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "not-a-socket")
	if err := os.WriteFile(file, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := StartUnix(file, 0o600, -1, LocalHandler(&vendor{}, status{}), nil); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("over a file: %v", err)
	}
	if data, _ := os.ReadFile(file); string(data) != "keep me" {
		t.Error("the file was replaced")
	}
	link := filepath.Join(dir, "link.sock")
	if err := os.Symlink(file, link); err != nil {
		t.Fatal(err)
	}
	if _, err := StartUnix(link, 0o600, -1, LocalHandler(&vendor{}, status{}), nil); err == nil {
		t.Error("a link at the socket's path was replaced")
	}
	// A socket left by an agent that is gone is replaced.
	stale := filepath.Join(dir, "stale.sock")
	ln, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	s, err := StartUnix(stale, 0o600, -1, LocalHandler(&vendor{}, status{}), nil)
	if err != nil {
		t.Fatalf("over a stale socket: %v", err)
	}
	s.Close()
}

// TestLocalAPIWithoutPeer: over TCP there is no peer, so no credentials.
func TestLocalAPIWithoutPeer(t *testing.T) {
	v := &vendor{creds: goodCreds()}
	s, err := StartContainer("127.0.0.1:0", LocalHandler(v, status{}), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	st, _, _ := rawGet(t, s.Addr().String(), "GET /v1/credentials HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	if st != 401 || len(v.requests()) != 0 {
		t.Errorf("status %d, vendor asked %d times", st, len(v.requests()))
	}
}

func TestMetricsLoopbackOnly(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", "10.0.0.5:9464", "[::]:0"} {
		if s, err := StartMetrics(addr, func(io.Writer) {}, nil); err == nil {
			s.Close()
			t.Errorf("metrics on %s", addr)
		}
	}
	s, err := StartMetrics("127.0.0.1:0", func(w io.Writer) { io.WriteString(w, "x 1\n") }, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	st, ct, body := rawGet(t, s.Addr().String(), "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	if st != 200 || !strings.HasPrefix(ct, "text/plain; version=0.0.4") || string(body) != "x 1\n" {
		t.Errorf("%d %q %q", st, ct, body)
	}
}

func TestClientOverContainerEndpoint(t *testing.T) {
	v := &vendor{creds: goodCreds()}
	addr := startContainer(t, v)
	c, err := NewClient("http://"+addr+"/v1/credentials", "job-token")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Credentials(context.Background()); err != nil {
		t.Fatal(err)
	}
	if r := v.requests(); len(r) != 1 || r[0].Token != "job-token" {
		t.Errorf("asked %+v", r)
	}
	for _, target := range []string{"http://agent.example/v1/credentials", "http://10.0.0.5/v1/credentials", "http://169.254.170.3/"} {
		if _, err := NewClient(target, "job-token"); err == nil || !strings.Contains(err.Error(), "plain http only") {
			t.Errorf("%s: %v", target, err)
		}
	}
	for _, target := range []string{"http://169.254.170.2/v1/credentials", "http://localhost:9911/", "http://[::1]:80/", "https://agent.example/"} {
		if _, err := NewClient(target, "job-token"); err != nil {
			t.Errorf("%s: %v", target, err)
		}
	}
	if _, err := NewClient("http://"+addr, "a\nb"); err == nil {
		t.Error("a token with a line break was accepted")
	}
	if _, err := c.Status(context.Background()); err == nil {
		t.Error("status over the container endpoint")
	}
}

func FuzzDecodeAnswer(f *testing.F) {
	f.Add(200, []byte(`{"AccessKeyId":"a","SecretAccessKey":"b","Token":"c","Expiration":"2026-01-01T00:00:00Z"}`))
	f.Add(403, []byte(`{"code":"AccessDenied","message":"no"}`))
	f.Add(500, []byte(`<html>`))
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		var a struct {
			AccessKeyID string `json:"AccessKeyId"`
			Expiration  string
		}
		err := decodeAnswer(status, body, &a)
		if status != 200 {
			var ae *AgentError
			if !errors.As(err, &ae) || ae.Status != status {
				t.Fatalf("status %d: %v", status, err)
			}
		}
	})
}

// TestFromOnly: a caller whose address is not allowed gets 403 JSON and
// never reaches the vendor.
func TestFromOnly(t *testing.T) {
	v := &vendor{creds: goodCreds()}
	var h http.Handler
	ready := make(chan struct{})
	s, err := StartContainer("127.0.0.1:0", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-ready
		h.ServeHTTP(w, r)
	}), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	addr := s.Addr().String()
	allowed := false
	h = FromOnly(ContainerHandler(v, Hosts(addr), "test"), func(a netip.Addr) bool { return allowed && a.IsLoopback() })
	close(ready)
	req := "GET /v1/credentials HTTP/1.1\r\nHost: " + addr + "\r\nAuthorization: t\r\nConnection: close\r\n\r\n"
	if st, ct, body := rawGet(t, addr, req); st != 403 || ct != "application/json" || !strings.Contains(string(body), "NotFromAContainer") {
		t.Errorf("refused caller: %d %q %s", st, ct, body)
	}
	if len(v.requests()) != 0 {
		t.Error("a refused caller reached the vendor")
	}
	allowed = true
	if st, _, body := rawGet(t, addr, req); st != 200 {
		t.Errorf("allowed caller: %d %s", st, body)
	}
}
