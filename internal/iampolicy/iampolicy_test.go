package iampolicy_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/keyless-dev/keyless/internal/iampolicy"
	"github.com/keyless-dev/keyless/internal/rolesanywhere/rolesanywheretest"
)

const (
	rolesAnywhere = "rolesanywhere.amazonaws.com"
	runnerCN      = "aws:PrincipalTag/x509Subject/CN"
)

// trustPolicy is the reference trust policy of roles-anywhere.md §4.
var trustPolicy = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow",
  "Principal":{"Service":"rolesanywhere.amazonaws.com"},
  "Action":["sts:AssumeRole","sts:TagSession","sts:SetSourceIdentity"],
  "Condition":{"ArnEquals":{"aws:SourceArn":"` + rolesanywheretest.TrustAnchorARN + `"},
               "StringEquals":{"aws:PrincipalTag/x509Subject/CN":"gitlab-runner"}}}]}`

var service = iampolicy.Principal{Type: iampolicy.ServicePrincipal, ID: rolesAnywhere}

func mustParse(t testing.TB, doc string) *iampolicy.Policy {
	t.Helper()
	p, err := iampolicy.Parse([]byte(doc))
	if err != nil {
		t.Fatalf("Parse: %v\n%s", err, doc)
	}
	return p
}

func runnerContext(anchor, cn string) map[string][]string {
	ctx := map[string][]string{"aws:SourceArn": {anchor}}
	if cn != "" {
		ctx[runnerCN] = []string{cn}
	}
	return ctx
}

func TestTrustPolicy(t *testing.T) {
	p := mustParse(t, trustPolicy)
	ta := rolesanywheretest.TrustAnchorARN
	otherTA := strings.Replace(ta, "0001", "0009", 1)
	withoutTagSession := mustParse(t, strings.Replace(trustPolicy, `"sts:TagSession",`, "", 1))
	tests := []struct {
		name   string
		policy *iampolicy.Policy
		action string
		ctx    map[string][]string
		want   iampolicy.Decision
	}{
		{"allowed", p, "sts:AssumeRole", runnerContext(ta, "gitlab-runner"),
			iampolicy.Decision{Effect: iampolicy.Allow, Statement: "statement 1", Reason: "statement 1 allows service rolesanywhere.amazonaws.com to perform sts:AssumeRole"}},
		{"tag session allowed", p, "sts:TagSession", runnerContext(ta, "gitlab-runner"),
			iampolicy.Decision{Effect: iampolicy.Allow, Statement: "statement 1", Reason: "statement 1 allows service rolesanywhere.amazonaws.com to perform sts:TagSession"}},
		{"source identity allowed", p, "sts:SetSourceIdentity", runnerContext(ta, "gitlab-runner"),
			iampolicy.Decision{Effect: iampolicy.Allow, Statement: "statement 1", Reason: "statement 1 allows service rolesanywhere.amazonaws.com to perform sts:SetSourceIdentity"}},
		{"CN mismatch", p, "sts:AssumeRole", runnerContext(ta, "runner-2"),
			iampolicy.Decision{Reason: `statement 1: condition StringEquals aws:PrincipalTag/x509Subject/CN: got "runner-2", want "gitlab-runner"`}},
		{"CN absent", p, "sts:AssumeRole", runnerContext(ta, ""),
			iampolicy.Decision{Reason: `statement 1: condition StringEquals aws:PrincipalTag/x509Subject/CN: key aws:PrincipalTag/x509Subject/CN is not in the request`}},
		{"SourceArn mismatch", p, "sts:AssumeRole", runnerContext(otherTA, "gitlab-runner"),
			iampolicy.Decision{Reason: `statement 1: condition ArnEquals aws:SourceArn: got "` + otherTA + `", want "` + ta + `"`}},
		{"missing TagSession", withoutTagSession, "sts:TagSession", runnerContext(ta, "gitlab-runner"),
			iampolicy.Decision{Reason: "no statement allows service rolesanywhere.amazonaws.com to perform sts:TagSession"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.policy.Evaluate(iampolicy.Request{Principal: service, Action: tt.action, Context: tt.ctx})
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Evaluate (-want +got):\n%s", diff)
			}
			if got.Allowed() != (tt.want.Effect == iampolicy.Allow) {
				t.Errorf("Allowed() = %v", got.Allowed())
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	stmt := func(s string) string { return `{"Version":"2012-10-17","Statement":[` + s + `]}` }
	allow := func(extra string) string {
		return stmt(`{"Effect":"Allow","Action":"sts:AssumeRole"` + extra + `}`)
	}
	cond := func(c string) string { return allow(`,"Condition":` + c) }
	tests := []struct {
		name string
		doc  string
		want string // the error must contain this
	}{
		{"too large", `{"Statement":"` + strings.Repeat("x", iampolicy.MaxDocumentSize) + `"}`, "more than the limit of 131072"},
		{"not JSON", `{"Statement":`, "not valid JSON: unexpected EOF"},
		{"syntax", `{"Statement" 1}`, "not valid JSON: invalid character '1' after object key (at byte"},
		{"trailing data", allow("") + ` {}`, "data after its end"},
		{"trailing garbage", allow("") + `x`, "data after its end"},
		{"not an object", `[]`, "policy document must be a JSON object, got an array"},
		{"unknown top-level key", `{"Statements":[]}`, `policy document has unknown key "Statements" (did you mean "Statement"?)`},
		{"duplicate top-level key", `{"Version":"2012-10-17","Version":"2012-10-17","Statement":[]}`, `policy document has key "Version" twice`},
		{"bad version", `{"Version":"2012-10-18","Statement":{"Effect":"Allow","Action":"s3:x"}}`, `"Version" must be "2012-10-17" or "2008-10-17", got "2012-10-18"`},
		{"version not a string", `{"Version":2012,"Statement":{"Effect":"Allow","Action":"s3:x"}}`, `"Version" must be a string, got a number`},
		{"id not a string", `{"Id":1,"Statement":{"Effect":"Allow","Action":"s3:x"}}`, `"Id" must be a string`},
		{"no statement", `{"Version":"2012-10-17"}`, `policy document has no "Statement"`},
		{"empty statement array", `{"Statement":[]}`, `"Statement" must not be an empty array`},
		{"statement a string", `{"Statement":"x"}`, `"Statement" must be an object or an array of objects, got a string`},
		{"statement not an object", stmt(`{"Effect":"Allow","Action":"s3:x"},"x"`), "statement 2: must be a JSON object, got a string"},
		{"effect lower case", stmt(`{"Effect":"Allow","Action":"s3:x"},{"Effect":"allow","Action":"s3:x"}`), `statement 2: "Effect" must be "Allow" or "Deny", got "allow"`},
		{"effect missing", stmt(`{"Action":"s3:x"}`), `statement 1: has no "Effect"`},
		{"effect not a string", stmt(`{"Effect":true,"Action":"s3:x"}`), `statement 1: "Effect" must be a string, got a boolean`},
		{"unknown statement key", allow(`,"Actions":"s3:x"`), `statement 1: unknown key "Actions" (did you mean "Action"?)`},
		{"unknown statement key case", allow(`,"condition":{}`), `statement 1: unknown key "condition" (did you mean "Condition"?)`},
		{"duplicate statement key", allow(`,"Effect":"Deny"`), `statement 1: has key "Effect" twice`},
		{"sid not a string", allow(`,"Sid":1`), `statement 1: "Sid" must be a string, got a number`},
		{"duplicate sid", stmt(`{"Sid":"A","Effect":"Allow","Action":"s3:x"},{"Sid":"A","Effect":"Deny","Action":"s3:x"}`), `statement 2: "Sid" "A" is already used by statement 1`},
		{"principal and not principal", allow(`,"Principal":"*","NotPrincipal":"*"`), `statement 1: has both "Principal" and "NotPrincipal"`},
		{"principal string", allow(`,"Principal":"rolesanywhere.amazonaws.com"`), `statement 1: "Principal" must be "*" or an object`},
		{"principal number", allow(`,"Principal":1`), `statement 1: "Principal" must be "*" or an object, got a number`},
		{"principal empty object", allow(`,"Principal":{}`), `statement 1: "Principal" must name at least one principal`},
		{"principal unknown type", allow(`,"Principal":{"Services":"x"}`), `statement 1: "Principal" has unknown principal type "Services" (did you mean "Service"?)`},
		{"not principal unknown type", allow(`,"NotPrincipal":{"User":"x"}`), `statement 1: "NotPrincipal" has unknown principal type "User"`},
		{"principal empty list", allow(`,"Principal":{"Service":[]}`), `statement 1: "Principal.Service" must not be an empty array`},
		{"principal empty id", allow(`,"Principal":{"AWS":""}`), `statement 1: "Principal.AWS" has an empty principal`},
		{"principal id not a string", allow(`,"Principal":{"AWS":[1]}`), `statement 1: "Principal.AWS" must hold only strings, got a number at index 0`},
		{"no action", stmt(`{"Effect":"Allow"}`), `statement 1: has neither "Action" nor "NotAction"`},
		{"action and not action", allow(`,"NotAction":"s3:x"`), `statement 1: has both "Action" and "NotAction"`},
		{"empty action", stmt(`{"Effect":"Allow","Action":["s3:x",""]}`), `statement 1: "Action": an action must not be empty`},
		{"empty not action", stmt(`{"Effect":"Allow","NotAction":""}`), `statement 1: "NotAction": an action must not be empty`},
		{"action without service", stmt(`{"Effect":"Allow","Action":"AssumeRole"}`), `statement 1: "Action": action "AssumeRole" must be "*" or "service:action"`},
		{"action with two colons", stmt(`{"Effect":"Allow","Action":"sts:a:b"}`), `statement 1: "Action": action "sts:a:b" must be`},
		{"action empty array", stmt(`{"Effect":"Allow","Action":[]}`), `statement 1: "Action" must not be an empty array`},
		{"action object", stmt(`{"Effect":"Allow","Action":{}}`), `statement 1: "Action" must be a string or an array of strings, got an object`},
		{"resource and not resource", allow(`,"Resource":"*","NotResource":"*"`), `statement 1: has both "Resource" and "NotResource"`},
		{"resource not an ARN", allow(`,"Resource":"bucket"`), `statement 1: "Resource": resource "bucket" must be "*" or an ARN`},
		{"resource empty", allow(`,"Resource":""`), `statement 1: "Resource": resource "" must be "*" or an ARN`},
		{"resource bad variable", allow(`,"Resource":"arn:aws:s3:::b/${aws:username"`), `statement 1: "Resource": unterminated policy variable`},
		{"condition not an object", cond(`[]`), `statement 1: "Condition" must be an object, got an array`},
		{"unknown operator", cond(`{"StringEqual":{"aws:SourceArn":"x"}}`), `statement 1: unknown condition operator "StringEqual"`},
		{"operator case", cond(`{"stringequals":{"aws:SourceArn":"x"}}`), `statement 1: unknown condition operator "stringequals" (did you mean "StringEquals"?)`},
		{"operator case with qualifiers", cond(`{"forAnyValue:stringLikeifexists":{"aws:TagKeys":"x"}}`), `(did you mean "ForAnyValue:StringLikeIfExists"?)`},
		{"unknown set operator", cond(`{"ForEachValue:StringEquals":{"aws:TagKeys":"x"}}`), `statement 1: unknown condition operator "ForEachValue:StringEquals"`},
		{"null if exists", cond(`{"NullIfExists":{"aws:TokenIssueTime":"true"}}`), `statement 1: condition operator "NullIfExists": Null takes neither IfExists nor ForAnyValue/ForAllValues`},
		{"null with set operator", cond(`{"ForAnyValue:Null":{"aws:TokenIssueTime":"true"}}`), `Null takes neither`},
		{"operator not an object", cond(`{"StringEquals":"x"}`), `statement 1: condition "StringEquals" must be an object of condition keys, got a string`},
		{"operator without keys", cond(`{"StringEquals":{}}`), `statement 1: condition StringEquals must name at least one condition key`},
		{"duplicate operator", cond(`{"StringEquals":{"a:b":"x"},"StringEquals":{"a:b":"y"}}`), `statement 1: "Condition" has operator "StringEquals" twice`},
		{"duplicate condition key", cond(`{"StringEquals":{"a:b":"x","a:b":"y"}}`), `statement 1: condition StringEquals has key "a:b" twice`},
		{"key without service", cond(`{"StringEquals":{"SourceArn":"x"}}`), `statement 1: condition StringEquals SourceArn: the condition key must be "service:name"`},
		{"value null", cond(`{"StringEquals":{"aws:SourceArn":null}}`), `statement 1: condition StringEquals aws:SourceArn: the value must be a string, boolean or number, or an array of those, got null`},
		{"value object", cond(`{"StringEquals":{"aws:SourceArn":{}}}`), `got an object`},
		{"value nested array", cond(`{"StringEquals":{"aws:SourceArn":["a",["b"]]}}`), `statement 1: condition StringEquals aws:SourceArn: values must be strings, booleans or numbers, got an array at index 1`},
		{"value empty array", cond(`{"StringEquals":{"aws:SourceArn":[]}}`), `statement 1: condition StringEquals aws:SourceArn: the list of values must not be empty`},
		{"numeric not a number", cond(`{"NumericLessThan":{"s3:max-keys":"ten"}}`), `statement 1: condition NumericLessThan s3:max-keys: "ten" is not a decimal number`},
		{"numeric exponent", cond(`{"NumericLessThan":{"s3:max-keys":1e3}}`), `"1e3" is not a decimal number`},
		{"numeric variable", cond(`{"NumericEquals":{"s3:max-keys":"${aws:x}"}}`), `"${aws:x}" is not a decimal number`},
		{"date", cond(`{"DateLessThan":{"aws:CurrentTime":"tomorrow"}}`), `statement 1: condition DateLessThan aws:CurrentTime: "tomorrow" is not a date`},
		{"ip", cond(`{"IpAddress":{"aws:SourceIp":"10.0.0.0/33"}}`), `statement 1: condition IpAddress aws:SourceIp: "10.0.0.0/33" is not an IP address or CIDR block`},
		{"binary", cond(`{"BinaryEquals":{"s3:x":"not base64!"}}`), `statement 1: condition BinaryEquals s3:x: "not base64!" is not standard base64`},
		{"bool", cond(`{"Bool":{"aws:SecureTransport":"yes"}}`), `statement 1: condition Bool aws:SecureTransport: "yes" must be "true" or "false"`},
		{"null", cond(`{"Null":{"aws:TokenIssueTime":"maybe"}}`), `statement 1: condition Null aws:TokenIssueTime: "maybe" must be "true" (the key is absent) or "false" (the key is present)`},
		{"arn not an ARN", cond(`{"ArnLike":{"aws:SourceArn":"*"}}`), `statement 1: condition ArnLike aws:SourceArn: "*" is not an ARN: ArnLike compares the six ':'-separated components of an ARN; use StringLike for other patterns`},
		{"unterminated variable", cond(`{"StringLike":{"s3:prefix":"home/${aws:username/*"}}`), `statement 1: condition StringLike s3:prefix: unterminated policy variable in "home/${aws:username/*"`},
		{"empty variable", cond(`{"StringLike":{"s3:prefix":"home/${}"}}`), `invalid policy variable "${}"`},
		{"default without quotes", cond(`{"StringEquals":{"s3:prefix":"${aws:username, anonymous}"}}`), `policy variable "${aws:username, anonymous}": the default value must be in single quotes`},
		{"too deep", `{"Statement":` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `}`, "policy document is nested too deeply"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := iampolicy.Parse([]byte(tt.doc))
			if err == nil {
				t.Fatalf("Parse accepted %s", tt.doc)
			}
			if p != nil {
				t.Error("Parse returned a policy with its error")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Parse error\n got: %v\nwant: …%s…", err, tt.want)
			}
			if msg := err.Error(); strings.HasSuffix(msg, ".") || msg != strings.ToLower(msg[:1])+msg[1:] {
				t.Errorf("error %q: want lower case without a trailing period", msg)
			}
		})
	}
}

// TestParseTrustPolicy breaks each rule IAM's CreateRole applies to trust
// policies, once, and checks that the policies AWS accepts still parse.
func TestParseTrustPolicy(t *testing.T) {
	const actions = `"Action":["sts:AssumeRole","sts:TagSession","sts:SetSourceIdentity"]`
	const ra = `"Principal":{"Service":"rolesanywhere.amazonaws.com"}`
	doc := func(stmts ...string) string {
		return `{"Version":"2012-10-17","Statement":[` + strings.Join(stmts, ",") + `]}`
	}
	allow := `{"Effect":"Allow",` + ra + `,` + actions + `}`
	refused := []struct {
		name string
		doc  string
		want string
	}{
		{"no principal", doc(`{"Effect":"Allow",` + actions + `}`), `statement 1: Missing required field Principal`},
		{"no principal in a deny", doc(allow, `{"Effect":"Deny","Action":"sts:*"}`), `statement 2: Missing required field Principal`},
		{"not principal", doc(allow, `{"Effect":"Deny","NotPrincipal":{"AWS":"111122223333"},"Action":"sts:*"}`), `statement 2: Has prohibited field NotPrincipal`},
		{"resource", doc(`{"Effect":"Allow",` + ra + `,` + actions + `,"Resource":"*"}`), `statement 1: Has prohibited field Resource`},
		{"resource ARN", doc(`{"Effect":"Allow",` + ra + `,` + actions + `,"Resource":"arn:aws:iam::111122223333:role/ci"}`), `statement 1: Has prohibited field Resource`},
		{"not resource", doc(`{"Effect":"Allow",` + ra + `,` + actions + `,"NotResource":"arn:aws:s3:::x"}`), `statement 1: Has prohibited field NotResource`},
		{"what Parse refuses", doc(`{"Effect":"allow",` + ra + `,` + actions + `}`), `statement 1: "Effect" must be "Allow" or "Deny"`},
		{"over 2,048 characters", sized(doc, allow, iampolicy.MaxTrustPolicyChars+1, ""),
			`trust policy exceeds IAM's quota: it is 2049 characters without white space, and IAM's quota "Role trust policy length" is 2048`},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			p, err := iampolicy.ParseTrustPolicy([]byte(tt.doc))
			if err == nil || p != nil {
				t.Fatalf("ParseTrustPolicy accepted\n%s", tt.doc)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error\n got: %v\nwant: …%s…", err, tt.want)
			}
		})
	}
	accepted := []struct {
		name string
		doc  string
	}{
		{"reference", trustPolicy},
		{"principal star", doc(`{"Effect":"Allow","Principal":"*",` + actions + `}`)},
		{"several principals and a deny", doc(allow, `{"Sid":"NoContractors","Effect":"Deny","Principal":{"Service":["rolesanywhere.amazonaws.com"],"AWS":"111122223333"},"Action":"sts:*","Condition":{"StringEquals":{"aws:PrincipalTag/x509Subject/OU":"contractors"}}}`)},
		{"no version", `{"Statement":` + allow + `}`},
		{"2,048 characters", sized(doc, allow, iampolicy.MaxTrustPolicyChars, "")},
		// IAM does not count white space against the quota.
		{"2,048 characters and much white space", sized(doc, allow, iampolicy.MaxTrustPolicyChars, strings.Repeat(" \n\t", 1000))},
	}
	for _, tt := range accepted {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := iampolicy.ParseTrustPolicy([]byte(tt.doc)); err != nil {
				t.Fatalf("ParseTrustPolicy: %v", err)
			}
		})
	}
}

// sized makes a trust policy of exactly n characters without white
// space: allow, then a Deny statement whose condition value pads it,
// then pad (white space) before the end.
func sized(doc func(...string) string, allow string, n int, pad string) string {
	deny := func(v string) string {
		return `{"Effect":"Deny","Principal":"*","Action":"sts:AssumeRole","Condition":{"StringEquals":{"aws:PrincipalTag/x":"` + v + `"}}}`
	}
	base := iampolicy.TrustPolicyChars([]byte(doc(allow, deny(""))))
	d := doc(allow, deny(strings.Repeat("x", n-base)))
	return d[:len(d)-1] + pad + d[len(d)-1:]
}

func TestTrustPolicyTooLongIsTyped(t *testing.T) {
	doc := `{"Version":"2012-10-17","Statement":{"Effect":"Allow","Principal":"*","Action":"sts:AssumeRole","Condition":{"StringEquals":{"aws:PrincipalTag/k":"` + strings.Repeat("v", 2048) + `"}}}}`
	if _, err := iampolicy.ParseTrustPolicy([]byte(doc)); !errors.Is(err, iampolicy.ErrTrustPolicyTooLong) {
		t.Fatalf("got %v, want ErrTrustPolicyTooLong", err)
	}
	// Parse, for identity and session policies, has no such quota.
	if _, err := iampolicy.Parse([]byte(doc)); err != nil {
		t.Fatalf("Parse: %v", err)
	}
}

func TestParseAccepts(t *testing.T) {
	tests := []struct {
		name        string
		doc         string
		wantVersion string
		wantID      string
		req         iampolicy.Request
		wantAllowed bool
	}{
		{
			name:        "single statement object without Version",
			doc:         `{"Statement":{"Effect":"Allow","Action":"s3:GetObject"}}`,
			wantVersion: "2008-10-17",
			req:         iampolicy.Request{Action: "s3:GetObject"},
			wantAllowed: true,
		},
		{
			name:        "string forms",
			doc:         `{"Version":"2012-10-17","Id":"trust","Statement":[{"Sid":"","Effect":"Allow","Principal":{"Service":"rolesanywhere.amazonaws.com"},"Action":"sts:AssumeRole","Resource":"*","Condition":{"StringEquals":{"aws:PrincipalTag/x509Subject/CN":"gitlab-runner"}}}]}`,
			wantVersion: "2012-10-17",
			wantID:      "trust",
			req:         iampolicy.Request{Principal: service, Action: "sts:AssumeRole", Resource: "arn:aws:iam::111122223333:role/x", Context: map[string][]string{runnerCN: {"gitlab-runner"}}},
			wantAllowed: true,
		},
		{
			name:        "array forms",
			doc:         `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":["ec2.amazonaws.com","rolesanywhere.amazonaws.com"]},"Action":["sts:AssumeRole"],"Resource":["arn:aws:iam::111122223333:role/x"],"Condition":{"StringEquals":{"aws:PrincipalTag/x509Subject/CN":["a","gitlab-runner"]}}}]}`,
			wantVersion: "2012-10-17",
			req:         iampolicy.Request{Principal: service, Action: "sts:AssumeRole", Resource: "arn:aws:iam::111122223333:role/x", Context: map[string][]string{runnerCN: {"gitlab-runner"}}},
			wantAllowed: true,
		},
		{
			name:        "bool and numbers in conditions",
			doc:         `{"Statement":{"Effect":"Allow","Action":"s3:ListBucket","Condition":{"Bool":{"aws:SecureTransport":true},"NumericLessThanEquals":{"s3:max-keys":[10,2.50]},"StringEquals":{"s3:x":[1.50,false]}}}}`,
			wantVersion: "2008-10-17",
			req:         iampolicy.Request{Action: "s3:ListBucket", Context: map[string][]string{"aws:SecureTransport": {"true"}, "s3:max-keys": {"10"}, "s3:x": {"1.50"}}},
			wantAllowed: true,
		},
		{
			name:        "numbers keep their JSON text",
			doc:         `{"Statement":{"Effect":"Allow","Action":"s3:ListBucket","Condition":{"StringEquals":{"s3:x":1.50}}}}`,
			wantVersion: "2008-10-17",
			req:         iampolicy.Request{Action: "s3:ListBucket", Context: map[string][]string{"s3:x": {"1.5"}}},
			wantAllowed: false,
		},
		{
			name:        "false is the string false",
			doc:         `{"Statement":{"Effect":"Allow","Action":"s3:ListBucket","Condition":{"StringEquals":{"s3:x":false}}}}`,
			wantVersion: "2008-10-17",
			req:         iampolicy.Request{Action: "s3:ListBucket", Context: map[string][]string{"s3:x": {"false"}}},
			wantAllowed: true,
		},
		{
			name:        "empty Condition object and whitespace",
			doc:         "\n\t{ \"Statement\" : { \"Effect\" : \"Allow\" , \"Action\" : \"*\" , \"Condition\" : { } } }\n",
			wantVersion: "2008-10-17",
			req:         iampolicy.Request{Action: "anything:AtAll"},
			wantAllowed: true,
		},
		{
			name:        "2008 version takes variables literally",
			doc:         `{"Version":"2008-10-17","Statement":{"Effect":"Allow","Action":"s3:x","Condition":{"StringEquals":{"s3:prefix":"${aws:username"}}}}`,
			wantVersion: "2008-10-17",
			req:         iampolicy.Request{Action: "s3:x", Context: map[string][]string{"s3:prefix": {"${aws:username"}}},
			wantAllowed: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustParse(t, tt.doc)
			if p.Version() != tt.wantVersion || p.ID() != tt.wantID {
				t.Errorf("Version, ID = %q, %q; want %q, %q", p.Version(), p.ID(), tt.wantVersion, tt.wantID)
			}
			if d := p.Evaluate(tt.req); d.Allowed() != tt.wantAllowed {
				t.Errorf("Evaluate = %+v, want allowed %v", d, tt.wantAllowed)
			}
		})
	}
}

