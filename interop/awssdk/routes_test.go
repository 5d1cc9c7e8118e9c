package awssdk_test

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/keyless-dev/keyless/interop/awssdk/awsmodel"
	"github.com/keyless-dev/keyless/interop/awssdk/cptest"

	"github.com/keyless-dev/keyless/internal/sigv4"
	"github.com/keyless-dev/keyless/internal/testkit"
)

// iamOperations are the IAM operations the emulator serves: those
// Terraform's aws_iam_role and aws_iam_role_policy_attachment call on
// create, read, update and delete, and those the issue names.
var iamOperations = []string{
	"CreateRole", "GetRole", "DeleteRole", "UpdateRole", "UpdateAssumeRolePolicy", "UpdateRoleDescription",
	"AttachRolePolicy", "DetachRolePolicy", "ListAttachedRolePolicies",
	"PutRolePolicy", "GetRolePolicy", "DeleteRolePolicy", "ListRolePolicies",
	"TagRole", "UntagRole", "ListRoleTags", "ListRoles", "ListInstanceProfilesForRole",
}

// TestEveryOperationIsServed sends every Roles Anywhere operation of AWS's
// model, and every IAM operation in iamOperations, signed with the
// operator key, for resources that do not exist: the emulator must know
// each one (no UnknownOperationException or InvalidAction), and its
// refusal (not found, invalid input) must be one of the operation's
// errors in the model, which cptest's recorder checks.
func TestEveryOperationIsServed(t *testing.T) {
	e := cptest.Start(t)
	models, err := awsmodel.LoadDir(awsmodel.Dir())
	if err != nil {
		t.Fatal(err)
	}
	const missing = "3f7c1a0e-0000-4000-8000-00000000dead"
	label := regexp.MustCompile(`\{[^}]+\}`)
	ra := models.Service("rolesanywhere")[0]
	var names []string
	for name := range ra.Operations {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		op := ra.Operations[name]
		path, query, _ := strings.Cut(op.RequestURI, "?")
		path = label.ReplaceAllString(path, missing)
		u := e.URL + path
		q := url.Values{}
		if query != "" {
			q, _ = url.ParseQuery(query)
		}
		switch name {
		case "ListTagsForResource":
			q.Set("resourceArn", "arn:aws:rolesanywhere:us-east-1:111122223333:trust-anchor/"+missing)
		case "DeleteAttributeMapping":
			q.Set("certificateField", "x509Subject")
		}
		if len(q) > 0 {
			u += "?" + q.Encode()
		}
		body := ""
		if op.Method != http.MethodGet && op.Method != http.MethodDelete {
			body = "{}"
			switch name {
			case "TagResource":
				body = `{"resourceArn":"arn:aws:rolesanywhere:us-east-1:111122223333:trust-anchor/` + missing + `","tags":[{"key":"k","value":"v"}]}`
			case "UntagResource":
				body = `{"resourceArn":"arn:aws:rolesanywhere:us-east-1:111122223333:trust-anchor/` + missing + `","tagKeys":["k"]}`
			case "PutAttributeMapping":
				body = `{"certificateField":"x509Subject","mappingRules":[{"specifier":"CN"}]}`
			}
		}
		status, got := signedCall(t, e, op.Method, u, body, "rolesanywhere", "application/json")
		if strings.Contains(got, "UnknownOperation") || status >= 500 {
			t.Errorf("%s (%s %s): %d %s", name, op.Method, op.RequestURI, status, got)
		}
	}
	for _, name := range iamOperations {
		form := url.Values{"Action": {name}, "Version": {"2010-05-08"}, "RoleName": {"nobody"}}
		status, got := signedCall(t, e, http.MethodPost, e.URL+"/", form.Encode(), "iam", "application/x-www-form-urlencoded; charset=utf-8")
		if strings.Contains(got, "<Code>InvalidAction</Code>") || status >= 500 {
			t.Errorf("IAM %s: %d %s", name, status, got)
		}
	}
}

// signedCall sends a request signed with the operator key by the SDK's
// SigV4 signer and returns the status and the error type header (rest-json)
// and body.
func signedCall(t *testing.T, e *cptest.Env, method, u, body, service, contentType string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", contentType)
	}
	creds := aws.Credentials{AccessKeyID: cptest.AccessKeyID, SecretAccessKey: cptest.SecretAccessKey}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, sigv4.PayloadHash([]byte(body)), service, cptest.Region, time.Now()); err != nil {
		t.Fatal(err)
	}
	resp, got := testkit.Do(t, e.Client(), req)
	return resp.StatusCode, resp.Header.Get("X-Amzn-ErrorType") + " " + string(got)
}
