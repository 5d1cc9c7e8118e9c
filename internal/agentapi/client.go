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
	"net/url"
	"strings"
	"time"
)

// maxAnswer bounds what the client reads from the agent.
const maxAnswer = 1 << 20

// Client asks a keyless agent: on its unix socket (the local API; the
// agent knows the caller by its uid) or at its container-credentials URL
// (with a token).
type Client struct {
	http   *http.Client
	base   string // http://agent for the socket, else the URL
	socket bool
	token  string
}

// NewClient returns a client of the agent at target: an http:// or
// https:// URL of its container-credentials endpoint, which gets token
// verbatim as its Authorization header (a token with a line break is
// refused, as the SDKs refuse it), or else the path of its unix socket
// (the local API: the agent knows the caller by its uid, and token is
// not sent). It uses no proxy; answers are bounded to 1 MiB and a
// request to a minute.
func NewClient(target, token string) (*Client, error) {
	dialer := &net.Dialer{Timeout: 10 * time.Second}
	t := &http.Transport{DialContext: dialer.DialContext, TLSHandshakeTimeout: 10 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second, MaxIdleConns: 1, DisableCompression: true}
	c := &Client{http: &http.Client{Transport: t, Timeout: time.Minute,
		CheckRedirect: func(*http.Request, []*http.Request) error { return errors.New("the agent does not redirect") }}}
	scheme, _, isURL := strings.Cut(target, "://")
	switch {
	case target == "":
		return nil, errors.New("no agent: give its socket path or its URL")
	case isURL && !strings.EqualFold(scheme, "http") && !strings.EqualFold(scheme, "https"):
		return nil, fmt.Errorf("the agent's URL %q is not http or https", target)
	case isURL:
		u, err := url.Parse(target)
		if err != nil {
			return nil, fmt.Errorf("the agent's URL: %w", err)
		}
		if u.Host == "" {
			return nil, fmt.Errorf("the agent's URL %q has no host", target)
		}
		if strings.EqualFold(u.Scheme, "http") && !plainHTTPHost(u.Hostname()) {
			// The token would cross the network in the clear: the SDKs'
			// rule, kept here too.
			return nil, fmt.Errorf("the agent's URL %q: plain http only to loopback, 169.254.170.2, 169.254.170.23 or fd00:ec2::23; use https", target)
		}
		if strings.ContainsAny(token, "\r\n") {
			return nil, errors.New("the token holds a line break (a token file must not end with a newline)")
		}
		c.base, c.token = u.String(), token
	default:
		path := target
		t.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			return dialer.DialContext(ctx, "unix", path)
		}
		c.base, c.socket = "http://agent", true
	}
	return c, nil
}

// AgentError is the agent's refusal, with its status, code and message.
type AgentError struct {
	Status        int
	Code, Message string
}

func (e *AgentError) Error() string {
	return fmt.Sprintf("the agent refused (%d %s): %s", e.Status, e.Code, e.Message)
}

// get asks for path (on the socket; the URL as given otherwise) and
// returns the answer's status and body, at most maxAnswer bytes.
func (c *Client) get(ctx context.Context, path string) (int, []byte, error) {
	u := c.base
	if c.socket {
		u += path
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, nil, err
	}
	if c.token != "" {
		req.Header.Set("Authorization", c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("asking the agent: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer+1))
	if err != nil {
		return 0, nil, fmt.Errorf("reading the agent's answer: %w", err)
	}
	if len(body) > maxAnswer {
		return 0, nil, fmt.Errorf("the agent's answer is over %d bytes", maxAnswer)
	}
	return resp.StatusCode, body, nil
}

// decodeAnswer reads an answer: v on 200, else an *AgentError.
func decodeAnswer(status int, body []byte, v any) error {
	if status != http.StatusOK {
		var e errorAnswer
		if json.Unmarshal(body, &e) != nil || e.Code == "" {
			code := http.StatusText(status)
			if code == "" {
				code = "Unknown"
			}
			return &AgentError{Status: status, Code: code, Message: "no explanation"}
		}
		return &AgentError{Status: status, Code: e.Code, Message: e.Message}
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("the agent's answer is not what keyless expects: %w", err)
	}
	return nil
}

// Credentials asks for the caller's credentials. A refusal is an
// *AgentError with the agent's status, code and message; an answer with
// an empty field, no valid Expiration or one already past is an error.
func (c *Client) Credentials(ctx context.Context) (*Credentials, error) {
	status, body, err := c.get(ctx, "/v1/credentials")
	if err != nil {
		return nil, err
	}
	return decodeCredentials(status, body, time.Now())
}

// decodeCredentials reads either answer: the container endpoint's (Token)
// or the local API's credential_process JSON (SessionToken).
func decodeCredentials(status int, body []byte, now time.Time) (*Credentials, error) {
	var a struct {
		AccessKeyID     string `json:"AccessKeyId"`
		SecretAccessKey string `json:"SecretAccessKey"`
		Token           string `json:"Token"`
		SessionToken    string `json:"SessionToken"`
		Expiration      string `json:"Expiration"`
		AccountID       string `json:"AccountId"`
	}
	if err := decodeAnswer(status, body, &a); err != nil {
		return nil, err
	}
	token := a.Token
	if token == "" {
		token = a.SessionToken
	} else if a.SessionToken != "" && a.SessionToken != token {
		return nil, errors.New("the agent answered two different session tokens")
	}
	if a.AccessKeyID == "" || a.SecretAccessKey == "" || token == "" {
		return nil, errors.New("the agent answered incomplete credentials")
	}
	exp, err := time.Parse(time.RFC3339, a.Expiration)
	if err != nil {
		return nil, fmt.Errorf("the agent's credentials have no valid Expiration: %w", err)
	}
	if !exp.After(now) {
		return nil, fmt.Errorf("the agent answered credentials that expired at %s", exp.UTC().Format(time.RFC3339))
	}
	return &Credentials{AccessKeyID: a.AccessKeyID, SecretAccessKey: a.SecretAccessKey, Token: token, Expiration: exp, AccountID: a.AccountID}, nil
}

// Status asks for the agent's status (socket only).
func (c *Client) Status(ctx context.Context) (*Status, error) {
	if !c.socket {
		return nil, errors.New("status is on the agent's socket, not its container endpoint")
	}
	status, body, err := c.get(ctx, "/v1/status")
	if err != nil {
		return nil, err
	}
	var s Status
	if err := decodeAnswer(status, body, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// plainHTTPHost reports whether the SDKs fetch container credentials from
// host over plain http.
func plainHTTPHost(host string) bool {
	if host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	a = a.Unmap()
	return a.IsLoopback() || a == netip.MustParseAddr("169.254.170.2") || a == netip.MustParseAddr("169.254.170.23") || a == netip.MustParseAddr("fd00:ec2::23")
}
