// Package ca is keyless's certificate authority: it issues short-lived
// workload certificates fit for IAM Roles Anywhere to holders of a
// provisioner's one-time token, renews and revokes them, and publishes a
// CRL, under a per-provisioner policy (allowed names, lifetimes,
// renewal). It is compatible with step-ca's tokens and key formats, so
// the step CLI and smallstep's client library work with it.
//
// It knows nothing of HTTP: internal/ca/caapi serves it, and the CLI's
// operator commands call it directly. State lives behind internal/store.
package ca

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/keyless-dev/keyless/internal/caproto"
	"github.com/keyless-dev/keyless/internal/logline"
	"github.com/keyless-dev/keyless/internal/pki"
	"github.com/keyless-dev/keyless/internal/store"
)

var randReader = rand.Reader

// backdate is subtracted from a new certificate's notBefore, as step-ca
// does, so a relying party whose clock is a little behind accepts it.
const backdate = time.Minute

// Options configure an Authority.
type Options struct {
	Config       *Config
	Root         *x509.Certificate
	Intermediate *x509.Certificate
	Key          crypto.Signer // the intermediate's key
	Store        store.Store
	Now          func() time.Time
	Rand         io.Reader
	Logger       *slog.Logger
}

// Authority issues, renews and revokes certificates. It is safe for
// concurrent use; Reload swaps the configuration atomically.
type Authority struct {
	mu  sync.RWMutex
	cfg *Config

	root, intermediate *x509.Certificate
	key                crypto.Signer
	store              store.Store
	now                func() time.Time
	rand               io.Reader
	log                *slog.Logger

	crlMu   sync.Mutex
	crl     []byte // DER, cached
	crlNext time.Time
	crlMade time.Time
}

// New checks that the intermediate is the root's and the key is the
// intermediate's, and returns an Authority.
func New(o Options) (*Authority, error) {
	if o.Config == nil || o.Root == nil || o.Intermediate == nil || o.Key == nil || o.Store == nil {
		return nil, errors.New("ca: config, root, intermediate, key and store are required")
	}
	if err := o.Intermediate.CheckSignatureFrom(o.Root); err != nil {
		return nil, fmt.Errorf("the intermediate certificate is not signed by the root: %w", err)
	}
	if !pki.KeyMatchesCertificate(o.Key, o.Intermediate) {
		return nil, errors.New("the intermediate key does not match the intermediate certificate")
	}
	a := &Authority{cfg: o.Config, root: o.Root, intermediate: o.Intermediate, key: o.Key, store: o.Store,
		now: o.Now, rand: o.Rand, log: o.Logger}
	if a.now == nil {
		a.now = time.Now
	}
	if a.rand == nil {
		a.rand = rand.Reader
	}
	a.log = logline.Or(a.log)
	return a, nil
}

// Reload replaces the configuration (provisioners, policies, names). The
// keys and certificates stay: changing them needs a restart.
func (a *Authority) Reload(cfg *Config) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.cfg = cfg
}

func (a *Authority) config() *Config {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.cfg
}

// Root returns the root certificate.
func (a *Authority) Root() *x509.Certificate { return a.root }

// Intermediate returns the issuing certificate.
func (a *Authority) Intermediate() *x509.Certificate { return a.intermediate }

// Provisioners returns the configured provisioners.
func (a *Authority) Provisioners() []ProvisionerConfig {
	return slices.Clone(a.config().Provisioners)
}

// DNSNames returns the names the CA is reached by.
func (a *Authority) DNSNames() []string { return slices.Clone(a.config().DNSNames) }

// Issued is a new certificate and the chain to send with it.
type Issued struct {
	Certificate   *x509.Certificate
	Intermediates []*x509.Certificate
}

// SignRequest asks for a certificate: a PEM CSR and a provisioner's
// one-time token, with optional validity bounds (RFC 3339 times or
// durations from now such as "168h").
type SignRequest struct {
	CSR       []byte
	Token     string
	NotBefore string
	NotAfter  string
}

