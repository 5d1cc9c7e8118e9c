package rolesanywhere

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/keyless-dev/keyless/internal/logline"
	"github.com/keyless-dev/keyless/internal/sigv4"
)

// Limits of the session duration AWS accepts in a request, in seconds.
const (
	MinDurationSeconds = 900
	MaxDurationSeconds = 43200
)

// Defaults of Config.
const (
	DefaultMaxAttempts    = 3
	DefaultAttemptTimeout = 15 * time.Second
	// Backoff before attempt n+1 is random in [0, min(backoffCap,
	// backoffBase*2^(n-1))] ("full jitter"), so many runners that fail
	// together do not retry together.
	backoffBase = 200 * time.Millisecond
	backoffCap  = 5 * time.Second
	// maxRetryAfter caps how long a server's Retry-After can make us wait.
	maxRetryAfter = 20 * time.Second
	// maxResponseBytes bounds what is read of any answer.
	maxResponseBytes = 1 << 20
)

// Config configures a Client.
type Config struct {
	// Endpoint is the service's base URL; requests go to Endpoint +
	// "/sessions". Empty means DefaultEndpoint(Region).
	Endpoint string
	// Region is the signing region.
	Region string
	// Signer signs each attempt.
	Signer *sigv4.X509Signer
	// HTTPClient sends requests; nil means Clients' client for
	// Transport, or without Clients, NewHTTPClient(Transport).
	HTTPClient *http.Client
	// Clients, when set, shares HTTP clients (and their connections)
	// between Clients made with the same Transport.
	Clients *HTTPClients
	// Transport shapes the HTTP client New makes when HTTPClient is nil:
	// the trusted roots, TLS verification and the proxy.
	Transport TransportOptions
	// MaxAttempts bounds the attempts per call; 0 means DefaultMaxAttempts.
	MaxAttempts int
	// AttemptTimeout bounds one attempt; 0 means DefaultAttemptTimeout.
	AttemptTimeout time.Duration
	// UserAgent is sent (unsigned) with each request.
	UserAgent string
	// Now, Sleep and Jitter are injected for tests; nil means the real
	// clock, a context-aware sleep and a uniform random duration in [0, max].
	Now    func() time.Time
	Sleep  func(ctx context.Context, d time.Duration) error
	Jitter func(max time.Duration) time.Duration
	// Logger receives one debug line per attempt and retry; nil discards.
	Logger *slog.Logger
}

// Client calls CreateSession. It is safe for concurrent use.
type Client struct {
	cfg      Config
	endpoint *url.URL
}

// New checks cfg and returns a Client.
func New(cfg Config) (*Client, error) {
	if cfg.Signer == nil {
		return nil, errors.New("rolesanywhere: Config.Signer is required")
	}
	if !ValidRegion(cfg.Region) {
		return nil, fmt.Errorf("region %q is not a valid AWS region name", cfg.Region)
	}
	if cfg.Endpoint == "" {
		cfg.Endpoint = DefaultEndpoint(cfg.Region)
	}
	u, err := ParseEndpoint(cfg.Endpoint)
	if err != nil {
		return nil, err
	}
	if cfg.HTTPClient == nil {
		if cfg.Clients != nil {
			cfg.HTTPClient, err = cfg.Clients.Client(cfg.Transport)
		} else {
			cfg.HTTPClient, err = NewHTTPClient(cfg.Transport)
		}
		if err != nil {
			return nil, err
		}
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = DefaultMaxAttempts
	}
	if cfg.AttemptTimeout <= 0 {
		cfg.AttemptTimeout = DefaultAttemptTimeout
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Sleep == nil {
		cfg.Sleep = sleep
	}
	if cfg.Jitter == nil {
		cfg.Jitter = func(max time.Duration) time.Duration { return rand.N(max + 1) }
	}
	cfg.Logger = logline.Or(cfg.Logger)
	return &Client{cfg: cfg, endpoint: u}, nil
}

// Endpoint returns the base URL the client calls.
func (c *Client) Endpoint() string { return c.endpoint.String() }

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// ErrNoCertificates means TransportOptions.RootCAs holds no PEM
// certificate.
var ErrNoCertificates = errors.New("the CA bundle holds no PEM certificate")

// TransportOptions shape the HTTP client made by NewHTTPClient.
type TransportOptions struct {
	// RootCAs, when set, is a PEM bundle that replaces the system roots
	// (what AWS_CA_BUNDLE means to the AWS SDKs and CLI).
	RootCAs []byte
	// InsecureSkipVerify turns off TLS certificate verification.
	InsecureSkipVerify bool
	// UseProxy sends requests through HTTPS_PROXY/HTTP_PROXY, honouring
	// NO_PROXY. Off by default, as in AWS's helper (--with-proxy).
	UseProxy bool
}

// NewHTTPClient returns an HTTP client for CreateSession: TLS 1.2 or later,
// bounded dial and handshake times, and the given roots and proxy.
func NewHTTPClient(o TransportOptions) (*http.Client, error) {
	tlsConfig := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: o.InsecureSkipVerify}
	if len(o.RootCAs) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(o.RootCAs) {
			return nil, ErrNoCertificates
		}
		tlsConfig.RootCAs = pool
	}
	tr := &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       tlsConfig,
		TLSHandshakeTimeout:   5 * time.Second,
		ResponseHeaderTimeout: 10 * time.Second,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          4,
		IdleConnTimeout:       30 * time.Second,
	}
	if o.UseProxy {
		// The environment is read once per process; keyless commands are
		// one process per call. (golang.org/x/net/http/httpproxy would read
		// it per client, at the cost of a second copy of the IDNA tables
		// initialised on every run.)
		tr.Proxy = http.ProxyFromEnvironment
	}
	return &http.Client{
		Transport: tr,
		// A redirect would resend the signed request elsewhere: refuse.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}, nil
}

