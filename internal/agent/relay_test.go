package agent

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/keyless-dev/keyless/internal/agentapi"
	"github.com/keyless-dev/keyless/internal/testkit"
)

// relayConfig is validConfig with relay listeners.
var relayConfig = strings.Replace(validConfig, "  metrics: 127.0.0.1:9464\n",
	"  metrics: 127.0.0.1:9464\n  relay: [\"127.0.0.1:9912\", \"172.17.0.1:9912\"]\n", 1)

func TestParseConfigRelay(t *testing.T) {
	c, err := ParseConfig([]byte(relayConfig), "agent.yaml", "/etc/keyless")
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Listen.Relay; len(got) != 2 || got[0] != "127.0.0.1:9912" || got[1] != "172.17.0.1:9912" {
		t.Errorf("relay listeners %v", got)
	}
	// A relay listener alone is a listener.
	only := strings.Replace(relayConfig, `  containerCredentials: ["169.254.170.2:80", "127.0.0.1:9911"]`+"\n", "", 1)
	only = strings.Replace(only, "  socket: {path: /run/keyless/agent.sock, mode: \"0660\"}\n", "", 1)
	only = only[:strings.Index(only, "  - name: host\n")]
	if _, err := ParseConfig([]byte(only), "agent.yaml", "/etc/keyless"); err != nil {
		t.Errorf("relay listeners alone: %v", err)
	}
}

