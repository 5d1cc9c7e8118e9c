package caapi_test

import (
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/keyless-dev/keyless/internal/store"
)

// driveClients runs request b.N times, from one goroutine or, for more
// clients, from (clients+1)/2 per processor (GOMAXPROCS is 2 on the
// target machine), and reports certificates per second.
func driveClients(b *testing.B, clients int, request func()) {
	b.SetParallelism(max(1, (clients+1)/2))
	b.ResetTimer()
	if clients == 1 {
		for range b.N {
			request()
		}
	} else {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				request()
			}
		})
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "certs/s")
}

// expectCreated reads and closes an issuing answer, which must be 201.
func expectCreated(b *testing.B, resp *http.Response, err error) {
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
			driveClients(b, clients, func() {
				resp, err := client.Post(e.url+"/1.0/sign", "application/json", bytes.NewReader(bodies[next.Add(1)-1]))
				expectCreated(b, resp, err)
			})
		})
	}
}

// BenchmarkRenew measures POST /renew over keep-alive HTTPS against the
// bbolt store on disk: over mTLS with the client's certificate
// (mode=mtls), and with step's renewal token carrying the certificate
// (mode=x5c, one token per renewal, made before the timer starts); one
// client, and 16 concurrent.
func BenchmarkRenew(b *testing.B) {
	for _, mode := range []string{"mtls", "x5c"} {
		for _, clients := range []int{1, 16} {
			b.Run(fmt.Sprintf("mode=%s/clients=%d", mode, clients), func(b *testing.B) {
				db, err := store.OpenBolt(filepath.Join(b.TempDir(), "ca.db"), store.BoltOptions{})
				if err != nil {
					b.Fatal(err)
				}
				defer db.Close()
				e := newEnv(b, envOptions{store: db})
				_, pair := e.sign("gitlab-runner")
				client := e.clientWith(pair)
				var tokens []string
				if mode == "x5c" {
					client = e.clientWith(nil)
					tokens = make([]string, b.N)
					for i := range tokens {
						tokens[i] = benchRenewToken(b, e, pair, i)
					}
				}
				client.Transport.(*http.Transport).MaxIdleConnsPerHost = clients
				var next atomic.Int64
				driveClients(b, clients, func() {
					req, _ := http.NewRequest(http.MethodPost, e.url+"/1.0/renew", http.NoBody)
					if tokens != nil {
						req.Header.Set("Authorization", "Bearer "+tokens[next.Add(1)-1])
					}
					resp, err := client.Do(req)
					expectCreated(b, resp, err)
				})
			})
		}
	}
}

// benchRenewToken is renewToken with a jti of i, so that each of a
// benchmark's tokens is a different one-time token.
func benchRenewToken(b *testing.B, e *env, pair *tls.Certificate, i int) string {
	var x5c []string
	for _, c := range pair.Certificate {
		x5c = append(x5c, base64.StdEncoding.EncodeToString(c))
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: pair.PrivateKey},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("x5cInsecure", x5c))
	if err != nil {
		b.Fatal(err)
	}
	tok, err := jwt.Signed(s).Claims(jwt.Claims{Issuer: "step-ca-client/1.0", Subject: pair.Leaf.Subject.CommonName, Audience: jwt.Audience{e.url + "/1.0/renew"},
		ID: strconv.Itoa(i), NotBefore: jwt.NewNumericDate(e.now()), Expiry: jwt.NewNumericDate(e.now().Add(5 * time.Minute))}).Serialize()
	if err != nil {
		b.Fatal(err)
	}
	return tok
}
