// Package imds is keyless serve's wire: the part of EC2's Instance
// Metadata Service version 2 that AWS SDKs use to find credentials, as
// AWS's aws_signing_helper serve emulates it. A caller first gets a
// session token (PUT /latest/api/token with the TTL header), then lists
// the role (GET /latest/meta-data/iam/security-credentials/) and reads its
// credentials (GET .../security-credentials/ROLE), sending the token in
// X-aws-ec2-metadata-token.
//
// It is a transport: the one place where credentials and refusals become
// HTTP statuses. It decides nothing about AWS; a Source (internal/credserve)
// gives the credentials. Listen also sets the IP hop limit (TTL) of the
// answers, as the helper does, so that they cannot cross a router.
package imds

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/keyless-dev/keyless/internal/clock"
	"github.com/keyless-dev/keyless/internal/logline"
	"github.com/keyless-dev/keyless/internal/serve"
)

// Paths and headers, as EC2 and AWS's helper name them.
const (
	TokenPath       = "/latest/api/token"
	CredentialsPath = "/latest/meta-data/iam/security-credentials/"
	// TokenHeader carries the session token on GETs.
	TokenHeader = "X-Aws-Ec2-Metadata-Token"
	// TTLHeader asks for a token's lifetime on the PUT, and says what
	// is left of it on the answers.
	TTLHeader = "X-Aws-Ec2-Metadata-Token-Ttl-Seconds"
)

// Token lifetimes and bounds.
const (
	// MaxTokenTTL is EC2's: six hours. A PUT without the TTL header gets
	// it too, as from AWS's helper (EC2 itself answers 400).
	MaxTokenTTL = 21600
	// DefaultMaxTokens bounds the token store, as the helper's 256 do: at
	// the bound the earliest-expiring token goes (SDKs ask for a new one
	// on 401). Tokens are free to get, so the bound is about memory only.
	DefaultMaxTokens = 256
	// MaxHeaderBytes bounds a request's line and headers: a token is a
	// few dozen bytes.
	MaxHeaderBytes = 8 << 10
)

// Credentials are what a caller gets.
type Credentials struct {
	AccessKeyID, SecretAccessKey, Token string
	Expiration                          time.Time
	// LastUpdated is when they were fetched.
	LastUpdated time.Time
}

// Source gives the credentials to serve. An error means there are none
// to give right now (the handler answers 503 and logs it; it must name no
// secret). It must be safe for concurrent use.
type Source func(ctx context.Context) (Credentials, error)

// Config configures a Handler.
type Config struct {
	// RoleName is the name listed at CredentialsPath: the role ARN's last
	// path segment, as EC2 and the helper list it.
	RoleName string
	Source   Source
	Clock    clock.Clock  // nil: the real one
	Rand     io.Reader    // token bytes; nil: crypto/rand
	Logger   *slog.Logger // refusals (Info) and answers (Debug); nil discards
	// MaxTokens bounds the token store; 0 means DefaultMaxTokens.
	MaxTokens int
	// Allow, if set, says which callers (by source address) are
	// answered; the others get 403 before anything else is looked at.
	// Nil answers everyone who reaches the listener.
	Allow func(netip.Addr) bool
}

// Handler serves the IMDSv2 credential paths. It is safe for concurrent
// use.
type Handler struct {
	role   string
	source Source
	clock  clock.Clock
	rand   io.Reader
	log    *slog.Logger
	max    int
	allow  func(netip.Addr) bool
	mux    *http.ServeMux

	mu     sync.Mutex
	tokens map[string]time.Time // token to its expiry
}

// New checks c and returns its Handler.
func New(c Config) (*Handler, error) {
	if c.RoleName == "" || strings.Contains(c.RoleName, "/") {
		return nil, fmt.Errorf("imds: role name %q: want one path segment", c.RoleName)
	}
	if c.Source == nil {
		return nil, errors.New("imds: a credential source is required")
	}
	if c.MaxTokens < 0 {
		return nil, errors.New("imds: MaxTokens cannot be negative")
	}
	h := &Handler{role: c.RoleName, source: c.Source, clock: clock.Or(c.Clock), rand: c.Rand, log: logline.Or(c.Logger),
		max: c.MaxTokens, allow: c.Allow, tokens: map[string]time.Time{}}
	if h.rand == nil {
		h.rand = rand.Reader
	}
	if h.max == 0 {
		h.max = DefaultMaxTokens
	}
	// The helper's three patterns, on a ServeMux as in the helper, so
	// that the paths around them answer as its do: the credentials path
	// without its slash is redirected to it, anything else is 404.
	h.mux = http.NewServeMux()
	h.mux.HandleFunc(TokenPath, h.putToken)
	h.mux.HandleFunc(CredentialsPath, h.listRole)
	h.mux.HandleFunc(CredentialsPath+c.RoleName, h.credentials)
	return h, nil
}

