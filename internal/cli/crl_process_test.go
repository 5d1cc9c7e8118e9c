package cli_test

import (
	"bytes"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyless-dev/keyless/internal/store"
)

// TestCRLSizeWarning: keyless ca crl warns, on standard error with the
// fix, when the CRL as PEM is over the 300,000 bytes AWS's ImportCrl
// takes, and still writes it; under the limit it says nothing. The
// revocations go straight into the CA's real store (what keyless ca
// revoke records), as thousands of revoke commands would take minutes.
func TestCRLSizeWarning(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")
	pwFile := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pwFile, []byte(caPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	run(t, "ca", "init", "--name", "CRL CA", "--dns", "127.0.0.1", "--address", "127.0.0.1:0", "--provisioner", "runners", "--password-file", pwFile, "--dir", dir)

	revoked := 0
	revoke := func(n int, notAfter time.Time) {
		t.Helper()
		db, err := store.OpenBolt(filepath.Join(dir, "db", "keyless.db"), store.BoltOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := range n {
			wg.Go(func() {
				errs <- db.Revoke(&store.Revocation{Serial: fmt.Sprintf("%d", 1_000_000_000_000_000_000+revoked+i), ReasonCode: 1,
					RevokedAt: time.Now(), NotAfter: notAfter, Via: "cli"})
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		revoked += n
	}
	crl := func(args ...string) (pemCRL []byte, stderr string) {
		t.Helper()
		out := filepath.Join(t.TempDir(), "ca.crl")
		cmd := exec.Command("keyless", append([]string{"ca", "crl", "--dir", dir, "--password-file", pwFile, "--out", out}, args...)...)
		var errBuf bytes.Buffer
		cmd.Stderr = &errBuf
		if err := cmd.Run(); err != nil {
			t.Fatalf("keyless ca crl: %v\n%s", err, errBuf.String())
		}
		data, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		return data, errBuf.String()
	}

	// Expired revocations are left off: many of them cost nothing.
	revoke(2000, time.Now().Add(-time.Hour))
	revoke(4000, time.Now().Add(24*time.Hour))
	data, stderr := crl()
	if stderr != "" || len(data) > 300_000 {
		t.Fatalf("%d bytes of CRL, stderr %q; want under the limit, no warning", len(data), stderr)
	}

	revoke(3000, time.Now().Add(24*time.Hour))
	data, stderr = crl()
	if block, _ := pem.Decode(data); block == nil || len(data) <= 300_000 {
		t.Fatalf("the CRL (%d bytes) is not PEM over the limit", len(data))
	}
	want := fmt.Sprintf("keyless: warning: the CRL is %d bytes as PEM (7000 revoked certificates that have not expired); AWS's ImportCrl and UpdateCrl take at most 300000, so aws rolesanywhere import-crl will refuse it\n", len(data))
	if !strings.HasPrefix(stderr, want) || !strings.Contains(stderr, "keyless: hint: revoked certificates leave the CRL when they expire, so shorter certificate lifetimes (maxDuration of the provisioners") ||
		!strings.Contains(stderr, "split the runners across several CAs") {
		t.Errorf("stderr:\n%s\nwant the warning:\n%s", stderr, want)
	}
	// --der writes DER, still warning: AWS takes the CRL as PEM.
	der, stderr := crl("--der")
	if len(der) >= len(data) || !strings.Contains(stderr, "keyless: warning: the CRL is ") {
		t.Errorf("--der: %d bytes, stderr %q", len(der), stderr)
	}
}
