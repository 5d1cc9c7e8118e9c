package ca

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyless-dev/keyless/internal/mldsa"
	"github.com/keyless-dev/keyless/internal/pki/pkitest"
)

// fastEncoded counts the templates leafTBS encoded in compareWithX509.
var fastEncoded atomic.Int64

// signIssuers are the intermediates createCertificate is compared under:
// P-256 and P-384 (its fast path) and RSA (x509's own path).
func signIssuers(t testing.TB) map[string]*pkitest.CA {
	root := pkitest.NewRoot(t, "sign-root")
	out := map[string]*pkitest.CA{}
	for _, kind := range []string{pkitest.P256, pkitest.P384, pkitest.RSA2048} {
		out[kind] = pkitest.NewCA(t, pkitest.CAOptions{Name: "sign-int-" + kind, Key: pkitest.Key(t, kind+"#sign-int"), Parent: root})
	}
	return out
}

// leafTemplate is a template as issue fills it, from fuzzable parts.
func leafTemplate(cn string, names []string, serial []byte, notBefore, life int64, serverAuth bool, issuer crypto.Signer) *x509.Certificate {
	tmpl := &x509.Certificate{
		Subject:   pkix.Name{CommonName: cn},
		NotBefore: time.Unix(notBefore, 0),
		NotAfter:  time.Unix(notBefore+life, 0),
	}
	setNames(tmpl, names)
	if len(serial) > 0 {
		tmpl.SerialNumber = new(big.Int).SetBytes(serial)
	}
	tmpl.BasicConstraintsValid = true
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	if serverAuth {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
	}
	tmpl.SignatureAlgorithm = signatureAlgorithm(issuer)
	return tmpl
}

// compareWithX509 checks that createCertificate encodes the certificate
// byte for byte as x509.CreateCertificate (mldsa.CreateCertificate for
// ML-DSA subject keys) does: the same TBSCertificate, the same error or
// none, the signature valid under the issuer, and the outer encoding
// around x509's own TBS and signature equal to x509's certificate.
func compareWithX509(t *testing.T, tmpl *x509.Certificate, issuer *pkitest.CA, pub crypto.PublicKey) {
	t.Helper()
	want, wantErr := mldsa.CreateCertificate(rand.Reader, tmpl, issuer.Cert, pub, issuer.Key)
	got, gotErr := createCertificate(rand.Reader, tmpl, issuer.Cert, pub, issuer.Key)
	if (wantErr == nil) != (gotErr == nil) {
		t.Fatalf("x509 error %v, createCertificate error %v", wantErr, gotErr)
	}
	if wantErr != nil {
		return
	}
	wantCert, err := x509.ParseCertificate(want)
	if err != nil {
		// x509 writes what it cannot read back (a URI with a bad
		// host): the fast path must write the same bytes.
		wantCert = nil
	}
	gotCert, gotParseErr := x509.ParseCertificate(got)
	if (err == nil) != (gotParseErr == nil) {
		t.Fatalf("x509's certificate parses: %v; createCertificate's: %v", err, gotParseErr)
	}
	if wantCert == nil {
		return
	}
	if tbs, _, ok := leafTBS(tmpl, issuer.Cert, pub); ok {
		fastEncoded.Add(1)
		if !bytes.Equal(tbs, wantCert.RawTBSCertificate) {
			t.Fatalf("leafTBS differs from x509.CreateCertificate's TBSCertificate\n got %x\nwant %x", tbs, wantCert.RawTBSCertificate)
		}
	}
	if !bytes.Equal(gotCert.RawTBSCertificate, wantCert.RawTBSCertificate) {
		t.Fatalf("TBSCertificate differs from x509.CreateCertificate's\n got %x\nwant %x", gotCert.RawTBSCertificate, wantCert.RawTBSCertificate)
	}
	if err := gotCert.CheckSignatureFrom(issuer.Cert); err != nil {
		t.Fatalf("createCertificate's signature does not verify under the issuer: %v", err)
	}
	again, err := assembleCertificate(wantCert.RawTBSCertificate, wantCert.Signature)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again, want) {
		t.Fatalf("assembling x509's own TBS and signature gives\n %x\nnot x509's\n %x", again, want)
	}
}

