package rolesanywhere_test

import (
	"bufio"
	"context"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyless-dev/keyless/internal/pki"
	"github.com/keyless-dev/keyless/internal/pki/pkitest"
	"github.com/keyless-dev/keyless/internal/rolesanywhere"
	"github.com/keyless-dev/keyless/internal/rolesanywhere/rolesanywheretest"
	"github.com/keyless-dev/keyless/internal/sigv4"
)

const (
	taARN   = rolesanywheretest.TrustAnchorARN
	profARN = rolesanywheretest.ProfileARN
	roleARN = rolesanywheretest.RoleARN
)

var input = rolesanywhere.SessionInput{TrustAnchorARN: taARN, ProfileARN: profARN, RoleARN: roleARN, DurationSeconds: 3600}

type harness struct {
	srv    *rolesanywheretest.Server
	client *rolesanywhere.Client
	signer *sigv4.X509Signer
	mu     sync.Mutex
	sleeps []time.Duration
}

func newHarness(t *testing.T, kind string, mutate func(*rolesanywhere.Config)) *harness {
	t.Helper()
	root := pkitest.NewRoot(t, "client-root")
	inter := root.Intermediate(t, "client-int")
	key := pkitest.Key(t, kind)
	h := &harness{
		srv:    rolesanywheretest.NewServer(),
		signer: &sigv4.X509Signer{Key: key, Certificate: inter.Leaf(t, pkitest.LeafOptions{Key: key}), Intermediates: []*x509.Certificate{inter.Cert}},
	}
	t.Cleanup(h.srv.Close)
	h.srv.Roots = x509.NewCertPool()
	h.srv.Roots.AddCert(root.Cert)
	h.srv.Region = "us-east-1"
	clock := time.Now()
	cfg := rolesanywhere.Config{
		Endpoint: h.srv.URL,
		Region:   "us-east-1",
		Signer:   h.signer,
		// Each attempt sees the clock one second later, so re-signing shows.
		Now: func() time.Time { h.mu.Lock(); defer h.mu.Unlock(); clock = clock.Add(time.Second); return clock },
		Sleep: func(_ context.Context, d time.Duration) error {
			h.mu.Lock()
			defer h.mu.Unlock()
			h.sleeps = append(h.sleeps, d)
			return nil
		},
		Jitter: func(max time.Duration) time.Duration { return max },
	}
	if mutate != nil {
		mutate(&cfg)
	}
	c, err := rolesanywhere.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.client = c
	return h
}

func TestCreateSession(t *testing.T) {
	for _, kind := range []string{pkitest.P256, pkitest.P384, pkitest.RSA2048} {
		t.Run(kind, func(t *testing.T) {
			h := newHarness(t, kind, nil)
			in := input
			in.RoleSessionName = "job-42"
			sess, err := h.client.CreateSession(context.Background(), in)
			if err != nil {
				t.Fatal(err)
			}
			c := sess.Credentials
			if !strings.HasPrefix(c.AccessKeyID, "ASIA") || c.SecretAccessKey == "" || c.SessionToken == "" {
				t.Fatalf("bad credentials %+v", c)
			}
			if d := time.Until(c.Expiration); d < 59*time.Minute || d > 61*time.Minute {
				t.Fatalf("expiration in %s, want about 1h", d)
			}
			if sess.AssumedRoleARN != "arn:aws:sts::111122223333:assumed-role/ci-deployer/job-42" || sess.RoleARN != roleARN {
				t.Fatalf("session %+v", sess)
			}
			req := h.srv.Requests()[0]
			wantQuery := "profileArn=arn%3Aaws%3Arolesanywhere%3Aus-east-1%3A111122223333%3Aprofile%2F3f7c1a0e-0000-4000-8000-000000000002" +
				"&roleArn=arn%3Aaws%3Aiam%3A%3A111122223333%3Arole%2Fci-deployer" +
				"&trustAnchorArn=arn%3Aaws%3Arolesanywhere%3Aus-east-1%3A111122223333%3Atrust-anchor%2F3f7c1a0e-0000-4000-8000-000000000001"
			if req.Query != wantQuery {
				t.Errorf("query %s\nwant  %s", req.Query, wantQuery)
			}
			if string(req.Body) != `{"durationSeconds":3600,"roleSessionName":"job-42"}` {
				t.Errorf("body %s", req.Body)
			}
			if req.Header.Get("Content-Type") != "application/json" {
				t.Errorf("content type %q", req.Header.Get("Content-Type"))
			}
		})
	}
}

