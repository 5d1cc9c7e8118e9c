package emulator_test

// Tests of the rules issue 15 brought to CreateSession and STS: each one
// breaks exactly one of AWS's rules, through the emulator over HTTP, and
// expects AWS's status, error code and message.

import (
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"math/big"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/keyless-dev/keyless/internal/pki/pkitest"
	"github.com/keyless-dev/keyless/internal/rolesanywhere"
	"github.com/keyless-dev/keyless/internal/sigv4"
	"github.com/keyless-dev/keyless/internal/testkit"
)

// openPolicy trusts Roles Anywhere for every certificate of the anchor,
// so that leaves with any subject reach the rules after the trust policy.
const openPolicy = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow",
  "Principal":{"Service":"rolesanywhere.amazonaws.com"},
  "Action":["sts:AssumeRole","sts:TagSession","sts:SetSourceIdentity"]}]}`

// subjectLeaf issues, from the test intermediate, a leaf whose subject
// is exactly names (none: an empty subject, which Go marks by making the
// subjectAltName critical) and whose SAN is one DNS name.
func (e *env) subjectLeaf(serial int64, names ...pkix.AttributeTypeAndValue) *x509.Certificate {
	e.t.Helper()
	key := pkitest.Key(e.t, pkitest.P256)
	var rdns pkix.RDNSequence
	for _, n := range names {
		rdns = append(rdns, pkix.RelativeDistinguishedNameSET{n})
	}
	raw, err := asn1.Marshal(rdns)
	if err != nil {
		e.t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(serial),
		RawSubject:            raw,
		NotBefore:             e.now().Add(-time.Minute),
		NotAfter:              e.now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		DNSNames:              []string{"runner.example"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, e.inter.Cert, key.Public(), e.inter.Key)
	if err != nil {
		e.t.Fatalf("creating leaf: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		e.t.Fatal(err)
	}
	return cert
}

func attr(oid asn1.ObjectIdentifier, value string) pkix.AttributeTypeAndValue {
	return pkix.AttributeTypeAndValue{Type: oid, Value: value}
}

var (
	oidCN = asn1.ObjectIdentifier{2, 5, 4, 3}
	oidO  = asn1.ObjectIdentifier{2, 5, 4, 10}
	oidOU = asn1.ObjectIdentifier{2, 5, 4, 11}
)

// privateOID is an attribute type no mapping names: its tag key is
// "x509Subject/<dotted OID>".
func privateOID(n int) asn1.ObjectIdentifier {
	return asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 99999, n}
}

// oidForKey returns a private OID whose session tag key,
// "x509Subject/<dotted OID>", is exactly n characters (n >= 32).
func oidForKey(n int) asn1.ObjectIdentifier {
	oid := asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 99999}
	length := len("x509Subject/") + len(oid.String())
	if (n-length)%2 == 1 {
		oid, length = append(oid, 11), length+3
	}
	for length < n {
		oid, length = append(oid, 1), length+2
	}
	return oid
}

// manyAttributes is a subject of CN gitlab-runner and count-1 private
// attributes: count session tags from the subject.
func manyAttributes(count int) []pkix.AttributeTypeAndValue {
	names := []pkix.AttributeTypeAndValue{attr(oidCN, "gitlab-runner")}
	for i := 1; i < count; i++ {
		names = append(names, attr(privateOID(i), "v"))
	}
	return names
}

// TestSessionRulesRefuse breaks, once each, the rules of issue 15 that
// CreateSession applies, and expects AWS's answer.
func TestSessionRulesRefuse(t *testing.T) {
	const denied, untrusted = "AccessDeniedException", "Untrusted Signing Certificate"
	const tooLong = "Unable to assume role for arn:aws:iam::111122223333:role/ci-deployer. The requested DurationSeconds exceeds the MaxSessionDuration set for this role."
	const tagsFailed = "Unable to assume role for arn:aws:iam::111122223333:role/ci-deployer. Some attributes failed to be mapped into session tags."
	tests := []struct {
		name    string
		setup   setup
		call    func(e *env) call
		message string // AWS's message, before the emulator's explanation
		rule    string // in the explanation
	}{
		// Duration: min(request, profile) above the role's maximum.
		{name: "request 7200 against a 3600 role", setup: setup{profileDuration: 43200, roleMaxDuration: 3600},
			call:    func(e *env) call { return call{body: `{"durationSeconds":7200}`} },
			message: tooLong, rule: "the session would last 7200 seconds (the request's durationSeconds 7200), over role ci-deployer's maxSessionDuration 3600"},
		{name: "profile default above the role", setup: setup{profileDuration: 7200, roleMaxDuration: 3600},
			call:    func(e *env) call { return call{body: "{}"} },
			message: tooLong, rule: "(profile homelab-profile's durationSeconds 7200)"},
		{name: "request 43200 against a 7200 role", setup: setup{profileDuration: 43200, roleMaxDuration: 7200},
			call:    func(e *env) call { return call{body: `{"durationSeconds":43200}`} },
			message: tooLong, rule: "maxSessionDuration 7200"},
		// X-Amz-X509-Chain: at most 5 certificates.
		{name: "6 chain certificates", call: func(e *env) call {
			return call{chain: []*x509.Certificate{e.inter.Cert, e.inter.Cert, e.inter.Cert, e.inter.Cert, e.inter.Cert, e.root.Cert}}
		}, message: untrusted, rule: "X-Amz-X509-Chain holds 6 certificates; AWS takes at most 5"},
		// The leaf's subject.
		{name: "empty subject", setup: setup{policy: openPolicy},
			call:    func(e *env) call { return call{leaf: e.subjectLeaf(77)} },
			message: untrusted, rule: "the certificate's subject is empty"},
		{name: "CN of 65 characters", setup: setup{policy: openPolicy},
			call:    func(e *env) call { return call{leaf: e.subjectLeaf(78, attr(oidCN, strings.Repeat("c", 65)))} },
			message: untrusted, rule: "the subject's CN is 65 characters; a CN has at most 64"},
		// Session tags: 50 at most, keys 128 characters, values 256.
		{name: "51 session tags", setup: setup{policy: openPolicy}, call: func(e *env) call {
			// The issuer's attributes and the DNS SAN are tags too.
			extra := len(e.inter.Cert.Subject.Names) + 1
			return call{leaf: e.subjectLeaf(79, manyAttributes(51-extra)...)}
		}, message: tagsFailed, rule: "the certificate maps to 51 session tags; STS takes at most 50"},
		{name: "tag key of 129 characters", setup: setup{policy: openPolicy}, call: func(e *env) call {
			return call{leaf: e.subjectLeaf(80, attr(oidCN, "gitlab-runner"), attr(oidForKey(129), "v"))}
		}, message: tagsFailed, rule: "is not a valid session tag key (1 to 128"},
		{name: "tag value of 257 characters", setup: setup{policy: openPolicy}, call: func(e *env) call {
			return call{leaf: e.subjectLeaf(81, attr(oidCN, "gitlab-runner"), attr(oidOU, strings.Repeat("u", 257)))}
		}, message: tagsFailed, rule: "x509Subject/OU"},
		// A trust policy that reads the tag of an RDN type AWS may not map.
		{name: "trust policy reads an unnamed attribute", setup: setup{policy: unnamedAttributePolicy}, call: func(e *env) call {
			return call{leaf: e.subjectLeaf(82, attr(oidCN, "gitlab-runner"), attr(privateOID(1), "blue"))}
		}, message: "Unable to assume role for arn:aws:iam::111122223333:role/ci-deployer.",
			rule: "the trust policy reads aws:PrincipalTag/x509Subject/1.3.6.1.4.1.99999.1, a certificate attribute whose type has no name AWS documents"},
		{name: "trust policy reads a request tag", setup: setup{policy: `{"Version":"2012-10-17","Statement":[{"Effect":"Allow",
  "Principal":{"Service":"rolesanywhere.amazonaws.com"},
  "Action":["sts:AssumeRole","sts:TagSession","sts:SetSourceIdentity"],
  "Condition":{"StringEquals":{"aws:RequestTag/x509Subject/CN":"gitlab-runner"}}}]}`},
			call:    func(e *env) call { return call{} },
			message: "Unable to assume role for arn:aws:iam::111122223333:role/ci-deployer.",
			rule:    "the trust policy reads aws:RequestTag/x509Subject/CN, which AWS does not document for Roles Anywhere sessions"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, tt.setup)
			a := e.createSession(tt.call(e))
			if a.status != http.StatusForbidden || a.code != denied {
				t.Fatalf("got %d %s (%s), want 403 %s", a.status, a.code, a.message, denied)
			}
			if !strings.HasPrefix(a.message, tt.message+" (keyless emulator: ") || !strings.Contains(a.message, tt.rule) {
				t.Errorf("message %q, want %q and an explanation containing %q", a.message, tt.message, tt.rule)
			}
			if n := e.emu.ActiveCredentials(); n != 0 {
				t.Errorf("a refused request left %d credentials", n)
			}
		})
	}
}

// unnamedAttributePolicy denies certificates whose private attribute
// 1.3.6.1.4.1.99999.1 is "red": a decision AWS's mapping of "all
// recognizable RDNs" leaves open, so the emulator refuses it whenever
// the certificate carries that attribute.
const unnamedAttributePolicy = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow",
  "Principal":{"Service":"rolesanywhere.amazonaws.com"},
  "Action":["sts:AssumeRole","sts:TagSession","sts:SetSourceIdentity"]},
  {"Effect":"Deny","Principal":"*","Action":"sts:*",
   "Condition":{"StringEquals":{"aws:PrincipalTag/x509Subject/1.3.6.1.4.1.99999.1":"red"}}}]}`

