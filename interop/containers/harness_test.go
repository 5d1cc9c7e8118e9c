//go:build linux

package containers_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyless-dev/keyless/internal/testkit"
)

// The job harness starts job containers as GitLab Runner's Docker
// executor does, with the settings of a runner configured for keyless
// agent (docs/agent.md), and reproduces these of its behaviours:
//
//   - the network: the default bridge, or (FF_NETWORK_PER_BUILD) a
//     user-defined bridge network created for the job, named as the
//     runner names it, the container attached with the alias "build",
//     and the network removed after the job;
//   - the job's variables (CI, GITLAB_CI, CI_JOB_ID, CI_PROJECT_ID,
//     CI_JOB_TOKEN, ... and the job's own) and the runner-level
//     environment, given to the container as its environment (-e);
//   - the script: the container runs the runner's shell-detection
//     command (sh -c, preferring bash) and reads the generated script on
//     its standard input (docker run -i), which runs the runner-level
//     pre_build_script and then the job's lines under set -eo pipefail;
//     the job's exit code is the script's;
//   - network_mode (a named network the container joins) and
//     extra_hosts (--add-host), when the config sets them;
//   - mounts: only the config's volumes ([runners.docker] volumes,
//     default ["/cache"], a Docker volume, not a host path); nothing of
//     the host is mounted, except that the Debian image, which this
//     machine cannot pull, is this machine's /usr bind-mounted read-only
//     in place of the image's own /usr;
//   - privileges: not privileged, no cap_add, no devices; Docker's
//     default capabilities less the config's cap_drop ([runners.docker]
//     cap_drop, --cap-drop); the image's own user, which is not root
//     (nobody, 65534) in both images, as [runners.docker] user would set
//     it, unless the job's image runs as another (job.User: an image of
//     the job's choosing may well run as root).
//
// It does not clone a repository, run helper or service containers,
// stream the job log to GitLab, or echo the script's lines: the tests
// read the script's own output.
type jobRunner struct {
	images *images
	config runnerConfig
}

// runnerConfig is the part of config.toml the harness honours.
type runnerConfig struct {
	// Token is the runner's short token, in container and network names.
	Token string
	// Environment is [[runners]] environment: variables for every job.
	Environment []string
	// PreBuildScript is [[runners]] pre_build_script.
	PreBuildScript string
	// Volumes is [runners.docker] volumes; nil means the default, /cache.
	Volumes []string
	// NetworkPerBuild is the FF_NETWORK_PER_BUILD feature flag.
	NetworkPerBuild bool
	// NetworkMode is [runners.docker] network_mode: a network the job's
	// container joins instead of the default bridge (ignored with
	// NetworkPerBuild, as the runner ignores it).
	NetworkMode string
	// ExtraHosts is [runners.docker] extra_hosts, "name:address" each
	// ("host.docker.internal:host-gateway" on Linux).
	ExtraHosts []string
	// CapDrop is [runners.docker] cap_drop: capabilities the job's
	// container does not get.
	CapDrop []string
}

// imageKind names the two job images.
type imageKind int

const (
	// debianImage runs Debian's programs: the AWS CLI v2 and python3 with
	// boto3 (this machine's /usr, read-only).
	debianImage imageKind = iota
	// staticImage is FROM scratch: busybox-static and cmd/sdkclient,
	// the static AWS SDK for Go v2 client, at /usr/local/bin/sdkclient.
	staticImage
)

func (k imageKind) String() string { return [...]string{"debian", "static"}[k] }

// job is one CI job.
type job struct {
	ID, ProjectID int64
	ProjectPath   string // group/project
	Image         imageKind
	// Token is CI_JOB_TOKEN.
	Token string
	// Variables are the job's own variables, KEY=VALUE.
	Variables []string
	// Script is the job's script, one shell line each.
	Script []string
	// User is the user the job's image runs as ("0" for root), when not
	// the image's own (nobody).
	User string
}

// result is what a job printed and its exit code.
type result struct {
	Stdout, Stderr string
	ExitCode       int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.ExitCode, r.Stdout, r.Stderr)
}

// jobLimit bounds one job, pulling nothing but starting Python twice.
const jobLimit = 3 * time.Minute

// detectShell is GitLab Runner's command for a Docker job's container
// (its bash shell's DockerCommand): the first shell found reads the
// script from standard input.
const detectShell = `if [ -x /usr/local/bin/bash ]; then
	exec /usr/local/bin/bash 
elif [ -x /usr/bin/bash ]; then
	exec /usr/bin/bash 
elif [ -x /bin/bash ]; then
	exec /bin/bash 
elif [ -x /usr/local/bin/sh ]; then
	exec /usr/local/bin/sh 
elif [ -x /usr/bin/sh ]; then
	exec /usr/bin/sh 
elif [ -x /bin/sh ]; then
	exec /bin/sh 
elif [ -x /busybox/sh ]; then
	exec /busybox/sh 
else
	echo shell not found
	exit 1
fi
`

