package emulator_test

import (
	"crypto/x509"
	"fmt"
	"math/big"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/keyless-dev/keyless/internal/pki/pkitest"
	"github.com/keyless-dev/keyless/internal/rolesanywhere"
)

func TestCreateSession(t *testing.T) {
	e := newEnv(t, setup{})
	leaf := e.leaf(pkitest.LeafOptions{Serial: big.NewInt(0xFF00)})
	a := e.createSession(call{leaf: leaf})
	if a.status != http.StatusCreated {
		t.Fatalf("status %d %s: %s", a.status, a.code, a.message)
	}
	if len(a.session.CredentialSet) != 1 {
		t.Fatalf("credentialSet has %d entries", len(a.session.CredentialSet))
	}
	cs := a.session.CredentialSet[0]
	if want := "arn:aws:sts::111122223333:assumed-role/ci-deployer/ff00"; cs.AssumedRoleUser.Arn != want {
		t.Errorf("assumed role ARN = %s, want %s (session name = hex serial)", cs.AssumedRoleUser.Arn, want)
	}
	if !regexp.MustCompile(`^AROA[A-Z2-7]{17}:ff00$`).MatchString(cs.AssumedRoleUser.AssumedRoleID) {
		t.Errorf("assumedRoleId = %s", cs.AssumedRoleUser.AssumedRoleID)
	}
	if !regexp.MustCompile(`^ASIA[A-Z2-7]{16}$`).MatchString(cs.Credentials.AccessKeyID) {
		t.Errorf("accessKeyId = %s, want ASIA and 16 base32 characters", cs.Credentials.AccessKeyID)
	}
	if len(cs.Credentials.SecretAccessKey) != 40 || len(cs.Credentials.SessionToken) < 100 {
		t.Errorf("secret is %d characters, token %d", len(cs.Credentials.SecretAccessKey), len(cs.Credentials.SessionToken))
	}
	exp, err := time.Parse(time.RFC3339, cs.Credentials.Expiration)
	if err != nil || !exp.Equal(e.now().Add(time.Hour)) || !strings.HasSuffix(cs.Credentials.Expiration, "Z") {
		t.Errorf("expiration = %s (%v), want %s in UTC", cs.Credentials.Expiration, err, e.now().Add(time.Hour).UTC().Format(time.RFC3339))
	}
	if cs.RoleArn != e.out.Roles["ci-deployer"] || cs.SourceIdentity != "CN=gitlab-runner" || cs.PackedPolicySize != 0 {
		t.Errorf("roleArn %s, sourceIdentity %s, packedPolicySize %d", cs.RoleArn, cs.SourceIdentity, cs.PackedPolicySize)
	}
	if !regexp.MustCompile(`^arn:aws:rolesanywhere:us-east-1:111122223333:subject/[0-9a-f-]{36}$`).MatchString(a.session.SubjectArn) {
		t.Errorf("subjectArn = %s", a.session.SubjectArn)
	}

	// Fresh credentials every time; the subject stays the same.
	b := e.createSession(call{leaf: leaf})
	if b.status != http.StatusCreated {
		t.Fatalf("second call: %d %s", b.status, b.message)
	}
	if b.session.CredentialSet[0].Credentials.AccessKeyID == cs.Credentials.AccessKeyID ||
		b.session.CredentialSet[0].Credentials.SecretAccessKey == cs.Credentials.SecretAccessKey {
		t.Error("two sessions got the same credentials")
	}
	if b.session.SubjectArn != a.session.SubjectArn {
		t.Errorf("subject changed between sessions of one certificate: %s, %s", a.session.SubjectArn, b.session.SubjectArn)
	}
	if got := e.emu.ActiveCredentials(); got != 2 {
		t.Errorf("ActiveCredentials = %d, want 2", got)
	}
	for _, secret := range []string{cs.Credentials.SecretAccessKey, cs.Credentials.SessionToken} {
		if strings.Contains(e.logs.String(), secret) {
			t.Error("the log holds a secret")
		}
	}
}

