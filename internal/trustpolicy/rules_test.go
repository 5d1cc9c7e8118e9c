package trustpolicy_test

import (
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/keyless-dev/keyless/internal/iampolicy"
	"github.com/keyless-dev/keyless/internal/pki/pkitest"
	"github.com/keyless-dev/keyless/internal/trustpolicy"
)

// leafWithSubject issues a leaf whose subject is exactly rdns.
func leafWithSubject(t *testing.T, serial int64, rdns pkix.RDNSequence) *x509.Certificate {
	t.Helper()
	ca := pkitest.NewRoot(t, "rules-root")
	raw, err := asn1.Marshal(rdns)
	if err != nil {
		t.Fatal(err)
	}
	key := pkitest.Key(t, pkitest.P256)
	der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
		SerialNumber: big.NewInt(serial), RawSubject: raw, DNSNames: []string{"runner.example"},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, BasicConstraintsValid: true,
	}, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func rdn(oid asn1.ObjectIdentifier, v string) pkix.RelativeDistinguishedNameSET {
	return pkix.RelativeDistinguishedNameSET{{Type: oid, Value: v}}
}

var (
	cnOID = asn1.ObjectIdentifier{2, 5, 4, 3}
	oOID  = asn1.ObjectIdentifier{2, 5, 4, 10}
)

// TestSourceIdentity: AWS's three forms, and none for the subjects
// CheckSubject refuses.
func TestSourceIdentity(t *testing.T) {
	cn := func(n int) string { return strings.Repeat("x", n) }
	for _, tt := range []struct {
		name    string
		subject pkix.RDNSequence
		want    string
		refused string
	}{
		{name: "10-character CN", subject: pkix.RDNSequence{rdn(cnOID, cn(10))}, want: "CN=" + cn(10)},
		{name: "61-character CN", subject: pkix.RDNSequence{rdn(cnOID, cn(61))}, want: "CN=" + cn(61)},
		{name: "62-character CN", subject: pkix.RDNSequence{rdn(cnOID, cn(62))}, want: cn(62)},
		{name: "63-character CN", subject: pkix.RDNSequence{rdn(cnOID, cn(63))}, want: cn(63)},
		{name: "64-character CN", subject: pkix.RDNSequence{rdn(cnOID, cn(64))}, want: cn(64)},
		{name: "no CN", subject: pkix.RDNSequence{rdn(oOID, "ci")}, want: "ID=2a"},
		{name: "first of two CNs", subject: pkix.RDNSequence{rdn(cnOID, "first"), rdn(cnOID, "second")}, want: "CN=first"},
		{name: "65-character CN", subject: pkix.RDNSequence{rdn(cnOID, cn(65))}, want: "", refused: "CN is 65 characters"},
		{name: "empty subject", subject: pkix.RDNSequence{}, want: "ID=2a", refused: "subject is empty"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			leaf := leafWithSubject(t, 42, tt.subject)
			if got := trustpolicy.SourceIdentity(leaf); got != tt.want {
				t.Errorf("SourceIdentity = %q, want %q", got, tt.want)
			}
			err := trustpolicy.CheckSubject(leaf)
			if tt.refused == "" && err != nil {
				t.Errorf("CheckSubject: %v", err)
			}
			if tt.refused != "" && (err == nil || !strings.Contains(err.Error(), tt.refused)) {
				t.Errorf("CheckSubject = %v, want an error containing %q", err, tt.refused)
			}
		})
	}
}

