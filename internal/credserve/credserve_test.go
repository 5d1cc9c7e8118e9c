package credserve

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyless-dev/keyless/internal/awscreds"
	"github.com/keyless-dev/keyless/internal/broker"
	"github.com/keyless-dev/keyless/internal/emulator/emulatortest"
	"github.com/keyless-dev/keyless/internal/identity"
	"github.com/keyless-dev/keyless/internal/imds"
	"github.com/keyless-dev/keyless/internal/pki/pkitest"
	"github.com/keyless-dev/keyless/internal/sigv4"
	"github.com/keyless-dev/keyless/internal/sts"
	"github.com/keyless-dev/keyless/internal/testkit"
)

// env is the emulator on a fake clock behind a switch that takes it off
// the network, and a runner identity it trusts.
type env struct {
	t     *testing.T
	clock *testkit.Clock
	emu   *emulatortest.Server
	url   string // the switched endpoint
	down  atomic.Bool
	calls atomic.Int64 // CreateSession calls that reached the emulator
	req   awscreds.Request
	logs  *testkit.Buffer

	mu     sync.Mutex
	events []Event
	change chan struct{}
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{t: t, clock: testkit.NewClock(time.Now().UTC().Truncate(time.Second)), logs: &testkit.Buffer{}, change: make(chan struct{})}
	root := pkitest.NewRoot(t, "credserve-root")
	inter := root.Intermediate(t, "credserve-int")
	e.emu = emulatortest.NewAt(t, e.clock.Now, nil, root.Cert)
	switched := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if e.down.Load() {
			// As when the network is gone: the connection drops.
			if hj, ok := w.(http.Hijacker); ok {
				if c, _, err := hj.Hijack(); err == nil {
					c.Close()
				}
			}
			return
		}
		if strings.HasSuffix(r.URL.Path, "/sessions") {
			e.calls.Add(1)
		}
		e.emu.Emulator.ServeHTTP(w, r)
	}))
	t.Cleanup(switched.Close)
	e.url = switched.URL
	dir := t.TempDir()
	crt, keyFile := inter.WriteIdentity(t, dir)
	e.req = awscreds.Request{Files: identity.Files{Certificate: crt, PrivateKey: keyFile}, TrustAnchorARN: e.emu.TrustAnchorARN,
		ProfileARN: e.emu.ProfileARN, RoleARN: e.emu.RoleARN, DurationSeconds: 3600, Endpoint: e.url}
	return e
}

func (e *env) options() Options {
	return Options{Request: e.req, Address: "127.0.0.1", Port: 0, Clock: e.clock,
		Fetcher: awscreds.Fetcher{Getenv: func(string) string { return "" }},
		Logger:  slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Events: func(ev Event) {
			e.mu.Lock()
			e.events = append(e.events, ev)
			close(e.change)
			e.change = make(chan struct{})
			e.mu.Unlock()
		}}
}

func (e *env) server(o Options) *Server {
	e.t.Helper()
	s, err := New(o)
	if err != nil {
		e.t.Fatal(err)
	}
	return s
}

// waitFor waits for the first event that match accepts. The minute of
// real time guards against a server that never gets there.
func (e *env) waitFor(what string, match func(Event) bool) Event {
	e.t.Helper()
	limit := time.NewTimer(time.Minute)
	defer limit.Stop()
	for {
		e.mu.Lock()
		for _, ev := range e.events {
			if match(ev) {
				e.mu.Unlock()
				return ev
			}
		}
		change := e.change
		e.mu.Unlock()
		select {
		case <-change:
		case <-limit.C:
			e.t.Fatalf("waited a minute for %s", what)
		}
	}
}

// imdsGet gets a token and the credentials through h, as an SDK does.
func imdsGet(t *testing.T, h http.Handler, role string) (int, string) {
	t.Helper()
	r := httptest.NewRequest("PUT", "http://127.0.0.1:9911"+imds.TokenPath, nil)
	r.Header.Set(imds.TTLHeader, "21600")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != 200 {
		t.Fatalf("token: %d %s", w.Code, w.Body)
	}
	r = httptest.NewRequest("GET", "http://127.0.0.1:9911"+imds.CredentialsPath+role, nil)
	r.Header.Set(imds.TokenHeader, w.Body.String())
	w = httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w.Code, w.Body.String()
}

type answer struct {
	Code, LastUpdated, Type, AccessKeyId, SecretAccessKey, Token, Expiration string
}

func parse(t *testing.T, body string) answer {
	t.Helper()
	var a answer
	if err := json.Unmarshal([]byte(body), &a); err != nil {
		t.Fatalf("not JSON: %q", body)
	}
	if a.Code != "Success" || a.Type != "AWS-HMAC" || a.AccessKeyId == "" || a.SecretAccessKey == "" || a.Token == "" {
		t.Fatalf("answer %+v", a)
	}
	return a
}

