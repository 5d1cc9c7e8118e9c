package sigv4_test

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/keyless-dev/keyless/internal/pki/pkitest"
	"github.com/keyless-dev/keyless/internal/sigv4"
)

const (
	testQuery = "profileArn=arn%3Aaws%3Arolesanywhere%3Aus-east-1%3A111122223333%3Aprofile%2Fp-1" +
		"&roleArn=arn%3Aaws%3Aiam%3A%3A111122223333%3Arole%2Fci-deployer" +
		"&trustAnchorArn=arn%3Aaws%3Arolesanywhere%3Aus-east-1%3A111122223333%3Atrust-anchor%2Fta-1"
	testBody = `{"durationSeconds":3600}`
)

var testTime = time.Date(2026, 11, 26, 1, 33, 3, 0, time.UTC)

// TestGoldenCanonicalRequest pins the canonical request and string to sign
// for a fixed CreateSession request, written out by hand from the
// specification (reference/roles-anywhere.md §1).
func TestGoldenCanonicalRequest(t *testing.T) {
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("X-Amz-Date", "20261126T013303Z")
	h.Set("X-Amz-X509", "MIIBfake")
	h.Set("X-Amz-X509-Chain", "MIIBint1,MIIBint2")
	h.Set("User-Agent", "keyless/test")
	names := []string{"content-type", "host", "x-amz-date", "x-amz-x509", "x-amz-x509-chain"}
	// The query arrives in another order with a space encoded as '+': the
	// canonical form sorts keys and encodes the space as %20.
	rawQuery := "trustAnchorArn=ta&roleSessionName=a+b&profileArn=p&roleArn=r"
	got, err := sigv4.HelperRules.CanonicalRequest("POST", sigv4.X509CanonicalURI, rawQuery, h, "rolesanywhere.us-east-1.amazonaws.com", names, sigv4.PayloadHash([]byte(testBody)))
	if err != nil {
		t.Fatal(err)
	}
	want := "POST\n" +
		"/sessions\n" +
		"profileArn=p&roleArn=r&roleSessionName=a%20b&trustAnchorArn=ta\n" +
		"content-type:application/json\n" +
		"host:rolesanywhere.us-east-1.amazonaws.com\n" +
		"x-amz-date:20261126T013303Z\n" +
		"x-amz-x509:MIIBfake\n" +
		"x-amz-x509-chain:MIIBint1,MIIBint2\n" +
		"\n" +
		"content-type;host;x-amz-date;x-amz-x509;x-amz-x509-chain\n" +
		"1a15f67f6619aa540b13e9a4c37d149fb2c9bdea25d82b73a3878826694dfe27" // sha256sum of the body
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("canonical request (-want +got):\n%s", diff)
	}

	sts := sigv4.StringToSign(sigv4.AlgorithmECDSA, "20261126T013303Z", sigv4.Scope("20261126", "us-east-1", sigv4.RolesAnywhereService), got)
	crHash := sha256.Sum256([]byte(got))
	wantSTS := "AWS4-X509-ECDSA-SHA256\n20261126T013303Z\n20261126/us-east-1/rolesanywhere/aws4_request\n" + hex.EncodeToString(crHash[:])
	if sts != wantSTS {
		t.Fatalf("string to sign:\n%s\nwant:\n%s", sts, wantSTS)
	}
}

