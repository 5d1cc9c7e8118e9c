package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"slices"
	"testing"
)

func TestNameKind(t *testing.T) {
	for name, want := range map[string]string{
		"gitlab-runner":                 NameDNS,
		"10.0.0.9":                      NameIP,
		"::1":                           NameIP,
		"spiffe://ci/runner/7":          NameURI,
		"gitlab-runner-x://evil/admin":  NameURI,
		"build@ci.example.com":          NameEmail,
		"a b@ci.example.com":            NameDNS, // not an address: a DNS name, which the CA's name rules then refuse
		"@ci.example.com":               NameDNS,
		"mailto:build@ci.example.com":   NameDNS, // a scheme without "://" is no URI here
		"http//no-colon.example.com":    NameDNS,
		"runner.example.com.":           NameDNS,
		"Build <build@ci.example.com>":  NameEmail,
		"1.2.3.4.example.com":           NameDNS,
		"spiffe://ci/runner/7@evil.com": NameURI,
	} {
		if got := NameKind(name); got != want {
			t.Errorf("NameKind(%q) = %s, want %s", name, got, want)
		}
	}
}

// TestSortNamesRoundTrip: the names come back out of a signed request in
// the fields NameKind gives, in order.
func TestSortNamesRoundTrip(t *testing.T) {
	names := []string{"gitlab-runner", "10.0.0.9", "spiffe://ci/runner/7", "build@ci.example.com", "b.example.com"}
	s := SortNames(names)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		DNSNames: s.DNSNames, EmailAddresses: s.EmailAddresses, IPAddresses: s.IPAddresses, URIs: s.URIs}, key)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(csr.DNSNames, []string{"gitlab-runner", "b.example.com"}) || len(csr.IPAddresses) != 1 || csr.IPAddresses[0].String() != "10.0.0.9" ||
		len(csr.URIs) != 1 || csr.URIs[0].String() != "spiffe://ci/runner/7" || !slices.Equal(csr.EmailAddresses, []string{"build@ci.example.com"}) {
		t.Errorf("names read back: dns %v ip %v uri %v email %v", csr.DNSNames, csr.IPAddresses, csr.URIs, csr.EmailAddresses)
	}
}