// Sign issues a certificate for the CSR's key with the names the token
// grants, within the provisioner's policy.
func (a *Authority) Sign(req SignRequest) (*Issued, error) {
	an := a.announce()
	defer an.Done()
	now := a.now()
	p, claims, tok, err := a.verifyOTT(req.Token, "sign", now)
	if err != nil {
		return nil, err
	}
	csr, err := pki.ParseCSR(req.CSR)
	if err != nil {
		return nil, refuse(KindBadRequest, "csr: %v", err)
	}
	if err := pki.CheckPublicKey(csr.PublicKey); err != nil {
		return nil, refuse(KindBadRequest, "csr: %v", err)
	}
	sans := claims.SANs
	if len(sans) == 0 {
		sans = []string{claims.Subject}
	}
	if err := checkEncodable(sans); err != nil {
		return nil, err
	}
	if csrSANs := namesOf(csr.DNSNames, csr.IPAddresses, csr.EmailAddresses, csr.URIs); len(csrSANs) > 0 && !sameSet(csrSANs, sans) {
		return nil, refuse(KindForbidden, "the CSR asks for names %q but the token grants %q", csrSANs, sans)
	}
	if cn := csr.Subject.CommonName; cn != "" && cn != claims.Subject && !slices.Contains(sans, cn) {
		return nil, refuse(KindForbidden, "the CSR's common name %q is neither the token's subject %q nor one of its names", clip(cn), claims.Subject)
	}
	if err := p.checkNames(claims.Subject, sans, "may not"); err != nil {
		return nil, err
	}
	notBefore, notAfter, err := lifetime(p, req.NotBefore, req.NotAfter, now, claims.Expiry.Time())
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		Subject:   pkix.Name{CommonName: claims.Subject},
		NotBefore: notBefore,
		NotAfter:  notAfter,
	}
	setNames(tmpl, sans)
	spki, err := pki.MarshalPKIXPublicKey(csr.PublicKey)
	if err != nil {
		return nil, refuse(KindBadRequest, "csr: %v", err)
	}
	if serial, err := a.revokedKey(spki); err != nil {
		return nil, internal(err, "reading revocations")
	} else if serial != "" {
		return nil, refuse(KindForbidden, "the CSR's key is the key of revoked certificate %s: make a new key", serial).because(caproto.ReasonCertRevoked)
	}
	return a.issueUnrevoked(tmpl, csr.PublicKey, spki, p, "", &tok, an)
}

// checkNames refuses a common name or SAN the provisioner's policy does
// not allow (may is "may not" or "may no longer", for the message).
func (p *ProvisionerConfig) checkNames(cn string, sans []string, may string) error {
	if cn != "" && !p.Allows(pki.NameCN, cn) {
		return refuse(KindForbidden, "provisioner %s %s issue certificates for %q (allowed: %s)",
			p.Name, may, clip(cn), describeAllow(p.Allow)).because(caproto.ReasonNameNotAllowed)
	}
	for _, name := range sans {
		if kind := pki.NameKind(name); !p.Allows(kind, name) {
			what := ""
			if kind != pki.NameDNS {
				what = "the " + strings.ToUpper(kind) + " name "
			}
			return refuse(KindForbidden, "provisioner %s %s issue certificates for %s%q (allowed: %s)",
				p.Name, may, what, clip(name), describeAllow(p.Allow)).because(caproto.ReasonNameNotAllowed)
		}
	}
	return nil
}

func describeAllow(allow []string) string {
	if len(allow) == 0 {
		return "nothing"
	}
	return strings.Join(allow, ", ")
}

// lifetime resolves requested bounds against the provisioner's policy.
// A requested notBefore lies between now (less the backdate) and the
// token's expiry: a token lives minutes, and what it buys should start
// within them, not years later (step-ca sets no bound; a 5-minute token
// bought a certificate valid from 2031), nor in the past, which would
// stretch the certificate over a time before it was asked for.
func lifetime(p *ProvisionerConfig, nb, na string, now, tokenExpiry time.Time) (time.Time, time.Time, error) {
	start := now
	if nb != "" {
		t, err := parseTimeOrDuration(nb, now)
		if err != nil {
			return time.Time{}, time.Time{}, refuse(KindBadRequest, "notBefore: %v", err)
		}
		if earliest := now.Add(-backdate); t.Before(earliest) {
			return time.Time{}, time.Time{}, refuse(KindForbidden, "notBefore %s is in the past; it may be no earlier than %s",
				t.UTC().Format(time.RFC3339), earliest.UTC().Format(time.RFC3339)).because(caproto.ReasonNotBeforeRange)
		}
		if t.After(tokenExpiry) {
			return time.Time{}, time.Time{}, refuse(KindForbidden, "notBefore %s is after the token expires (%s); a certificate must start while its token is valid",
				t.UTC().Format(time.RFC3339), tokenExpiry.UTC().Format(time.RFC3339)).because(caproto.ReasonNotBeforeRange)
		}
		start = t
	}
	end := start.Add(time.Duration(p.DefaultDuration))
	if na != "" {
		// A duration counts from notBefore, as step-ca counts it.
		t, err := parseTimeOrDuration(na, start)
		if err != nil {
			return time.Time{}, time.Time{}, refuse(KindBadRequest, "notAfter: %v", err)
		}
		end = t
	}
	d := end.Sub(start)
	switch {
	case d <= 0:
		return time.Time{}, time.Time{}, refuse(KindBadRequest, "notAfter is not after notBefore")
	case d > time.Duration(p.MaxDuration):
		return time.Time{}, time.Time{}, refuse(KindForbidden, "requested lifetime %s is more than the maximum of %s for provisioner %s",
			d.Round(time.Second), time.Duration(p.MaxDuration), p.Name).limit(caproto.ReasonLifetimeTooLong, time.Duration(p.MaxDuration))
	case d < time.Duration(p.MinDuration):
		return time.Time{}, time.Time{}, refuse(KindForbidden, "requested lifetime %s is less than the minimum of %s for provisioner %s",
			d.Round(time.Second), time.Duration(p.MinDuration), p.Name).limit(caproto.ReasonLifetimeTooShort, time.Duration(p.MinDuration))
	}
	if nb == "" {
		start = start.Add(-backdate)
	}
	return start, end, nil
}