func TestCanonicalHeaderValues(t *testing.T) {
	h := http.Header{}
	h.Set("X-Custom", "  a   b  c ")
	h.Add("X-Multi", "one")
	h.Add("X-Multi", "two")
	got, err := sigv4.HelperRules.CanonicalRequest("POST", sigv4.X509CanonicalURI, "", h, "h", []string{"host", "x-custom", "x-multi"}, "e3")
	if err != nil {
		t.Fatal(err)
	}
	want := "POST\n/sessions\n\nhost:h\nx-custom:a b c\nx-multi:one,two\n\nhost;x-custom;x-multi\ne3"
	if got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

type fixture struct {
	signer *sigv4.X509Signer
	inter  *x509.Certificate
}

func newFixture(t testing.TB, kind string, withChain bool) fixture {
	root := pkitest.NewRoot(t, "sig-root")
	inter := root.Intermediate(t, "sig-int")
	key := pkitest.Key(t, kind)
	s := &sigv4.X509Signer{Key: key, Certificate: inter.Leaf(t, pkitest.LeafOptions{Key: key})}
	if withChain {
		s.Intermediates = []*x509.Certificate{inter.Cert}
	}
	return fixture{signer: s, inter: inter.Cert}
}

func newRequest(t testing.TB) *http.Request {
	req, err := http.NewRequest("POST", "https://rolesanywhere.us-east-1.amazonaws.com/sessions?"+testQuery, bytes.NewReader([]byte(testBody)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "keyless/test")
	return req
}

func TestSignVerifyRoundTrip(t *testing.T) {
	for _, kind := range []string{pkitest.RSA2048, pkitest.RSA3072, pkitest.RSA4096, pkitest.P256, pkitest.P384} {
		for _, withChain := range []bool{false, true} {
			name := kind
			if withChain {
				name += "/chain"
			}
			t.Run(name, func(t *testing.T) {
				f := newFixture(t, kind, withChain)
				req := newRequest(t)
				if err := f.signer.Sign(req, []byte(testBody), "us-east-1", testTime); err != nil {
					t.Fatal(err)
				}
				wantHeaders := "content-type;host;x-amz-date;x-amz-x509"
				if withChain {
					wantHeaders += ";x-amz-x509-chain"
				}
				authz := req.Header.Get("Authorization")
				wantPrefix := "Credential=" + f.signer.Certificate.SerialNumber.String() + "/20261126/us-east-1/rolesanywhere/aws4_request, SignedHeaders=" + wantHeaders + ", Signature="
				if !strings.Contains(authz, wantPrefix) {
					t.Fatalf("Authorization %q lacks %q", authz, wantPrefix)
				}
				v, err := sigv4.VerifyX509(req, []byte(testBody), sigv4.X509VerifyOptions{Now: testTime.Add(4 * time.Minute), Region: "us-east-1"})
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if !v.Certificate.Equal(f.signer.Certificate) || !v.Date.Equal(testTime) {
					t.Fatal("Verify returned the wrong certificate or date")
				}
				if withChain != (len(v.Intermediates) == 1) {
					t.Fatalf("got %d intermediates", len(v.Intermediates))
				}
			})
		}
	}
}

func TestRSASignatureIsDeterministic(t *testing.T) {
	f := newFixture(t, pkitest.RSA2048, true)
	a, b := newRequest(t), newRequest(t)
	for _, r := range []*http.Request{a, b} {
		if err := f.signer.Sign(r, []byte(testBody), "us-east-1", testTime); err != nil {
			t.Fatal(err)
		}
	}
	if a.Header.Get("Authorization") != b.Header.Get("Authorization") {
		t.Fatal("two RSA signatures of the same request differ")
	}
}

func TestSignRemovesStaleChain(t *testing.T) {
	f := newFixture(t, pkitest.P256, false)
	req := newRequest(t)
	req.Header.Set(sigv4.HeaderChain, "stale")
	if err := f.signer.Sign(req, []byte(testBody), "us-east-1", testTime); err != nil {
		t.Fatal(err)
	}
	if req.Header.Get(sigv4.HeaderChain) != "" {
		t.Fatal("chain header kept without intermediates")
	}
}

// signWith signs req with a hand-picked list of signed headers and scope,
// so a test can build a request that is correctly signed yet breaks one rule.
func signWith(t *testing.T, s *sigv4.X509Signer, req *http.Request, names []string, alg, day, region string) {
	t.Helper()
	canonical, err := sigv4.HelperRules.CanonicalRequest(req.Method, sigv4.X509CanonicalURI, req.URL.RawQuery, req.Header, req.URL.Host, names, sigv4.PayloadHash([]byte(testBody)))
	if err != nil {
		t.Fatal(err)
	}
	scope := sigv4.Scope(day, region, sigv4.RolesAnywhereService)
	sum := sha256.Sum256([]byte(sigv4.StringToSign(alg, req.Header.Get("X-Amz-Date"), scope, canonical)))
	sig, err := s.Key.Sign(rand.Reader, sum[:], crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", alg+" Credential="+s.Certificate.SerialNumber.String()+"/"+scope+", SignedHeaders="+strings.Join(names, ";")+", Signature="+hex.EncodeToString(sig))
}

// TestVerifyRefusals breaks exactly one rule per case and expects that
// rule's error.
func TestVerifyRefusals(t *testing.T) {
	f := newFixture(t, pkitest.P256, true)
	other := newFixture(t, pkitest.P384, true)
	now := testTime.Add(time.Minute)
	opts := sigv4.X509VerifyOptions{Now: now, Region: "us-east-1"}
	body := []byte(testBody)
	all := []string{"content-type", "host", "x-amz-date", "x-amz-x509", "x-amz-x509-chain"}

	tests := []struct {
		name   string
		mutate func(t *testing.T, req *http.Request) []byte // returns the body the server sees
		opts   sigv4.X509VerifyOptions
		want   error
	}{
		{"tampered-body", func(t *testing.T, r *http.Request) []byte { return []byte(`{"durationSeconds":43200}`) }, opts, sigv4.ErrSignature},
		{"tampered-query", func(t *testing.T, r *http.Request) []byte {
			r.URL.RawQuery = strings.Replace(r.URL.RawQuery, "ci-deployer", "admin", 1)
			return body
		}, opts, sigv4.ErrSignature},
		{"tampered-signed-header", func(t *testing.T, r *http.Request) []byte {
			r.Header.Set("Content-Type", "text/plain")
			return body
		}, opts, sigv4.ErrSignature},
		{"tampered-host", func(t *testing.T, r *http.Request) []byte { r.Host = "evil.example"; return body }, opts, sigv4.ErrSignature},
		{"flipped-signature-byte", func(t *testing.T, r *http.Request) []byte {
			a := r.Header.Get("Authorization")
			i := strings.LastIndex(a, "=") + 5
			c := byte('0')
			if a[i] == '0' {
				c = '1'
			}
			r.Header.Set("Authorization", a[:i]+string(c)+a[i+1:])
			return body
		}, opts, sigv4.ErrSignature},
		{"certificate-swapped", func(t *testing.T, r *http.Request) []byte {
			// Another certificate with the same serial but another key.
			r.Header.Set("X-Amz-X509", impostorHeader(t, f))
			return body
		}, opts, sigv4.ErrSignature},
		{"date-6-minutes-behind", func(t *testing.T, r *http.Request) []byte { return body },
			sigv4.X509VerifyOptions{Now: testTime.Add(6 * time.Minute), Region: "us-east-1"}, sigv4.ErrClockSkew},
		{"date-6-minutes-ahead", func(t *testing.T, r *http.Request) []byte { return body },
			sigv4.X509VerifyOptions{Now: testTime.Add(-6 * time.Minute), Region: "us-east-1"}, sigv4.ErrClockSkew},
		{"wrong-serial-in-credential", func(t *testing.T, r *http.Request) []byte {
			a := r.Header.Get("Authorization")
			r.Header.Set("Authorization", strings.Replace(a, "Credential="+f.signer.Certificate.SerialNumber.String(), "Credential=65280", 1))
			return body
		}, opts, sigv4.ErrSerialMismatch},
		{"scope-date-not-request-date", func(t *testing.T, r *http.Request) []byte {
			signWith(t, f.signer, r, all, sigv4.AlgorithmECDSA, "20261125", "us-east-1")
			return body
		}, opts, sigv4.ErrScope},
		{"scope-region-unexpected", func(t *testing.T, r *http.Request) []byte {
			signWith(t, f.signer, r, all, sigv4.AlgorithmECDSA, "20261126", "eu-west-1")
			return body
		}, opts, sigv4.ErrScope},
		{"rsa-algorithm-with-ec-key", func(t *testing.T, r *http.Request) []byte {
			signWith(t, f.signer, r, all, sigv4.AlgorithmRSA, "20261126", "us-east-1")
			return body
		}, opts, sigv4.ErrSignature},
		{"signed-header-missing", func(t *testing.T, r *http.Request) []byte {
			r.Header.Del("Content-Type")
			return body
		}, opts, sigv4.ErrMalformed},
		{"no-authorization", func(t *testing.T, r *http.Request) []byte { r.Header.Del("Authorization"); return body }, opts, sigv4.ErrMalformed},
		{"x509-not-base64", func(t *testing.T, r *http.Request) []byte { r.Header.Set("X-Amz-X509", "%%%"); return body }, opts, sigv4.ErrMalformed},
		{"chain-garbage", func(t *testing.T, r *http.Request) []byte { r.Header.Set("X-Amz-X509-Chain", "AAAA"); return body }, opts, sigv4.ErrMalformed},
		{"date-garbage", func(t *testing.T, r *http.Request) []byte { r.Header.Set("X-Amz-Date", "yesterday"); return body }, opts, sigv4.ErrMalformed},
		{"other-signer", func(t *testing.T, r *http.Request) []byte {
			// A valid signature by another certificate, sent with ours.
			r2 := newRequest(t)
			if err := other.signer.Sign(r2, body, "us-east-1", testTime); err != nil {
				t.Fatal(err)
			}
			r.Header.Set("Authorization", strings.Replace(r2.Header.Get("Authorization"), other.signer.Certificate.SerialNumber.String(), f.signer.Certificate.SerialNumber.String(), 1))
			return body
		}, opts, sigv4.ErrSignature},
	}
	// Each header that must be signed, left out of SignedHeaders.
	for _, h := range []string{"x-amz-x509", "x-amz-date", "host", "x-amz-x509-chain"} {
		signed := slices.DeleteFunc(slices.Clone(all), func(n string) bool { return n == h })
		tests = append(tests, struct {
			name   string
			mutate func(t *testing.T, req *http.Request) []byte
			opts   sigv4.X509VerifyOptions
			want   error
		}{"unsigned-" + h, func(t *testing.T, r *http.Request) []byte {
			signWith(t, f.signer, r, signed, sigv4.AlgorithmECDSA, "20261126", "us-east-1")
			return body
		}, opts, sigv4.ErrSignedHeaders})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := newRequest(t)
			if err := f.signer.Sign(req, body, "us-east-1", testTime); err != nil {
				t.Fatal(err)
			}
			if _, err := sigv4.VerifyX509(req, body, opts); err != nil {
				t.Fatalf("unmodified request refused: %v", err)
			}
			seen := tt.mutate(t, req)
			_, err := sigv4.VerifyX509(req, seen, tt.opts)
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
}

// impostorHeader returns the X-Amz-X509 value of a certificate with the
// fixture's serial but another key.
func impostorHeader(t *testing.T, f fixture) string {
	t.Helper()
	root := pkitest.NewRoot(t, "impostor")
	leaf := root.Leaf(t, pkitest.LeafOptions{Key: pkitest.Key(t, "p256#impostor"), Serial: f.signer.Certificate.SerialNumber})
	return base64.StdEncoding.EncodeToString(leaf.Raw)
}

func TestParseAuthorizationRefusals(t *testing.T) {
	good := "AWS4-X509-ECDSA-SHA256 Credential=1/20261126/us-east-1/rolesanywhere/aws4_request, SignedHeaders=host;x-amz-date;x-amz-x509, Signature=00ff"
	if _, err := sigv4.ParseAuthorization(good, sigv4.X509Algorithms...); err != nil {
		t.Fatalf("good header refused: %v", err)
	}
	for name, s := range map[string]string{
		"sigv4-hmac":         strings.Replace(good, "AWS4-X509-ECDSA-SHA256", "AWS4-HMAC-SHA256", 1),
		"no-space":           "AWS4-X509-ECDSA-SHA256",
		"hex-serial":         strings.Replace(good, "Credential=1/", "Credential=ff/", 1),
		"leading-zero":       strings.Replace(good, "Credential=1/", "Credential=01/", 1),
		"short-credential":   strings.Replace(good, "/aws4_request", "", 1),
		"unsorted-headers":   strings.Replace(good, "host;x-amz-date", "x-amz-date;host", 1),
		"duplicate-header":   strings.Replace(good, "host;x-amz-date", "host;host;x-amz-date", 1),
		"upper-case-header":  strings.Replace(good, "host;", "Host;", 1),
		"signature-not-hex":  strings.Replace(good, "00ff", "zz", 1),
		"signature-empty":    strings.Replace(good, "00ff", "", 1),
		"repeated-component": good + ", Signature=00",
		"unknown-component":  good + ", Extra=1",
		"missing-signature":  strings.Replace(good, ", Signature=00ff", "", 1),
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := sigv4.ParseAuthorization(s, sigv4.X509Algorithms...); !errors.Is(err, sigv4.ErrMalformed) {
				t.Fatalf("got %v, want ErrMalformed", err)
			}
		})
	}
}
