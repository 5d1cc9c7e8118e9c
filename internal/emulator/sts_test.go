package emulator_test

import (
	"context"
	"crypto/x509"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"

	"github.com/keyless-dev/keyless/internal/pki/pkitest"
	"github.com/keyless-dev/keyless/internal/rolesanywhere"
	"github.com/keyless-dev/keyless/internal/sigv4x509"
)

// session gets credentials from the emulator with keyless's own
// CreateSession client.
func (e *env) session(input rolesanywhere.SessionInput) *rolesanywhere.Session {
	t := e.t
	t.Helper()
	key := pkitest.Key(t, pkitest.P256)
	client, err := rolesanywhere.New(rolesanywhere.Config{
		Endpoint:   e.srv.URL,
		Region:     "us-east-1",
		Signer:     &sigv4x509.Signer{Key: key, Certificate: e.leaf(pkitest.LeafOptions{Key: key}), Intermediates: []*x509.Certificate{e.inter.Cert}},
		HTTPClient: e.srv.Client(),
		Now:        e.now,
	})
	if err != nil {
		t.Fatal(err)
	}
	if input.TrustAnchorARN == "" {
		input.TrustAnchorARN = e.out.TrustAnchors["gitlab-runner-ca"]
		input.ProfileARN = e.out.Profiles["homelab-profile"]
		input.RoleARN = e.out.Roles["ci-deployer"]
	}
	s, err := client.CreateSession(context.Background(), input)
	if err != nil {
		t.Fatalf("CreateSession: %v", err)
	}
	return s
}

// stsClient is the AWS SDK for Go v2's STS client pointed at the emulator.
// It signs with the real clock, which the emulator's fixed test clock is
// within seconds of.
func (e *env) stsClient(c rolesanywhere.Credentials, region string) *sts.Client {
	return sts.New(sts.Options{
		Region:           region,
		BaseEndpoint:     aws.String(e.srv.URL),
		Credentials:      credentials.NewStaticCredentialsProvider(c.AccessKeyID, c.SecretAccessKey, c.SessionToken),
		HTTPClient:       e.srv.Client(),
		RetryMaxAttempts: 1,
	})
}

func TestGetCallerIdentityWithAWSSDK(t *testing.T) {
	e := newEnv(t, setup{})
	s := e.session(rolesanywhere.SessionInput{})
	out, err := e.stsClient(s.Credentials, "us-east-1").GetCallerIdentity(context.Background(), &sts.GetCallerIdentityInput{})
	if err != nil {
		t.Fatalf("GetCallerIdentity: %v", err)
	}
	if aws.ToString(out.Arn) != s.AssumedRoleARN {
		t.Errorf("Arn = %s, want %s", aws.ToString(out.Arn), s.AssumedRoleARN)
	}
	if !strings.HasPrefix(aws.ToString(out.Arn), "arn:aws:sts::111122223333:assumed-role/ci-deployer/") {
		t.Errorf("Arn = %s", aws.ToString(out.Arn))
	}
	if aws.ToString(out.Account) != "111122223333" || aws.ToString(out.UserId) != s.AssumedRoleID {
		t.Errorf("Account %s, UserId %s (want %s)", aws.ToString(out.Account), aws.ToString(out.UserId), s.AssumedRoleID)
	}
}

