package emulator

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/keyless-dev/keyless/internal/pki"
	"github.com/keyless-dev/keyless/internal/pki/pkitest"
	"github.com/keyless-dev/keyless/internal/rolesanywhere"
	"github.com/keyless-dev/keyless/internal/sigv4"
)

func FuzzParseSessionRequest(f *testing.F) {
	const ta = "arn:aws:rolesanywhere:us-east-1:111122223333:trust-anchor/3f7c1a0e-0000-4000-8000-000000000001"
	const pr = "arn:aws:rolesanywhere:us-east-1:111122223333:profile/3f7c1a0e-0000-4000-8000-000000000002"
	const role = "arn:aws:iam::111122223333:role/ci-deployer"
	f.Add("profileArn=arn%3Aaws%3Arolesanywhere%3Aus-east-1%3A111122223333%3Aprofile%2Fx&roleArn=r&trustAnchorArn=t", `{"durationSeconds":3600}`)
	f.Add("", `{"profileArn":"`+pr+`","roleArn":"`+role+`","trustAnchorArn":"`+ta+`","roleSessionName":"a-b","instanceProperties":{"k":"v"}}`)
	f.Add("a=%zz", `{"durationSeconds":"x"}`)
	f.Add("profileArn=a&profileArn=b", `{} {}`)
	f.Fuzz(func(t *testing.T, query, body string) {
		req, fail := parseSessionRequest(query, []byte(body))
		if (req == nil) == (fail == nil) {
			t.Fatalf("got request %v and error %v", req, fail)
		}
		if fail != nil {
			if fail.status < 400 || fail.status > 499 || fail.code == "" || fail.message == "" {
				t.Fatalf("refusal %+v is not a client error with a code and message", fail)
			}
			return
		}
		if _, err := rolesanywhere.ParseTrustAnchorARN(req.TrustAnchorARN); err != nil {
			t.Fatalf("accepted trust anchor ARN %q: %v", req.TrustAnchorARN, err)
		}
		if _, err := rolesanywhere.ParseProfileARN(req.ProfileARN); err != nil {
			t.Fatalf("accepted profile ARN %q: %v", req.ProfileARN, err)
		}
		if _, err := rolesanywhere.ParseRoleARN(req.RoleARN); err != nil {
			t.Fatalf("accepted role ARN %q: %v", req.RoleARN, err)
		}
		if d := req.DurationSeconds; d != nil && (*d < minRequestDuration || *d > maxRequestDuration) {
			t.Fatalf("accepted duration %d", *d)
		}
		if req.RoleSessionName != "" && !rolesanywhere.ValidSessionName(req.RoleSessionName) {
			t.Fatalf("accepted session name %q", req.RoleSessionName)
		}
	})
}

// fuzzEmulator is an emulator over a seed with one anchor, role and
// profile, for requests nobody can sign.
func fuzzEmulator(f *testing.F) *Emulator {
	pad := "      "
	ca := pad + strings.ReplaceAll(strings.TrimSpace(string(pki.EncodeCertificates(pkitest.NewRoot(f, "fuzz-root").Cert))), "\n", "\n"+pad)
	seed, err := ParseSeed([]byte(`account: "111122223333"
region: us-east-1
trustAnchors:
  - name: ta
    id: 3f7c1a0e-0000-4000-8000-000000000001
    certificateBundlePem: |
`+ca+`
roles:
  - name: r
    assumeRolePolicy: '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"rolesanywhere.amazonaws.com"},"Action":"sts:*"}]}'
profiles:
  - name: p
    id: 3f7c1a0e-0000-4000-8000-000000000002
    roles: [r]
`), SeedSource{Name: "fuzz.yaml"})
	if err != nil {
		f.Fatal(err)
	}
	now := time.Date(2026, 11, 26, 3, 0, 0, 0, time.UTC)
	e, err := New(Config{Seed: seed, Now: func() time.Time { return now }})
	if err != nil {
		f.Fatal(err)
	}
	return e
}

