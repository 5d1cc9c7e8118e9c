// Package gitlab is keyless's client of a GitLab instance, for the agent's
// two ways of learning which CI job is asking: GET /api/v4/job with a job's
// CI_JOB_TOKEN (the JOB-TOKEN header), which GitLab answers only while the
// job runs, and the OIDC discovery document and JWKS that verify id_tokens
// JWTs offline.
//
// It is a transport: internal/authz (through its JobSource and KeySource
// interfaces) and internal/agent import it. Answers are read up to a bound,
// every request has a timeout, and redirects are followed only on
// GitLab's own host, since the JOB-TOKEN header would follow them. No error
// it returns holds a token.
package gitlab

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

// Bounds.
const (
	// maxResponse bounds what is read of any answer: a job is a few KiB,
	// a JWKS a few keys; a bigger answer is not GitLab's.
	maxResponse = 1 << 20
	// DefaultTimeout bounds each request: a job's SDK gives its
	// credentials fetch a few seconds, so waiting longer for GitLab helps
	// no one.
	DefaultTimeout = 10 * time.Second
	// maxRedirects bounds redirects on GitLab's own host.
	maxRedirects = 5
)

// ErrJobNotRunning means the token is not a running job's: GitLab refused
// it (401, 403 or 404: unknown, expired, or its job has finished), or the
// job it names is not running. Callers refuse the caller; trying again
// does not help.
var ErrJobNotRunning = errors.New("the token is not a running GitLab job's")

// UnavailableError means GitLab could not be asked or gave no usable
// answer: a network error, a timeout, a 5xx or other unexpected status, or
// an answer that is not what GitLab sends. Trying again later may work.
type UnavailableError struct {
	// URL is what was asked (it never holds a token).
	URL string
	// Status is GitLab's HTTP status, or 0 when there was no answer.
	Status int
	Err    error
}

func (e *UnavailableError) Error() string {
	if e.Status != 0 {
		return fmt.Sprintf("GitLab at %s answered %d: %v", e.URL, e.Status, e.Err)
	}
	return fmt.Sprintf("GitLab at %s: %v", e.URL, e.Err)
}

func (e *UnavailableError) Unwrap() error { return e.Err }

// Job is GitLab's answer to GET /api/v4/job, in GitLab's JSON shape (the
// fields keyless reads).
type Job struct {
	ID     int64  `json:"id"`
	Name   string `json:"name"`
	Status string `json:"status"`
	Ref    string `json:"ref"`
	Tag    bool   `json:"tag"`
	// WebURL is https://host/group/sub/project/-/jobs/ID: the only place
	// the job API names the project's path.
	WebURL   string   `json:"web_url"`
	Pipeline Pipeline `json:"pipeline"`
	User     *User    `json:"user"`
	Runner   *Runner  `json:"runner"`
}

// Pipeline is a job's pipeline.
type Pipeline struct {
	ID        int64  `json:"id"`
	ProjectID int64  `json:"project_id"`
	Ref       string `json:"ref"`
	SHA       string `json:"sha"`
	Status    string `json:"status"`
}

// User is who started the job's pipeline.
type User struct {
	ID       int64  `json:"id"`
	Username string `json:"username"`
}

// Runner is the runner that runs the job.
type Runner struct {
	ID int64 `json:"id"`
}

// StatusRunning is the status of a job whose token GitLab honours.
const StatusRunning = "running"

// Config configures a Client.
type Config struct {
	// BaseURL is GitLab's URL (https://gitlab.example.com), for the job
	// API; empty when only OIDC keys are fetched.
	BaseURL string
	// HTTP is the client to use; nil means one with DefaultTimeout and
	// the environment's proxy. Either way, redirects to another host are
	// refused.
	HTTP *http.Client
	// UserAgent is sent with every request; empty means "keyless".
	UserAgent string
}

// Client talks to one GitLab instance. It is safe for concurrent use.
type Client struct {
	base string // without a trailing slash; "" when not configured
	http *http.Client
	ua   string
}

// New returns a client of the GitLab at c.BaseURL.
func New(c Config) (*Client, error) {
	cl := &Client{ua: c.UserAgent}
	if cl.ua == "" {
		cl.ua = "keyless"
	}
	if c.BaseURL != "" {
		u, err := checkURL(c.BaseURL)
		if err != nil {
			return nil, fmt.Errorf("GitLab URL: %w", err)
		}
		cl.base = strings.TrimSuffix(u.String(), "/")
	}
	var hc http.Client
	if c.HTTP != nil {
		hc = *c.HTTP
	} else {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.DialContext = (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext
		t.TLSHandshakeTimeout = 5 * time.Second
		t.ResponseHeaderTimeout = DefaultTimeout
		t.MaxIdleConnsPerHost = 16
		hc = http.Client{Transport: t, Timeout: DefaultTimeout}
	}
	hc.CheckRedirect = sameHost
	cl.http = &hc
	return cl, nil
}

// checkURL accepts an absolute http(s) URL with a host and no query,
// fragment or user info.
func checkURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("%q is not a URL", s)
	}
	switch {
	case u.Scheme != "https" && u.Scheme != "http":
		return nil, fmt.Errorf("%q: want an http or https URL", s)
	case u.Host == "":
		return nil, fmt.Errorf("%q has no host", s)
	case u.User != nil:
		return nil, fmt.Errorf("%q: no user info in the URL", u.Redacted())
	case u.RawQuery != "" || u.Fragment != "":
		return nil, fmt.Errorf("%q: no query or fragment in the URL", s)
	}
	return u, nil
}