func TestCreateSessionEndpointPathPrefix(t *testing.T) {
	h := newHarness(t, pkitest.P256, nil)
	c, err := rolesanywhere.New(rolesanywhere.Config{Endpoint: h.srv.URL + "/prefix/", Region: "us-east-1", Signer: h.signer})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateSession(context.Background(), input); err != nil {
		t.Fatal(err)
	}
}

func TestRetries(t *testing.T) {
	tests := []struct {
		name       string
		failures   []rolesanywheretest.Failure
		wantCalls  int
		wantErr    string
		wantSleeps []time.Duration
	}{
		{"500-then-success", []rolesanywheretest.Failure{{Status: 500, Code: "InternalServerException", Message: "oops"}}, 2, "", []time.Duration{200 * time.Millisecond}},
		{"503-twice-then-success", []rolesanywheretest.Failure{{Status: 503}, {Status: 503}}, 3, "", []time.Duration{200 * time.Millisecond, 400 * time.Millisecond}},
		{"throttled-400", []rolesanywheretest.Failure{{Status: 400, Code: "ThrottlingException", Message: "Rate exceeded"}}, 2, "", []time.Duration{200 * time.Millisecond}},
		{"429-with-retry-after", []rolesanywheretest.Failure{{Status: 429, Code: "TooManyRequestsException", RetryAfter: "3"}}, 2, "", []time.Duration{3 * time.Second}},
		{"connection-dropped", []rolesanywheretest.Failure{{CloseConnection: true}}, 2, "", []time.Duration{200 * time.Millisecond}},
		{"access-denied-is-final", []rolesanywheretest.Failure{{Status: 403, Code: "AccessDeniedException", Message: "Not authorized to set roleSessionName."}}, 1,
			"CreateSession refused (AccessDeniedException): Not authorized to set roleSessionName.", nil},
		{"validation-is-final", []rolesanywheretest.Failure{{Status: 400, Code: "ValidationException", Message: "1 validation error"}}, 1,
			"CreateSession refused (ValidationException): 1 validation error", nil},
		{"not-found-is-final", []rolesanywheretest.Failure{{Status: 404, Code: "ResourceNotFoundException", Message: "Trust anchor not found"}}, 1,
			"CreateSession refused (ResourceNotFoundException): Trust anchor not found", nil},
		{"three-5xx-give-up", []rolesanywheretest.Failure{{Status: 502}, {Status: 502}, {Status: 502}, {Status: 502}}, 3,
			"CreateSession refused (HTTP 502) (after 3 attempts)", []time.Duration{200 * time.Millisecond, 400 * time.Millisecond}},
		{"redirect-not-followed", []rolesanywheretest.Failure{{Status: 307}}, 1, "CreateSession refused (HTTP 307)", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, pkitest.P256, nil)
			h.srv.FailNext(tt.failures...)
			_, err := h.client.CreateSession(context.Background(), input)
			if tt.wantErr == "" && err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if tt.wantErr != "" && (err == nil || err.Error() != tt.wantErr) {
				t.Fatalf("error %v, want %q", err, tt.wantErr)
			}
			if got := h.srv.Calls(); got != tt.wantCalls {
				t.Fatalf("%d calls, want %d", got, tt.wantCalls)
			}
			if len(h.sleeps) != len(tt.wantSleeps) {
				t.Fatalf("slept %v, want %v", h.sleeps, tt.wantSleeps)
			}
			for i := range h.sleeps {
				if h.sleeps[i] != tt.wantSleeps[i] {
					t.Fatalf("slept %v, want %v", h.sleeps, tt.wantSleeps)
				}
			}
			// Every attempt carries its own date and signature.
			reqs := h.srv.Requests()
			for i := 1; i < len(reqs); i++ {
				if reqs[i].Header.Get("X-Amz-Date") == reqs[i-1].Header.Get("X-Amz-Date") || reqs[i].Header.Get("Authorization") == reqs[i-1].Header.Get("Authorization") {
					t.Fatal("a retry reused the previous attempt's date or signature")
				}
			}
		})
	}
}

