package awssdk_test

import (
	"context"
	"crypto/x509"
	"errors"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"

	"github.com/keyless-dev/keyless/internal/emulator/emulatortest"
	"github.com/keyless-dev/keyless/internal/pki/pkitest"
	"github.com/keyless-dev/keyless/internal/rolesanywhere"
	"github.com/keyless-dev/keyless/internal/sigv4"
	"github.com/keyless-dev/keyless/internal/testkit"
)

// env is the emulator on a fake clock and credentials from it.
type env struct {
	clock *testkit.Clock
	emu   *emulatortest.Server
	creds rolesanywhere.Credentials
	arn   string
	id    string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{clock: testkit.NewClock(time.Now().Truncate(time.Second))}
	root := pkitest.NewRoot(t, "awssdk-root")
	inter := root.Intermediate(t, "awssdk-int")
	e.emu = emulatortest.NewAt(t, e.clock.Now, nil, root.Cert)
	key := pkitest.Key(t, pkitest.P256)
	client, err := rolesanywhere.New(rolesanywhere.Config{Endpoint: e.emu.URL, Region: emulatortest.Region, Now: e.clock.Now,
		Signer: &sigv4.X509Signer{Key: key, Certificate: inter.Leaf(t, pkitest.LeafOptions{Key: key}), Intermediates: []*x509.Certificate{inter.Cert}}})
	if err != nil {
		t.Fatal(err)
	}
	s, err := client.CreateSession(context.Background(), rolesanywhere.SessionInput{TrustAnchorARN: e.emu.TrustAnchorARN, ProfileARN: e.emu.ProfileARN, RoleARN: e.emu.RoleARN})
	if err != nil {
		t.Fatal(err)
	}
	e.creds, e.arn, e.id = s.Credentials, s.AssumedRoleARN, s.AssumedRoleID
	return e
}

// stsClient is the SDK's STS client pointed at the emulator. It signs on
// the real clock, which the emulator's fake one starts at.
func (e *env) stsClient(c rolesanywhere.Credentials, region string) *sts.Client {
	return sts.New(sts.Options{
		Region:           region,
		BaseEndpoint:     aws.String(e.emu.URL),
		Credentials:      credentials.NewStaticCredentialsProvider(c.AccessKeyID, c.SecretAccessKey, c.SessionToken),
		HTTPClient:       e.emu.Client(),
		RetryMaxAttempts: 1,
	})
}

func TestMain(m *testing.M) { os.Exit(testkit.Main(m).Run()) }

func TestGetCallerIdentityWithAWSSDK(t *testing.T) {
	e := newEnv(t)
	out, err := e.stsClient(e.creds, "us-east-1").GetCallerIdentity(context.Background(), &sts.GetCallerIdentityInput{})
	if err != nil {
		t.Fatalf("GetCallerIdentity: %v", err)
	}
	if aws.ToString(out.Arn) != e.arn || !strings.HasPrefix(e.arn, "arn:aws:sts::111122223333:assumed-role/ci-deployer/") {
		t.Errorf("Arn = %s, want %s", aws.ToString(out.Arn), e.arn)
	}
	if aws.ToString(out.Account) != "111122223333" || aws.ToString(out.UserId) != e.id {
		t.Errorf("Account %s, UserId %s (want %s)", aws.ToString(out.Account), aws.ToString(out.UserId), e.id)
	}
}