// SessionInput is what CreateSession asks for.
type SessionInput struct {
	TrustAnchorARN     string
	ProfileARN         string
	RoleARN            string
	DurationSeconds    int
	RoleSessionName    string
	InstanceProperties map[string]string
}

// Credentials are temporary AWS credentials (sigv4's type, which the
// credentials cache stores without depending on this client).
type Credentials = sigv4.Credentials

// Session is CreateSession's answer: the first credential set and what
// AWS says about it.
type Session struct {
	Credentials    Credentials
	AssumedRoleARN string
	AssumedRoleID  string
	RoleARN        string
	SourceIdentity string
	SubjectARN     string
}

type requestBody struct {
	DurationSeconds    int               `json:"durationSeconds,omitempty"`
	InstanceProperties map[string]string `json:"instanceProperties,omitempty"`
	RoleSessionName    string            `json:"roleSessionName,omitempty"`
}

// SessionResponse is CreateSession's JSON answer, as AWS sends it: the
// client reads it and the emulator writes it.
type SessionResponse struct {
	CredentialSet []CredentialSet `json:"credentialSet"`
	SubjectArn    string          `json:"subjectArn"`
}

// CredentialSet is one entry of SessionResponse; clients use the first.
type CredentialSet struct {
	AssumedRoleUser struct {
		Arn           string `json:"arn"`
		AssumedRoleID string `json:"assumedRoleId"`
	} `json:"assumedRoleUser"`
	Credentials struct {
		AccessKeyID     string `json:"accessKeyId"`
		SecretAccessKey string `json:"secretAccessKey"`
		SessionToken    string `json:"sessionToken"`
		Expiration      string `json:"expiration"` // RFC 3339, UTC
	} `json:"credentials"`
	PackedPolicySize int    `json:"packedPolicySize"`
	RoleArn          string `json:"roleArn"`
	SourceIdentity   string `json:"sourceIdentity"`
}

// CreateSession exchanges the signer's certificate for temporary
// credentials. ARNs go in the query string, as AWS's helper sends them.
// Throttling, 5xx answers and connection failures are retried up to
// MaxAttempts times, each attempt signed afresh; anything else is returned
// at once. A refusal is an *APIError.
func (c *Client) CreateSession(ctx context.Context, in SessionInput) (*Session, error) {
	query := url.Values{}
	query.Set("profileArn", in.ProfileARN)
	query.Set("roleArn", in.RoleARN)
	query.Set("trustAnchorArn", in.TrustAnchorARN)
	target := *c.endpoint
	target.Path += "/sessions"
	target.RawQuery = query.Encode()
	body, err := json.Marshal(requestBody{DurationSeconds: in.DurationSeconds, InstanceProperties: in.InstanceProperties, RoleSessionName: in.RoleSessionName})
	if err != nil {
		return nil, err
	}

	var lastErr error
	for attempt := 1; attempt <= c.cfg.MaxAttempts; attempt++ {
		sess, retryAfter, err := c.attempt(ctx, target.String(), body, attempt)
		if err == nil {
			return sess, nil
		}
		lastErr = err
		if !retryable(ctx, err) || attempt == c.cfg.MaxAttempts {
			break
		}
		delay := c.cfg.Jitter(min(backoffCap, backoffBase<<(attempt-1)))
		if retryAfter > delay {
			delay = min(retryAfter, maxRetryAfter)
		}
		c.cfg.Logger.Debug("CreateSession attempt failed; retrying", "attempt", attempt, "delay", delay, "error", err)
		if err := c.cfg.Sleep(ctx, delay); err != nil {
			break
		}
	}
	return nil, lastErr
}

