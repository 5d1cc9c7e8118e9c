package rolesanywhere

import (
	"crypto/sha256"
	"net/http"
	"sync"
)

// maxHTTPClients bounds HTTPClients: more distinct transport options than
// this (a CA bundle replaced again and again) start the set afresh.
const maxHTTPClients = 8

// HTTPClients hands out one HTTP client, and so one pool of kept-alive
// connections, per TransportOptions: for a caller that makes a Client for
// each CreateSession, such as the agent with its session per job, which
// would otherwise open (and TLS-handshake) a connection for each and keep
// it idle. The options are compared by content (the roots by their
// SHA-256), so a changed CA bundle gets a client of its own. The zero
// value is ready to use; it is safe for concurrent use.
type HTTPClients struct {
	mu      sync.Mutex
	clients map[httpClientKey]*http.Client
}

type httpClientKey struct {
	roots              [sha256.Size]byte
	insecure, useProxy bool
}

// Client returns the client for o, made by NewHTTPClient on first use.
func (h *HTTPClients) Client(o TransportOptions) (*http.Client, error) {
	k := httpClientKey{roots: sha256.Sum256(o.RootCAs), insecure: o.InsecureSkipVerify, useProxy: o.UseProxy}
	h.mu.Lock()
	defer h.mu.Unlock()
	if c := h.clients[k]; c != nil {
		return c, nil
	}
	c, err := NewHTTPClient(o)
	if err != nil {
		return nil, err
	}
	if h.clients == nil || len(h.clients) >= maxHTTPClients {
		for _, old := range h.clients {
			old.CloseIdleConnections()
		}
		h.clients = map[httpClientKey]*http.Client{}
	}
	h.clients[k] = c
	return c, nil
}