// TestCreateCertificateMatchesX509 compares createCertificate with
// x509.CreateCertificate over the templates the CA makes: names of
// every kind, long and odd ones, serials of every length, UTCTime and
// GeneralizedTime validity, serverAuth, subject keys of every kind the
// CA takes, under P-256, P-384 and RSA intermediates.
func TestCreateCertificateMatchesX509(t *testing.T) {
	issuers := signIssuers(t)
	subjects := map[string]crypto.PublicKey{}
	for _, kind := range []string{pkitest.P256, pkitest.P384, pkitest.P521, pkitest.RSA2048, pkitest.MLDSA44} {
		subjects[kind] = pkitest.Key(t, kind+"#sign-leaf").Public()
	}
	nameSets := [][]string{
		nil,
		{"gitlab-runner"},
		{"a.example.com", "b.example.com", "10.0.0.1", "::1", "2001:db8::7", "ops@example.com", "spiffe://example.org/ns/ci/sa/runner"},
		{strings.Repeat("x", 63) + "." + strings.Repeat("y", 200)},
		{"uri:https://example.com/path?q=1"},
		{"bücher.example"},    // not IA5: x509 refuses it
		{"https://[::1]:443"}, // a URI host x509 cannot read back
		{"*.example.com", "localhost"},
	}
	cns := []string{"", "gitlab-runner", "CN with spaces, commas; and = signs", strings.Repeat("c", 64), "ünïcode"}
	serials := [][]byte{{1}, {0x7f}, {0x80}, {0x00, 0x80}, bytes.Repeat([]byte{0xff}, 17), bytes.Repeat([]byte{0x5a}, 20), bytes.Repeat([]byte{0x01}, 40)}
	times := [][2]int64{
		{time.Date(2026, 11, 27, 7, 0, 0, 0, time.UTC).Unix(), 24 * 3600},
		{time.Date(2049, 12, 31, 23, 0, 0, 0, time.UTC).Unix(), 2 * 3600}, // UTCTime to GeneralizedTime
		{time.Date(1949, 12, 31, 23, 0, 0, 0, time.UTC).Unix(), 7 * 24 * 3600},
		{time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Unix(), -3600}, // ends before it starts
	}
	n := 0
	for ik, issuer := range issuers {
		for sk, pub := range subjects {
			for i, names := range nameSets {
				for j, cn := range cns {
					serial := serials[(i+j)%len(serials)]
					tm := times[(i*3+j)%len(times)]
					tmpl := leafTemplate(cn, names, serial, tm[0], tm[1], (i+j)%2 == 0, issuer.Key)
					t.Run("", func(t *testing.T) {
						t.Logf("issuer %s, subject %s, names %q, cn %q, serial %x, times %v", ik, sk, names, cn, serial, tm)
						compareWithX509(t, tmpl, issuer, pub)
					})
					n++
				}
			}
		}
	}
	t.Logf("%d templates compared, %d of them encoded by leafTBS", n, fastEncoded.Load())
	if fastEncoded.Load() < int64(n)/4 {
		t.Errorf("leafTBS encoded only %d of %d templates: the fast path is not being compared", fastEncoded.Load(), n)
	}
}