func (e *env) whoami(a answer) string {
	e.t.Helper()
	exp, _ := time.Parse(time.RFC3339, a.Expiration)
	id, err := sts.New(e.emu.URL, emulatortest.Region).GetCallerIdentity(context.Background(),
		sigv4.Credentials{AccessKeyID: a.AccessKeyId, SecretAccessKey: a.SecretAccessKey, SessionToken: a.Token, Expiration: exp})
	if err != nil {
		e.t.Fatal(err)
	}
	return id.Arn
}

// TestRunServes: Run listens, gets the first credentials, and answers
// IMDSv2 over TCP with credentials STS accepts; a hundred requests cost
// one CreateSession; it stops when its context ends.
func TestRunServes(t *testing.T) {
	e := newEnv(t)
	s := e.server(e.options())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	l := e.waitFor("Listening", func(ev Event) bool { _, ok := ev.(Listening); return ok }).(Listening)
	if !strings.HasPrefix(l.URL, "http://127.0.0.1:") || l.HopLimit != 64 {
		t.Errorf("listening %+v", l)
	}
	e.waitFor("Ready", func(ev Event) bool { _, ok := ev.(Ready); return ok })

	var first answer
	for i := range 100 {
		req, _ := http.NewRequest("PUT", l.URL+"latest/api/token", nil)
		req.Header.Set(imds.TTLHeader, "60")
		resp, tok := testkit.Do(t, http.DefaultClient, req)
		if resp.StatusCode != 200 {
			t.Fatalf("token: %d", resp.StatusCode)
		}
		req, _ = http.NewRequest("GET", l.URL+"latest/meta-data/iam/security-credentials/"+emulatortest.Role, nil)
		req.Header.Set(imds.TokenHeader, string(tok))
		resp, body := testkit.Do(t, http.DefaultClient, req)
		if resp.StatusCode != 200 {
			t.Fatalf("credentials: %d %s", resp.StatusCode, body)
		}
		a := parse(t, string(body))
		if i == 0 {
			first = a
		} else if a != first {
			t.Fatalf("request %d got other credentials", i)
		}
	}
	if n := e.calls.Load(); n != 1 {
		t.Errorf("%d CreateSession calls for 100 requests, want 1", n)
	}
	if arn := e.whoami(first); !strings.HasPrefix(arn, "arn:aws:sts::111122223333:assumed-role/"+emulatortest.Role+"/") {
		t.Errorf("STS says %s", arn)
	}
	if first.LastUpdated != e.clock.Now().Format(time.RFC3339) {
		t.Errorf("LastUpdated %s, want the fetch's time %s", first.LastUpdated, e.clock.Now().Format(time.RFC3339))
	}
	if strings.Contains(e.logs.String(), first.SecretAccessKey) || strings.Contains(e.logs.String(), first.Token) {
		t.Error("the log holds the credentials")
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
}

// TestLastGood: after the first success Roles Anywhere goes away; past
// the refresh point the server still answers the last good credentials
// while they have more than the margin left, never empty ones, then 503;
// when it is back, fresh credentials.
func TestLastGood(t *testing.T) {
	e := newEnv(t)
	s := e.server(e.options())
	h, err := s.Handler()
	if err != nil {
		t.Fatal(err)
	}
	code, body := imdsGet(t, h, emulatortest.Role)
	if code != 200 {
		t.Fatalf("first: %d %s", code, body)
	}
	first := parse(t, body)

	e.down.Store(true)
	// A one-hour session with a 15-minute margin refreshes 22m30s after
	// its fetch; at 30 minutes the refresh starts, and fails.
	e.clock.Advance(30 * time.Minute)
	code, body = imdsGet(t, h, emulatortest.Role)
	if code != 200 || parse(t, body) != first {
		t.Fatalf("past the refresh point, with Roles Anywhere down: %d %s", code, body)
	}
	e.waitFor("a failed refresh", func(ev Event) bool {
		b, ok := ev.(Broker)
		_, retrying := b.Event.(broker.Retrying)
		return ok && retrying
	})
	for _, at := range []time.Duration{5 * time.Minute, 14 * time.Minute} { // 25, then 16 minutes left
		e.clock.Set(mustTime(t, first.Expiration).Add(-60 * time.Minute).Add(30*time.Minute + at))
		code, body = imdsGet(t, h, emulatortest.Role)
		if code != 200 || parse(t, body) != first {
			t.Fatalf("%s left: %d %s, want the last good credentials", mustTime(t, first.Expiration).Sub(e.clock.Now()), code, body)
		}
	}
	e.clock.Set(mustTime(t, first.Expiration).Add(-14 * time.Minute))
	code, body = imdsGet(t, h, emulatortest.Role)
	if code != 503 || strings.Contains(body, "AccessKeyId") || strings.Contains(body, "Success") {
		t.Fatalf("14 minutes left, no refresh: %d %q, want 503 and no credentials", code, body)
	}
	var be *broker.Error
	if _, err := s.Credentials(context.Background()); !errors.As(err, &be) {
		t.Errorf("Credentials: %v, want a *broker.Error", err)
	}
	if !strings.Contains(e.logs.String(), "no credentials to answer with") {
		t.Errorf("the refusal is not logged:\n%s", e.logs.String())
	}

	e.down.Store(false)
	e.clock.Advance(2 * time.Minute) // past any backoff
	code, body = imdsGet(t, h, emulatortest.Role)
	if code != 200 {
		t.Fatalf("Roles Anywhere is back: %d %s", code, body)
	}
	fresh := parse(t, body)
	if fresh.AccessKeyId == first.AccessKeyId || mustTime(t, fresh.Expiration).Sub(e.clock.Now()) < 55*time.Minute {
		t.Errorf("not fresh: %+v", fresh)
	}
}

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestShortSessions: the helper's shortest session, 15 minutes, is
// served (with a 5-minute margin), refreshed ahead.
func TestShortSessions(t *testing.T) {
	e := newEnv(t)
	o := e.options()
	o.Request.DurationSeconds = 900
	s := e.server(o)
	h, _ := s.Handler()
	code, body := imdsGet(t, h, emulatortest.Role)
	if code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	first := parse(t, body)
	if left := mustTime(t, first.Expiration).Sub(e.clock.Now()); left != 15*time.Minute {
		t.Errorf("%s left", left)
	}
	if Margin(15*time.Minute) != 5*time.Minute || Margin(time.Hour) != 15*time.Minute {
		t.Errorf("margins %s %s", Margin(15*time.Minute), Margin(time.Hour))
	}
}

// TestStartFails: a key that does not match, or Roles Anywhere refusing
// or unreachable at start, stops Run with a *StartError before anything
// is served; a port in use too.
func TestStartFails(t *testing.T) {
	e := newEnv(t)
	e.down.Store(true)
	err := e.server(e.options()).Run(context.Background())
	var se *StartError
	if !errors.As(err, &se) || se.Listen {
		t.Fatalf("Roles Anywhere down at start: %v", err)
	}
	e.down.Store(false)
	holder, err := imds.Listen("127.0.0.1:0", 64, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	o := e.options()
	o.Port = holder.Addr().(*net.TCPAddr).Port
	err = e.server(o).Run(context.Background())
	if !errors.As(err, &se) || !se.Listen {
		t.Fatalf("port in use: %v", err)
	}
	if e.calls.Load() != 0 {
		t.Errorf("%d CreateSession calls although the port was in use", e.calls.Load())
	}
}

// TestOptions: the address must be an IP address; the hop limit is 64
// on loopback and 1 anywhere else unless asked; out-of-range values and
// bad requests are refused, naming the flag.
func TestOptions(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		address string
		hop     int
		want    int
	}{
		{"127.0.0.1", 0, 64}, {"", 0, 64}, {"::1", 0, 64}, {"127.0.0.2", 0, 64}, {"::ffff:127.0.0.1", 0, 64},
		{"0.0.0.0", 0, 1}, {"::", 0, 1}, {"172.17.0.1", 0, 1}, {"169.254.169.254", 0, 1}, {"10.0.0.5", 0, 1},
		{"172.17.0.1", 3, 3}, {"127.0.0.1", 1, 1}, {"127.0.0.1", 255, 255},
	} {
		o := e.options()
		o.Address, o.HopLimit = tc.address, tc.hop
		s, err := New(o)
		if err != nil {
			t.Errorf("%s hop %d: %v", tc.address, tc.hop, err)
			continue
		}
		if s.HopLimit() != tc.want {
			t.Errorf("%q hop %d: hop limit %d, want %d", tc.address, tc.hop, s.HopLimit(), tc.want)
		}
	}
	for _, tc := range []struct {
		edit  func(*Options)
		field string
		says  string
	}{
		{func(o *Options) { o.Address = "localhost" }, "address", "not a name"},
		{func(o *Options) { o.Address = "127.0.0.1:9911" }, "address", "--port"},
		{func(o *Options) { o.Address = "fe80::1%eth0" }, "address", "--address"},
		{func(o *Options) { o.HopLimit = 256 }, "hop-limit", "1 to 255"},
		{func(o *Options) { o.HopLimit = -1 }, "hop-limit", "1 to 255"},
		{func(o *Options) { o.Port = 65536 }, "port", "0 to 65535"},
		{func(o *Options) { o.Request.RoleARN = "" }, "missing", "role-arn"},
		{func(o *Options) { o.Request.DurationSeconds = 600 }, "session-duration", "900"},
	} {
		o := e.options()
		tc.edit(&o)
		_, err := New(o)
		var oe *OptionError
		var ie *awscreds.InputError
		switch {
		case errors.As(err, &oe):
			if oe.Field != tc.field {
				t.Errorf("%v: field %s, want %s", err, oe.Field, tc.field)
			}
		case errors.As(err, &ie):
			if ie.Field != tc.field {
				t.Errorf("%v: field %s, want %s", err, ie.Field, tc.field)
			}
		default:
			t.Errorf("want a refusal of %s, got %v", tc.field, err)
			continue
		}
		if !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%v: does not say %q", err, tc.says)
		}
	}
	if e.calls.Load() != 0 {
		t.Error("New called CreateSession")
	}
}