// ServeHTTP refuses a Host that is a name other than localhost (403),
// then serves the IMDSv2 paths.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h.allow != nil {
		if ap, err := netip.ParseAddrPort(r.RemoteAddr); err != nil || !h.allow(ap.Addr().Unmap()) {
			// Off loopback, every host on the link can reach the
			// address (Linux answers ARP for any of its addresses on
			// every interface), and IMDS has no per-caller secret.
			h.refuse(w, r, http.StatusForbidden, "this endpoint answers only this host and its containers", "source not allowed")
			return
		}
	}
	if !hostAllowed(r.Host) {
		// A name means a DNS rebinding page in a browser on this host
		// could be same-origin with the endpoint, and read the
		// credentials; SDKs are given an address (or localhost).
		h.refuse(w, r, http.StatusForbidden, "requests must be addressed to an IP address or localhost", "Host is a name")
		return
	}
	h.mux.ServeHTTP(w, r)
}

// hostAllowed: an IP literal (with or without a port), or localhost.
func hostAllowed(host string) bool {
	if host == "" {
		return false
	}
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	} else {
		host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	_, err := netip.ParseAddr(host)
	return err == nil && !strings.Contains(host, "%")
}

func (h *Handler) refuse(w http.ResponseWriter, r *http.Request, status int, msg, reason string) {
	h.log.Info("imds request refused", "status", status, "reason", reason, "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr)
	writeText(w, status, msg)
}

// writeText answers as the helper does: text, no trailing newline.
func writeText(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	io.WriteString(w, body)
}

func methodNotAllowed(w http.ResponseWriter, allow string) {
	w.Header().Set("Allow", allow)
	w.WriteHeader(http.StatusMethodNotAllowed)
}

// putToken: PUT only (405); no X-Forwarded-For (400: EC2 refuses
// tokens to proxied requests); a TTL of 1 to 21600 seconds, in decimal
// digits (400), 21600 when absent; answers the token as text with the
// TTL header echoed.
func (h *Handler) putToken(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPut {
		methodNotAllowed(w, http.MethodPut)
		return
	}
	if len(r.Header.Values("X-Forwarded-For")) > 0 {
		h.refuse(w, r, http.StatusBadRequest, "unable to process requests with X-Forwarded-For header", "X-Forwarded-For on a token request")
		return
	}
	ttl := strconv.Itoa(MaxTokenTTL)
	if v := r.Header.Values(TTLHeader); len(v) > 0 {
		ttl = v[0]
	}
	n, ok := parseTTL(ttl)
	if !ok {
		h.refuse(w, r, http.StatusBadRequest, "invalid token TTL", "token TTL out of range")
		return
	}
	token, err := h.newToken(time.Duration(n) * time.Second)
	if err != nil {
		h.log.Error("making an imds token", "err", err)
		writeText(w, http.StatusInternalServerError, "unable to generate token")
		return
	}
	w.Header().Set(TTLHeader, ttl)
	writeText(w, http.StatusOK, token)
}

// parseTTL reads 1 to MaxTokenTTL in decimal digits only.
func parseTTL(s string) (int, bool) {
	if s == "" || len(s) > 5 || strings.Trim(s, "0123456789") != "" {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	return n, err == nil && n >= 1 && n <= MaxTokenTTL
}

// newToken makes and stores a token living ttl.
func (h *Handler) newToken(ttl time.Duration) (string, error) {
	b := make([]byte, 32)
	if _, err := io.ReadFull(h.rand, b); err != nil {
		return "", err
	}
	token := base64.RawURLEncoding.EncodeToString(b)
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.clock.Now()
	if len(h.tokens) >= h.max {
		for t, exp := range h.tokens {
			if !now.Before(exp) {
				delete(h.tokens, t)
			}
		}
	}
	for len(h.tokens) >= h.max {
		var first string
		var firstExp time.Time
		for t, exp := range h.tokens {
			if first == "" || exp.Before(firstExp) {
				first, firstExp = t, exp
			}
		}
		delete(h.tokens, first)
	}
	h.tokens[token] = now.Add(ttl)
	return token, nil
}

// checkToken answers 401 for a missing, unknown or expired token and
// returns false; else it returns the whole seconds the token has left.
func (h *Handler) checkToken(w http.ResponseWriter, r *http.Request) (int64, bool) {
	token := r.Header.Get(TokenHeader)
	if token == "" {
		h.refuse(w, r, http.StatusUnauthorized, "no token provided", "no token")
		return 0, false
	}
	h.mu.Lock()
	exp, ok := h.tokens[token]
	now := h.clock.Now()
	if ok && !now.Before(exp) {
		delete(h.tokens, token)
		ok = false
	}
	h.mu.Unlock()
	if !ok {
		h.refuse(w, r, http.StatusUnauthorized, "invalid token provided", "unknown or expired token")
		return 0, false
	}
	return int64(exp.Sub(now) / time.Second), true
}

// listRole: GET with a valid token; the role's name, with the token's
// remaining TTL. Any other name under the path is 404.
func (h *Handler) listRole(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		methodNotAllowed(w, http.MethodGet)
		return
	}
	left, ok := h.checkToken(w, r)
	if !ok {
		return
	}
	if r.URL.Path != CredentialsPath {
		// EC2 answers 404 for a role the instance does not have; the
		// helper answers its role's name for any.
		writeText(w, http.StatusNotFound, "not found")
		return
	}
	w.Header().Set(TTLHeader, strconv.FormatInt(left, 10))
	writeText(w, http.StatusOK, h.role)
}

// credentialsAnswer is EC2's answer, fields in its order.
type credentialsAnswer struct {
	Code            string `json:"Code"`
	LastUpdated     string `json:"LastUpdated"`
	Type            string `json:"Type"`
	AccessKeyID     string `json:"AccessKeyId"`
	SecretAccessKey string `json:"SecretAccessKey"`
	Token           string `json:"Token"`
	Expiration      string `json:"Expiration"`
}

// credentials: GET with a valid token; the Source's credentials as EC2
// writes them, only when every field is there and they have not expired;
// else 503 with no detail (the Source logs why).
func (h *Handler) credentials(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		methodNotAllowed(w, http.MethodGet)
		return
	}
	if _, ok := h.checkToken(w, r); !ok {
		return
	}
	c, err := h.source(r.Context())
	now := h.clock.Now()
	if err == nil && (c.AccessKeyID == "" || c.SecretAccessKey == "" || c.Token == "" || !c.Expiration.After(now)) {
		// Never 200 with empty or expired credentials, as the helper
		// did after a failed refresh: an SDK would use them and fail
		// far from the cause.
		err = errors.New("the credential source gave empty or expired credentials")
	}
	if err != nil {
		h.log.Warn("imds: no credentials to answer with", "remote", r.RemoteAddr, "err", err)
		writeText(w, http.StatusServiceUnavailable, "no credentials available right now; keyless serve's log says why")
		return
	}
	if c.LastUpdated.IsZero() {
		c.LastUpdated = now
	}
	data, err := json.Marshal(credentialsAnswer{Code: "Success", LastUpdated: rfc3339(c.LastUpdated), Type: "AWS-HMAC",
		AccessKeyID: c.AccessKeyID, SecretAccessKey: c.SecretAccessKey, Token: c.Token, Expiration: rfc3339(c.Expiration)})
	if err != nil {
		writeText(w, http.StatusInternalServerError, "failed to encode credentials")
		return
	}
	h.log.Debug("imds credentials answered", "remote", r.RemoteAddr, "expires", rfc3339(c.Expiration))
	// A newline after the object, as the helper's json.Encoder writes.
	writeText(w, http.StatusOK, string(data)+"\n")
}

func rfc3339(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// Tokens is how many tokens the store holds, expired ones included until
// they are swept (for tests).
func (h *Handler) Tokens() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.tokens)
}

// Start listens on addr with Listen's hop limit and serves h with
// keyless's server bounds.
func Start(addr string, hopLimit int, h http.Handler, logger *slog.Logger) (*serve.Server, error) {
	ln, err := Listen(addr, hopLimit, logger)
	if err != nil {
		return nil, err
	}
	return serve.Serve(ln, h, serve.Options{Logger: logger, ErrorLevel: slog.LevelDebug, MaxHeaderBytes: MaxHeaderBytes, WriteTimeout: 30 * time.Second}), nil
}
