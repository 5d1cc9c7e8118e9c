package emulator_test

import (
	"cmp"
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

	"github.com/keyless-dev/keyless/internal/pki/pkitest"
	"github.com/keyless-dev/keyless/internal/rolesanywhere"
	"github.com/keyless-dev/keyless/internal/sigv4"
	"github.com/keyless-dev/keyless/internal/sts"
	"github.com/keyless-dev/keyless/internal/testkit"
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

// stsClient is keyless's STS client for c, pointed at the emulator; the
// AWS SDK for Go's own is checked in interop/awssdk.
func (e *env) stsClient(region string) *sts.Client {
	c := sts.New(e.srv.URL, region)
	c.Now = e.now
	return c
}

func TestGetCallerIdentity(t *testing.T) {
	e := newEnv(t, setup{})
	s := e.session(rolesanywhere.SessionInput{})
	id, err := e.stsClient("us-east-1").GetCallerIdentity(context.Background(), s.Credentials)
	if err != nil {
		t.Fatalf("GetCallerIdentity: %v", err)
	}
	if id.Arn != s.AssumedRoleARN || !strings.HasPrefix(id.Arn, "arn:aws:sts::111122223333:assumed-role/ci-deployer/") ||
		id.Account != "111122223333" || id.UserID != s.AssumedRoleID {
		t.Errorf("got %+v, want %s", id, s.AssumedRoleARN)
	}
}

// TestSTSRefusals breaks each rule of the emulator's STS once, with
// requests signed by keyless's own signer (interop/awssdk sends the AWS
// SDK's).
func TestSTSRefusals(t *testing.T) {
	const action = "Action=GetCallerIdentity&Version=2011-06-15"
	for _, tt := range []struct {
		name   string
		body   string
		date   time.Duration
		region string
		creds  func(c *rolesanywhere.Credentials)
		mutate func(*http.Request)
		status int
		code   string
	}{
		{name: "signed body", body: action, status: 200, code: "<Arn>arn:aws:sts::111122223333:assumed-role/ci-deployer/"},
		{name: "tampered body", body: action, mutate: func(r *http.Request) {
			r.Body = io.NopCloser(strings.NewReader(action + "&x=1"))
			r.ContentLength += 4
		}, status: 403, code: "SignatureDoesNotMatch"},
		{name: "date 16 minutes off", body: action, date: -16 * time.Minute, status: 403, code: "Signature expired"},
		{name: "no Authorization", body: action, mutate: func(r *http.Request) { r.Header.Del("Authorization") }, status: 403, code: "MissingAuthenticationToken"},
		{name: "no security token", body: action, mutate: func(r *http.Request) { r.Header.Del("X-Amz-Security-Token") }, status: 403, code: "InvalidClientTokenId"},
		{name: "unknown access key", body: action, creds: func(c *rolesanywhere.Credentials) { c.AccessKeyID = "ASIAAAAAAAAAAAAAAAAA" }, status: 403, code: "InvalidClientTokenId"},
		{name: "wrong secret", body: action, creds: func(c *rolesanywhere.Credentials) { c.SecretAccessKey = strings.ToLower(c.SecretAccessKey) }, status: 403, code: "SignatureDoesNotMatch"},
		{name: "region not served", body: action, region: "eu-west-1", status: 403, code: "Credential should be scoped to a valid region"},
		{name: "other action", body: "Action=AssumeRole&Version=2011-06-15", status: 400, code: "InvalidAction"},
		{name: "no action", body: "Version=2011-06-15", status: 400, code: "MissingAction"},
		{name: "presigned", body: action, mutate: func(r *http.Request) { r.URL.RawQuery = "X-Amz-Algorithm=AWS4-HMAC-SHA256" }, status: 403, code: "not supported"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, setup{})
			c := e.session(rolesanywhere.SessionInput{}).Credentials
			if tt.creds != nil {
				tt.creds(&c)
			}
			region := cmp.Or(tt.region, "us-east-1")
			req, err := http.NewRequest(http.MethodPost, e.srv.URL+"/", strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
			if err := sigv4.SignHMAC(req, []byte(tt.body), c, region, "sts", e.now().Add(tt.date)); err != nil {
				t.Fatal(err)
			}
			if tt.mutate != nil {
				tt.mutate(req)
			}
			resp, body := testkit.Do(t, e.srv.Client(), req)
			if resp.StatusCode != tt.status || !strings.Contains(string(body), tt.code) {
				t.Errorf("got %d %s, want %d containing %q", resp.StatusCode, body, tt.status, tt.code)
			}
		})
	}
	t.Run("expired credentials", func(t *testing.T) {
		e := newEnv(t, setup{})
		c := e.session(rolesanywhere.SessionInput{}).Credentials
		e.advance(time.Hour + time.Second)
		_, err := e.stsClient("us-east-1").GetCallerIdentity(context.Background(), c)
		var ae *sts.APIError
		if !errors.As(err, &ae) || ae.Code != "ExpiredToken" {
			t.Errorf("got %v, want ExpiredToken", err)
		}
	})
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
				id, err := e.stsClient("us-east-1").GetCallerIdentity(context.Background(), s.Credentials)
				if err != nil {
					errs <- err
					continue
				}
				if !strings.HasSuffix(id.Arn, "/"+name) {
					errs <- fmt.Errorf("session %s answered as %s", name, id.Arn)
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
	for path, want := range map[string]int{"/health": 200, "/trustanchors": 403, "/certificates": 404, "/sessions/x": 404} {
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
