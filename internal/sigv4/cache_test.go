package sigv4_test

import (
	"errors"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/keyless-dev/keyless/internal/pki/pkitest"
	"github.com/keyless-dev/keyless/internal/sigv4"
)

// TestCertificateCacheStillVerifiesSignature: with the leaf already in
// the cache, a request whose signature does not verify with its key is
// refused, and a request naming another certificate gets that one.
func TestCertificateCacheStillVerifiesSignature(t *testing.T) {
	f := newFixture(t, pkitest.P256, true)
	cache := sigv4.NewCertificateCache(16)
	opts := sigv4.X509VerifyOptions{Now: testTime, Region: "us-east-1", Certificates: cache}
	req := newRequest(t)
	if err := f.signer.Sign(req, []byte(testBody), "us-east-1", testTime); err != nil {
		t.Fatal(err)
	}
	first, err := sigv4.VerifyX509(req, []byte(testBody), opts)
	if err != nil {
		t.Fatal(err)
	}
	if cache.Len() != 2 {
		t.Fatalf("cache holds %d certificates, want the leaf and the intermediate", cache.Len())
	}
	again, err := sigv4.VerifyX509(req, []byte(testBody), opts)
	if err != nil || again.Certificate != first.Certificate || again.Intermediates[0] != first.Intermediates[0] {
		t.Fatalf("second verification: %v; the certificates were not taken from the cache", err)
	}
	// Same certificates, another body: the signature no longer verifies.
	if _, err := sigv4.VerifyX509(req, []byte(testBody+" "), opts); !errors.Is(err, sigv4.ErrSignature) {
		t.Fatalf("tampered body with cached certificates: %v, want ErrSignature", err)
	}
	// Same leaf, signed by another key: refused.
	other := &sigv4.X509Signer{Key: pkitest.Key(t, pkitest.P256+"#other"), Certificate: f.signer.Certificate, Intermediates: f.signer.Intermediates}
	forged := newRequest(t)
	if err := other.Sign(forged, []byte(testBody), "us-east-1", testTime); err != nil {
		t.Fatal(err)
	}
	if _, err := sigv4.VerifyX509(forged, []byte(testBody), opts); !errors.Is(err, sigv4.ErrSignature) {
		t.Fatalf("another key with a cached leaf: %v, want ErrSignature", err)
	}
	// Another leaf gets its own entry, never the cached one.
	g := newFixture(t, pkitest.P256, true)
	g.signer.Certificate = pkitest.NewRoot(t, "sig-root").Intermediate(t, "sig-int").Leaf(t, pkitest.LeafOptions{Key: g.signer.Key})
	req2 := newRequest(t)
	if err := g.signer.Sign(req2, []byte(testBody), "us-east-1", testTime); err != nil {
		t.Fatal(err)
	}
	v2, err := sigv4.VerifyX509(req2, []byte(testBody), opts)
	if err != nil || !v2.Certificate.Equal(g.signer.Certificate) || v2.Certificate.Equal(first.Certificate) {
		t.Fatalf("another leaf: %v", err)
	}
}

// TestCertificateCacheBounded: a full cache starts over rather than grow.
func TestCertificateCacheBounded(t *testing.T) {
	cache := sigv4.NewCertificateCache(3)
	root := pkitest.NewRoot(t, "sig-root")
	inter := root.Intermediate(t, "sig-int")
	key := pkitest.Key(t, pkitest.P256)
	for i := 0; i < 5; i++ {
		s := &sigv4.X509Signer{Key: key, Certificate: inter.Leaf(t, pkitest.LeafOptions{Key: key})}
		req := newRequest(t)
		if err := s.Sign(req, []byte(testBody), "us-east-1", testTime); err != nil {
			t.Fatal(err)
		}
		if _, err := sigv4.VerifyX509(req, []byte(testBody), sigv4.X509VerifyOptions{Certificates: cache}); err != nil {
			t.Fatal(err)
		}
		if cache.Len() > 3 {
			t.Fatalf("cache holds %d, over its bound 3", cache.Len())
		}
	}
}

