package agentapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
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

// NewClient returns a client of the agent at target: a unix socket path,
// or an http(s) URL of the container-credentials endpoint, which gets
// token verbatim as its Authorization header.
func NewClient(target, token string) (*Client, error) {
	t := &http.Transport{ResponseHeaderTimeout: 30 * time.Second, MaxIdleConns: 1}
	c := &Client{http: &http.Client{Transport: t, Timeout: time.Minute,
		CheckRedirect: func(*http.Request, []*http.Request) error { return errors.New("the agent does not redirect") }}}
	switch {
	case strings.HasPrefix(target, "http://") || strings.HasPrefix(target, "https://"):
		if _, err := url.Parse(target); err != nil {
			return nil, err
		}
		if strings.ContainsAny(token, "\r\n") {
			return nil, errors.New("the token holds a line break (a token file must not end with a newline)")
		}
		c.base, c.token = target, token
	case target != "":
		path := target
		t.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		}
		c.base, c.socket = "http://agent", true
	default:
		return nil, errors.New("no agent: give its socket path or its URL")
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

func (c *Client) get(ctx context.Context, path string, v any) error {
	u := c.base
	if c.socket {
		u += path
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	if c.token != "" {
		req.Header.Set("Authorization", c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("asking the agent: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer+1))
	if err != nil {
		return fmt.Errorf("reading the agent's answer: %w", err)
	}
	if len(body) > maxAnswer {
		return errors.New("the agent's answer is too large")
	}
	return decodeAnswer(resp.StatusCode, body, v)
}

// decodeAnswer reads an answer: v on 200, else an *AgentError.
func decodeAnswer(status int, body []byte, v any) error {
	if status != http.StatusOK {
		var e errorAnswer
		if json.Unmarshal(body, &e) != nil || e.Code == "" {
			return &AgentError{Status: status, Code: http.StatusText(status), Message: "no explanation"}
		}
		return &AgentError{Status: status, Code: e.Code, Message: e.Message}
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("the agent's answer is not what keyless expects: %w", err)
	}
	return nil
}

// Credentials asks for the caller's credentials.
func (c *Client) Credentials(ctx context.Context) (*Credentials, error) {
	var a struct {
		AccessKeyID     string `json:"AccessKeyId"`
		SecretAccessKey string `json:"SecretAccessKey"`
		Token           string `json:"Token"`
		SessionToken    string `json:"SessionToken"`
		Expiration      string `json:"Expiration"`
		AccountID       string `json:"AccountId"`
	}
	if err := c.get(ctx, "/v1/credentials", &a); err != nil {
		return nil, err
	}
	return parseCredentials(a.AccessKeyID, a.SecretAccessKey, a.Token+a.SessionToken, a.Expiration, a.AccountID)
}

func parseCredentials(id, secret, token, expiration, account string) (*Credentials, error) {
	exp, err := time.Parse(time.RFC3339, expiration)
	if err != nil {
		return nil, fmt.Errorf("the agent's credentials have no valid Expiration: %w", err)
	}
	if id == "" || secret == "" || token == "" {
		return nil, errors.New("the agent answered incomplete credentials")
	}
	return &Credentials{AccessKeyID: id, SecretAccessKey: secret, Token: token, Expiration: exp, AccountID: account}, nil
}

// Status asks for the agent's status (socket only).
func (c *Client) Status(ctx context.Context) (*Status, error) {
	if !c.socket {
		return nil, errors.New("status is on the agent's socket, not its container endpoint")
	}
	var s Status
	if err := c.get(ctx, "/v1/status", &s); err != nil {
		return nil, err
	}
	return &s, nil
}