func parseTimeOrDuration(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither an RFC 3339 time nor a duration such as 168h", clip(s))
	}
	return now.Add(d), nil
}

// issue signs tmpl for pub and records the certificate (with the token
// that paid for it, if any) before returning it, so every certificate a
// client receives is in the store.
//
// an is the announcement of the write (see announce); issue ends it
// just before it writes.
func (a *Authority) issue(tmpl *x509.Certificate, pub crypto.PublicKey, p *ProvisionerConfig, renewedFrom string, tok *spend, an *store.Announcement) (*Issued, error) {
	serial, err := randomSerial(a.rand)
	if err != nil {
		return nil, internal(err, "generating a serial number")
	}
	tmpl.SerialNumber = serial
	tmpl.BasicConstraintsValid = true
	tmpl.IsCA = false
	// digitalSignature only: Roles Anywhere needs it, and the key is
	// never used to encrypt.
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	if p.ServerAuth {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
	}
	tmpl.SignatureAlgorithm = signatureAlgorithm(a.key)
	// createCertificate is x509.CreateCertificate that also takes an
	// ML-DSA subject key and, for the CA's ECDSA key, signs once without
	// verifying its own signature (see sign.go).
	der, err := createCertificate(a.rand, tmpl, a.intermediate, pub, a.key)
	if err != nil {
		return nil, internal(err, "signing the certificate")
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, internal(err, "parsing the new certificate")
	}
	rec := &store.Certificate{
		Serial:      cert.SerialNumber.String(),
		Subject:     cert.Subject.CommonName,
		SANs:        namesOf(cert.DNSNames, cert.IPAddresses, cert.EmailAddresses, cert.URIs),
		NotBefore:   cert.NotBefore,
		NotAfter:    cert.NotAfter,
		Provisioner: p.Name,
		IssuedAt:    a.now(),
		RenewedFrom: renewedFrom,
		DER:         der,
	}
	an.Done()
	if tok != nil {
		err = a.store.IssueCertificate(rec, tok.id, tok.expires)
	} else {
		err = a.store.PutCertificate(rec)
	}
	if errors.Is(err, store.ErrTokenUsed) {
		return nil, refuse(KindUnauthorized, "token already used").because(caproto.ReasonTokenUsed)
	}
	if err != nil {
		return nil, internal(err, "recording the certificate")
	}
	a.log.Info("issued certificate", "serial", rec.Serial, "subject", rec.Subject, "sans", strings.Join(rec.SANs, ","),
		"notAfter", cert.NotAfter.UTC().Format(time.RFC3339), "provisioner", p.Name, "renewedFrom", renewedFrom)
	return &Issued{Certificate: cert, Intermediates: []*x509.Certificate{a.intermediate}}, nil
}

