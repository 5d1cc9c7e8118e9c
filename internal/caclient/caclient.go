// Package caclient is a client of any step-compatible CA (keyless ca or
// smallstep's step-ca): bootstrap trust in its root by fingerprint, get a
// one-time token from a provisioner password, sign a CSR, renew over mTLS
// or with step's x5c token, and revoke. The CLI's bootstrap, certificate,
// renew and revoke commands use it, and so will the agent. It does no
// file I/O.
package caclient

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/keyless-dev/keyless/internal/ca"
	"github.com/keyless-dev/keyless/internal/pki"
)

// maxResponse bounds what is read of any answer.
const maxResponse = 4 << 20

// APIError is a CA's refusal: its HTTP status and message.
type APIError struct {
	Op      string // sign, renew, revoke, ...
	Status  int
	Message string
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
	// Now is the clock for tokens; nil means time.Now.
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
			TLSClientConfig:   &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
			ForceAttemptHTTP2: true,
		}},
	}, nil
}

// URL returns the CA's base URL.
func (c *Client) URL() string { return c.base }

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
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return nil, fmt.Errorf("reading the CA's answer to %s: %w", op, err)
	}
	if resp.StatusCode >= 300 {
		var e struct {
			Message string `json:"message"`
		}
		if json.Unmarshal(data, &e) != nil || e.Message == "" {
			e.Message = strings.TrimSpace(string(data[:min(len(data), 200)]))
		}
		return nil, &APIError{Op: op, Status: resp.StatusCode, Message: e.Message}
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
	key, err := ca.DecryptProvisionerKey(enc, password)
	if err != nil {
		return "", fmt.Errorf("provisioner %s: %w", p.Name, err)
	}
	if key.KeyID == "" {
		key.KeyID = p.Key.KeyID
	}
	return ca.NewToken(ca.TokenOptions{Provisioner: p.Name, Key: key, Subject: subject, SANs: sans,
		Audience: c.base + "/1.0/sign", RootSHA256: pki.Fingerprint(c.root), Now: c.now()})
}

// Certificates is what sign and renew return.
type Certificates struct {
	Leaf          *x509.Certificate
	Intermediates []*x509.Certificate
}

func parseIssued(data []byte) (*Certificates, error) {
	var out struct {
		Crt       string   `json:"crt"`
		CA        string   `json:"ca"`
		CertChain []string `json:"certChain"`
	}
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
	if k, ok := certs.Leaf.PublicKey.(equaler); !ok || !k.Equal(pub) {
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
	body := map[string]string{"csr": string(r.CSR), "ott": r.Token}
	if r.NotBefore != "" {
		body["notBefore"] = r.NotBefore
	}
	if r.NotAfter != "" {
		body["notAfter"] = r.NotAfter
	}
	data, err := c.post(ctx, c.http, "/1.0/sign", "sign", body, nil)
	if err != nil {
		return nil, err
	}
	certs, err := parseIssued(data)
	if err != nil {
		return nil, err
	}
	return certs, c.verify(certs, r.PublicKey)
}

// Renew renews cert over mTLS: the TLS handshake proves we hold its key.
func (c *Client) Renew(ctx context.Context, cert tls.Certificate) (*Certificates, error) {
	t := c.http.Transport.(*http.Transport).Clone()
	t.TLSClientConfig.Certificates = []tls.Certificate{cert}
	client := &http.Client{Timeout: c.http.Timeout, Transport: t}
	defer t.CloseIdleConnections()
	data, err := c.post(ctx, client, "/1.0/renew", "renew", struct{}{}, nil)
	if err != nil {
		return nil, err
	}
	certs, err := parseIssued(data)
	if err != nil {
		return nil, err
	}
	return certs, c.verify(certs, cert.Leaf.PublicKey)
}

// RenewWithToken renews cert with step's renewal token (a JWT signed by
// the certificate's key, carrying the chain in x5cInsecure), for when TLS
// client certificates cannot reach the CA (a proxy terminates TLS) or the
// certificate expired and the CA allows renewal after expiry.
func (c *Client) RenewWithToken(ctx context.Context, cert tls.Certificate) (*Certificates, error) {
	tok, err := c.renewToken(cert)
	if err != nil {
		return nil, err
	}
	data, err := c.post(ctx, c.http, "/1.0/renew", "renew", struct{}{}, http.Header{"Authorization": {"Bearer " + tok}})
	if err != nil {
		return nil, err
	}
	certs, err := parseIssued(data)
	if err != nil {
		return nil, err
	}
	return certs, c.verify(certs, cert.Leaf.PublicKey)
}

func (c *Client) renewToken(cert tls.Certificate) (string, error) {
	signer, ok := cert.PrivateKey.(crypto.Signer)
	if !ok || cert.Leaf == nil {
		return "", errors.New("renewal token: need the certificate and its private key")
	}
	alg, err := signatureAlgorithm(signer.Public())
	if err != nil {
		return "", err
	}
	x5c := make([]string, len(cert.Certificate))
	for i, der := range cert.Certificate {
		x5c[i] = base64.StdEncoding.EncodeToString(der)
	}
	jwk := jose.JSONWebKey{Key: signer.Public()}
	kid, err := ca.Thumbprint(&jwk)
	if err != nil {
		return "", err
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: signer},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", kid).WithHeader("x5cInsecure", x5c))
	if err != nil {
		return "", fmt.Errorf("renewal token: %w", err)
	}
	now := c.now()
	return jwt.Signed(s).Claims(jwt.Claims{
		Issuer: "step-ca-client/1.0", Subject: cert.Leaf.Subject.CommonName, Audience: jwt.Audience{c.base + "/1.0/renew"},
		IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now), Expiry: jwt.NewNumericDate(now.Add(5 * time.Minute)),
	}).Serialize()
}

func signatureAlgorithm(pub crypto.PublicKey) (jose.SignatureAlgorithm, error) {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve.Params().BitSize {
		case 256:
			return jose.ES256, nil
		case 384:
			return jose.ES384, nil
		}
	case *rsa.PublicKey:
		return jose.RS256, nil
	}
	return "", fmt.Errorf("renewal token: unsupported key %s", pki.DescribeKey(pub))
}

// Revoke revokes cert over mTLS (a certificate may always revoke itself),
// passively: it goes on the CA's CRL.
func (c *Client) Revoke(ctx context.Context, cert tls.Certificate, reasonCode int, reason string) error {
	t := c.http.Transport.(*http.Transport).Clone()
	t.TLSClientConfig.Certificates = []tls.Certificate{cert}
	client := &http.Client{Timeout: c.http.Timeout, Transport: t}
	defer t.CloseIdleConnections()
	_, err := c.post(ctx, client, "/1.0/revoke", "revoke", map[string]any{
		"serial": cert.Leaf.SerialNumber.String(), "reasonCode": reasonCode, "reason": reason, "passive": true,
	}, nil)
	return err
}