func TestGetCallerIdentityRefuses(t *testing.T) {
	tests := []struct {
		name   string
		modify func(e *env, c *rolesanywhere.Credentials) (region string)
		code   string
	}{
		{name: "expired credentials", code: "ExpiredToken", modify: func(e *env, c *rolesanywhere.Credentials) string {
			e.advance(time.Hour + time.Second)
			return "us-east-1"
		}},
		{name: "unknown access key", code: "InvalidClientTokenId", modify: func(e *env, c *rolesanywhere.Credentials) string {
			c.AccessKeyID = "ASIAAAAAAAAAAAAAAAAA"
			return "us-east-1"
		}},
		{name: "wrong session token", code: "InvalidClientTokenId", modify: func(e *env, c *rolesanywhere.Credentials) string {
			c.SessionToken = c.SessionToken[1:]
			return "us-east-1"
		}},
		{name: "wrong secret", code: "SignatureDoesNotMatch", modify: func(e *env, c *rolesanywhere.Credentials) string {
			c.SecretAccessKey = strings.ToLower(c.SecretAccessKey)
			return "us-east-1"
		}},
		{name: "region the emulator does not serve", code: "SignatureDoesNotMatch", modify: func(e *env, c *rolesanywhere.Credentials) string {
			return "eu-west-1"
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, setup{})
			s := e.session(rolesanywhere.SessionInput{})
			c := s.Credentials
			region := tt.modify(e, &c)
			_, err := e.stsClient(c, region).GetCallerIdentity(context.Background(), &sts.GetCallerIdentityInput{})
			var apiErr smithy.APIError
			if !errors.As(err, &apiErr) {
				t.Fatalf("got %v, want API error %s", err, tt.code)
			}
			if apiErr.ErrorCode() != tt.code {
				t.Errorf("code %s (%s), want %s", apiErr.ErrorCode(), apiErr.ErrorMessage(), tt.code)
			}
		})
	}
}

func TestSTSRawRefusals(t *testing.T) {
	e := newEnv(t, setup{})
	s := e.session(rolesanywhere.SessionInput{})
	signer := v4.NewSigner()
	send := func(body string, date time.Time, mutate func(*http.Request)) (int, string) {
		req, err := http.NewRequest(http.MethodPost, e.srv.URL+"/", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
		creds := aws.Credentials{AccessKeyID: s.Credentials.AccessKeyID, SecretAccessKey: s.Credentials.SecretAccessKey, SessionToken: s.Credentials.SessionToken}
		if err := signer.SignHTTP(context.Background(), creds, req, sigv4x509.PayloadHash([]byte(body)), "sts", "us-east-1", date); err != nil {
			t.Fatal(err)
		}
		if mutate != nil {
			mutate(req)
		}
		resp, err := e.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b strings.Builder
		_, _ = io.Copy(&b, resp.Body)
		return resp.StatusCode, b.String()
	}
	const action = "Action=GetCallerIdentity&Version=2011-06-15"
	tests := []struct {
		name   string
		body   string
		date   time.Duration
		mutate func(*http.Request)
		status int
		code   string
	}{
		{name: "signed body", body: action, status: 200, code: "<Arn>arn:aws:sts::111122223333:assumed-role/ci-deployer/"},
		{name: "tampered body", body: action, mutate: func(r *http.Request) {
			r.Body = io.NopCloser(strings.NewReader(action + "&x=1"))
			r.ContentLength += 4
		}, status: 403, code: "SignatureDoesNotMatch"},
		{name: "date 6 minutes off", body: action, date: -6 * time.Minute, status: 403, code: "Signature expired"},
		{name: "no Authorization", body: action, mutate: func(r *http.Request) { r.Header.Del("Authorization") }, status: 403, code: "MissingAuthenticationToken"},
		{name: "no security token", body: action, mutate: func(r *http.Request) { r.Header.Del("X-Amz-Security-Token") }, status: 403, code: "InvalidClientTokenId"},
		{name: "other action", body: "Action=AssumeRole&Version=2011-06-15", status: 400, code: "InvalidAction"},
		{name: "no action", body: "Version=2011-06-15", status: 400, code: "MissingAction"},
		{name: "presigned", body: action, mutate: func(r *http.Request) { r.URL.RawQuery = "X-Amz-Algorithm=AWS4-HMAC-SHA256" }, status: 403, code: "not supported"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := send(tt.body, e.now().Add(tt.date), tt.mutate)
			if status != tt.status || !strings.Contains(body, tt.code) {
				t.Errorf("got %d %s, want %d containing %q", status, body, tt.status, tt.code)
			}
		})
	}
}
