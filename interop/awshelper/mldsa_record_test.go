//go:build record

package awshelper_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keyless-dev/keyless/internal/ca/catest"
	"github.com/keyless-dev/keyless/internal/pki"
	"github.com/keyless-dev/keyless/internal/sigv4"
)

// TestRecordMLDSAVectors writes testdata/mldsa/<parameter set>.json from
// a live run of AWS's helper v1.8.0 (see mldsa_test.go for how to run
// it). It is built only with -tags record.
func TestRecordMLDSAVectors(t *testing.T) {
	bin := os.Getenv(helperV18Env)
	if bin == "" {
		t.Fatalf("set %s to AWS's helper v1.8.0 binary", helperV18Env)
	}
	c := catest.Start(t, catest.Options{})
	dir := filepath.Join("testdata", "mldsa")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, kty := range mldsaKeyTypes {
		id := newMLDSAIdentity(t, c, kty)
		req, _, status := runHelperV18(t, bin, id)
		date, err := time.Parse(sigv4.TimeFormat, req.Header.Get(sigv4.HeaderDate))
		if err != nil {
			t.Fatal(err)
		}
		read := func(p string) string {
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			return string(b)
		}
		// The emulator is reached over plain HTTP on loopback; nothing in
		// the request is a secret but the signature, which is the point.
		v := mldsaVector{Helper: "rolesanywhere-credential-helper v1.8.0 (credential-process)", ParameterSet: kty, Time: date,
			Bundle: string(pki.EncodeCertificates(id.ca.Root.Cert)), Certificate: read(id.cert), Intermediates: read(id.chain), PrivateKey: read(id.key),
			Request: req, Response: recordedReply{Status: status}}
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		name := filepath.Join(dir, strings.ToLower(kty)+".json")
		if err := os.WriteFile(name, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s", name)
	}
}

// TestHelperV18MLDSALive runs AWS's helper v1.8.0 (KEYLESS_AWS_HELPER_V18
// names its binary) with an ML-DSA-44, -65 and -87 certificate from
// keyless's CA against the emulator, and checks that it signs with
// AWS4-X509-MLDSA and gets credentials. Like the recorder, it is built
// only with -tags record: v1.8.0 is not on the Go module proxy, so CI
// cannot install it, and the recorded vectors (TestHelperV18MLDSAVectors)
// are what CI runs; a skipped live test would hide that under
// KEYLESS_INTEROP=require.
func TestHelperV18MLDSALive(t *testing.T) {
	bin := os.Getenv(helperV18Env)
	if bin == "" {
		t.Fatalf("set %s to AWS's helper v1.8.0 binary", helperV18Env)
	}
	c := catest.Start(t, catest.Options{})
	for _, kty := range mldsaKeyTypes {
		t.Run(kty, func(t *testing.T) {
			id := newMLDSAIdentity(t, c, kty)
			req, out, _ := runHelperV18(t, bin, id)
			if a := req.Header.Get("Authorization"); !strings.HasPrefix(a, sigv4.AlgorithmMLDSA+" ") {
				t.Fatalf("the helper signed with %.40q, want %s", a, sigv4.AlgorithmMLDSA)
			}
			var cp struct{ AccessKeyId, SecretAccessKey, SessionToken string }
			if err := json.Unmarshal(out, &cp); err != nil || !strings.HasPrefix(cp.AccessKeyId, "ASIA") || cp.SecretAccessKey == "" || cp.SessionToken == "" {
				t.Fatalf("helper output is not credentials (%v)", err)
			}
		})
	}
}
