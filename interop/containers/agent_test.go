//go:build linux

package containers_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keyless-dev/keyless/internal/emulator/emulatortest"
	"github.com/keyless-dev/keyless/internal/gitlab/gitlabfake"
	"github.com/keyless-dev/keyless/internal/pki"
	"github.com/keyless-dev/keyless/internal/pki/pkitest"
	"github.com/keyless-dev/keyless/internal/testkit"
)

// The runner's configuration for keyless agent (docs/agent.md): every job
// gets the agent's address and its own CI_JOB_TOKEN as the two variables.
const (
	fullURI        = "http://169.254.170.2/v1/credentials"
	fullURIEKS     = "http://169.254.170.23/v1/credentials"
	preBuildScript = `export AWS_CONTAINER_CREDENTIALS_FULL_URI=` + fullURI + ` AWS_CONTAINER_AUTHORIZATION_TOKEN="$CI_JOB_TOKEN"`
	projectID      = 42
	projectPath    = "group/app"
)

// agentEnv is keyless agent on this host with the emulator and a fake
// GitLab, as a runner host would run it.
type agentEnv struct {
	emu       *linkLocalEmulator
	gitlab    *gitlabfake.Server
	dir       string // the agent's files: certificate, key, socket
	key, sock string
	config    string // agent.yaml
	log       *testkit.Buffer
	tokens    []string
}

// agentOptions change startAgent's setup; the zero value is the Linux
// Docker executor's: the agent on 169.254.170.2 and .23.
type agentOptions struct {
	// network prepares the host's addresses; nil means claimHostNet.
	network func(t *testing.T)
	// sts is the address of this host where the emulator's STS listens
	// for containers; the zero value means 169.254.170.2.
	sts netip.Addr
	// listen are agent.yaml's listen lines besides the socket; empty
	// means the two link-local listeners.
	listen string
	// gitlab makes more agent.yaml lines under gitlab, given the fake
	// GitLab's URL.
	gitlab func(url string) string
	// identity is the app-jobs rule's identity; empty means
	// gitlab-job-token.
	identity string
	// rules makes more agent.yaml rules after app-jobs.
	rules func(e *agentEnv) string
	// ready are the container-credentials URLs that must refuse a
	// request without a token before the agent counts as ready; nil
	// means fullURI and fullURIEKS.
	ready []string
}

func startAgent(t *testing.T) *agentEnv {
	t.Helper()
	return startAgentWith(t, agentOptions{})
}

