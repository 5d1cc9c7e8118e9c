//go:build linux

package containers_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keyless-dev/keyless/internal/emulator/emulatortest"
	"github.com/keyless-dev/keyless/internal/gitlab/gitlabfake"
	"github.com/keyless-dev/keyless/internal/testkit"
)

// The Docker Desktop setup (deploy/docker/relay/Dockerfile), on Linux:
// Docker Desktop cannot run here, but what the relay does is the same.
// The relay's image, built from the Dockerfile, runs on a user-defined
// network with subnet 169.254.170.0/24 at 169.254.170.2, and reaches the
// agent as host.docker.internal through host-gateway (docker0's address,
// where the agent's relay listener is); job containers join that network
// (the runner's network_mode). The host itself must not hold
// 169.254.170.2 meanwhile: it would answer ARP for the relay's address.
const (
	relaySubnet  = "169.254.170.0/24"
	relayGateway = "169.254.170.1"
	// relayIPRange keeps the addresses Docker hands out (to jobs) away
	// from the relay's, so a job started while the relay restarts
	// cannot take 169.254.170.2.
	relayIPRange = "169.254.170.128/25"
	relayLabel   = "dev.keyless.interop=relay"
)

// relayEnv is the agent with a relay listener on docker0's address, and
// the relay's network and container.
type relayEnv struct {
	*agentEnv
	network   string // the Docker network jobs join
	gateway   netip.Addr
	listener  string // the agent's relay listener, address:port
	container string // the relay's
}

func startRelay(t *testing.T) *relayEnv {
	t.Helper()
	buildImages(t) // a missing peer skips the test before anything starts
	keyless := testkit.Keyless(t)
	gw := dockerGateway(t)
	listener := netip.AddrPortFrom(gw, freePort(t, gw)).String()
	e := startAgentWith(t, agentOptions{
		network: func(t *testing.T) {
			lockHostNet(t)
			freeRelayAddress(t)
			removeLeftovers(t)
		},
		sts:    gw,
		listen: fmt.Sprintf("  relay: [%q]\n", listener),
		// Only runner 1's jobs (the fake GitLab's default runner).
		gitlab: func(string) string { return "  runnerIds: [1]\n" },
		ready:  []string{"http://" + listener + "/v1/credentials"},
	})
	r := &relayEnv{agentEnv: e, gateway: gw, listener: listener, network: "keyless-interop-relay-" + testkit.Nonce(t)}

	image := buildRelayImage(t, keyless)
	if _, err := docker(nil, "network", "create", "--driver", "bridge", "--subnet", relaySubnet, "--ip-range", relayIPRange,
		"--gateway", relayGateway, "--label", relayLabel, "--label", keylessLabel, r.network); err != nil {
		t.Fatalf("creating the relay's network (is another Docker network using %s? docker network ls): %v", relaySubnet, err)
	}
	t.Cleanup(func() {
		if _, err := docker(nil, "network", "rm", r.network); err != nil {
			t.Errorf("removing the relay's network: %v", err)
		}
	})
	r.container = "keyless-interop-relay-" + testkit.Nonce(t)
	_, port, _ := net.SplitHostPort(listener)
	// The documented command, with this test's names, Linux's
	// --add-host, and debug lines (one per request, never a header).
	if _, err := docker(nil, "run", "-d", "--name", r.container, "--label", relayLabel, "--label", keylessLabel,
		"--network", r.network, "--ip", "169.254.170.2", "--add-host", "host.docker.internal:host-gateway",
		image, "agent", "relay", "--upstream", "http://host.docker.internal:"+port, "--log-level", "debug"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		logs, _ := docker(nil, "logs", r.container)
		for _, tok := range e.tokens {
			if w := tokenInLog(logs, tok); w != "" {
				t.Errorf("the relay's log holds %q, part of a token used", w)
			}
		}
		if !strings.Contains(logs, "relayed") {
			t.Errorf("the relay logged no request, so the search for tokens proves nothing:\n%s", logs)
		}
		if t.Failed() {
			t.Logf("relay log:\n%s", logs)
		}
		if _, err := docker(nil, "rm", "-f", r.container); err != nil {
			t.Errorf("removing the relay: %v", err)
		}
	})
	// The host reaches the relay through the network's bridge; without
	// a token the agent's 401 comes back through it.
	client := &http.Client{Timeout: 2 * time.Second}
	testkit.WaitFor(t, 30*time.Second, "the relay to answer at "+fullURI, func() (bool, string) {
		resp, err := client.Get(fullURI)
		if err != nil {
			if st, _ := docker(nil, "inspect", "-f", "{{.State.Status}}", r.container); strings.TrimSpace(st) != "running" {
				logs, _ := docker(nil, "logs", r.container)
				t.Fatalf("the relay is %s:\n%s", strings.TrimSpace(st), logs)
			}
			return false, err.Error()
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("GET %s without a token through the relay: %d %s %s", fullURI, resp.StatusCode, resp.Header.Get("Content-Type"), body)
		}
		return true, ""
	})
	return r
}

