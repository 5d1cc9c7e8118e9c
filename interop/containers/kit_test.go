//go:build linux

package containers_test

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/keyless-dev/keyless/internal/agent"
	"github.com/keyless-dev/keyless/internal/emulator/emulatortest"
	"github.com/keyless-dev/keyless/internal/gitlab/gitlabfake"
	"github.com/keyless-dev/keyless/internal/testkit"
)

// The GitLab kit (deploy/gitlab and keyless agent print-runner-config),
// tested as a runner operator uses it: the runner's config.toml keys are
// the command's output, parsed as TOML and given to the job harness
// (harness_test.go, which says which of the Docker executor's behaviours
// it reproduces: environment, pre_build_script before the job's lines in
// the job's shell, volumes, network_mode, extra_hosts, cap_drop, per-build
// networks); the jobs' lines are the CI template's, read from
// deploy/gitlab/*.yml and merged as GitLab merges them (ciJob: extends,
// !reference, global and job variables; id_tokens minted by the fake
// GitLab with the template's aud, as GitLab mints them). GitLab itself is
// the fake one; the one liberty taken with the template's lines is that
// the test adds --endpoint-url (the emulator's STS) to its aws commands,
// because Debian's AWS CLI 2.9 has no endpoint variable.

// kitAgent is keyless agent as startAgent starts it, with the settings
// the kit uses as well: id_tokens verified (aud keyless), a loopback
// listener for the shell executor, and a unix-peer rule for this test's
// user (standing in for the runner's user).
type kitAgent struct {
	*agentEnv
	config   string // agent.yaml
	loopback string // 127.0.0.1:PORT
	keyless  string
}

const kitAudience = "keyless"

func startKitAgent(t *testing.T) *kitAgent {
	t.Helper()
	loopback := testkit.Addr(t)
	e := startAgentWith(t, agentOptions{
		listen: fmt.Sprintf("  containerCredentials: [\"169.254.170.2:80\", \"169.254.170.23:80\", %q]\n", loopback),
		gitlab: func(url string) string {
			return fmt.Sprintf("  idTokens: { issuer: %s, audience: %s }\n", url, kitAudience)
		},
		identity: "[gitlab-job-token, gitlab-id-token]",
		rules: func(e *agentEnv) string {
			return fmt.Sprintf("  - name: runner-user\n    identity: unix-peer\n    match: { uid: \"%d\" }\n    roleArn: %s\n    profileArn: %s\n",
				os.Getuid(), e.emu.RoleARN, e.emu.ProfileARN)
		},
		ready: []string{fullURI, "http://" + loopback + "/v1/credentials"},
	})
	return &kitAgent{agentEnv: e, config: e.config, loopback: loopback, keyless: testkit.Keyless(t)}
}

