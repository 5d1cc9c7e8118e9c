// Package caapi serves a ca.Authority over HTTPS with step-ca's API, so
// the step CLI, smallstep's client library and keyless's own client work
// with it: the same routes (at / and under /1.0/), status codes and JSON.
// It is the one place where CA errors become HTTP statuses. The CLI's
// `keyless ca serve` uses it; tests start it behind httptest.
package caapi

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/keyless-dev/keyless/internal/ca"
	"github.com/keyless-dev/keyless/internal/caproto"
	"github.com/keyless-dev/keyless/internal/logline"
	"github.com/keyless-dev/keyless/internal/pki"
)

// Config configures the handler.
type Config struct {
	Authority *ca.Authority
	Version   string
	Logger    *slog.Logger
}

// Handler serves the API. It is safe for concurrent use.
type Handler struct {
	a       *ca.Authority
	version string
	log     *slog.Logger
	mux     *http.ServeMux

	// intermediate is the CA's intermediate (fixed for the Authority's
	// life) as a JSON string of its PEM, which every issued answer holds.
	intermediate struct {
		der  []byte
		json []byte
	}
}

// maxBody bounds request bodies; a CSR and a token fit in a few KB.
const maxBody = 1 << 20

// New returns the API handler.
func New(cfg Config) *Handler {
	h := &Handler{a: cfg.Authority, version: cfg.Version, log: cfg.Logger, mux: http.NewServeMux()}
	h.log = logline.Or(h.log)
	if h.a != nil {
		inter := h.a.Intermediate().Raw
		h.intermediate.der, h.intermediate.json = inter, appendPEMString(nil, inter)
	}
	if h.version == "" {
		h.version = "keyless"
	}
	routes := []struct {
		method, path string
		handle       http.HandlerFunc
	}{
		{"GET", "/health", h.health}, {"GET", "/version", h.versionInfo}, {"GET", "/root/{sha}", h.rootBySHA},
		{"GET", "/roots", h.roots}, {"GET", "/roots.pem", h.rootsPEM},
		{"GET", "/intermediates", h.intermediates}, {"GET", "/intermediates.pem", h.intermediatesPEM},
		{"GET", "/provisioners", h.provisioners}, {"GET", "/provisioners/{kid}/encrypted-key", h.encryptedKey},
		{"POST", "/sign", h.sign}, {"POST", "/renew", h.renew}, {"POST", "/revoke", h.revoke}, {"GET", "/crl", h.crl},
	}
	for _, prefix := range []string{"", "/1.0"} {
		for _, r := range routes {
			h.mux.HandleFunc(r.method+" "+prefix+r.path, r.handle)
		}
	}
	// keyless's own: the certificate list for operators, with a
	// provisioner's token (not part of step-ca's API).
	h.mux.HandleFunc("GET "+caproto.PathList, h.list)
	return h
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mux.ServeHTTP(w, r)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// fail answers step-ca's error shape, {"status":N,"message":"..."}, with
// keyless's reason code and policy limit when the refusal has them. The
// cause of an internal error is logged, never sent.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	status, msg := http.StatusInternalServerError, "internal server error"
	var resp caproto.ErrorResponse
	var ce *ca.Error
	if errors.As(err, &ce) {
		msg = ce.Message
		resp.Reason, resp.Limit = ce.Reason, caproto.Duration(ce.Limit)
		switch ce.Kind {
		case ca.KindBadRequest:
			status = http.StatusBadRequest
		case ca.KindUnauthorized:
			status = http.StatusUnauthorized
		case ca.KindForbidden:
			status = http.StatusForbidden
		case ca.KindNotFound:
			status = http.StatusNotFound
		case ca.KindNotImplemented:
			status = http.StatusNotImplemented
		}
	}
	if status == http.StatusInternalServerError {
		h.log.Error("request failed", "path", r.URL.Path, "err", err)
		msg = "internal server error"
	} else {
		h.log.Warn("request refused", "path", r.URL.Path, "status", status, "reason", msg)
	}
	resp.Status, resp.Message = status, msg
	writeJSON(w, status, resp)
}

