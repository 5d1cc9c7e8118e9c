// Package caclient is a client of any step-compatible CA (keyless ca or
// smallstep's step-ca): bootstrap trust in its root by fingerprint, get a
// one-time token from a provisioner password, sign a CSR, renew over mTLS
// or with step's x5c token, revoke, and (keyless ca only) list issued
// certificates and fetch the CRL for an operator. Refusals come back as
// *APIError with a typed Reason: the one keyless's CA sends, or the one
// inferred from step-ca's message, so callers never match messages.
//
// It is a transport: the use cases (internal/enroll, internal/renewal,
// internal/caops) call it. It does no file I/O and links no CA store.
package caclient

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/keyless-dev/keyless/internal/caproto"
	"github.com/keyless-dev/keyless/internal/pki"
)

// maxResponse bounds what is read of any answer.
const maxResponse = 4 << 20

// APIError is a CA's refusal: its HTTP status and message, and what it
// means.
type APIError struct {
	Op      string // sign, renew, revoke, ...
	Status  int
	Message string
	// Reason classifies the refusal; empty when it fits no known reason.
	Reason caproto.Reason
	// Limit is the CA's bound for lifetime refusals, when known.
	Limit time.Duration
	// Inferred is true when the CA sent no reason code (step-ca does
	// not), so Reason and Limit were read from its message.
	Inferred bool
}

func (e *APIError) Error() string {
	return fmt.Sprintf("the CA refused to %s (%d): %s", e.Op, e.Status, e.Message)
}

// Temporary reports whether trying again later may succeed: server
// errors and throttling, not refusals.
func (e *APIError) Temporary() bool {
	return e.Status >= 500 || e.Status == http.StatusTooManyRequests
}

// ErrFingerprint means the CA's root is not the one the fingerprint names.
var ErrFingerprint = errors.New("the CA's root certificate does not match the fingerprint")

// Client talks to one CA, trusting only its root.
type Client struct {
	base string
	root *x509.Certificate
	http *http.Client
	now  func() time.Time
}

// Options tune a Client.
type Options struct {
	// Timeout bounds each request; zero means 30 s.
	Timeout time.Duration
	// Now is the clock for tokens and for checking certificates, the
	// CA's own included; nil means time.Now.
	Now func() time.Time
}

// New returns a client for the CA at caURL (https://host:port) that
// trusts root alone.
func New(caURL string, root *x509.Certificate, o Options) (*Client, error) {
	u, err := url.Parse(caURL)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("CA URL %q: want https://host[:port]", caURL)
	}
	if root == nil {
		return nil, errors.New("the CA's root certificate is needed (keyless bootstrap stores it)")
	}
	if o.Timeout == 0 {
		o.Timeout = 30 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	pool := x509.NewCertPool()
	pool.AddCert(root)
	return &Client{
		base: strings.TrimSuffix(u.String(), "/"),
		root: root,
		now:  o.Now,
		http: &http.Client{Timeout: o.Timeout, Transport: &http.Transport{
			// The CA's TLS certificate is checked on the same clock as
			// what it issues.
			TLSClientConfig:   &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12, Time: o.Now},
			ForceAttemptHTTP2: true,
		}},
	}, nil
}

// URL returns the CA's base URL.
func (c *Client) URL() string { return c.base }

// CloseIdleConnections closes the connections kept open for the next
// request, so that a CA shutting down need not wait for them.
func (c *Client) CloseIdleConnections() { c.http.CloseIdleConnections() }