// dockerGateway is docker0's address: what host-gateway resolves to.
func dockerGateway(t *testing.T) netip.Addr {
	t.Helper()
	out, err := docker(nil, "network", "inspect", "bridge", "--format", "{{range .IPAM.Config}}{{.Gateway}} {{end}}")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range strings.Fields(out) {
		if a, err := netip.ParseAddr(f); err == nil && a.Is4() {
			return a
		}
	}
	t.Fatalf("Docker's default bridge has no IPv4 gateway: %q", out)
	return netip.Addr{}
}

// freePort is a port free on addr now.
func freePort(t *testing.T, addr netip.Addr) uint16 {
	t.Helper()
	ln, err := net.Listen("tcp", netip.AddrPortFrom(addr, 0).String())
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return uint16(ln.Addr().(*net.TCPAddr).Port)
}

// freeRelayAddress makes sure this host does not hold 169.254.170.2: the
// tests of the Linux setup put it on lo and remove it, but one that was
// killed leaves it there. Anywhere else it is not this test's to remove.
func freeRelayAddress(t *testing.T) {
	t.Helper()
	if !hasAddr(t, ecsAddr) {
		return
	}
	ifaces, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	for _, ifi := range ifaces {
		addrs, _ := ifi.Addrs()
		for _, a := range addrs {
			n, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			if ip, ok := netip.AddrFromSlice(n.IP); !ok || ip.Unmap() != ecsAddr {
				continue
			}
			if ifi.Name != "lo" {
				t.Fatalf("this host holds %s on %s, so it would answer ARP for the relay's address on the relay's network; "+
					"remove it (ip addr del %s/32 dev %s) or stop what added it (keyless agent --setup-network, a test)", ecsAddr, ifi.Name, ecsAddr, ifi.Name)
			}
			ip := mustLookPath(t, "ip", "iproute2")
			if out, err := exec.Command(ip, "addr", "del", ecsAddr.String()+"/32", "dev", "lo").CombinedOutput(); err != nil {
				unavailable(t, "removing %s from lo, left by an earlier test, needs CAP_NET_ADMIN: %v: %s", ecsAddr, err, strings.TrimSpace(string(out)))
			}
			t.Logf("removed %s from lo, left by an earlier test", ecsAddr)
		}
	}
}

// removeLeftovers removes relays and networks of an earlier run of this
// test that was killed: their subnet would clash with this run's.
func removeLeftovers(t *testing.T) {
	t.Helper()
	out, err := docker(nil, "ps", "-aq", "--filter", "label="+relayLabel)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range strings.Fields(out) {
		docker(nil, "rm", "-f", id)
	}
	out, err = docker(nil, "network", "ls", "-q", "--filter", "label="+relayLabel)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range strings.Fields(out) {
		if _, err := docker(nil, "network", "rm", id); err != nil {
			t.Fatalf("removing an earlier run's relay network: %v", err)
		}
	}
}