func startAgentWith(t *testing.T, o agentOptions) *agentEnv {
	t.Helper()
	if o.network == nil {
		o.network = claimHostNet
	}
	if !o.sts.IsValid() {
		o.sts = ecsAddr
	}
	if o.listen == "" {
		o.listen = `  containerCredentials: ["169.254.170.2:80", "169.254.170.23:80"]` + "\n"
	}
	if o.ready == nil {
		o.ready = []string{fullURI, fullURIEKS}
	}
	if o.gitlab == nil {
		o.gitlab = func(string) string { return "" }
	}
	if o.identity == "" {
		o.identity = "gitlab-job-token"
	}
	if o.rules == nil {
		o.rules = func(*agentEnv) string { return "" }
	}
	buildImages(t) // a missing peer skips the test before anything starts
	keyless := testkit.Keyless(t)
	o.network(t)
	root := pkitest.NewRoot(t, "containers-root")
	inter := root.Intermediate(t, "containers-int")
	e := &agentEnv{emu: startEmulatorOn(t, o.sts, root.Cert), dir: t.TempDir(), log: &testkit.Buffer{}}

	key := pkitest.Key(t, pkitest.P256)
	leaf := inter.Leaf(t, pkitest.LeafOptions{Key: key, CommonName: emulatortest.CommonName})
	keyPEM, err := pki.EncodePrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	cert := pkitest.WriteFile(t, e.dir, "runner.crt", pki.EncodeCertificates(leaf, inter.Cert))
	e.key = filepath.Join(e.dir, "runner.key")
	if err := os.WriteFile(e.key, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	e.sock = filepath.Join(e.dir, "agent.sock")

	e.gitlab = gitlabfake.New(gitlabfake.Options{})
	gl := httptest.NewServer(e.gitlab)
	t.Cleanup(gl.Close)
	e.gitlab.SetIssuer(gl.URL)

	config := fmt.Sprintf(`identity:
  certificate: %s
  key: %s
aws:
  trustAnchorArn: %s
  endpoint: %s
gitlab:
  url: %s
  jobTokenCache: 1s
%slisten:
%s  socket: { path: %s, mode: "0600" }
rules:
  - name: app-jobs
    identity: %s
    match: { project_id: "%d" }
    roleArn: %s
    profileArn: %s
    sessionName: gitlab-{project_id}-{job_id}
%s`, cert, e.key, e.emu.TrustAnchorARN, e.emu.URL, gl.URL, o.gitlab(gl.URL), o.listen, e.sock, o.identity, projectID, e.emu.RoleARN, e.emu.ProfileARN, o.rules(e))
	e.config = filepath.Join(e.dir, "agent.yaml")
	configFile := e.config
	if err := os.WriteFile(configFile, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	// Debug: the log the token check searches holds all the agent says.
	cmd := exec.CommandContext(ctx, keyless, "agent", "--config", configFile, "--log-level", "debug")
	cmd.Stdout, cmd.Stderr = e.log, e.log
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cancel()
		<-exited
		log := e.log.String()
		if len(e.tokens) > 0 && !strings.Contains(log, "agent decision") {
			t.Errorf("the agent logged no decision, so the search for tokens proves nothing")
		}
		for _, tok := range e.tokens {
			if w := tokenInLog(log, tok); w != "" {
				t.Errorf("the agent's log holds %q, part of a token used", w)
			}
		}
		if t.Failed() {
			t.Logf("agent log:\n%s", e.log)
		}
	})
	client := &http.Client{Timeout: 2 * time.Second}
	for _, u := range o.ready {
		testkit.WaitFor(t, 30*time.Second, "the agent to answer at "+u, func() (bool, string) {
			select {
			case <-exited:
				t.Fatalf("keyless agent exited: %v\n%s", cmd.ProcessState, e.log)
			default:
			}
			resp, err := client.Get(u)
			if err != nil {
				return false, err.Error()
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusServiceUnavailable {
				return false, "503 " + string(body) // listening, not yet serving
			}
			// No token: a JSON refusal, never credentials.
			if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("Content-Type") != "application/json" || strings.Contains(string(body), "AccessKeyId") {
				t.Fatalf("GET %s without a token: %d %s %s", u, resp.StatusCode, resp.Header.Get("Content-Type"), body)
			}
			return true, ""
		})
	}
	if fi, err := os.Stat(e.sock); err != nil || fi.Mode().Type() != os.ModeSocket {
		t.Fatalf("the agent's socket %s: %v %v", e.sock, fi, err)
	}
	return e
}

// tokenInLog returns a part of tok (the whole, or any 12 characters of
// it after GitLab's prefix) that log holds, or "".
func tokenInLog(log, tok string) string {
	if strings.Contains(log, tok) {
		return tok
	}
	rest := strings.TrimPrefix(tok, gitlabfake.TokenPrefix)
	const window = 12
	for i := 0; i+window <= len(rest); i++ {
		if w := rest[i : i+window]; strings.Contains(log, w) {
			return w
		}
	}
	return ""
}

// useToken records a token that is not a job's (a wrong one) for the
// search of the agent's log.
func (e *agentEnv) useToken(tok string) string {
	e.tokens = append(e.tokens, tok)
	return tok
}

// decided reports whether the agent logged a decision line holding all
// of parts (key=value pairs of its audit line).
func (e *agentEnv) decided(parts ...string) bool {
	for _, line := range strings.Split(e.log.String(), "\n") {
		if !strings.Contains(line, "agent decision") {
			continue
		}
		all := true
		for _, p := range parts {
			if !strings.Contains(line, " "+p) {
				all = false
				break
			}
		}
		if all {
			return true
		}
	}
	return false
}

// addJob registers a running job of the project with the fake GitLab and
// returns its CI_JOB_TOKEN.
func (e *agentEnv) addJob(id int64) string {
	tok := e.gitlab.AddJob(gitlabfake.Job{ID: id, Name: "deploy", Ref: "main", ProjectID: projectID, ProjectPath: projectPath})
	e.tokens = append(e.tokens, tok)
	return tok
}

// clients are the three job programs, each printing the caller's ARN.
func clients(stsURL string) []struct {
	name  string
	image imageKind
	line  string
} {
	return []struct {
		name  string
		image imageKind
		line  string
	}{
		{"aws-cli", debianImage, "aws sts get-caller-identity --endpoint-url " + stsURL + " --region us-east-1 --query Arn --output text"},
		{"boto3", debianImage, `python3 -c 'import boto3; print(boto3.client("sts", endpoint_url="` + stsURL + `", region_name="us-east-1").get_caller_identity()["Arn"])'`},
		{"go-sdk", staticImage, "sdkclient -endpoint " + stsURL},
		{"go-sdk-eks", staticImage, "AWS_CONTAINER_CREDENTIALS_FULL_URI=" + fullURIEKS + " sdkclient -endpoint " + stsURL},
	}
}

// TestJobContainersGetTheirOwnSessions: jobs in containers started as the
// Docker executor starts them, on the default bridge and on a per-build
// network, get credentials for the rule's role from the agent on the host
// with Debian's AWS CLI v2, boto3 and the AWS SDK for Go v2 (through
// 169.254.170.2 and .23), in a session named after the job; another job
// of the same project gets a session of its own.
func TestJobContainersGetTheirOwnSessions(t *testing.T) {
	e := startAgent(t)
	for _, perBuild := range []bool{false, true} {
		network := map[bool]string{false: "default-bridge", true: "network-per-build"}[perBuild]
		t.Run(network, func(t *testing.T) {
			runner := newJobRunner(t, runnerConfig{PreBuildScript: preBuildScript, NetworkPerBuild: perBuild})
			first := int64(1001)
			if perBuild {
				first = 1011
			}
			for i, jobID := range []int64{first, first + 1} {
				tok := e.addJob(jobID)
				want := fmt.Sprintf("arn:aws:sts::%s:assumed-role/%s/gitlab-%d-%d", emulatortest.Account, emulatortest.Role, projectID, jobID)
				for _, c := range clients(e.emu.STSURL) {
					if i > 0 && c.name == "go-sdk-eks" {
						continue
					}
					res := runner.run(t, job{ID: jobID, ProjectID: projectID, ProjectPath: projectPath, Image: c.image, Token: tok, Script: []string{c.line}})
					if got := strings.TrimSpace(res.Stdout); res.ExitCode != 0 || got != want {
						t.Errorf("job %d, %s: got %q, want %s\n%s", jobID, c.name, got, want, res)
					}
				}
				// The agent says which of its listeners answered: the
				// .23 client did not get there some other way.
				session := fmt.Sprintf("session=gitlab-%d-%d", projectID, jobID)
				listeners := []string{"listener=container:169.254.170.2:80"}
				if i == 0 {
					listeners = append(listeners, "listener=container:169.254.170.23:80")
				}
				for _, l := range listeners {
					if !e.decided(l, "job="+strconv.FormatInt(jobID, 10), session, "outcome=granted") {
						t.Errorf("the agent logged no grant of %s on %s", session, l)
					}
				}
			}
		})
	}
}

// TestJobContainersHoldNoSecret: a job container, on either network, has
// the runner's key, its directory and the agent's socket (all present on
// the host) nowhere in its file system, mounts or environment; it has
// only the mounts the Docker executor makes (checkMounts), runs as a user
// other than root with no effective capabilities, and its bounding set is
// at most Docker's default (not privileged, no cap_add).
func TestJobContainersHoldNoSecret(t *testing.T) {
	e := startAgent(t)
	tok := e.addJob(2001)
	keyPEM, err := os.ReadFile(e.key)
	if err != nil {
		t.Fatal(err)
	}
	for _, perBuild := range []bool{false, true} {
		runner := newJobRunner(t, runnerConfig{PreBuildScript: preBuildScript, NetworkPerBuild: perBuild})
		for _, image := range []imageKind{debianImage, staticImage} {
			res := runner.run(t, job{ID: 2001, ProjectID: projectID, ProjectPath: projectPath, Image: image, Token: tok, Script: []string{
				fmt.Sprintf("for p in %s %s %s; do if [ -e \"$p\" ] || [ -L \"$p\" ]; then echo \"present: $p\"; fi; done", e.key, e.sock, e.dir),
				"echo '--- mountinfo'", "cat /proc/self/mountinfo",
				"echo '--- status'", "grep -E '^(Uid|Gid|CapEff|CapBnd):' /proc/self/status",
				"echo '--- env'", "env",
			}})
			if res.ExitCode != 0 {
				t.Fatalf("%s", res)
			}
			if strings.Contains(res.Stdout, "present:") {
				t.Errorf("%s image: the agent's files are in the container:\n%s", image, res.Stdout)
			}
			_, mounts, _ := strings.Cut(res.Stdout, "--- mountinfo\n")
			mounts, status, _ := strings.Cut(mounts, "--- status\n")
			status, env, _ := strings.Cut(status, "--- env\n")
			checkMounts(t, image, mounts, e.dir)
			if strings.Contains(env, string(keyPEM)) || strings.Contains(env, "PRIVATE KEY") {
				t.Errorf("%s image: key material in the job's environment", image)
			}
			if !regexp.MustCompile(`(?m)^Uid:\s+65534\s`).MatchString(status) {
				t.Errorf("%s image: the job runs as:\n%s", image, status)
			}
			m := regexp.MustCompile(`(?m)^CapBnd:\s+([0-9a-f]+)$`).FindStringSubmatch(status)
			if m == nil {
				t.Fatalf("no CapBnd in:\n%s", status)
			}
			bnd, err := strconv.ParseUint(m[1], 16, 64)
			if err != nil {
				t.Fatal(err)
			}
			// Docker's default capabilities (CHOWN, DAC_OVERRIDE, FOWNER,
			// FSETID, KILL, SETGID, SETUID, SETPCAP, NET_BIND_SERVICE,
			// NET_RAW, SYS_CHROOT, MKNOD, AUDIT_WRITE, SETFCAP) at most:
			// not privileged, no cap_add.
			const dockerDefault, capNetAdmin, capSysAdmin = 0xa80425fb, 12, 21
			if bnd&^dockerDefault != 0 || bnd&(1<<capNetAdmin|1<<capSysAdmin) != 0 {
				t.Errorf("%s image: the job has capabilities beyond Docker's default (CapBnd %s)", image, m[1])
			}
			if !regexp.MustCompile(`(?m)^CapEff:\s+0+$`).MatchString(status) {
				t.Errorf("%s image: the job has effective capabilities:\n%s", image, status)
			}
		}
	}
}

// TestJobContainersWithoutAValidTokenGetNothing: a job whose token is
// garbage, absent, or belongs to a job that has finished gets no
// credentials with any client, and a raw request gets a JSON refusal.
func TestJobContainersWithoutAValidTokenGetNothing(t *testing.T) {
	e := startAgent(t)
	runner := newJobRunner(t, runnerConfig{PreBuildScript: preBuildScript, NetworkPerBuild: true})

	// A job that got credentials while it ran, then finished: once the
	// agent's trust in the token lapses (jobTokenCache, 1s here), GitLab
	// refuses the token and so does the agent, though it still holds
	// the job's session.
	finished := e.addJob(3001)
	want := fmt.Sprintf("arn:aws:sts::%s:assumed-role/%s/gitlab-%d-3001", emulatortest.Account, emulatortest.Role, projectID)
	res := runner.run(t, job{ID: 3001, ProjectID: projectID, ProjectPath: projectPath, Image: staticImage, Token: finished,
		Script: []string{"sdkclient -endpoint " + e.emu.STSURL}})
	if got := strings.TrimSpace(res.Stdout); res.ExitCode != 0 || got != want {
		t.Fatalf("job 3001 while running: got %q, want %s\n%s", got, want, res)
	}
	if !e.gitlab.FinishJob(3001) {
		t.Fatal("the fake GitLab does not know job 3001")
	}
	asked := e.gitlab.Calls(gitlabfake.EndpointJob)
	req, err := http.NewRequest(http.MethodGet, fullURI, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", finished)
	testkit.WaitFor(t, 10*time.Second, "the agent to refuse the finished job's token", func() (bool, string) {
		resp, body := testkit.Do(t, http.DefaultClient, req)
		return resp.StatusCode == http.StatusUnauthorized, fmt.Sprintf("%d %s", resp.StatusCode, body)
	})
	if e.gitlab.Calls(gitlabfake.EndpointJob) == asked {
		t.Errorf("the agent refused the finished job's token without asking GitLab")
	}

	raw := `python3 -c 'import os, urllib.request, urllib.error
h = {"Authorization": os.environ["AWS_CONTAINER_AUTHORIZATION_TOKEN"]} if os.environ.get("AWS_CONTAINER_AUTHORIZATION_TOKEN") else {}
try:
    r = urllib.request.urlopen(urllib.request.Request(os.environ["AWS_CONTAINER_CREDENTIALS_FULL_URI"], headers=h), timeout=10)
    print("raw", r.status, r.headers.get("Content-Type"), r.read().decode())
except urllib.error.HTTPError as err:
    print("raw", err.code, err.headers.get("Content-Type"), err.read().decode())'`
	for _, tc := range []struct{ name, token string }{
		{"garbage token", e.useToken("garbage" + testkit.Nonce(t) + testkit.Nonce(t) + testkit.Nonce(t))},
		{"no token", ""},
		{"finished job", finished},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, image := range []imageKind{debianImage, staticImage} {
				var script []string
				for _, c := range clients(e.emu.STSURL) {
					if c.image == image {
						script = append(script, c.line+" || echo "+c.name+"-refused")
					}
				}
				if image == debianImage {
					script = append(script, raw)
				}
				res := runner.run(t, job{ID: 3002, ProjectID: projectID, ProjectPath: projectPath, Image: image, Token: tc.token, Script: script})
				if res.ExitCode != 0 || strings.Contains(res.Stdout, "arn:aws:sts") || strings.Contains(res.Stdout, "AccessKeyId") {
					t.Errorf("%s image: %s", image, res)
				}
				for _, c := range clients(e.emu.STSURL) {
					if c.image == image && !strings.Contains(res.Stdout, c.name+"-refused") {
						t.Errorf("%s did not fail: %s", c.name, res)
					}
				}
				if image == debianImage && !regexp.MustCompile(`(?m)^raw 40[13] application/json \{.*"code"`).MatchString(res.Stdout) {
					t.Errorf("the raw request did not get a 401 or 403 JSON refusal: %s", res)
				}
			}
		})
	}
}