// issueUnrevoked issues as issue does, for a key (spki) the caller found
// unrevoked, and then looks again: a revocation of the key that came in
// between stored its revocation before it looked for the key's
// certificates, so either it found this one, or the second look finds
// the revocation, and the new certificate is revoked too and refused.
// No certificate for a revoked key outlives the race. (The store's
// indexed lookups, RevokedKey and CertificatesWithKey, see every write
// that returned before they began: the store contract promises it.)
func (a *Authority) issueUnrevoked(tmpl *x509.Certificate, pub crypto.PublicKey, spki []byte, p *ProvisionerConfig, renewedFrom string, tok *spend, an *store.Announcement) (*Issued, error) {
	iss, err := a.issue(tmpl, pub, p, renewedFrom, tok, an)
	if err != nil {
		return nil, err
	}
	revoked, err := a.revokedKey(spki)
	if err == nil && revoked == "" {
		return iss, nil
	}
	serial := iss.Certificate.SerialNumber.String()
	if err != nil {
		// Unknown: the certificate may be for a revoked key; revoke it.
		revoked = "(unknown: reading revocations failed)"
	}
	rev := &store.Revocation{Serial: serial, ReasonCode: 1, Reason: "key compromise (same key as revoked " + revoked + ")",
		RevokedAt: a.now(), NotAfter: iss.Certificate.NotAfter, Via: "ca"}
	if rerr := a.store.Revoke(rev); rerr != nil {
		return nil, internal(errors.Join(err, rerr), "revoking a certificate issued for a revoked key")
	}
	a.crlMu.Lock()
	a.crl = nil
	a.crlMu.Unlock()
	a.log.Warn("revoked a certificate issued while its key was revoked", "serial", serial, "sameKeyAs", revoked)
	if err != nil {
		return nil, internal(err, "reading revocations")
	}
	return nil, refuse(KindUnauthorized, "the key of this request was revoked (certificate %s) while the certificate was being issued; enroll again with a new key", revoked).because(caproto.ReasonCertRevoked)
}

// announce tells a store whose writes share commits that an issuance
// has started, so a commit under way to disk waits a little for its
// write (see store.Announcer); the caller ends it with Done, which issue
// calls just before it writes. It is nil (whose Done does nothing) for
// other stores.
func (a *Authority) announce() *store.Announcement {
	if an, ok := a.store.(store.Announcer); ok {
		return an.Announce()
	}
	return nil
}

// randomSerial returns a positive serial with 128 random bits (CA/B Forum
// asks for at least 64).
func randomSerial(r io.Reader) (*big.Int, error) {
	b := make([]byte, 17)
	if _, err := io.ReadFull(r, b[1:]); err != nil {
		return nil, err
	}
	b[1] |= 0x80 // keep it 128 bits long
	return new(big.Int).SetBytes(b), nil
}

func signatureAlgorithm(key crypto.Signer) x509.SignatureAlgorithm {
	switch k := key.Public().(type) {
	case *ecdsa.PublicKey:
		if k.Curve.Params().BitSize > 256 {
			return x509.ECDSAWithSHA384
		}
		return x509.ECDSAWithSHA256
	case *rsa.PublicKey:
		return x509.SHA256WithRSA
	}
	return x509.UnknownSignatureAlgorithm
}

// setNames sorts names into the certificate's SAN fields.
func setNames(c *x509.Certificate, names []string) {
	s := pki.SortNames(names)
	c.DNSNames, c.EmailAddresses, c.IPAddresses, c.URIs = s.DNSNames, s.EmailAddresses, s.IPAddresses, s.URIs
}

// checkEncodable refuses, as the client's error, names that a certificate
// cannot hold: x509 would fail to write them (DNS names, emails and URIs
// are ASCII) or to read them back (a URI's host must be a domain), and
// the CA would answer with its own error after signing. A throwaway CSR
// encodes and parses the names exactly as a certificate does; it is not
// signed (see probeCSR).
//
// The answer depends on the names alone, so it is remembered (see
// encodableCache): a CA issues the same few names over and over.
func checkEncodable(names []string) error {
	var key strings.Builder
	for _, n := range names {
		fmt.Fprintf(&key, "%d:%s", len(n), n)
	}
	if key.Len() > encodableMaxKey {
		// Long lists are checked every time, never kept: a bound on the
		// cache's memory, not only its entries.
		return probeEncodable(names)
	}
	if err, ok := encodable.get(key.String()); ok {
		return err
	}
	err := probeEncodable(names)
	encodable.put(key.String(), err)
	return err
}

func probeEncodable(names []string) error {
	var c x509.Certificate
	setNames(&c, names)
	der, err := probeCSR(&x509.CertificateRequest{
		DNSNames: c.DNSNames, EmailAddresses: c.EmailAddresses, IPAddresses: c.IPAddresses, URIs: c.URIs})
	if err == nil {
		_, err = x509.ParseCertificateRequest(der)
	}
	if err != nil {
		return refuse(KindBadRequest, "the token grants a name that cannot go into a certificate (%s)", clip(err.Error()))
	}
	return nil
}

// encodableCache remembers checkEncodable's answers by name list (each
// name prefixed with its length, so no two lists share a key). Nothing
// invalidates an entry: the answer is a function of the names and of the
// x509 package compiled in. It holds at most encodableMax lists and is
// emptied when full, so names from many different tokens cannot grow it;
// lists longer than encodableMaxKey are not kept at all.
type encodableCache struct {
	mu sync.Mutex
	m  map[string]error
}

