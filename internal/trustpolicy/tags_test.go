package trustpolicy

import (
	"crypto/x509/pkix"
	"encoding/asn1"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/keyless-dev/keyless/internal/pki/pkitest"
)

// TestPrincipalTags checks the default attribute mapping: every subject
// and issuer RDN, and the first DNS, URI and directory-name SAN.
func TestPrincipalTags(t *testing.T) {
	ca := pkitest.NewRoot(t, "tags-root")
	dirName, err := asn1.Marshal(pkix.Name{CommonName: "svc", Organization: []string{"ops"}}.ToRDNSequence())
	if err != nil {
		t.Fatal(err)
	}
	uri, err := asn1.Marshal(asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 6, Bytes: []byte("spiffe://ci/runner")})
	if err != nil {
		t.Fatal(err)
	}
	gn := []asn1.RawValue{
		{Class: asn1.ClassContextSpecific, Tag: 2, Bytes: []byte("runner.example")},
		{Class: asn1.ClassContextSpecific, Tag: 2, Bytes: []byte("second.example")},
		{FullBytes: uri},
		{Class: asn1.ClassContextSpecific, Tag: 4, IsCompound: true, Bytes: dirName},
	}
	san, err := asn1.Marshal(gn)
	if err != nil {
		t.Fatal(err)
	}
	leaf := ca.Leaf(t, pkitest.LeafOptions{
		CommonName:      "gitlab-runner",
		ExtraExtensions: []pkix.Extension{{Id: oidSubjectAltName, Value: san}},
	})
	tags, bad := PrincipalTags(leaf)
	if len(bad) > 0 {
		t.Fatalf("refused: %v", bad)
	}
	want := map[string]string{
		"x509Subject/CN":  "gitlab-runner",
		"x509Subject/O":   "keyless tests",
		"x509Issuer/CN":   "tags-root",
		"x509Issuer/O":    "keyless tests",
		"x509SAN/DNS":     "runner.example",
		"x509SAN/URI":     "spiffe://ci/runner",
		"x509SAN/Name/CN": "svc",
		"x509SAN/Name/O":  "ops",
	}
	if diff := cmp.Diff(want, tags); diff != "" {
		t.Errorf("tags (-want +got):\n%s", diff)
	}
}
