package sts_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/keyless-dev/keyless/internal/emulator/emulatortest"
	"github.com/keyless-dev/keyless/internal/pki/pkitest"
	"github.com/keyless-dev/keyless/internal/rolesanywhere"
	"github.com/keyless-dev/keyless/internal/sigv4"
	"github.com/keyless-dev/keyless/internal/sts"
)

// session gets credentials from the emulator.
func session(t *testing.T) (*emulatortest.Server, *rolesanywhere.Session) {
	t.Helper()
	root := pkitest.NewRoot(t, "sts-root")
	emu := emulatortest.New(t, nil, root.Cert)
	key := pkitest.Key(t, pkitest.P256)
	client, err := rolesanywhere.New(rolesanywhere.Config{Endpoint: emu.URL, Region: emulatortest.Region,
		Signer: &sigv4.X509Signer{Key: key, Certificate: root.Leaf(t, pkitest.LeafOptions{Key: key})}})
	if err != nil {
		t.Fatal(err)
	}
	s, err := client.CreateSession(context.Background(), rolesanywhere.SessionInput{TrustAnchorARN: emu.TrustAnchorARN, ProfileARN: emu.ProfileARN, RoleARN: emu.RoleARN})
	if err != nil {
		t.Fatal(err)
	}
	return emu, s
}

func TestGetCallerIdentity(t *testing.T) {
	emu, s := session(t)
	c := sigv4.Credentials{AccessKeyID: s.Credentials.AccessKeyID, SecretAccessKey: s.Credentials.SecretAccessKey, SessionToken: s.Credentials.SessionToken}
	id, err := sts.New(emu.URL, emulatortest.Region).GetCallerIdentity(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	if id.Arn != s.AssumedRoleARN || id.Account != emulatortest.Account || id.UserID != s.AssumedRoleID {
		t.Errorf("got %+v, want %s", id, s.AssumedRoleARN)
	}
	c.SecretAccessKey = strings.ToLower(c.SecretAccessKey)
	_, err = sts.New(emu.URL, emulatortest.Region).GetCallerIdentity(context.Background(), c)
	var ae *sts.APIError
	if !errors.As(err, &ae) || ae.Code != "SignatureDoesNotMatch" || ae.Status != http.StatusForbidden {
		t.Errorf("wrong secret: got %v", err)
	}
}

func TestGetCallerIdentityOddAnswers(t *testing.T) {
	for name, answer := range map[string]struct {
		status int
		body   string
		want   string
	}{
		"not xml":         {http.StatusOK, "hello", "answered 200"},
		"no arn":          {http.StatusOK, "<GetCallerIdentityResponse/>", "answered 200"},
		"error, not xml":  {http.StatusBadGateway, "upstream down", "502"},
		"error with code": {http.StatusForbidden, "<ErrorResponse><Error><Code>AccessDenied</Code><Message>no</Message></Error></ErrorResponse>", "AccessDenied"},
		"redirect":        {http.StatusFound, "", "302"},
	} {
		t.Run(name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Location", "http://elsewhere.invalid/")
				w.WriteHeader(answer.status)
				w.Write([]byte(answer.body))
			}))
			defer srv.Close()
			_, err := sts.New(srv.URL, "us-east-1").GetCallerIdentity(context.Background(), sigv4.Credentials{AccessKeyID: "AKID", SecretAccessKey: "s"})
			if err == nil || !strings.Contains(err.Error(), answer.want) {
				t.Errorf("got %v, want an error with %q", err, answer.want)
			}
		})
	}
}