// TestEvaluateRefusesSubject: Evaluate (which keyless doctor uses too)
// refuses a leaf CheckSubject refuses, even under a policy that allows
// everyone.
func TestEvaluateRefusesSubject(t *testing.T) {
	p, err := iampolicy.ParseTrustPolicy([]byte(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow",
  "Principal":{"Service":"rolesanywhere.amazonaws.com"},"Action":["sts:AssumeRole","sts:TagSession","sts:SetSourceIdentity"]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	r := trustpolicy.Evaluate(p, trustpolicy.Session{Leaf: leafWithSubject(t, 1, nil), AnchorARN: anchor, Account: "111122223333", Now: time.Now()})
	if r == nil || r.Subject == nil || !strings.Contains(r.Error(), "subject is empty") {
		t.Errorf("Evaluate = %v, want the empty subject refused", r)
	}
}

// TestCheckTagsLimits: STS's session tag limits, each at and past its
// boundary.
func TestCheckTagsLimits(t *testing.T) {
	many := func(n int) map[string]string {
		m := map[string]string{}
		for i := range n {
			m[fmt.Sprintf("x509Subject/1.3.6.1.4.1.99999.%d", i)] = "v"
		}
		return m
	}
	key := func(n int) string { return "x509Subject/" + strings.Repeat("k", n-len("x509Subject/")) }
	for _, tt := range []struct {
		name string
		tags map[string]string
		bad  string
	}{
		{name: "50 tags", tags: many(50)},
		{name: "51 tags", tags: many(51), bad: "maps to 51 session tags; STS takes at most 50"},
		{name: "128-character key", tags: map[string]string{key(128): "v"}},
		{name: "129-character key", tags: map[string]string{key(129): "v"}, bad: "not a valid session tag key"},
		{name: "key with a forbidden character", tags: map[string]string{"x509Subject/a*b": "v"}, bad: "not a valid session tag key"},
		{name: "256-character value", tags: map[string]string{"x509Subject/OU": strings.Repeat("v", 256)}},
		{name: "257-character value", tags: map[string]string{"x509Subject/OU": strings.Repeat("v", 257)}, bad: "x509Subject/OU"},
		{name: "empty value", tags: map[string]string{"x509Subject/OU": ""}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, bad := trustpolicy.CheckTags(tt.tags)
			switch {
			case tt.bad == "" && len(bad) > 0:
				t.Errorf("refused: %v", bad)
			case tt.bad != "" && (len(bad) == 0 || !strings.Contains(strings.Join(bad, "; "), tt.bad)):
				t.Errorf("got %v, want a refusal containing %q", bad, tt.bad)
			}
		})
	}
}

// TestEvaluateRefusesUnnamedAttributeReads: a trust policy whose decision
// reads the tag of an RDN type AWS documents no name for is refused when
// the certificate carries that attribute, whichever way the policy would
// have decided, and in any spelling (condition key case, a policy
// variable); a certificate without the attribute is decided as usual.
func TestEvaluateRefusesUnnamedAttributeReads(t *testing.T) {
	private := asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 99999, 7}
	with := leafWithSubject(t, 0x71, pkix.RDNSequence{rdn(cnOID, "gitlab-runner"), rdn(private, "blue")})
	without := leafWithSubject(t, 0x72, pkix.RDNSequence{rdn(cnOID, "gitlab-runner")})
	const allow = `{"Effect":"Allow","Principal":{"Service":"rolesanywhere.amazonaws.com"},"Action":["sts:AssumeRole","sts:TagSession","sts:SetSourceIdentity"]`
	for _, tt := range []struct {
		name, policy string
		leaf         *x509.Certificate
		refused      bool
	}{
		{"allow on the attribute", `{"Version":"2012-10-17","Statement":[` + allow + `,"Condition":{"StringEquals":{"aws:PrincipalTag/x509Subject/1.3.6.1.4.1.99999.7":"blue"}}}]}`, with, true},
		{"deny on the attribute, other case", `{"Version":"2012-10-17","Statement":[` + allow + `},{"Effect":"Deny","Principal":"*","Action":"sts:*","Condition":{"StringEquals":{"AWS:principaltag/X509SUBJECT/1.3.6.1.4.1.99999.7":"red"}}}]}`, with, true},
		{"policy variable", `{"Version":"2012-10-17","Statement":[` + allow + `,"Condition":{"StringEquals":{"aws:PrincipalTag/x509Subject/CN":"${aws:PrincipalTag/x509Subject/1.3.6.1.4.1.99999.7}"}}}]}`, with, true},
		{"long s in the key", `{"Version":"2012-10-17","Statement":[` + allow + `,"Condition":{"StringEquals":{"aws:PrincipalTag/x509ſubject/1.3.6.1.4.1.99999.7":"blue"}}}]}`, with, true},
		{"a statement for another principal", `{"Version":"2012-10-17","Statement":[` + allow + `},{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"sts:AssumeRole","Condition":{"StringEquals":{"aws:PrincipalTag/x509Subject/1.3.6.1.4.1.99999.7":"x"}}}]}`, with, false},
		{"certificate without the attribute", `{"Version":"2012-10-17","Statement":[` + allow + `},{"Effect":"Deny","Principal":"*","Action":"sts:*","Condition":{"StringEquals":{"aws:PrincipalTag/x509Subject/1.3.6.1.4.1.99999.7":"red"}}}]}`, without, false},
		{"policy that reads only named attributes", `{"Version":"2012-10-17","Statement":[` + allow + `,"Condition":{"StringEquals":{"aws:PrincipalTag/x509Subject/CN":"gitlab-runner"}}}]}`, with, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p, err := iampolicy.ParseTrustPolicy([]byte(tt.policy))
			if err != nil {
				t.Fatal(err)
			}
			r := trustpolicy.Evaluate(p, trustpolicy.Session{Leaf: tt.leaf, AnchorARN: "arn:aws:rolesanywhere:us-east-1:111122223333:trust-anchor/x", Account: "111122223333", Now: time.Now()})
			switch {
			case tt.refused && (r == nil || !strings.Contains(r.Error(), "a certificate attribute whose type has no name AWS documents")):
				t.Fatalf("got %v, want the refusal of a decision on an unnamed attribute", r)
			case !tt.refused && r != nil:
				t.Fatalf("refused: %v", r)
			}
		})
	}
}

