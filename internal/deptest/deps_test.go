package deptest_test

import (
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/keyless-dev/keyless/internal/deptest"
)

// The layers, lowest first. docs/architecture.md draws them.
var layers = []string{"domain", "transport", "usecase", "cli", "cmd", "test"}

// keyless names every package and its layer.
var keyless = deptest.Rules{
	Layers: layers,
	Packages: map[string]string{
		// Domain: what keyless knows, with no servers, no HTTP clients
		// and no CLI (request and header types only where the wire format
		// is HTTP).
		"internal/atomicfile": "domain", "internal/buildinfo": "domain", "internal/ca": "domain",
		"internal/caproto": "domain", "internal/clock": "domain", "internal/credcache": "domain",
		"internal/iampolicy": "domain", "internal/identity": "domain", "internal/logline": "domain",
		"internal/pki": "domain", "internal/secretfile": "domain", "internal/sigv4": "domain", "internal/store": "domain",
		"internal/svcunit": "domain", "internal/metrics": "domain", "internal/yamlfile": "domain",
		"internal/credfile": "domain", "internal/trustpolicy": "domain",
		"internal/mldsa": "domain", "internal/jsonstr": "domain",
		// Transports and peers: the servers keyless runs and the clients
		// it calls.
		"internal/ca/caapi": "transport", "internal/caclient": "transport", "internal/emulator": "transport",
		"internal/rolesanywhere": "transport", "internal/sdnotify": "transport", "internal/serve": "transport",
		"internal/sts": "transport", "internal/gitlab": "transport", "internal/gitlab/gitlabfake": "transport",
		"internal/agentapi": "transport", "internal/hostnet": "transport", "internal/imds": "transport",
		// Use cases: what a user asks for, shared by the commands, keyless
		// dev and (next) the agent; injected clock and logger, typed
		// errors and events.
		"internal/awscreds": "usecase", "internal/caops": "usecase", "internal/devstack": "usecase",
		"internal/enroll": "usecase", "internal/renewal": "usecase", "internal/broker": "usecase", "internal/authz": "usecase",
		"internal/agent": "usecase", "internal/credserve": "usecase", "internal/doctor": "usecase",
		// keyless update's use case.
		"internal/credupdate": "usecase",
		// The command line, and main.
		"internal/cli": "cli",
		"cmd/keyless":  "cmd",
		// The generator of deploy/ (a development tool, outside the
		// binary): it prints what the CLI's --print-unit prints.
		"internal/deploygen": "cli", "internal/deploygen/cmd/gen-deploy": "cmd",
		// Test helpers.
		"internal/testkit": "test", "internal/pki/pkitest": "test", "internal/emulator/emulatortest": "test",
		"internal/rolesanywhere/rolesanywheretest": "test", "internal/ca/catest": "test", "internal/deptest": "test",
		"internal/svcunit/svcunittest": "test",
		// Test tooling: scripts/test pipes go test -json through it.
		"scripts/testsummary": "test",
	},
	OnlyIn: map[string][]string{
		"github.com/spf13/cobra": {"internal/cli"},
		"github.com/spf13/pflag": {"internal/cli"},
		"golang.org/x/term":      {"internal/cli"}, // the password prompt
		"go.etcd.io/bbolt":       {"internal/store"},
		// ML-DSA arithmetic: one package wraps it for the rest of keyless.
		"github.com/cloudflare/circl": {"internal/mldsa"},
		"github.com/aws/":             {},
	},
	NoLink: []deptest.NoLink{
		{Packages: []string{"cmd/keyless"}, Prefixes: []string{"github.com/aws/"},
			Why: "the AWS SDK belongs in the interop modules, which check keyless against it"},
		{Packages: []string{"cmd/keyless"}, Prefixes: []string{"github.com/rogpeppe/go-internal/", "github.com/google/go-cmp/", "github.com/keyless-dev/keyless/internal/testkit"},
			Why: "test dependencies stay out of the binary"},
		{Packages: []string{"internal/caclient", "internal/caproto", "internal/enroll", "internal/renewal", "internal/awscreds", "internal/agent"}, Prefixes: []string{"go.etcd.io/bbolt"},
			Why: "the runner side links no CA store"},
		{Packages: []string{"internal/agent", "internal/authz", "internal/broker", "internal/agentapi"}, Prefixes: []string{"github.com/keyless-dev/keyless/internal/gitlab/gitlabfake"},
			Why: "the fake GitLab is for tests and keyless dev only: nothing agent.yaml says can reach it"},
	},
	Forbid: []deptest.Forbid{
		{Layers: []string{"domain", "usecase"}, Why: "domain and use-case packages start no servers and build no network clients; the transports do",
			Uses: []string{"net/http.Client", "net/http.Transport", "net/http.Server", "net/http.DefaultClient", "net/http.DefaultTransport",
				"net/http.ListenAndServe", "net/http.ListenAndServeTLS", "net/http.Serve", "net/http.ServeTLS",
				"net/http.Get", "net/http.Head", "net/http.Post", "net/http.PostForm",
				"net.Listen", "net.ListenTCP", "net.ListenUDP", "net.ListenUnix", "net.ListenPacket", "net.ListenConfig",
				"net.Dial", "net.Dialer", "net.DialTCP", "net.DialUDP", "net.DialUnix", "net.DialTimeout",
				"crypto/tls.Dial", "crypto/tls.DialWithDialer", "crypto/tls.Dialer", "crypto/tls.Listen", "crypto/tls.Client", "crypto/tls.Server"}},
		{Layers: []string{"usecase", "cli"}, Why: "schedules and clocks come from internal/clock, injected",
			Uses: []string{"time.Now", "time.Sleep", "time.After", "time.AfterFunc", "time.NewTimer", "time.NewTicker", "time.Tick", "time.Since", "time.Until"}},
		{Layers: []string{"cli"}, Why: "the CLI wires the use cases; it does no HTTP itself",
			Uses: []string{"net/http.Client", "net/http.Transport", "net/http.Server", "net/http.NewRequest", "net/http.NewRequestWithContext",
				"net/http.DefaultClient", "net/http.Get", "net/http.Post", "net/http.ListenAndServe", "net.Listen", "net.Dial", "net.DialTimeout"}},
	},
	TestOnly: []string{"internal/testkit", "internal/pki/pkitest", "internal/emulator/emulatortest",
		"internal/rolesanywhere/rolesanywheretest", "internal/ca/catest", "internal/deptest", "internal/svcunit/svcunittest"},
}

