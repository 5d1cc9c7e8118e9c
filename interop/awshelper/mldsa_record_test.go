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
