package agent

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyless-dev/keyless/internal/agentapi"
	"github.com/keyless-dev/keyless/internal/emulator"
	"github.com/keyless-dev/keyless/internal/emulator/emulatortest"
	"github.com/keyless-dev/keyless/internal/gitlab/gitlabfake"
	"github.com/keyless-dev/keyless/internal/pki"
	"github.com/keyless-dev/keyless/internal/pki/pkitest"
)

// BenchmarkScaleAgentVend measures the agent's Vend (verify the job token,
// decide, broker, audit line) with 1, 100 and 1,000 distinct GitLab jobs
// of one rule, vending round-robin across them from the agent's caches:
// each job's token is verified once with the fake GitLab and each job's
// session fetched once from the emulator (a session per job is
// docs/agent.md's rule: {job_id} in every GitLab session name), before
// the clock starts. Per-vend cost should not grow with the number of
// jobs.
//
//	go test -run '^$' -bench ScaleAgentVend -benchmem ./internal/agent
func BenchmarkScaleAgentVend(b *testing.B) {
	dir := b.TempDir()
	root := pkitest.NewRoot(b, "scale-root")
	key := pkitest.Key(b, pkitest.P256)
	keyPEM, err := pki.EncodePrivateKey(key)
	if err != nil {
		b.Fatal(err)
	}
	pkitest.WriteFile(b, dir, "runner.crt", pki.EncodeCertificates(root.Leaf(b, pkitest.LeafOptions{Key: key, CommonName: emulatortest.CommonName})))
	pkitest.WriteFile(b, dir, "runner.key", keyPEM)

	ref := emulatortest.Reference(pki.EncodeCertificates(root.Cert))
	ref.AcceptRoleSessionName = true
	seed, err := emulator.ParseSeed([]byte(ref.Seed()), emulator.SeedSource{Name: "seed.yaml"})
	if err != nil {
		b.Fatal(err)
	}
	emu, err := emulator.New(emulator.Config{Seed: seed, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	var sessions atomic.Int64
	emuSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Path == "/sessions" {
			sessions.Add(1)
		}
		emu.ServeHTTP(w, r)
	}))
	defer emuSrv.Close()
	out := seed.Outputs(emuSrv.URL)
	gl := gitlabfake.New(gitlabfake.Options{})
	glSrv := httptest.NewServer(gl)
	defer glSrv.Close()
	gl.SetIssuer(glSrv.URL)

	const addr = "127.0.0.1:9911"
	cfg, err := ParseConfig([]byte(fmt.Sprintf(`identity:
  certificate: runner.crt
  key: runner.key
aws:
  trustAnchorArn: %s
  endpoint: %s
gitlab:
  url: %s
listen:
  containerCredentials: [%q]
rules:
  - name: bench
    identity: gitlab-job-token
    match: {project_path: %s}
    roleArn: %s
    profileArn: %s
    sessionName: gitlab-{project_id}-{job_id}
`, out.TrustAnchors[emulatortest.TrustAnchor], emuSrv.URL, glSrv.URL, addr, testProjectPath, out.Roles[emulatortest.Role], out.Profiles[emulatortest.Profile])),
		filepath.Join(dir, "agent.yaml"), dir)
	if err != nil {
		b.Fatal(err)
	}
	// Set-up only: warm 1,000 jobs without waiting for AWS's quota, and
	// keep their verified tokens for the whole run (real clock).
	cfg.AWS.Rate = 1e6
	cfg.GitLab.JobTokenCache = time.Hour

	for _, jobs := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("jobs=%d", jobs), func(b *testing.B) {
			a, err := New(Options{Config: cfg, Audit: slog.New(slog.DiscardHandler), Getenv: func(string) string { return "" }})
			if err != nil {
				b.Fatal(err)
			}
			defer a.broker.Close()
			reqs := make([]agentapi.Request, jobs)
			before := sessions.Load()
			for i := range reqs {
				tok := gl.AddJob(gitlabfake.Job{ID: int64(jobs*10000 + i), ProjectID: 42, ProjectPath: testProjectPath, Ref: "main"})
				reqs[i] = agentapi.Request{Token: tok, Listener: "container:" + addr, Remote: "127.0.0.1:40000"}
				if _, err := a.Vend(context.Background(), reqs[i]); err != nil {
					b.Fatal(err)
				}
			}
			if got := sessions.Load() - before; got != int64(jobs) {
				b.Fatalf("warming %d jobs made %d CreateSession calls", jobs, got)
			}
			verified := gl.Calls(gitlabfake.EndpointJob)
			var next atomic.Uint64
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					r := reqs[next.Add(1)%uint64(jobs)]
					if _, err := a.Vend(context.Background(), r); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "vends/s")
			if got := gl.Calls(gitlabfake.EndpointJob); got != verified {
				b.Errorf("GitLab was asked %d more times while vending from the cache", got-verified)
			}
			if got := sessions.Load() - before; got != int64(jobs) {
				b.Errorf("%d CreateSession calls for %d jobs: vends missed the cache", got, jobs)
			}
		})
	}
}