// TestKeylessArchitecture holds keyless to its rules.
func TestKeylessArchitecture(t *testing.T) {
	violations, err := deptest.Check(filepath.Join("..", ".."), keyless)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range violations {
		t.Error(v)
	}
}

// TestGuardCatchesViolations runs the guard on a fixture module that
// breaks each kind of rule once, and expects exactly those violations:
// a guard that reports nothing cannot pass.
func TestGuardCatchesViolations(t *testing.T) {
	rules := deptest.Rules{
		Layers: []string{"domain", "usecase", "cli", "cmd"},
		Packages: map[string]string{
			"internal/domain": "domain", "internal/usecase": "usecase", "internal/cli": "cli", "cmd/app": "cmd",
		},
		OnlyIn:   map[string][]string{"flag": {"internal/cli"}, "os/user": {"internal/cli"}},
		NoLink:   []deptest.NoLink{{Packages: []string{"internal/domain"}, Prefixes: []string{"net/http"}, Why: "no HTTP below"}},
		Forbid:   []deptest.Forbid{{Layers: []string{"usecase"}, Uses: []string{"net/http.Client", "time.Now"}, Why: "injected"}},
		TestOnly: []string{"internal/helper"},
	}
	violations, err := deptest.Check(filepath.Join("testdata", "fixture"), rules)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, v := range violations {
		got = append(got, v.Package+": "+v.Rule)
	}
	want := []string{
		"cmd/app: test-only",                     // imports the test helper
		"internal/domain: layering",              // a domain package imports a use case
		"internal/domain: no-link",               // and so links net/http
		"internal/domain: only-in",               // imports flag, which only the CLI may
		"internal/helper: unjudged",              // a package the rules do not name
		"internal/usecase: forbidden use",        // &http.Client{}
		"internal/usecase: forbidden use",        // time.Now, under another name
		"internal/usecase: dot import",           // import . "time"
		"internal/usecase: only-in",              // os/user, in a file built for Windows only
		"internal/cli/testdata/sneaky: unjudged", // a package under testdata
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("violations:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, v := range violations {
		t.Log(v)
	}
}

// TestMainModuleRequiresNoAWSSDK: the main module's build list holds no
// AWS module at all, tests included; the SDK lives in interop/awssdk.
func TestMainModuleRequiresNoAWSSDK(t *testing.T) {
	cmd := exec.Command("go", "list", "-m", "all")
	cmd.Dir = filepath.Join("..", "..")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -m all: %v", err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, "github.com/aws/") {
			t.Errorf("the main module requires %s; AWS modules belong in interop modules", line)
		}
	}
}

func TestDefaultName(t *testing.T) {
	for path, want := range map[string]string{
		"net/http": "http", "go.yaml.in/yaml/v3": "yaml", "gopkg.in/yaml.v3": "yaml",
		"github.com/go-jose/go-jose/v4": "jose", "github.com/spf13/cobra": "cobra", "time": "time",
	} {
		if got := deptest.DefaultName(path); got != want {
			t.Errorf("DefaultName(%q) = %q, want %q", path, got, want)
		}
	}
}
