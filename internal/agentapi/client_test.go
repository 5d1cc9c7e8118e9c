package agentapi

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestNewClientTargets(t *testing.T) {
	for _, tc := range []struct {
		target, token string
		ok            bool
	}{
		{"http://169.254.170.2/v1/credentials", "tok", true},
		{"HTTPS://agent.example/v1/credentials", "tok", true},
		{"/run/keyless/agent.sock", "", true},
		{"./agent.sock", "", true},
		{"agent.sock", "", true},
		{"", "", false},
		{"ftp://agent/v1", "", false},
		{"unix:///run/keyless/agent.sock", "", false},
		{"http:///v1/credentials", "tok", false},
		{"http://agent/v1", "s3cr3t-value\n", false},
		{"http://agent/v1", "s3cr3t\r-value", false},
		{"http://[::1/v1", "tok", false},
	} {
		_, err := NewClient(tc.target, tc.token)
		if (err == nil) != tc.ok {
			t.Errorf("NewClient(%q, %q): %v", tc.target, tc.token, err)
		}
		if err != nil && strings.Contains(err.Error(), "s3cr3t") {
			t.Errorf("the error names the token: %v", err)
		}
	}
}

// TestClientAgentErrors: the agent's refusals come back as *AgentError
// with its status, code and message, over both transports.
func TestClientAgentErrors(t *testing.T) {
	v := &vendor{err: &Refusal{Status: 403, Code: "AccessDenied", Message: "no rule matches project group/app"}}
	addr := startContainer(t, v)
	c, err := NewClient("http://"+addr+"/v1/credentials", "tok")
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Credentials(context.Background())
	var ae *AgentError
	if !errors.As(err, &ae) || ae.Status != 403 || ae.Code != "AccessDenied" || ae.Message != "no rule matches project group/app" {
		t.Fatalf("%#v", err)
	}
	if !strings.Contains(err.Error(), "403") || !strings.Contains(err.Error(), "no rule matches") {
		t.Errorf("message %q", err)
	}
}

// answering is a server that answers every request with status and body.
func answering(t *testing.T, status int, contentType, body string) string {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if contentType != "" {
			w.Header().Set("Content-Type", contentType)
		}
		w.WriteHeader(status)
		io.WriteString(w, body)
	}))
	t.Cleanup(s.Close)
	return s.URL
}

func TestClientAnswers(t *testing.T) {
	future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	past := time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)
	for _, tc := range []struct {
		name   string
		status int
		body   string
		want   string // "" = credentials; else a part of the error
	}{
		{"container answer", 200, `{"AccessKeyId":"a","SecretAccessKey":"b","Token":"c","Expiration":"` + future + `","AccountId":"1"}`, ""},
		{"credential_process answer", 200, `{"Version":1,"AccessKeyId":"a","SecretAccessKey":"b","SessionToken":"c","Expiration":"` + future + `"}`, ""},
		{"both tokens, equal", 200, `{"AccessKeyId":"a","SecretAccessKey":"b","Token":"c","SessionToken":"c","Expiration":"` + future + `"}`, ""},
		{"both tokens, different", 200, `{"AccessKeyId":"a","SecretAccessKey":"b","Token":"c","SessionToken":"d","Expiration":"` + future + `"}`, "two different"},
		{"expired", 200, `{"AccessKeyId":"a","SecretAccessKey":"b","Token":"c","Expiration":"` + past + `"}`, "expired"},
		{"no expiration", 200, `{"AccessKeyId":"a","SecretAccessKey":"b","Token":"c"}`, "Expiration"},
		{"bad expiration", 200, `{"AccessKeyId":"a","SecretAccessKey":"b","Token":"c","Expiration":"tomorrow"}`, "Expiration"},
		{"no token", 200, `{"AccessKeyId":"a","SecretAccessKey":"b","Expiration":"` + future + `"}`, "incomplete"},
		{"no secret", 200, `{"AccessKeyId":"a","Token":"c","Expiration":"` + future + `"}`, "incomplete"},
		{"not JSON", 200, `<html>`, "not what keyless expects"},
		{"an error without JSON", 502, `Bad Gateway`, "502 Bad Gateway"},
		{"an error with JSON", 401, `{"code":"Unauthorized","message":"no token"}`, "no token"},
		{"a status other than 200", 299, `{}`, "299 Unknown"},
		{"an unknown status", 599, `{}`, "599 Unknown"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := NewClient(answering(t, tc.status, "application/json", tc.body), "tok")
			if err != nil {
				t.Fatal(err)
			}
			got, err := c.Credentials(context.Background())
			if tc.want == "" {
				if err != nil || got.AccessKeyID != "a" || got.SecretAccessKey != "b" || got.Token != "c" || got.Expiration.Format(time.RFC3339) != future {
					t.Errorf("%+v %v", got, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one saying %q", err, tc.want)
			}
			if got != nil {
				t.Errorf("credentials with an error: %+v", got)
			}
		})
	}
}