// printRunnerConfig runs keyless agent print-runner-config and returns
// its output.
func (k *kitAgent) print(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(k.keyless, append([]string{"agent", "print-runner-config", "--config", k.config}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("keyless agent print-runner-config %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}

// tomlRunners is the part of config.toml the printed snippet may set;
// anything else in it is an error (a key the harness would not honour).
type tomlRunners struct {
	Runners []struct {
		Environment    []string `toml:"environment"`
		PreBuildScript string   `toml:"pre_build_script"`
		Docker         struct {
			Volumes     []string `toml:"volumes"`
			NetworkMode string   `toml:"network_mode"`
			ExtraHosts  []string `toml:"extra_hosts"`
			CapDrop     []string `toml:"cap_drop"`
		} `toml:"docker"`
		FeatureFlags struct {
			NetworkPerBuild bool `toml:"FF_NETWORK_PER_BUILD"`
		} `toml:"feature_flags"`
	} `toml:"runners"`
}

// parseRunnerConfig parses a printed snippet as GitLab Runner parses
// config.toml, and maps its one [[runners]] onto the harness's config.
func parseRunnerConfig(t *testing.T, snippet string) runnerConfig {
	t.Helper()
	var c tomlRunners
	md, err := toml.Decode(snippet, &c)
	if err != nil {
		t.Fatalf("the printed config.toml does not parse: %v\n%s", err, snippet)
	}
	if u := md.Undecoded(); len(u) > 0 {
		t.Fatalf("the printed config.toml sets keys the harness does not honour: %v\n%s", u, snippet)
	}
	if len(c.Runners) != 1 {
		t.Fatalf("the printed config.toml has %d [[runners]], want 1", len(c.Runners))
	}
	r := c.Runners[0]
	return runnerConfig{Environment: r.Environment, PreBuildScript: r.PreBuildScript,
		Volumes: r.Docker.Volumes, NetworkMode: r.Docker.NetworkMode, ExtraHosts: r.Docker.ExtraHosts, CapDrop: r.Docker.CapDrop,
		NetworkPerBuild: r.FeatureFlags.NetworkPerBuild}
}

// withEndpoint adds the emulator's STS to the aws commands of a job's
// lines (the only change the test makes to the template's lines).
func withEndpoint(lines []string, stsURL string) []string {
	out := make([]string, len(lines))
	for i, l := range lines {
		if strings.HasPrefix(l, "aws ") {
			l += " --endpoint-url " + stsURL
		}
		out[i] = l
	}
	return out
}

func wantARN(session string) string {
	return fmt.Sprintf("arn:aws:sts::%s:assumed-role/%s/%s", emulatortest.Account, emulatortest.Role, session)
}

// TestPrintedDockerConfigAndTemplate: the Docker executor's config.toml
// keys, as printed, parse as TOML and mount nothing; a job started from
// them runs the example's aws-identity job (the CI template's
// before_script, then aws sts get-caller-identity) in the Debian image,
// with no key and no helper inside, and gets a session named after the
// job; a busybox job on a per-build network runs the same before_script
// and the Go SDK. Without the runner's keys, the template fails early and
// says what to fix.
func TestPrintedDockerConfigAndTemplate(t *testing.T) {
	k := startKitAgent(t)
	out := k.print(t, "--executor", "docker")
	rc := parseRunnerConfig(t, out)
	if rc.Volumes != nil || rc.ExtraHosts != nil || rc.NetworkMode != "" {
		t.Errorf("the Docker executor's keys set volumes, extra_hosts or network_mode: %+v", rc)
	}
	if rc.Environment != nil {
		t.Errorf("runner-level environment, which job variables override and service containers get: %v", rc.Environment)
	}
	if !rc.NetworkPerBuild {
		t.Errorf("the Docker executor's keys do not turn on FF_NETWORK_PER_BUILD:\n%s", out)
	}
	ci := loadCI(t, "examples/terraform.gitlab-ci.yml")
	identity := ci.job(t, "aws-identity")
	if len(identity.IDTokens) != 0 {
		t.Fatalf("aws-identity asks for id_tokens: %v", identity.IDTokens)
	}
	lines := append(identity.BeforeScript, withEndpoint(identity.Script, k.emu.STSURL)...)

	t.Run("debian", func(t *testing.T) {
		runner := newJobRunner(t, rc)
		tok := k.addJob(4001)
		// Variables an image or a CI/CD variable may set, which botocore
		// would prefer to the agent's full URI and token: the runner's
		// pre_build_script unsets them.
		vars := append(identity.Variables, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI=/v2/credentials/elsewhere",
			"AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=/nonexistent/token")
		res := runner.run(t, job{ID: 4001, ProjectID: projectID, ProjectPath: projectPath, Image: debianImage, Token: tok,
			Variables: vars, Script: lines})
		if res.ExitCode != 0 || !strings.Contains(res.Stdout, `"Arn": "`+wantARN("gitlab-42-4001")+`"`) {
			t.Errorf("the aws-identity job: %s", res)
		}
		if !strings.Contains(res.Stdout, "keyless: AWS credentials from "+fullURI) {
			t.Errorf("the template's before_script did not run: %s", res)
		}
	})
	// Each of the two unsets on its own: the runner's pre_build_script
	// (a job without the template), and the template's (a runner whose
	// pre_build_script lacks it). The Go SDK reads a token file in
	// preference to the token, so a stale AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE
	// breaks it. (A stale RELATIVE_URI, which botocore prefers, is unset
	// too; the debian job above proves that one: the agent answers only
	// /v1/credentials, so botocore following it would get a 404.)
	t.Run("preferred-variables-unset", func(t *testing.T) {
		vars := append(identity.Variables, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI=/v2/credentials/elsewhere",
			"AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=/nonexistent/token")
		const unset = "unset AWS_CONTAINER_CREDENTIALS_RELATIVE_URI AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE\n"
		if !strings.Contains(rc.PreBuildScript, unset) {
			t.Fatalf("the printed pre_build_script does not unset them:\n%s", rc.PreBuildScript)
		}
		withoutUnset := rc
		withoutUnset.PreBuildScript = strings.Replace(rc.PreBuildScript, unset, "", 1)
		sdk := "sdkclient -endpoint " + k.emu.STSURL
		for i, c := range []struct {
			name   string
			config runnerConfig
			script []string
		}{
			{"printed pre_build_script, no template", rc, []string{sdk}},
			{"template, pre_build_script without the unset", withoutUnset, append(identity.BeforeScript, sdk)},
			{"neither (the control)", withoutUnset, []string{sdk}},
		} {
			id := int64(4010 + i)
			tok := k.addJob(id)
			res := newJobRunner(t, c.config).run(t, job{ID: id, ProjectID: projectID, ProjectPath: projectPath, Image: staticImage, Token: tok,
				Variables: vars, Script: c.script})
			ok := res.ExitCode == 0 && lastLine(res.Stdout) == wantARN(fmt.Sprintf("gitlab-42-%d", id))
			if control := i == 2; ok == control {
				t.Errorf("%s: got credentials %v, want %v: %s", c.name, ok, !control, res)
			}
		}
	})
	// A job variable (or an earlier job's dotenv report) that points the
	// SDKs elsewhere: the pre_build_script pins the agent's URI after
	// the job's variables, so the job still gets its credentials from
	// the agent. The control is the runner's old keys, the URI in
	// environment, which the job's variable overrides.
	t.Run("full-uri-pinned", func(t *testing.T) {
		const pin = "export AWS_CONTAINER_CREDENTIALS_FULL_URI=" + fullURI + "\n"
		if !strings.Contains(rc.PreBuildScript, pin) {
			t.Fatalf("the printed pre_build_script does not pin the full URI:\n%s", rc.PreBuildScript)
		}
		unpinned := rc
		unpinned.PreBuildScript = strings.Replace(rc.PreBuildScript, pin, "", 1)
		unpinned.Environment = []string{"AWS_CONTAINER_CREDENTIALS_FULL_URI=" + fullURI}
		// Nothing listens on the container's own port 1: were the SDK
		// to use it, it would get nothing.
		vars := append(identity.Variables, "AWS_CONTAINER_CREDENTIALS_FULL_URI=http://127.0.0.1:1/v1/credentials")
		for i, c := range []struct {
			name   string
			config runnerConfig
		}{{"printed", rc}, {"URI in environment (the control)", unpinned}} {
			id := int64(4020 + i)
			tok := k.addJob(id)
			res := newJobRunner(t, c.config).run(t, job{ID: id, ProjectID: projectID, ProjectPath: projectPath, Image: staticImage, Token: tok,
				Variables: vars, Script: append(identity.BeforeScript, "sdkclient -endpoint "+k.emu.STSURL)})
			ok := res.ExitCode == 0 && lastLine(res.Stdout) == wantARN(fmt.Sprintf("gitlab-42-%d", id))
			if control := i == 1; ok == control {
				t.Errorf("%s: got credentials %v, want %v: %s", c.name, ok, !control, res)
			}
		}
	})
	// ARP spoofing between jobs on a shared network (here Docker's
	// default bridge): a job whose image runs as root would need a packet
	// socket to forge ARP for 169.254.170.2 or the gateway and catch its
	// neighbours' tokens. With the printed cap_drop it cannot open one;
	// the control, the same keys without cap_drop, can (arping gets the
	// gateway's answer).
	t.Run("no-packet-sockets", func(t *testing.T) {
		if !slices.Equal(rc.CapDrop, []string{"NET_RAW"}) {
			t.Fatalf("the printed keys drop %v, want [NET_RAW]", rc.CapDrop)
		}
		withRaw := rc
		withRaw.CapDrop = nil
		script := []string{`gw=$(ip route | awk '$1 == "default" {print $3}')`, `echo "gateway $gw"`, `arping -c 1 -w 5 -I eth0 "$gw"`}
		for i, c := range []struct {
			name   string
			config runnerConfig
		}{{"printed", rc}, {"without cap_drop (the control)", withRaw}} {
			id := int64(4030 + i)
			res := newJobRunner(t, c.config).run(t, job{ID: id, ProjectID: projectID, ProjectPath: projectPath, Image: staticImage,
				Token: k.useToken("glcbt-unused"), User: "0", Script: script})
			if !regexp.MustCompile(`(?m)^gateway [0-9.]+$`).MatchString(res.Stdout) {
				t.Fatalf("%s: no gateway: %s", c.name, res)
			}
			refused := res.ExitCode != 0 && strings.Contains(res.Stderr, "Operation not permitted")
			sent := res.ExitCode == 0 && strings.Contains(res.Stdout, "Received 1 response")
			if control := i == 1; control != sent || control == refused {
				t.Errorf("%s: packet socket refused %v, ARP answered %v; want the control to send: %s", c.name, refused, sent, res)
			}
		}
	})
	// Service containers: GitLab Runner applies cap_drop to the job's
	// container only, so a job's service (an image of its choosing,
	// perhaps running as root) keeps NET_RAW. With the printed
	// FF_NETWORK_PER_BUILD it shares a network with its own job only:
	// another job's container, on that job's network, does not answer
	// its ARP. The control, the same keys on Docker's default bridge
	// (the flag off), reaches the neighbour.
	t.Run("services-isolated", func(t *testing.T) {
		if !rc.NetworkPerBuild {
			t.Fatal("the printed keys do not turn on FF_NETWORK_PER_BUILD")
		}
		shared := rc
		shared.NetworkPerBuild = false
		for i, c := range []struct {
			name   string
			config runnerConfig
		}{{"printed", rc}, {"default bridge (the control)", shared}} {
			ip := startNeighbour(t, c.config.NetworkPerBuild)
			service := c.config
			service.CapDrop = nil // as the runner starts a service container
			id := int64(4040 + i)
			res := newJobRunner(t, service).run(t, job{ID: id, ProjectID: projectID, ProjectPath: projectPath, Image: staticImage,
				Token: k.useToken("glcbt-unused"), User: "0", Script: []string{"arping -c 1 -w 5 -I eth0 " + ip + " || echo arping-failed"}})
			reached := strings.Contains(res.Stdout, "Received 1 response")
			if control := i == 1; reached != control || (!control && !strings.Contains(res.Stdout, "arping-failed")) {
				t.Errorf("%s: a service container with NET_RAW reached another job's container %s: %v, want %v: %s", c.name, ip, reached, control, res)
			}
		}
	})
	// An HTTP proxy for the job (a runner-level or dotenv HTTP_PROXY):
	// the Go SDK's HTTP client honours it for 169.254.170.2, so without
	// the pre_build_script's NO_PROXY line the proxy receives the job's
	// token (the control). With it, the job gets its session straight
	// from the agent and the proxy receives nothing; the job's own
	// NO_PROXY is kept.
	t.Run("no-proxy", func(t *testing.T) {
		line := agent.NoProxy("169.254.170.2")
		if !strings.Contains(rc.PreBuildScript, line) {
			t.Fatalf("the printed pre_build_script has no %q:\n%s", line, rc.PreBuildScript)
		}
		withoutLine := rc
		withoutLine.PreBuildScript = strings.Replace(rc.PreBuildScript, line, "", 1)
		p := startProxy(t)
		vars := append(identity.Variables, "HTTP_PROXY=http://"+p.addr, "http_proxy=http://"+p.addr, "NO_PROXY=gitlab.example.com")
		for i, c := range []struct {
			name   string
			config runnerConfig
		}{{"printed", rc}, {"without the NO_PROXY line (the control)", withoutLine}} {
			id := int64(4050 + i)
			tok := k.addJob(id)
			res := newJobRunner(t, c.config).run(t, job{ID: id, ProjectID: projectID, ProjectPath: projectPath, Image: staticImage, Token: tok,
				Variables: vars, Script: []string{"sdkclient -endpoint " + k.emu.STSURL}})
			ok := res.ExitCode == 0 && lastLine(res.Stdout) == wantARN(fmt.Sprintf("gitlab-42-%d", id))
			leaked := p.sawToken(tok)
			if control := i == 1; ok == control || leaked != control {
				t.Errorf("%s: got credentials %v, the proxy received the token %v; want %v, %v: %s", c.name, ok, leaked, !control, control, res)
			}
		}
	})
	// An earlier job's dotenv report (or a CI/CD variable) with
	// credentials every SDK prefers to the agent's: static keys, or a
	// config file with a profile of its own. The printed
	// pre_build_script unsets them, naming each, so the job runs on its
	// own session; the control, without that loop, runs on the planted
	// keys, which the emulator's STS refuses.
	t.Run("dotenv-credentials-unset", func(t *testing.T) {
		if !strings.Contains(rc.PreBuildScript, agent.CredentialVariablesUnset) {
			t.Fatalf("the printed pre_build_script does not unset the credential variables:\n%s", rc.PreBuildScript)
		}
		withoutUnset := rc
		withoutUnset.PreBuildScript = strings.Replace(rc.PreBuildScript, agent.CredentialVariablesUnset, "", 1)
		const secret = "dotenvSecretKeyNotToBeLogged0000"
		planted := []struct {
			name   string
			vars   []string
			script []string
			unset  []string
		}{
			{"static keys", []string{"AWS_ACCESS_KEY_ID=AKIADOTENVPLANTED000", "AWS_SECRET_ACCESS_KEY=" + secret, "AWS_SESSION_TOKEN=planted"}, nil,
				[]string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"}},
			{"config file and profile", []string{"AWS_CONFIG_FILE=/tmp/planted-config", "AWS_PROFILE=planted"},
				[]string{`printf '[profile planted]\naws_access_key_id = AKIADOTENVPLANTED000\naws_secret_access_key = ` + secret + `\n' > /tmp/planted-config`},
				[]string{"AWS_CONFIG_FILE", "AWS_PROFILE"}},
		}
		for pi, pl := range planted {
			for i, c := range []struct {
				name   string
				config runnerConfig
			}{{"printed", rc}, {"without the unset (the control)", withoutUnset}} {
				id := int64(4060 + 2*pi + i)
				tok := k.addJob(id)
				res := newJobRunner(t, c.config).run(t, job{ID: id, ProjectID: projectID, ProjectPath: projectPath, Image: staticImage, Token: tok,
					Variables: append(append([]string{}, identity.Variables...), pl.vars...), Script: append(pl.script, "sdkclient -endpoint "+k.emu.STSURL)})
				ok := res.ExitCode == 0 && lastLine(res.Stdout) == wantARN(fmt.Sprintf("gitlab-42-%d", id))
				if control := i == 1; ok == control {
					t.Errorf("%s, %s: got the job's session %v, want %v: %s", pl.name, c.name, ok, !control, res)
				}
				if i == 0 {
					for _, v := range pl.unset {
						if !strings.Contains(res.Stdout, "keyless: unsetting "+v+" ") {
							t.Errorf("%s: the job's log does not name %s: %s", pl.name, v, res)
						}
					}
					if strings.Contains(res.Stdout+res.Stderr, secret) {
						t.Errorf("%s: the job's log holds the planted secret: %s", pl.name, res)
					}
				}
			}
		}
	})
	t.Run("static-per-build", func(t *testing.T) {
		perBuild := rc
		perBuild.NetworkPerBuild = true
		runner := newJobRunner(t, perBuild)
		tok := k.addJob(4002)
		// A CI/CD variable left over from static keys: the template
		// unsets it, or the SDK would use it instead of the agent.
		vars := append(identity.Variables, "AWS_ACCESS_KEY_ID=AKIAOLDSTATICKEY0000", "AWS_SECRET_ACCESS_KEY=old")
		res := runner.run(t, job{ID: 4002, ProjectID: projectID, ProjectPath: projectPath, Image: staticImage, Token: tok,
			Variables: vars, Script: append(identity.BeforeScript, "sdkclient -endpoint "+k.emu.STSURL)})
		if got := strings.TrimSpace(lastLine(res.Stdout)); res.ExitCode != 0 || got != wantARN("gitlab-42-4002") {
			t.Errorf("the template's before_script and the Go SDK in busybox: got %q\n%s", got, res)
		}
		if !strings.Contains(res.Stdout, "keyless: unsetting AWS_ACCESS_KEY_ID") {
			t.Errorf("the template did not say it unset the static key: %s", res)
		}
	})
	t.Run("runner-not-configured", func(t *testing.T) {
		runner := newJobRunner(t, runnerConfig{})
		res := runner.run(t, job{ID: 4003, ProjectID: projectID, ProjectPath: projectPath, Image: staticImage, Token: k.useToken("glcbt-unused"),
			Script: append(identity.BeforeScript, "echo script-ran")})
		if res.ExitCode == 0 || strings.Contains(res.Stdout, "script-ran") ||
			!strings.Contains(res.Stderr, "keyless: this runner is not set up for keyless agent: AWS_CONTAINER_CREDENTIALS_FULL_URI is not set") {
			t.Errorf("a runner without keyless's keys: the template must fail before the script, saying why: %s", res)
		}
		noToken := rc
		noToken.PreBuildScript = "export AWS_CONTAINER_CREDENTIALS_FULL_URI=" + fullURI + "\n"
		runner = newJobRunner(t, noToken)
		res = runner.run(t, job{ID: 4003, ProjectID: projectID, ProjectPath: projectPath, Image: staticImage, Token: k.useToken("glcbt-unused"),
			Script: append(identity.BeforeScript, "echo script-ran")})
		if res.ExitCode == 0 || strings.Contains(res.Stdout, "script-ran") || !strings.Contains(res.Stderr, "keyless: no token for the agent") {
			t.Errorf("a runner without the pre_build_script: the template must fail before the script, saying why: %s", res)
		}
		// A runner configured by hand, with the endpoint in its
		// environment (which job variables and dotenv reports override)
		// and no pin in pre_build_script: a job variable pointing the
		// SDKs elsewhere makes the template fail before the job's token
		// could go there.
		byHand := runnerConfig{Environment: []string{"AWS_CONTAINER_CREDENTIALS_FULL_URI=" + fullURI},
			PreBuildScript: "export AWS_CONTAINER_AUTHORIZATION_TOKEN=\"$CI_JOB_TOKEN\"\n"}
		res = newJobRunner(t, byHand).run(t, job{ID: 4003, ProjectID: projectID, ProjectPath: projectPath, Image: staticImage, Token: k.useToken("glcbt-unused"),
			Variables: []string{"AWS_CONTAINER_CREDENTIALS_FULL_URI=https://collector.invalid/v1/credentials"},
			Script:    append(identity.BeforeScript, "echo script-ran")})
		if res.ExitCode == 0 || strings.Contains(res.Stdout, "script-ran") || !strings.Contains(res.Stderr, "not the agent on this host") {
			t.Errorf("an endpoint a job variable moved: the template must fail before the script, saying why: %s", res)
		}
		// A token with a line break, which the SDKs refuse with a
		// message that does not say where it came from.
		runner = newJobRunner(t, rc)
		res = runner.run(t, job{ID: 4003, ProjectID: projectID, ProjectPath: projectPath, Image: staticImage, Token: k.useToken("glcbt-unused") + "\n",
			Script: append(identity.BeforeScript, "echo script-ran")})
		if res.ExitCode == 0 || strings.Contains(res.Stdout, "script-ran") || !strings.Contains(res.Stderr, "keyless: the token holds a line break") {
			t.Errorf("a token with a line break: the template must fail before the script, saying why: %s", res)
		}
	})
}

// TestTemplateIDToken: a job extending .keyless_aws_id_token gets the
// JWT GitLab mints for the template's id_tokens (here the fake GitLab,
// with the aud the template names), and the agent verifies it offline:
// the job's session, granted as gitlab-id-token, with no call to GitLab's
// job API, while the job's CI_JOB_TOKEN is one GitLab would refuse.
func TestTemplateIDToken(t *testing.T) {
	k := startKitAgent(t)
	rc := parseRunnerConfig(t, k.print(t, "--executor", "docker"))
	ci := loadCI(t, "examples/terraform.gitlab-ci.yml")
	// The example's apply job uses the id_tokens variant's variable; a
	// job extending the variant itself is what the template offers.
	ci.add(t, "id-token-identity", "extends: [.keyless_aws_id_token]\nscript: [aws sts get-caller-identity --query Arn --output text]\n")
	j := ci.job(t, "id-token-identity")
	aud, ok := j.IDTokens["KEYLESS_ID_TOKEN"]
	if !ok || aud != kitAudience {
		t.Fatalf("the id_tokens variant asks for %v, want KEYLESS_ID_TOKEN with aud %s", j.IDTokens, kitAudience)
	}
	if apply := ci.job(t, "apply"); apply.IDTokens["KEYLESS_ID_TOKEN"] != kitAudience {
		t.Errorf("the example's apply job asks for %v", apply.IDTokens)
	}
	k.addJob(5001)
	jwt := k.gitlab.JobIDToken(5001, aud, time.Hour)
	k.tokens = append(k.tokens, jwt)
	k.gitlab.ResetCalls()
	runner := newJobRunner(t, rc)
	res := runner.run(t, job{ID: 5001, ProjectID: projectID, ProjectPath: projectPath, Image: debianImage,
		Token:     k.useToken("glcbt-not-a-job-of-this-gitlab-0000"),
		Variables: append(j.Variables, "KEYLESS_ID_TOKEN="+jwt),
		Script:    append(j.BeforeScript, withEndpoint(j.Script, k.emu.STSURL)...)})
	if got := lastLine(res.Stdout); res.ExitCode != 0 || got != wantARN("gitlab-42-5001") {
		t.Errorf("the id_tokens job: got %q\n%s", got, res)
	}
	if !k.decided("identity=gitlab-id-token", "job=5001", "outcome=granted") {
		t.Errorf("the agent logged no id_tokens grant for job 5001")
	}
	if n := k.gitlab.Calls(gitlabfake.EndpointJob); n != 0 {
		t.Errorf("the agent called GitLab's job API %d times for an id_tokens job", n)
	}

	// An earlier job's JWT, passed on to a later job in a dotenv report
	// (a plain variable, KEYLESS_ID_TOKEN): the pre_build_script uses a
	// JWT only when its job_id is the job's CI_JOB_ID, so job 5002 shows
	// its own CI_JOB_TOKEN instead, and says why, in busybox's shell and
	// base64 here (Debian's above). The control, the same script with
	// the job_id check broken (any JWT matches), runs as job 5001.
	tok := k.addJob(5002)
	broken := rc
	broken.PreBuildScript = strings.Replace(rc.PreBuildScript, agent.IDTokenJobCheck, "*)", 1)
	if broken.PreBuildScript == rc.PreBuildScript {
		t.Fatalf("the printed pre_build_script has no job_id check:\n%s", rc.PreBuildScript)
	}
	for i, c := range []struct {
		name    string
		config  runnerConfig
		session string
	}{{"printed", rc, "gitlab-42-5002"}, {"job_id check broken (the control)", broken, "gitlab-42-5001"}} {
		res := newJobRunner(t, c.config).run(t, job{ID: 5002, ProjectID: projectID, ProjectPath: projectPath, Image: staticImage, Token: tok,
			Variables: append(j.Variables, "KEYLESS_ID_TOKEN="+jwt),
			Script:    append(j.BeforeScript, "sdkclient -endpoint "+k.emu.STSURL)})
		if got := lastLine(res.Stdout); res.ExitCode != 0 || got != wantARN(c.session) {
			t.Errorf("%s: job 5002 with job 5001's JWT: got %q, want the session %s\n%s", c.name, got, c.session, res)
		}
		if warned := strings.Contains(res.Stderr, "keyless: not using KEYLESS_ID_TOKEN: its job_id is not this job's CI_JOB_ID (5002)"); warned != (i == 0) {
			t.Errorf("%s: said it did not use the JWT: %v\n%s", c.name, warned, res)
		}
	}
}

// TestPrintedShellConfig: the shell executor's keys, as printed, parse as
// TOML; a job run as the shell executor runs it (a shell on this host, as
// this test's user, standing in for the runner's, with the job's
// variables and then the pre_build_script and the job's lines) gets its
// own session from the host's AWS CLI through the agent's listener on
// 169.254.170.2:80, a port only root may open. An agent.yaml with only
// the loopback listener (port 1024 or more) gets that, with a warning.
// The printed AWS config (--aws-config) gets the AWS CLI credentials
// through the agent's socket, for this user's uid.
func TestPrintedShellConfig(t *testing.T) {
	k := startKitAgent(t)
	aws := mustLookPath(t, "/usr/bin/aws", "Debian's awscli")
	loopbackOnly := filepath.Join(t.TempDir(), "agent.yaml")
	b, err := os.ReadFile(k.config)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(loopbackOnly, bytes.Replace(b, []byte(`"169.254.170.2:80", "169.254.170.23:80", `), nil, 1), 0o600); err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	base := []string{"PATH=" + filepath.Dir(k.keyless) + ":/usr/bin:/bin", "HOME=" + home, "AWS_DEFAULT_REGION=us-east-1", "AWS_EC2_METADATA_DISABLED=true"}
	for i, c := range []struct {
		config, uri string
		warn        bool
	}{
		{k.config, fullURI, false},
		{loopbackOnly, "http://" + k.loopback + "/v1/credentials", true},
	} {
		cmd := exec.Command(k.keyless, "agent", "print-runner-config", "--config", c.config, "--executor", "shell")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("print-runner-config: %v\n%s", err, stderr.String())
		}
		rc := parseRunnerConfig(t, string(out))
		if want := "\nexport AWS_CONTAINER_CREDENTIALS_FULL_URI=" + c.uri + "\n"; rc.Environment != nil || !strings.Contains(rc.PreBuildScript, want) {
			t.Fatalf("environment %v, pre_build_script without %q:\n%s", rc.Environment, want, rc.PreBuildScript)
		}
		if warned := strings.Contains(stderr.String(), "keyless: warning: jobs send their tokens to "+k.loopback); warned != c.warn {
			t.Errorf("%s: warned %v, want %v: %s", c.uri, warned, c.warn, stderr.String())
		}
		id := int64(6001 + i)
		tok := k.addJob(id)
		script := rc.PreBuildScript + "aws sts get-caller-identity --query Arn --output text --endpoint-url " + k.emu.STSURL + "\n"
		cmd = exec.Command("/bin/sh", "-ec", script)
		cmd.Env = append(base, "CI_JOB_TOKEN="+tok, fmt.Sprintf("CI_JOB_ID=%d", id), "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI=/wrong")
		out, err = cmd.CombinedOutput()
		if got := lastLine(string(out)); err != nil || got != wantARN(fmt.Sprintf("gitlab-42-%d", id)) {
			t.Errorf("a shell-executor job through %s: got %q (%v)\n%s", c.uri, got, err, out)
		}
	}

	cfg := filepath.Join(home, "aws-config")
	if err := os.WriteFile(cfg, []byte(k.print(t, "--executor", "shell", "--aws-config")), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(aws, "sts", "get-caller-identity", "--query", "Arn", "--output", "text", "--endpoint-url", k.emu.STSURL)
	cmd.Env = append(base, "AWS_CONFIG_FILE="+cfg, "AWS_PROFILE=keyless")
	out, err := cmd.CombinedOutput()
	if got := lastLine(string(out)); err != nil || got != wantARN(fmt.Sprintf("keyless-uid-%d", os.Getuid())) {
		t.Errorf("the printed AWS config: got %q (%v)\n%s", got, err, out)
	}
}

// TestPrintedDockerDesktopConfig: the Docker Desktop keys parse as TOML,
// put jobs on the relay's network ("keyless", where the relay owns
// 169.254.170.2) without CAP_NET_RAW (the network is shared by every
// job) and mount nothing; their comments hold the commands that
// create that network and start the relay towards the agent's relay port.
// (A job through the relay from these keys is TestJobsThroughTheRelay.)
func TestPrintedDockerDesktopConfig(t *testing.T) {
	k := startKitAgent(t)
	out := k.print(t, "--executor", "docker-desktop", "--relay-port", "9912")
	rc := parseRunnerConfig(t, out)
	if rc.NetworkMode != "keyless" || rc.NetworkPerBuild || rc.Volumes != nil || rc.Environment != nil || !slices.Equal(rc.CapDrop, []string{"NET_RAW"}) ||
		!strings.Contains(rc.PreBuildScript, "\nexport AWS_CONTAINER_CREDENTIALS_FULL_URI="+fullURI+"\n") {
		t.Errorf("Docker Desktop keys: %+v", rc)
	}
	for _, want := range []string{
		"#   docker network create --subnet 169.254.170.0/24 --ip-range 169.254.170.128/25 --gateway 169.254.170.1 keyless\n",
		"--ip 169.254.170.2 keyless-relay agent relay --upstream http://host.docker.internal:9912\n",
		// No per-build networks (every job must be on the relay's), so
		// the comments say what the services keep, and what to do.
		"service containers (services:)\n# with Docker's default capabilities, NET_RAW included",
		"    # allowed_services = [",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in:\n%s", want, out)
		}
	}
}

// startNeighbour starts another job's container, sleeping, where the
// runner puts it: on a network of its own (FF_NETWORK_PER_BUILD) or on
// Docker's default bridge; it returns the container's address.
func startNeighbour(t *testing.T, perBuild bool) string {
	t.Helper()
	im := buildImages(t)
	args := []string{"run", "-d", "--label", keylessLabel}
	if perBuild {
		network := "keyless-interop-neighbour-" + testkit.Nonce(t)
		if _, err := docker(nil, "network", "create", "--driver", "bridge", "--label", keylessLabel, network); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if _, err := docker(nil, "network", "rm", network); err != nil {
				t.Errorf("removing the neighbour's network: %v", err)
			}
		})
		args = append(args, "--network", network)
	}
	name := "keyless-interop-neighbour-" + testkit.Nonce(t)
	if _, err := docker(nil, append(args, "--name", name, im.name[staticImage], "sleep", "600")...); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { docker(nil, "rm", "-f", name) })
	out, err := docker(nil, "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", name)
	if err != nil {
		t.Fatal(err)
	}
	ips := strings.Fields(out)
	if len(ips) != 1 {
		t.Fatalf("the neighbour's addresses: %q", out)
	}
	return ips[0]
}

// proxy is an HTTP proxy that refuses every request (502) and remembers
// the Authorization headers it received, on 169.254.170.2, which jobs
// reach.
type proxy struct {
	addr string
	mu   sync.Mutex
	auth []string
}

func startProxy(t *testing.T) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "169.254.170.2:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{addr: ln.Addr().String()}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.auth = append(p.auth, r.Header.Get("Authorization"))
		p.mu.Unlock()
		http.Error(w, "a proxy", http.StatusBadGateway)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return p
}