// FuzzCreateCertificate compares createCertificate with
// x509.CreateCertificate on fuzzed names, common names, serials and
// validity, and checkEncodable with the signed probe it replaced.
func FuzzCreateCertificate(f *testing.F) {
	issuers := signIssuers(f)
	pub := pkitest.Key(f, pkitest.P256+"#sign-leaf").Public()
	f.Add("gitlab-runner", "gitlab-runner", []byte{0x80, 1}, time.Now().Unix(), int64(86400), false)
	f.Add("", "a.example.com,10.0.0.1,ops@example.com,spiffe://x/y", []byte{1}, int64(2524604400), int64(3600), true)
	f.Add("ü", "https://[::1]:443,bücher", []byte{}, int64(-631152000), int64(-1), false)
	f.Fuzz(func(t *testing.T, cn, names string, serial []byte, notBefore, life int64, serverAuth bool) {
		var list []string
		if names != "" {
			list = strings.Split(names, ",")
		}
		// Validity must be encodable at all (years 0-9999).
		notBefore %= 250_000_000_000
		life %= 1_000_000_000
		if len(serial) == 0 {
			serial = []byte{1}
		}
		for _, issuer := range []*pkitest.CA{issuers[pkitest.P256], issuers[pkitest.P384]} {
			compareWithX509(t, leafTemplate(cn, list, serial, notBefore, life, serverAuth, issuer.Key), issuer, pub)
		}
		if got, want := checkEncodable(list), signedProbe(list); (got == nil) != (want == nil) {
			t.Fatalf("checkEncodable(%q) = %v; the signed probe says %v", list, got, want)
		}
	})
}

// nameProbeKey signs signedProbe's requests; it is not a secret.
var nameProbeKey = ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))

// signedProbe is checkEncodable as it was before probeCSR: a CSR signed
// with nameProbeKey (x509 verifies the signature it made), read back.
func signedProbe(names []string) error {
	var c x509.Certificate
	setNames(&c, names)
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		DNSNames: c.DNSNames, EmailAddresses: c.EmailAddresses, IPAddresses: c.IPAddresses, URIs: c.URIs}, nameProbeKey)
	if err == nil {
		_, err = x509.ParseCertificateRequest(der)
	}
	return err
}

// TestCheckEncodableMatchesSignedProbe: the unsigned probe refuses
// exactly the names the signed one refused.
func TestCheckEncodableMatchesSignedProbe(t *testing.T) {
	for _, names := range [][]string{
		{"gitlab-runner"}, {"10.0.0.1", "::1"}, {"ops@example.com"}, {"spiffe://example.org/a"},
		{"bücher.example"}, {"https://[::1]:443"}, {"mailto:x@y"}, {"ops@ex ample.com"}, {"uri:%zz"},
		{"https://exa mple.com/"}, {strings.Repeat("a", 70000)}, {"https://a..b/"}, {"gitlab-runner", "https://a..b/"},
	} {
		got, want := checkEncodable(names), signedProbe(names)
		if (got == nil) != (want == nil) {
			t.Errorf("checkEncodable(%q) = %v; the signed probe says %v", names, got, want)
		}
	}
}

// TestCreateCertificateFastPathSkipsSelfCheck pins which path a key
// takes: the CA's ECDSA intermediate signs without x509 verifying its
// own signature (a signer whose Public lies would be caught by x509, and
// is not by the fast path, which is why it takes only *ecdsa.PrivateKey),
// and any other signer keeps x509's check.
func TestCreateCertificateFastPathSkipsSelfCheck(t *testing.T) {
	issuers := signIssuers(t)
	issuer := issuers[pkitest.P256]
	pub := pkitest.Key(t, pkitest.P256+"#sign-leaf").Public()
	tmpl := leafTemplate("gitlab-runner", []string{"gitlab-runner"}, []byte{1, 2, 3}, time.Now().Unix(), 3600, false, issuer.Key)
	// A wrapped signer is not an *ecdsa.PrivateKey: x509's path, whose
	// check refuses a signature the issuer's key did not make.
	other := pkitest.Key(t, pkitest.P256+"#sign-other")
	liar := &lyingSigner{Signer: other, pub: issuer.Key.Public()}
	if _, err := createCertificate(rand.Reader, tmpl, issuer.Cert, pub, liar); err == nil || !strings.Contains(err.Error(), "signature returned by signer is invalid") {
		t.Fatalf("a signer that is not the issuer's key: error %v, want x509's self-check to refuse it", err)
	}
}

// lyingSigner signs with one key and claims another's public key.
type lyingSigner struct {
	crypto.Signer
	pub crypto.PublicKey
}

