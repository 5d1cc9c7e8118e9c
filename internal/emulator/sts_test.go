package emulator_test

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"

	"github.com/keyless-dev/keyless/internal/pki/pkitest"
	"github.com/keyless-dev/keyless/internal/rolesanywhere"
	"github.com/keyless-dev/keyless/internal/sigv4"
)

// session gets credentials from the emulator with keyless's own
// CreateSession client.
func (e *env) session(input rolesanywhere.SessionInput) *rolesanywhere.Session {
	e.t.Helper()
	s, err := e.trySession(e.signer(), input)
	if err != nil {
		e.t.Fatalf("%v", err)
	}
	return s
}

// signer is a runner's signer: a fresh P-256 gitlab-runner leaf and the
// intermediate.
func (e *env) signer() *sigv4.X509Signer {
	key := pkitest.Key(e.t, pkitest.P256)
	return &sigv4.X509Signer{Key: key, Certificate: e.leaf(pkitest.LeafOptions{Key: key}), Intermediates: []*x509.Certificate{e.inter.Cert}}
}

// trySession is session for goroutines other than the test's: it
// reports errors instead of failing the test.
func (e *env) trySession(signer *sigv4.X509Signer, input rolesanywhere.SessionInput) (*rolesanywhere.Session, error) {
	client, err := rolesanywhere.New(rolesanywhere.Config{
		Endpoint:   e.srv.URL,
		Region:     "us-east-1",
		Signer:     signer,
		HTTPClient: e.srv.Client(),
		Now:        e.now,
	})
	if err != nil {
		return nil, err
	}
	if input.TrustAnchorARN == "" {
		input.TrustAnchorARN = e.out.TrustAnchors["gitlab-runner-ca"]
		input.ProfileARN = e.out.Profiles["homelab-profile"]
		input.RoleARN = e.out.Roles["ci-deployer"]
	}
	s, err := client.CreateSession(context.Background(), input)
	if err != nil {
		return nil, fmt.Errorf("CreateSession: %w", err)
	}
	return s, nil
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
	var sendPayload func(body, payloadHash string, date time.Time, mutate func(*http.Request)) (int, string)
	send := func(body string, date time.Time, mutate func(*http.Request)) (int, string) {
		return sendPayload(body, sigv4.PayloadHash([]byte(body)), date, mutate)
	}
	sendPayload = func(body, payloadHash string, date time.Time, mutate func(*http.Request)) (int, string) {
		req, err := http.NewRequest(http.MethodPost, e.srv.URL+"/", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
		creds := aws.Credentials{AccessKeyID: s.Credentials.AccessKeyID, SecretAccessKey: s.Credentials.SecretAccessKey, SessionToken: s.Credentials.SessionToken}
		if payloadHash == "UNSIGNED-PAYLOAD" {
			req.Header.Set("X-Amz-Content-Sha256", payloadHash)
		}
		if err := signer.SignHTTP(context.Background(), creds, req, payloadHash, "sts", "us-east-1", date); err != nil {
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
	t.Run("unsigned payload", func(t *testing.T) {
		// Only S3 takes UNSIGNED-PAYLOAD; STS's body carries the action,
		// so a signature that leaves it out must not verify.
		status, body := sendPayload(action, "UNSIGNED-PAYLOAD", e.now(), nil)
		if status != http.StatusForbidden || !strings.Contains(body, "SignatureDoesNotMatch") {
			t.Errorf("got %d %s, want 403 SignatureDoesNotMatch", status, body)
		}
	})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := send(tt.body, e.now().Add(tt.date), tt.mutate)
			if status != tt.status || !strings.Contains(body, tt.code) {
				t.Errorf("got %d %s, want %d containing %q", status, body, tt.status, tt.code)
			}
		})
	}
}

// TestConcurrentSessions runs CreateSession and GetCallerIdentity from
// many goroutines at once; under -race it checks the emulator's state is
// safely shared, and every caller sees its own identity.
func TestConcurrentSessions(t *testing.T) {
	e := newEnv(t, setup{acceptSessionName: true})
	const workers, each = 8, 5
	errs := make(chan error, workers*each)
	var wg sync.WaitGroup
	for w := range workers {
		signer := e.signer()
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				name := fmt.Sprintf("worker-%d-%d", w, i)
				s, err := e.trySession(signer, rolesanywhere.SessionInput{RoleSessionName: name})
				if err != nil {
					errs <- err
					continue
				}
				out, err := e.stsClient(s.Credentials, "us-east-1").GetCallerIdentity(context.Background(), &sts.GetCallerIdentityInput{})
				if err != nil {
					errs <- err
					continue
				}
				if !strings.HasSuffix(aws.ToString(out.Arn), "/"+name) {
					errs <- fmt.Errorf("session %s answered as %s", name, aws.ToString(out.Arn))
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := e.emu.ActiveCredentials(); n != workers*each {
		t.Errorf("ActiveCredentials = %d, want %d", n, workers*each)
	}
}

func TestHealthAndUnknownPaths(t *testing.T) {
	e := newEnv(t, setup{})
	for path, want := range map[string]int{"/health": 200, "/trustanchors": 404, "/sessions/x": 404} {
		resp, err := e.srv.Client().Get(e.srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s: %d %s, want %d", path, resp.StatusCode, body, want)
		}
	}
	resp, err := e.srv.Client().Get(e.srv.URL + "/sessions")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET /sessions: %d, want 405", resp.StatusCode)
	}
}