func (c *Client) attempt(ctx context.Context, target string, body []byte, attempt int) (*Session, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.AttemptTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return nil, 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	if err := c.cfg.Signer.Sign(req, body, c.cfg.Region, c.cfg.Now()); err != nil {
		return nil, 0, err
	}
	if c.cfg.UserAgent != "" {
		req.Header.Set("User-Agent", c.cfg.UserAgent)
	}
	c.cfg.Logger.Debug("calling CreateSession", "attempt", attempt, "url", target, "serial", c.cfg.Signer.Certificate.SerialNumber.String())
	resp, err := c.cfg.HTTPClient.Do(req)
	if err != nil {
		return nil, 0, &TransportError{URL: c.endpoint.String(), Attempts: attempt, Err: unwrapURLError(err)}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if err != nil {
		return nil, 0, &TransportError{URL: c.endpoint.String(), Attempts: attempt, Err: fmt.Errorf("reading response: %w", err)}
	}
	if len(data) > maxResponseBytes {
		return nil, 0, fmt.Errorf("CreateSession response from %s is larger than %d bytes", c.endpoint, maxResponseBytes)
	}
	c.cfg.Logger.Debug("CreateSession answered", "attempt", attempt, "status", resp.StatusCode, "request_id", resp.Header.Get("X-Amzn-Requestid"))
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		apiErr := parseAPIError(resp, data)
		apiErr.Attempts = attempt
		return nil, retryAfter(resp), apiErr
	}
	sess, err := parseSession(data, c.cfg.Now())
	if err != nil {
		return nil, 0, fmt.Errorf("CreateSession answered %d from %s but %w", resp.StatusCode, c.endpoint, err)
	}
	return sess, 0, nil
}

func parseSession(data []byte, now time.Time) (*Session, error) {
	var rb SessionResponse
	if err := json.Unmarshal(data, &rb); err != nil {
		return nil, fmt.Errorf("the body is not CreateSession JSON: %v", err)
	}
	if len(rb.CredentialSet) == 0 {
		return nil, errors.New("the answer holds no credentials (empty credentialSet)")
	}
	cs := rb.CredentialSet[0]
	cr := cs.Credentials
	for name, v := range map[string]string{"accessKeyId": cr.AccessKeyID, "secretAccessKey": cr.SecretAccessKey, "sessionToken": cr.SessionToken} {
		if v == "" || !printableToken(v) {
			return nil, fmt.Errorf("credentials.%s is empty or holds characters credentials never have", name)
		}
	}
	exp, err := time.Parse(time.RFC3339Nano, cr.Expiration)
	if err != nil {
		return nil, fmt.Errorf("credentials.expiration %q is not an RFC 3339 time", truncate(cr.Expiration))
	}
	if !exp.After(now) {
		return nil, fmt.Errorf("the credentials expired at %s, before they arrived (is this machine's clock right? it says %s)", exp.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	return &Session{
		Credentials:    Credentials{AccessKeyID: cr.AccessKeyID, SecretAccessKey: cr.SecretAccessKey, SessionToken: cr.SessionToken, Expiration: exp.UTC()},
		AssumedRoleARN: cs.AssumedRoleUser.Arn,
		AssumedRoleID:  cs.AssumedRoleUser.AssumedRoleID,
		RoleARN:        cs.RoleArn,
		SourceIdentity: cs.SourceIdentity,
		SubjectARN:     rb.SubjectArn,
	}, nil
}

// printableToken reports whether s is printable ASCII without spaces or
// quotes, which every AWS key, secret and token is; anything else could
// break a shell line or a config file it is written into.
func printableToken(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' || s[i] == '"' || s[i] == '\'' || s[i] == '\\' || s[i] == '`' {
			return false
		}
	}
	return true
}

func retryAfter(resp *http.Response) time.Duration {
	if s, err := strconv.Atoi(strings.TrimSpace(resp.Header.Get("Retry-After"))); err == nil && s > 0 {
		return time.Duration(s) * time.Second
	}
	return 0
}

// retryable reports whether another attempt may succeed: throttling, a
// server-side failure, or a connection that failed or timed out. A
// certificate the client does not trust, a cancelled call, and every 4xx
// refusal other than throttling are final.
func retryable(ctx context.Context, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	var apiErr *APIError
	if errors.As(err, &apiErr) {
		return apiErr.StatusCode >= 500 || apiErr.StatusCode == http.StatusTooManyRequests || apiErr.Throttling()
	}
	var te *TransportError
	if !errors.As(err, &te) {
		return false
	}
	var certErr *tls.CertificateVerificationError
	var unknownAuth x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var invalid x509.CertificateInvalidError
	var recordErr tls.RecordHeaderError
	switch {
	case errors.As(te.Err, &certErr), errors.As(te.Err, &unknownAuth), errors.As(te.Err, &hostErr), errors.As(te.Err, &invalid), errors.As(te.Err, &recordErr):
		return false
	}
	return true
}

func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