// TestSessionRulesAccept: the valid side of each rule's boundary gets a
// session, with AWS's duration and source identity.
func TestSessionRulesAccept(t *testing.T) {
	cn := func(n int) string { return strings.Repeat("r", n) }
	tests := []struct {
		name           string
		setup          setup
		call           func(e *env) call
		wantDuration   time.Duration
		sourceIdentity string
		sessionSuffix  string
	}{
		{name: "request at the role's maximum", setup: setup{profileDuration: 43200, roleMaxDuration: 3600},
			call: func(e *env) call { return call{body: `{"durationSeconds":3600}`} }, wantDuration: time.Hour, sourceIdentity: "CN=gitlab-runner"},
		{name: "profile below the role, request above both", setup: setup{profileDuration: 900, roleMaxDuration: 3600},
			call: func(e *env) call { return call{body: `{"durationSeconds":43200}`} }, wantDuration: 15 * time.Minute, sourceIdentity: "CN=gitlab-runner"},
		{name: "5 chain certificates", call: func(e *env) call {
			return call{chain: []*x509.Certificate{e.inter.Cert, e.inter.Cert, e.inter.Cert, e.inter.Cert, e.root.Cert}}
		}, wantDuration: time.Hour, sourceIdentity: "CN=gitlab-runner"},
		// Source identity: CN=<cn> up to 61, <cn> for 62-64, ID=<hex serial> without a CN.
		{name: "CN of 10 characters", setup: setup{policy: openPolicy},
			call:         func(e *env) call { return call{leaf: e.subjectLeaf(0x10, attr(oidCN, cn(10)))} },
			wantDuration: time.Hour, sourceIdentity: "CN=" + cn(10)},
		{name: "CN of 61 characters", setup: setup{policy: openPolicy},
			call:         func(e *env) call { return call{leaf: e.subjectLeaf(0x61, attr(oidCN, cn(61)))} },
			wantDuration: time.Hour, sourceIdentity: "CN=" + cn(61)},
		{name: "CN of 62 characters", setup: setup{policy: openPolicy},
			call:         func(e *env) call { return call{leaf: e.subjectLeaf(0x62, attr(oidCN, cn(62)))} },
			wantDuration: time.Hour, sourceIdentity: cn(62)},
		{name: "CN of 63 characters", setup: setup{policy: openPolicy},
			call:         func(e *env) call { return call{leaf: e.subjectLeaf(0x63, attr(oidCN, cn(63)))} },
			wantDuration: time.Hour, sourceIdentity: cn(63)},
		{name: "CN of 64 characters", setup: setup{policy: openPolicy},
			call:         func(e *env) call { return call{leaf: e.subjectLeaf(0x64, attr(oidCN, cn(64)))} },
			wantDuration: time.Hour, sourceIdentity: cn(64)},
		{name: "no CN", setup: setup{policy: openPolicy},
			call:         func(e *env) call { return call{leaf: e.subjectLeaf(0xABCDEF12, attr(oidO, "ci"))} },
			wantDuration: time.Hour, sourceIdentity: "ID=abcdef12"},
		// Session tags at the limits.
		{name: "50 session tags", setup: setup{policy: openPolicy}, call: func(e *env) call {
			extra := len(e.inter.Cert.Subject.Names) + 1
			return call{leaf: e.subjectLeaf(0x50, manyAttributes(50-extra)...)}
		}, wantDuration: time.Hour, sourceIdentity: "CN=gitlab-runner"},
		{name: "tag key of 128 characters", setup: setup{policy: openPolicy}, call: func(e *env) call {
			return call{leaf: e.subjectLeaf(0x128, attr(oidCN, "gitlab-runner"), attr(oidForKey(128), "v"))}
		}, wantDuration: time.Hour, sourceIdentity: "CN=gitlab-runner"},
		{name: "tag value of 256 characters", setup: setup{policy: openPolicy}, call: func(e *env) call {
			return call{leaf: e.subjectLeaf(0x256, attr(oidCN, "gitlab-runner"), attr(oidOU, strings.Repeat("u", 256)))}
		}, wantDuration: time.Hour, sourceIdentity: "CN=gitlab-runner"},
		// A policy that reads an unnamed attribute decides as usual for a
		// certificate without it: the tag is absent on AWS too.
		{name: "trust policy reads an unnamed attribute the certificate lacks", setup: setup{policy: unnamedAttributePolicy},
			call:         func(e *env) call { return call{leaf: e.subjectLeaf(0x82, attr(oidCN, "gitlab-runner"))} },
			wantDuration: time.Hour, sourceIdentity: "CN=gitlab-runner"},
		// The deprecated sessionName is ignored: no effect on the session
		// name, and no check of its own.
		{name: "sessionName without acceptRoleSessionName", call: func(e *env) call {
			return call{leaf: e.leaf(pkitest.LeafOptions{Serial: big.NewInt(0xFF01)}), body: `{"sessionName":"job-42"}`}
		}, wantDuration: time.Hour, sourceIdentity: "CN=gitlab-runner", sessionSuffix: "/ff01"},
		{name: "sessionName with acceptRoleSessionName", setup: setup{acceptSessionName: true}, call: func(e *env) call {
			return call{leaf: e.leaf(pkitest.LeafOptions{Serial: big.NewInt(0xFF02)}), body: `{"sessionName":"not a valid name"}`}
		}, wantDuration: time.Hour, sourceIdentity: "CN=gitlab-runner", sessionSuffix: "/ff02"},
		{name: "sessionName beside roleSessionName", setup: setup{acceptSessionName: true}, call: func(e *env) call {
			return call{body: `{"sessionName":"other","roleSessionName":"job-42"}`}
		}, wantDuration: time.Hour, sourceIdentity: "CN=gitlab-runner", sessionSuffix: "/job-42"},
		// requireInstanceProperties is no longer enforced.
		{name: "requireInstanceProperties without instanceProperties", setup: setup{requireProps: true},
			call: func(e *env) call { return call{} }, wantDuration: time.Hour, sourceIdentity: "CN=gitlab-runner"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, tt.setup)
			cs := e.issued(e.createSession(tt.call(e)), tt.wantDuration)
			if cs.SourceIdentity != tt.sourceIdentity {
				t.Errorf("sourceIdentity %q, want %q", cs.SourceIdentity, tt.sourceIdentity)
			}
			if len(cs.SourceIdentity) > 64 {
				t.Errorf("sourceIdentity of %d characters; STS takes at most 64", len(cs.SourceIdentity))
			}
			if tt.sessionSuffix != "" && !strings.HasSuffix(cs.AssumedRoleUser.Arn, tt.sessionSuffix) {
				t.Errorf("assumed role %s, want suffix %s", cs.AssumedRoleUser.Arn, tt.sessionSuffix)
			}
		})
	}
}