// TestAllow: on loopback everyone who reaches it is answered; off
// loopback only the host and its bridges, plus AllowFrom, and the
// handler refuses the rest.
func TestAllow(t *testing.T) {
	e := newEnv(t)
	o := e.options()
	if s := e.server(o); s.Allow() != nil {
		t.Error("loopback: a source filter")
	}
	container := netip.MustParseAddr("172.17.0.5")
	o.Address = "172.17.0.1"
	o.HostSources = func(a netip.Addr) bool { return a == container }
	o.AllowFrom = []netip.Prefix{netip.MustParsePrefix("10.20.0.0/16")}
	allow := e.server(o).Allow()
	if allow == nil {
		t.Fatal("off loopback: no source filter")
	}
	for addr, want := range map[string]bool{"172.17.0.5": true, "::ffff:172.17.0.5": true, "10.20.3.4": true,
		"192.168.1.20": false, "172.17.0.6": false, "10.21.0.1": false} {
		if got := allow(netip.MustParseAddr(addr)); got != want {
			t.Errorf("%s: allowed %v, want %v", addr, got, want)
		}
	}
	h, err := e.server(o).Handler()
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest("PUT", "http://172.17.0.1:9911/latest/api/token", nil)
	r.RemoteAddr = "192.168.1.20:5555"
	r.Header.Set("X-aws-ec2-metadata-token-ttl-seconds", "60")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != http.StatusForbidden {
		t.Errorf("a LAN neighbour's token request: %d", w.Code)
	}
}