const encodableMax = 1024

// encodableMaxKey is the longest name list (as its key) the cache keeps:
// 1,024 lists of at most 4 KiB keep at most 4 MiB.
const encodableMaxKey = 4 << 10

// encodable is made on first use, not in every keyless command's init.
var encodable encodableCache

func (c *encodableCache) get(key string) (error, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	err, ok := c.m[key]
	return err, ok
}

func (c *encodableCache) put(key string, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]error{}
	}
	if len(c.m) >= encodableMax {
		clear(c.m)
	}
	c.m[key] = err
}

func namesOf(dns []string, ips []net.IP, emails []string, uris []*url.URL) []string {
	out := slices.Clone(dns)
	for _, ip := range ips {
		out = append(out, ip.String())
	}
	out = append(out, emails...)
	for _, u := range uris {
		out = append(out, u.String())
	}
	return out
}

func sameSet(a, b []string) bool {
	x, y := slices.Clone(a), slices.Clone(b)
	slices.Sort(x)
	slices.Sort(y)
	return slices.Equal(slices.Compact(x), slices.Compact(y))
}

// Renew issues a new certificate like the presented one (subject, names,
// key, lifetime) to a client that proved it holds it: chain is the mTLS
// peer chain or the chain from a renewal token, leaf first.
func (a *Authority) Renew(chain []*x509.Certificate) (*Issued, error) {
	an := a.announce()
	defer an.Done()
	return a.renew(chain, nil, an)
}

func (a *Authority) renew(chain []*x509.Certificate, tok *spend, an *store.Announcement) (*Issued, error) {
	if len(chain) == 0 {
		return nil, refuse(KindUnauthorized, "renewal needs the current certificate: connect with it (mTLS) or send a renewal token").because(caproto.ReasonNeedsCertificate)
	}
	now := a.now()
	old := chain[0]
	rec, p, err := a.ownCertificate(old, now, true)
	if err != nil {
		return nil, err
	}
	if p.DisableRenewal {
		return nil, refuse(KindUnauthorized, "provisioner %s does not allow renewal", p.Name).because(caproto.ReasonRenewalDisabled)
	}
	// A revocation is of the key (see Revoke): a certificate issued
	// before it, or one the revocation missed, does not renew the key.
	if serial, err := a.revokedKey(old.RawSubjectPublicKeyInfo); err != nil {
		return nil, internal(err, "reading revocations")
	} else if serial != "" {
		return nil, refuse(KindUnauthorized, "certificate %s holds the key of revoked certificate %s; enroll again with a new key", rec.Serial, serial).because(caproto.ReasonCertRevoked)
	}
	// The provisioner's policy today, not when the certificate was made:
	// a name removed from allow, or a lower maxDuration, applies to
	// renewals too.
	if err := p.checkNames(old.Subject.CommonName, namesOf(old.DNSNames, old.IPAddresses, old.EmailAddresses, old.URIs), "may no longer"); err != nil {
		return nil, err
	}
	life := min(old.NotAfter.Sub(old.NotBefore), time.Duration(p.MaxDuration)+backdate)
	nb := now.Add(-backdate)
	tmpl := &x509.Certificate{Subject: pkix.Name{CommonName: old.Subject.CommonName}, NotBefore: nb, NotAfter: nb.Add(life),
		DNSNames: old.DNSNames, IPAddresses: old.IPAddresses, EmailAddresses: old.EmailAddresses, URIs: old.URIs}
	oldPub, err := pki.CertificatePublicKey(old)
	if err != nil {
		return nil, refuse(KindBadRequest, "certificate %s: %v", rec.Serial, err)
	}
	return a.issueUnrevoked(tmpl, oldPub, old.RawSubjectPublicKeyInfo, p, rec.Serial, tok, an)
}

// RenewWithToken is Renew for a client that cannot present its
// certificate over TLS (a proxy terminates TLS, or it expired): it sends
// step's renewal token instead.
func (a *Authority) RenewWithToken(token string) (*Issued, error) {
	an := a.announce()
	defer an.Done()
	chain, tok, err := a.verifyRenewToken(token, a.now())
	if err != nil {
		return nil, err
	}
	return a.renew(chain, &tok, an)
}