func TestCreateSessionAccepts(t *testing.T) {
	tests := []struct {
		name         string
		setup        setup
		call         func(e *env) call
		wantDuration time.Duration
		wantSession  string // assumed-role ARN suffix
	}{
		{name: "ARNs in the JSON body", call: func(e *env) call { return call{inBody: true} }, wantDuration: time.Hour},
		{name: "empty body takes the profile duration", setup: setup{profileDuration: 1800},
			call: func(e *env) call { return call{body: "{}"} }, wantDuration: 30 * time.Minute},
		{name: "request below profile", setup: setup{profileDuration: 7200, roleMaxDuration: 7200},
			call: func(e *env) call { return call{body: `{"durationSeconds":900}`} }, wantDuration: 15 * time.Minute},
		{name: "request at the role maximum", setup: setup{profileDuration: 43200, roleMaxDuration: 7200},
			call: func(e *env) call { return call{body: `{"durationSeconds":7200}`} }, wantDuration: 2 * time.Hour},
		{name: "profile caps", setup: setup{profileDuration: 900, roleMaxDuration: 43200},
			call: func(e *env) call { return call{body: `{"durationSeconds":43200}`} }, wantDuration: 15 * time.Minute},
		{name: "accepted session name", setup: setup{acceptSessionName: true},
			call: func(e *env) call { return call{body: `{"roleSessionName":"job-42"}`} }, wantDuration: time.Hour, wantSession: "/job-42"},
		{name: "instance properties when required", setup: setup{requireProps: true},
			call: func(e *env) call { return call{body: `{"instanceProperties":{"host":"runner-1"}}`} }, wantDuration: time.Hour},
		{name: "RSA 2048 leaf", call: func(e *env) call {
			k := pkitest.Key(t, pkitest.RSA2048)
			return call{key: k, leaf: e.leaf(pkitest.LeafOptions{Key: k})}
		}, wantDuration: time.Hour},
		{name: "P-384 leaf", call: func(e *env) call {
			k := pkitest.Key(t, pkitest.P384)
			return call{key: k, leaf: e.leaf(pkitest.LeafOptions{Key: k})}
		}, wantDuration: time.Hour},
		{name: "bundle holds the intermediate, no chain sent", setup: setup{bundleIntermediate: true},
			call: func(e *env) call { return call{noChain: true} }, wantDuration: time.Hour},
		{name: "revocation of another serial", setup: setup{revoked: []*big.Int{big.NewInt(7)}},
			call: func(e *env) call { return call{} }, wantDuration: time.Hour},
		{name: "date 4 minutes behind", call: func(e *env) call { return call{date: e.now().Add(-4 * time.Minute)} }, wantDuration: time.Hour},
		{name: "keys match exactly, others are ignored", call: func(e *env) call {
			return call{body: `{"DurationSeconds":899,"RoleSessionName":"job-42","durationSeconds":3600,"future":{"x":1}}`}
		}, wantDuration: time.Hour},
		{name: "extra signed header", call: func(e *env) call {
			return call{beforeSign: func(r *http.Request) { r.Header.Set("Amz-Sdk-Request", "attempt=1; max=3") }}
		}, wantDuration: time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, tt.setup)
			cs := e.issued(e.createSession(tt.call(e)), tt.wantDuration)
			if tt.wantSession != "" && !strings.HasSuffix(cs.AssumedRoleUser.Arn, tt.wantSession) {
				t.Errorf("assumed role %s, want suffix %s", cs.AssumedRoleUser.Arn, tt.wantSession)
			}
		})
	}
}

