package agent

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyless-dev/keyless/internal/agentapi"
	"github.com/keyless-dev/keyless/internal/ca/catest"
	"github.com/keyless-dev/keyless/internal/emulator"
	"github.com/keyless-dev/keyless/internal/emulator/emulatortest"
	"github.com/keyless-dev/keyless/internal/gitlab/gitlabfake"
	"github.com/keyless-dev/keyless/internal/pki"
	"github.com/keyless-dev/keyless/internal/renewal"
	"github.com/keyless-dev/keyless/internal/sigv4"
	"github.com/keyless-dev/keyless/internal/sts"
	"github.com/keyless-dev/keyless/internal/testkit"
)

// env is an agent wired to real parts in-process: a keyless CA, the
// emulator (Roles Anywhere and STS) on the same fake clock, and the fake
// GitLab, with a switch that takes the emulator off the network.
type env struct {
	t      *testing.T
	clock  *testkit.Clock
	ca     *catest.CA
	emu    *httptest.Server
	emuARN struct{ anchor, profile, role string }
	down   atomic.Bool
	calls  atomic.Int64 // CreateSession calls that reached the emulator
	conns  sync.Map     // the client addresses they came from
	gitlab *gitlabfake.Server
	audit  *testkit.Buffer
	dir    string
	agent  *Agent
	events chan Event
}

const testProjectPath = "infra/site"