// TestGetCallerIdentityRefuses: the SDK sees the emulator's refusals as
// API errors with AWS's codes.
func TestGetCallerIdentityRefuses(t *testing.T) {
	for _, tt := range []struct {
		name   string
		modify func(e *env, c *rolesanywhere.Credentials) (region string)
		code   string
	}{
		{name: "expired credentials", code: "ExpiredToken", modify: func(e *env, c *rolesanywhere.Credentials) string {
			e.clock.Advance(time.Hour + time.Second)
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
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			c := e.creds
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

// TestUnsignedPayloadRefused: only S3 takes UNSIGNED-PAYLOAD; STS's body
// carries the action, so the emulator refuses a signature that leaves it
// out, even one the SDK makes.
func TestUnsignedPayloadRefused(t *testing.T) {
	e := newEnv(t)
	const body = "Action=GetCallerIdentity&Version=2011-06-15"
	req, err := http.NewRequest(http.MethodPost, e.emu.URL+"/", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	req.Header.Set("X-Amz-Content-Sha256", "UNSIGNED-PAYLOAD")
	creds := aws.Credentials{AccessKeyID: e.creds.AccessKeyID, SecretAccessKey: e.creds.SecretAccessKey, SessionToken: e.creds.SessionToken}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, "UNSIGNED-PAYLOAD", "sts", "us-east-1", time.Now()); err != nil {
		t.Fatal(err)
	}
	resp, got := testkit.Do(t, e.emu.Client(), req)
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(got), "SignatureDoesNotMatch") {
		t.Errorf("got %d %s, want 403 SignatureDoesNotMatch", resp.StatusCode, got)
	}
}

// TestSignerMatchesSDK: keyless's SigV4 signer and the SDK's write the
// same Authorization header for the same requests: methods, paths that
// need escaping, queries, headers with odd spacing, bodies, session
// tokens.
func TestSignerMatchesSDK(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	paths := []string{"/", "/sessions", "/trustanchor/3f7c1a0e-0000-4000-8000-000000000001", "/a%20b/c%2Fd", "/~user/x.y_z-1"}
	queries := []string{"", "Action=ListRoles&Version=2010-05-08", "b=2&a=1&a=0", "k=a+b&k2=%7E%20x", "empty=", "a%2F=1&a-=2&a=x%2Fy&a=x-y"}
	bodies := []string{"", "Action=GetCallerIdentity&Version=2011-06-15", `{"durationSeconds":3600}`}
	for i := range 200 {
		method := []string{"GET", "POST", "PUT", "DELETE"}[rnd.IntN(4)]
		u := "https://iam.amazonaws.com" + paths[rnd.IntN(len(paths))]
		if q := queries[rnd.IntN(len(queries))]; q != "" {
			u += "?" + q
		}
		body := bodies[rnd.IntN(len(bodies))]
		c := sigv4.Credentials{AccessKeyID: "AKIDEXAMPLE", SecretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"}
		if rnd.IntN(2) == 0 {
			c.SessionToken = "token/with+chars=="
		}
		header := http.Header{"Content-Type": {"application/json"}}
		if rnd.IntN(2) == 0 {
			header.Set("X-Custom", "  spaced   value ")
		}
		if rnd.IntN(2) == 0 {
			header.Add("X-Multi", "one")
			header.Add("X-Multi", "two")
		}
		date := time.Date(2026, 11, 26, rnd.IntN(24), rnd.IntN(60), rnd.IntN(60), 0, time.UTC)
		region, service := []string{"us-east-1", "eu-west-1"}[rnd.IntN(2)], []string{"iam", "sts", "rolesanywhere"}[rnd.IntN(3)]

		ours := httptest.NewRequest(method, u, strings.NewReader(body))
		ours.Header = header.Clone()
		if err := sigv4.SignHMAC(ours, []byte(body), c, region, service, date); err != nil {
			t.Fatal(err)
		}
		theirs := httptest.NewRequest(method, u, strings.NewReader(body))
		theirs.Header = header.Clone()
		theirs.Header.Set("X-Amz-Date", date.Format(sigv4.TimeFormat))
		if c.SessionToken != "" {
			theirs.Header.Set("X-Amz-Security-Token", c.SessionToken)
		}
		// The SDK also signs Content-Length when it knows it; keyless signs
		// only headers, as AWS's credential helper does.
		theirs.ContentLength = -1
		creds := aws.Credentials{AccessKeyID: c.AccessKeyID, SecretAccessKey: c.SecretAccessKey, SessionToken: c.SessionToken}
		if err := v4.NewSigner().SignHTTP(context.Background(), creds, theirs, sigv4.PayloadHash([]byte(body)), service, region, date); err != nil {
			t.Fatal(err)
		}
		if got, want := ours.Header.Get("Authorization"), theirs.Header.Get("Authorization"); got != want {
			t.Fatalf("request %d: %s %s (body %q, headers %v)\nkeyless: %s\nSDK:     %s", i, method, u, body, header, got, want)
		}
	}
}
