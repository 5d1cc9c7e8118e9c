// Package agentapi is keyless agent's wire: the container-credentials
// endpoint every AWS SDK speaks (the ECS and EKS Pod Identity protocol),
// the local API on a unix socket (credential_process answers and status,
// the caller known by the kernel's SO_PEERCRED), Prometheus metrics, and
// a client of the first two for keyless credential-process --agent and
// keyless agent status.
//
// It is a transport: the one place the agent's decisions become HTTP
// statuses. It decides nothing itself; a Vendor (internal/agent) says
// who gets what. Only internal/agent and the CLI (through Client) use it.
package agentapi

import (
	"context"
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
	"time"

	"github.com/keyless-dev/keyless/internal/metrics"
	"github.com/keyless-dev/keyless/internal/serve"
)

// MaxHeaderBytes bounds a request's line and headers: a token is a few
// kilobytes at most (an id_tokens JWT), so anything larger is refused
// with 431 before it is read further or verified.
const MaxHeaderBytes = 8 << 10

// Peer is a unix-socket caller, as the kernel tells it.
type Peer struct {
	UID, GID uint32
	PID      int32
}

// Request is one caller asking for credentials: Token is the
// Authorization header exactly as sent (container endpoint); Peer is set
// on the unix socket, where tokens are not used. Listener and Remote say
// where it came from, for the audit line.
type Request struct {
	Token            string
	Peer             *Peer
	Listener, Remote string
}

// Credentials are what a caller gets.
type Credentials struct {
	AccessKeyID, SecretAccessKey, Token string
	Expiration                          time.Time
	AccountID                           string
}

// Refusal is a decision not to answer with credentials: Status is the
// HTTP status (401, 403, 503...), Code and Message go to the caller.
// Messages never hold tokens or credentials.
type Refusal struct {
	Status        int
	Code, Message string
}

func (r *Refusal) Error() string { return fmt.Sprintf("%s (%d): %s", r.Code, r.Status, r.Message) }

// Vendor decides and answers. Its errors are *Refusal, or anything else
// for a failure of its own (answered 500 with no detail). It must be safe
// for concurrent use.
type Vendor interface {
	Vend(ctx context.Context, r Request) (*Credentials, error)
}

// StatusSource answers keyless agent status.
type StatusSource interface {
	Status(ctx context.Context) *Status
}

// Status is the agent's state as keyless agent status shows it. It holds
// no secret.
type Status struct {
	Version     string             `json:"version"`
	Now         time.Time          `json:"now"`
	Certificate *CertificateStatus `json:"certificate,omitempty"`
	Listeners   []ListenerStatus   `json:"listeners"`
	Roles       []RoleStatus       `json:"roles"`
	Errors      []ErrorStatus      `json:"errors"`
}

// CertificateStatus is the runner's certificate.
type CertificateStatus struct {
	Path     string    `json:"path"`
	Subject  string    `json:"subject"`
	Serial   string    `json:"serial"`
	NotAfter time.Time `json:"notAfter"`
}

// ListenerStatus is one listener.
type ListenerStatus struct {
	Kind    string `json:"kind"`
	Address string `json:"address"`
}

// RoleStatus is one cached session.
type RoleStatus struct {
	Role       string    `json:"role"`
	Profile    string    `json:"profile"`
	Session    string    `json:"session"`
	Expiration time.Time `json:"expiration"`
	LastError  string    `json:"lastError,omitempty"`
}

// ErrorStatus is a recent error.
type ErrorStatus struct {
	At    time.Time `json:"at"`
	What  string    `json:"what"`
	Error string    `json:"error"`
}

// containerAnswer is the container-credentials protocol's answer.
type containerAnswer struct {
	AccessKeyID     string `json:"AccessKeyId"`
	SecretAccessKey string `json:"SecretAccessKey"`
	Token           string `json:"Token"`
	Expiration      string `json:"Expiration"`
	AccountID       string `json:"AccountId,omitempty"`
}

// processAnswer is credential_process's JSON.
type processAnswer struct {
	Version         int    `json:"Version"`
	AccessKeyID     string `json:"AccessKeyId"`
	SecretAccessKey string `json:"SecretAccessKey"`
	SessionToken    string `json:"SessionToken"`
	Expiration      string `json:"Expiration"`
}

