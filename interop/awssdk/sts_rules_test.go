package awssdk_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"
)

// offsetSigner is the SDK's SigV4 signer dating requests by the
// emulator's fake clock plus offset, so that skew is exact and an
// expired credential is not also a skewed request.
type offsetSigner struct {
	now    func() time.Time
	offset time.Duration
}

func (s offsetSigner) SignHTTP(ctx context.Context, c aws.Credentials, r *http.Request, payloadHash, service, region string, _ time.Time, optFns ...func(*v4.SignerOptions)) error {
	return v4.NewSigner().SignHTTP(ctx, c, r, payloadHash, service, region, s.now().Add(s.offset), optFns...)
}

// TestGetCallerIdentityAWSRules: the SDK sees STS's clock-skew window
// (15 minutes) and its answer to expired credentials (403 ExpiredToken)
// as AWS gives them.
func TestGetCallerIdentityAWSRules(t *testing.T) {
	for _, tt := range []struct {
		name    string
		advance time.Duration // the emulator's clock, after the session
		skew    time.Duration // the request's date, from the emulator's clock
		status  int
		code    string
		message string
	}{
		{name: "10 minutes behind", skew: -10 * time.Minute, status: http.StatusOK},
		{name: "10 minutes ahead", skew: 10 * time.Minute, status: http.StatusOK},
		{name: "16 minutes behind", skew: -16 * time.Minute, status: http.StatusForbidden, code: "SignatureDoesNotMatch", message: "Signature expired: "},
		{name: "16 minutes ahead", skew: 16 * time.Minute, status: http.StatusForbidden, code: "SignatureDoesNotMatch", message: "Signature not yet current: "},
		{name: "expired credentials", advance: time.Hour, status: http.StatusForbidden, code: "ExpiredToken", message: "The security token included in the request is expired"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			e.clock.Advance(tt.advance)
			client := sts.New(sts.Options{
				Region:           "us-east-1",
				BaseEndpoint:     aws.String(e.emu.URL),
				Credentials:      credentials.NewStaticCredentialsProvider(e.creds.AccessKeyID, e.creds.SecretAccessKey, e.creds.SessionToken),
				HTTPClient:       e.emu.Client(),
				HTTPSignerV4:     offsetSigner{now: e.clock.Now, offset: tt.skew},
				RetryMaxAttempts: 1,
			})
			_, err := client.GetCallerIdentity(context.Background(), &sts.GetCallerIdentityInput{})
			if tt.status == http.StatusOK {
				if err != nil {
					t.Fatalf("GetCallerIdentity: %v", err)
				}
				return
			}
			var apiErr smithy.APIError
			var respErr *awshttp.ResponseError
			if !errors.As(err, &apiErr) || !errors.As(err, &respErr) {
				t.Fatalf("got %v, want API error %s", err, tt.code)
			}
			if respErr.HTTPStatusCode() != tt.status || apiErr.ErrorCode() != tt.code || !strings.HasPrefix(apiErr.ErrorMessage(), tt.message) {
				t.Errorf("got %d %s %q, want %d %s %q...", respErr.HTTPStatusCode(), apiErr.ErrorCode(), apiErr.ErrorMessage(), tt.status, tt.code, tt.message)
			}
		})
	}
}