// TestHelperCanonicalQueryFastPath: HelperRules.CanonicalQuery takes a
// query already in canonical form as it is; for any query, its answer is
// what url.Values gives (the helper's own encoding).
func TestHelperCanonicalQueryFastPath(t *testing.T) {
	reference := func(raw string) (string, error) {
		if raw == "" {
			return "", nil
		}
		v, err := url.ParseQuery(raw)
		if err != nil {
			return "", err
		}
		return strings.ReplaceAll(v.Encode(), "+", "%20"), nil
	}
	many := strings.Repeat("a=1&", 10000) + "a=1" // one over url.ParseQuery's limit
	queries := []string{
		many, strings.Repeat("a=1&", 63) + "a=1", strings.Repeat("a=1&", 64) + "a=1",
		testQuery,
		"profileArn=arn%3Aaws%3Arolesanywhere%3Aus-east-1%3A1%3Aprofile%2Fp&roleArn=arn%3Aaws%3Aiam%3A%3A1%3Arole%2Fr",
		"a=1&a=2", "b=1&a=2", "a=%3a", "a=%41", "a=%2", "a=%", "a=%20", "a=+", "a", "a=1&&b=2", "a=b=c", "a;b=1",
		"a%2F=1", "a=%7E", "a=%ZZ", "=1", "a=", "a=1&a=", "A=1&a=1", "a=1&A=1",
	}
	const alphabet = "aAz09-_.~%2F3A7ef=&+; "
	r := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		b := make([]byte, 1+r.IntN(12))
		for i := range b {
			b[i] = alphabet[r.IntN(len(alphabet))]
		}
		queries = append(queries, string(b))
	}
	for _, q := range queries {
		got, err := sigv4.HelperRules.CanonicalQuery(q)
		want, werr := reference(q)
		if (err != nil) != (werr != nil) || got != want {
			t.Fatalf("CanonicalQuery(%q) = %q, %v; url.Values gives %q, %v", q, got, err, want, werr)
		}
	}
}

// TestCanonicalHeaderSpellings: a header set by hand under a name that is
// not canonical is found under its lower-case signed name, as before.
func TestCanonicalHeaderSpellings(t *testing.T) {
	h := http.Header{"x-LOWER": {"v"}}
	got, err := sigv4.HelperRules.CanonicalRequest("GET", "/", "", h, "h", []string{"host", "x-lower"}, "e3")
	if err != nil || !strings.Contains(got, "\nx-lower:v\n") {
		t.Fatalf("got %q, %v", got, err)
	}
}

// TestCanonicalRequestManyHeaders: a request with many headers (looked
// up through a lower-cased index) canonicalises as one with few (each
// name searched for).
func TestCanonicalRequestManyHeaders(t *testing.T) {
	few := http.Header{"X-Amz-Date": {"20261126T013303Z"}, "x-LOWER": {"v"}, "Content-Type": {"application/json"}}
	many := http.Header{}
	for k, v := range few {
		many[k] = v
	}
	for i := 0; i < 40; i++ {
		many.Set("X-Filler-"+strconv.Itoa(i), "f")
	}
	signed := []string{"content-type", "host", "x-amz-date", "x-lower"}
	for _, rules := range []sigv4.Rules{sigv4.HelperRules, sigv4.SDKRules} {
		a, err1 := rules.CanonicalRequest("POST", "/sessions", "", few, "h", signed, "e3")
		b, err2 := rules.CanonicalRequest("POST", "/sessions", "", many, "h", signed, "e3")
		if err1 != nil || err2 != nil || a != b || !strings.Contains(a, "\nx-lower:v\n") {
			t.Fatalf("few headers:\n%s\nmany headers:\n%s\n(%v, %v)", a, b, err1, err2)
		}
	}
}