// errorAnswer is the protocol's error: the Go SDK reads lower-case keys
// when the Content-Type is exactly application/json.
type errorAnswer struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	// Exactly application/json: the Go SDK reads an error's lower-case
	// keys only then.
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	// Credentials must not sit in any cache between the agent and the SDK.
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, message string) {
	writeJSON(w, status, errorAnswer{Code: code, Message: message})
}

// headerSize is what a request's header fields take on the wire, roughly.
func headerSize(r *http.Request) int {
	n := len(r.Method) + len(r.RequestURI) + len(r.Proto) + len(r.Host) + 4
	for k, vs := range r.Header {
		for _, v := range vs {
			n += len(k) + len(v) + 4
		}
	}
	return n
}

// vend runs the Vendor and turns its answer into a status: credentials
// only when every field is there and they have not expired; a refusal
// with its own status when that is an error status; anything else 500
// with no detail (the Vendor logs why).
func vend(w http.ResponseWriter, r *http.Request, v Vendor, req Request, now func() time.Time) *Credentials {
	c, err := v.Vend(r.Context(), req)
	if err != nil {
		var ref *Refusal
		if errors.As(err, &ref) && ref.Status >= 400 && ref.Status <= 599 {
			code, msg := ref.Code, ref.Message
			if code == "" {
				code = strings.ReplaceAll(http.StatusText(ref.Status), " ", "")
			}
			if msg == "" {
				msg = "refused: " + strconv.Itoa(ref.Status)
			}
			writeError(w, ref.Status, code, msg)
			return nil
		}
		writeError(w, http.StatusInternalServerError, "InternalError", "the agent failed; its log says why")
		return nil
	}
	if c == nil || c.AccessKeyID == "" || c.SecretAccessKey == "" || c.Token == "" || !c.Expiration.After(now()) {
		// Never 200 with empty or expired credentials: an SDK would
		// use them and fail later, far from the cause.
		writeError(w, http.StatusInternalServerError, "InternalError", "the agent had no usable credentials; its log says why")
		return nil
	}
	return c
}

// ContainerPath is the one path the container-credentials endpoint
// answers: the path of AWS_CONTAINER_CREDENTIALS_FULL_URI.
const ContainerPath = "/v1/credentials"

// ContainerHandler serves the container-credentials protocol on one
// listener. In this order: the Host header must be one of hosts, exactly
// but for case (so a page in a browser on this host cannot rebind a
// name of its own to the agent), else 403; a request whose headers pass
// MaxHeaderBytes gets 431 (StartContainer's server refuses those before
// any handler runs: this is for a handler served elsewhere); the path
// must be ContainerPath, else 404; GET only, else 405; one Authorization header at most, else 400. The
// Authorization header then goes verbatim to v, which decides. The
// answer is the four fields (and AccountId), or {"code","message"}:
// a *Refusal's status, or 500 with no detail for any other error and
// for credentials with an empty field or already expired.
func ContainerHandler(v Vendor, hosts []string, listener string) http.Handler {
	allowed := map[string]bool{}
	for _, h := range hosts {
		allowed[strings.ToLower(h)] = true
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !allowed[strings.ToLower(r.Host)] {
			writeError(w, http.StatusForbidden, "WrongHost", "this endpoint answers only requests addressed to "+strings.Join(hosts, " or "))
			return
		}
		if headerSize(r) > MaxHeaderBytes {
			writeError(w, http.StatusRequestHeaderFieldsTooLarge, "RequestHeaderFieldsTooLarge", "request headers over 8 KiB")
			return
		}
		if r.URL.Path != ContainerPath {
			// One path, so that a stale RELATIVE_URI meant for another
			// endpoint fails here instead of getting this job's
			// credentials by accident.
			writeError(w, http.StatusNotFound, "NotFound", "the container-credentials endpoint is GET "+ContainerPath)
			return
		}
		if r.Method != http.MethodGet {
			w.Header().Set("Allow", http.MethodGet)
			writeError(w, http.StatusMethodNotAllowed, "MethodNotAllowed", "use GET")
			return
		}
		if len(r.Header.Values("Authorization")) > 1 {
			writeError(w, http.StatusBadRequest, "BadRequest", "more than one Authorization header")
			return
		}
		c := vend(w, r, v, Request{Token: r.Header.Get("Authorization"), Listener: listener, Remote: r.RemoteAddr}, time.Now)
		if c == nil {
			return
		}
		writeJSON(w, http.StatusOK, containerAnswer{AccessKeyID: c.AccessKeyID, SecretAccessKey: c.SecretAccessKey, Token: c.Token,
			Expiration: c.Expiration.UTC().Format(time.RFC3339), AccountID: c.AccountID})
	})
}

