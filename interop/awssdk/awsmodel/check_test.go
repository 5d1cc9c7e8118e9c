package awsmodel

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/keyless-dev/keyless/internal/testkit"
)

func TestMain(m *testing.M) { os.Exit(testkit.Main(m).Run()) }

// models loads the fetched models, or skips (fails under
// KEYLESS_INTEROP=require) when scripts/aws-models has not run.
func models(t *testing.T) *Models {
	t.Helper()
	ms, err := LoadDir(Dir())
	if errors.Is(err, ErrNoModels) {
		testkit.Unavailable(t, "%v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	return ms
}

const anchor = `{"trustAnchor":{"trustAnchorId":"3f7c1a0e-0000-4000-8000-000000000001",
"trustAnchorArn":"arn:aws:rolesanywhere:us-east-1:111122223333:trust-anchor/3f7c1a0e-0000-4000-8000-000000000001",
"name":"ca","enabled":true,"createdAt":"2026-11-27T01:00:00.123Z","updatedAt":"2026-11-27T01:00:00Z",
"source":{"sourceType":"CERTIFICATE_BUNDLE","sourceData":{"x509CertificateData":"-----BEGIN CERTIFICATE-----"}},
"notificationSettings":[{"enabled":true,"event":"CA_CERTIFICATE_EXPIRY","threshold":45,"channel":"ALL","configuredBy":"rolesanywhere.amazonaws.com"}]}}`

func rest(method, path string, status int, body string, header ...string) *Exchange {
	h, reqH := http.Header{"Content-Type": {"application/json"}, "X-Amzn-Requestid": {"4a0b1c2d-0000-4000-8000-000000000000"}}, http.Header{}
	for i := 0; i+1 < len(header); i += 2 {
		if header[i] == "Authorization" {
			reqH.Set(header[i], header[i+1])
		} else {
			h.Set(header[i], header[i+1])
		}
	}
	return &Exchange{Method: method, Path: path, ReqHeader: reqH, Status: status, RespHeader: h, RespBody: []byte(body)}
}

const roleXML = `<CreateRoleResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/">
  <CreateRoleResult>
    <Role>
      <Path>/</Path><RoleName>ci</RoleName><RoleId>AROAEXAMPLE</RoleId>
      <Arn>arn:aws:iam::111122223333:role/ci</Arn><CreateDate>2026-11-27T01:00:00Z</CreateDate>
      <AssumeRolePolicyDocument>%7B%7D</AssumeRolePolicyDocument><MaxSessionDuration>3600</MaxSessionDuration>
      <Tags><member><Key>team</Key><Value>ci</Value></member></Tags>
    </Role>
  </CreateRoleResult>
  <ResponseMetadata><RequestId>4a0b1c2d-0000-4000-8000-000000000000</RequestId></ResponseMetadata>
</CreateRoleResponse>`

const errorXML = `<ErrorResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/">
  <Error><Type>Sender</Type><Code>MalformedPolicyDocument</Code><Message>Has prohibited field Resource</Message></Error>
  <RequestId>4a0b1c2d-0000-4000-8000-000000000000</RequestId>
</ErrorResponse>`

func query(action, version string, status int, body string) *Exchange {
	form := url.Values{"Action": {action}, "Version": {version}}
	return &Exchange{Method: "POST", Path: "/", ReqHeader: http.Header{"Content-Type": {"application/x-www-form-urlencoded"}},
		ReqBody: []byte(form.Encode()), Status: status, RespHeader: http.Header{"Content-Type": {"text/xml"}, "X-Amzn-Requestid": {"4a0b1c2d-0000-4000-8000-000000000000"}}, RespBody: []byte(body)}
}

// TestCheck: good answers pass, and each way of breaking one is found,
// named by operation and member.
func TestCheck(t *testing.T) {
	ms := models(t)
	for _, tt := range []struct {
		name string
		x    *Exchange
		want []string // substrings of the mismatches, one each; none for a good exchange
	}{
		{name: "good CreateTrustAnchor", x: rest("POST", "/trustanchors", 201, anchor)},
		{name: "CreateTrustAnchor answered 200", x: rest("POST", "/trustanchors", 200, anchor),
			want: []string{"CreateTrustAnchor: status 200, the model's is 201"}},
		{name: "epoch timestamp where the model says iso8601", x: rest("POST", "/trustanchors", 201, strings.Replace(anchor, `"2026-11-27T01:00:00Z"`, `1795741200`, 1)),
			want: []string{"CreateTrustAnchor trustAnchor.updatedAt: expected timestamp (iso8601 string), got number 1795741200"}},
		{name: "boolean as a string", x: rest("POST", "/trustanchors", 201, strings.Replace(anchor, `"enabled":true,"createdAt"`, `"enabled":"true","createdAt"`, 1)),
			want: []string{`trustAnchor.enabled: expected boolean, got string "true"`}},
		{name: "integer as a string", x: rest("POST", "/trustanchors", 201, strings.Replace(anchor, `"threshold":45`, `"threshold":"45"`, 1)),
			want: []string{`trustAnchor.notificationSettings[0].threshold: expected integer (JSON number), got string "45"`}},
		{name: "member not in the model", x: rest("POST", "/trustanchors", 201, strings.Replace(anchor, `"name":"ca"`, `"name":"ca","tags":[]`, 1)),
			want: []string{"trustAnchor.tags: not a member of"}},
		{name: "required member missing", x: rest("POST", "/trustanchors", 201, `{}`),
			want: []string{"CreateTrustAnchor trustAnchor: required by the model, missing"}},
		{name: "value outside the enum", x: rest("POST", "/trustanchors", 201, strings.Replace(anchor, `CERTIFICATE_BUNDLE`, `PEM_BUNDLE`, 1)),
			want: []string{`trustAnchor.source.sourceType: "PEM_BUNDLE" is not one of the enum TrustAnchorType's values`}},
		{name: "null member", x: rest("POST", "/trustanchors", 201, strings.Replace(anchor, `"name":"ca"`, `"name":null`, 1)),
			want: []string{"trustAnchor.name: null"}},
		{name: "not JSON", x: rest("GET", "/trustanchors", 200, `<xml/>`),
			want: []string{"ListTrustAnchors: body is not JSON"}},
		{name: "list as an object", x: rest("GET", "/trustanchors", 200, `{"trustAnchors":{}}`),
			want: []string{"ListTrustAnchors trustAnchors: expected list (JSON array), got an object"}},
		{name: "good ListTrustAnchors page", x: rest("GET", "/trustanchors", 200, `{"trustAnchors":[`+anchor[len(`{"trustAnchor":`):len(anchor)-1]+`],"nextToken":"MQ"}`)},
		{name: "path of no operation", x: rest("GET", "/trustanchor", 200, `{}`, "Authorization", "AWS4-HMAC-SHA256 Credential=AKID/20261127/us-east-1/rolesanywhere/aws4_request, SignedHeaders=host, Signature=00"),
			want: []string{"(no operation): GET /trustanchor is no operation of the model"}},
		{name: "good error", x: rest("GET", "/trustanchor/x", 404, `{"message":"not found"}`, "X-Amzn-ErrorType", "ResourceNotFoundException")},
		{name: "error with the wrong status", x: rest("GET", "/trustanchor/x", 400, `{"message":"not found"}`, "X-Amzn-ErrorType", "ResourceNotFoundException"),
			want: []string{"GetTrustAnchor: error ResourceNotFoundException with status 400, the model's is 404"}},
		{name: "error not of the operation", x: rest("GET", "/trustanchor/x", 409, `{"message":"exists"}`, "X-Amzn-ErrorType", "ConflictException"),
			want: []string{"GetTrustAnchor: error ConflictException (status 409) is neither one of the operation's errors"}},
		{name: "error without a type", x: rest("GET", "/trustanchor/x", 404, `{"message":"not found"}`),
			want: []string{"GetTrustAnchor: error 404 without X-Amzn-ErrorType"}},
		{name: "error without a message", x: rest("GET", "/trustanchor/x", 404, `{"error":"not found"}`, "X-Amzn-ErrorType", "ResourceNotFoundException"),
			want: []string{"error ResourceNotFoundException: body has no message"}},
		{name: "no request id header", x: func() *Exchange {
			x := rest("GET", "/trustanchor/x", 404, `{"message":"not found"}`, "X-Amzn-ErrorType", "ResourceNotFoundException")
			x.RespHeader.Del("X-Amzn-Requestid")
			return x
		}(), want: []string{"GetTrustAnchor: no x-amzn-RequestId header (status 404)"}},
		{name: "empty output where the model has one", x: rest("POST", "/trustanchor/x/enable", 200, ``),
			want: []string{"EnableTrustAnchor: empty body; the model requires trustAnchor"}},

		{name: "good CreateRole", x: query("CreateRole", "2010-05-08", 200, roleXML)},
		{name: "wrong namespace", x: query("CreateRole", "2010-05-08", 200, strings.Replace(roleXML, "2010-05-08/", "2011-06-15/", 1)),
			want: []string{`CreateRole: namespace "https://iam.amazonaws.com/doc/2011-06-15/"`}},
		{name: "no result wrapper", x: query("CreateRole", "2010-05-08", 200, strings.NewReplacer("<CreateRoleResult>", "", "</CreateRoleResult>", "").Replace(roleXML)),
			want: []string{"CreateRole Role: unexpected element in <CreateRoleResponse>", "CreateRole CreateRoleResult: missing"}},
		{name: "list without member elements", x: query("CreateRole", "2010-05-08", 200, strings.NewReplacer("<member>", "<Tag>", "</member>", "</Tag>").Replace(roleXML)),
			want: []string{"CreateRole Role.Tags[0]: list element <Tag>, want <member>"}},
		{name: "timestamp not iso8601", x: query("CreateRole", "2010-05-08", 200, strings.Replace(roleXML, "2026-11-27T01:00:00Z", "Fri, 27 Nov 2026 01:00:00 GMT", 1)),
			want: []string{`CreateRole Role.CreateDate: expected timestamp (iso8601), got "Fri, 27 Nov 2026 01:00:00 GMT"`}},
		{name: "integer not a number", x: query("CreateRole", "2010-05-08", 200, strings.Replace(roleXML, "<MaxSessionDuration>3600<", "<MaxSessionDuration>1h<", 1)),
			want: []string{`CreateRole Role.MaxSessionDuration: expected integer, got "1h"`}},
		{name: "required RoleId missing", x: query("CreateRole", "2010-05-08", 200, strings.Replace(roleXML, "<RoleId>AROAEXAMPLE</RoleId>", "", 1)),
			want: []string{"CreateRole Role.RoleId: required by the model, missing"}},
		{name: "no request id", x: query("CreateRole", "2010-05-08", 200, strings.Replace(roleXML, "<RequestId>4a0b1c2d-0000-4000-8000-000000000000</RequestId>", "", 1)),
			want: []string{"CreateRole ResponseMetadata.RequestId: missing"}},
		{name: "unknown action", x: query("CreateWidget", "2010-05-08", 200, roleXML),
			want: []string{"(no operation): Action=CreateWidget is no operation of the model"}},
		{name: "good error envelope", x: query("CreateRole", "2010-05-08", 400, errorXML)},
		{name: "modelled error with another status", x: query("CreateRole", "2010-05-08", 409, errorXML),
			want: []string{"CreateRole: error MalformedPolicyDocument with status 409, the model's is 400"}},
		{name: "error the operation cannot answer", x: query("CreateRole", "2010-05-08", 404, strings.Replace(errorXML, "MalformedPolicyDocument", "NoSuchEntity", 1)),
			want: []string{"CreateRole: error NoSuchEntity (status 404) is neither one of the operation's errors"}},
		{name: "error without Type", x: query("CreateRole", "2010-05-08", 400, strings.Replace(errorXML, "<Type>Sender</Type>", "", 1)),
			want: []string{"CreateRole Error.Type: want Sender or Receiver"}},
		{name: "error without RequestId", x: query("CreateRole", "2010-05-08", 400, strings.Replace(errorXML, "<RequestId>4a0b1c2d-0000-4000-8000-000000000000</RequestId>", "", 1)),
			want: []string{"CreateRole RequestId: missing in <ErrorResponse>"}},
		{name: "error in a JSON envelope", x: query("CreateRole", "2010-05-08", 400, `{"message":"x"}`),
			want: []string{"CreateRole: answer (status 400) is not XML"}},
		{name: "good GetCallerIdentity", x: query("GetCallerIdentity", "2011-06-15", 200, `<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <GetCallerIdentityResult><Arn>arn:aws:iam::111122223333:user/op</Arn><UserId>AIDAEXAMPLE</UserId><Account>111122223333</Account></GetCallerIdentityResult>
  <ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></GetCallerIdentityResponse>`)},
		{name: "DeleteRole with a result", x: query("DeleteRole", "2010-05-08", 200, `<DeleteRoleResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/"><DeleteRoleResult/><ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></DeleteRoleResponse>`),
			want: []string{"DeleteRole DeleteRoleResult: unexpected element"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			checked, got := ms.Check(tt.x)
			if !checked {
				t.Fatalf("not checked")
			}
			var lines []string
			for _, m := range got {
				lines = append(lines, m.String())
			}
			all := strings.Join(lines, "\n")
			if len(tt.want) == 0 && len(got) > 0 {
				t.Fatalf("a good exchange has mismatches:\n%s", all)
			}
			for _, w := range tt.want {
				if !strings.Contains(all, w) {
					t.Errorf("missing mismatch %q; got:\n%s", w, all)
				}
			}
			if len(tt.want) > 0 && len(got) > len(tt.want)*2 {
				t.Errorf("%d mismatches for %d faults:\n%s", len(got), len(tt.want), all)
			}
		})
	}
}

// TestNotControlPlane: CreateSession and other paths are not checked.
func TestNotControlPlane(t *testing.T) {
	ms := models(t)
	for _, x := range []*Exchange{
		rest("POST", "/sessions", 201, `{}`, "Authorization", "AWS4-X509-ECDSA-SHA256 Credential=1/20261127/us-east-1/rolesanywhere/aws4_request"),
		rest("GET", "/health", 200, `ok`),
	} {
		if checked, got := ms.Check(x); checked {
			t.Errorf("%s %s checked: %v", x.Method, x.Path, got)
		}
	}
}

// fakeTB collects what Verify reports.
type fakeTB struct{ errors, logs []string }

func (f *fakeTB) Helper()                           {}
func (f *fakeTB) Errorf(format string, args ...any) { f.errors = append(f.errors, format) }
func (f *fakeTB) Logf(format string, args ...any)   { f.logs = append(f.logs, format) }

// TestRecorder: the middleware passes answers through unchanged, and
// Verify fails the test for a bad answer and not for a good one.
func TestRecorder(t *testing.T) {
	ms := models(t)
	handler := func(body string, status int) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("X-Amzn-Requestid", "r")
			w.WriteHeader(status)
			w.Write([]byte(body))
		})
	}
	for _, tt := range []struct {
		name   string
		status int
		body   string
		fails  bool
	}{
		{name: "good", status: 201, body: anchor},
		{name: "bad", status: 201, body: `{"trustAnchor":{"enabled":1}}`, fails: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rec := &Recorder{Next: handler(tt.body, tt.status), Models: ms}
			srv := httptest.NewServer(rec)
			defer srv.Close()
			req, err := http.NewRequest("POST", srv.URL+"/trustanchors", strings.NewReader(`{"name":"ca"}`))
			if err != nil {
				t.Fatal(err)
			}
			resp, got := testkit.Do(t, srv.Client(), req)
			if resp.StatusCode != tt.status || string(got) != tt.body {
				t.Errorf("the recorder changed the answer: %d %s", resp.StatusCode, got)
			}
			var f fakeTB
			rec.Verify(&f)
			if (len(f.errors) > 0) != tt.fails {
				t.Errorf("Verify reported %v (mismatches %v), want failure %v", f.errors, rec.Mismatches(), tt.fails)
			}
			if calls := rec.Calls(); calls["rolesanywhere:CreateTrustAnchor 201"] != 1 {
				t.Errorf("calls %v", calls)
			}
		})
	}
}
