package iampolicy_test

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/keyless-dev/keyless/internal/iampolicy"
)

// fuzzPolicies is the fixed corpus FuzzEvaluate decides requests against:
// between them they use every operator family, both set operators,
// IfExists, Null, policy variables, NotPrincipal, NotAction and NotResource.
var fuzzPolicies = []string{
	trustPolicy,
	`{"Version":"2012-10-17","Statement":[
	  {"Sid":"Vars","Effect":"Allow","Principal":{"AWS":["111122223333","arn:aws:iam::444455556666:role/*"]},"Action":"s3:*",
	   "Resource":["arn:aws:s3:::b/${aws:username, 'anon'}/*","arn:aws:s3:::b/${*}${?}${$}"],
	   "Condition":{"StringLike":{"s3:prefix":["${aws:username}/*","home/${aws:PrincipalTag/team}?"]},
	                "ArnLike":{"aws:SourceArn":"arn:aws:*:${aws:RequestedRegion}:*:*"},
	                "BoolIfExists":{"aws:SecureTransport":"${aws:PrincipalTag/tls}"}}},
	  {"Effect":"Deny","NotPrincipal":{"Service":"rolesanywhere.amazonaws.com"},"NotAction":"sts:*","NotResource":"arn:aws:s3:::public/*",
	   "Condition":{"ForAnyValue:StringNotEqualsIgnoreCase":{"aws:TagKeys":["a","B"]},"Null":{"aws:TokenIssueTime":"false"}}}]}`,
	`{"Statement":[{"Effect":"Allow","Principal":"*","Action":"*","Condition":{
	   "NumericLessThan":{"s3:n":["10","-2.5"]},"NumericGreaterThanEqualsIfExists":{"s3:m":"0"},
	   "DateLessThan":{"aws:CurrentTime":"2030-01-01T00:00:00Z"},"DateGreaterThan":{"aws:EpochTime":1700000000},
	   "ForAllValues:IpAddress":{"aws:SourceIp":["10.0.0.0/8","2001:db8::/32"]},"NotIpAddress":{"aws:VpcSourceIp":"192.0.2.1"},
	   "BinaryEquals":{"s3:b":"QmluYXJ5"},"ArnNotEquals":{"aws:PrincipalArn":"arn:aws:iam::111122223333:root"},
	   "ForAllValues:StringNotLike":{"aws:TagKeys":"*?*"},"StringNotEquals":{"s3:x":["a","b"]},"Null":{"s3:y":true}}},
	  {"Effect":"Deny","Principal":{"Federated":"*"},"Action":["sts:AssumeRoleWith*"],"Condition":{"DateEquals":{"aws:CurrentTime":"2026-01-02"}}}]}`,
}

func FuzzParse(f *testing.F) {
	for _, doc := range fuzzPolicies {
		f.Add([]byte(doc))
	}
	f.Add([]byte(`{"Statement":{"Effect":"Allow","Action":"s3:*"}}`))
	f.Add([]byte(`{"Version":"2012-10-17","Statement":[{"Effect":"Deny","NotAction":["*"],"Principal":{"CanonicalUser":"x"},"Condition":{"StringEquals":{"a:b":[1,true,"x"]}}}]}`))
	f.Add([]byte(`{"Statement":[]} {}`))
	f.Add([]byte(`[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]`))
	f.Add([]byte(`{"Statement":{"Effect":"Allow","Action":"s3:x","Condition":{"StringLike":{"s3:x":"${"}}}}`))
	req := iampolicy.Request{
		Principal: service,
		Action:    "sts:AssumeRole",
		Resource:  "arn:aws:s3:::b/alice/k",
		Context: map[string][]string{
			"aws:SourceArn": {"arn:aws:rolesanywhere:us-east-1:111122223333:trust-anchor/x"},
			runnerCN:        {"gitlab-runner"},
			"aws:username":  {"alice"},
			"aws:TagKeys":   {"a", "b"},
			"s3:n":          {"3"},
			"aws:SourceIp":  {"10.0.0.1"},
		},
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		tp, terr := iampolicy.ParseTrustPolicy(doc)
		if terr != nil {
			if tp != nil {
				t.Fatal("ParseTrustPolicy returned a policy with its error")
			}
			if msg := terr.Error(); msg == "" || strings.HasSuffix(msg, ".") && !strings.HasSuffix(msg, `"...`) {
				t.Fatalf("bad error message %q", msg)
			}
		}
		p, err := iampolicy.Parse(doc)
		if err != nil {
			if p != nil {
				t.Fatal("Parse returned a policy with its error")
			}
			if terr == nil {
				t.Fatalf("ParseTrustPolicy accepted what Parse refuses: %v", err)
			}
			// No trailing period; a value clipped at the end of the
			// message ends it with an ellipsis, which is not one.
			msg := err.Error()
			if msg == "" || strings.HasSuffix(msg, ".") && !strings.HasSuffix(msg, `"...`) {
				t.Fatalf("bad error message %q", msg)
			}
			return
		}
		d := p.Evaluate(req)
		checkDecision(t, d)
		if tp != nil {
			if td := tp.Evaluate(req); !cmp.Equal(d, td) {
				t.Fatalf("a trust policy decides differently from the same policy from Parse:\n%+v\n%+v", d, td)
			}
		}
	})
}

