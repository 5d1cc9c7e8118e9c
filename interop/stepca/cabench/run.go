package cabench

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/smallstep/certificates/api"
	"github.com/smallstep/certificates/authority/provisioner"
	"github.com/smallstep/certificates/ca"
)

// Ops are the operations Run measures: "sign" is POST /1.0/sign with a
// provisioner's one-time token and a new P-256 CSR; "renew" is POST
// /1.0/renew over mTLS with the client's current certificate.
var Ops = []string{"sign", "renew"}

// Result is one timed run against one server.
type Result struct {
	Op      string
	Server  string
	Clients int
	Certs   int           // certificates issued and verified in the timed window
	Elapsed time.Duration // the timed window: first request sent to last answer read
	// ServerCPU is the user and system CPU time the server process used
	// in the timed window; ClientCPU is this process's (the clients').
	ServerCPU, ClientCPU time.Duration
	P50, P99             time.Duration // request latency
	RSS                  int64         // the server's resident set after the window, bytes
	// Issued are the certificates, each verified against the server's
	// root.
	Issued []*x509.Certificate
}

// Line is the result as a Go benchmark line:
// BenchmarkCAProcess/op=sign/server=keyless/clients=16 N ns/op ... .
func (r *Result) Line() string {
	n := max(r.Certs, 1)
	return fmt.Sprintf("BenchmarkCAProcess/op=%s/server=%s/clients=%d %d %d ns/op %.1f certs/s %.1f cpu-us/cert %.1f client-cpu-us/cert %.3f p50-ms %.3f p99-ms %.1f rss-MB",
		r.Op, r.Server, r.Clients, r.Certs, r.Elapsed.Nanoseconds()/int64(n),
		float64(r.Certs)/r.Elapsed.Seconds(),
		float64(r.ServerCPU.Microseconds())/float64(n),
		float64(r.ClientCPU.Microseconds())/float64(n),
		float64(r.P50.Microseconds())/1000, float64(r.P99.Microseconds())/1000,
		float64(r.RSS)/(1<<20))
}

// Measure runs op with clients concurrent clients for about d: a warm-up
// run (which also opens the keep-alive connections) sizes the timed run,
// whose tokens and CSRs are all made before its clock starts.
func (s *Server) Measure(ctx context.Context, op string, clients int, d time.Duration) (*Result, error) {
	warm, err := s.Run(ctx, op, clients, max(8*clients, 64))
	if err != nil {
		return nil, fmt.Errorf("warm-up: %w", err)
	}
	rate := float64(warm.Certs) / warm.Elapsed.Seconds()
	count := min(max(int(rate*d.Seconds()), 2*clients), 500_000)
	return s.Run(ctx, op, clients, count)
}

