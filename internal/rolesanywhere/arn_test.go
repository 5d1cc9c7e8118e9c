package rolesanywhere_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/keyless-dev/keyless/internal/rolesanywhere"
)

func TestParseARNs(t *testing.T) {
	good := []struct {
		parse func(string) (rolesanywhere.ARN, error)
		arn   string
	}{
		{rolesanywhere.ParseTrustAnchorARN, taARN},
		{rolesanywhere.ParseTrustAnchorARN, "arn:aws-cn:rolesanywhere:cn-north-1:111122223333:trust-anchor/abc"},
		{rolesanywhere.ParseProfileARN, profARN},
		{rolesanywhere.ParseProfileARN, "arn:aws-us-gov:rolesanywhere:us-gov-west-1:111122223333:profile/p-1"},
		{rolesanywhere.ParseRoleARN, roleARN},
		{rolesanywhere.ParseRoleARN, "arn:aws:iam::111122223333:role/service-role/ci+deploy@x"},
	}
	for _, g := range good {
		a, err := g.parse(g.arn)
		if err != nil {
			t.Errorf("%s: %v", g.arn, err)
			continue
		}
		if a.String() != g.arn {
			t.Errorf("round trip %s -> %s", g.arn, a)
		}
	}
	bad := []struct {
		parse func(string) (rolesanywhere.ARN, error)
		arn   string
	}{
		{rolesanywhere.ParseTrustAnchorARN, ""},
		{rolesanywhere.ParseTrustAnchorARN, "trust-anchor/abc"},
		{rolesanywhere.ParseTrustAnchorARN, profARN},
		{rolesanywhere.ParseTrustAnchorARN, roleARN},
		{rolesanywhere.ParseTrustAnchorARN, "arn:aws:rolesanywhere:us-east-1:1111:trust-anchor/abc"},
		{rolesanywhere.ParseTrustAnchorARN, "arn:aws:rolesanywhere:evil.com/x:111122223333:trust-anchor/abc"},
		{rolesanywhere.ParseTrustAnchorARN, "arn:aws:rolesanywhere:us-east-1:111122223333:trust-anchor/"},
		{rolesanywhere.ParseTrustAnchorARN, "arn:aws:rolesanywhere:us-east-1:111122223333:trust-anchor/a b"},
		{rolesanywhere.ParseTrustAnchorARN, "arn:azure:rolesanywhere:us-east-1:111122223333:trust-anchor/abc"},
		{rolesanywhere.ParseProfileARN, taARN},
		{rolesanywhere.ParseRoleARN, "arn:aws:iam:us-east-1:111122223333:role/x"},
		{rolesanywhere.ParseRoleARN, "arn:aws:iam::111122223333:user/x"},
		{rolesanywhere.ParseRoleARN, "arn:aws:iam::111122223333:role/"},
		{rolesanywhere.ParseRoleARN, "arn:aws:sts::111122223333:role/x"},
	}
	for _, b := range bad {
		if _, err := b.parse(b.arn); !errors.Is(err, rolesanywhere.ErrInvalidARN) {
			t.Errorf("%q: got %v, want ErrInvalidARN", b.arn, err)
		}
	}
}

func TestEndpoints(t *testing.T) {
	if got := rolesanywhere.DefaultEndpoint("eu-west-1"); got != "https://rolesanywhere.eu-west-1.amazonaws.com" {
		t.Error(got)
	}
	if got := rolesanywhere.DefaultEndpoint("cn-northwest-1"); got != "https://rolesanywhere.cn-northwest-1.amazonaws.com.cn" {
		t.Error(got)
	}
	for _, ok := range []string{"https://rolesanywhere.us-east-1.amazonaws.com", "http://127.0.0.1:8443", "http://localhost:1/prefix", "http://[::1]:80", "https://10.0.0.5:8443"} {
		if _, err := rolesanywhere.ParseEndpoint(ok); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for _, bad := range []string{"http://10.0.0.5:8443", "http://example.com", "ftp://127.0.0.1", "https://user:pw@example.com", "https://example.com/?x=1", "https://", "://x",
		"http://user:s3cr3t@10.0.0.5", "https://user:s3cr3t@exa mple.com", "ftp://user:s3cr3t@host"} {
		_, err := rolesanywhere.ParseEndpoint(bad)
		if err == nil {
			t.Errorf("%s accepted", bad)
		} else if strings.Contains(err.Error(), "s3cr3t") {
			t.Errorf("error shows the URL's password: %v", err)
		}
	}
	// Like AWS's helper, a host name alone means https.
	u, err := rolesanywhere.ParseEndpoint("rolesanywhere.us-east-1.amazonaws.com")
	if err != nil || u.String() != "https://rolesanywhere.us-east-1.amazonaws.com" {
		t.Errorf("scheme-less endpoint: %v, %v", u, err)
	}
	if _, err := rolesanywhere.ParseEndpoint("http://192.168.1.10:8443"); !errors.Is(err, rolesanywhere.ErrInsecureEndpoint) {
		t.Errorf("plain http to a LAN address: got %v", err)
	}
}

func TestValidators(t *testing.T) {
	for region, want := range map[string]bool{
		"us-east-1": true, "us-gov-west-1": true, "cn-north-1": true, "ap-southeast-4": true, "us-isob-east-1": true, "eu-central-2": true,
		"": false, "us": false, "us-east": false, "US-EAST-1": false, "us-east-1.evil.com": false, "us-east-1/x": false, "u-east-1": false, "us--1": false, "us-east-1a": false,
	} {
		if got := rolesanywhere.ValidRegion(region); got != want {
			t.Errorf("ValidRegion(%q) = %v", region, got)
		}
	}
	for name, want := range map[string]bool{
		"job-42": true, "a_b+c=d,e.f@g": true, "ab": true, strings.Repeat("x", 64): true,
		"a": false, "": false, "job 42": false, "job/42": false, strings.Repeat("x", 65): false, "é1": false,
	} {
		if got := rolesanywhere.ValidSessionName(name); got != want {
			t.Errorf("ValidSessionName(%q) = %v", name, got)
		}
	}
}

func TestNameValidators(t *testing.T) {
	for _, tt := range []struct {
		name  string
		valid func(string) bool
		ok    []string
		bad   []string
	}{
		{"ValidAccount", rolesanywhere.ValidAccount, []string{"111122223333", "000000000001"}, []string{"", "11112222333", "1111222233334", "11112222333a"}},
		{"ValidRoleName", rolesanywhere.ValidRoleName, []string{"r", "ci-deployer", "a_b+c=d,e.f@g", strings.Repeat("x", 64)}, []string{"", "ci deployer", "a/b", strings.Repeat("x", 65)}},
		{"ValidResourceName", rolesanywhere.ValidResourceName, []string{"gitlab-runner-ca", "My CA_1", strings.Repeat("x", 255)}, []string{"", "ca.example", "a/b", strings.Repeat("x", 256)}},
	} {
		for _, s := range tt.ok {
			if !tt.valid(s) {
				t.Errorf("%s(%q) = false, want true", tt.name, s)
			}
		}
		for _, s := range tt.bad {
			if tt.valid(s) {
				t.Errorf("%s(%q) = true, want false", tt.name, s)
			}
		}
	}
}