// Bootstrap fetches the CA's root by its SHA-256 fingerprint over a TLS
// connection that cannot be verified yet, and accepts it only if the DER
// hashes to the fingerprint (hex, any case, colons and dashes ignored) and
// the CA's own TLS certificate chains to it.
func Bootstrap(ctx context.Context, caURL, fingerprint string, timeout time.Duration) (*x509.Certificate, error) {
	want := strings.ToLower(strings.NewReplacer(":", "", "-", "", " ", "").Replace(fingerprint))
	if b, err := hex.DecodeString(want); err != nil || len(b) != sha256.Size {
		return nil, fmt.Errorf("fingerprint %q: want the 64 hex digits of the root's SHA-256", fingerprint)
	}
	u, err := url.Parse(caURL)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("CA URL %q: want https://host[:port]", caURL)
	}
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	var served []*x509.Certificate
	insecure := &http.Client{Timeout: timeout, Transport: &http.Transport{TLSClientConfig: &tls.Config{
		// Trust comes from the fingerprint, checked below, and then the
		// served chain is verified against the root it vouches for.
		InsecureSkipVerify: true, //nolint:gosec
		MinVersion:         tls.VersionTLS12,
		VerifyConnection: func(cs tls.ConnectionState) error {
			served = cs.PeerCertificates
			return nil
		},
	}}}
	data, err := get(ctx, insecure, strings.TrimSuffix(u.String(), "/")+"/root/"+want, "bootstrap")
	if err != nil {
		var ae *APIError
		if errors.As(err, &ae) && ae.Status == http.StatusNotFound {
			return nil, fmt.Errorf("%w: the CA has no root with fingerprint %s", ErrFingerprint, want)
		}
		return nil, err
	}
	var out struct {
		CA string `json:"ca"`
	}
	if err := json.Unmarshal(data, &out); err != nil {
		return nil, fmt.Errorf("the CA's /root answer: %w", err)
	}
	certs, err := pki.ParseCertificates([]byte(out.CA))
	if err != nil {
		return nil, fmt.Errorf("the CA's root: %w", err)
	}
	root := certs[0]
	if got := pki.Fingerprint(root); got != want {
		return nil, fmt.Errorf("%w: it is %s, not %s", ErrFingerprint, got, want)
	}
	if len(served) > 0 {
		pool := x509.NewCertPool()
		pool.AddCert(root)
		inter := x509.NewCertPool()
		for _, c := range served[1:] {
			inter.AddCert(c)
		}
		if _, err := served[0].Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, DNSName: u.Hostname()}); err != nil {
			return nil, fmt.Errorf("the CA's TLS certificate does not verify with the root it served: %w", err)
		}
	}
	return root, nil
}

func get(ctx context.Context, client *http.Client, url, op string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	return do(client, req, op)
}

func do(client *http.Client, req *http.Request, op string) ([]byte, error) {
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("calling the CA to %s: %w", op, err)
	}
	defer resp.Body.Close()
	return answer(resp, op)
}

// answer reads a response's body (at most maxResponse), and turns an
// error status into an *APIError.
func answer(resp *http.Response, op string) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return nil, fmt.Errorf("reading the CA's answer to %s: %w", op, err)
	}
	if resp.StatusCode >= 300 {
		var e caproto.ErrorResponse
		if json.Unmarshal(data, &e) != nil || e.Message == "" {
			e.Message = strings.TrimSpace(string(data[:min(len(data), 200)]))
		}
		ae := &APIError{Op: op, Status: resp.StatusCode, Message: e.Message, Reason: e.Reason, Limit: time.Duration(e.Limit)}
		if ae.Reason == "" {
			ae.Inferred = true
			ae.Reason, ae.Limit = inferReason(op, resp.StatusCode, e.Message)
		}
		return nil, ae
	}
	return data, nil
}

func (c *Client) post(ctx context.Context, client *http.Client, path, op string, body any, header http.Header) ([]byte, error) {
	data, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+path, bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header[k] = v
	}
	return do(client, req, op)
}

// Provisioner is a CA's provisioner as /provisioners lists it.
type Provisioner struct {
	Type         string          `json:"type"`
	Name         string          `json:"name"`
	Key          jose.JSONWebKey `json:"key"`
	EncryptedKey string          `json:"encryptedKey"`
}

// Provisioners lists the CA's provisioners (one page of up to 100).
func (c *Client) Provisioners(ctx context.Context) ([]Provisioner, error) {
	data, err := get(ctx, c.http, c.base+"/provisioners?limit=100", "list provisioners")
	if err != nil {
		return nil, err
	}
	var out struct {
		Provisioners []json.RawMessage `json:"provisioners"`
	}
	if err := json.Unmarshal(data, &out); err != nil {
		return nil, fmt.Errorf("the CA's provisioner list: %w", err)
	}
	var list []Provisioner
	for _, raw := range out.Provisioners {
		var p Provisioner
		// Provisioners of other types have other shapes; only JWK ones
		// matter here.
		if json.Unmarshal(raw, &p) == nil && p.Type == "JWK" {
			list = append(list, p)
		}
	}
	return list, nil
}

