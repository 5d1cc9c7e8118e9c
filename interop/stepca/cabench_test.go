package stepca_test

import (
	"crypto/x509"
	"regexp"
	"testing"

	"github.com/keyless-dev/keyless/internal/testkit"
	"github.com/keyless-dev/keyless/interop/stepca/cabench"
)

// benchLine is the shape of cabench's output: a Go benchmark line with
// its units.
var benchLine = regexp.MustCompile(`^BenchmarkCAProcess/op=(sign|renew)/server=(keyless|step-ca)/clients=4 20 [0-9]+ ns/op [0-9.]+ certs/s [0-9.]+ cpu-us/cert [0-9.]+ client-cpu-us/cert [0-9.]+ p50-ms [0-9.]+ p99-ms [0-9.]+ rss-MB$`)

// TestCABench runs cabench's core, as `go run ./cmd/cabench` runs it,
// for 20 certificates per operation against `keyless ca serve` and
// against step-ca in its own process (cmd/stepca-server): every
// certificate comes back, chains to its CA's root, is for the benchmark
// subject and has a serial of its own, and the server's CPU and memory
// were read. It asserts counts and validity, never speed.
func TestCABench(t *testing.T) {
	keyless := testkit.Keyless(t)
	stepCA := testkit.Build(t, "stepca-server", "github.com/keyless-dev/keyless/interop/stepca/cmd/stepca-server", false)
	ks, err := cabench.StartKeyless(t.Context(), keyless, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := ks.Stop(); err != nil {
			t.Error(err)
		}
	})
	ss, err := cabench.StartStepCA(t.Context(), stepCA, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := ss.Stop(); err != nil {
			t.Error(err)
		}
	})
	const count, clients = 20, 4
	for _, s := range []*cabench.Server{ks, ss} {
		serials := map[string]bool{}
		for _, op := range cabench.Ops {
			t.Run(op+"/"+s.Name, func(t *testing.T) {
				r, err := s.Run(t.Context(), op, clients, count)
				if err != nil {
					t.Fatalf("%v\n%s output:\n%s", err, s.Name, s.Output())
				}
				if r.Certs != count || len(r.Issued) != count {
					t.Fatalf("%d certificates counted, %d returned; want %d", r.Certs, len(r.Issued), count)
				}
				roots, inters := x509.NewCertPool(), x509.NewCertPool()
				roots.AddCert(s.Root)
				inters.AddCert(s.Intermediate)
				for _, c := range r.Issued {
					if _, err := c.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inters, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
						t.Errorf("certificate %s does not chain to %s's root: %v", c.SerialNumber, s.Name, err)
					}
					if c.Subject.CommonName != cabench.Subject {
						t.Errorf("certificate %s is for %q, want %q", c.SerialNumber, c.Subject.CommonName, cabench.Subject)
					}
					if serials[c.SerialNumber.String()] {
						t.Errorf("serial %s came back twice", c.SerialNumber)
					}
					serials[c.SerialNumber.String()] = true
				}
				if r.Elapsed <= 0 || r.ServerCPU < 0 || r.ClientCPU <= 0 || r.RSS <= 0 || r.P50 <= 0 || r.P99 < r.P50 {
					t.Errorf("implausible measurements: %+v", *r)
				}
				if line := r.Line(); !benchLine.MatchString(line) {
					t.Errorf("benchmark line %q does not match %s", line, benchLine)
				}
			})
		}
		if len(serials) != 2*count {
			t.Errorf("%s: %d distinct serials over sign and renew, want %d", s.Name, len(serials), 2*count)
		}
	}
}