// buildRelayImage builds deploy/docker/relay/Dockerfile with docker build,
// its context a directory holding only the static keyless binary, as the
// Dockerfile's comments say.
func buildRelayImage(t *testing.T, keyless string) string {
	t.Helper()
	dockerfile, err := filepath.Abs(filepath.Join("..", "..", "deploy", "docker", "relay", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	// The commands in its comments are the ones this test runs, but
	// for the names.
	text, err := os.ReadFile(dockerfile)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"docker network create --subnet " + relaySubnet + " --ip-range " + relayIPRange + " --gateway " + relayGateway + " keyless\n",
		"--network keyless --ip 169.254.170.2 \\\n#     keyless-relay agent relay --upstream http://host.docker.internal:9912\n",
		"--add-host host.docker.internal:host-gateway",
		"network_mode = \"keyless\"",
		"keyless agent print-runner-config --config agent.yaml --executor docker-desktop\n",
	} {
		if !strings.Contains(string(text), want) {
			t.Errorf("%s does not say %q", dockerfile, want)
		}
	}
	// Its comments point at the printed keys instead of a recipe of
	// their own, which would lack cap_drop, the unsets and the
	// id_tokens check.
	if strings.Contains(string(text), "pre_build_script =") || strings.Contains(string(text), "[runners.docker]") {
		t.Errorf("%s holds a config.toml recipe of its own; point at print-runner-config instead", dockerfile)
	}
	ctx := t.TempDir()
	bin, err := os.ReadFile(keyless)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ctx, "keyless"), bin, 0o755); err != nil {
		t.Fatal(err)
	}
	image := "keyless-interop-relay:" + testkit.Nonce(t)
	if _, err := docker(nil, "build", "-q", "-t", image, "-f", dockerfile, ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { docker(nil, "rmi", "-f", image) })
	// As shipped: nobody, the binary as entry point, the relay by default.
	out, err := docker(nil, "image", "inspect", "--format", "{{.Config.User}}|{{json .Config.Entrypoint}}|{{json .Config.Cmd}}", image)
	if err != nil {
		t.Fatal(err)
	}
	if want := `65534:65534|["/keyless"]|["agent","relay","--upstream","http://host.docker.internal:9912"]`; strings.TrimSpace(out) != want {
		t.Errorf("the relay image's config: %s, want %s", strings.TrimSpace(out), want)
	}
	return image
}