// SignToken makes a one-time token for subject and sans with the JWK
// provisioner name's key, decrypted with password. An empty name means
// the CA's only JWK provisioner.
func (c *Client) SignToken(ctx context.Context, name string, password []byte, subject string, sans []string) (string, error) {
	list, err := c.Provisioners(ctx)
	if err != nil {
		return "", err
	}
	var p *Provisioner
	var names []string
	for i := range list {
		names = append(names, list[i].Name)
		if list[i].Name == name || name == "" && len(list) == 1 {
			p = &list[i]
		}
	}
	if p == nil {
		if name == "" {
			return "", fmt.Errorf("the CA has %d JWK provisioners (%s): name one", len(list), strings.Join(names, ", "))
		}
		return "", fmt.Errorf("the CA has no JWK provisioner %q (it has: %s)", name, strings.Join(names, ", "))
	}
	enc := p.EncryptedKey
	if enc == "" {
		data, err := get(ctx, c.http, c.base+"/provisioners/"+url.PathEscape(p.Key.KeyID)+"/encrypted-key", "fetch the provisioner key")
		if err != nil {
			return "", err
		}
		var out struct {
			Key string `json:"key"`
		}
		if err := json.Unmarshal(data, &out); err != nil || out.Key == "" {
			return "", fmt.Errorf("the CA holds no encrypted key for provisioner %s", p.Name)
		}
		enc = out.Key
	}
	key, err := caproto.DecryptProvisionerKey(enc, password)
	if err != nil {
		return "", fmt.Errorf("provisioner %s: %w", p.Name, err)
	}
	if key.KeyID == "" {
		key.KeyID = p.Key.KeyID
	}
	return caproto.NewToken(caproto.TokenOptions{Provisioner: p.Name, Key: key, Subject: subject, SANs: sans,
		Audience: c.base + caproto.PathSign, RootSHA256: pki.Fingerprint(c.root), Now: c.now()})
}

// Certificates is what sign and renew return.
type Certificates struct {
	Leaf          *x509.Certificate
	Intermediates []*x509.Certificate
}

func parseIssued(data []byte) (*Certificates, error) {
	var out caproto.SignResponse
	if err := json.Unmarshal(data, &out); err != nil {
		return nil, fmt.Errorf("the CA's answer is not JSON: %w", err)
	}
	chain := out.CertChain
	if len(chain) == 0 {
		chain = []string{out.Crt, out.CA}
	}
	var certs []*x509.Certificate
	for _, p := range chain {
		if p == "" {
			continue
		}
		cs, err := pki.ParseCertificates([]byte(p))
		if err != nil {
			return nil, fmt.Errorf("the CA's certificate: %w", err)
		}
		certs = append(certs, cs...)
	}
	if len(certs) == 0 {
		return nil, errors.New("the CA answered without a certificate")
	}
	return &Certificates{Leaf: certs[0], Intermediates: certs[1:]}, nil
}

// verify checks that an issued certificate chains to the root and holds
// the key we expect, so nothing unverified is ever written to disk.
func (c *Client) verify(certs *Certificates, pub crypto.PublicKey) error {
	pool := x509.NewCertPool()
	pool.AddCert(c.root)
	inter := x509.NewCertPool()
	for _, i := range certs.Intermediates {
		inter.AddCert(i)
	}
	if _, err := certs.Leaf.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, CurrentTime: c.now(),
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return fmt.Errorf("the CA's certificate does not verify with its root: %w", err)
	}
	type equaler interface{ Equal(crypto.PublicKey) bool }
	leafPub, err := pki.CertificatePublicKey(certs.Leaf)
	if err != nil {
		return fmt.Errorf("the CA's certificate: %w", err)
	}
	if k, ok := leafPub.(equaler); !ok || !k.Equal(pub) {
		return errors.New("the CA's certificate is not for our key")
	}
	return nil
}

// SignRequest is a certificate request.
type SignRequest struct {
	CSR       []byte // PEM
	Token     string
	NotBefore string // RFC 3339 or duration; empty for the CA's default
	NotAfter  string
	PublicKey crypto.PublicKey // the CSR's key, to check the answer
}