func newEnv(t *testing.T, edit func(cfg string) string) *env {
	t.Helper()
	e := &env{t: t, clock: testkit.NewClock(time.Now().UTC().Truncate(time.Second)), audit: &testkit.Buffer{}, dir: t.TempDir(),
		events: make(chan Event, 100)}
	e.ca = catest.Start(t, catest.Options{Clock: e.clock})
	ref := emulatortest.Reference(pki.EncodeCertificates(e.ca.Root.Cert))
	ref.AcceptRoleSessionName = true
	seed, err := emulator.ParseSeed([]byte(ref.Seed()), emulator.SeedSource{Name: "seed.yaml"})
	if err != nil {
		t.Fatal(err)
	}
	emu, err := emulator.New(emulator.Config{Seed: seed, Now: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	e.emu = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if e.down.Load() {
			// As when the network is gone: the connection drops.
			if hj, ok := w.(http.Hijacker); ok {
				if c, _, err := hj.Hijack(); err == nil {
					c.Close()
					return
				}
			}
			return
		}
		if strings.HasSuffix(r.URL.Path, "/sessions") {
			e.calls.Add(1)
			e.conns.Store(r.RemoteAddr, true)
		}
		emu.ServeHTTP(w, r)
	}))
	t.Cleanup(e.emu.Close)
	out := seed.Outputs(e.emu.URL)
	e.emuARN.anchor, e.emuARN.profile, e.emuARN.role = out.TrustAnchors[emulatortest.TrustAnchor], out.Profiles[emulatortest.Profile], out.Roles[emulatortest.Role]

	e.gitlab = gitlabfake.New(gitlabfake.Options{Clock: e.clock})
	glSrv := httptest.NewServer(e.gitlab)
	t.Cleanup(glSrv.Close)
	e.gitlab.SetIssuer(glSrv.URL)

	tokenFile := filepath.Join(e.dir, "runner.token")
	if err := os.WriteFile(tokenFile, []byte(e.ca.Token(t, 1, "gitlab-runner")), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`identity:
  certificate: runner.crt
  key: runner.key
  ca: {url: %s, root: %s}
  enroll: {tokenFile: runner.token, subject: gitlab-runner}
aws:
  trustAnchorArn: %s
  endpoint: %s
gitlab:
  url: %s
  idTokens: {issuer: %s, audience: keyless}
listen:
  containerCredentials: ["127.0.0.1:0"]
rules:
  - name: site
    identity: [gitlab-job-token, gitlab-id-token]
    match: {project_path: %s}
    roleArn: %s
    profileArn: %s
`, e.ca.URL, e.ca.RootFile, e.emuARN.anchor, e.emu.URL, glSrv.URL, glSrv.URL, testProjectPath, e.emuARN.role, e.emuARN.profile)
	if edit != nil {
		cfg = edit(cfg)
	}
	c, err := ParseConfig([]byte(cfg), "agent.yaml", e.dir)
	if err != nil {
		t.Fatal(err)
	}
	e.agent, err = New(Options{Config: c, Clock: e.clock, Audit: slog.New(slog.NewTextHandler(e.audit, nil)),
		Getenv: func(string) string { return "" },
		Events: func(ev Event) {
			select {
			case e.events <- ev:
			default:
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// identity enrolls the runner as Run does at first start.
func (e *env) identity() {
	e.t.Helper()
	if err := e.agent.ensureIdentity(context.Background()); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) job(id int64, project string) string {
	return e.gitlab.AddJob(gitlabfake.Job{ID: id, ProjectID: 42, ProjectPath: project, Ref: "main"})
}

func (e *env) vend(token string) (*agentapi.Credentials, error) {
	return e.agent.Vend(context.Background(), agentapi.Request{Token: token, Listener: "test"})
}

func (e *env) whoami(c *agentapi.Credentials) string {
	e.t.Helper()
	id, err := sts.New(e.emu.URL, emulatortest.Region).GetCallerIdentity(context.Background(),
		sigv4.Credentials{AccessKeyID: c.AccessKeyID, SecretAccessKey: c.SecretAccessKey, SessionToken: c.Token, Expiration: c.Expiration})
	if err != nil {
		e.t.Fatal(err)
	}
	return id.Arn
}

func refusal(t *testing.T, err error) *agentapi.Refusal {
	t.Helper()
	var r *agentapi.Refusal
	if !errors.As(err, &r) {
		t.Fatalf("error %v (%T) is not a refusal", err, err)
	}
	return r
}

func TestVendNamesTheJob(t *testing.T) {
	e := newEnv(t, nil)
	e.identity()
	c, err := e.vend(e.job(1001, testProjectPath))
	if err != nil {
		t.Fatal(err)
	}
	want := "arn:aws:sts::" + emulatortest.Account + ":assumed-role/" + emulatortest.Role + "/gitlab-42-1001"
	if got := e.whoami(c); got != want {
		t.Errorf("STS says %s, want %s", got, want)
	}
	if c.AccountID != emulatortest.Account {
		t.Errorf("account %q", c.AccountID)
	}
	if left := c.Expiration.Sub(e.clock.Now()); left < 55*time.Minute {
		t.Errorf("credentials with %s left; the default is one hour", left)
	}
	// Another job of the same project: its own session.
	c2, err := e.vend(e.job(1002, testProjectPath))
	if err != nil {
		t.Fatal(err)
	}
	if got := e.whoami(c2); !strings.HasSuffix(got, "/gitlab-42-1002") {
		t.Errorf("the second job is %s", got)
	}
	if c2.AccessKeyID == c.AccessKeyID {
		t.Error("two jobs share credentials")
	}
}

// TestOneJobManyRequests: 1,000 concurrent requests of one job cost one
// CreateSession and one call to GitLab.
func TestOneJobManyRequests(t *testing.T) {
	e := newEnv(t, nil)
	e.identity()
	token := e.job(2001, testProjectPath)
	var wg sync.WaitGroup
	keys := make([]string, 1000)
	errs := make([]error, 1000)
	for i := range 1000 {
		wg.Go(func() {
			c, err := e.vend(token)
			errs[i] = err
			if c != nil {
				keys[i] = c.AccessKeyID
			}
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if keys[i] != keys[0] {
			t.Fatalf("request %d got other credentials", i)
		}
	}
	if n := e.calls.Load(); n != 1 {
		t.Errorf("%d CreateSession calls, want 1", n)
	}
	if n := e.gitlab.Calls("job"); n != 1 {
		t.Errorf("%d GitLab job API calls, want 1", n)
	}
}

// TestRefusals: each of these gets 401 or 403, never credentials, and no
// log line holds any token used.
func TestRefusals(t *testing.T) {
	e := newEnv(t, nil)
	e.identity()
	finished := e.job(3001, testProjectPath)
	e.gitlab.FinishJob(3001)
	other := e.job(3002, "someone/else")
	cases := []struct {
		name, token string
		status      int
	}{
		{"no token", "", 401},
		{"garbage", "not-a-token-anyone-issued", 401},
		{"finished job", finished, 401},
		{"no rule for the project", other, 403},
		{"forged JWT", e.gitlab.ForgedIDToken(map[string]any{"project_path": testProjectPath, "aud": "keyless"}), 401},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := e.vend(tc.token)
			if c != nil {
				t.Fatalf("credentials for %s", tc.name)
			}
			if r := refusal(t, err); r.Status != tc.status {
				t.Errorf("status %d (%s: %s), want %d", r.Status, r.Code, r.Message, tc.status)
			}
		})
	}
	if e.calls.Load() != 0 {
		t.Errorf("%d CreateSession calls for refused callers", e.calls.Load())
	}
	logs := e.audit.String()
	for _, tc := range cases {
		if tc.token != "" && strings.Contains(logs, tc.token) {
			t.Errorf("the audit log holds the %s token", tc.name)
		}
	}
	if n := strings.Count(logs, "agent decision"); n != len(cases) {
		t.Errorf("%d audit lines for %d decisions:\n%s", n, len(cases), logs)
	}
	if !strings.Contains(logs, "project=someone/else") || !strings.Contains(logs, "outcome=denied") {
		t.Errorf("the audit log does not say whose request was denied:\n%s", logs)
	}
}

// TestOutage: with Roles Anywhere unreachable, cached credentials are
// served until 15 minutes before they expire, then a clear error; when it
// is back, fresh credentials.
func TestOutage(t *testing.T) {
	e := newEnv(t, nil)
	e.identity()
	token := e.job(4001, testProjectPath)
	first, err := e.vend(token)
	if err != nil {
		t.Fatal(err)
	}
	e.down.Store(true)
	e.clock.Advance(40 * time.Minute) // 20 minutes left
	c, err := e.vend(token)
	if err != nil {
		t.Fatalf("with 20 minutes left and Roles Anywhere down: %v", err)
	}
	if c.AccessKeyID != first.AccessKeyID {
		t.Error("not the last good credentials")
	}
	e.clock.Advance(6 * time.Minute) // 14 minutes left: inside the margin
	c, err = e.vend(token)
	if c != nil {
		t.Fatalf("credentials with %s left", c.Expiration.Sub(e.clock.Now()))
	}
	r := refusal(t, err)
	if r.Status != 503 || !strings.Contains(r.Message, emulatortest.Role) || strings.Contains(r.Message, e.dir) {
		t.Errorf("refusal %d %s: %s", r.Status, r.Code, r.Message)
	}
	e.down.Store(false)
	e.clock.Advance(2 * time.Minute) // past any retry backoff
	c, err = e.vend(token)
	if err != nil {
		t.Fatalf("Roles Anywhere is back: %v", err)
	}
	if c.AccessKeyID == first.AccessKeyID || c.Expiration.Sub(e.clock.Now()) < 45*time.Minute {
		t.Errorf("not fresh credentials: expire %s", c.Expiration)
	}
}

// TestEnrollAndRenew: the agent enrolls from the token file at first
// start and serves; with the CA down it keeps the certificate and retries
// with capped backoff; when the CA is back it renews, and new sessions
// use the new certificate without a restart.
func TestEnrollAndRenew(t *testing.T) {
	e := newEnv(t, func(cfg string) string {
		// Renew an hour after issuance, whatever the lifetime.
		return strings.Replace(cfg, "  enroll:", "  renewBefore: 23h\n  enroll:", 1)
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.agent.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	next := func() Event {
		t.Helper()
		select {
		case ev := <-e.events:
			return ev
		case err := <-done:
			t.Fatalf("the agent stopped: %v", err)
		case <-time.After(30 * time.Second):
			t.Fatal("no event in 30s")
		}
		return nil
	}
	var leaf *x509.Certificate
	var scheduled *renewal.Scheduled
	ready := false
	for leaf == nil || scheduled == nil || !ready {
		switch ev := next().(type) {
		case Enrolled:
			leaf = ev.Leaf
		case Ready:
			ready = true
		case Renewal:
			if s, ok := ev.Event.(renewal.Scheduled); ok {
				scheduled = &s
			}
		}
	}
	if fi, err := os.Stat(filepath.Join(e.dir, "runner.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("runner.key: %v %v", fi, err)
	}
	c, err := e.vend(e.job(5001, testProjectPath))
	if err != nil {
		t.Fatal(err)
	}
	if got := e.whoami(c); !strings.HasSuffix(got, "/gitlab-42-5001") {
		t.Errorf("STS says %s", got)
	}

	e.ca.SetDown(true)
	e.clock.WaitForTimers(t, 1) // the renewal's, set after Scheduled
	e.clock.Set(scheduled.At)
	var waits []time.Duration
	for len(waits) < 8 {
		switch ev := next().(type) {
		case Renewal:
			if f, ok := ev.Event.(renewal.Failed); ok {
				waits = append(waits, f.RetryIn)
				e.clock.WaitForTimers(t, 1)
				e.clock.Advance(f.RetryIn)
			}
			if _, ok := ev.Event.(renewal.Renewed); ok {
				t.Fatal("renewed with the CA down")
			}
		}
	}
	for i, w := range waits {
		if w > renewal.DefaultBackoffMax {
			t.Errorf("wait %d is %s, over the cap %s", i, w, renewal.DefaultBackoffMax)
		}
	}
	if waits[len(waits)-1] <= waits[0] {
		t.Errorf("the waits do not back off: %v", waits)
	}
	kept, err := os.ReadFile(filepath.Join(e.dir, "runner.crt"))
	if err != nil || !bytes.Contains(kept, pki.EncodeCertificates(leaf)) {
		t.Fatalf("the certificate was not kept through the outage: %v", err)
	}
	if st := e.agent.Status(context.Background()); len(st.Errors) == 0 || st.Certificate.Serial != leaf.SerialNumber.String() {
		t.Errorf("status during the outage: %+v", st)
	}

	e.ca.SetDown(false)
	var renewed *x509.Certificate
	for renewed == nil {
		if ev, ok := next().(Renewal); ok {
			switch r := ev.Event.(type) {
			case renewal.Failed:
				e.clock.WaitForTimers(t, 1)
				e.clock.Advance(r.RetryIn)
			case renewal.Renewed:
				renewed = r.Leaf
			}
		}
	}
	if st := e.agent.Status(context.Background()); st.Certificate.Serial != renewed.SerialNumber.String() {
		t.Errorf("status names serial %s, renewed %s", st.Certificate.Serial, renewed.SerialNumber)
	}
	// A new session is made with the renewed certificate.
	if _, err := e.vend(e.job(5002, testProjectPath)); err != nil {
		t.Fatalf("after renewal: %v", err)
	}
}

// TestJobsShareConnections: each job has a session of its own, but their
// CreateSession calls share the agent's connections to Roles Anywhere
// rather than opening (and, over TLS, handshaking) one each.
func TestJobsShareConnections(t *testing.T) {
	e := newEnv(t, nil)
	e.identity()
	const jobs = 4 // within the rate limit's burst: the clock stands still
	for i := range jobs {
		if _, err := e.vend(e.job(int64(2000+i), testProjectPath)); err != nil {
			t.Fatal(err)
		}
	}
	conns := 0
	e.conns.Range(func(any, any) bool { conns++; return true })
	if e.calls.Load() != jobs || conns > 1 {
		t.Fatalf("%d jobs: %d CreateSession calls over %d connections, want %d calls over one", jobs, e.calls.Load(), conns, jobs)
	}
}