// sameHost follows a redirect only to the same host (and scheme, or from
// http to https): the JOB-TOKEN header goes along with it.
func sameHost(req *http.Request, via []*http.Request) error {
	if len(via) >= maxRedirects {
		return fmt.Errorf("more than %d redirects", maxRedirects)
	}
	from := via[0].URL
	if !strings.EqualFold(req.URL.Host, from.Host) || (req.URL.Scheme != from.Scheme && req.URL.Scheme != "https") {
		return fmt.Errorf("refusing a redirect to %s://%s: set GitLab's own URL", req.URL.Scheme, req.URL.Host)
	}
	return nil
}

// URL returns GitLab's base URL, "" when none is configured.
func (c *Client) URL() string { return c.base }

// CloseIdleConnections closes connections kept for the next request.
func (c *Client) CloseIdleConnections() { c.http.CloseIdleConnections() }

// Job asks GitLab which job token belongs to: GET {BaseURL}/api/v4/job
// with the JOB-TOKEN header. It returns the job only if it is running;
// a refused token or a job in another state is ErrJobNotRunning (wrapped),
// anything else *UnavailableError.
func (c *Client) Job(ctx context.Context, token string) (*Job, error) {
	if c.base == "" {
		return nil, errors.New("no GitLab URL is configured for job tokens")
	}
	if !validHeaderValue(token) {
		return nil, fmt.Errorf("%w: the token is empty or not a valid header value", ErrJobNotRunning)
	}
	u := c.base + "/api/v4/job"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, &UnavailableError{URL: u, Err: err}
	}
	req.Header.Set("JOB-TOKEN", token)
	data, status, err := c.do(req)
	if err != nil {
		return nil, err
	}
	switch {
	case status == http.StatusUnauthorized || status == http.StatusForbidden || status == http.StatusNotFound:
		return nil, fmt.Errorf("%w (GitLab answered %d)", ErrJobNotRunning, status)
	case status != http.StatusOK:
		return nil, &UnavailableError{URL: u, Status: status, Err: errors.New(summary(data))}
	}
	job, err := ParseJob(data)
	if err != nil {
		return nil, &UnavailableError{URL: u, Status: status, Err: err}
	}
	if job.Status != StatusRunning {
		return nil, fmt.Errorf("%w: job %d is %s", ErrJobNotRunning, job.ID, printable(job.Status))
	}
	return job, nil
}

// ParseJob parses GitLab's JSON job, requiring an id.
func ParseJob(data []byte) (*Job, error) {
	var j Job
	if err := json.Unmarshal(data, &j); err != nil {
		return nil, fmt.Errorf("GitLab's answer is not a job: %w", err)
	}
	if j.ID <= 0 {
		return nil, errors.New("GitLab's answer is not a job: no id")
	}
	return &j, nil
}

// do sends req and reads the answer up to maxResponse.
func (c *Client) do(req *http.Request) ([]byte, int, error) {
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.ua)
	u := req.URL.String()
	resp, err := c.http.Do(req)
	if err != nil {
		// *url.Error names the URL, which holds no token.
		return nil, 0, &UnavailableError{URL: u, Err: unwrapURLError(err)}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse+1))
	if err != nil {
		return nil, resp.StatusCode, &UnavailableError{URL: u, Status: resp.StatusCode, Err: fmt.Errorf("reading the answer: %w", err)}
	}
	if len(data) > maxResponse {
		return nil, resp.StatusCode, &UnavailableError{URL: u, Status: resp.StatusCode, Err: fmt.Errorf("the answer is over %d bytes", maxResponse)}
	}
	return data, resp.StatusCode, nil
}

// unwrapURLError drops *url.Error's "Get URL:" prefix, since
// UnavailableError names the URL already.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// summary is a short printable excerpt of an error answer, for logs.
func summary(data []byte) string {
	var m struct {
		Message any    `json:"message"`
		Error   string `json:"error"`
	}
	if json.Unmarshal(data, &m) == nil {
		if s, ok := m.Message.(string); ok && s != "" {
			return printable(s)
		}
		if m.Error != "" {
			return printable(m.Error)
		}
	}
	if len(data) == 0 {
		return "an empty answer"
	}
	return "an unexpected answer"
}

// printable cuts s to 100 characters and replaces what is not printable
// ASCII, so that an answer cannot forge log lines.
func printable(s string) string {
	var b strings.Builder
	for i, r := range s {
		if i >= 100 {
			b.WriteString("...")
			break
		}
		if r < 0x20 || r > 0x7e {
			r = '?'
		}
		b.WriteRune(r)
	}
	return b.String()
}

// validHeaderValue: non-empty printable ASCII (spaces inside allowed).
func validHeaderValue(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}