func (l *lyingSigner) Public() crypto.PublicKey { return l.pub }

// TestCheckEncodableCache: a remembered answer is given only for the
// same list of names (a refused list does not refuse a list that merely
// joins to the same text, nor the other way round), and the cache never
// holds more than encodableMax lists.
func TestCheckEncodableCache(t *testing.T) {
	encodable.mu.Lock()
	clear(encodable.m)
	encodable.mu.Unlock()
	bad := []string{"bücher.example"}
	for i := range 2 { // computed, then remembered
		if checkEncodable(bad) == nil {
			t.Fatalf("a name that is not IA5 is encodable (call %d)", i+1)
		}
	}
	// The same characters split differently, each part fine.
	for _, names := range [][]string{{"a", "b"}, {"a\x00b"}, {"1:a"}, {"a1:b"}} {
		if err := checkEncodable(names); err != nil {
			t.Errorf("checkEncodable(%q) = %v", names, err)
		}
	}
	if err := checkEncodable([]string{"b\u00fccher.example"}); err == nil {
		t.Error("the refused list is encodable the second time")
	}
	if err := checkEncodable([]string{"bu", "cher.example"}); err != nil {
		t.Errorf("a list sharing characters with a refused one is refused: %v", err)
	}
	for i := range 3 * encodableMax {
		_ = checkEncodable([]string{fmt.Sprintf("n%d.example", i)})
		encodable.mu.Lock()
		n := len(encodable.m)
		encodable.mu.Unlock()
		if n > encodableMax {
			t.Fatalf("the cache holds %d lists, more than %d", n, encodableMax)
		}
	}
	if checkEncodable(bad) == nil {
		t.Fatal("a name that is not IA5 is encodable after the cache was emptied")
	}
}

// TestCreateCertificateRefusesForeignKey: an ECDSA key that is not the
// parent's is refused, as x509 refuses it, though the fast path skips
// x509's check of its own signature.
func TestCreateCertificateRefusesForeignKey(t *testing.T) {
	issuer := signIssuers(t)[pkitest.P256]
	other := pkitest.Key(t, pkitest.P256+"#sign-foreign").(*ecdsa.PrivateKey)
	tmpl := leafTemplate("gitlab-runner", []string{"gitlab-runner"}, []byte{1, 2, 3}, time.Now().Unix(), 3600, false, issuer.Key)
	pub := pkitest.Key(t, pkitest.P256+"#sign-leaf").Public()
	if der, err := createCertificate(rand.Reader, tmpl, issuer.Cert, pub, other); err == nil {
		t.Fatalf("signed a %d-byte certificate with a key that is not its issuer's", len(der))
	}
}

// TestLeafTBSSubjectIsIssuer: a leaf whose subject is its issuer's is
// encoded as x509 encodes it (without an authority key identifier).
func TestLeafTBSSubjectIsIssuer(t *testing.T) {
	key := pkitest.Key(t, pkitest.P256+"#same-subject").(*ecdsa.PrivateKey)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "same"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature, SubjectKeyId: []byte{1, 2, 3, 4}}
	der, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	issuer := &pkitest.CA{Cert: cert, Key: key}
	tmpl := leafTemplate("same", []string{"same"}, []byte{9}, time.Now().Unix(), 3600, false, key)
	if _, _, ok := leafTBS(tmpl, cert, pkitest.Key(t, pkitest.P256+"#sign-leaf").Public()); ok {
		t.Error("leafTBS encoded a leaf whose subject is its issuer's")
	}
	compareWithX509(t, tmpl, issuer, pkitest.Key(t, pkitest.P256+"#sign-leaf").Public())
}

