package awshelper_test

import (
	"bytes"
	"crypto/x509"
	"log/slog"
	"strings"
	"testing"

	helper "github.com/aws/rolesanywhere-credential-helper/aws_signing_helper"

	"github.com/keyless-dev/keyless/internal/emulator/emulatortest"
	"github.com/keyless-dev/keyless/internal/pki"
	"github.com/keyless-dev/keyless/internal/pki/pkitest"
)

// TestHelperAtTheEmulatorsLimits has AWS's helper (v1.4.0) ask the
// emulator for sessions at the edges of the rules issue 15 brought:
// the longest duration it can ask for (the reference profile's 3600
// seconds is below the role's maximum, so it is granted), five chain
// certificates (accepted) and six (refused, with the code the helper
// prints).
func TestHelperAtTheEmulatorsLimits(t *testing.T) {
	root := pkitest.NewRoot(t, "limits-root")
	inter := root.Intermediate(t, "limits-int")
	for _, tt := range []struct {
		name      string
		duration  int
		chain     int // copies of the intermediate in the bundle file
		wantError string
	}{
		{name: "43200 seconds asked", duration: 43200, chain: 1},
		{name: "5 chain certificates", duration: 3600, chain: 5},
		{name: "6 chain certificates", duration: 3600, chain: 6, wantError: "AccessDeniedException: Untrusted Signing Certificate"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			srv := emulatortest.New(t, slog.New(slog.NewTextHandler(&logs, nil)), root.Cert)
			dir := t.TempDir()
			key := pkitest.Key(t, pkitest.P256)
			id := identityFilesFor(t, dir, inter.Leaf(t, pkitest.LeafOptions{Key: key}), key)
			chain := make([]*x509.Certificate, tt.chain)
			for i := range chain {
				chain[i] = inter.Cert
			}
			opts := &helper.CredentialsOpts{
				PrivateKeyId: id.key, CertificateId: id.cert,
				CertificateBundleId: pkitest.WriteFile(t, dir, "chain.pem", pki.EncodeCertificates(chain...)),
				RoleArn:             srv.RoleARN, ProfileArnStr: srv.ProfileARN, TrustAnchorArnStr: srv.TrustAnchorARN,
				SessionDuration: tt.duration, Endpoint: srv.URL, Version: "interop",
			}
			signer, alg, err := helper.GetSigner(opts)
			if err != nil {
				t.Fatalf("helper.GetSigner: %v", err)
			}
			out, err := helper.GenerateCredentials(opts, signer, alg)
			if tt.wantError != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantError) {
					t.Fatalf("helper got %v, want an error containing %q", err, tt.wantError)
				}
				return
			}
			if err != nil {
				t.Fatalf("helper.GenerateCredentials: %v\nemulator log:\n%s", err, logs.String())
			}
			if !strings.HasPrefix(out.AccessKeyId, "ASIA") || out.Expiration == "" {
				t.Errorf("helper output %+v is incomplete", redacted(out))
			}
		})
	}
}