func badRequest(format string, args ...any) error {
	return &ca.Error{Kind: ca.KindBadRequest, Message: sprintf(format, args...)}
}

func (h *Handler) health(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (h *Handler) versionInfo(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"version": h.version})
}

func pemOf(certs ...*x509.Certificate) []string {
	out := make([]string, len(certs))
	for i, c := range certs {
		out[i] = string(pki.EncodeCertificates(c))
	}
	return out
}

// rootBySHA answers the root whose SHA-256 fingerprint is given (hex,
// any case, dashes and colons ignored): how clients bootstrap trust.
func (h *Handler) rootBySHA(w http.ResponseWriter, r *http.Request) {
	want := strings.ToLower(strings.NewReplacer("-", "", ":", "").Replace(r.PathValue("sha")))
	root := h.a.Root()
	sum := sha256.Sum256(root.Raw)
	if want != hex.EncodeToString(sum[:]) {
		h.fail(w, r, &ca.Error{Kind: ca.KindNotFound, Message: "no root with fingerprint " + clip(r.PathValue("sha"))})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"ca": pemOf(root)[0]})
}

// roots and intermediates answer 201, as step-ca does.
func (h *Handler) roots(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusCreated, map[string][]string{"crts": pemOf(h.a.Root())})
}

func (h *Handler) intermediates(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusCreated, map[string][]string{"crts": pemOf(h.a.Intermediate())})
}

func writePEM(w http.ResponseWriter, data []byte) {
	w.Header().Set("Content-Type", "application/x-pem-file")
	_, _ = w.Write(data)
}

func (h *Handler) rootsPEM(w http.ResponseWriter, r *http.Request) {
	writePEM(w, pki.EncodeCertificates(h.a.Root()))
}

func (h *Handler) intermediatesPEM(w http.ResponseWriter, r *http.Request) {
	writePEM(w, pki.EncodeCertificates(h.a.Intermediate()))
}

type provisionerJSON struct {
	Type         string          `json:"type"`
	Name         string          `json:"name"`
	Key          json.RawMessage `json:"key"`
	EncryptedKey string          `json:"encryptedKey,omitempty"`
	Claims       map[string]any  `json:"claims,omitempty"`
}

func (h *Handler) provisioners(w http.ResponseWriter, r *http.Request) {
	var list []provisionerJSON
	for _, p := range h.a.Provisioners() {
		list = append(list, provisionerJSON{
			Type: p.Type, Name: p.Name, Key: json.RawMessage(p.Key), EncryptedKey: p.EncryptedKey,
			Claims: map[string]any{
				"minTLSCertDuration":      time.Duration(p.MinDuration).String(),
				"maxTLSCertDuration":      time.Duration(p.MaxDuration).String(),
				"defaultTLSCertDuration":  time.Duration(p.DefaultDuration).String(),
				"disableRenewal":          p.DisableRenewal,
				"allowRenewalAfterExpiry": p.RenewAfterExpiry > 0,
			},
		})
	}
	// One page holds them all; cursor and limit are accepted and ignored.
	writeJSON(w, http.StatusOK, map[string]any{"provisioners": list, "nextCursor": ""})
}

func (h *Handler) encryptedKey(w http.ResponseWriter, r *http.Request) {
	kid := r.PathValue("kid")
	for _, p := range h.a.Provisioners() {
		var key struct {
			Kid string `json:"kid"`
		}
		if json.Unmarshal([]byte(p.Key), &key) == nil && key.Kid == kid && p.EncryptedKey != "" {
			writeJSON(w, http.StatusOK, map[string]string{"key": p.EncryptedKey})
			return
		}
	}
	h.fail(w, r, &ca.Error{Kind: ca.KindNotFound, Message: "no provisioner key with kid " + clip(kid)})
}

// decode reads a JSON body strictly enough to report mistakes.
func decode(r *http.Request, v any) error {
	data, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return badRequest("reading the request body: %v", err)
	}
	if len(data) > maxBody {
		return badRequest("the request body is larger than %d bytes", maxBody)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return badRequest("malformed JSON body: %v", err)
	}
	return nil
}