// Sign asks the CA for a certificate.
func (c *Client) Sign(ctx context.Context, r SignRequest) (*Certificates, error) {
	body := caproto.SignRequest{CSR: string(r.CSR), OTT: r.Token, NotBefore: r.NotBefore, NotAfter: r.NotAfter}
	return c.issued(r.PublicKey)(c.post(ctx, c.http, caproto.PathSign, "sign", body, nil))
}

// issued reads the CA's answer to sign or renew and checks it against the
// root and the key pub before anything is done with it.
func (c *Client) issued(pub crypto.PublicKey) func([]byte, error) (*Certificates, error) {
	return func(data []byte, err error) (*Certificates, error) {
		if err != nil {
			return nil, err
		}
		certs, err := parseIssued(data)
		if err != nil {
			return nil, err
		}
		return certs, c.verify(certs, pub)
	}
}

// withCertificate is the client presenting cert over mTLS, and the
// function that closes its connections.
func (c *Client) withCertificate(cert tls.Certificate) (*http.Client, func()) {
	t := c.http.Transport.(*http.Transport).Clone()
	t.TLSClientConfig.Certificates = []tls.Certificate{cert}
	return &http.Client{Timeout: c.http.Timeout, Transport: t}, t.CloseIdleConnections
}

// Renew renews cert over mTLS: the TLS handshake proves we hold its key.
func (c *Client) Renew(ctx context.Context, cert tls.Certificate) (*Certificates, error) {
	client, done := c.withCertificate(cert)
	defer done()
	data, err := c.post(ctx, client, caproto.PathRenew, "renew", struct{}{}, nil)
	var ae *APIError
	if errors.As(err, &ae) && ae.Inferred && ae.Status == http.StatusBadRequest {
		// step-ca's answer to a renewal that arrived without the client
		// certificate, as behind a TLS-terminating proxy.
		ae.Reason = caproto.ReasonNeedsCertificate
	}
	return c.issued(cert.Leaf.PublicKey)(data, err)
}

// RenewWithToken renews cert with step's renewal token (a JWT signed by
// the certificate's key, carrying the chain in x5cInsecure), for when TLS
// client certificates cannot reach the CA (a proxy terminates TLS) or the
// certificate expired and the CA allows renewal after expiry.
func (c *Client) RenewWithToken(ctx context.Context, cert tls.Certificate) (*Certificates, error) {
	tok, err := caproto.NewRenewToken(cert, c.base+caproto.PathRenew, c.now())
	if err != nil {
		return nil, err
	}
	return c.issued(cert.Leaf.PublicKey)(c.post(ctx, c.http, caproto.PathRenew, "renew", struct{}{}, http.Header{"Authorization": {"Bearer " + tok}}))
}

// Revoke revokes cert over mTLS (a certificate may always revoke itself),
// passively: it goes on the CA's CRL.
func (c *Client) Revoke(ctx context.Context, cert tls.Certificate, reasonCode int, reason string) error {
	client, done := c.withCertificate(cert)
	defer done()
	_, err := c.post(ctx, client, caproto.PathRevoke, "revoke", caproto.RevokeRequest{
		Serial: cert.Leaf.SerialNumber.String(), ReasonCode: reasonCode, Reason: reason, Passive: true,
	}, nil)
	return err
}

// RevokeSerial revokes a certificate by serial with a provisioner's
// revoke token (audience URL()+caproto.PathRevoke, subject the serial),
// passively: it goes on the CA's CRL. It is how an operator revokes while
// the CA runs and holds its store.
func (c *Client) RevokeSerial(ctx context.Context, serial, token string, reasonCode int, reason string) error {
	_, err := c.post(ctx, c.http, caproto.PathRevoke, "revoke", caproto.RevokeRequest{
		Serial: serial, OTT: token, ReasonCode: reasonCode, Reason: reason, Passive: true,
	}, nil)
	return err
}

