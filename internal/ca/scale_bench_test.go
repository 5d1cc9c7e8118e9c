package ca_test

// Scaling benchmarks: how the CA's per-request costs grow with what its
// store holds. They drive the Authority in-process (no HTTPS) against
// the real bbolt store on disk, filled quickly with catest.FillStore.
// The large sizes run only with KEYLESS_BENCH_LARGE=1.

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/keyless-dev/keyless/internal/ca"
	"github.com/keyless-dev/keyless/internal/ca/catest"
	"github.com/keyless-dev/keyless/internal/pki/pkitest"
	"github.com/keyless-dev/keyless/internal/store"
)

// scaleSizes returns small, and with KEYLESS_BENCH_LARGE=1 also large.
func scaleSizes(small, large []int) []int {
	if os.Getenv("KEYLESS_BENCH_LARGE") == "1" {
		return append(slices.Clone(small), large...)
	}
	return small
}

// filledStore fills a store file (catest.FillStore) and opens it.
func filledStore(b *testing.B, f *catest.Filler, n int, record func(i int) (time.Time, time.Time, time.Time)) *store.Bolt {
	b.Helper()
	path := filepath.Join(b.TempDir(), "ca.db")
	catest.FillStore(b, path, f, n, record)
	st, err := store.OpenBolt(path, store.BoltOptions{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	return st
}

// settle collects the garbage the fill left and returns its memory to the
// system before measuring: the runtime would otherwise do it in the
// background, on the measured CPU time.
func settle() {
	runtime.GC()
	debug.FreeOSMemory()
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func p99(lat []time.Duration) float64 {
	slices.Sort(lat)
	return float64(lat[(len(lat)*99)/100]) / float64(time.Millisecond)
}

// BenchmarkScaleCASign signs with certs certificates already in the
// store, issued over the last 30 days for 24h each (so most have
// expired), one in a hundred of them revoked: Authority.Sign in-process,
// one request at a time, each durable (fsync) before it returns, with a
// new key and a new token each (made beforehand).
func BenchmarkScaleCASign(b *testing.B) {
	for _, n := range scaleSizes([]int{10_000}, []int{100_000, 1_000_000}) {
		b.Run(fmt.Sprintf("certs=%d", n), func(b *testing.B) {
			inter := pkitest.NewLongLivedRoot(b, "scale-root").Intermediate(b, "scale-int")
			f := catest.NewFiller(b, inter)
			now := time.Now()
			span := 30 * 24 * time.Hour
			st := filledStore(b, f, n, func(i int) (time.Time, time.Time, time.Time) {
				issued := now.Add(-span + time.Duration(i)*(span/time.Duration(n)))
				var revoked time.Time
				if i%100 == 0 {
					revoked = issued.Add(time.Hour)
				}
				return issued, issued.Add(24 * time.Hour), revoked
			})
			c := catest.Start(b, catest.Options{Store: st})
			reqs := make([]ca.SignRequest, b.N)
			for i := range reqs {
				reqs[i] = ca.SignRequest{CSR: scaleCSR(b), Token: c.Token(b, 1, "gitlab-runner")}
			}
			lat := make([]time.Duration, b.N)
			settle()
			cpu0 := cpuTime(b)
			b.ResetTimer()
			for i := range b.N {
				start := time.Now()
				if _, err := c.Authority.Sign(reqs[i]); err != nil {
					b.Fatal(err)
				}
				lat[i] = time.Since(start)
			}
			b.StopTimer()
			cpu := cpuTime(b) - cpu0
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "certs/s")
			b.ReportMetric(p99(lat), "p99-ms")
			b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-us/cert")
		})
	}
}

func scaleCSR(b *testing.B) []byte {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{DNSNames: []string{"gitlab-runner"}}, k)
	if err != nil {
		b.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

// dueCerts is how many valid certificates expire within the next 24h in
// scaleWorld, whatever its size: the answer of ca list --expiring 24h.
const dueCerts = 1000

// scaleWorld is a CA whose store holds 10*revocations certificates: the
// first dueCerts expire within 24h; of the rest, half expired in the
// last week and half expire in 2 to 7 days, and revocations of these
// are revoked (so all revocations are on the CRL). It returns the
// serials of unexpired certificates that are not revoked and not due.
func scaleWorld(b *testing.B, revocations int) (*catest.CA, *store.Bolt, []string) {
	f := catest.NewFiller(b, pkitest.NewLongLivedRoot(b, "scale-root").Intermediate(b, "scale-int"))
	now := time.Now()
	n := 10 * revocations
	day := 24 * time.Hour
	var spare []string
	revoked := 0
	st := filledStore(b, f, n, func(i int) (time.Time, time.Time, time.Time) {
		var notAfter time.Time
		switch {
		case i < dueCerts:
			notAfter = now.Add(time.Hour + time.Duration(i)*(22*time.Hour/dueCerts))
		case i%2 == 0:
			notAfter = now.Add(-time.Duration(i%7+1) * day / 2)
		default:
			notAfter = now.Add(2*day + time.Duration(i%(5*24))*time.Hour)
		}
		issued := notAfter.Add(-7 * day)
		var rev time.Time
		if i >= dueCerts && i%2 == 1 {
			if revoked < revocations {
				rev = now.Add(-time.Hour)
				revoked++
			} else if len(spare) < 100_000 {
				spare = append(spare, f.Certificate(uint64(i), issued, notAfter).Serial)
			}
		}
		return issued, notAfter, rev
	})
	if revoked < revocations {
		b.Fatalf("scaleWorld revoked %d, want %d", revoked, revocations)
	}
	c := catest.Start(b, catest.Options{Store: st})
	return c, st, spare
}

// BenchmarkScaleCAList lists the certificates that expire within 24h (a
// thousand, whatever the size) as keyless ca list --expiring 24h does
// with the CA stopped, from a store of 10*revocations certificates:
// wall time (ms/op) and the process's CPU time (cpu-ms/op) per list.
func BenchmarkScaleCAList(b *testing.B) {
	for _, n := range scaleSizes([]int{1_000}, []int{10_000, 100_000}) {
		b.Run(fmt.Sprintf("revocations=%d", n), func(b *testing.B) {
			_, st, _ := scaleWorld(b, n)
			var listed int
			settle()
			cpu0 := cpuTime(b)
			b.ResetTimer()
			for range b.N {
				listed = listExpiring(b, st, 24*time.Hour)
			}
			b.StopTimer()
			b.ReportMetric(float64((cpuTime(b)-cpu0).Microseconds())/1000/float64(b.N), "cpu-ms/op")
			if listed != dueCerts {
				b.Fatalf("listed %d, want %d", listed, dueCerts)
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/op")
			b.ReportMetric(float64(listed), "listed")
		})
	}
}

// BenchmarkScaleCRL revokes one more certificate (as keyless ca revoke
// does, which also revokes the other certificates of its key) and then
// makes the CRL, which the revocation invalidated, with revocations
// unexpired revocations in a store of 10 times as many certificates:
// wall time of each (revoke-ms, crl-ms), the process's CPU time for both
// (cpu-ms/op), and the CRL's size (crl-bytes, DER).
func BenchmarkScaleCRL(b *testing.B) {
	for _, n := range scaleSizes([]int{1_000}, []int{10_000, 100_000}) {
		b.Run(fmt.Sprintf("revocations=%d", n), func(b *testing.B) {
			c, _, spare := scaleWorld(b, n)
			if b.N > len(spare) {
				b.Fatalf("b.N %d is more than the %d spare certificates", b.N, len(spare))
			}
			var revoke, crl time.Duration
			var size int
			settle()
			cpu0 := cpuTime(b)
			b.ResetTimer()
			for i := range b.N {
				t0 := time.Now()
				if err := c.Authority.Revoke(ca.RevokeRequest{Serial: spare[i], ReasonCode: 1, Passive: true, Operator: true}); err != nil {
					b.Fatal(err)
				}
				t1 := time.Now()
				der, err := c.Authority.CRL()
				if err != nil {
					b.Fatal(err)
				}
				revoke, crl, size = revoke+t1.Sub(t0), crl+time.Since(t1), len(der)
			}
			b.StopTimer()
			b.ReportMetric(float64((cpuTime(b)-cpu0).Microseconds())/1000/float64(b.N), "cpu-ms/op")
			b.ReportMetric(float64(revoke.Microseconds())/1000/float64(b.N), "revoke-ms")
			b.ReportMetric(float64(crl.Microseconds())/1000/float64(b.N), "crl-ms")
			b.ReportMetric(float64(size), "crl-bytes")
		})
	}
}