// TestParseConfigRelayErrors: each refusal of a relay listener names the
// field and says what to give instead.
func TestParseConfigRelayErrors(t *testing.T) {
	for _, tc := range []struct {
		name, new string
		want      []string
	}{
		{"hostname", `"localhost:9912"`, []string{"listen.relay[0]", "IP address and port", "127.0.0.1:9912"}},
		{"no port", `"127.0.0.1"`, []string{"listen.relay[0]", "IP address and port"}},
		{"every interface", `"0.0.0.0:9912"`, []string{"listen.relay[0]", "not every interface", "never one the LAN reaches"}},
		{"every interface, v6", `"[::]:9912"`, []string{"listen.relay[0]", "not every interface"}},
		{"multicast", `"224.0.0.1:9912"`, []string{"listen.relay[0]", "not every interface"}},
		{"a link-local address", `"169.254.170.2:80"`, []string{"listen.relay[0]", "containerCredentials"}},
		{"twice", `"127.0.0.1:9912", "127.0.0.1:9912"`, []string{"listen.relay[1]", "listed twice"}},
		{"also a container listener", `"127.0.0.1:9911"`, []string{"listen.relay[0]", "listed twice"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc := strings.Replace(relayConfig, `"127.0.0.1:9912", "172.17.0.1:9912"`, tc.new, 1)
			_, err := ParseConfig([]byte(doc), "agent.yaml", "/etc/keyless")
			if err == nil {
				t.Fatalf("accepted:\n%s", doc)
			}
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Errorf("error %T is not a *ConfigError", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

// TestCheckRelayListeners: at start, a relay listener on loopback or on a
// bridge's address passes; one on an address no bridge has (the LAN's)
// is refused, naming the field and docker0.
func TestCheckRelayListeners(t *testing.T) {
	c, err := ParseConfig([]byte(relayConfig), "agent.yaml", "/etc/keyless")
	if err != nil {
		t.Fatal(err)
	}
	a := &Agent{cfg: c}
	bridge := func(ad netip.Addr) string {
		if ad == netip.MustParseAddr("172.17.0.1") {
			return "docker0"
		}
		return ""
	}
	if err := a.checkRelayListeners(bridge); err != nil {
		t.Errorf("loopback and docker0's address: %v", err)
	}
	err = a.checkRelayListeners(func(netip.Addr) string { return "" })
	var ce *ConfigError
	if !errors.As(err, &ce) || ce.Field != "listen.relay[1]" || !strings.Contains(err.Error(), "must not face the LAN") ||
		!strings.Contains(err.Error(), "docker0") {
		t.Errorf("172.17.0.1 on no bridge: %v", err)
	}
	// Through Run: refused before enrolling (which spends the token).
	e := newEnv(t, func(cfg string) string {
		return strings.Replace(cfg, `  containerCredentials: ["127.0.0.1:0"]`, `  relay: ["203.0.113.7:9912"]`, 1)
	})
	err = e.agent.Run(context.Background())
	if !errors.As(err, &ce) || ce.Field != "listen.relay[0]" {
		t.Fatalf("Run with a relay listener on no bridge: %v", err)
	}
	select {
	case ev := <-e.events:
		if _, ok := ev.(Enrolled); ok {
			t.Error("enrolled before refusing the listener")
		}
	default:
	}
}

// TestRelayHosts: a relay listener accepts its own address and
// host.docker.internal with its port, nothing else.
func TestRelayHosts(t *testing.T) {
	got := relayHosts("127.0.0.1:9912")
	want := []string{"127.0.0.1:9912", "localhost:9912", "host.docker.internal:9912"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("relayHosts = %v, want %v", got, want)
	}
	if got := relayHosts("172.17.0.1:80"); !strings.Contains(strings.Join(got, " "), " host.docker.internal") {
		t.Errorf("port 80: %v", got)
	}
}

func TestParseRelayUpstream(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"http://host.docker.internal:9912", "http://host.docker.internal:9912/v1/credentials"},
		{"http://HOST.docker.internal:9912/", "http://HOST.docker.internal:9912/v1/credentials"},
		{"http://gateway.docker.internal:9912", "http://gateway.docker.internal:9912/v1/credentials"},
		{"http://127.0.0.1:9912", "http://127.0.0.1:9912/v1/credentials"},
		{"http://localhost:9912", "http://localhost:9912/v1/credentials"},
		{"http://172.17.0.1:9912", "http://172.17.0.1:9912/v1/credentials"},
		{"http://192.168.65.254:9912", "http://192.168.65.254:9912/v1/credentials"},
		{"http://[fd00::1]:9912", "http://[fd00::1]:9912/v1/credentials"},
		{"https://agent.example.com/keyless/", "https://agent.example.com/keyless/v1/credentials"},
	} {
		got, err := ParseRelayUpstream(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseRelayUpstream(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, tc := range []struct{ in, want string }{
		{"http://agent.example.com:9912", "plain http"},
		{"http://8.8.8.8:9912", "plain http"},
		{"http://127.0.0.1.evil.example:9912", "plain http"},
		{"http://host.docker.internal.evil.example:9912", "plain http"},
		{"http://127.0.0.1:1@evil.example", "no user"},
		{"http://127.0.0.1:9912?x=1", "no user, query"},
		{"http://127.0.0.1:9912#x", "no user, query or fragment"},
		{"ftp://127.0.0.1", "not an http"},
		{"host.docker.internal:9912", "not"},
		{"", "not a base URL"},
		{"http://host.docker.internal:9912/v1/credentials", "without /v1/credentials"},
	} {
		if got, err := ParseRelayUpstream(tc.in); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseRelayUpstream(%q) = %q, %v; want an error saying %q", tc.in, got, err, tc.want)
		}
	}
}

// TestRunRelayRefuses: options that cannot work are refused before
// listening, naming the option.
func TestRunRelayRefuses(t *testing.T) {
	for _, tc := range []struct {
		o      RelayOptions
		option string
	}{
		{RelayOptions{Upstream: "http://agent.example.com:9912"}, "upstream"},
		{RelayOptions{Upstream: "http://127.0.0.1:9912", Listen: "0.0.0.0:80"}, "listen"},
		{RelayOptions{Upstream: "http://127.0.0.1:9912", Listen: "relay:80"}, "listen"},
		{RelayOptions{Upstream: "http://169.254.170.2"}, "upstream"}, // itself
	} {
		err := RunRelay(context.Background(), tc.o)
		var oe *RelayOptionError
		if !errors.As(err, &oe) || oe.Option != tc.option {
			t.Errorf("%+v: %v, want a *RelayOptionError for %s", tc.o, err, tc.option)
		}
	}
	// An address this host does not have: a listen error.
	err := RunRelay(context.Background(), RelayOptions{Upstream: "http://127.0.0.1:9912", Listen: "203.0.113.7:80"})
	var le *RelayListenError
	if !errors.As(err, &le) {
		t.Errorf("listening on 203.0.113.7: %v", err)
	}
}

// TestThroughTheRelay: a job's request goes through keyless agent relay
// to the agent's relay listener and gets the job's own session; the
// agent's refusals come back through it; the relay listener's Host check
// takes host.docker.internal but not a rebound name.
func TestThroughTheRelay(t *testing.T) {
	e := newEnv(t, func(cfg string) string {
		return strings.Replace(cfg, `  containerCredentials: ["127.0.0.1:0"]`, `  relay: ["127.0.0.1:0"]`, 1)
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
	agentURL := waitListening(t, e.events, done, "relay")
	base := strings.TrimSuffix(agentURL, ContainerPath)

	relayEvents := make(chan Event, 10)
	relayDone := make(chan error, 1)
	var logs testkit.Buffer
	go func() {
		relayDone <- RunRelay(ctx, RelayOptions{Upstream: base, Listen: "127.0.0.1:0", UserAgent: "keyless-test",
			Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})), Events: func(ev Event) { relayEvents <- ev }})
	}()
	relayURL := waitListening(t, relayEvents, relayDone, "relay")

	get := func(url, host, token string) (*http.Response, []byte) {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		if host != "" {
			req.Host = host
		}
		if token != "" {
			req.Header.Set("Authorization", token)
		}
		return testkit.Do(t, http.DefaultClient, req)
	}
	tok := e.job(7001, testProjectPath)
	resp, body := get(relayURL, "", tok)
	var c struct{ AccessKeyId, SecretAccessKey, Token, Expiration string }
	if resp.StatusCode != 200 || json.Unmarshal(body, &c) != nil || c.AccessKeyId == "" {
		t.Fatalf("through the relay: %d %s", resp.StatusCode, body)
	}
	exp, _ := time.Parse(time.RFC3339, c.Expiration)
	if got := e.whoami(&agentapi.Credentials{AccessKeyID: c.AccessKeyId, SecretAccessKey: c.SecretAccessKey, Token: c.Token, Expiration: exp}); !strings.HasSuffix(got, "/gitlab-42-7001") {
		t.Errorf("STS says %s", got)
	}
	if !strings.Contains(e.audit.String(), "listener=relay:"+strings.TrimPrefix(base, "http://")) {
		t.Errorf("the audit line does not name the relay listener:\n%s", e.audit)
	}

	// Refusals pass through as the agent wrote them.
	resp, body = get(relayURL, "", "not-a-token-anyone-issued")
	if resp.StatusCode != 401 || resp.Header.Get("Content-Type") != "application/json" || !strings.Contains(string(body), `"code"`) {
		t.Errorf("a wrong token through the relay: %d %s %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	other := e.job(7002, "someone/else")
	if resp, body = get(relayURL, "", other); resp.StatusCode != 403 {
		t.Errorf("a job no rule allows, through the relay: %d %s", resp.StatusCode, body)
	}

	// The relay listener's Host check: host.docker.internal with the
	// port (what the relay sends for --upstream
	// http://host.docker.internal:PORT) passes on to the token check; a
	// name of an attacker's does not.
	port := base[strings.LastIndex(base, ":")+1:]
	if resp, body = get(agentURL, "host.docker.internal:"+port, ""); resp.StatusCode != 401 {
		t.Errorf("Host host.docker.internal:%s: %d %s", port, resp.StatusCode, body)
	}
	if resp, body = get(agentURL, "rebound.attacker.example:"+port, tok); resp.StatusCode != 403 || !strings.Contains(string(body), "WrongHost") {
		t.Errorf("Host rebound.attacker.example: %d %s", resp.StatusCode, body)
	}
	if strings.Contains(logs.String(), tok) || strings.Contains(e.audit.String(), tok) {
		t.Error("a job's token is in a log")
	}
	cancel()
	if err := <-relayDone; err != nil {
		t.Errorf("the relay: %v", err)
	}
}

func waitListening(t *testing.T, events chan Event, done chan error, kind string) string {
	t.Helper()
	for {
		select {
		case ev := <-events:
			if l, ok := ev.(Listening); ok && l.Kind == kind {
				return l.Address
			}
		case err := <-done:
			t.Fatalf("stopped before listening: %v", err)
		case <-time.After(30 * time.Second):
			t.Fatalf("no %s listener in 30s", kind)
		}
	}
}