// sawToken says whether a request with tok as its Authorization reached
// the proxy (it answers before the job goes on, so a job that has ended
// has been recorded).
func (p *proxy) sawToken(tok string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Contains(p.auth, tok)
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// TestDocsRunnerConfigs: the config.toml keys docs/gitlab.md shows (its
// ```toml blocks: the Docker and the Docker Desktop executor's) are what
// print-runner-config prints for the page's own agent.yaml, compared as
// parsed TOML, so the page cannot drift from the command; the Docker
// Desktop block, which only a Mac can use, is checked this way.
func TestDocsRunnerConfigs(t *testing.T) {
	keyless := testkit.Keyless(t)
	b, err := os.ReadFile(repoFile("/docs/gitlab.md"))
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	_, rest, ok := strings.Cut(doc, "<!-- doc-test: file agent.yaml -->\n```yaml\n")
	yamlText, _, ok2 := strings.Cut(rest, "\n```\n")
	if !ok || !ok2 {
		t.Fatal("docs/gitlab.md has no agent.yaml block")
	}
	config := filepath.Join(t.TempDir(), "agent.yaml")
	if err := os.WriteFile(config, []byte(yamlText+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var blocks []string
	for _, part := range strings.Split(doc, "```toml\n")[1:] {
		block, _, ok := strings.Cut(part, "\n```\n")
		if !ok {
			t.Fatal("an unclosed toml block")
		}
		blocks = append(blocks, block+"\n")
	}
	if len(blocks) != 2 {
		t.Fatalf("docs/gitlab.md has %d toml blocks, want the Docker and the Docker Desktop executor's", len(blocks))
	}
	for i, args := range [][]string{{"--executor", "docker"}, {"--executor", "docker-desktop", "--relay-port", "9912"}} {
		out, err := exec.Command(keyless, append([]string{"agent", "print-runner-config", "--config", config}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("print-runner-config %v: %v\n%s", args, err, out)
		}
		if got, want := parseRunnerConfig(t, blocks[i]), parseRunnerConfig(t, string(out)); fmt.Sprintf("%#v", got) != fmt.Sprintf("%#v", want) {
			t.Errorf("docs/gitlab.md's block for %v:\n%#v\nprint-runner-config prints:\n%#v", args, got, want)
		}
	}
}
