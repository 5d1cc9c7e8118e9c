package store_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/keyless-dev/keyless/internal/ca/catest"
	"github.com/keyless-dev/keyless/internal/pki/pkitest"
	"github.com/keyless-dev/keyless/internal/store"
)

// BenchmarkScaleMigrate opens, for writing, a format 1 file (before the
// indexes) holding certs certificates, one in a hundred revoked: the
// one-time migration that builds the indexes, in one transaction.
// 10^6 certificates only with KEYLESS_BENCH_LARGE=1.
func BenchmarkScaleMigrate(b *testing.B) {
	sizes := []int{10_000}
	if os.Getenv("KEYLESS_BENCH_LARGE") == "1" {
		sizes = append(sizes, 1_000_000)
	}
	for _, n := range sizes {
		b.Run(fmt.Sprintf("certs=%d", n), func(b *testing.B) {
			dir := b.TempDir()
			orig := filepath.Join(dir, "format1.db")
			f := catest.NewFiller(b, pkitest.NewRoot(b, "filler"))
			now := time.Now()
			catest.FillStore(b, orig, f, n, func(i int) (time.Time, time.Time, time.Time) {
				issued := now.Add(time.Duration(i-n) * time.Second)
				var revoked time.Time
				if i%100 == 0 {
					revoked = issued.Add(time.Second)
				}
				return issued, issued.Add(24 * time.Hour), revoked
			})
			if err := store.Downgrade(orig); err != nil {
				b.Fatal(err)
			}
			data, err := os.ReadFile(orig)
			if err != nil {
				b.Fatal(err)
			}
			var took time.Duration
			for i := range b.N {
				path := filepath.Join(dir, fmt.Sprintf("copy%d.db", i))
				if err := os.WriteFile(path, data, 0o600); err != nil {
					b.Fatal(err)
				}
				start := time.Now()
				s, err := store.OpenBolt(path, store.BoltOptions{})
				if err != nil {
					b.Fatal(err)
				}
				took += time.Since(start)
				s.Close()
				os.Remove(path)
			}
			b.ReportMetric(float64(took.Milliseconds())/float64(b.N), "migrate-ms")
		})
	}
}