// TestLeafProfileExcludes: every template field leafTBS does not encode
// sends the template to x509's own encoding.
func TestLeafProfileExcludes(t *testing.T) {
	issuer := signIssuers(t)[pkitest.P256]
	pub := pkitest.Key(t, pkitest.P256+"#sign-leaf").Public()
	base := func() *x509.Certificate {
		return leafTemplate("gitlab-runner", []string{"gitlab-runner"}, []byte{1, 2, 3}, time.Now().Unix(), 3600, false, issuer.Key)
	}
	if _, _, ok := leafTBS(base(), issuer.Cert, pub); !ok {
		t.Fatal("the base template is not in the leaf profile")
	}
	_, ipnet, _ := net.ParseCIDR("10.0.0.0/8")
	for name, edit := range map[string]func(*x509.Certificate){
		"ExtraExtensions": func(c *x509.Certificate) {
			c.ExtraExtensions = []pkix.Extension{{Id: asn1.ObjectIdentifier{1, 2, 3}, Value: []byte{5, 0}}}
		},
		"PermittedDNSDomains":     func(c *x509.Certificate) { c.PermittedDNSDomains = []string{"example.com"} },
		"ExcludedDNSDomains":      func(c *x509.Certificate) { c.ExcludedDNSDomains = []string{"example.com"} },
		"PermittedIPRanges":       func(c *x509.Certificate) { c.PermittedIPRanges = []*net.IPNet{ipnet} },
		"PermittedEmailAddresses": func(c *x509.Certificate) { c.PermittedEmailAddresses = []string{"example.com"} },
		"PermittedURIDomains":     func(c *x509.Certificate) { c.PermittedURIDomains = []string{"example.com"} },
		"CRLDistributionPoints":   func(c *x509.Certificate) { c.CRLDistributionPoints = []string{"http://crl.example/"} },
		"OCSPServer":              func(c *x509.Certificate) { c.OCSPServer = []string{"http://ocsp.example/"} },
		"PolicyIdentifiers":       func(c *x509.Certificate) { c.PolicyIdentifiers = []asn1.ObjectIdentifier{{2, 5, 29, 32, 0}} },
		"SubjectKeyId":            func(c *x509.Certificate) { c.SubjectKeyId = []byte{1} },
		"IsCA":                    func(c *x509.Certificate) { c.IsCA = true },
		"Organization":            func(c *x509.Certificate) { c.Subject.Organization = []string{"o"} },
		"UnknownExtKeyUsage":      func(c *x509.Certificate) { c.UnknownExtKeyUsage = []asn1.ObjectIdentifier{{1, 2, 3}} },
		"KeyUsage":                func(c *x509.Certificate) { c.KeyUsage |= x509.KeyUsageKeyEncipherment },
	} {
		tmpl := base()
		edit(tmpl)
		if _, _, ok := leafTBS(tmpl, issuer.Cert, pub); ok {
			t.Errorf("%s: leafTBS encoded a template outside its profile", name)
		}
		compareWithX509(t, tmpl, issuer, pub)
	}
}

// TestCheckEncodableCacheKey: lists whose names join to the same text are
// remembered apart (each name is prefixed with its length in the key).
func TestCheckEncodableCacheKey(t *testing.T) {
	encodable.mu.Lock()
	clear(encodable.m)
	encodable.mu.Unlock()
	sentinel := errors.New("remembered for another list")
	// Remember an answer for ["ab"], then ask for ["a", "b"].
	var key strings.Builder
	fmt.Fprintf(&key, "%d:%s", 2, "ab")
	encodable.put(key.String(), sentinel)
	if err := checkEncodable([]string{"a", "b"}); err != nil {
		t.Fatalf("checkEncodable([a b]) = %v: the answer remembered for [ab]", err)
	}
	if err := checkEncodable([]string{"ab"}); !errors.Is(err, sentinel) {
		t.Fatalf("checkEncodable([ab]) = %v, want the remembered answer", err)
	}
	long := []string{strings.Repeat("a", encodableMaxKey)}
	if err := checkEncodable(long); err != nil {
		t.Fatal(err)
	}
	encodable.mu.Lock()
	n := len(encodable.m)
	encodable.mu.Unlock()
	if n != 2 {
		t.Fatalf("the cache holds %d lists after a list over %d bytes; it keeps no such list", n, encodableMaxKey)
	}
}
