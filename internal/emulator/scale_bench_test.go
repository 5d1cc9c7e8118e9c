package emulator_test

import (
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keyless-dev/keyless/internal/emulator"
	"github.com/keyless-dev/keyless/internal/pki"
	"github.com/keyless-dev/keyless/internal/pki/pkitest"
	"github.com/keyless-dev/keyless/internal/sigv4"
)

// scaleSizes are the numbers of trust anchors (and of roles, and of
// profiles) BenchmarkScaleEmulator runs with; 10,000 only with
// KEYLESS_BENCH_LARGE=1.
func scaleSizes() []int {
	if os.Getenv("KEYLESS_BENCH_LARGE") == "1" {
		return []int{1, 100, 10_000}
	}
	return []int{1, 100}
}

// scaleEnv is an emulator serving n trust anchors, each with its own CA
// certificate and a CRL from that CA, n roles, each with a trust policy
// naming its own anchor, and n profiles, each with its own role. Requests
// use the middle anchor, role and profile.
type scaleEnv struct {
	emu                 *emulator.Emulator
	srv                 *httptest.Server
	out                 emulator.Outputs
	inter               *pkitest.CA
	anchor, role, prof  string
	statePath, setupFor string
}

func newScaleEnv(b *testing.B, n int, withState bool) *scaleEnv {
	b.Helper()
	start := time.Now()
	dir := b.TempDir()
	var seed strings.Builder
	seed.WriteString("account: \"111122223333\"\nregion: us-east-1\noperators:\n  - name: admin\n    accessKeyId: " + operatorKeyID + "\n    secretAccessKey: " + operatorSecret + "\ntrustAnchors:\n")
	use := n / 2
	var useRoot *pkitest.CA
	for i := 0; i < n; i++ {
		root := pkitest.NewRoot(b, fmt.Sprintf("scale-%d", i))
		if i == use {
			useRoot = root
		}
		crl := fmt.Sprintf("ca-%d.crl", i)
		pkitest.WriteFile(b, dir, crl, root.CRL(b, big.NewInt(int64(1000+i))))
		fmt.Fprintf(&seed, "  - name: ca-%d\n    crls: [%s]\n    certificateBundlePem: |\n%s\n", i, crl, indent(string(pki.EncodeCertificates(root.Cert)), 6))
	}
	seed.WriteString("roles:\n")
	for i := 0; i < n; i++ {
		policy := fmt.Sprintf(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"rolesanywhere.amazonaws.com"},"Action":["sts:AssumeRole","sts:TagSession","sts:SetSourceIdentity"],"Condition":{"ArnEquals":{"aws:SourceArn":"${trustAnchors.ca-%d.arn}"},"StringEquals":{"aws:PrincipalTag/x509Subject/CN":"gitlab-runner"}}}]}`, i)
		fmt.Fprintf(&seed, "  - name: role-%d\n    assumeRolePolicy: '%s'\n", i, policy)
	}
	seed.WriteString("profiles:\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&seed, "  - name: profile-%d\n    roles: [role-%d]\n", i, i)
	}
	parsed, err := emulator.ParseSeed([]byte(seed.String()), emulator.SeedSource{Name: "scale.yaml", Dir: dir})
	if err != nil {
		b.Fatal(err)
	}
	cfg := emulator.Config{Seed: parsed, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	s := &scaleEnv{}
	if withState {
		s.statePath = filepath.Join(dir, "state.json")
		cfg.StatePath = s.statePath
	}
	if s.emu, err = emulator.New(cfg); err != nil {
		b.Fatal(err)
	}
	s.srv = httptest.NewServer(s.emu)
	b.Cleanup(s.srv.Close)
	s.out = parsed.Outputs(s.srv.URL)
	s.inter = useRoot.Intermediate(b, fmt.Sprintf("scale-int-%d", use))
	s.anchor, s.role, s.prof = s.out.TrustAnchors[fmt.Sprintf("ca-%d", use)], s.out.Roles[fmt.Sprintf("role-%d", use)], s.out.Profiles[fmt.Sprintf("profile-%d", use)]
	s.setupFor = time.Since(start).Round(time.Millisecond).String()
	return s
}

// BenchmarkScaleEmulator measures CreateSession as BenchmarkCreateSessionLoopback's
// same-certificate case does, with 1, 100 and (KEYLESS_BENCH_LARGE=1)
// 10,000 trust anchors, roles and profiles in the emulator: the
// per-session cost should not grow with them.
func BenchmarkScaleEmulator(b *testing.B) {
	for _, n := range scaleSizes() {
		// Set up once, not for each of b.Run's rounds.
		s := newScaleEnv(b, n, false)
		b.Logf("setting up %d anchors, roles and profiles took %s", n, s.setupFor)
		b.Run(fmt.Sprintf("anchors=%d/roles=%d/profiles=%d", n, n, n), func(b *testing.B) {
			key := pkitest.Key(b, pkitest.P256)
			leaf := s.inter.Leaf(b, pkitest.LeafOptions{Key: key})
			q := url.Values{"profileArn": {s.prof}, "roleArn": {s.role}, "trustAnchorArn": {s.anchor}}
			runSessions(b, s.srv.URL+"/sessions?"+q.Encode(), []*sigv4.X509Signer{{Key: key, Certificate: leaf, Intermediates: []*x509.Certificate{s.inter.Cert}}}, http.StatusCreated)
		})
		// A certificate from a CA no anchor knows is refused; the
		// refusal looks for another anchor that could have issued it.
		b.Run(fmt.Sprintf("refused/anchors=%d/roles=%d/profiles=%d", n, n, n), func(b *testing.B) {
			key := pkitest.Key(b, pkitest.P256)
			stranger := pkitest.NewRoot(b, "scale-stranger").Intermediate(b, "scale-stranger-int")
			leaf := stranger.Leaf(b, pkitest.LeafOptions{Key: key})
			q := url.Values{"profileArn": {s.prof}, "roleArn": {s.role}, "trustAnchorArn": {s.anchor}}
			runSessions(b, s.srv.URL+"/sessions?"+q.Encode(), []*sigv4.X509Signer{{Key: key, Certificate: leaf, Intermediates: []*x509.Certificate{stranger.Cert}}}, http.StatusForbidden)
		})
	}
}

// BenchmarkScaleEmulatorControlPlane measures one control-plane change
// (UpdateProfile's durationSeconds) with a state file, which records
// every change before answering: one journal record each
// (journal-bytes/change), fdatasynced, and now and then a compaction that
// rewrites the snapshot (state-bytes). compact-ms is one compaction,
// timed after the loop; amortised-ms/change adds its share to each
// change: a compaction comes once the journal outgrows the snapshot (and
// 1 MiB), so after max(state-bytes, 1 MiB) / journal-bytes/change
// changes. cpu-ms/change is the process's CPU time per change (client
// included), which a shared machine disturbs less than wall time.
func BenchmarkScaleEmulatorControlPlane(b *testing.B) {
	for _, n := range scaleSizes() {
		s := newScaleEnv(b, n, true)
		b.Run(fmt.Sprintf("anchors=%d/roles=%d/profiles=%d", n, n, n), func(b *testing.B) {
			id := s.prof[strings.LastIndex(s.prof, "/")+1:]
			client := s.srv.Client()
			// No compaction inside the loop: it is measured on its own.
			emulator.SetStateCompactMin(s.emu, 1<<62)
			if err := emulator.CompactState(s.emu); err != nil {
				b.Fatal(err)
			}
			journalStart := fileSize(b, s.statePath+".journal")
			b.ResetTimer()
			cpu := processCPU(b)
			for i := 0; b.Loop(); i++ {
				body, _ := json.Marshal(map[string]any{"durationSeconds": 1800 + i%1000})
				req, _ := http.NewRequest(http.MethodPatch, s.srv.URL+"/profile/"+id, strings.NewReader(string(body)))
				req.Header.Set("Content-Type", "application/json")
				if err := sigv4.SignHMAC(req, body, operator, "us-east-1", "rolesanywhere", time.Now()); err != nil {
					b.Fatal(err)
				}
				resp, err := client.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					b.Fatalf("UpdateProfile: %d", resp.StatusCode)
				}
			}
			b.StopTimer()
			cpu = processCPU(b) - cpu
			perChange := float64(b.Elapsed().Microseconds()) / float64(b.N) / 1000
			b.ReportMetric(perChange, "ms/change")
			b.ReportMetric(float64(cpu.Microseconds())/float64(b.N)/1000, "cpu-ms/change")
			record := float64(fileSize(b, s.statePath+".journal")-journalStart) / float64(b.N)
			b.ReportMetric(record, "journal-bytes/change")
			start := time.Now()
			if err := emulator.CompactState(s.emu); err != nil {
				b.Fatal(err)
			}
			compact := float64(time.Since(start).Microseconds()) / 1000
			snapshot := fileSize(b, s.statePath)
			b.ReportMetric(float64(snapshot), "state-bytes")
			b.ReportMetric(compact, "compact-ms")
			b.ReportMetric(perChange+compact*record/float64(max(snapshot, 1<<20)), "amortised-ms/change")
		})
	}
}

func fileSize(b *testing.B, path string) int64 {
	b.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	return fi.Size()
}
