package agentapi

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/keyless-dev/keyless/internal/logline"
)

// The relay's bounds.
const (
	// MaxRelayAnswer caps what the relay reads of the agent's answer: a
	// container-credentials answer is a few kilobytes (a session token
	// is the largest part), so more is not the agent's.
	MaxRelayAnswer = 64 << 10
	// DefaultRelayTimeout bounds one forwarded request, the agent's
	// CreateSession included; it stays below the relay's own write
	// timeout (30s) so the caller gets the 504 saying so.
	DefaultRelayTimeout = 20 * time.Second
	// relayDialTimeout bounds reaching the agent: it is on the same
	// machine, so a dial that takes longer will not succeed.
	relayDialTimeout = 5 * time.Second
)

// RelayConfig shapes a relay.
type RelayConfig struct {
	// Target is the agent's container-credentials URL (its base URL and
	// Path): every request the relay forwards goes there, with nothing
	// of the caller's request but its Authorization header.
	Target string
	// Path is the one path the relay answers (the agent's
	// /v1/credentials); any other gets 404.
	Path string
	// Hosts are the Host values the relay accepts (Hosts of its
	// listener), as ContainerHandler.
	Hosts []string
	// Timeout bounds one forwarded request; zero means
	// DefaultRelayTimeout.
	Timeout time.Duration
	// UserAgent is sent to the agent.
	UserAgent string
	// Transport reaches the agent; nil means the relay's own, which
	// uses no proxy (HTTP_PROXY would see every job's token) and no
	// compression.
	Transport http.RoundTripper
	// Logger gets one line per request at debug and the agent's
	// failures at warn, never a header; nil discards.
	Logger *slog.Logger
}

// Relay serves the container-credentials protocol by forwarding to the
// agent, for networks where the agent's own address is one no SDK
// accepts over http (Docker Desktop: the job containers live in a VM and
// reach the host only as host.docker.internal). It holds no key, no
// credentials and no cache; the agent decides and caches.
//
// In this order: a Host not in Hosts gets 403, headers over
// MaxHeaderBytes 431, a path other than Path 404, a method other than
// GET 405, more than one Authorization header 400 (each as
// ContainerHandler answers it, {"code","message"}). Then a GET goes to
// Target with the caller's Authorization header verbatim and no other
// header of the caller's (no Cookie, no X-Forwarded-For: nothing a
// caller sends can claim an identity but its token), no query, and the
// relay's User-Agent. The agent's status, Content-Type and body (at most
// MaxRelayAnswer bytes) go back, with Cache-Control: no-store. An agent
// that cannot be reached gets 502 AgentUnreachable, one that does not
// answer in time 504 AgentTimeout, one whose answer is too large or not a
// final 2xx/4xx/5xx status 502 BadAgentAnswer: JSON errors the SDKs read,
// and retry.
func Relay(c RelayConfig) http.Handler {
	allowed := map[string]bool{}
	for _, h := range c.Hosts {
		allowed[strings.ToLower(h)] = true
	}
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = DefaultRelayTimeout
	}
	rt := c.Transport
	if rt == nil {
		rt = relayTransport()
	}
	client := &http.Client{Transport: rt, Timeout: timeout,
		// The agent never redirects; following one would carry the
		// job's token to wherever it pointed.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	log := logline.Or(c.Logger)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !allowed[strings.ToLower(r.Host)] {
			writeError(w, http.StatusForbidden, "WrongHost", "this endpoint answers only requests addressed to "+strings.Join(c.Hosts, " or "))
			return
		}
		if headerSize(r) > MaxHeaderBytes {
			writeError(w, http.StatusRequestHeaderFieldsTooLarge, "RequestHeaderFieldsTooLarge", "request headers over 8 KiB")
			return
		}
		if r.URL.Path != c.Path {
			writeError(w, http.StatusNotFound, "NotFound", "the relay answers only GET "+c.Path)
			return
		}
		if r.Method != http.MethodGet {
			w.Header().Set("Allow", http.MethodGet)
			writeError(w, http.StatusMethodNotAllowed, "MethodNotAllowed", "use GET")
			return
		}
		auth := r.Header.Values("Authorization")
		if len(auth) > 1 {
			writeError(w, http.StatusBadRequest, "BadRequest", "more than one Authorization header")
			return
		}
		began := time.Now()
		status, code := relayOnce(r.Context(), w, client, c, auth, log)
		// The caller's address and the outcome; never a header.
		log.LogAttrs(r.Context(), slog.LevelDebug, "relayed", slog.String("remote", r.RemoteAddr), slog.Int("status", status),
			slog.String("code", code), slog.Duration("took", time.Since(began)))
	})
}