// ownCertificate checks that cert was issued by this CA (it chains to the
// root through the intermediate and is in the store) and is not revoked;
// with forRenewal, an expired certificate passes only within the
// provisioner's renewAfterExpiry grace.
func (a *Authority) ownCertificate(cert *x509.Certificate, now time.Time, forRenewal bool) (*store.Certificate, *ProvisionerConfig, error) {
	if !bytes.Equal(cert.RawIssuer, a.intermediate.RawSubject) || cert.CheckSignatureFrom(a.intermediate) != nil {
		return nil, nil, refuse(KindUnauthorized, "the certificate was not issued by this CA").because(caproto.ReasonCertUnknown)
	}
	serial := cert.SerialNumber.String()
	rec, err := a.store.Certificate(serial)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, refuse(KindUnauthorized, "certificate %s is not in this CA's records", serial).because(caproto.ReasonCertUnknown)
	} else if err != nil {
		return nil, nil, internal(err, "reading the certificate record")
	}
	if !bytes.Equal(rec.DER, cert.Raw) {
		return nil, nil, refuse(KindUnauthorized, "certificate %s differs from the one this CA issued", serial).because(caproto.ReasonCertUnknown)
	}
	if _, err := a.store.Revocation(serial); err == nil {
		return nil, nil, refuse(KindUnauthorized, "certificate %s is revoked", serial).because(caproto.ReasonCertRevoked)
	} else if !errors.Is(err, store.ErrNotFound) {
		return nil, nil, internal(err, "reading revocations")
	}
	p := a.config().provisioner(rec.Provisioner)
	if p == nil {
		return nil, nil, refuse(KindUnauthorized, "certificate %s was issued by provisioner %s, which no longer exists", serial, rec.Provisioner).because(caproto.ReasonCertUnknown)
	}
	if now.Before(cert.NotBefore) {
		return nil, nil, refuse(KindUnauthorized, "certificate %s is not valid until %s", serial, cert.NotBefore.UTC().Format(time.RFC3339))
	}
	if now.After(cert.NotAfter) {
		grace := time.Duration(p.RenewAfterExpiry)
		if !forRenewal || grace == 0 || now.Sub(cert.NotAfter) > grace {
			return nil, nil, refuse(KindUnauthorized, "certificate expired on %s", cert.NotAfter.UTC().Format(time.RFC3339)).because(caproto.ReasonCertExpired)
		}
	}
	if now.After(a.intermediate.NotAfter) {
		return nil, nil, refuse(KindUnauthorized, "the CA's intermediate certificate has expired")
	}
	return rec, p, nil
}

// RevokeRequest revokes a certificate, authorised by a provisioner's
// revoke token (sub = serial) or by the certificate itself (mTLS).
type RevokeRequest struct {
	Serial     string
	Token      string
	Peer       []*x509.Certificate
	ReasonCode int
	Reason     string
	Passive    bool
	// Operator marks a revocation made on the CA host (keyless ca
	// revoke); it needs no token.
	Operator bool
}