// TestJobsThroughTheRelay: on the relay's network, jobs started as the
// Docker executor starts them (network_mode) get their own sessions with
// Debian's AWS CLI v2 and boto3 and the static Go SDK client, with
// nothing inside but the two variables; the agent's decision names its
// relay listener and the relay's container as the caller. Without a
// valid token, or with the token of a job of another runner, they get
// nothing, and the agent's 401 or 403 JSON comes back through the relay.
func TestJobsThroughTheRelay(t *testing.T) {
	r := startRelay(t)
	runner := newJobRunner(t, runnerConfig{PreBuildScript: preBuildScript, NetworkMode: r.network})
	stsURL := r.emu.STSURL

	t.Run("sessions", func(t *testing.T) {
		for _, jobID := range []int64{8001, 8002} {
			tok := r.addJob(jobID)
			want := fmt.Sprintf("arn:aws:sts::%s:assumed-role/%s/gitlab-%d-%d", emulatortest.Account, emulatortest.Role, projectID, jobID)
			for _, c := range clients(stsURL) {
				if c.name == "go-sdk-eks" {
					continue // 169.254.170.23 is not the relay's
				}
				res := runner.run(t, job{ID: jobID, ProjectID: projectID, ProjectPath: projectPath, Image: c.image, Token: tok, Script: []string{c.line}})
				if got := strings.TrimSpace(res.Stdout); res.ExitCode != 0 || got != want {
					t.Errorf("job %d, %s: got %q, want %s\n%s", jobID, c.name, got, want, res)
				}
			}
			if !r.decided("listener=relay:"+r.listener, "remote=169.254.170.2:", "job="+strconv.FormatInt(jobID, 10),
				fmt.Sprintf("session=gitlab-%d-%d", projectID, jobID), "outcome=granted") {
				t.Errorf("the agent logged no grant to job %d through the relay (listener=relay:%s, remote=169.254.170.2)", jobID, r.listener)
			}
		}
	})

	// The judged path: the runner keys keyless prints for Docker
	// Desktop (from this agent's agent.yaml, so its relay listener's
	// port) and the CI template's lines, as the Docker executor runs
	// them. The one change: the printed network_mode is "keyless", this
	// test's network has a name of its own.
	t.Run("printed-config-and-template", func(t *testing.T) {
		out, err := exec.Command(testkit.Keyless(t), "agent", "print-runner-config", "--config", filepath.Join(r.dir, "agent.yaml"),
			"--executor", "docker-desktop").Output()
		if err != nil {
			t.Fatalf("print-runner-config --executor docker-desktop: %v", err)
		}
		_, port, _ := net.SplitHostPort(r.listener)
		if !strings.Contains(string(out), "--upstream http://host.docker.internal:"+port) {
			t.Errorf("the printed relay command does not forward to the agent's relay listener (port %s):\n%s", port, out)
		}
		rc := parseRunnerConfig(t, string(out))
		if rc.NetworkMode != "keyless" || !slices.Equal(rc.CapDrop, []string{"NET_RAW"}) || rc.Volumes != nil || rc.Environment != nil {
			t.Fatalf("the printed Docker Desktop keys: %+v", rc)
		}
		rc.NetworkMode = r.network
		ci := loadCI(t, "examples/terraform.gitlab-ci.yml")
		identity := ci.job(t, "aws-identity")
		const id = 8003
		tok := r.addJob(id)
		res := newJobRunner(t, rc).run(t, job{ID: id, ProjectID: projectID, ProjectPath: projectPath, Image: debianImage, Token: tok,
			Variables: identity.Variables, Script: append(identity.BeforeScript, withEndpoint(identity.Script, stsURL)...)})
		if res.ExitCode != 0 || !strings.Contains(res.Stdout, `"Arn": "`+wantARN(fmt.Sprintf("gitlab-%d-%d", projectID, id))+`"`) {
			t.Errorf("the aws-identity job through the relay: %s", res)
		}
		if !r.decided("listener=relay:"+r.listener, "remote=169.254.170.2:", "job="+strconv.Itoa(id), "outcome=granted") {
			t.Errorf("the agent logged no grant to job %d through the relay", id)
		}
	})

	t.Run("refusals", func(t *testing.T) {
		otherRunner := r.gitlab.AddJob(gitlabfake.Job{ID: 8101, Name: "deploy", Ref: "main", ProjectID: projectID, ProjectPath: projectPath, RunnerID: 2})
		r.tokens = append(r.tokens, otherRunner)
		raw := `python3 -c 'import os, urllib.request, urllib.error
h = {"Authorization": os.environ["AWS_CONTAINER_AUTHORIZATION_TOKEN"]} if os.environ.get("AWS_CONTAINER_AUTHORIZATION_TOKEN") else {}
try:
    r = urllib.request.urlopen(urllib.request.Request(os.environ["AWS_CONTAINER_CREDENTIALS_FULL_URI"], headers=h), timeout=10)
    print("raw", r.status, r.headers.get("Content-Type"), r.read().decode())
except urllib.error.HTTPError as err:
    print("raw", err.code, err.headers.get("Content-Type"), err.read().decode())'`
		for _, tc := range []struct {
			name, token string
			status      int
		}{
			{"garbage token", r.useToken("garbage" + testkit.Nonce(t) + testkit.Nonce(t) + testkit.Nonce(t)), 401},
			{"no token", "", 401},
			{"a job of another runner", otherRunner, 403},
		} {
			t.Run(tc.name, func(t *testing.T) {
				for _, image := range []imageKind{debianImage, staticImage} {
					var script []string
					for _, c := range clients(stsURL) {
						if c.image == image && c.name != "go-sdk-eks" {
							script = append(script, c.line+" || echo "+c.name+"-refused")
						}
					}
					if image == debianImage {
						script = append(script, raw)
					}
					res := runner.run(t, job{ID: 8101, ProjectID: projectID, ProjectPath: projectPath, Image: image, Token: tc.token, Script: script})
					if res.ExitCode != 0 || strings.Contains(res.Stdout, "arn:aws:sts") || strings.Contains(res.Stdout, "AccessKeyId") {
						t.Errorf("%s image: %s", image, res)
					}
					for _, c := range clients(stsURL) {
						if c.image == image && c.name != "go-sdk-eks" && !strings.Contains(res.Stdout, c.name+"-refused") {
							t.Errorf("%s did not fail: %s", c.name, res)
						}
					}
					if image == debianImage && !regexp.MustCompile(fmt.Sprintf(`(?m)^raw %d application/json \{"code":`, tc.status)).MatchString(res.Stdout) {
						t.Errorf("the raw request did not get the agent's %d JSON refusal through the relay: %s", tc.status, res)
					}
				}
			})
		}
		if !r.decided("listener=relay:"+r.listener, "remote=169.254.170.2:", "outcome=denied", "reason=runner-mismatch") {
			t.Error("the agent logged no denial of the other runner's job")
		}
	})

	if hasAddr(t, ecsAddr) {
		t.Errorf("this host holds %s during the relay's test", ecsAddr)
	}
}