// newJobRunner checks Docker and this machine's peers and builds the
// images (once per test process).
func newJobRunner(t *testing.T, config runnerConfig) *jobRunner {
	t.Helper()
	im := buildImages(t)
	if config.Token == "" {
		config.Token = "t3stRunr"
	}
	if config.Volumes == nil {
		config.Volumes = []string{"/cache"}
	}
	return &jobRunner{images: im, config: config}
}

// run starts j's container, feeds it the script and waits for its end.
func (r *jobRunner) run(t *testing.T, j job) result {
	t.Helper()
	base := fmt.Sprintf("runner-%s-project-%d-concurrent-0", r.config.Token, j.ProjectID)
	name := fmt.Sprintf("%s-%s-build-%d", base, testkit.Nonce(t), j.ID)
	args := []string{"run", "--rm", "-i", "--name", name, "--hostname", name,
		"--label", "com.gitlab.gitlab-runner.type=build",
		"--label", "com.gitlab.gitlab-runner.job.id=" + strconv.FormatInt(j.ID, 10),
		"--label", "com.gitlab.gitlab-runner.project.id=" + strconv.FormatInt(j.ProjectID, 10),
		"--label", keylessLabel}
	if r.config.NetworkPerBuild {
		network := fmt.Sprintf("%s-job-%d-network", base, j.ID)
		if _, err := docker(nil, "network", "create", "--driver", "bridge",
			"--label", "com.gitlab.gitlab-runner.job.id="+strconv.FormatInt(j.ID, 10), "--label", keylessLabel, network); err != nil {
			t.Fatal(err)
		}
		defer func() {
			if _, err := docker(nil, "network", "rm", network); err != nil {
				t.Errorf("removing the job's network: %v", err)
			}
		}()
		args = append(args, "--network", network, "--network-alias", "build")
	} else if r.config.NetworkMode != "" {
		args = append(args, "--network", r.config.NetworkMode)
	}
	for _, h := range r.config.ExtraHosts {
		args = append(args, "--add-host", h)
	}
	for _, c := range r.config.CapDrop {
		args = append(args, "--cap-drop", c)
	}
	if j.User != "" {
		args = append(args, "--user", j.User)
	}
	for _, v := range r.config.Volumes {
		args = append(args, "-v", v)
	}
	if j.Image == debianImage {
		args = append(args, "-v", "/usr:/usr:ro")
	}
	projectDir := "/builds/" + j.ProjectPath
	env := []string{
		"CI=true", "GITLAB_CI=true",
		"CI_JOB_ID=" + strconv.FormatInt(j.ID, 10),
		"CI_PROJECT_ID=" + strconv.FormatInt(j.ProjectID, 10),
		"CI_PROJECT_PATH=" + j.ProjectPath,
		"CI_PROJECT_DIR=" + projectDir,
		"CI_BUILDS_DIR=/builds",
		"CI_JOB_TOKEN=" + j.Token,
	}
	env = append(env, r.config.Environment...)
	env = append(env, j.Variables...)
	for _, e := range env {
		args = append(args, "-e", e)
	}
	args = append(args, r.images.name[j.Image], "sh", "-c", detectShell)

	ctx, cancel := context.WithTimeout(context.Background(), jobLimit)
	defer cancel()
	cmd := exec.CommandContext(ctx, "docker", args...)
	cmd.Stdin = strings.NewReader(r.script(j))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	began := time.Now()
	err := cmd.Run()
	res := result{Stdout: stdout.String(), Stderr: stderr.String()}
	var exit *exec.ExitError
	switch {
	case ctx.Err() != nil:
		docker(nil, "rm", "-f", "-v", name)
		t.Fatalf("job %d in the %s image ran over %s:\n%s", j.ID, j.Image, jobLimit, res)
	case errors.As(err, &exit):
		res.ExitCode = exit.ExitCode()
		if res.ExitCode == 125 {
			t.Fatalf("docker could not start job %d's container:\n%s", j.ID, res)
		}
	case err != nil:
		t.Fatalf("docker run: %v", err)
	}
	t.Logf("job %d (%s image, %s, %s): %s", j.ID, j.Image, r.networkName(),
		time.Since(began).Round(time.Millisecond), res)
	return res
}