// Revoke records a (passive) revocation: the serial goes on the CRL and
// can no longer renew. Renewal keeps the key, so a revocation is of the
// key: every other unexpired certificate this CA issued for the same
// public key (the ones it renewed, the ones renewed from it) is revoked
// with it, and no certificate for that key renews again.
func (a *Authority) Revoke(req RevokeRequest) error {
	if !req.Passive {
		return refuse(KindNotImplemented, "only passive revocation is supported (the CA publishes a CRL; it has no OCSP responder or other active channel)")
	}
	// Base 0, as step-ca: decimal, or 0x-prefixed hex.
	serial, ok := new(big.Int).SetString(req.Serial, 0)
	if !ok || serial.Sign() <= 0 {
		return refuse(KindBadRequest, "serial %q is not a positive number (decimal, or hex with 0x)", clip(req.Serial))
	}
	if req.ReasonCode < 0 || req.ReasonCode > 10 || req.ReasonCode == 7 {
		return refuse(KindBadRequest, "reasonCode %d is not an RFC 5280 reason", req.ReasonCode)
	}
	now := a.now()
	var via string
	switch {
	case req.Operator:
		via = "cli"
	case req.Token != "":
		p, claims, tok, err := a.verifyOTT(req.Token, "revoke", now)
		if err != nil {
			return err
		}
		if claims.Subject != serial.String() {
			return refuse(KindForbidden, "the token is for serial %s, not %s", clip(claims.Subject), serial)
		}
		if err := a.use(tok); err != nil {
			return err
		}
		via = "token:" + p.Name
	case len(req.Peer) > 0:
		if _, _, err := a.ownCertificate(req.Peer[0], now, false); err != nil {
			return err
		}
		if req.Peer[0].SerialNumber.Cmp(serial) != 0 {
			return refuse(KindForbidden, "a certificate can only revoke itself over mTLS (connected as %s, asked for %s)", req.Peer[0].SerialNumber, serial)
		}
		via = "mtls"
	default:
		return refuse(KindUnauthorized, "revocation needs a revoke token (ott) or the certificate itself over mTLS")
	}
	rev := &store.Revocation{Serial: serial.String(), ReasonCode: req.ReasonCode, Reason: req.Reason, RevokedAt: now, Via: via}
	rec, err := a.store.Certificate(rev.Serial)
	switch {
	case err == nil:
		rev.NotAfter = rec.NotAfter
		// A provisioner's password holder may revoke what that
		// provisioner issued, not another's certificates.
		if p, ok := strings.CutPrefix(via, "token:"); ok && rec.Provisioner != p {
			return refuse(KindForbidden, "certificate %s was issued by provisioner %s; a token from %s cannot revoke it, only the CA's operator can", rev.Serial, rec.Provisioner, p)
		}
	case !errors.Is(err, store.ErrNotFound):
		return internal(err, "reading the certificate record")
	case via != "cli":
		return refuse(KindForbidden, "certificate %s is not in this CA's records; only the CA's operator can revoke it", rev.Serial)
	default:
		// Not one of ours (or issued before the records): keep it on the
		// CRL for the longest lifetime any provisioner allows.
		rev.NotAfter = now.Add(a.maxLifetime())
	}
	if err := a.store.Revoke(rev); err != nil {
		return internal(err, "recording the revocation")
	}
	if rec != nil {
		if err := a.revokeSameKey(rec, rev, now); err != nil {
			return err
		}
	}
	a.crlMu.Lock()
	a.crl = nil
	a.crlMu.Unlock()
	a.log.Info("revoked certificate", "serial", rev.Serial, "reasonCode", rev.ReasonCode, "via", via)
	return nil
}

// revokeSameKey revokes, as rev, every unexpired certificate that is not
// yet revoked and holds rec's public key.
func (a *Authority) revokeSameKey(rec *store.Certificate, rev *store.Revocation, now time.Time) error {
	spki, err := recordKey(rec)
	if err != nil {
		return internal(err, "reading the revoked certificate")
	}
	// Through the store's key index: the certificates of this key, not
	// every certificate the CA ever issued.
	withKey, err := a.store.CertificatesWithKey(spki, now)
	if err != nil {
		return internal(err, "finding the certificates for the revoked key")
	}
	var same []*store.Certificate
	for _, c := range withKey {
		if c.Serial == rec.Serial {
			continue
		}
		// A provisioner's token revokes only what that provisioner
		// issued (as for the serial it names).
		if p, ok := strings.CutPrefix(rev.Via, "token:"); ok && c.Provisioner != p {
			continue
		}
		same = append(same, c)
	}
	for _, c := range same {
		if _, err := a.store.Revocation(c.Serial); err == nil {
			continue
		} else if !errors.Is(err, store.ErrNotFound) {
			return internal(err, "reading revocations")
		}
		r := *rev
		r.Serial, r.NotAfter = c.Serial, c.NotAfter
		r.Reason = strings.TrimSpace(fmt.Sprintf("%s (same key as revoked %s)", rev.Reason, rev.Serial))
		if err := a.store.Revoke(&r); err != nil {
			return internal(err, "recording the revocation")
		}
		a.log.Info("revoked certificate", "serial", r.Serial, "reasonCode", r.ReasonCode, "via", r.Via, "sameKeyAs", rev.Serial)
	}
	return nil
}

// recordKey is the DER public key of a recorded certificate.
func recordKey(c *store.Certificate) ([]byte, error) {
	cert, err := x509.ParseCertificate(c.DER)
	if err != nil {
		return nil, fmt.Errorf("certificate %s: %w", c.Serial, err)
	}
	return cert.RawSubjectPublicKeyInfo, nil
}

// revokedKey returns the serial of a revoked certificate that holds the
// public key spki, if there is one: one lookup in the store's index of
// revoked keys, whatever the number of revocations.
func (a *Authority) revokedKey(spki []byte) (string, error) {
	return a.store.RevokedKey(spki)
}

func (a *Authority) maxLifetime() time.Duration {
	longest := DefaultMaxLifetime
	for _, p := range a.config().Provisioners {
		longest = max(longest, time.Duration(p.MaxDuration))
	}
	return longest
}