// List calls fn for every certificate a keyless CA issued that f
// selects (see caproto.ListFilter: a CA that does not know the filter
// sends every certificate), with a provisioner's token for
// caproto.ListOp (audience URL()+caproto.PathList). It decodes the list
// as it arrives, so it holds one certificate at a time, and stops at
// fn's first error, which it returns. step-ca has no such route.
func (c *Client) List(ctx context.Context, token string, f caproto.ListFilter, fn func(caproto.Certificate) error) error {
	u := c.base + caproto.PathList
	if q := f.Query(); len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("calling the CA to list certificates: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		// do reads and classifies the error answer.
		_, err := answer(resp, "list certificates")
		return err
	}
	var fnErr error
	err = decodeList(resp.Body, func(c caproto.Certificate) error {
		fnErr = fn(c)
		return fnErr
	})
	switch {
	case fnErr != nil:
		return fnErr
	case err != nil:
		return fmt.Errorf("the CA's certificate list: %w", err)
	}
	return nil
}

// decodeList reads a caproto.ListResponse from r, calling fn for each
// certificate as it is decoded.
func decodeList(r io.Reader, fn func(caproto.Certificate) error) error {
	dec := json.NewDecoder(r)
	if t, err := dec.Token(); err != nil {
		return err
	} else if t != json.Delim('{') {
		return fmt.Errorf("the answer is not a JSON object")
	}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return err
		}
		if t != "certificates" {
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return err
			}
			continue
		}
		t, err = dec.Token()
		if err != nil {
			return err
		}
		if t == nil {
			continue // null: none
		}
		if t != json.Delim('[') {
			return fmt.Errorf("certificates is not a list")
		}
		for dec.More() {
			var c caproto.Certificate
			if err := dec.Decode(&c); err != nil {
				return err
			}
			if err := fn(c); err != nil {
				return err
			}
		}
		if _, err := dec.Token(); err != nil { // ]
			return err
		}
	}
	_, err := dec.Token() // }
	return err
}

// CRL fetches the CA's current certificate revocation list (DER) and
// checks that it parses.
func (c *Client) CRL(ctx context.Context) ([]byte, error) {
	data, err := get(ctx, c.http, c.base+caproto.PathCRL, "fetch the CRL")
	if err != nil {
		return nil, err
	}
	if _, err := x509.ParseRevocationList(data); err != nil {
		return nil, fmt.Errorf("the CA answered something that is not a CRL: %w", err)
	}
	return data, nil
}

// stepBounds finds the bound in step-ca's lifetime refusals ("... is more
// than the authorized maximum certificate duration of 24h1m0s"). The
// expressions are compiled on first use: package-level regexps would cost
// every keyless command start-up time.
var stepBounds = sync.OnceValues(func() (*regexp.Regexp, *regexp.Regexp) {
	return regexp.MustCompile(`authorized maximum certificate duration of ([0-9hms.]+)`),
		regexp.MustCompile(`authorized minimum certificate duration of ([0-9hms.]+)`)
})

// inferReason reads a refusal's reason from the message of a CA that
// sends no reason code (step-ca, or a keyless CA older than the codes),
// for the operation op.
func inferReason(op string, status int, message string) (caproto.Reason, time.Duration) {
	maxRE, minRE := stepBounds()
	bound := func(re *regexp.Regexp) time.Duration {
		d, err := time.ParseDuration(re.FindStringSubmatch(message)[1])
		// step-ca counts its 1-minute backdate in the bound it reports.
		if err == nil && d%time.Hour == time.Minute {
			d -= time.Minute
		}
		return d
	}
	msg := strings.ToLower(message)
	switch {
	case maxRE.MatchString(message):
		return caproto.ReasonLifetimeTooLong, bound(maxRE)
	case minRE.MatchString(message):
		return caproto.ReasonLifetimeTooShort, bound(minRE)
	case strings.Contains(msg, "token already used"):
		return caproto.ReasonTokenUsed, 0
	case op == "renew" && strings.Contains(msg, "needs the current certificate"):
		// keyless ca before reason codes, behind a TLS-terminating proxy.
		return caproto.ReasonNeedsCertificate, 0
	case strings.Contains(msg, "revoked"):
		return caproto.ReasonCertRevoked, 0
	case op == "renew" && strings.Contains(msg, "expired"):
		return caproto.ReasonCertExpired, 0
	case strings.Contains(msg, "expired"):
		return caproto.ReasonTokenExpired, 0
	case op == "sign" && status == http.StatusUnauthorized:
		return caproto.ReasonTokenInvalid, 0
	}
	return "", 0
}