// networkName describes the network a job's container joins.
func (r *jobRunner) networkName() string {
	switch {
	case r.config.NetworkPerBuild:
		return "per-build network"
	case r.config.NetworkMode != "":
		return "network " + r.config.NetworkMode
	}
	return "default bridge"
}

// script is what the runner writes to the container's standard input:
// the pre_build_script, then the job's lines, in one eval under
// set -eo pipefail, with nothing on the eval's standard input.
func (r *jobRunner) script(j job) string {
	var body strings.Builder
	if r.config.PreBuildScript != "" {
		body.WriteString(r.config.PreBuildScript + "\n")
	}
	for _, l := range j.Script {
		body.WriteString(l + "\n")
	}
	return "set -eo pipefail\nset +o noclobber\n: | eval " + shellQuote(body.String()) + "\nexit 0\n"
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// keylessLabel marks everything the harness makes.
const keylessLabel = "dev.keyless.interop=containers"

// images are the two job images, built once per test process.
type images struct {
	name map[imageKind]string
}

var (
	imagesMu   sync.Mutex
	imagesDone bool
	imagesSkip string // why a peer is missing
	imagesErr  error
	built      *images
)

// buildImages makes the images, or skips (fails) t when Docker or a peer
// the images hold is missing; it checks and builds once per test
// process. removeImages, from TestMain, removes them.
func buildImages(t *testing.T) *images {
	t.Helper()
	imagesMu.Lock()
	defer imagesMu.Unlock()
	if !imagesDone {
		imagesDone = true
		imagesErr = errors.New("building the job images failed in an earlier test")
		built, imagesSkip, imagesErr = prepareImages(t)
	}
	if imagesSkip != "" {
		unavailable(t, "%s", imagesSkip)
	}
	if imagesErr != nil {
		t.Fatal(imagesErr)
	}
	return built
}

// prepareImages checks Docker and this machine's peers, and builds the
// images; skip says which peer is missing.
func prepareImages(t *testing.T) (im *images, skip string, err error) {
	t.Helper()
	if _, err := exec.LookPath("docker"); err != nil {
		return nil, "docker: not found; install Debian's docker.io, and start dockerd", nil
	}
	if out, err := exec.Command("docker", "info", "--format", "{{.ServerVersion}}").CombinedOutput(); err != nil {
		return nil, fmt.Sprintf("docker info: %v: %s (start dockerd)", err, bytes.TrimSpace(out)), nil
	}
	if l, err := os.Readlink("/bin"); err != nil || strings.TrimPrefix(l, "/") != "usr/bin" {
		return nil, "this machine's /bin is not a link to /usr/bin, so its /usr alone cannot run the AWS CLI in a container", nil
	}
	if out, err := exec.Command("/usr/bin/aws", "--version").CombinedOutput(); err != nil || !strings.HasPrefix(string(out), "aws-cli/2.") {
		return nil, fmt.Sprintf("/usr/bin/aws is not the AWS CLI v2 (%v: %s); install Debian's awscli", err, bytes.TrimSpace(out)), nil
	}
	if out, err := exec.Command("/usr/bin/python3", "-c", "import boto3").CombinedOutput(); err != nil {
		return nil, fmt.Sprintf("/usr/bin/python3 cannot import boto3 (%v: %s); install Debian's python3-boto3", err, bytes.TrimSpace(out)), nil
	}
	busybox, skip := staticBusybox()
	if skip != "" {
		return nil, skip, nil
	}
	sdkclient := testkit.Build(t, "sdkclient", "github.com/keyless-dev/keyless/interop/containers/cmd/sdkclient", false)
	im, err = makeImages(busybox, sdkclient)
	return im, "", err
}

// staticBusybox returns /bin/busybox when it is statically linked (Debian's
// busybox-static), so it runs in an image without a C library, or why not.
func staticBusybox() (path, skip string) {
	const p = "/bin/busybox"
	f, err := elf.Open(p)
	if err != nil {
		return "", fmt.Sprintf("%s: %v; install Debian's busybox-static", p, err)
	}
	defer f.Close()
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			return "", p + " is dynamically linked; install Debian's busybox-static instead of busybox"
		}
	}
	return p, ""
}