// issued checks that a is a 201 with credentials lasting want, and
// returns its credential set.
func (e *env) issued(a answer, want time.Duration) rolesanywhere.CredentialSet {
	t := e.t
	t.Helper()
	if a.status != http.StatusCreated {
		t.Fatalf("status %d %s: %s", a.status, a.code, a.message)
	}
	cs := a.session.CredentialSet[0]
	exp, _ := time.Parse(time.RFC3339, cs.Credentials.Expiration)
	if got := exp.Sub(e.now()); got != want {
		t.Errorf("lifetime %s, want %s", got, want)
	}
	return cs
}

// TestCreateSessionRefuses breaks each rule AWS applies, once, and expects
// AWS's status and error code and a message naming the rule.
func TestCreateSessionRefuses(t *testing.T) {
	const denied, invalid, notFound = "AccessDeniedException", "ValidationException", "ResourceNotFoundException"
	tests := []struct {
		name   string
		setup  setup
		call   func(e *env) call
		status int
		code   string
		want   string // substring of the message
	}{
		{name: "tampered signature", call: func(e *env) call {
			return call{afterSign: func(r *http.Request) {
				a := r.Header.Get("Authorization")
				i := strings.LastIndex(a, "=") + 1
				flip := "0"
				if a[i] == '0' {
					flip = "1"
				}
				r.Header.Set("Authorization", a[:i]+flip+a[i+1:])
			}}
		}, status: 403, code: denied, want: "Invalid signature"},
		{name: "tampered body", call: func(e *env) call {
			return call{afterSign: func(r *http.Request) {
				r.Body = http.NoBody
				r.ContentLength = 0
			}}
		}, status: 403, code: denied, want: "signature does not verify"},
		{name: "unsigned x-amz-x509", call: func(e *env) call {
			return call{afterSign: func(r *http.Request) {
				r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), ";x-amz-x509;", ";", 1))
			}}
		}, status: 403, code: denied, want: "x-amz-x509 is not in SignedHeaders"},
		{name: "date 6 minutes off", call: func(e *env) call { return call{date: e.now().Add(-6 * time.Minute)} },
			status: 403, code: denied, want: "Signature expired"},
		{name: "date 6 minutes ahead", call: func(e *env) call { return call{date: e.now().Add(6 * time.Minute)} },
			status: 403, code: denied, want: "outside the allowed clock skew"},
		{name: "wrong serial in Credential", call: func(e *env) call {
			return call{afterSign: func(r *http.Request) {
				a := r.Header.Get("Authorization")
				start := strings.Index(a, "Credential=") + len("Credential=")
				end := start + strings.Index(a[start:], "/")
				r.Header.Set("Authorization", a[:start]+"12345"+a[end:])
			}}
		}, status: 403, code: denied, want: "credential serial does not match"},
		{name: "expired leaf", call: func(e *env) call {
			return call{leaf: e.leaf(pkitest.LeafOptions{NotBefore: e.now().Add(-48 * time.Hour), NotAfter: e.now().Add(-time.Hour)})}
		}, status: 403, code: denied, want: "certificate has expired"},
		{name: "leaf not valid yet", call: func(e *env) call {
			return call{leaf: e.leaf(pkitest.LeafOptions{NotBefore: e.now().Add(time.Hour), NotAfter: e.now().Add(48 * time.Hour)})}
		}, status: 403, code: denied, want: "not valid yet"},
		{name: "CA=true leaf", call: func(e *env) call {
			return call{leaf: e.leaf(pkitest.LeafOptions{IsCA: true, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign})}
		}, status: 403, code: denied, want: "basicConstraints CA=true"},
		{name: "no digitalSignature", call: func(e *env) call {
			return call{leaf: e.leaf(pkitest.LeafOptions{KeyUsage: x509.KeyUsageKeyEncipherment})}
		}, status: 403, code: denied, want: "digitalSignature"},
		{name: "SHA-1-signed leaf", call: func(e *env) call {
			rsaCA := pkitest.NewRootWithKey(t, "rsa-root", pkitest.Key(t, pkitest.RSA2048))
			return call{leaf: rsaCA.Leaf(t, pkitest.LeafOptions{SignatureAlgorithm: x509.SHA1WithRSA}), chain: []*x509.Certificate{rsaCA.Cert}}
		}, status: 403, code: denied, want: "SHA1-RSA; SHA-256 or stronger"},
		{name: "RSA 1024 leaf", call: func(e *env) call {
			k := pkitest.Key(t, pkitest.RSA1024)
			return call{key: k, leaf: e.leaf(pkitest.LeafOptions{Key: k})}
		}, status: 403, code: denied, want: "1024"},
		{name: "P-521 leaf", call: func(e *env) call {
			k := pkitest.Key(t, pkitest.P521)
			return call{key: k, leaf: e.leaf(pkitest.LeafOptions{Key: k})}
		}, status: 403, code: denied, want: "ECDSA P-521; Roles Anywhere accepts ECDSA P-256/P-384"},
		{name: "chain to another anchor", call: func(e *env) call {
			return call{leaf: e.other.Leaf(t, pkitest.LeafOptions{}), chain: []*x509.Certificate{e.other.Cert}}
		}, status: 403, code: denied, want: "chains to trust anchor other-ca, not to gitlab-runner-ca"},
		{name: "untrusted CA", call: func(e *env) call {
			stranger := pkitest.NewRoot(t, "stranger").Intermediate(t, "stranger-int")
			return call{leaf: stranger.Leaf(t, pkitest.LeafOptions{}), chain: []*x509.Certificate{stranger.Cert}}
		}, status: 403, code: denied, want: "Untrusted Signing Certificate"},
		{name: "missing intermediate", call: func(e *env) call { return call{noChain: true} },
			status: 403, code: denied, want: "neither in X-Amz-X509-Chain nor in trust anchor gitlab-runner-ca's bundle"},
		{name: "revoked serial", setup: setup{revoked: []*big.Int{big.NewInt(4242)}}, call: func(e *env) call {
			return call{leaf: e.leaf(pkitest.LeafOptions{Serial: big.NewInt(4242)})}
		}, status: 403, code: denied, want: "serial 4242 is revoked by CRL int of trust anchor gitlab-runner-ca"},
		{name: "disabled anchor", setup: setup{anchorDisabled: true}, call: func(e *env) call { return call{} },
			status: 403, code: denied, want: "Trust anchor is disabled"},
		{name: "disabled profile", setup: setup{profileDisabled: true}, call: func(e *env) call { return call{} },
			status: 403, code: denied, want: "Profile is disabled"},
		{name: "role not in profile", call: func(e *env) call { return call{role: e.out.Roles["not-in-profile"]} },
			status: 403, code: denied, want: "is not in profile homelab-profile"},
		{name: "unknown role", call: func(e *env) call { return call{role: "arn:aws:iam::111122223333:role/nobody"} },
			status: 403, code: denied, want: "is not in profile"},
		{name: "CN mismatch", call: func(e *env) call { return call{leaf: e.leaf(pkitest.LeafOptions{CommonName: "runner-2"})} },
			status: 403, code: denied, want: `condition StringEquals aws:PrincipalTag/x509Subject/CN: got "runner-2", want "gitlab-runner"`},
		{name: "SourceArn mismatch", setup: setup{policy: strings.Replace(referencePolicy, "${trustAnchors.gitlab-runner-ca.arn}", "${trustAnchors.other-ca.arn}", 1)},
			call: func(e *env) call { return call{} }, status: 403, code: denied, want: "aws:SourceArn"},
		{name: "Deny statement", setup: setup{policy: `{"Version":"2012-10-17","Statement":[
			{"Effect":"Allow","Principal":{"Service":"rolesanywhere.amazonaws.com"},"Action":["sts:AssumeRole","sts:TagSession","sts:SetSourceIdentity"]},
			{"Sid":"NoRunners","Effect":"Deny","Principal":"*","Action":"sts:*","Condition":{"StringLike":{"aws:PrincipalTag/x509Subject/CN":"gitlab-*"}}}]}`},
			call: func(e *env) call { return call{} }, status: 403, code: denied, want: "NoRunners"},
		{name: "TagSession not allowed", setup: setup{policy: `{"Version":"2012-10-17","Statement":[
			{"Effect":"Allow","Principal":{"Service":"rolesanywhere.amazonaws.com"},"Action":["sts:AssumeRole","sts:SetSourceIdentity"]}]}`},
			call: func(e *env) call { return call{} }, status: 403, code: denied, want: "sts:TagSession"},
		{name: "other service principal", setup: setup{policy: `{"Version":"2012-10-17","Statement":[
			{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:*"}]}`},
			call: func(e *env) call { return call{} }, status: 403, code: denied, want: "Unable to assume role"},
		{name: "duration 899", call: func(e *env) call { return call{body: `{"durationSeconds":899}`} },
			status: 400, code: invalid, want: "greater than or equal to 900"},
		{name: "duration 43201", call: func(e *env) call { return call{body: `{"durationSeconds":43201}`} },
			status: 400, code: invalid, want: "less than or equal to 43200"},
		{name: "unauthorized session name", call: func(e *env) call { return call{body: `{"roleSessionName":"job-42"}`} },
			status: 403, code: denied, want: "Not authorized to set roleSessionName."},
		{name: "invalid session name", setup: setup{acceptSessionName: true}, call: func(e *env) call { return call{body: `{"roleSessionName":"a b"}`} },
			status: 400, code: invalid, want: "roleSessionName"},
		{name: "malformed trust anchor ARN", call: func(e *env) call { return call{ta: "arn:aws:rolesanywhere:us-east-1:111122223333:profile/x"} },
			status: 400, code: invalid, want: "trustAnchorArn"},
		{name: "unknown trust anchor", call: func(e *env) call {
			return call{ta: "arn:aws:rolesanywhere:us-east-1:111122223333:trust-anchor/00000000-0000-4000-8000-000000000000"}
		}, status: 404, code: notFound, want: "Trust anchor not found"},
		{name: "unknown profile", call: func(e *env) call {
			return call{profile: "arn:aws:rolesanywhere:us-east-1:111122223333:profile/00000000-0000-4000-8000-000000000000"}
		}, status: 404, code: notFound, want: "Profile not found"},
		{name: "ARN missing", call: func(e *env) call {
			return call{beforeSign: func(r *http.Request) { r.URL.RawQuery = "" }}
		}, status: 400, code: invalid, want: "Value null at 'profileArn'"},
		{name: "malformed JSON", call: func(e *env) call { return call{body: `{"durationSeconds":`} },
			status: 400, code: "SerializationException", want: "not valid JSON"},
		{name: "duration not a number", call: func(e *env) call { return call{body: `{"durationSeconds":"3600"}`} },
			status: 400, code: "SerializationException", want: "durationSeconds"},
		{name: "scope date", call: func(e *env) call {
			return call{afterSign: func(r *http.Request) {
				a := r.Header.Get("Authorization")
				i := strings.Index(a, "/") + 1
				r.Header.Set("Authorization", a[:i]+"19990101"+a[i+8:])
			}}
		}, status: 403, code: denied, want: "Date in Credential scope does not match"},
		{name: "no Authorization", call: func(e *env) call {
			return call{afterSign: func(r *http.Request) { r.Header.Del("Authorization") }}
		}, status: 400, code: invalid, want: "no Authorization header"},
		{name: "region of another scope", call: func(e *env) call {
			return call{afterSign: func(r *http.Request) {
				r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), "/us-east-1/", "/eu-west-1/", 1))
			}}
		}, status: 403, code: denied, want: "scope region"},
		{name: "session tag value", call: func(e *env) call {
			return call{leaf: e.leaf(pkitest.LeafOptions{CommonName: "gitlab-runner", DNSNames: []string{"*.runners.example"}})}
		}, status: 403, code: denied, want: "x509SAN/DNS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, tt.setup)
			a := e.createSession(tt.call(e))
			if a.status != tt.status || a.code != tt.code {
				t.Fatalf("got %d %s (%s), want %d %s", a.status, a.code, a.message, tt.status, tt.code)
			}
			t.Logf("%d %s: %s", a.status, a.code, a.message)
			if !strings.Contains(a.message, tt.want) {
				t.Errorf("message %q does not contain %q", a.message, tt.want)
			}
			if !strings.Contains(e.logs.String(), "refused") {
				t.Errorf("no refusal in the log:\n%s", e.logs.String())
			}
			if n := e.emu.ActiveCredentials(); n != 0 {
				t.Errorf("a refused request left %d credentials", n)
			}
		})
	}
}