func FuzzEvaluate(f *testing.F) {
	f.Add(uint8(0), "sts:AssumeRole", "rolesanywhere.amazonaws.com", "", "aws:PrincipalTag/x509Subject/CN", "gitlab-runner", "runner-2", "")
	f.Add(uint8(1), "s3:GetObject", "arn:aws:iam::444455556666:role/x", "arn:aws:s3:::b/anon/k", "aws:username", "${aws:username}", "*", "home/ci?")
	f.Add(uint8(2), "sts:AssumeRoleWithSAML", "*", "", "aws:CurrentTime", "2026-01-02", "1767312000", "10.0.0.1")
	f.Add(uint8(2), "x:y", "", "", "s3:n", "-3.0", "1e999999999", "QmluYXJ5")
	f.Fuzz(func(t *testing.T, which uint8, action, principal, resource, key, v1, v2, v3 string) {
		p, err := iampolicy.Parse([]byte(fuzzPolicies[int(which)%len(fuzzPolicies)]))
		if err != nil {
			t.Fatal(err)
		}
		// The fuzzed key and values go everywhere the policies look.
		c := map[string][]string{key: {v1, v2}}
		for _, k := range []string{"aws:SourceArn", runnerCN, "aws:username", "aws:PrincipalTag/team", "aws:RequestedRegion",
			"aws:PrincipalTag/tls", "aws:SecureTransport", "s3:prefix", "aws:TagKeys", "aws:TokenIssueTime", "s3:n", "s3:m",
			"aws:CurrentTime", "aws:EpochTime", "aws:SourceIp", "aws:VpcSourceIp", "s3:b", "aws:PrincipalArn", "s3:x", "s3:y"} {
			if k != key {
				c[strings.ToUpper(k)] = []string{v3}
			}
		}
		for _, typ := range []string{iampolicy.ServicePrincipal, iampolicy.AWSPrincipal, iampolicy.FederatedPrincipal} {
			r := iampolicy.Request{Principal: iampolicy.Principal{Type: typ, ID: principal}, Action: action, Resource: resource, Context: c}
			d := p.Evaluate(r)
			checkDecision(t, d)
			if again := p.Evaluate(r); !cmp.Equal(d, again) {
				t.Fatalf("not deterministic:\n%+v\n%+v", d, again)
			}
		}
	})
}

func checkDecision(t *testing.T, d iampolicy.Decision) {
	t.Helper()
	switch d.Effect {
	case iampolicy.ImplicitDeny:
		if d.Statement != "" {
			t.Fatalf("implicit deny names statement %q", d.Statement)
		}
	case iampolicy.Allow, iampolicy.Deny:
		if d.Statement == "" {
			t.Fatalf("%v names no statement", d.Effect)
		}
	default:
		t.Fatalf("effect %v", d.Effect)
	}
	if d.Reason == "" || strings.ContainsAny(d.Reason, "\r\n") {
		t.Fatalf("reason %q is not one line", d.Reason)
	}
}