// TestEvaluateRefusesRequestTagReads: aws:RequestTag/* and aws:TagKeys,
// which AWS does not document for Roles Anywhere, cannot decide a
// session in either direction, in any spelling evaluation matches; a
// statement for other principals (people who tag their sessions) may
// read them.
func TestEvaluateRefusesRequestTagReads(t *testing.T) {
	leaf := leafWithSubject(t, 0x73, pkix.RDNSequence{rdn(cnOID, "gitlab-runner")})
	const allow = `{"Effect":"Allow","Principal":{"Service":"rolesanywhere.amazonaws.com"},"Action":["sts:AssumeRole","sts:TagSession","sts:SetSourceIdentity"]`
	for _, tt := range []struct{ name, policy, key string }{
		{"allow on a request tag", `{"Version":"2012-10-17","Statement":[` + allow + `,"Condition":{"StringEquals":{"aws:RequestTag/x509Subject/CN":"gitlab-runner"}}}]}`, "aws:RequestTag/x509Subject/CN"},
		{"long s in the prefix", `{"Version":"2012-10-17","Statement":[` + allow + `,"Condition":{"Null":{"aws:RequeſtTag/x":"false"}}}]}`, "aws:RequeſtTag/x"},
		{"deny on tag keys", `{"Version":"2012-10-17","Statement":[` + allow + `},{"Effect":"Deny","Principal":"*","Action":"sts:TagSession","Condition":{"ForAnyValue:StringEquals":{"aws:TagKeys":"x509Subject/OU"}}}]}`, "aws:TagKeys"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p, err := iampolicy.ParseTrustPolicy([]byte(tt.policy))
			if err != nil {
				t.Fatal(err)
			}
			r := trustpolicy.Evaluate(p, trustpolicy.Session{Leaf: leaf, AnchorARN: "arn:aws:rolesanywhere:us-east-1:111122223333:trust-anchor/x", Account: "111122223333", Now: time.Now()})
			if r == nil || !strings.Contains(r.Error(), "the trust policy reads "+tt.key+", which AWS does not document for Roles Anywhere sessions") {
				t.Fatalf("got %v, want the refusal of a decision on %s", r, tt.key)
			}
		})
	}
}

// TestRequestTagsOfOtherPrincipals: a role that people also assume, with
// aws:RequestTag conditions on their statement (AWS's session-tag
// guidance), still serves Roles Anywhere: that statement cannot decide
// a Roles Anywhere session.
func TestRequestTagsOfOtherPrincipals(t *testing.T) {
	leaf := leafWithSubject(t, 0x74, pkix.RDNSequence{rdn(cnOID, "gitlab-runner")})
	p, err := iampolicy.ParseTrustPolicy([]byte(`{"Version":"2012-10-17","Statement":[
	  {"Effect":"Allow","Principal":{"Service":"rolesanywhere.amazonaws.com"},"Action":["sts:AssumeRole","sts:TagSession","sts:SetSourceIdentity"]},
	  {"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":["sts:AssumeRole","sts:TagSession"],
	   "Condition":{"StringEquals":{"aws:RequestTag/team":"x"},"ForAllValues:StringEquals":{"aws:TagKeys":["team"]}}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if r := trustpolicy.Evaluate(p, trustpolicy.Session{Leaf: leaf, AnchorARN: "arn:aws:rolesanywhere:us-east-1:111122223333:trust-anchor/x", Account: "111122223333", Now: time.Now()}); r != nil {
		t.Fatalf("refused: %v", r)
	}
}