// checkMounts checks a job container's /proc/self/mountinfo: only what
// the Docker executor mounts is there. That is the image's root, the
// kernel's file systems under /proc, /dev and /sys, Docker's
// /etc/resolv.conf, /etc/hostname and /etc/hosts, the config's volume
// /cache (a Docker volume, not a host path), and, in the Debian image
// only, the host's /usr read-only; nothing of the agent's directory.
func checkMounts(t *testing.T, image imageKind, mountinfo, agentDir string) {
	t.Helper()
	kernel := map[string]bool{"proc": true, "sysfs": true, "tmpfs": true, "devpts": true, "mqueue": true, "cgroup": true, "cgroup2": true}
	seen := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(mountinfo), "\n") {
		pre, post, ok := strings.Cut(line, " - ")
		f, g := strings.Fields(pre), strings.Fields(post)
		if !ok || len(f) < 6 || len(g) < 1 {
			t.Errorf("%s image: not a mountinfo line: %q", image, line)
			continue
		}
		// Fields: root of the mount in its file system, mount point,
		// options; after " - ", the file system type.
		root, point, opts, fstype := f[3], f[4], f[5], g[0]
		seen[point] = true
		if strings.HasPrefix(root, agentDir) || strings.Contains(root, "keyless") {
			t.Errorf("%s image: a mount of the agent's files: %s", image, line)
		}
		switch {
		case point == "/" && fstype == "overlay":
		case kernel[fstype] && (point == "/proc" || point == "/dev" || point == "/sys" ||
			strings.HasPrefix(point, "/proc/") || strings.HasPrefix(point, "/dev/") || strings.HasPrefix(point, "/sys/")):
		case point == "/etc/resolv.conf" || point == "/etc/hostname" || point == "/etc/hosts":
			if !strings.Contains(root, "/containers/") || !strings.HasSuffix(root, point[len("/etc"):]) {
				t.Errorf("%s image: %s is not Docker's own file: %s", image, point, line)
			}
		case point == "/cache":
			if !regexp.MustCompile(`/volumes/[0-9a-f]{64}/_data$`).MatchString(root) {
				t.Errorf("%s image: /cache is not an anonymous Docker volume: %s", image, line)
			}
		case point == "/usr" && image == debianImage:
			if (root != "/usr" && root != "/") || !regexp.MustCompile(`(^|,)ro(,|$)`).MatchString(opts) {
				t.Errorf("%s image: /usr is not the host's /usr read-only: %s", image, line)
			}
		default:
			t.Errorf("%s image: a mount the Docker executor does not make: %s", image, line)
		}
	}
	for _, p := range []string{"/", "/cache", "/etc/hosts"} {
		if !seen[p] {
			t.Errorf("%s image: no mount on %s in:\n%s", image, p, mountinfo)
		}
	}
}