// FuzzHandler sends arbitrary CreateSession and STS requests through the
// whole handler: it must never panic, never fail with a 5xx, and never
// grant anything to a request no private key signed.
func FuzzHandler(f *testing.F) {
	e := fuzzEmulator(f)
	f.Add("/sessions", "profileArn=arn%3Aaws%3Arolesanywhere%3Aus-east-1%3A111122223333%3Aprofile%2F3f7c1a0e-0000-4000-8000-000000000002&roleArn=arn%3Aaws%3Aiam%3A%3A111122223333%3Arole%2Fr&trustAnchorArn=arn%3Aaws%3Arolesanywhere%3Aus-east-1%3A111122223333%3Atrust-anchor%2F3f7c1a0e-0000-4000-8000-000000000001",
		"AWS4-X509-ECDSA-SHA256 Credential=1/20261126/us-east-1/rolesanywhere/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-x509, Signature=3045", "MIIB", "20261126T030000Z", `{"durationSeconds":3600}`)
	f.Add("/", "", "AWS4-HMAC-SHA256 Credential=ASIAAAAAAAAAAAAAAAAA/20261126/us-east-1/sts/aws4_request, SignedHeaders=host;x-amz-date, Signature=00", "", "20261126T030000Z", "Action=GetCallerIdentity&Version=2011-06-15")
	f.Add("/health", "", "", "", "", "")
	f.Fuzz(func(t *testing.T, path, query, authz, x509, date, body string) {
		if !strings.HasPrefix(path, "/") || strings.ContainsAny(path+query, " \r\n#?") {
			return
		}
		if _, err := url.ParseRequestURI(path + "?" + query); err != nil {
			return
		}
		r := httptest.NewRequest(http.MethodPost, "http://127.0.0.1"+path+"?"+query, strings.NewReader(body))
		r.Header.Set("Authorization", authz)
		r.Header.Set("X-Amz-X509", x509)
		r.Header.Set("X-Amz-Date", date)
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		w := httptest.NewRecorder()
		e.ServeHTTP(w, r)
		if w.Code >= 500 {
			t.Fatalf("status %d: %s", w.Code, w.Body)
		}
		if path != "/health" && w.Code < 300 {
			t.Fatalf("unsigned request got %d: %s", w.Code, w.Body)
		}
	})
}

func FuzzParseSeed(f *testing.F) {
	f.Add([]byte("account: \"111122223333\"\nregion: us-east-1\ntrustAnchors:\n  - name: a\n    certificateBundlePem: x\n"))
	f.Add([]byte("roles:\n  - name: r\n    assumeRolePolicy: '{}'\nprofiles:\n  - roles: [r, r]\n"))
	f.Add([]byte("a: &x [*x]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseSeed(data, SeedSource{Name: "fuzz.yaml", Dir: t.TempDir()})
		if err == nil && ((len(s.TrustAnchors) == 0 && len(s.Operators) == 0) || s.Account == "") {
			t.Fatalf("accepted a seed without trust anchors, operators or account")
		}
	})
}

