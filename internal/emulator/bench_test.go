package emulator_test

import (
	"crypto"
	"crypto/x509"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyless-dev/keyless/internal/pki/pkitest"
	"github.com/keyless-dev/keyless/internal/sigv4"
)

// BenchmarkCreateSessionLoopback measures whole CreateSession round trips
// over loopback HTTP with keep-alive: an ECDSA P-256 leaf sent with one
// intermediate, signed afresh for every request (the client's signing is
// included, as it would be on one machine), verified, chained, checked
// against the trust policy and answered with new credentials.
//
// same-certificate is a runner fleet reusing its certificates (the
// emulator remembers verified chains); new-certificate-each-time cycles
// through more certificates than it remembers, so every chain is verified.
func BenchmarkCreateSessionLoopback(b *testing.B) {
	e := newEnv(b, setup{log: io.Discard})
	key := pkitest.Key(b, pkitest.P256)
	b.Run("same-certificate", func(b *testing.B) {
		leaf := e.inter.Leaf(b, pkitest.LeafOptions{Key: key})
		benchmarkSessions(b, e, key, []*x509.Certificate{leaf})
	})
	b.Run("new-certificate-each-time", func(b *testing.B) {
		leaves := make([]*x509.Certificate, 2*4096)
		for i := range leaves {
			leaves[i] = e.inter.Leaf(b, pkitest.LeafOptions{Key: key})
		}
		benchmarkSessions(b, e, key, leaves)
	})
}

func benchmarkSessions(b *testing.B, e *env, key crypto.Signer, leaves []*x509.Certificate) {
	var next atomic.Uint64
	q := url.Values{"profileArn": {e.out.Profiles["homelab-profile"]}, "roleArn": {e.out.Roles["ci-deployer"]}, "trustAnchorArn": {e.out.TrustAnchors["gitlab-runner-ca"]}}
	target := e.srv.URL + "/sessions?" + q.Encode()
	body := []byte(`{"durationSeconds":3600}`)
	transport := &http.Transport{MaxIdleConnsPerHost: 64}
	client := &http.Client{Transport: transport}
	b.Cleanup(transport.CloseIdleConnections)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			leaf := leaves[next.Add(1)%uint64(len(leaves))]
			signer := sigv4.X509Signer{Key: key, Certificate: leaf, Intermediates: []*x509.Certificate{e.inter.Cert}}
			req, _ := http.NewRequest(http.MethodPost, target, strings.NewReader(string(body)))
			req.Header.Set("Content-Type", "application/json")
			if err := signer.Sign(req, body, "us-east-1", time.Now()); err != nil {
				b.Error(err)
				return
			}
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusCreated {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "sessions/s")
}
