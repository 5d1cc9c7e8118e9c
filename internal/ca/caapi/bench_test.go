package caapi_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/keyless-dev/keyless/internal/store"
)

// BenchmarkSign measures POST /sign over keep-alive HTTPS with pre-made
// tokens and CSRs, against the bbolt store on disk (every certificate and
// token is durable before the answer): one client, and 16 concurrent.
func BenchmarkSign(b *testing.B) {
	for _, clients := range []int{1, 16} {
		b.Run(map[int]string{1: "clients=1", 16: "clients=16"}[clients], func(b *testing.B) {
			db, err := store.OpenBolt(filepath.Join(b.TempDir(), "ca.db"), store.BoltOptions{})
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			e := newEnv(b, envOptions{store: db})
			_, req := csr(b, "gitlab-runner")
			bodies := make([][]byte, b.N)
			for i := range bodies {
				bodies[i], _ = json.Marshal(map[string]string{"csr": req, "ott": e.token(tokenOpts{})})
			}
			client := e.clientWith(nil)
			client.Transport.(*http.Transport).MaxIdleConnsPerHost = clients
			var next atomic.Int64
			b.SetParallelism((clients + 1) / 2) // GOMAXPROCS is 2 on the target machine
			if clients == 1 {
				b.SetParallelism(1)
			}
			b.ResetTimer()
			run := func() {
				i := next.Add(1) - 1
				resp, err := client.Post(e.url+"/1.0/sign", "application/json", bytes.NewReader(bodies[i]))
				if err != nil {
					b.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusCreated {
					b.Errorf("status %d", resp.StatusCode)
				}
			}
			if clients == 1 {
				for range b.N {
					run()
				}
			} else {
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						run()
					}
				})
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "certs/s")
		})
	}
}