func issuedResponse(iss *ca.Issued) caproto.SignResponse {
	chain := pemOf(append([]*x509.Certificate{iss.Certificate}, iss.Intermediates...)...)
	return caproto.SignResponse{Crt: chain[0], CA: chain[1], CertChain: chain}
}

// writeIssued answers 201 with issuedResponse(iss), encoded as writeJSON
// would encode it (TestIssuedJSON compares them) but without reflection,
// and with the intermediate's PEM encoded once (see Handler): the
// reflective encoding and PEM's line breaker were about 3% of the CA's
// CPU per certificate (perf, 16 clients, issue 16).
func (h *Handler) writeIssued(w http.ResponseWriter, iss *ca.Issued) {
	if len(iss.Intermediates) == 0 {
		writeJSON(w, http.StatusCreated, issuedResponse(iss))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	_, _ = w.Write(h.issuedJSON(iss))
}

func (h *Handler) issuedJSON(iss *ca.Issued) []byte {
	chain := make([][]byte, 0, 1+len(iss.Intermediates))
	size := 64
	for i, c := range append([]*x509.Certificate{iss.Certificate}, iss.Intermediates...) {
		var s []byte
		if i > 0 && bytes.Equal(c.Raw, h.intermediate.der) {
			s = h.intermediate.json
		} else {
			s = appendPEMString(nil, c.Raw)
		}
		chain = append(chain, s)
		size += 2 * len(s)
	}
	out := make([]byte, 0, size)
	out = append(out, `{"crt":`...)
	out = append(out, chain[0]...)
	out = append(out, `,"ca":`...)
	out = append(out, chain[1]...)
	out = append(out, `,"certChain":[`...)
	for i, s := range chain {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, s...)
	}
	return append(out, "]}\n"...)
}

// appendPEMString appends the PEM CERTIFICATE block of der, as
// pem.Encode writes it, as a JSON string: PEM's characters are JSON's
// own, except the line feeds, which it writes as \n.
func appendPEMString(dst, der []byte) []byte {
	const lineLen = 64 // pem.Encode's
	dst = append(dst, `"-----BEGIN CERTIFICATE-----\n`...)
	enc := base64.StdEncoding
	b64 := enc.AppendEncode(make([]byte, 0, enc.EncodedLen(len(der))), der)
	for len(b64) > 0 {
		n := min(lineLen, len(b64))
		dst = append(dst, b64[:n]...)
		dst = append(dst, `\n`...)
		b64 = b64[n:]
	}
	return append(dst, `-----END CERTIFICATE-----\n"`...)
}

func (h *Handler) sign(w http.ResponseWriter, r *http.Request) {
	var req caproto.SignRequest
	if err := decode(r, &req); err != nil {
		h.fail(w, r, err)
		return
	}
	if req.CSR == "" || req.OTT == "" {
		h.fail(w, r, badRequest("the request needs csr (PEM) and ott (the one-time token)"))
		return
	}
	if block, _ := pem.Decode([]byte(req.CSR)); block == nil {
		h.fail(w, r, badRequest("csr is not PEM"))
		return
	}
	iss, err := h.a.Sign(ca.SignRequest{CSR: []byte(req.CSR), Token: req.OTT, NotBefore: req.NotBefore, NotAfter: req.NotAfter})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.writeIssued(w, iss)
}

// renew renews the client's certificate: the one it connected with over
// mTLS, else the one in its Bearer renewal token.
func (h *Handler) renew(w http.ResponseWriter, r *http.Request) {
	var (
		iss *ca.Issued
		err error
	)
	if token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		iss, err = h.a.RenewWithToken(strings.TrimSpace(token))
	} else {
		iss, err = h.a.Renew(peerChain(r))
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.writeIssued(w, iss)
}

func peerChain(r *http.Request) []*x509.Certificate {
	if r.TLS == nil {
		return nil
	}
	return r.TLS.PeerCertificates
}