// Hosts lists the Host values an SDK sends for a listener bound at addr:
// the address with its port, without it for port 80, and localhost's for
// loopback addresses.
func Hosts(addr string) []string {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return []string{addr}
	}
	port := fmt.Sprint(ap.Port())
	names := []string{ap.Addr().String()}
	if ap.Addr().Is6() {
		names[0] = "[" + names[0] + "]"
	}
	if ap.Addr().IsLoopback() {
		names = append(names, "localhost")
	}
	var out []string
	for _, n := range names {
		out = append(out, n+":"+port)
		if ap.Port() == 80 {
			out = append(out, n)
		}
	}
	return out
}

// StartContainer serves h on addr with the agent's bounds: headers over
// MaxHeaderBytes get 431 before h runs.
func StartContainer(addr string, h http.Handler, logger *slog.Logger) (*serve.Server, error) {
	return serve.Start(addr, h, serve.Options{Logger: logger, ErrorLevel: slog.LevelDebug, MaxHeaderBytes: MaxHeaderBytes, WriteTimeout: 30 * time.Second})
}

// LocalHandler serves the local API on the unix socket: GET
// /v1/credentials answers credential_process JSON (Version 1) for the
// connection's peer (401 when there is none: the local API served
// anywhere but StartUnix's socket answers nobody); GET /v1/status answers
// s's Status (404 when s is nil). Errors are {"code","message"} as on the
// container endpoint.
func LocalHandler(v Vendor, s StatusSource) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/credentials", "/v1/status":
		default:
			writeError(w, http.StatusNotFound, "NotFound", "the local API has GET /v1/credentials and GET /v1/status")
			return
		}
		if r.Method != http.MethodGet {
			w.Header().Set("Allow", http.MethodGet)
			writeError(w, http.StatusMethodNotAllowed, "MethodNotAllowed", "use GET")
			return
		}
		if r.URL.Path == "/v1/status" {
			var st *Status
			if s != nil {
				st = s.Status(r.Context())
			}
			if st == nil {
				writeError(w, http.StatusNotFound, "NotFound", "this agent has no status")
				return
			}
			writeJSON(w, http.StatusOK, st)
			return
		}
		p := PeerFrom(r.Context())
		if p == nil {
			writeError(w, http.StatusUnauthorized, "NoPeer", "the caller's credentials are unknown: the local API answers only on its unix socket")
			return
		}
		c := vend(w, r, v, Request{Peer: p, Listener: "socket"}, time.Now)
		if c == nil {
			return
		}
		writeJSON(w, http.StatusOK, processAnswer{Version: 1, AccessKeyID: c.AccessKeyID, SecretAccessKey: c.SecretAccessKey,
			SessionToken: c.Token, Expiration: c.Expiration.UTC().Format(time.RFC3339)})
	})
}

// StartMetrics serves GET /metrics, written by write, on a loopback
// address (an IP literal: 127.0.0.1:9464, [::1]:9464): metrics name
// roles and refusal reasons, which are for this host's operator only.
func StartMetrics(addr string, write func(io.Writer), logger *slog.Logger) (*serve.Server, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("metrics address %q: %w", addr, err)
	}
	if a, err := netip.ParseAddr(host); err != nil || !a.Unmap().IsLoopback() {
		return nil, fmt.Errorf("metrics listen on a loopback address only (such as 127.0.0.1:9464), not %q: metrics name roles and refusals", addr)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", metrics.ContentType)
		write(w)
	})
	return serve.Start(addr, mux, serve.Options{Logger: logger, ErrorLevel: slog.LevelDebug, MaxHeaderBytes: MaxHeaderBytes, WriteTimeout: 30 * time.Second})
}

// FromOnly refuses, with 403 JSON and before h runs, a request whose
// remote address allow rejects. The link-local addresses answer ARP on
// every interface of the host, so a machine on the LAN that routes
// 169.254.170.2 here reaches the listener; the agent lets only loopback
// and the host's container bridges through (hostnet.Bridges).
func FromOnly(h http.Handler, allow func(netip.Addr) bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ap, err := netip.ParseAddrPort(r.RemoteAddr)
		if err != nil || !allow(ap.Addr()) {
			writeError(w, http.StatusForbidden, "NotFromAContainer", "this endpoint answers only containers on this host's bridges")
			return
		}
		h.ServeHTTP(w, r)
	})
}