// evalCondition decides a request with context ctx against a policy with
// one Allow statement carrying condition cond.
func evalCondition(t *testing.T, version, cond string, ctx map[string][]string) iampolicy.Decision {
	t.Helper()
	v := ""
	if version != "" {
		v = `"Version":"` + version + `",`
	}
	p := mustParse(t, `{`+v+`"Statement":{"Effect":"Allow","Action":"s3:GetObject","Condition":`+cond+`}}`)
	return p.Evaluate(iampolicy.Request{Action: "s3:GetObject", Context: ctx})
}

type ctx = map[string][]string

func TestOperators(t *testing.T) {
	const arn = "arn:aws:rolesanywhere:us-east-1:111122223333:trust-anchor/abc"
	tests := []struct {
		name string
		cond string
		ctx  ctx
		want bool
	}{
		{"StringEquals match", `{"StringEquals":{"s3:x":"abc"}}`, ctx{"s3:x": {"abc"}}, true},
		{"StringEquals mismatch", `{"StringEquals":{"s3:x":"abc"}}`, ctx{"s3:x": {"abd"}}, false},
		{"StringEquals is case-sensitive", `{"StringEquals":{"s3:x":"abc"}}`, ctx{"s3:x": {"ABC"}}, false},
		{"StringEquals has no wildcards", `{"StringEquals":{"s3:x":"a*"}}`, ctx{"s3:x": {"ab"}}, false},
		{"StringEquals literal star", `{"StringEquals":{"s3:x":"a*"}}`, ctx{"s3:x": {"a*"}}, true},
		{"StringEquals absent", `{"StringEquals":{"s3:x":"abc"}}`, ctx{}, false},
		{"StringEquals empty slice is absent", `{"StringEquals":{"s3:x":""}}`, ctx{"s3:x": {}}, false},
		{"StringEquals empty string", `{"StringEquals":{"s3:x":""}}`, ctx{"s3:x": {""}}, true},
		{"StringEquals values ORed", `{"StringEquals":{"s3:x":["a","b"]}}`, ctx{"s3:x": {"b"}}, true},
		{"StringEquals keys ANDed", `{"StringEquals":{"s3:x":"a","s3:y":"b"}}`, ctx{"s3:x": {"a"}, "s3:y": {"c"}}, false},
		{"operators ANDed", `{"StringEquals":{"s3:x":"a"},"StringLike":{"s3:y":"b*"}}`, ctx{"s3:x": {"a"}, "s3:y": {"bc"}}, true},
		{"operators ANDed fail", `{"StringEquals":{"s3:x":"a"},"StringLike":{"s3:y":"b*"}}`, ctx{"s3:x": {"a"}, "s3:y": {"cb"}}, false},
		{"key case-insensitive", `{"StringEquals":{"aws:SourceAccount":"111122223333"}}`, ctx{"AWS:sourceaccount": {"111122223333"}}, true},
		{"multivalued key without set operator: any value", `{"StringEquals":{"s3:x":"a"}}`, ctx{"s3:x": {"z", "a"}}, true},

		{"StringNotEquals other", `{"StringNotEquals":{"s3:x":"a"}}`, ctx{"s3:x": {"b"}}, true},
		{"StringNotEquals same", `{"StringNotEquals":{"s3:x":"a"}}`, ctx{"s3:x": {"a"}}, false},
		{"StringNotEquals values NORed", `{"StringNotEquals":{"s3:x":["a","b"]}}`, ctx{"s3:x": {"b"}}, false},
		{"StringNotEquals absent is true", `{"StringNotEquals":{"s3:x":"a"}}`, ctx{}, true},
		{"StringNotEquals empty slice is absent", `{"StringNotEquals":{"s3:x":"a"}}`, ctx{"s3:x": nil}, true},
		{"StringNotEquals multivalued: any value", `{"StringNotEquals":{"s3:x":"a"}}`, ctx{"s3:x": {"a", "z"}}, true},

		{"StringEqualsIgnoreCase", `{"StringEqualsIgnoreCase":{"s3:x":"ABC"}}`, ctx{"s3:x": {"abc"}}, true},
		{"StringEqualsIgnoreCase mismatch", `{"StringEqualsIgnoreCase":{"s3:x":"ABC"}}`, ctx{"s3:x": {"abd"}}, false},
		{"StringNotEqualsIgnoreCase same", `{"StringNotEqualsIgnoreCase":{"s3:x":"ABC"}}`, ctx{"s3:x": {"abc"}}, false},
		{"StringNotEqualsIgnoreCase other", `{"StringNotEqualsIgnoreCase":{"s3:x":"ABC"}}`, ctx{"s3:x": {"x"}}, true},

		{"StringLike star", `{"StringLike":{"s3:x":"gitlab-*"}}`, ctx{"s3:x": {"gitlab-runner"}}, true},
		{"StringLike star empty", `{"StringLike":{"s3:x":"gitlab-*"}}`, ctx{"s3:x": {"gitlab-"}}, true},
		{"StringLike question", `{"StringLike":{"s3:x":"?b"}}`, ctx{"s3:x": {"ab"}}, true},
		{"StringLike question needs a character", `{"StringLike":{"s3:x":"?b"}}`, ctx{"s3:x": {"b"}}, false},
		{"StringLike question is one character", `{"StringLike":{"s3:x":"?b"}}`, ctx{"s3:x": {"éb"}}, true},
		{"StringLike is case-sensitive", `{"StringLike":{"s3:x":"Git*"}}`, ctx{"s3:x": {"gitlab"}}, false},
		{"StringLike whole string", `{"StringLike":{"s3:x":"git"}}`, ctx{"s3:x": {"gitlab"}}, false},
		{"StringLike absent", `{"StringLike":{"s3:x":"*"}}`, ctx{}, false},
		{"StringNotLike other", `{"StringNotLike":{"s3:x":"gitlab-*"}}`, ctx{"s3:x": {"github"}}, true},
		{"StringNotLike match", `{"StringNotLike":{"s3:x":"gitlab-*"}}`, ctx{"s3:x": {"gitlab-x"}}, false},
		{"StringNotLike absent", `{"StringNotLike":{"s3:x":"gitlab-*"}}`, ctx{}, true},

		{"NumericEquals", `{"NumericEquals":{"s3:n":"10"}}`, ctx{"s3:n": {"10.0"}}, true},
		{"NumericEquals leading zeros", `{"NumericEquals":{"s3:n":10}}`, ctx{"s3:n": {"010"}}, true},
		{"NumericEquals mismatch", `{"NumericEquals":{"s3:n":"10"}}`, ctx{"s3:n": {"11"}}, false},
		{"NumericEquals not a number", `{"NumericEquals":{"s3:n":"10"}}`, ctx{"s3:n": {"ten"}}, false},
		{"NumericEquals negative zero", `{"NumericEquals":{"s3:n":"0"}}`, ctx{"s3:n": {"-0.0"}}, true},
		{"NumericEquals big", `{"NumericEquals":{"s3:n":"9007199254740993"}}`, ctx{"s3:n": {"9007199254740992"}}, false},
		{"NumericNotEquals other", `{"NumericNotEquals":{"s3:n":"10"}}`, ctx{"s3:n": {"11"}}, true},
		{"NumericNotEquals same", `{"NumericNotEquals":{"s3:n":"10"}}`, ctx{"s3:n": {"10"}}, false},
		{"NumericNotEquals not a number matches none", `{"NumericNotEquals":{"s3:n":"10"}}`, ctx{"s3:n": {"ten"}}, true},
		{"NumericNotEquals absent", `{"NumericNotEquals":{"s3:n":"10"}}`, ctx{}, true},
		{"NumericLessThan", `{"NumericLessThan":{"s3:n":"10"}}`, ctx{"s3:n": {"9.99"}}, true},
		{"NumericLessThan equal", `{"NumericLessThan":{"s3:n":"10"}}`, ctx{"s3:n": {"10"}}, false},
		{"NumericLessThan negative", `{"NumericLessThan":{"s3:n":"-1.5"}}`, ctx{"s3:n": {"-2"}}, true},
		{"NumericLessThan negative fails", `{"NumericLessThan":{"s3:n":"-1.5"}}`, ctx{"s3:n": {"-1.25"}}, false},
		{"NumericLessThan absent", `{"NumericLessThan":{"s3:n":"10"}}`, ctx{}, false},
		{"NumericLessThanEquals", `{"NumericLessThanEquals":{"s3:n":"10"}}`, ctx{"s3:n": {"10"}}, true},
		{"NumericLessThanEquals more", `{"NumericLessThanEquals":{"s3:n":"10"}}`, ctx{"s3:n": {"100"}}, false},
		{"NumericGreaterThan", `{"NumericGreaterThan":{"s3:n":"10"}}`, ctx{"s3:n": {"10.5"}}, true},
		{"NumericGreaterThan equal", `{"NumericGreaterThan":{"s3:n":"10"}}`, ctx{"s3:n": {"10"}}, false},
		{"NumericGreaterThanEquals", `{"NumericGreaterThanEquals":{"s3:n":"10"}}`, ctx{"s3:n": {"10"}}, true},
		{"NumericGreaterThanEquals less", `{"NumericGreaterThanEquals":{"s3:n":"10"}}`, ctx{"s3:n": {"9.99"}}, false},

		{"DateEquals other zone", `{"DateEquals":{"aws:CurrentTime":"2026-01-02T03:04:05Z"}}`, ctx{"aws:CurrentTime": {"2026-01-02T04:04:05+01:00"}}, true},
		{"DateEquals epoch", `{"DateEquals":{"aws:EpochTime":"2026-01-01T00:00:00Z"}}`, ctx{"aws:EpochTime": {"1767225600"}}, true},
		{"DateEquals mismatch", `{"DateEquals":{"aws:CurrentTime":"2026-01-02"}}`, ctx{"aws:CurrentTime": {"2026-01-02T00:00:01Z"}}, false},
		{"DateNotEquals", `{"DateNotEquals":{"aws:CurrentTime":"2026-01-02"}}`, ctx{"aws:CurrentTime": {"2026-01-02T00:00:01Z"}}, true},
		{"DateNotEquals same", `{"DateNotEquals":{"aws:CurrentTime":"2026-01-02"}}`, ctx{"aws:CurrentTime": {"2026-01-02T00:00:00Z"}}, false},
		{"DateLessThan", `{"DateLessThan":{"aws:CurrentTime":"2026-01-01T00:00:00Z"}}`, ctx{"aws:CurrentTime": {"2025-12-31T23:59:59.5Z"}}, true},
		{"DateLessThan epoch policy", `{"DateLessThan":{"aws:CurrentTime":1767225600}}`, ctx{"aws:CurrentTime": {"2026-01-01T00:00:00Z"}}, false},
		{"DateLessThanEquals", `{"DateLessThanEquals":{"aws:CurrentTime":"2026-01-01T00:00:00Z"}}`, ctx{"aws:CurrentTime": {"2026-01-01T00:00:00Z"}}, true},
		{"DateGreaterThan", `{"DateGreaterThan":{"aws:TokenIssueTime":"2020-01-01T00:00:01Z"}}`, ctx{"aws:TokenIssueTime": {"2026-01-01T00:00:00Z"}}, true},
		{"DateGreaterThan before", `{"DateGreaterThan":{"aws:TokenIssueTime":"2020-01-01T00:00:01Z"}}`, ctx{"aws:TokenIssueTime": {"2019-01-01T00:00:00Z"}}, false},
		{"DateGreaterThanEquals", `{"DateGreaterThanEquals":{"aws:CurrentTime":"2026-01-01T00:00Z"}}`, ctx{"aws:CurrentTime": {"2026-01-01T00:00:00Z"}}, true},
		{"Date not a date", `{"DateGreaterThan":{"aws:CurrentTime":"2020-01-01"}}`, ctx{"aws:CurrentTime": {"soon"}}, false},

		{"Bool true", `{"Bool":{"aws:SecureTransport":"true"}}`, ctx{"aws:SecureTransport": {"true"}}, true},
		{"Bool ignores case", `{"Bool":{"aws:SecureTransport":true}}`, ctx{"aws:SecureTransport": {"TRUE"}}, true},
		{"Bool false", `{"Bool":{"aws:SecureTransport":"true"}}`, ctx{"aws:SecureTransport": {"false"}}, false},
		{"Bool not a boolean", `{"Bool":{"aws:SecureTransport":"true"}}`, ctx{"aws:SecureTransport": {"yes"}}, false},
		{"Bool absent", `{"Bool":{"aws:SecureTransport":"false"}}`, ctx{}, false},
		{"BoolIfExists absent", `{"BoolIfExists":{"aws:MultiFactorAuthPresent":"false"}}`, ctx{}, true},

		{"BinaryEquals", `{"BinaryEquals":{"s3:b":"QmluYXJ5VmFsdWVJbkJhc2U2NA=="}}`, ctx{"s3:b": {"QmluYXJ5VmFsdWVJbkJhc2U2NA=="}}, true},
		{"BinaryEquals mismatch", `{"BinaryEquals":{"s3:b":"QmluYXJ5"}}`, ctx{"s3:b": {"QmluYXJ6"}}, false},
		{"BinaryEquals not base64", `{"BinaryEquals":{"s3:b":"QmluYXJ5"}}`, ctx{"s3:b": {"Binary"}}, false},

		{"IpAddress in range", `{"IpAddress":{"aws:SourceIp":"203.0.113.0/24"}}`, ctx{"aws:SourceIp": {"203.0.113.9"}}, true},
		{"IpAddress out of range", `{"IpAddress":{"aws:SourceIp":"203.0.113.0/24"}}`, ctx{"aws:SourceIp": {"203.0.114.1"}}, false},
		{"IpAddress single address", `{"IpAddress":{"aws:SourceIp":"203.0.113.9"}}`, ctx{"aws:SourceIp": {"203.0.113.9"}}, true},
		{"IpAddress single address other", `{"IpAddress":{"aws:SourceIp":"203.0.113.9"}}`, ctx{"aws:SourceIp": {"203.0.113.10"}}, false},
		{"IpAddress unmasked block", `{"IpAddress":{"aws:SourceIp":"203.0.113.77/24"}}`, ctx{"aws:SourceIp": {"203.0.113.1"}}, true},
		{"IpAddress IPv6", `{"IpAddress":{"aws:SourceIp":["203.0.113.0/24","2001:DB8:1234:5678::/64"]}}`, ctx{"aws:SourceIp": {"2001:db8:1234:5678::1"}}, true},
		{"IpAddress IPv4-mapped", `{"IpAddress":{"aws:SourceIp":"203.0.113.0/24"}}`, ctx{"aws:SourceIp": {"::ffff:203.0.113.9"}}, true},
		{"IpAddress not an address", `{"IpAddress":{"aws:SourceIp":"0.0.0.0/0"}}`, ctx{"aws:SourceIp": {"localhost"}}, false},
		{"NotIpAddress outside", `{"NotIpAddress":{"aws:SourceIp":"10.0.0.0/8"}}`, ctx{"aws:SourceIp": {"192.0.2.1"}}, true},
		{"NotIpAddress inside", `{"NotIpAddress":{"aws:SourceIp":"10.0.0.0/8"}}`, ctx{"aws:SourceIp": {"10.1.2.3"}}, false},
		{"NotIpAddress absent", `{"NotIpAddress":{"aws:SourceIp":"10.0.0.0/8"}}`, ctx{}, true},

		{"ArnEquals", `{"ArnEquals":{"aws:SourceArn":"` + arn + `"}}`, ctx{"aws:SourceArn": {arn}}, true},
		{"ArnEquals has wildcards", `{"ArnEquals":{"aws:SourceArn":"arn:aws:rolesanywhere:*:111122223333:trust-anchor/*"}}`, ctx{"aws:SourceArn": {arn}}, true},
		{"ArnEquals is case-sensitive", `{"ArnEquals":{"aws:SourceArn":"` + arn + `"}}`, ctx{"aws:SourceArn": {strings.ToUpper(arn)}}, false},
		{"ArnLike component wildcard does not span colons", `{"ArnLike":{"aws:SourceArn":"arn:aws:someservice:*:111122223333:finance/*"}}`,
			ctx{"aws:SourceArn": {"arn:aws:someservice:us-east-2:999999999999:store/abc:111122223333:finance/document.txt"}}, false},
		{"StringLike spans colons", `{"StringLike":{"aws:SourceArn":"arn:aws:someservice:*:111122223333:finance/*"}}`,
			ctx{"aws:SourceArn": {"arn:aws:someservice:us-east-2:999999999999:store/abc:111122223333:finance/document.txt"}}, true},
		{"ArnLike resource may hold colons", `{"ArnLike":{"aws:SourceArn":"arn:aws:logs:us-east-1:111122223333:log-group:*"}}`,
			ctx{"aws:SourceArn": {"arn:aws:logs:us-east-1:111122223333:log-group:/a/b:log-stream:x"}}, true},
		{"ArnLike not an ARN", `{"ArnLike":{"aws:SourceArn":"arn:*:*:*:*:*"}}`, ctx{"aws:SourceArn": {"arn:aws:s3"}}, false},
		{"ArnLike absent", `{"ArnLike":{"aws:SourceArn":"arn:*:*:*:*:*"}}`, ctx{}, false},
		{"ArnNotEquals other", `{"ArnNotEquals":{"aws:SourceArn":"` + arn + `"}}`, ctx{"aws:SourceArn": {arn + "x"}}, true},
		{"ArnNotEquals same", `{"ArnNotEquals":{"aws:SourceArn":"` + arn + `"}}`, ctx{"aws:SourceArn": {arn}}, false},
		{"ArnNotEquals not an ARN matches none", `{"ArnNotEquals":{"aws:SourceArn":"` + arn + `"}}`, ctx{"aws:SourceArn": {"nope"}}, true},
		{"ArnNotLike absent", `{"ArnNotLike":{"aws:SourceArn":"arn:aws:*:*:*:*"}}`, ctx{}, true},
		{"ArnNotLike match", `{"ArnNotLike":{"aws:SourceArn":"arn:aws:*:*:*:*"}}`, ctx{"aws:SourceArn": {arn}}, false},

		{"Null true absent", `{"Null":{"aws:TokenIssueTime":"true"}}`, ctx{}, true},
		{"Null true present", `{"Null":{"aws:TokenIssueTime":true}}`, ctx{"aws:TokenIssueTime": {"2026-01-01T00:00:00Z"}}, false},
		{"Null false present", `{"Null":{"aws:TokenIssueTime":"false"}}`, ctx{"aws:TokenIssueTime": {""}}, true},
		{"Null false absent", `{"Null":{"aws:TokenIssueTime":"False"}}`, ctx{}, false},
		{"Null false empty slice", `{"Null":{"aws:TokenIssueTime":"false"}}`, ctx{"aws:TokenIssueTime": {}}, false},

		{"IfExists absent", `{"StringEqualsIfExists":{"ec2:InstanceType":"t2.micro"}}`, ctx{}, true},
		{"IfExists present match", `{"StringLikeIfExists":{"ec2:InstanceType":"t2.*"}}`, ctx{"ec2:InstanceType": {"t2.micro"}}, true},
		{"IfExists present mismatch", `{"StringLikeIfExists":{"ec2:InstanceType":"t2.*"}}`, ctx{"ec2:InstanceType": {"m5.large"}}, false},
		{"IfExists numeric absent", `{"NumericLessThanIfExists":{"s3:max-keys":"10"}}`, ctx{}, true},
		{"IfExists negated present", `{"StringNotEqualsIfExists":{"s3:x":"a"}}`, ctx{"s3:x": {"a"}}, false},

		{"ForAnyValue one matches", `{"ForAnyValue:StringEquals":{"aws:TagKeys":["a","b"]}}`, ctx{"aws:TagKeys": {"c", "b"}}, true},
		{"ForAnyValue none matches", `{"ForAnyValue:StringEquals":{"aws:TagKeys":["a","b"]}}`, ctx{"aws:TagKeys": {"c"}}, false},
		{"ForAnyValue absent", `{"ForAnyValue:StringEquals":{"aws:TagKeys":["a","b"]}}`, ctx{}, false},
		{"ForAnyValue empty slice", `{"ForAnyValue:StringEquals":{"aws:TagKeys":["a","b"]}}`, ctx{"aws:TagKeys": {}}, false},
		{"ForAnyValue IfExists absent", `{"ForAnyValue:StringEqualsIfExists":{"aws:TagKeys":"a"}}`, ctx{}, true},
		{"ForAllValues all match", `{"ForAllValues:StringEquals":{"aws:TagKeys":["a","b"]}}`, ctx{"aws:TagKeys": {"a", "b", "a"}}, true},
		{"ForAllValues one does not", `{"ForAllValues:StringEquals":{"aws:TagKeys":["a","b"]}}`, ctx{"aws:TagKeys": {"a", "c"}}, false},
		{"ForAllValues absent", `{"ForAllValues:StringEquals":{"aws:TagKeys":["a","b"]}}`, ctx{}, true},
		{"ForAllValues empty slice", `{"ForAllValues:StringEquals":{"aws:TagKeys":["a","b"]}}`, ctx{"aws:TagKeys": {}}, true},
		{"ForAllValues StringLike", `{"ForAllValues:StringLike":{"dynamodb:requestedAttributes":["PostDateTime","Message","Tags"]}}`, ctx{"dynamodb:requestedAttributes": {"PostDateTime", "UserName"}}, false},
		{"ForAnyValue StringNotEquals", `{"ForAnyValue:StringNotEquals":{"aws:TagKeys":["a","b"]}}`, ctx{"aws:TagKeys": {"a", "c"}}, true},
		{"ForAnyValue StringNotEquals all listed", `{"ForAnyValue:StringNotEquals":{"aws:TagKeys":["a","b"]}}`, ctx{"aws:TagKeys": {"a", "b"}}, false},
		{"ForAnyValue StringNotEquals absent", `{"ForAnyValue:StringNotEquals":{"aws:TagKeys":["a","b"]}}`, ctx{}, false},
		{"ForAllValues StringNotEquals", `{"ForAllValues:StringNotEquals":{"aws:TagKeys":["a","b"]}}`, ctx{"aws:TagKeys": {"c", "d"}}, true},
		{"ForAllValues StringNotEquals one listed", `{"ForAllValues:StringNotEquals":{"aws:TagKeys":["a","b"]}}`, ctx{"aws:TagKeys": {"c", "a"}}, false},
		{"ForAllValues StringNotEquals absent", `{"ForAllValues:StringNotEquals":{"aws:TagKeys":["a","b"]}}`, ctx{}, true},
		{"ForAllValues NumericLessThan", `{"ForAllValues:NumericLessThan":{"s3:n":"10"}}`, ctx{"s3:n": {"1", "9"}}, true},
		{"ForAnyValue IpAddress", `{"ForAnyValue:IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}`, ctx{"aws:SourceIp": {"192.0.2.1", "10.0.0.1"}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := evalCondition(t, "2012-10-17", tt.cond, tt.ctx)
			if d.Allowed() != tt.want {
				t.Errorf("%s with %v: %v (%s), want allowed %v", tt.cond, tt.ctx, d.Effect, d.Reason, tt.want)
			}
		})
	}
}

