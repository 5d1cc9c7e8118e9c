// Package rolesanywheretest is a minimal CreateSession endpoint for tests of
// the client side (the rolesanywhere client, credential-process): it
// verifies each request's SigV4-X509 signature with the real verifier and
// the certificate's public key, optionally checks the chain against a root
// pool, counts sessions, and can be told to fail the next calls. It checks
// no policy: that is the emulator's job. Only tests may import it.
package rolesanywheretest

import (
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"

	"github.com/keyless-dev/keyless/internal/sigv4"
)

// Example ARNs for tests: account 111122223333, region us-east-1.
const (
	TrustAnchorARN = "arn:aws:rolesanywhere:us-east-1:111122223333:trust-anchor/3f7c1a0e-0000-4000-8000-000000000001"
	ProfileARN     = "arn:aws:rolesanywhere:us-east-1:111122223333:profile/3f7c1a0e-0000-4000-8000-000000000002"
	RoleARN        = "arn:aws:iam::111122223333:role/ci-deployer"
)

// Failure is an answer the server gives instead of credentials.
type Failure struct {
	Status     int
	Code       string // sent in X-Amzn-ErrorType and __type
	Message    string
	RetryAfter string
	// CloseConnection drops the connection without an answer.
	CloseConnection bool
}

// Request is what the server saw of one call.
type Request struct {
	Header http.Header
	Query  string
	Body   []byte
}

// Handler is the fake endpoint; Server wraps it in an httptest.Server.
type Handler struct {
	// Roots, when set, must anchor the leaf through X-Amz-X509-Chain.
	Roots *x509.CertPool
	// Region, when set, must be the signing region.
	Region string

	mu       sync.Mutex
	lifetime time.Duration
	sessions int
	calls    int
	failures []Failure
	requests []Request
}

// Server is a running fake endpoint.
type Server struct {
	*httptest.Server
	*Handler
}

// NewServer starts a plain-HTTP fake endpoint on 127.0.0.1.
func NewServer() *Server {
	h := &Handler{}
	return &Server{Server: httptest.NewServer(h), Handler: h}
}

// NewTLSServer starts an HTTPS fake endpoint on 127.0.0.1 with
// httptest's own certificate.
func NewTLSServer() *Server {
	h := &Handler{}
	srv := httptest.NewUnstartedServer(h)
	// Clients that refuse the test certificate are the point of some
	// tests; their handshake errors are not worth a log line.
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	return &Server{Server: srv, Handler: h}
}

// SetLifetime makes issued credentials expire after d, whatever duration
// was asked; zero restores the asked duration.
func (h *Handler) SetLifetime(d time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.lifetime = d
}

// FailNext queues answers for the next calls, in order.
func (h *Handler) FailNext(f ...Failure) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.failures = append(h.failures, f...)
}

// Sessions returns how many sessions were issued.
func (h *Handler) Sessions() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.sessions
}

// Calls returns how many requests arrived, failed or not.
func (h *Handler) Calls() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.calls
}

// Requests returns what every call sent.
func (h *Handler) Requests() []Request {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Request(nil), h.requests...)
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	h.mu.Lock()
	h.calls++
	h.requests = append(h.requests, Request{Header: r.Header.Clone(), Query: r.URL.RawQuery, Body: body})
	var fail *Failure
	if len(h.failures) > 0 {
		fail = &h.failures[0]
		h.failures = h.failures[1:]
	}
	lifetime := h.lifetime
	h.mu.Unlock()

	if fail != nil {
		if fail.CloseConnection {
			if hj, ok := w.(http.Hijacker); ok {
				if conn, _, err := hj.Hijack(); err == nil {
					conn.Close()
					return
				}
			}
		}
		if fail.RetryAfter != "" {
			w.Header().Set("Retry-After", fail.RetryAfter)
		}
		writeError(w, fail.Status, fail.Code, fail.Message)
		return
	}
	if r.Method != http.MethodPost || !strings.HasSuffix(r.URL.Path, "/sessions") {
		writeError(w, http.StatusNotFound, "ResourceNotFoundException", "no such operation "+r.Method+" "+r.URL.Path)
		return
	}
	v, err := sigv4.VerifyX509(r, body, sigv4.X509VerifyOptions{Now: time.Now(), Region: h.Region})
	if err != nil {
		writeError(w, http.StatusForbidden, "AccessDeniedException", err.Error())
		return
	}
	if h.Roots != nil {
		inter := x509.NewCertPool()
		for _, c := range v.Intermediates {
			inter.AddCert(c)
		}
		if _, err := v.Certificate.Verify(x509.VerifyOptions{Roots: h.Roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
			writeError(w, http.StatusForbidden, "AccessDeniedException", "Untrusted signing certificate: "+err.Error())
			return
		}
	}
	q := r.URL.Query()
	for _, name := range []string{"profileArn", "roleArn", "trustAnchorArn"} {
		if q.Get(name) == "" {
			writeError(w, http.StatusBadRequest, "ValidationException", name+" is required")
			return
		}
	}
	var in struct {
		DurationSeconds int    `json:"durationSeconds"`
		RoleSessionName string `json:"roleSessionName"`
	}
	if len(body) > 0 {
		if err := json.Unmarshal(body, &in); err != nil {
			writeError(w, http.StatusBadRequest, "ValidationException", "body is not JSON")
			return
		}
	}
	if in.DurationSeconds == 0 {
		in.DurationSeconds = 3600
	}
	if lifetime == 0 {
		lifetime = time.Duration(in.DurationSeconds) * time.Second
	}
	session := in.RoleSessionName
	if session == "" {
		session = v.Certificate.SerialNumber.Text(16)
	}
	h.mu.Lock()
	h.sessions++
	h.mu.Unlock()

	roleARN := q.Get("roleArn")
	roleName := roleARN[strings.LastIndex(roleARN, "/")+1:]
	account := strings.Split(roleARN, ":")[4]
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"credentialSet": []any{map[string]any{
			"assumedRoleUser": map[string]string{
				"arn":           fmt.Sprintf("arn:aws:sts::%s:assumed-role/%s/%s", account, roleName, session),
				"assumedRoleId": "AROA" + randomString(17, upper) + ":" + session,
			},
			"credentials": map[string]string{
				"accessKeyId":     "ASIA" + randomString(16, upper),
				"secretAccessKey": randomString(40, upper+lower+"/+"),
				"sessionToken":    randomString(300, upper+lower+"/+="),
				"expiration":      time.Now().Add(lifetime).UTC().Format(time.RFC3339),
			},
			"packedPolicySize": 0,
			"roleArn":          roleARN,
			"sourceIdentity":   "CN=" + v.Certificate.Subject.CommonName,
		}},
		"subjectArn": "arn:aws:rolesanywhere:us-east-1:" + account + ":subject/41c10bae-6783-40d4-ab20-65dc5d922e45",
	})
}

func writeError(w http.ResponseWriter, status int, code, message string) {
	w.Header().Set("Content-Type", "application/json")
	if code != "" {
		w.Header().Set("X-Amzn-ErrorType", code+":http://internal.amazon.com/coral/com.amazonaws.rolesanywhere/")
	}
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"message": message})
}

const (
	upper = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	lower = "abcdefghijklmnopqrstuvwxyz0123456789"
)

func randomString(n int, alphabet string) string {
	b := make([]byte, n)
	max := big.NewInt(int64(len(alphabet)))
	for i := range b {
		v, err := rand.Int(rand.Reader, max)
		if err != nil {
			panic(err)
		}
		b[i] = alphabet[v.Int64()]
	}
	return string(b)
}