func TestCredentialStoreEvictsClosestToExpiry(t *testing.T) {
	e := newEnv(t, setup{profileDuration: 7200, roleMaxDuration: 7200, maxCredentials: 2})
	var keys []string
	for _, d := range []int{3600, 900, 7200} {
		a := e.createSession(call{body: fmt.Sprintf(`{"durationSeconds":%d}`, d)})
		if a.status != http.StatusCreated {
			t.Fatalf("%d %s", a.status, a.message)
		}
		keys = append(keys, a.session.CredentialSet[0].Credentials.AccessKeyID)
	}
	if n := e.emu.ActiveCredentials(); n != 2 {
		t.Fatalf("ActiveCredentials = %d, want the cap, 2", n)
	}
	if !strings.Contains(e.logs.String(), "credential store full") {
		t.Errorf("no warning about the full store:\n%s", e.logs.String())
	}
	// The 900-second credentials were closest to expiry: forgotten.
	for i, k := range keys {
		known := e.emu.Known(k)
		if known != (i != 1) {
			t.Errorf("credentials %d (%s): known %t", i, k, known)
		}
	}
}

func TestCredentialStoreIsBounded(t *testing.T) {
	e := newEnv(t, setup{})
	for range 3 {
		if a := e.createSession(call{body: `{"durationSeconds":900}`}); a.status != http.StatusCreated {
			t.Fatalf("%d %s", a.status, a.message)
		}
	}
	if n := e.emu.ActiveCredentials(); n != 3 {
		t.Fatalf("ActiveCredentials = %d, want 3", n)
	}
	// Expired credentials are kept for a grace period (so STS can say
	// ExpiredToken), then dropped.
	e.advance(15*time.Minute + time.Second)
	if n := e.emu.ActiveCredentials(); n != 3 {
		t.Errorf("just after expiry ActiveCredentials = %d, want 3", n)
	}
	e.advance(16 * time.Minute)
	if n := e.emu.ActiveCredentials(); n != 0 {
		t.Errorf("after the grace period ActiveCredentials = %d, want 0", n)
	}
}

// TestChainCacheHonoursExpiry: a chain that verified once is remembered,
// but not past the expiry of any certificate in it; here the intermediate
// expires (after 24 hours) while the leaf is still valid.
func TestChainCacheHonoursExpiry(t *testing.T) {
	e := newEnv(t, setup{})
	leaf := e.leaf(pkitest.LeafOptions{NotAfter: e.now().Add(72 * time.Hour)})
	for range 2 {
		if a := e.createSession(call{leaf: leaf}); a.status != http.StatusCreated {
			t.Fatalf("%d %s", a.status, a.message)
		}
	}
	e.advance(25 * time.Hour)
	a := e.createSession(call{leaf: leaf})
	if a.status != http.StatusForbidden || !strings.Contains(a.message, "Untrusted Signing Certificate") {
		t.Fatalf("with the intermediate expired: %d %s %s, want 403 Untrusted Signing Certificate", a.status, a.code, a.message)
	}
}