func TestPolicyVariables(t *testing.T) {
	tests := []struct {
		name    string
		version string
		cond    string
		ctx     ctx
		want    bool
	}{
		{"whole value", "2012-10-17", `{"StringEquals":{"aws:PrincipalTag/team":"${aws:PrincipalTag/x509Subject/OU}"}}`,
			ctx{"aws:PrincipalTag/team": {"ci"}, "aws:PrincipalTag/x509Subject/OU": {"ci"}}, true},
		{"whole value differs", "2012-10-17", `{"StringEquals":{"aws:PrincipalTag/team":"${aws:PrincipalTag/x509Subject/OU}"}}`,
			ctx{"aws:PrincipalTag/team": {"ci"}, "aws:PrincipalTag/x509Subject/OU": {"ops"}}, false},
		{"variable key is case-insensitive", "2012-10-17", `{"StringEquals":{"s3:x":"${AWS:USERNAME}"}}`, ctx{"s3:x": {"bob"}, "aws:username": {"bob"}}, true},
		{"in StringLike", "2012-10-17", `{"StringLike":{"s3:prefix":"home/${aws:username}/*"}}`, ctx{"s3:prefix": {"home/bob/a"}, "aws:username": {"bob"}}, true},
		{"in StringLike other user", "2012-10-17", `{"StringLike":{"s3:prefix":"home/${aws:username}/*"}}`, ctx{"s3:prefix": {"home/alice/a"}, "aws:username": {"bob"}}, false},
		{"substituted wildcard is literal", "2012-10-17", `{"StringLike":{"s3:prefix":"home/${aws:username}/*"}}`, ctx{"s3:prefix": {"home/alice/a"}, "aws:username": {"*"}}, false},
		{"substituted wildcard matches itself", "2012-10-17", `{"StringLike":{"s3:prefix":"home/${aws:username}/*"}}`, ctx{"s3:prefix": {"home/*/a"}, "aws:username": {"*"}}, true},
		{"escaped star", "2012-10-17", `{"StringLike":{"s3:x":"a${*}b"}}`, ctx{"s3:x": {"a*b"}}, true},
		{"escaped star is not a wildcard", "2012-10-17", `{"StringLike":{"s3:x":"a${*}b"}}`, ctx{"s3:x": {"axb"}}, false},
		{"escaped question mark", "2012-10-17", `{"StringLike":{"s3:x":"a${?}"}}`, ctx{"s3:x": {"a?"}}, true},
		{"escaped question mark is not a wildcard", "2012-10-17", `{"StringLike":{"s3:x":"a${?}"}}`, ctx{"s3:x": {"ab"}}, false},
		{"escaped dollar", "2012-10-17", `{"StringEquals":{"s3:x":"${$}{aws:username}"}}`, ctx{"s3:x": {"${aws:username}"}, "aws:username": {"bob"}}, true},
		{"default when absent", "2012-10-17", `{"StringEquals":{"s3:x":"${aws:userid, 'anonymous'}"}}`, ctx{"s3:x": {"anonymous"}}, true},
		{"default not used when present", "2012-10-17", `{"StringEquals":{"s3:x":"${aws:userid, 'anonymous'}"}}`, ctx{"s3:x": {"anonymous"}, "aws:userid": {"AIDA1"}}, false},
		{"empty default", "2012-10-17", `{"StringEquals":{"s3:x":"a${aws:userid,''}b"}}`, ctx{"s3:x": {"ab"}}, true},
		{"absent without default matches nothing", "2012-10-17", `{"StringEquals":{"s3:x":"${aws:username}"}}`, ctx{"s3:x": {""}}, false},
		{"absent without default, other value still matches", "2012-10-17", `{"StringEquals":{"s3:x":["${aws:username}","b"]}}`, ctx{"s3:x": {"b"}}, true},
		{"absent without default, negated", "2012-10-17", `{"StringNotEquals":{"s3:x":"${aws:username}"}}`, ctx{"s3:x": {"anything"}}, true},
		{"multivalued variable matches nothing", "2012-10-17", `{"StringEquals":{"s3:x":"${aws:TagKeys}"}}`, ctx{"s3:x": {"a"}, "aws:TagKeys": {"a", "b"}}, false},
		{"ArnLike", "2012-10-17", `{"ArnLike":{"aws:PrincipalArn":"arn:aws:iam::${aws:PrincipalAccount}:role/*"}}`,
			ctx{"aws:PrincipalArn": {"arn:aws:iam::111122223333:role/ci"}, "aws:PrincipalAccount": {"111122223333"}}, true},
		{"ArnLike other account", "2012-10-17", `{"ArnLike":{"aws:PrincipalArn":"arn:aws:iam::${aws:PrincipalAccount}:role/*"}}`,
			ctx{"aws:PrincipalArn": {"arn:aws:iam::111122223333:role/ci"}, "aws:PrincipalAccount": {"444455556666"}}, false},
		{"ArnEquals whole ARN", "2012-10-17", `{"ArnEquals":{"aws:SourceArn":"${aws:PrincipalTag/anchor}"}}`,
			ctx{"aws:SourceArn": {"arn:aws:s3:::b"}, "aws:PrincipalTag/anchor": {"arn:aws:s3:::b"}}, true},
		{"ArnEquals variable not an ARN", "2012-10-17", `{"ArnEquals":{"aws:SourceArn":"${aws:PrincipalTag/anchor}"}}`,
			ctx{"aws:SourceArn": {"arn:aws:s3:::b"}, "aws:PrincipalTag/anchor": {"b"}}, false},
		{"Bool", "2012-10-17", `{"Bool":{"aws:SecureTransport":"${aws:PrincipalTag/tls}"}}`, ctx{"aws:SecureTransport": {"true"}, "aws:PrincipalTag/tls": {"True"}}, true},
		{"Bool variable not a boolean", "2012-10-17", `{"Bool":{"aws:SecureTransport":"${aws:PrincipalTag/tls}"}}`, ctx{"aws:SecureTransport": {"true"}, "aws:PrincipalTag/tls": {"yes"}}, false},
		{"2008 version is literal", "2008-10-17", `{"StringEquals":{"s3:x":"${aws:username}"}}`, ctx{"s3:x": {"${aws:username}"}, "aws:username": {"bob"}}, true},
		{"no version is literal", "", `{"StringEquals":{"s3:x":"${aws:username}"}}`, ctx{"s3:x": {"bob"}, "aws:username": {"bob"}}, false},
		{"2008 version keeps wildcards", "2008-10-17", `{"StringLike":{"s3:x":"${*}"}}`, ctx{"s3:x": {"${anything}"}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := evalCondition(t, tt.version, tt.cond, tt.ctx)
			if d.Allowed() != tt.want {
				t.Errorf("%s with %v: %v (%s), want allowed %v", tt.cond, tt.ctx, d.Effect, d.Reason, tt.want)
			}
		})
	}
}