// FuzzControlPlane sends arbitrary control-plane requests signed with an
// operator's key: the emulator must never panic or answer 5xx, and what
// it accepts must survive its own state file (encoded, then loaded as a
// restart loads it), so that no call can make a state that a restart
// refuses.
func FuzzControlPlane(f *testing.F) {
	e := fuzzEmulator(f)
	op := sigv4.Credentials{AccessKeyID: "AKIAFUZZOPERATOR0000", SecretAccessKey: "fuzz-operator-secret-0000000000"}
	e.operators[op.AccessKeyID] = &Operator{Name: "fuzz", AccessKeyID: op.AccessKeyID, SecretAccessKey: op.SecretAccessKey}
	bundle, _ := json.Marshal(string(pki.EncodeCertificates(pkitest.NewRoot(f, "fuzz-cp-root").Cert)))
	f.Add(false, "POST", "/trustanchors", "", `{"name":"a","source":{"sourceType":"CERTIFICATE_BUNDLE","sourceData":{"x509CertificateData":`+string(bundle)+`}},"tags":[{"key":"k","value":"v"}]}`)
	f.Add(false, "POST", "/profiles", "", `{"name":"p","roleArns":["arn:aws:iam::111122223333:role/r"],"durationSeconds":900,"sessionPolicy":"{}"}`)
	f.Add(false, "PUT", "/profiles/3f7c1a0e-0000-4000-8000-000000000002/mappings", "", `{"certificateField":"x509SAN","mappingRules":[{"specifier":"Name/"}]}`)
	f.Add(false, "GET", "/trustanchors", "pageSize=1&nextToken=MQ", "")
	f.Add(false, "PATCH", "/trustanchor/3f7c1a0e-0000-4000-8000-000000000001", "", `{"name":"b"}`)
	f.Add(true, "POST", "/", "", "Action=CreateRole&Version=2010-05-08&RoleName=x&Path=%2Fa%2F&AssumeRolePolicyDocument=%7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%5B%7B%22Effect%22%3A%22Allow%22%2C%22Principal%22%3A%7B%22Service%22%3A%22rolesanywhere.amazonaws.com%22%7D%2C%22Action%22%3A%22sts%3AAssumeRole%22%7D%5D%7D&Tags.member.1.Key=a&Tags.member.1.Value=b")
	f.Add(true, "POST", "/", "", "Action=PutRolePolicy&Version=2010-05-08&RoleName=r&PolicyName=p&PolicyDocument=%7B%7D")
	f.Add(true, "POST", "/", "", "Action=ListRoles&Version=2010-05-08&MaxItems=1&Marker=eA")
	initial := e.st.snapshot()
	f.Fuzz(func(t *testing.T, iam bool, method, path, query, body string) {
		if !strings.HasPrefix(path, "/") || strings.ContainsAny(path+query+method, " \r\n#?") || method == "" {
			return
		}
		// Each input starts from the seed: state grown by earlier inputs
		// would make every later one slower.
		e.st.cur.Store(initial)
		if _, err := url.ParseRequestURI(path + "?" + query); err != nil {
			return
		}
		r, err := http.NewRequest(method, "http://127.0.0.1"+path+"?"+query, strings.NewReader(body))
		if err != nil {
			return
		}
		service := "rolesanywhere"
		if iam {
			service = "iam"
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		} else {
			r.Header.Set("Content-Type", "application/json")
		}
		if err := sigv4.SignHMAC(r, []byte(body), op, "us-east-1", service, e.now()); err != nil {
			return
		}
		w := httptest.NewRecorder()
		e.ServeHTTP(w, r)
		if w.Code >= 500 {
			t.Fatalf("%s %s?%s: status %d: %s", method, path, query, w.Code, w.Body)
		}
		data, err := e.encodeSnapshot(e.st.snapshot(), 1, "fuzz")
		if err != nil {
			t.Fatalf("encoding the state: %v", err)
		}
		if _, _, err := e.decodeState(data); err != nil {
			t.Fatalf("after %s %s?%s (%d), a restart would refuse the state: %v", method, path, query, w.Code, err)
		}
	})
}

// FuzzJournalFrames: the journal's frame reader never panics or loops on
// any bytes, returns only payloads whose checksum holds, and drops only a
// last frame.
func FuzzJournalFrames(f *testing.F) {
	good := appendFrame(appendFrame(nil, []byte(`{"format":"keyless-emulator-journal/1","generation":1,"snapshot":"x"}`)), []byte(`{"seq":1,"put":{},"delete":{}}`))
	f.Add(good)
	f.Add(good[:len(good)-3])
	f.Add(append(good, make([]byte, 20)...))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := frameReader{data: data, torn: -1}
		for range len(data) + 1 {
			off := r.off
			payload, err := r.next()
			if err != nil || payload == nil {
				if r.torn >= 0 && (r.torn != off || r.off != len(data)) {
					t.Fatalf("torn frame at %d, reader at %d of %d: not the last frame", r.torn, r.off, len(data))
				}
				return
			}
			if r.off <= off {
				t.Fatalf("no progress at %d", off)
			}
			if !bytes.Equal(appendFrame(nil, payload), data[off:r.off]) {
				t.Fatalf("frame at %d returned although its checksums do not hold", off)
			}
		}
		t.Fatal("more frames than bytes")
	})
}