func TestConnectionRefusedIsRetriedThenReported(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	h := newHarness(t, pkitest.P256, func(c *rolesanywhere.Config) { c.Endpoint = "http://" + addr })
	_, err = h.client.CreateSession(context.Background(), input)
	var te *rolesanywhere.TransportError
	if !errors.As(err, &te) || te.Attempts != 3 || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("got %v", err)
	}
	if len(h.sleeps) != 2 {
		t.Fatalf("slept %v", h.sleeps)
	}
}

func TestCancelledContextStopsRetries(t *testing.T) {
	h := newHarness(t, pkitest.P256, nil)
	h.srv.FailNext(rolesanywheretest.Failure{Status: 500}, rolesanywheretest.Failure{Status: 500})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := h.client.CreateSession(ctx, input); err == nil {
		t.Fatal("cancelled call succeeded")
	}
	if h.srv.Calls() != 0 || len(h.sleeps) != 0 {
		t.Fatalf("%d calls, sleeps %v after cancellation", h.srv.Calls(), h.sleeps)
	}
}

func TestAttemptTimeoutIsRetried(t *testing.T) {
	block := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-block }))
	t.Cleanup(func() { close(block); slow.Close() })
	h := newHarness(t, pkitest.P256, func(c *rolesanywhere.Config) {
		c.Endpoint = slow.URL
		c.AttemptTimeout = 50 * time.Millisecond
		c.MaxAttempts = 2
	})
	_, err := h.client.CreateSession(context.Background(), input)
	var te *rolesanywhere.TransportError
	if !errors.As(err, &te) || te.Attempts != 2 || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v", err)
	}
}

func TestBadAnswers(t *testing.T) {
	tests := map[string]struct {
		body string
		want string
	}{
		"not-json":         {`<html>`, "not CreateSession JSON"},
		"empty-set":        {`{"credentialSet":[]}`, "empty credentialSet"},
		"missing-token":    {`{"credentialSet":[{"credentials":{"accessKeyId":"ASIA1","secretAccessKey":"s","expiration":"2099-01-01T00:00:00Z"}}]}`, "sessionToken"},
		"newline-in-key":   {`{"credentialSet":[{"credentials":{"accessKeyId":"ASIA1\nexport X=1","secretAccessKey":"s","sessionToken":"t","expiration":"2099-01-01T00:00:00Z"}}]}`, "accessKeyId"},
		"quote-in-secret":  {`{"credentialSet":[{"credentials":{"accessKeyId":"ASIA1","secretAccessKey":"s'; rm -rf ~","sessionToken":"t","expiration":"2099-01-01T00:00:00Z"}}]}`, "secretAccessKey"},
		"bad-expiration":   {`{"credentialSet":[{"credentials":{"accessKeyId":"ASIA1","secretAccessKey":"s","sessionToken":"t","expiration":"tomorrow"}}]}`, "RFC 3339"},
		"already-expired":  {`{"credentialSet":[{"credentials":{"accessKeyId":"ASIA1","secretAccessKey":"s","sessionToken":"t","expiration":"2001-01-01T00:00:00Z"}}]}`, "clock"},
		"oversized-answer": {strings.Repeat(" ", 1<<20+10), "larger than"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusCreated)
				io.WriteString(w, tt.body)
			}))
			t.Cleanup(srv.Close)
			h := newHarness(t, pkitest.P256, func(c *rolesanywhere.Config) { c.Endpoint = srv.URL })
			_, err := h.client.CreateSession(context.Background(), input)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error mentioning %q", err, tt.want)
			}
		})
	}
}

func TestErrorMessageIsCleaned(t *testing.T) {
	h := newHarness(t, pkitest.P256, nil)
	h.srv.FailNext(rolesanywheretest.Failure{Status: 403, Code: "AccessDeniedException", Message: "bad\x1b[31mred\x07" + strings.Repeat("x", 1000)})
	_, err := h.client.CreateSession(context.Background(), input)
	if err == nil || strings.ContainsAny(err.Error(), "\x1b\x07") || len(err.Error()) > 400 {
		t.Fatalf("error not cleaned: %q", err)
	}
}