// TestClientBounds: an answer over 1 MiB is refused, a redirect is not
// followed, and a slow agent is bounded by the caller's context.
func TestClientBounds(t *testing.T) {
	big := answering(t, 200, "application/json", `{"AccessKeyId":"`+strings.Repeat("a", maxAnswer)+`"}`)
	c, _ := NewClient(big, "tok")
	if _, err := c.Credentials(context.Background()); err == nil || !strings.Contains(err.Error(), "over") {
		t.Errorf("a large answer: %v", err)
	}
	redirected := make(chan bool, 1)
	target := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { redirected <- true }))
	defer target.Close()
	redirect := httptest.NewServer(http.RedirectHandler(target.URL, http.StatusFound))
	defer redirect.Close()
	c, _ = NewClient(redirect.URL, "tok")
	if _, err := c.Credentials(context.Background()); err == nil || !strings.Contains(err.Error(), "redirect") {
		t.Errorf("a redirect: %v", err)
	}
	select {
	case <-redirected:
		t.Error("the redirect was followed (with the token)")
	default:
	}
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { <-release }))
	defer slow.Close()
	defer close(release)
	c, _ = NewClient(slow.URL, "tok")
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := c.Credentials(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a slow agent: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("waited %v", d)
	}
}

func TestClientNoAgent(t *testing.T) {
	c, err := NewClient(filepath.Join(t.TempDir(), "absent.sock"), "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Status(context.Background()); err == nil || !strings.Contains(err.Error(), "asking the agent") {
		t.Errorf("no agent: %v", err)
	}
}

func FuzzDecodeCredentials(f *testing.F) {
	now := time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)
	f.Add(200, []byte(`{"AccessKeyId":"a","SecretAccessKey":"b","Token":"c","Expiration":"2026-11-27T00:00:00Z","AccountId":"1"}`))
	f.Add(200, []byte(`{"Version":1,"AccessKeyId":"a","SecretAccessKey":"b","SessionToken":"c","Expiration":"2026-11-27T00:00:00+02:00"}`))
	f.Add(200, []byte(`{"AccessKeyId":"a","SecretAccessKey":"b","Token":"c","Expiration":"2026-11-25T00:00:00Z"}`))
	f.Add(403, []byte(`{"code":"AccessDenied","message":"no rule"}`))
	f.Add(431, []byte(`431 Request Header Fields Too Large`))
	f.Add(200, []byte(`null`))
	f.Add(200, []byte(`{"AccessKeyId":1}`))
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		c, err := decodeCredentials(status, body, now)
		if status != http.StatusOK {
			var ae *AgentError
			if !errors.As(err, &ae) || ae.Status != status || ae.Code == "" || c != nil {
				t.Fatalf("status %d: %v %+v", status, err, c)
			}
			return
		}
		if err != nil {
			if c != nil {
				t.Fatal("credentials with an error")
			}
			return
		}
		if c.AccessKeyID == "" || c.SecretAccessKey == "" || c.Token == "" || !c.Expiration.After(now) {
			t.Fatalf("unusable credentials accepted: %+v", c)
		}
	})
}