// Run issues count certificates with clients concurrent clients, each a
// smallstep ca.Client on its own keep-alive TLS connection, and measures
// the timed window. Everything a request needs (tokens, CSRs, for renew
// the certificate and the mTLS connection) is made before the window.
// Every certificate must come back and chain to the server's root through
// its intermediate; any failure is an error.
func (s *Server) Run(ctx context.Context, op string, clients, count int) (*Result, error) {
	if clients < 1 || count < 1 {
		return nil, fmt.Errorf("clients (%d) and count (%d) must be at least 1", clients, count)
	}
	p, err := s.provisioner()
	if err != nil {
		return nil, err
	}
	// One extra request per client before the window opens the
	// connections (TLS handshakes are not what is measured).
	workers := make([]*worker, clients)
	for i := range workers {
		w := &worker{}
		if w.client, err = ca.NewClient(s.URL, ca.WithRootSHA256(s.Fingerprint)); err != nil {
			return nil, fmt.Errorf("%s: ca.NewClient: %w", s.Name, err)
		}
		workers[i] = w
	}
	var items []item
	switch op {
	case "sign":
		if items, err = makeItems(p, count+clients); err != nil {
			return nil, err
		}
	case "renew":
		first, err := makeItems(p, clients)
		if err != nil {
			return nil, err
		}
		for i, w := range workers {
			sign, err := w.client.Sign(first[i].req)
			if err != nil {
				return nil, fmt.Errorf("%s: POST /sign for the certificate to renew: %w", s.Name, err)
			}
			if w.renewTr, err = w.client.Transport(ctx, sign, first[i].key); err != nil {
				return nil, fmt.Errorf("%s: smallstep's mTLS transport: %w", s.Name, err)
			}
		}
	default:
		return nil, fmt.Errorf("unknown op %q (want sign or renew)", op)
	}

	var next atomic.Int64
	do := func(w *worker) (*api.SignResponse, error) {
		if op == "renew" {
			return w.client.RenewWithContext(ctx, w.renewTr)
		}
		return w.client.Sign(items[next.Add(1)-1].req)
	}
	for _, w := range workers {
		if _, err := do(w); err != nil {
			return nil, fmt.Errorf("%s: %s before the timed window: %w", s.Name, op, err)
		}
	}

	cpu0, err := processCPU(s.PID())
	if err != nil {
		return nil, err
	}
	client0 := selfCPU()
	var left atomic.Int64
	left.Store(int64(count))
	var failed atomic.Pointer[error]
	var wg sync.WaitGroup
	start := time.Now()
	for _, w := range workers {
		wg.Go(func() {
			for left.Add(-1) >= 0 && failed.Load() == nil {
				t0 := time.Now()
				resp, err := do(w)
				if err != nil {
					err = fmt.Errorf("%s: %s: %w", s.Name, op, err)
					failed.CompareAndSwap(nil, &err)
					return
				}
				w.latencies = append(w.latencies, time.Since(t0))
				w.issued = append(w.issued, resp)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu1, err := processCPU(s.PID())
	if err != nil {
		return nil, err
	}
	clientCPU := selfCPU() - client0
	if e := failed.Load(); e != nil {
		return nil, *e
	}
	rss, err := processRSS(s.PID())
	if err != nil {
		return nil, err
	}
	for _, w := range workers {
		w.client.CloseIdleConnections()
		if t, ok := w.renewTr.(interface{ CloseIdleConnections() }); ok {
			t.CloseIdleConnections()
		}
	}

	var lat []time.Duration
	var issued []*api.SignResponse
	for _, w := range workers {
		lat = append(lat, w.latencies...)
		issued = append(issued, w.issued...)
	}
	if len(issued) != count {
		return nil, fmt.Errorf("%s: %d certificates came back from %d requests", s.Name, len(issued), count)
	}
	if err := s.verify(issued); err != nil {
		return nil, err
	}
	slices.Sort(lat)
	certs := make([]*x509.Certificate, len(issued))
	for i, resp := range issued {
		certs[i] = resp.ServerPEM.Certificate
	}
	return &Result{Op: op, Server: s.Name, Clients: clients, Certs: count, Elapsed: elapsed,
		ServerCPU: cpu1 - cpu0, ClientCPU: clientCPU,
		P50: lat[len(lat)/2], P99: lat[min(len(lat)-1, len(lat)*99/100)], RSS: rss, Issued: certs}, nil
}

type worker struct {
	client    *ca.Client
	renewTr   http.RoundTripper
	latencies []time.Duration
	issued    []*api.SignResponse
}

type item struct {
	req *api.SignRequest
	key *ecdsa.PrivateKey
}

// provisioner is smallstep's token maker for the server's JWK
// provisioner: its key id from GET /provisioners, its private key from
// the encrypted key, decrypted with the password (once per server).
func (s *Server) provisioner() (*ca.Provisioner, error) {
	s.provOnce.Do(func() {
		cl, err := ca.NewClient(s.URL, ca.WithRootSHA256(s.Fingerprint))
		if err != nil {
			s.provErr = fmt.Errorf("%s: ca.NewClient: %w", s.Name, err)
			return
		}
		resp, err := cl.Provisioners(ca.WithProvisionerLimit(100))
		if err != nil {
			s.provErr = fmt.Errorf("%s: GET /provisioners: %w", s.Name, err)
			return
		}
		kid := ""
		for _, p := range resp.Provisioners {
			if p.GetName() == ProvisionerName && p.GetType() == provisioner.TypeJWK {
				kid, _, _ = p.GetEncryptedKey()
			}
		}
		if kid == "" {
			s.provErr = fmt.Errorf("%s: GET /provisioners lists no JWK provisioner %q with a key id", s.Name, ProvisionerName)
			return
		}
		s.prov, s.provErr = ca.NewProvisioner(ProvisionerName, kid, s.URL, s.password, ca.WithRootSHA256(s.Fingerprint))
		if s.provErr != nil {
			s.provErr = fmt.Errorf("%s: ca.NewProvisioner: %w", s.Name, s.provErr)
		}
	})
	return s.prov, s.provErr
}

// makeItems makes n one-time tokens and P-256 CSRs for Subject, on every
// CPU.
func makeItems(p *ca.Provisioner, n int) ([]item, error) {
	items := make([]item, n)
	var next atomic.Int64
	errs := make([]error, runtime.GOMAXPROCS(0))
	var wg sync.WaitGroup
	for g := range errs {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				ott, err := p.Token(Subject)
				if err != nil {
					errs[g] = fmt.Errorf("making a token: %w", err)
					return
				}
				key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
				if err != nil {
					errs[g] = err
					return
				}
				der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
					Subject: pkix.Name{CommonName: Subject}, DNSNames: []string{Subject}}, key)
				if err != nil {
					errs[g] = err
					return
				}
				csr, err := x509.ParseCertificateRequest(der)
				if err != nil {
					errs[g] = err
					return
				}
				items[i] = item{req: &api.SignRequest{CsrPEM: api.CertificateRequest{CertificateRequest: csr}, OTT: ott}, key: key}
			}
		})
	}
	wg.Wait()
	return items, errors.Join(errs...)
}

// verify checks that every answer holds a certificate for Subject that
// chains to the server's root through its intermediate, for client
// authentication, and that no serial comes back twice.
func (s *Server) verify(issued []*api.SignResponse) error {
	roots, inters := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(s.Root)
	inters.AddCert(s.Intermediate)
	serials := make(map[string]bool, len(issued))
	for i, resp := range issued {
		leaf := resp.ServerPEM.Certificate
		if leaf == nil {
			return fmt.Errorf("%s: answer %d has no certificate", s.Name, i)
		}
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inters,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
			return fmt.Errorf("%s: certificate %s does not chain to the root: %w", s.Name, leaf.SerialNumber, err)
		}
		if leaf.Subject.CommonName != Subject || !slices.Equal(leaf.DNSNames, []string{Subject}) {
			return fmt.Errorf("%s: certificate %s is for CN %q, DNS %q; want %q", s.Name, leaf.SerialNumber, leaf.Subject.CommonName, leaf.DNSNames, Subject)
		}
		serial := leaf.SerialNumber.String()
		if serials[serial] {
			return fmt.Errorf("%s: serial %s issued twice", s.Name, serial)
		}
		serials[serial] = true
	}
	return nil
}

// selfCPU is the user and system CPU time this process has used.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