func makeImages(busybox, sdkclient string) (*images, error) {
	id := make([]byte, 6)
	rand.Read(id)
	tag := hex.EncodeToString(id)
	im := &images{name: map[imageKind]string{
		debianImage: "keyless-interop-job-debian:" + tag,
		staticImage: "keyless-interop-job-static:" + tag,
	}}
	user := []string{"--change", "USER 65534:65534", "--change", "ENV HOME=/tmp", "--change", "WORKDIR /tmp"}

	deb, err := debianSkeleton()
	if err != nil {
		return nil, err
	}
	args := append([]string{"import"}, user...)
	args = append(args, "--change", "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "-", im.name[debianImage])
	if _, err := docker(bytes.NewReader(deb), args...); err != nil {
		return nil, err
	}
	static, err := staticSkeleton(busybox, sdkclient)
	if err != nil {
		removeImages(im)
		return nil, err
	}
	args = append([]string{"import"}, user...)
	args = append(args, "--change", "ENV PATH=/usr/local/bin:/bin", "-", im.name[staticImage])
	if _, err := docker(bytes.NewReader(static), args...); err != nil {
		removeImages(im)
		return nil, err
	}
	return im, nil
}

// removeImages removes the images this process built (TestMain calls it).
func removeImages(im *images) {
	if im == nil {
		return
	}
	for _, n := range im.name {
		docker(nil, "rmi", "-f", n)
	}
}

type tarFile struct {
	name, link string
	mode       int64
	data       []byte
	dir        bool
}

func writeTar(files []tarFile) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		h := &tar.Header{Name: f.name, Mode: f.mode, ModTime: time.Unix(0, 0), Typeflag: tar.TypeReg, Size: int64(len(f.data))}
		switch {
		case f.dir:
			h.Typeflag, h.Name = tar.TypeDir, f.name+"/"
		case f.link != "":
			h.Typeflag, h.Linkname, h.Mode = tar.TypeSymlink, f.link, 0o777
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Users of both images: root, and nobody, whom the jobs run as.
const (
	passwd = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
	group  = "root:x:0:\nnogroup:x:65534:\n"
)

// skeletonDirs are the directories of both images.
var skeletonDirs = []tarFile{
	{name: "etc", mode: 0o755, dir: true}, {name: "tmp", mode: 0o1777, dir: true}, {name: "root", mode: 0o700, dir: true},
	{name: "builds", mode: 0o777, dir: true}, {name: "cache", mode: 0o777, dir: true}, {name: "var", mode: 0o755, dir: true},
	{name: "var/tmp", mode: 0o1777, dir: true}, {name: "run", mode: 0o755, dir: true},
	{name: "etc/passwd", mode: 0o644, data: []byte(passwd)}, {name: "etc/group", mode: 0o644, data: []byte(group)},
}

// debianSkeleton is the Debian image without its /usr: empty usr, etc and
// tmp, and the merged-/usr links.
func debianSkeleton() ([]byte, error) {
	files := append([]tarFile{{name: "usr", mode: 0o755, dir: true}}, skeletonDirs...)
	for _, l := range []string{"bin", "lib", "lib64", "sbin"} {
		files = append(files, tarFile{name: l, link: "usr/" + l})
	}
	// The dynamic loader's cache, which belongs with /usr's libraries.
	if b, err := os.ReadFile("/etc/ld.so.cache"); err == nil {
		files = append(files, tarFile{name: "etc/ld.so.cache", mode: 0o644, data: b})
	}
	return writeTar(files)
}

// staticSkeleton is FROM scratch plus busybox (with a link for each of its
// applets in /bin) and the SDK client.
func staticSkeleton(busybox, sdkclient string) ([]byte, error) {
	bb, err := os.ReadFile(busybox)
	if err != nil {
		return nil, err
	}
	client, err := os.ReadFile(sdkclient)
	if err != nil {
		return nil, err
	}
	out, err := exec.Command(busybox, "--list").Output()
	if err != nil {
		return nil, fmt.Errorf("busybox --list: %v", err)
	}
	files := append([]tarFile{
		{name: "bin", mode: 0o755, dir: true}, {name: "usr", mode: 0o755, dir: true}, {name: "usr/local", mode: 0o755, dir: true},
		{name: "usr/local/bin", mode: 0o755, dir: true},
		{name: "bin/busybox", mode: 0o755, data: bb}, {name: "usr/local/bin/sdkclient", mode: 0o755, data: client},
	}, skeletonDirs...)
	for _, applet := range strings.Fields(string(out)) {
		if applet != "busybox" && path.Base(applet) == applet {
			files = append(files, tarFile{name: "bin/" + applet, link: "busybox"})
		}
	}
	return writeTar(files)
}

// docker runs a docker command and returns its output.
func docker(stdin *bytes.Reader, args ...string) (string, error) {
	cmd := exec.Command("docker", args...)
	if stdin != nil {
		cmd.Stdin = stdin
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("docker %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return string(out), nil
}

func unavailable(t *testing.T, format string, args ...any) {
	t.Helper()
	testkit.Unavailable(t, format, args...)
}

func mustLookPath(t *testing.T, name, install string) string {
	t.Helper()
	return testkit.LookPath(t, name, install)
}