// CRL returns the current certificate revocation list (DER), signed by
// the intermediate, listing revoked certificates that have not expired.
// It is remade after each revocation and when half its validity passed.
func (a *Authority) CRL() ([]byte, error) {
	now := a.now()
	a.crlMu.Lock()
	defer a.crlMu.Unlock()
	if a.crl != nil && now.Before(a.crlMade.Add(a.crlNext.Sub(a.crlMade)/2)) {
		return a.crl, nil
	}
	validity := time.Duration(a.config().CRLValidity)
	tmpl := &x509.RevocationList{
		// A time-based number only grows, across restarts too.
		Number:     big.NewInt(now.UnixNano()),
		ThisUpdate: now.Add(-backdate),
		NextUpdate: now.Add(validity),
	}
	// Through the store's expiry index: the revocations the CRL lists,
	// not those of certificates that expired long ago.
	err := a.store.RevocationsUnexpired(now, func(r *store.Revocation) bool {
		serial, ok := new(big.Int).SetString(r.Serial, 10)
		if ok {
			tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries, x509.RevocationListEntry{
				SerialNumber: serial, RevocationTime: r.RevokedAt, ReasonCode: r.ReasonCode,
			})
		}
		return true
	})
	if err != nil {
		return nil, internal(err, "reading revocations")
	}
	der, err := x509.CreateRevocationList(a.rand, tmpl, a.intermediate, a.key)
	if err != nil {
		return nil, internal(err, "signing the CRL")
	}
	a.crl, a.crlMade, a.crlNext = der, now, tmpl.NextUpdate
	return der, nil
}

// ListCertificates calls fn for the issued certificates f selects (see
// List), to the holder of a provisioner's one-time token for
// caproto.ListOp: what `keyless ca list` uses while the CA runs and holds
// its database. It checks the token before it calls fn; an error after
// that is fn's or the store's.
func (a *Authority) ListCertificates(token string, f caproto.ListFilter, fn func(caproto.Certificate) error) error {
	_, _, tok, err := a.verifyOTT(token, caproto.ListOp, a.now())
	if err != nil {
		return err
	}
	if err := a.use(tok); err != nil {
		return err
	}
	var fnErr error
	err = List(a.store, f, func(c caproto.Certificate) error {
		fnErr = fn(c)
		return fnErr
	})
	switch {
	case err == nil:
		return nil
	case fnErr != nil:
		return fnErr
	default:
		return internal(err, "listing certificates")
	}
}

// List calls fn, with its revocation status, for every certificate
// record of a store that f selects: what `keyless ca list` prints. With
// no NotAfter bound, that is every certificate, oldest first; with one,
// the certificates whose NotAfter is within the bounds, soonest first,
// read through the store's expiry index (so the cost grows with the
// answer, not the store). It reads the store a page at a time and holds
// nothing between calls of fn. It stops at fn's first error and returns
// it.
func List(st store.Store, f caproto.ListFilter, fn func(caproto.Certificate) error) error {
	var ierr error
	each := func(c *store.Certificate) bool {
		l := caproto.Certificate{Serial: c.Serial, Subject: c.Subject, SANs: c.SANs, NotBefore: c.NotBefore, NotAfter: c.NotAfter,
			Provisioner: c.Provisioner, IssuedAt: c.IssuedAt, RenewedFrom: c.RenewedFrom}
		if _, err := st.Revocation(c.Serial); err == nil {
			l.Revoked = true
		} else if !errors.Is(err, store.ErrNotFound) {
			ierr = err
			return false
		}
		if err := fn(l); err != nil {
			ierr = err
			return false
		}
		return true
	}
	var err error
	if f.Bounded() {
		from, to := f.Bounds()
		err = st.CertificatesExpiring(from, to, each)
	} else {
		err = st.Certificates(each)
	}
	if err == nil {
		err = ierr
	}
	return err
}

// RootFingerprint is the hex SHA-256 of the root's DER, what clients
// bootstrap with.
func (a *Authority) RootFingerprint() string {
	sum := sha256.Sum256(a.root.Raw)
	return hex.EncodeToString(sum[:])
}

// IssueServerCertificate makes the CA's own TLS certificate for its
// dnsNames; it is not recorded in the store.
func (a *Authority) IssueServerCertificate(pub crypto.PublicKey, lifetime time.Duration) (*x509.Certificate, error) {
	serial, err := randomSerial(a.rand)
	if err != nil {
		return nil, err
	}
	cfg := a.config()
	now := a.now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cfg.Name},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(lifetime),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		SignatureAlgorithm:    signatureAlgorithm(a.key),
	}
	setNames(tmpl, cfg.DNSNames)
	der, err := x509.CreateCertificate(a.rand, tmpl, a.intermediate, pub, a.key)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}