func (h *Handler) revoke(w http.ResponseWriter, r *http.Request) {
	var req caproto.RevokeRequest
	if err := decode(r, &req); err != nil {
		h.fail(w, r, err)
		return
	}
	err := h.a.Revoke(ca.RevokeRequest{Serial: req.Serial, Token: req.OTT, Peer: peerChain(r),
		ReasonCode: req.ReasonCode, Reason: req.Reason, Passive: req.Passive})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (h *Handler) list(w http.ResponseWriter, r *http.Request) {
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		h.fail(w, r, &ca.Error{Kind: ca.KindUnauthorized, Message: "listing certificates needs a provisioner's token (Authorization: Bearer)"})
		return
	}
	filter, err := caproto.ParseListFilter(r.URL.Query())
	if err != nil {
		h.fail(w, r, &ca.Error{Kind: ca.KindBadRequest, Message: err.Error()})
		return
	}
	// The list is streamed, one certificate at a time, as the document
	// caproto.ListResponse: a CA with a million certificates does not
	// hold them all to answer.
	var out *bufio.Writer
	err = h.a.ListCertificates(strings.TrimSpace(token), filter, func(c caproto.Certificate) error {
		sep := ","
		if out == nil {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusOK)
			out = bufio.NewWriterSize(w, 64<<10)
			out.WriteString(`{"certificates":[`)
			sep = ""
		}
		b, err := json.Marshal(c)
		if err != nil {
			return err
		}
		out.WriteString(sep)
		_, err = out.Write(b)
		return err
	})
	switch {
	case err != nil && out == nil:
		h.fail(w, r, err)
	case err != nil:
		// Too late for a status: cut the connection, so the client sees
		// a broken list rather than a short one.
		h.log.Error("request failed", "path", r.URL.Path, "err", err)
		panic(http.ErrAbortHandler)
	case out == nil:
		writeJSON(w, http.StatusOK, caproto.ListResponse{Certificates: []caproto.Certificate{}})
	default:
		out.WriteString("]}\n")
		_ = out.Flush()
	}
}

func (h *Handler) crl(w http.ResponseWriter, r *http.Request) {
	der, err := h.a.CRL()
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if _, ok := r.URL.Query()["pem"]; ok {
		writePEM(w, pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der}))
		return
	}
	w.Header().Set("Content-Type", "application/pkix-crl")
	w.Header().Set("Content-Length", strconv.Itoa(len(der)))
	_, _ = w.Write(der)
}

// TLSConfig returns the server's TLS configuration: TLS 1.2 or later, a
// server certificate for the CA's names issued from its intermediate and
// renewed in the background of the handshake when two thirds of its 24 h
// are gone, and client certificates requested but not required (mTLS
// renewal and revocation use them; the handler checks them).
func TLSConfig(a *ca.Authority, now func() time.Time) *tls.Config {
	if now == nil {
		now = time.Now
	}
	sc := &serverCert{a: a, now: now}
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		ClientAuth:     tls.RequestClientCert,
		GetCertificate: sc.get,
	}
}

// serverCertLifetime is step-ca's: a day, renewed in process.
const serverCertLifetime = 24 * time.Hour

type serverCert struct {
	a     *ca.Authority
	now   func() time.Time
	mu    sync.Mutex
	cert  *tls.Certificate
	renew time.Time
}

func (s *serverCert) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cert != nil && s.now().Before(s.renew) {
		return s.cert, nil
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	leaf, err := s.a.IssueServerCertificate(key.Public(), serverCertLifetime)
	if err != nil {
		if s.cert != nil {
			return s.cert, nil // keep serving the old one while it lasts
		}
		return nil, err
	}
	s.cert = &tls.Certificate{Certificate: [][]byte{leaf.Raw, s.a.Intermediate().Raw}, PrivateKey: key, Leaf: leaf}
	s.renew = leaf.NotBefore.Add(leaf.NotAfter.Sub(leaf.NotBefore) * 2 / 3)
	return s.cert, nil
}

func clip(s string) string {
	if len(s) > 80 {
		return strings.ToValidUTF8(s[:80], "") + "..."
	}
	return s
}

func sprintf(format string, args ...any) string { return fmt.Sprintf(format, args...) }
