package iampolicy_test

import (
	"strings"
	"testing"

	"github.com/keyless-dev/keyless/internal/iampolicy"
)

func TestParseIdentityPolicy(t *testing.T) {
	tests := []struct {
		name, doc, wantErr string
	}{
		{name: "allow with resource", doc: `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::bucket/*"}]}`},
		{name: "NotResource", doc: `{"Version":"2012-10-17","Statement":{"Effect":"Deny","NotAction":"s3:*","NotResource":"*"}}`},
		{name: "principal", doc: `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"*"}]}`,
			wantErr: "statement 1: Policy document should not specify a principal"},
		{name: "NotPrincipal", doc: `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"},{"Effect":"Deny","NotPrincipal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"s3:*","Resource":"*"}]}`,
			wantErr: "statement 2: Policy document should not specify a principal"},
		{name: "no resource", doc: `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*"}]}`,
			wantErr: "statement 1: Policy statement must contain resources"},
		{name: "not a policy", doc: `{"Version":"2012-10-17"}`, wantErr: `no "Statement"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := iampolicy.ParseIdentityPolicy([]byte(tt.doc))
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}
