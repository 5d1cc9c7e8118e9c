package ca

import (
	"testing"

	"github.com/keyless-dev/keyless/internal/pki"
)

// TestAllowsByKind: a pattern matches only its own kind of name, so a
// provisioner that looks DNS-only issues no URI or email SAN that ends
// the same way (the attack review got URI:spiffe://prod/ns/admin#.runners.example.com
// from "*.runners.example.com"); names that are not valid for their kind
// are refused whatever the patterns.
func TestAllowsByKind(t *testing.T) {
	p := &ProvisionerConfig{Allow: []string{"gitlab-runner-*", "*.runners.example.com", "uri:spiffe://ci/runner/*", "uri:https://*.example.com", "uri:spiffe://*/job/a", "email:*@ci.example.com", "ip:10.0.0.*"}}
	for _, tc := range []struct {
		kind, name string
		want       bool
	}{
		{pki.NameCN, "gitlab-runner-7", true},
		{pki.NameDNS, "gitlab-runner-7", true},
		{pki.NameDNS, "a.runners.example.com", true},
		{pki.NameURI, "spiffe://prod/ns/admin#.runners.example.com", false},
		{pki.NameEmail, "admin@corp.runners.example.com", false},
		{pki.NameURI, "gitlab-runner-x://evil/admin", false},
		{pki.NameURI, "spiffe://ci/runner/7", true},
		{pki.NameEmail, "build@ci.example.com", true},
		{pki.NameIP, "10.0.0.9", true},
		{pki.NameIP, "10.0.1.9", false},
		{pki.NameDNS, "gitlab-runner-\x00admin", false},
		{pki.NameDNS, "gitlab-runner-x,CN=admin", false},
		{pki.NameDNS, "gitlab-runner-a b", false},
		{pki.NameDNS, "-gitlab-runner-", false},
		{pki.NameCN, "gitlab-runner-\x01", false},
		{pki.NameCN, "GITLAB-RUNNER-1", false},
		{pki.NameCN, "", false},
		// A '*' stays within its part of the name (second attack review):
		// a DNS label, a URI host label or path segment.
		{pki.NameDNS, "gitlab-runner-x.evil.com", false},
		{pki.NameCN, "gitlab-runner-x.evil.com", false},
		{pki.NameDNS, "a.b.runners.example.com", false},
		{pki.NameURI, "spiffe://ci/runner/../admin", false},
		{pki.NameURI, "spiffe://ci/runner/./7", false},
		{pki.NameURI, "spiffe://ci/runner/7/admin", false},
		{pki.NameURI, "spiffe://ci/runner//7", false},
		{pki.NameURI, "spiffe://ci/runner/%37", false},
		{pki.NameURI, "spiffe://x@ci/runner/7", false},
		{pki.NameURI, "spiffe://ci:443/runner/7", false},
		{pki.NameURI, "spiffe://ci/runner/7?x", false},
		{pki.NameURI, "spiffe://ci/runner/7#x", false},
		{pki.NameURI, "SPIFFE://ci/runner/7", false},
		{pki.NameURI, "https://a.example.com", true},
		{pki.NameURI, "https://evil.com#.example.com", false},
		{pki.NameURI, "https://evil.com/.example.com", false},
		{pki.NameURI, "https://evil.com?.example.com", false},
		{pki.NameURI, "https://a.b.example.com", false},
		{pki.NameURI, "https://a.example.com/x", false},
		{pki.NameEmail, "Build <build@ci.example.com>", false},
		{pki.NameEmail, "build@evil.ci.example.com", false},
		{pki.NameEmail, "first.last@ci.example.com", true},
		{pki.NameIP, "10.0.0.99", true},
		// A '*' is one or more characters of a label: no port, IPv6
		// literal or zone in a URI's host, no separators or spaces in a
		// common name, never nothing (the second review).
		{pki.NameURI, "spiffe://ci/job/a", true},
		{pki.NameURI, "spiffe://ci:/job/a", false},
		{pki.NameURI, "spiffe://[::1]/job/a", false},
		{pki.NameURI, "spiffe://[fe80::1%25eth0]/job/a", false},
		{pki.NameCN, "gitlab-runner-x/admin", false},
		{pki.NameCN, "gitlab-runner-x,OU=admin", false},
		{pki.NameCN, "gitlab-runner-x y", false},
		{pki.NameCN, "gitlab-runner-", false},
		{pki.NameCN, ".runners.example.com", false},
		{pki.NameCN, "a.runners.example.com", true},
	} {
		if got := p.Allows(tc.kind, tc.name); got != tc.want {
			t.Errorf("Allows(%s, %q) = %v, want %v", tc.kind, tc.name, got, tc.want)
		}
		if tc.kind != pki.NameCN {
			if k := pki.NameKind(tc.name); k != tc.kind && tc.kind != pki.NameDNS {
				t.Errorf("pki.NameKind(%q) = %s, want %s", tc.name, k, tc.kind)
			}
		}
	}
	any := &ProvisionerConfig{Allow: []string{"*"}}
	for _, n := range []string{"spiffe://x/y", "a@b.example", "10.1.2.3", "host"} {
		if !any.Allows(pki.NameKind(n), n) {
			t.Errorf(`"*" does not allow %q`, n)
		}
	}
	if any.Allows(pki.NameDNS, "bad name") {
		t.Error(`"*" allows an invalid DNS name`)
	}
}