func TestEvaluate(t *testing.T) {
	const (
		role    = "arn:aws:iam::111122223333:role/ci"
		root    = "arn:aws:iam::111122223333:root"
		object  = "arn:aws:s3:::bucket/key"
		account = "111122223333"
	)
	aws := func(id string) iampolicy.Principal { return iampolicy.Principal{Type: iampolicy.AWSPrincipal, ID: id} }
	tests := []struct {
		name string
		doc  string
		req  iampolicy.Request
		want iampolicy.Decision
	}{
		{"principal star", `{"Statement":{"Effect":"Allow","Principal":"*","Action":"sts:AssumeRole"}}`,
			iampolicy.Request{Principal: aws(role), Action: "sts:AssumeRole"},
			iampolicy.Decision{Effect: iampolicy.Allow, Statement: "statement 1", Reason: "statement 1 allows AWS principal " + role + " to perform sts:AssumeRole"}},
		{"AWS star matches AWS principals", `{"Statement":{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"sts:AssumeRole"}}`,
			iampolicy.Request{Principal: aws(role), Action: "sts:AssumeRole"},
			iampolicy.Decision{Effect: iampolicy.Allow, Statement: "statement 1", Reason: "statement 1 allows AWS principal " + role + " to perform sts:AssumeRole"}},
		{"AWS star does not match services", `{"Statement":{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"sts:AssumeRole"}}`,
			iampolicy.Request{Principal: service, Action: "sts:AssumeRole"},
			iampolicy.Decision{Reason: "no statement allows service rolesanywhere.amazonaws.com to perform sts:AssumeRole (statement 1 names other principals: AWS principal *)"}},
		{"account ID is its root", `{"Statement":{"Effect":"Allow","Principal":{"AWS":"111122223333"},"Action":"sts:AssumeRole"}}`,
			iampolicy.Request{Principal: aws(root), Action: "sts:AssumeRole"},
			iampolicy.Decision{Effect: iampolicy.Allow, Statement: "statement 1", Reason: "statement 1 allows AWS principal " + root + " to perform sts:AssumeRole"}},
		{"root is its account ID", `{"Statement":{"Effect":"Allow","Principal":{"AWS":"` + root + `"},"Action":"sts:AssumeRole"}}`,
			iampolicy.Request{Principal: aws(account), Action: "sts:AssumeRole"},
			iampolicy.Decision{Effect: iampolicy.Allow, Statement: "statement 1", Reason: "statement 1 allows AWS principal " + account + " to perform sts:AssumeRole"}},
		{"account ID is not its roles", `{"Statement":{"Effect":"Allow","Principal":{"AWS":"111122223333"},"Action":"sts:AssumeRole"}}`,
			iampolicy.Request{Principal: aws(role), Action: "sts:AssumeRole"},
			iampolicy.Decision{Reason: "no statement allows AWS principal " + role + " to perform sts:AssumeRole (statement 1 names other principals: AWS principal 111122223333)"}},
		{"principal IDs are exact", `{"Statement":{"Effect":"Allow","Principal":{"Service":"RolesAnywhere.amazonaws.com"},"Action":"sts:AssumeRole"}}`,
			iampolicy.Request{Principal: service, Action: "sts:AssumeRole"},
			iampolicy.Decision{Reason: "no statement allows service rolesanywhere.amazonaws.com to perform sts:AssumeRole (statement 1 names other principals: service RolesAnywhere.amazonaws.com)"}},
		{"principal ID star", `{"Statement":{"Effect":"Allow","Principal":{"Service":"*"},"Action":"sts:AssumeRole"}}`,
			iampolicy.Request{Principal: service, Action: "sts:AssumeRole"},
			iampolicy.Decision{Effect: iampolicy.Allow, Statement: "statement 1", Reason: "statement 1 allows service rolesanywhere.amazonaws.com to perform sts:AssumeRole"}},
		{"statement with a principal needs one", `{"Statement":{"Effect":"Allow","Principal":{"Service":"rolesanywhere.amazonaws.com"},"Action":"sts:AssumeRole"}}`,
			iampolicy.Request{Action: "sts:AssumeRole"},
			iampolicy.Decision{Reason: "no statement allows sts:AssumeRole (statement 1 names other principals: service rolesanywhere.amazonaws.com)"}},
		{"statement without principal applies to no named principal", `{"Statement":{"Effect":"Allow","Action":"sts:AssumeRole"}}`,
			iampolicy.Request{Principal: service, Action: "sts:AssumeRole"},
			iampolicy.Decision{Reason: "no statement allows service rolesanywhere.amazonaws.com to perform sts:AssumeRole (statement 1 has no Principal, so it applies to no named principal)"}},
		{"deny without principal spares a named principal", `{"Statement":[{"Effect":"Allow","Principal":"*","Action":"sts:AssumeRole"},{"Effect":"Deny","Action":"sts:AssumeRole"}]}`,
			iampolicy.Request{Principal: service, Action: "sts:AssumeRole"},
			iampolicy.Decision{Effect: iampolicy.Allow, Statement: "statement 1", Reason: "statement 1 allows service rolesanywhere.amazonaws.com to perform sts:AssumeRole"}},
		{"identity policy without principal", `{"Statement":{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::bucket/*"}}`,
			iampolicy.Request{Action: "s3:GetObject", Resource: object},
			iampolicy.Decision{Effect: iampolicy.Allow, Statement: "statement 1", Reason: "statement 1 allows s3:GetObject on " + object}},
		{"NotPrincipal deny spares the named", `{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:*"},{"Effect":"Deny","NotPrincipal":{"AWS":"` + role + `"},"Action":"s3:*"}]}`,
			iampolicy.Request{Principal: aws(role), Action: "s3:GetObject"},
			iampolicy.Decision{Effect: iampolicy.Allow, Statement: "statement 1", Reason: "statement 1 allows AWS principal " + role + " to perform s3:GetObject"}},
		{"NotPrincipal deny hits the others", `{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:*"},{"Effect":"Deny","NotPrincipal":{"AWS":"` + role + `"},"Action":"s3:*"}]}`,
			iampolicy.Request{Principal: aws(root), Action: "s3:GetObject"},
			iampolicy.Decision{Effect: iampolicy.Deny, Statement: "statement 2", Reason: "statement 2 denies s3:GetObject for AWS principal " + root + ": it has no conditions"}},
		{"NotPrincipal allow excludes", `{"Statement":{"Effect":"Allow","NotPrincipal":{"AWS":"` + role + `"},"Action":"s3:*"}}`,
			iampolicy.Request{Principal: aws(role), Action: "s3:GetObject"},
			iampolicy.Decision{Reason: "no statement allows AWS principal " + role + " to perform s3:GetObject (statement 1 excludes it with NotPrincipal)"}},
		{"NotAction allows the rest", `{"Statement":{"Effect":"Allow","NotAction":"iam:*","Resource":"*"}}`,
			iampolicy.Request{Action: "s3:GetObject", Resource: object},
			iampolicy.Decision{Effect: iampolicy.Allow, Statement: "statement 1", Reason: "statement 1 allows s3:GetObject on " + object}},
		{"NotAction excludes", `{"Statement":{"Effect":"Allow","NotAction":["iam:*","sts:*"],"Resource":"*"}}`,
			iampolicy.Request{Action: "IAM:CreateUser", Resource: object},
			iampolicy.Decision{Reason: "no statement allows IAM:CreateUser on " + object}},
		{"actions ignore case", `{"Statement":{"Effect":"Allow","Action":"STS:assumerole"}}`,
			iampolicy.Request{Action: "sts:AssumeRole"},
			iampolicy.Decision{Effect: iampolicy.Allow, Statement: "statement 1", Reason: "statement 1 allows sts:AssumeRole"}},
		{"action wildcards", `{"Statement":{"Effect":"Allow","Action":["sts:Tag*","sts:?ssumeRole"]}}`,
			iampolicy.Request{Action: "sts:AssumeRole"},
			iampolicy.Decision{Effect: iampolicy.Allow, Statement: "statement 1", Reason: "statement 1 allows sts:AssumeRole"}},
		{"action wildcard is whole", `{"Statement":{"Effect":"Allow","Action":"sts:Assume"}}`,
			iampolicy.Request{Action: "sts:AssumeRole"},
			iampolicy.Decision{Reason: "no statement allows sts:AssumeRole"}},
		{"resource mismatch", `{"Statement":{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::other/*"}}`,
			iampolicy.Request{Action: "s3:GetObject", Resource: object},
			iampolicy.Decision{Reason: "statement 1: resource " + object + " does not match its Resource"}},
		{"resource is case-sensitive", `{"Statement":{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::Bucket/*"}}`,
			iampolicy.Request{Action: "s3:GetObject", Resource: object},
			iampolicy.Decision{Reason: "statement 1: resource " + object + " does not match its Resource"}},
		{"resource not checked when empty", `{"Statement":{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::other/*"}}`,
			iampolicy.Request{Action: "s3:GetObject"},
			iampolicy.Decision{Effect: iampolicy.Allow, Statement: "statement 1", Reason: "statement 1 allows s3:GetObject"}},
		{"resource variable", `{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::bucket/${aws:username}/*"}}`,
			iampolicy.Request{Action: "s3:GetObject", Resource: "arn:aws:s3:::bucket/bob/k", Context: ctx{"aws:username": {"bob"}}},
			iampolicy.Decision{Effect: iampolicy.Allow, Statement: "statement 1", Reason: "statement 1 allows s3:GetObject on arn:aws:s3:::bucket/bob/k"}},
		{"resource variable absent", `{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::bucket/${aws:username}/*"}}`,
			iampolicy.Request{Action: "s3:GetObject", Resource: "arn:aws:s3:::bucket/bob/k"},
			iampolicy.Decision{Reason: "statement 1: resource arn:aws:s3:::bucket/bob/k does not match its Resource (policy variable ${aws:username} is not in the request)"}},
		{"NotResource", `{"Statement":{"Effect":"Allow","Action":"s3:GetObject","NotResource":"arn:aws:s3:::secret/*"}}`,
			iampolicy.Request{Action: "s3:GetObject", Resource: object},
			iampolicy.Decision{Effect: iampolicy.Allow, Statement: "statement 1", Reason: "statement 1 allows s3:GetObject on " + object}},
		{"NotResource excludes", `{"Statement":{"Effect":"Allow","Action":"s3:GetObject","NotResource":"arn:aws:s3:::secret/*"}}`,
			iampolicy.Request{Action: "s3:GetObject", Resource: "arn:aws:s3:::secret/k"},
			iampolicy.Decision{Reason: "statement 1: resource arn:aws:s3:::secret/k is excluded by its NotResource"}},
		{"explicit deny overrides allow", `{"Statement":[{"Sid":"AllowAll","Effect":"Allow","Principal":"*","Action":"sts:*"},{"Effect":"Deny","Principal":"*","Action":"sts:AssumeRole","Condition":{"StringEquals":{"aws:PrincipalTag/x509Subject/OU":"contractors"}}}]}`,
			iampolicy.Request{Principal: service, Action: "sts:AssumeRole", Context: ctx{"aws:PrincipalTag/x509Subject/OU": {"contractors"}}},
			iampolicy.Decision{Effect: iampolicy.Deny, Statement: "statement 2", Reason: "statement 2 denies sts:AssumeRole for service rolesanywhere.amazonaws.com: its conditions match"}},
		{"deny whose condition fails", `{"Statement":[{"Sid":"AllowAll","Effect":"Allow","Principal":"*","Action":"sts:*"},{"Effect":"Deny","Principal":"*","Action":"sts:AssumeRole","Condition":{"StringEquals":{"aws:PrincipalTag/x509Subject/OU":"contractors"}}}]}`,
			iampolicy.Request{Principal: service, Action: "sts:AssumeRole", Context: ctx{"aws:PrincipalTag/x509Subject/OU": {"staff"}}},
			iampolicy.Decision{Effect: iampolicy.Allow, Statement: "AllowAll", Reason: `statement "AllowAll" allows service rolesanywhere.amazonaws.com to perform sts:AssumeRole`}},
		{"deny first in the document", `{"Statement":[{"Sid":"DenyAll","Effect":"Deny","Action":"*","Resource":"*"},{"Effect":"Allow","Action":"*","Resource":"*"}]}`,
			iampolicy.Request{Action: "s3:GetObject", Resource: object},
			iampolicy.Decision{Effect: iampolicy.Deny, Statement: "DenyAll", Reason: `statement "DenyAll" denies s3:GetObject on ` + object + `: it has no conditions`}},
		{"first applicable allow decides", `{"Statement":[{"Sid":"A","Effect":"Allow","Action":"s3:Put*"},{"Sid":"B","Effect":"Allow","Action":"s3:*"},{"Sid":"C","Effect":"Allow","Action":"*"}]}`,
			iampolicy.Request{Action: "s3:GetObject"},
			iampolicy.Decision{Effect: iampolicy.Allow, Statement: "B", Reason: `statement "B" allows s3:GetObject`}},
		{"near misses joined", `{"Statement":[{"Sid":"Runner","Effect":"Allow","Action":"sts:AssumeRole","Condition":{"StringEquals":{"aws:PrincipalTag/x509Subject/CN":"gitlab-runner"}}},{"Sid":"Deploy","Effect":"Allow","Action":"sts:AssumeRole","Condition":{"StringLike":{"aws:PrincipalTag/x509Subject/CN":["deploy-*","release-*"]}}}]}`,
			iampolicy.Request{Action: "sts:AssumeRole", Context: ctx{runnerCN: {"runner-2"}}},
			iampolicy.Decision{Reason: `statement "Runner": condition StringEquals aws:PrincipalTag/x509Subject/CN: got "runner-2", want "gitlab-runner"; statement "Deploy": condition StringLike aws:PrincipalTag/x509Subject/CN: got "runner-2", want one of "deploy-*", "release-*"`}},
		{"first failing condition in sorted order", `{"Statement":{"Effect":"Allow","Action":"sts:AssumeRole","Condition":{"StringEquals":{"s3:z":"1","s3:a":"2"},"Bool":{"aws:SecureTransport":"true"}}}}`,
			iampolicy.Request{Action: "sts:AssumeRole", Context: ctx{"aws:SecureTransport": {"true"}}},
			iampolicy.Decision{Reason: "statement 1: condition StringEquals s3:a: key s3:a is not in the request"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := mustParse(t, tt.doc).Evaluate(tt.req)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Evaluate (-want +got):\n%s", diff)
			}
		})
	}
}