func TestTLS(t *testing.T) {
	srv := rolesanywheretest.NewTLSServer()
	t.Cleanup(srv.Close)
	serverCA := pki.EncodeCertificates(srv.Certificate())

	t.Run("unknown-authority-is-final", func(t *testing.T) {
		h := newHarness(t, pkitest.P256, func(c *rolesanywhere.Config) { c.Endpoint = srv.URL })
		_, err := h.client.CreateSession(context.Background(), input)
		if err == nil || !strings.Contains(err.Error(), "certificate") || len(h.sleeps) != 0 {
			t.Fatalf("got %v after %d sleeps", err, len(h.sleeps))
		}
	})
	t.Run("ca-bundle", func(t *testing.T) {
		hc, err := rolesanywhere.NewHTTPClient(rolesanywhere.TransportOptions{RootCAs: serverCA})
		if err != nil {
			t.Fatal(err)
		}
		h := newHarness(t, pkitest.P256, func(c *rolesanywhere.Config) { c.Endpoint = srv.URL; c.HTTPClient = hc })
		if _, err := h.client.CreateSession(context.Background(), input); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("no-verify", func(t *testing.T) {
		hc, err := rolesanywhere.NewHTTPClient(rolesanywhere.TransportOptions{InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		h := newHarness(t, pkitest.P256, func(c *rolesanywhere.Config) { c.Endpoint = srv.URL; c.HTTPClient = hc })
		if _, err := h.client.CreateSession(context.Background(), input); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("bundle-without-certificates", func(t *testing.T) {
		if _, err := rolesanywhere.NewHTTPClient(rolesanywhere.TransportOptions{RootCAs: []byte("junk")}); err == nil {
			t.Fatal("accepted a bundle with no certificate")
		}
	})
}

// proxyOnce starts one CONNECT proxy per test process: the proxy settings
// are read from the environment once per process (http.ProxyFromEnvironment),
// so every run of TestProxy (go test -count=N) must find the same proxy.
var (
	proxyOnce    sync.Once
	proxyURL     string
	proxyMu      sync.Mutex
	proxyConnect []string
	proxyTarget  string
)

func startProxy() {
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodConnect {
			http.Error(w, "CONNECT only", http.StatusMethodNotAllowed)
			return
		}
		proxyMu.Lock()
		proxyConnect = append(proxyConnect, r.Host)
		target := proxyTarget
		proxyMu.Unlock()
		upstream, err := net.Dial("tcp", target)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		conn, buf, err := w.(http.Hijacker).Hijack()
		if err != nil {
			upstream.Close()
			return
		}
		io.WriteString(conn, "HTTP/1.1 200 Connection established\r\n\r\n")
		go func() { io.Copy(upstream, bufio.NewReader(buf)); upstream.Close() }()
		go func() { io.Copy(conn, upstream); conn.Close() }()
	}))
	proxyURL = proxy.URL
}

// TestProxy sends CreateSession to https://example.com through an HTTP
// CONNECT proxy on loopback that tunnels to the fake endpoint (whose test
// certificate is valid for example.com), as a runner behind a corporate
// proxy would, with the proxy taken from HTTPS_PROXY.
func TestProxy(t *testing.T) {
	srv := rolesanywheretest.NewTLSServer()
	t.Cleanup(srv.Close)
	proxyOnce.Do(startProxy)
	proxyMu.Lock()
	proxyConnect, proxyTarget = nil, srv.Listener.Addr().String()
	proxyMu.Unlock()
	t.Setenv("HTTPS_PROXY", proxyURL)
	t.Setenv("NO_PROXY", "")

	hc, err := rolesanywhere.NewHTTPClient(rolesanywhere.TransportOptions{RootCAs: pki.EncodeCertificates(srv.Certificate()), UseProxy: true})
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, pkitest.P256, func(c *rolesanywhere.Config) { c.Endpoint = "https://example.com"; c.HTTPClient = hc })
	if _, err := h.client.CreateSession(context.Background(), input); err != nil {
		t.Fatal(err)
	}
	proxyMu.Lock()
	defer proxyMu.Unlock()
	if len(proxyConnect) != 1 || proxyConnect[0] != "example.com:443" {
		t.Fatalf("proxy saw CONNECT %v", proxyConnect)
	}
}
