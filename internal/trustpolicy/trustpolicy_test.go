package trustpolicy_test

import (
	"strings"
	"testing"
	"time"

	"github.com/keyless-dev/keyless/internal/iampolicy"
	"github.com/keyless-dev/keyless/internal/pki/pkitest"
	"github.com/keyless-dev/keyless/internal/trustpolicy"
)

const anchor = "arn:aws:rolesanywhere:us-east-1:111122223333:trust-anchor/3f7c1a0e-0000-4000-8000-000000000001"

// policy is the reference trust policy: the anchor, and CN gitlab-runner.
const policy = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow",
  "Principal":{"Service":"rolesanywhere.amazonaws.com"},
  "Action":["sts:AssumeRole","sts:TagSession","sts:SetSourceIdentity"],
  "Condition":{"ArnEquals":{"aws:SourceArn":"` + anchor + `"},
               "StringEquals":{"aws:PrincipalTag/x509Subject/CN":"gitlab-runner"}}}]}`

// TestEvaluate: the session the policy names is allowed; another CN, or
// another trust anchor, is refused with the condition that failed; a
// policy without sts:SetSourceIdentity is refused on that action.
func TestEvaluate(t *testing.T) {
	p, err := iampolicy.ParseTrustPolicy([]byte(policy))
	if err != nil {
		t.Fatal(err)
	}
	ca := pkitest.NewRoot(t, "trust-root")
	now := time.Now()
	tests := []struct {
		name, cn, anchor, doc, want string
	}{
		{name: "allowed", cn: "gitlab-runner", anchor: anchor},
		{name: "wrong CN", cn: "runner-2", anchor: anchor, want: `aws:PrincipalTag/x509Subject/CN: got "runner-2"`},
		{name: "wrong anchor", cn: "gitlab-runner", anchor: strings.Replace(anchor, "0001", "0009", 1), want: "aws:SourceArn"},
		{name: "missing action", cn: "gitlab-runner", anchor: anchor, doc: strings.Replace(policy, `,"sts:SetSourceIdentity"`, "", 1), want: "sts:SetSourceIdentity: implicit deny"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pol := p
			if tt.doc != "" {
				if pol, err = iampolicy.ParseTrustPolicy([]byte(tt.doc)); err != nil {
					t.Fatal(err)
				}
			}
			leaf := ca.Leaf(t, pkitest.LeafOptions{CommonName: tt.cn})
			r := trustpolicy.Evaluate(pol, trustpolicy.Session{Leaf: leaf, AnchorARN: tt.anchor, Account: "111122223333", Now: now})
			switch {
			case tt.want == "" && r != nil:
				t.Fatalf("refused: %v", r)
			case tt.want != "" && r == nil:
				t.Fatalf("allowed; want a refusal with %q", tt.want)
			case tt.want != "" && !strings.Contains(r.Error(), tt.want):
				t.Fatalf("refusal %q; want it to contain %q", r.Error(), tt.want)
			}
		})
	}
}

// TestEvaluateBadTag: a subject attribute that is no valid session tag
// value is refused before the policy is asked, as AWS refuses it.
func TestEvaluateBadTag(t *testing.T) {
	p, err := iampolicy.ParseTrustPolicy([]byte(policy))
	if err != nil {
		t.Fatal(err)
	}
	leaf := pkitest.NewRoot(t, "trust-root").Leaf(t, pkitest.LeafOptions{CommonName: "gitlab-runner;rm"})
	r := trustpolicy.Evaluate(p, trustpolicy.Session{Leaf: leaf, AnchorARN: anchor, Account: "111122223333", Now: time.Now()})
	if r == nil || len(r.BadTags) == 0 || !strings.Contains(r.Error(), "x509Subject/CN") {
		t.Fatalf("got %v; want a refusal naming x509Subject/CN", r)
	}
}