func TestReasons(t *testing.T) {
	long := strings.Repeat("x", 300)
	tests := []struct {
		name string
		cond string
		ctx  ctx
		want string // after "statement 1: condition "
	}{
		{"several wanted", `{"StringEquals":{"s3:x":["a","b"]}}`, ctx{"s3:x": {"c"}},
			`StringEquals s3:x: got "c", want one of "a", "b"`},
		{"several got", `{"StringEquals":{"s3:x":"a"}}`, ctx{"s3:x": {"b", "c"}},
			`StringEquals s3:x: got ["b", "c"], want "a"`},
		{"absent", `{"StringLike":{"s3:x":"a*"}}`, ctx{},
			`StringLike s3:x: key s3:x is not in the request`},
		{"ignoring case", `{"StringEqualsIgnoreCase":{"s3:x":"ABC"}}`, ctx{"s3:x": {"abd"}},
			`StringEqualsIgnoreCase s3:x: got "abd", want "ABC" (ignoring case)`},
		{"negated one", `{"StringNotEquals":{"s3:x":"admin"}}`, ctx{"s3:x": {"admin"}},
			`StringNotEquals s3:x: got "admin", want anything but "admin"`},
		{"negated several", `{"StringNotLike":{"s3:x":["admin*","root"]}}`, ctx{"s3:x": {"root"}},
			`StringNotLike s3:x: got "root", want none of "admin*", "root"`},
		{"numeric", `{"NumericLessThan":{"s3:n":[10,20]}}`, ctx{"s3:n": {"25"}},
			`NumericLessThan s3:n: got "25", want < 10 or < 20`},
		{"not a number", `{"NumericGreaterThanEquals":{"s3:n":"10"}}`, ctx{"s3:n": {"ten"}},
			`NumericGreaterThanEquals s3:n: got "ten" (not a number), want >= 10`},
		{"date", `{"DateGreaterThan":{"aws:CurrentTime":"2026-01-01T00:00:00Z"}}`, ctx{"aws:CurrentTime": {"2025-06-01T00:00:00Z"}},
			`DateGreaterThan aws:CurrentTime: got "2025-06-01T00:00:00Z", want after "2026-01-01T00:00:00Z"`},
		{"bool", `{"Bool":{"aws:SecureTransport":true}}`, ctx{"aws:SecureTransport": {"no"}},
			`Bool aws:SecureTransport: got "no" (not "true" or "false"), want "true"`},
		{"ip", `{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}`, ctx{"aws:SourceIp": {"192.0.2.1"}},
			`IpAddress aws:SourceIp: got "192.0.2.1", want an address in "10.0.0.0/8"`},
		{"not ip", `{"NotIpAddress":{"aws:SourceIp":["10.0.0.0/8","192.0.2.0/24"]}}`, ctx{"aws:SourceIp": {"192.0.2.1"}},
			`NotIpAddress aws:SourceIp: got "192.0.2.1", want an address outside all of "10.0.0.0/8", "192.0.2.0/24"`},
		{"arn", `{"ArnLike":{"aws:SourceArn":"arn:aws:s3:::b"}}`, ctx{"aws:SourceArn": {"b"}},
			`ArnLike aws:SourceArn: got "b" (not an ARN), want "arn:aws:s3:::b"`},
		{"null absent wanted", `{"Null":{"aws:TokenIssueTime":"true"}}`, ctx{"aws:TokenIssueTime": {"2026-01-01T00:00:00Z"}},
			`Null aws:TokenIssueTime: key aws:TokenIssueTime is in the request (got "2026-01-01T00:00:00Z"), want it absent`},
		{"null present wanted", `{"Null":{"aws:TokenIssueTime":"false"}}`, ctx{},
			`Null aws:TokenIssueTime: key aws:TokenIssueTime is not in the request, want it present`},
		{"for all values", `{"ForAllValues:StringEquals":{"aws:TagKeys":["a","b"]}}`, ctx{"aws:TagKeys": {"a", "c"}},
			`ForAllValues:StringEquals aws:TagKeys: got "c" (value 2 of 2), want one of "a", "b"`},
		{"for any value absent", `{"ForAnyValue:StringEquals":{"aws:TagKeys":"a"}}`, ctx{},
			`ForAnyValue:StringEquals aws:TagKeys: key aws:TagKeys is not in the request`},
		{"unresolved variable", `{"StringLike":{"s3:prefix":"home/${aws:username}/*"}}`, ctx{"s3:prefix": {"home/bob/x"}},
			`StringLike s3:prefix: got "home/bob/x", want "home/${aws:username}/*" (policy variable ${aws:username} is not in the request)`},
		{"resolved variable", `{"StringLike":{"s3:prefix":"home/${aws:username}/*"}}`, ctx{"s3:prefix": {"home/bob/x"}, "aws:username": {"alice"}},
			`StringLike s3:prefix: got "home/bob/x", want "home/alice/*"`},
		{"long value cut", `{"StringEquals":{"s3:x":"a"}}`, ctx{"s3:x": {long}},
			`StringEquals s3:x: got "` + long[:100] + `"..., want "a"`},
		{"many values cut", `{"StringEquals":{"s3:x":"a"}}`, ctx{"s3:x": strings.Split("b c d e f g h i j k l m", " ")},
			`StringEquals s3:x: got ["b", "c", "d", "e", "f", "g", "h", "i", "j", "k", and 2 more], want "a"`},
		{"control characters quoted", `{"StringEquals":{"s3:x":"a"}}`, ctx{"s3:x": {"b\nc"}},
			`StringEquals s3:x: got "b\nc", want "a"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := evalCondition(t, "2012-10-17", tt.cond, tt.ctx)
			want := "statement 1: condition " + tt.want
			if d.Effect != iampolicy.ImplicitDeny || d.Reason != want {
				t.Errorf("got %v %q\nwant implicit deny %q", d.Effect, d.Reason, want)
			}
			if strings.ContainsAny(d.Reason, "\r\n") {
				t.Errorf("reason %q is not one line", d.Reason)
			}
		})
	}
}

func TestEffectString(t *testing.T) {
	for e, want := range map[iampolicy.Effect]string{iampolicy.ImplicitDeny: "implicit deny", iampolicy.Allow: "allow", iampolicy.Deny: "deny", 7: "Effect(7)"} {
		if got := e.String(); got != want {
			t.Errorf("Effect(%d).String() = %q, want %q", int(e), got, want)
		}
	}
	var zero iampolicy.Decision
	if zero.Effect != iampolicy.ImplicitDeny || zero.Allowed() {
		t.Error("the zero Decision must be an implicit deny")
	}
}

func TestNilPolicy(t *testing.T) {
	var p *iampolicy.Policy
	if d := p.Evaluate(iampolicy.Request{Action: "sts:AssumeRole"}); d.Allowed() || d.Reason == "" {
		t.Errorf("nil policy: %+v", d)
	}
}

// TestPathologicalWildcards must finish quickly: a backtracking matcher
// would take exponential time on these.
func TestPathologicalWildcards(t *testing.T) {
	pat := strings.Repeat("*a", 30) + "*b"
	p := mustParse(t, `{"Statement":{"Effect":"Allow","Action":"s3:`+pat+`","Condition":{"StringLike":{"s3:x":"`+pat+`"}}}}`)
	val := strings.Repeat("a", 5000)
	if d := p.Evaluate(iampolicy.Request{Action: "s3:" + val, Context: ctx{"s3:x": {val}}}); d.Allowed() {
		t.Errorf("allowed: %+v", d)
	}
	if d := p.Evaluate(iampolicy.Request{Action: "s3:" + val + "b", Context: ctx{"s3:x": {val + "b"}}}); !d.Allowed() {
		t.Errorf("not allowed: %+v", d)
	}
}

// TestConcurrentEvaluate runs under -race: a Policy is shared read-only.
func TestConcurrentEvaluate(t *testing.T) {
	p := mustParse(t, `{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"s3:*","Resource":"arn:aws:s3:::b/${aws:username}/*","Condition":{"StringLike":{"s3:prefix":"${aws:username}/*"}}}}`)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			user := fmt.Sprint("user", i)
			for range 100 {
				d := p.Evaluate(iampolicy.Request{Action: "s3:GetObject", Resource: "arn:aws:s3:::b/" + user + "/k",
					Context: ctx{"aws:username": {user}, "s3:prefix": {user + "/x"}}})
				if !d.Allowed() {
					t.Errorf("%s: %+v", user, d)
					return
				}
			}
		})
	}
	wg.Wait()
}

// TestContextKeysFor: every key a policy can read for a principal and
// its actions, from conditions and from policy variables in condition
// values and resources, sorted, once each; statements for other
// principals or actions are left out.
func TestContextKeysFor(t *testing.T) {
	p, err := iampolicy.Parse([]byte(`{"Version":"2012-10-17","Statement":[
	  {"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/${aws:username}/*",
	   "Condition":{"StringEquals":{"aws:PrincipalTag/team":"${aws:PrincipalTag/x509Subject/OU}","s3:prefix":"x"}}},
	  {"Effect":"Deny","Principal":{"Service":"rolesanywhere.amazonaws.com"},"Action":"s3:*","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":"false"},"StringEquals":{"aws:PrincipalTag/team":"y"}}},
	  {"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"s3:GetObject","Resource":"*","Condition":{"StringEquals":{"aws:RequestTag/team":"x"}}},
	  {"Effect":"Allow","Principal":"*","Action":"s3:PutObject","Resource":"*","Condition":{"StringEquals":{"aws:TagKeys":"x"}}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	ra := iampolicy.Principal{Type: "Service", ID: "rolesanywhere.amazonaws.com"}
	want := []string{"aws:PrincipalTag/team", "aws:PrincipalTag/x509Subject/OU", "aws:SecureTransport", "aws:username", "s3:prefix"}
	if got := p.ContextKeysFor(ra, []string{"s3:GetObject"}); !slices.Equal(got, want) {
		t.Errorf("ContextKeysFor() = %q, want %q", got, want)
	}
	if got := (*iampolicy.Policy)(nil).ContextKeysFor(ra, []string{"s3:GetObject"}); len(got) != 0 {
		t.Errorf("nil policy: %q", got)
	}
}
