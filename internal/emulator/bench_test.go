package emulator_test

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
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
	q := url.Values{"profileArn": {e.out.Profiles["homelab-profile"]}, "roleArn": {e.out.Roles["ci-deployer"]}, "trustAnchorArn": {e.out.TrustAnchors["gitlab-runner-ca"]}}
	// A client keeps its signer (its parsed key and certificates) from
	// one request to the next, as credential-process's serve mode and
	// the agent do; it still signs every request.
	signers := make([]*sigv4.X509Signer, len(leaves))
	for i, leaf := range leaves {
		signers[i] = &sigv4.X509Signer{Key: key, Certificate: leaf, Intermediates: []*x509.Certificate{e.inter.Cert}}
	}
	runSessions(b, e.srv.URL+"/sessions?"+q.Encode(), signers, http.StatusCreated)
}

// runSessions sends b.N CreateSession requests to target, in parallel,
// cycling through signers, expects the status want, and reports sessions/s and the process's CPU
// time (client and emulator together) per session, which contention
// with other processes disturbs less than the rate.
func runSessions(b *testing.B, target string, signers []*sigv4.X509Signer, want int) {
	var next atomic.Uint64
	body := []byte(`{"durationSeconds":3600}`)
	transport := &http.Transport{MaxIdleConnsPerHost: 64}
	client := &http.Client{Transport: transport}
	b.Cleanup(transport.CloseIdleConnections)
	b.ReportAllocs()
	cpu0 := processCPU(b)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			signer := signers[next.Add(1)%uint64(len(signers))]
			req, _ := http.NewRequest(http.MethodPost, target, bytes.NewReader(body))
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
			if resp.StatusCode != want {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "sessions/s")
	b.ReportMetric(float64((processCPU(b)-cpu0).Microseconds())/float64(b.N), "cpu-us/session")
}

// BenchmarkCreateSessionHandler measures the emulator's side of
// CreateSession alone: one signed request (same certificate) replayed
// into the handler, no network and no client signing, on one goroutine.
// cpu-us/session is the CPU time of the thread that ran the handler,
// which other processes on the machine disturb little.
func BenchmarkCreateSessionHandler(b *testing.B) {
	e := newEnv(b, setup{log: io.Discard})
	key := pkitest.Key(b, pkitest.P256)
	leaf := e.inter.Leaf(b, pkitest.LeafOptions{Key: key})
	q := url.Values{"profileArn": {e.out.Profiles["homelab-profile"]}, "roleArn": {e.out.Roles["ci-deployer"]}, "trustAnchorArn": {e.out.TrustAnchors["gitlab-runner-ca"]}}
	body := []byte(`{"durationSeconds":3600}`)
	signed, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/sessions?"+q.Encode(), nil)
	signed.Header.Set("Content-Type", "application/json")
	signer := &sigv4.X509Signer{Key: key, Certificate: leaf, Intermediates: []*x509.Certificate{e.inter.Cert}}
	if err := signer.Sign(signed, body, "us-east-1", e.now()); err != nil {
		b.Fatal(err)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	b.ReportAllocs()
	cpu0 := threadCPU(b)
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, signed.URL.String(), bytes.NewReader(body))
		req.Header = signed.Header
		w := httptest.NewRecorder()
		e.emu.ServeHTTP(w, req)
		if w.Code != http.StatusCreated {
			b.Fatalf("status %d: %s", w.Code, w.Body)
		}
	}
	b.ReportMetric(float64((threadCPU(b)-cpu0).Microseconds())/float64(b.N), "cpu-us/session")
}