// relayOnce forwards one request and writes the answer; it returns the
// status written and, for the relay's own errors, their code.
func relayOnce(ctx context.Context, w http.ResponseWriter, client *http.Client, c RelayConfig, auth []string, log *slog.Logger) (int, string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.Target, nil)
	if err != nil {
		// Target is checked when the relay is made; this is a bug.
		writeError(w, http.StatusInternalServerError, "InternalError", "the relay's agent URL is not usable")
		return http.StatusInternalServerError, "InternalError"
	}
	// A fresh header: only what the relay chooses goes to the agent.
	req.Header = http.Header{"User-Agent": {c.UserAgent}, "Accept": {"application/json"}}
	if len(auth) == 1 {
		req.Header["Authorization"] = auth
	}
	resp, err := client.Do(req)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			log.Warn("the agent did not answer in time", "agent", c.Target, "timeout", client.Timeout.String())
			writeError(w, http.StatusGatewayTimeout, "AgentTimeout", "the keyless agent behind this relay did not answer in time; a retry may succeed")
			return http.StatusGatewayTimeout, "AgentTimeout"
		}
		if ctx.Err() != nil {
			// The caller left; nobody reads what follows.
			return 499, "CallerGone"
		}
		// err names the URL and the failure (refused, no route, TLS);
		// never a header value.
		log.Warn("the agent is unreachable", "agent", c.Target, "err", err)
		writeError(w, http.StatusBadGateway, "AgentUnreachable", "the relay cannot reach the keyless agent; a retry may succeed, and the relay's log says why")
		return http.StatusBadGateway, "AgentUnreachable"
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxRelayAnswer+1))
	switch {
	case err != nil:
		log.Warn("reading the agent's answer failed", "agent", c.Target, "err", err)
		writeError(w, http.StatusBadGateway, "AgentUnreachable", "the keyless agent's answer broke off; a retry may succeed")
		return http.StatusBadGateway, "AgentUnreachable"
	case len(body) > MaxRelayAnswer:
		log.Warn("the agent's answer is too large", "agent", c.Target, "limit", MaxRelayAnswer)
		writeError(w, http.StatusBadGateway, "BadAgentAnswer", "the answer from behind the relay is larger than a credentials answer can be")
		return http.StatusBadGateway, "BadAgentAnswer"
	case resp.StatusCode < 200 || resp.StatusCode > 599 || resp.StatusCode >= 300 && resp.StatusCode < 400:
		log.Warn("the agent answered a status the relay does not pass on", "agent", c.Target, "status", resp.StatusCode)
		writeError(w, http.StatusBadGateway, "BadAgentAnswer", "the answer from behind the relay is not a credentials answer")
		return http.StatusBadGateway, "BadAgentAnswer"
	}
	h := w.Header()
	if ct := resp.Header.Get("Content-Type"); ct != "" {
		h.Set("Content-Type", ct)
	}
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(resp.StatusCode)
	w.Write(body)
	return resp.StatusCode, ""
}

// relayTransport reaches the agent: no proxy, no compression, bounded
// dial, handshake and header wait, a few idle connections kept.
func relayTransport() *http.Transport {
	return &http.Transport{
		Proxy:                  nil,
		DialContext:            (&net.Dialer{Timeout: relayDialTimeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:    relayDialTimeout,
		ResponseHeaderTimeout:  DefaultRelayTimeout,
		MaxResponseHeaderBytes: MaxHeaderBytes,
		DisableCompression:     true,
		MaxIdleConns:           4,
		// Jobs share the relay: one that opens connections by the
		// hundred waits its turn instead of taking the agent's.
		MaxConnsPerHost:   64,
		IdleConnTimeout:   90 * time.Second,
		ForceAttemptHTTP2: true,
	}
}
