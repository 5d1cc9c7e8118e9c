package sigv4

import (
	"crypto"
	"crypto/x509"
	"strings"
	"sync"

	"github.com/keyless-dev/keyless/internal/mldsa"
)

// CertificateCache remembers the certificates VerifyX509 parsed from
// X-Amz-X509 and X-Amz-X509-Chain, by the header's exact base64 text, so
// a verifier that sees the same certificates again (a fleet of runners
// reusing theirs) decodes and parses them once. Parsing is a function of
// the bytes alone, so an entry never goes stale; what VerifyX509 checks
// with the certificate (the request's signature with its key, its
// serial) is checked on every request. The certificates it returns are
// shared: callers must not modify them. It is safe for concurrent use.
//
// Anyone who can send a request fills it (certificates are parsed before
// any signature or chain is checked), so it is bounded in bytes as well
// as in entries: a header longer than maxCachedHeader is parsed and not
// remembered, and the cache starts over when the headers it holds pass
// maxCachedBytes (about a third of what it keeps in memory: the header
// text, and a parsed certificate of about twice its DER).
type CertificateCache struct {
	mu       sync.RWMutex
	max      int
	maxBytes int // maxCachedBytes; tests lower it
	bytes    int
	m        map[string]*parsedCertificate
}

const (
	// maxCachedHeader is the longest header value the cache remembers:
	// 16 KiB of base64, 12 KiB of DER, above any certificate a runner
	// uses (ML-DSA-87's is about 7.5 KiB).
	maxCachedHeader = 16 << 10
	// maxCachedBytes bounds the header text the cache holds; with the
	// parsed certificates, about 3 times this in memory.
	maxCachedBytes = 16 << 20
)

type parsedCertificate struct {
	cert *x509.Certificate
	// pub is the certificate's key as mldsa.PublicKeyOf gives it, or nil
	// when that failed (pubErr).
	pub    crypto.PublicKey
	pubErr error
}

// NewCertificateCache returns a cache that holds at most max
// certificates; when full, it starts over.
func NewCertificateCache(max int) *CertificateCache {
	return &CertificateCache{max: max, maxBytes: maxCachedBytes}
}

// Len returns how many certificates the cache holds.
func (c *CertificateCache) Len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.m)
}

// parse returns the certificate a header value holds, from the cache
// when c is not nil and has it. Only certificates that parse are
// remembered.
func (c *CertificateCache) parse(v string) (*parsedCertificate, error) {
	if c != nil {
		c.mu.RLock()
		p, ok := c.m[v]
		c.mu.RUnlock()
		if ok {
			return p, nil
		}
	}
	cert, err := parseCertHeader(v)
	if err != nil {
		return nil, err
	}
	p := &parsedCertificate{cert: cert}
	p.pub, p.pubErr = mldsa.PublicKeyOf(cert)
	if c == nil || c.max <= 0 || len(v) > maxCachedHeader {
		return p, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= c.max || c.bytes+len(v) > c.maxBytes {
		c.m = make(map[string]*parsedCertificate)
		c.bytes = 0
	}
	// The key is copied: v may be part of a larger header value.
	if _, ok := c.m[v]; !ok {
		c.bytes += len(v)
	}
	c.m[strings.Clone(v)] = p
	return p, nil
}
