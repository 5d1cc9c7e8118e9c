package awshelper_test

import (
	"bytes"
	"cmp"
	"crypto/x509"
	"log/slog"
	"strings"
	"testing"

	helper "github.com/aws/rolesanywhere-credential-helper/aws_signing_helper"

	"github.com/keyless-dev/keyless/internal/emulator/emulatortest"
	"github.com/keyless-dev/keyless/internal/pki"
	"github.com/keyless-dev/keyless/internal/pki/pkitest"
)

// TestHelperAgainstEmulator has AWS's helper (v1.4.0, as a library) get
// credentials from keyless's emulator: the emulator accepts what AWS's own
// client sends, for every key type Roles Anywhere takes, with and without
// an intermediate in the request, and refuses it (with AWS's error code,
// which the helper prints) when the trust policy does not match or the
// chain is longer than AWS takes.
func TestHelperAgainstEmulator(t *testing.T) {
	root := pkitest.NewRoot(t, "emulator-root")
	inter := root.Intermediate(t, "emulator-int")
	for _, tt := range []struct {
		name      string // when the kind and its suffixes do not say it
		kind, cn  string
		chain     bool
		copies    int // copies of the intermediate sent (default 1)
		duration  int // seconds asked for (default 3600)
		wantError string
	}{
		{kind: pkitest.P256, chain: true},
		{kind: pkitest.P384, chain: true},
		{kind: pkitest.RSA2048, chain: true},
		{kind: pkitest.RSA4096, chain: true},
		{kind: pkitest.P256, chain: false, wantError: "AccessDeniedException: Untrusted Signing Certificate"},
		{kind: pkitest.P256, chain: true, cn: "runner-2", wantError: "AccessDeniedException: Unable to assume role"},
		// At the edges of the rules issue 15 brought: the longest
		// duration the helper can ask for (the reference profile's 3600
		// seconds is below the role's maximum, so it is granted), five
		// chain certificates (accepted) and six (refused).
		{name: "43200 seconds asked", kind: pkitest.P256, chain: true, duration: 43200},
		{name: "5 chain certificates", kind: pkitest.P256, chain: true, copies: 5},
		{name: "6 chain certificates", kind: pkitest.P256, chain: true, copies: 6, wantError: "AccessDeniedException: Untrusted Signing Certificate"},
	} {
		name := tt.kind
		if !tt.chain {
			name += "/no-chain"
		}
		if tt.cn != "" {
			name += "/cn-" + tt.cn
		}
		if tt.name != "" {
			name = tt.name
		}
		t.Run(name, func(t *testing.T) {
			var logs bytes.Buffer
			srv := emulatortest.New(t, slog.New(slog.NewTextHandler(&logs, nil)), root.Cert)
			dir := t.TempDir()
			key := pkitest.Key(t, tt.kind)
			leaf := inter.Leaf(t, pkitest.LeafOptions{Key: key, CommonName: tt.cn})
			id := identityFilesFor(t, dir, leaf, key)
			opts := &helper.CredentialsOpts{
				PrivateKeyId: id.key, CertificateId: id.cert,
				RoleArn: srv.RoleARN, ProfileArnStr: srv.ProfileARN, TrustAnchorArnStr: srv.TrustAnchorARN,
				SessionDuration: cmp.Or(tt.duration, 3600), Endpoint: srv.URL, Version: "interop",
			}
			if tt.chain {
				chain := make([]*x509.Certificate, cmp.Or(tt.copies, 1))
				for i := range chain {
					chain[i] = inter.Cert
				}
				opts.CertificateBundleId = pkitest.WriteFile(t, dir, "chain.pem", pki.EncodeCertificates(chain...))
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
				if !strings.Contains(logs.String(), "CreateSession refused") {
					t.Errorf("the emulator did not log the refusal:\n%s", logs.String())
				}
				return
			}
			if err != nil {
				t.Fatalf("helper.GenerateCredentials: %v\nemulator log:\n%s", err, logs.String())
			}
			if !strings.HasPrefix(out.AccessKeyId, "ASIA") || out.SecretAccessKey == "" || out.SessionToken == "" || out.Expiration == "" {
				t.Errorf("helper output %+v is incomplete", redacted(out))
			}
			if n := srv.Emulator.ActiveCredentials(); n != 1 {
				t.Errorf("the emulator remembers %d credentials, want 1", n)
			}
			if !strings.Contains(logs.String(), "role="+srv.RoleARN) {
				t.Errorf("no session in the emulator log:\n%s", logs.String())
			}
		})
	}
}

func redacted(o helper.CredentialProcessOutput) helper.CredentialProcessOutput {
	o.SecretAccessKey, o.SessionToken = "<redacted>", "<redacted>"
	return o
}
