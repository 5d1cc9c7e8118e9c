package cli

import (
	"bytes"
	"strings"
	"testing"

	"github.com/keyless-dev/keyless/internal/pki"
	"github.com/keyless-dev/keyless/internal/pki/pkitest"
	"github.com/keyless-dev/keyless/internal/rolesanywhere/rolesanywheretest"
)

// TestServeExitCodes: a bad flag is a usage error (2) naming it; a
// server that cannot get its first credentials fails (1) without
// printing the endpoint.
func TestServeExitCodes(t *testing.T) {
	dir := t.TempDir()
	root := pkitest.NewRoot(t, "serve-root")
	key := pkitest.Key(t, pkitest.P256)
	keyPEM, err := pki.EncodePrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	crt := pkitest.WriteFile(t, dir, "runner.crt", pki.EncodeCertificates(root.Leaf(t, pkitest.LeafOptions{Key: key})))
	keyFile := pkitest.WriteFile(t, dir, "runner.key", keyPEM)
	base := []string{"serve", "--certificate", crt, "--private-key", keyFile, "--trust-anchor-arn", rolesanywheretest.TrustAnchorARN,
		"--profile-arn", rolesanywheretest.ProfileARN, "--role-arn", rolesanywheretest.RoleARN, "--endpoint", "http://127.0.0.1:1", "--port", "0"}
	for _, tc := range []struct {
		extra []string
		code  int
		says  string
	}{
		{[]string{"--hop-limit", "0"}, 2, "--hop-limit 0"},
		{[]string{"--address", "localhost"}, 2, "--address"},
		{[]string{"--port", "-1"}, 2, "--port -1"},
		{[]string{"--session-duration", "60"}, 2, "--session-duration 60"},
		{nil, 1, "getting the first credentials"},
	} {
		var out, errb bytes.Buffer
		code := Main(append(append([]string(nil), base...), tc.extra...), nil, &out, &errb)
		if code != tc.code || !strings.Contains(errb.String(), tc.says) {
			t.Errorf("%v: exit %d, want %d; stderr:\n%s", tc.extra, code, tc.code, errb.String())
		}
		if out.Len() != 0 {
			t.Errorf("%v: printed %q", tc.extra, out.String())
		}
	}
}
