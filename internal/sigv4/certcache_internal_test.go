package sigv4

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"math/big"
	"testing"
	"time"
)

// headerOf is the X-Amz-X509 value of a self-signed certificate carrying
// pad bytes in an extension, so its size can be chosen.
func headerOf(t *testing.T, serial int64, pad int) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "cache"},
		NotBefore: time.Unix(0, 0), NotAfter: time.Unix(1<<32, 0),
		ExtraExtensions: []pkix.Extension{{Id: asn1.ObjectIdentifier{1, 2, 3, 4}, Value: make([]byte, pad)}},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(der)
}

// TestCertificateCacheSkipsLargeHeaders: a certificate over
// maxCachedHeader is parsed and answered, never remembered, so senders
// of huge certificates cannot fill the cache's memory.
func TestCertificateCacheSkipsLargeHeaders(t *testing.T) {
	c := NewCertificateCache(10)
	big := headerOf(t, 1, maxCachedHeader)
	if len(big) <= maxCachedHeader {
		t.Fatalf("test header is %d bytes, not over %d", len(big), maxCachedHeader)
	}
	if _, err := c.parse(big); err != nil {
		t.Fatal(err)
	}
	if c.Len() != 0 || c.bytes != 0 {
		t.Fatalf("a %d-byte header was remembered (%d entries, %d bytes)", len(big), c.Len(), c.bytes)
	}
	small := headerOf(t, 2, 0)
	if _, err := c.parse(small); err != nil {
		t.Fatal(err)
	}
	if c.Len() != 1 {
		t.Fatalf("a small header was not remembered: %d entries", c.Len())
	}
}

// TestCertificateCacheBoundedInBytes: the header text the cache holds
// never passes its byte budget; past it, the cache starts over.
func TestCertificateCacheBoundedInBytes(t *testing.T) {
	c := NewCertificateCache(1000)
	h := headerOf(t, 1, 4000)
	c.maxBytes = 3*len(h) + len(h)/2
	for i := range 10 {
		v := headerOf(t, int64(i+1), 4000)
		if _, err := c.parse(v); err != nil {
			t.Fatal(err)
		}
		if c.bytes > c.maxBytes {
			t.Fatalf("after %d headers the cache holds %d bytes, over its budget %d", i+1, c.bytes, c.maxBytes)
		}
		if c.Len() > 3 {
			t.Fatalf("after %d headers the cache holds %d entries; its byte budget allows 3", i+1, c.Len())
		}
	}
}
