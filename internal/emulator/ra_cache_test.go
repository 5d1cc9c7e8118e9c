package emulator_test

import (
	"strings"
	"testing"

	"github.com/keyless-dev/keyless/internal/pki"
	"github.com/keyless-dev/keyless/internal/pki/pkitest"
)

// TestChainCacheAfterBundleChange: after UpdateTrustAnchor replaces the
// bundle (say, to drop a compromised CA), a certificate that chained to
// the old bundle is refused, although its verified chain is cached.
func TestChainCacheAfterBundleChange(t *testing.T) {
	e := newEnv(t, setup{})
	key := pkitest.Key(t, pkitest.P256)
	leaf := e.leaf(pkitest.LeafOptions{Key: key})
	if a := e.createSession(call{key: key, leaf: leaf}); a.status != 201 {
		t.Fatalf("first session: %d %s", a.status, a.message)
	}
	arn := e.out.TrustAnchors["gitlab-runner-ca"]
	id := arn[strings.LastIndex(arn, "/")+1:]
	other := string(pki.EncodeCertificates(e.other.Cert))
	status, out := e.ra(operator, "PATCH", "/trustanchor/"+id, map[string]any{
		"source": map[string]any{"sourceType": "CERTIFICATE_BUNDLE", "sourceData": map[string]any{"x509CertificateData": other}}})
	if status != 200 {
		t.Fatalf("UpdateTrustAnchor: %d %v", status, out)
	}
	if a := e.createSession(call{key: key, leaf: leaf}); a.status != 403 || a.code != "AccessDeniedException" {
		t.Fatalf("after the bundle changed: %d %s %s, want 403 AccessDeniedException (a stale chain from the cache)", a.status, a.code, a.message)
	}
}

// TestConcurrentControlPlaneAndSessions runs control-plane changes
// beside CreateSession and reads, for the race detector: published
// versions must never be changed in place.
func TestConcurrentControlPlaneAndSessions(t *testing.T) {
	e := newEnv(t, setup{acceptSessionName: true})
	parn := e.out.Profiles["homelab-profile"]
	pid := parn[strings.LastIndex(parn, "/")+1:]
	aarn := e.out.TrustAnchors["gitlab-runner-ca"]
	aid := aarn[strings.LastIndex(aarn, "/")+1:]
	bundle := string(pki.EncodeCertificates(e.root.Cert))
	policy := strings.ReplaceAll(referencePolicy, "${trustAnchors.gitlab-runner-ca.arn}", aarn)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 20; i++ {
			e.ra(operator, "PUT", "/profiles/"+pid+"/mappings", map[string]any{"certificateField": "x509SAN", "mappingRules": []map[string]string{{"specifier": "DNS"}}})
			e.ra(operator, "PATCH", "/profile/"+pid, map[string]any{"durationSeconds": 1800 + i})
			e.ra(operator, "PATCH", "/trustanchor/"+aid, map[string]any{"source": map[string]any{"sourceType": "CERTIFICATE_BUNDLE", "sourceData": map[string]any{"x509CertificateData": bundle}}})
			e.ra(operator, "POST", "/TagResource", map[string]any{"resourceArn": parn, "tags": []map[string]string{{"key": "k", "value": "v"}}})
			e.ra(operator, "POST", "/UntagResource", map[string]any{"resourceArn": parn, "tagKeys": []string{"k"}})
			e.iam(operator, act("TagRole", "RoleName", "ci-deployer", "Tags.member.1.Key", "a", "Tags.member.1.Value", "b"))
			e.iam(operator, act("UpdateAssumeRolePolicy", "RoleName", "ci-deployer", "PolicyDocument", policy))
		}
	}()
	for {
		select {
		case <-done:
			return
		default:
		}
		e.createSession(call{})
		e.ra(operator, "GET", "/profiles", nil)
		e.ra(operator, "GET", "/subjects", nil)
		e.iam(operator, act("GetRole", "RoleName", "ci-deployer"))
		e.ra(operator, "GET", "/ListTagsForResource?resourceArn="+parn, nil)
	}
}

// TestCachedCertificateStillNeedsItsKey: once a certificate's parse and
// chain are cached, a request that sends it signed with another key is
// still refused: the signature is checked with the leaf's key on every
// request.
func TestCachedCertificateStillNeedsItsKey(t *testing.T) {
	e := newEnv(t, setup{})
	key := pkitest.Key(t, pkitest.P256)
	leaf := e.leaf(pkitest.LeafOptions{Key: key})
	for i := 0; i < 2; i++ {
		if a := e.createSession(call{key: key, leaf: leaf}); a.status != 201 {
			t.Fatalf("session %d: %d %s", i+1, a.status, a.message)
		}
	}
	thief := pkitest.Key(t, pkitest.P256+"#thief")
	if a := e.createSession(call{key: thief, leaf: leaf}); a.status != 403 || !strings.Contains(a.message, "Invalid signature") {
		t.Fatalf("cached certificate signed with another key: %d %s %s, want 403 Invalid signature", a.status, a.code, a.message)
	}
}