// TestRoleName: the listed name is the role ARN's last path segment.
func TestRoleName(t *testing.T) {
	e := newEnv(t)
	o := e.options()
	o.Request.RoleARN = "arn:aws:iam::111122223333:role/team/ci/deployer"
	if s := e.server(o); s.RoleName() != "deployer" {
		t.Errorf("role name %q", s.RoleName())
	}
}

// TestPasswordAskedOnce: an encrypted key's password is asked once,
// however many fetches.
func TestPasswordAskedOnce(t *testing.T) {
	var asked atomic.Int64
	ask := rememberPassword(func(string) ([]byte, error) { asked.Add(1); return []byte("pw"), nil })
	for range 3 {
		if pw, err := ask("k"); err != nil || string(pw) != "pw" {
			t.Fatal(pw, err)
		}
	}
	failing := rememberPassword(func(string) ([]byte, error) { asked.Add(1); return nil, errors.New("no") })
	failing("k")
	failing("k")
	if asked.Load() != 3 {
		t.Errorf("asked %d times, want 1 and then 2 for failures", asked.Load())
	}
}

// TestRunOffLoopback: on 0.0.0.0 the hop limit is 1 unless asked; an
// explicit larger one is obeyed and warned about.
func TestRunOffLoopback(t *testing.T) {
	for _, tc := range []struct {
		hop, want int
		warns     bool
	}{{0, 1, false}, {3, 3, true}} {
		e := newEnv(t)
		o := e.options()
		o.Address, o.HopLimit = "0.0.0.0", tc.hop
		s := e.server(o)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- s.Run(ctx) }()
		l := e.waitFor("Listening", func(ev Event) bool { _, ok := ev.(Listening); return ok }).(Listening)
		if l.HopLimit != tc.want || !strings.HasPrefix(l.URL, "http://0.0.0.0:") {
			t.Errorf("hop %d: listening %+v, want hop limit %d", tc.hop, l, tc.want)
		}
		port := strings.TrimSuffix(strings.TrimPrefix(l.URL, "http://0.0.0.0:"), "/")
		req, _ := http.NewRequest("PUT", "http://127.0.0.1:"+port+imds.TokenPath, nil)
		if resp, _ := testkit.Do(t, http.DefaultClient, req); resp.StatusCode != 200 {
			t.Errorf("hop %d: token: %d", tc.hop, resp.StatusCode)
		}
		if warned := strings.Contains(e.logs.String(), "hop limit above 1"); warned != tc.warns {
			t.Errorf("hop %d: warned %v, want %v:\n%s", tc.hop, warned, tc.warns, e.logs.String())
		}
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}