// TestSourceIdentityInTrustPolicy: the trust policy sees
// sts:SourceIdentity in the form the answer carries.
func TestSourceIdentityInTrustPolicy(t *testing.T) {
	long := strings.Repeat("r", 63)
	policy := strings.Replace(openPolicy, `"sts:SetSourceIdentity"]`,
		`"sts:SetSourceIdentity"],"Condition":{"StringEquals":{"sts:SourceIdentity":["`+long+`","ID=abc"]}}`, 1)
	e := newEnv(t, setup{policy: policy})
	for _, tt := range []struct {
		name string
		leaf *x509.Certificate
		want int
	}{
		{"63-character CN", e.subjectLeaf(1, attr(oidCN, long)), http.StatusCreated},
		{"no CN", e.subjectLeaf(0xabc, attr(oidO, "ci")), http.StatusCreated},
		{"short CN", e.subjectLeaf(2, attr(oidCN, "r")), http.StatusForbidden},
	} {
		if a := e.createSession(call{leaf: tt.leaf}); a.status != tt.want {
			t.Errorf("%s: got %d %s (%s), want %d", tt.name, a.status, a.code, a.message, tt.want)
		}
	}
}

// stsAt calls GetCallerIdentity with c, signed at date.
func (e *env) stsAt(c sigv4.Credentials, date time.Time) (int, string) {
	e.t.Helper()
	const body = "Action=GetCallerIdentity&Version=2011-06-15"
	req, err := http.NewRequest(http.MethodPost, e.srv.URL+"/", strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	if err := sigv4.SignHMAC(req, []byte(body), c, "us-east-1", "sts", date); err != nil {
		e.t.Fatal(err)
	}
	resp, out := testkit.Do(e.t, e.srv.Client(), req)
	return resp.StatusCode, string(out)
}

// TestSTSClockSkew: STS takes requests dated up to 15 minutes either
// way, and refuses others with AWS's two messages; CreateSession keeps
// its 5 minutes.
func TestSTSClockSkew(t *testing.T) {
	stamp := func(t time.Time) string { return t.UTC().Format(sigv4.TimeFormat) }
	for _, tt := range []struct {
		name   string
		offset time.Duration
		status int
		want   func(now time.Time) string
	}{
		{name: "10 minutes behind", offset: -10 * time.Minute, status: 200},
		{name: "10 minutes ahead", offset: 10 * time.Minute, status: 200},
		{name: "15 minutes behind", offset: -15 * time.Minute, status: 200},
		{name: "16 minutes behind", offset: -16 * time.Minute, status: 403, want: func(now time.Time) string {
			return fmt.Sprintf("<Code>SignatureDoesNotMatch</Code><Message>Signature expired: %s is now earlier than %s (%s - 15 min.)",
				stamp(now.Add(-16*time.Minute)), stamp(now.Add(-15*time.Minute)), stamp(now))
		}},
		{name: "16 minutes ahead", offset: 16 * time.Minute, status: 403, want: func(now time.Time) string {
			return fmt.Sprintf("<Code>SignatureDoesNotMatch</Code><Message>Signature not yet current: %s is still later than %s (%s + 15 min.)",
				stamp(now.Add(16*time.Minute)), stamp(now.Add(15*time.Minute)), stamp(now))
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, setup{})
			c := e.session(rolesanywhere.SessionInput{}).Credentials
			status, body := e.stsAt(c, e.now().Add(tt.offset))
			if status != tt.status {
				t.Fatalf("got %d %s, want %d", status, body, tt.status)
			}
			if tt.want != nil && !strings.Contains(body, tt.want(e.now())) {
				t.Errorf("body %s\nwant %s", body, tt.want(e.now()))
			}
		})
	}
	t.Run("CreateSession keeps 5 minutes", func(t *testing.T) {
		e := newEnv(t, setup{})
		if a := e.createSession(call{date: e.now().Add(-6 * time.Minute)}); a.status != http.StatusForbidden || !strings.HasPrefix(a.message, "Signature expired") {
			t.Errorf("got %d %s (%s), want 403 Signature expired", a.status, a.code, a.message)
		}
	})
	t.Run("IAM keeps 5 minutes", func(t *testing.T) {
		e := newEnv(t, setup{})
		data := url.Values{"Action": {"ListRoles"}, "Version": {"2010-05-08"}}.Encode()
		req, err := http.NewRequest(http.MethodPost, e.srv.URL+"/", strings.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
		date := e.now().Add(-6 * time.Minute)
		if err := sigv4.SignHMAC(req, []byte(data), sigv4.Credentials{AccessKeyID: operatorKeyID, SecretAccessKey: operatorSecret}, "us-east-1", "iam", date); err != nil {
			t.Fatal(err)
		}
		resp, body := testkit.Do(t, e.srv.Client(), req)
		want := fmt.Sprintf("Signature expired: %s is now earlier than %s (%s - 5 min.)", stamp(date), stamp(e.now().Add(-5*time.Minute)), stamp(e.now()))
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), want) {
			t.Errorf("got %d %s, want 403 with %q", resp.StatusCode, body, want)
		}
	})
}

// TestSTSExpiredToken: credentials past their expiration get 403
// ExpiredToken, AWS's answer.
func TestSTSExpiredToken(t *testing.T) {
	e := newEnv(t, setup{})
	c := e.session(rolesanywhere.SessionInput{}).Credentials
	if status, body := e.stsAt(c, e.now()); status != http.StatusOK {
		t.Fatalf("fresh credentials: %d %s", status, body)
	}
	e.advance(time.Hour)
	status, body := e.stsAt(c, e.now())
	const want = "<Type>Sender</Type><Code>ExpiredToken</Code><Message>The security token included in the request is expired"
	if status != http.StatusForbidden || !strings.Contains(body, want) {
		t.Errorf("got %d %s, want 403 containing %s", status, body, want)
	}
}
