//go:build linux

package release_test

import (
	"bytes"
	"crypto/x509"
	"debug/elf"
	"encoding/binary"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/keyless-dev/keyless/internal/testkit"
	"github.com/keyless-dev/keyless/interop/release"
)

// The image's user, as deploy/docker/keyless/Dockerfile sets it.
const imageUser = "65532:65532"

// TestImage builds the release's linux/amd64 binary, lays out the image
// context (Context), and, with Docker, builds the image from it, runs
// keyless version in it, runs a CA in it and gets a certificate from that
// CA with keyless on the host (Docker).
func TestImage(t *testing.T) {
	p := imageTestPlan(t)
	bin := buildLinuxAmd64(t, p, t.TempDir())
	ctx := filepath.Join(t.TempDir(), "context")
	if err := release.ImageContext(p, bin, ctx); err != nil {
		t.Fatalf("ImageContext: %v", err)
	}

	t.Run("Context", func(t *testing.T) { checkImageContext(t, p, bin, ctx) })
	t.Run("Refusals", func(t *testing.T) { checkImageContextRefusals(t, p, bin) })
	t.Run("Docker", func(t *testing.T) { checkImage(t, p, bin, ctx) })
}

// checkImageContext checks the files ImageContext laid out.
func checkImageContext(t *testing.T, p release.Plan, bin, ctx string) {
	const dir = os.ModeDir | 0o755
	want := map[string]os.FileMode{
		".": dir, "Dockerfile": 0o644,
		"rootfs": dir, "rootfs/etc": dir, "rootfs/etc/passwd": 0o644, "rootfs/etc/group": 0o644,
		"rootfs/etc/ssl": dir, "rootfs/etc/ssl/certs": dir, "rootfs/etc/ssl/certs/ca-certificates.crt": 0o644,
		"rootfs/usr": dir, "rootfs/usr/bin": dir, "rootfs/usr/bin/keyless": 0o755,
		"rootfs/var": dir, "rootfs/var/lib": dir,
		"state": dir, "state/keyless": os.ModeDir | 0o700,
	}
	got := map[string]os.FileMode{}
	err := filepath.WalkDir(ctx, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(ctx, path)
		got[filepath.ToSlash(rel)] = fi.Mode()
		if !fi.ModTime().Equal(p.Epoch) {
			t.Errorf("%s: time %v, want the epoch %v", rel, fi.ModTime(), p.Epoch)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("the context's files and modes (-want +got):\n%s", diff)
	}
	if got, want := readFile(t, filepath.Join(ctx, "rootfs/usr/bin/keyless")), readFile(t, bin); !bytes.Equal(got, want) {
		t.Error("the context's keyless differs from the binary")
	}
	if got, want := readFile(t, filepath.Join(ctx, "rootfs/etc/ssl/certs/ca-certificates.crt")), readFile(t, release.HostCACertificates); !bytes.Equal(got, want) {
		t.Error("the context's ca-certificates.crt differs from the host's")
	}
	dockerfile := string(readFile(t, filepath.Join(ctx, "Dockerfile")))
	for _, line := range []string{
		"ARG VERSION=" + p.Version,
		"ARG REVISION=" + p.Commit,
		"ARG CREATED=2026-11-27T10:00:00Z",
		"USER " + imageUser,
		`ENTRYPOINT ["/usr/bin/keyless"]`,
	} {
		if !strings.Contains(dockerfile, "\n"+line+"\n") {
			t.Errorf("the Dockerfile lacks the line %q:\n%s", line, dockerfile)
		}
	}
	if passwd := string(readFile(t, filepath.Join(ctx, "rootfs/etc/passwd"))); !strings.HasPrefix(passwd, "keyless:x:"+imageUser+":") {
		t.Errorf("passwd does not name %s keyless: %q", imageUser, passwd)
	}
}

// checkImageContextRefusals breaks each of ImageContext's checks.
func checkImageContextRefusals(t *testing.T, p release.Plan, bin string) {
	// A dynamically linked binary would make an image that cannot start.
	if _, err := os.Stat("/bin/ls"); err == nil {
		err := release.ImageContext(p, "/bin/ls", filepath.Join(t.TempDir(), "c"))
		if err == nil || !strings.Contains(err.Error(), "dynamically linked; build it with CGO_ENABLED=0") {
			t.Errorf("a dynamic binary: err = %v, want a refusal naming CGO_ENABLED=0", err)
		}
	}
	// Not an executable at all.
	notELF := filepath.Join(t.TempDir(), "keyless")
	if err := os.WriteFile(notELF, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := release.ImageContext(p, notELF, filepath.Join(t.TempDir(), "c")); err == nil || !strings.Contains(err.Error(), "want the linux/amd64 release binary") {
		t.Errorf("a script: err = %v, want a refusal", err)
	}
	// An arm64 binary (the amd64 one with its ELF machine changed) would
	// build an image that cannot start on amd64.
	arm := readFile(t, bin)
	binary.LittleEndian.PutUint16(arm[18:], uint16(elf.EM_AARCH64))
	armBin := filepath.Join(t.TempDir(), "keyless")
	if err := os.WriteFile(armBin, arm, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := release.ImageContext(p, armBin, filepath.Join(t.TempDir(), "c")); err == nil || !strings.Contains(err.Error(), "is for the machine EM_AARCH64, not linux/amd64") {
		t.Errorf("an arm64 binary: err = %v, want a refusal", err)
	}
	// A context directory that already holds something.
	full := t.TempDir()
	if err := os.WriteFile(filepath.Join(full, "stale"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := release.ImageContext(p, bin, full); err == nil || !strings.Contains(err.Error(), "is not empty") {
		t.Errorf("a non-empty directory: err = %v, want a refusal", err)
	}
	// A Dockerfile whose label ARG was renamed would label nothing.
	src := t.TempDir()
	img := filepath.Join(src, release.ImageDir)
	if err := os.MkdirAll(img, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"passwd", "group"} {
		if err := os.WriteFile(filepath.Join(img, name), readFile(t, filepath.Join(p.Source, release.ImageDir, name)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	df := strings.Replace(string(readFile(t, filepath.Join(p.Source, release.ImageDir, "Dockerfile"))), "ARG REVISION=", "ARG COMMIT=", 1)
	if err := os.WriteFile(filepath.Join(img, "Dockerfile"), []byte(df), 0o644); err != nil {
		t.Fatal(err)
	}
	q := p
	q.Source = src
	if err := release.ImageContext(q, bin, filepath.Join(t.TempDir(), "c")); err == nil || !strings.Contains(err.Error(), "no line ARG REVISION=") {
		t.Errorf("a Dockerfile without ARG REVISION: err = %v, want a refusal", err)
	}
	// A version that would end the ARG line and add an instruction.
	q = p
	q.Version = "v1.2.3\nUSER root"
	if err := release.ImageContext(q, bin, filepath.Join(t.TempDir(), "c")); err == nil || !strings.Contains(err.Error(), "is not a plain version, commit or time") {
		t.Errorf("a version with a newline: err = %v, want a refusal", err)
	}
	// A plan without its commit.
	q = p
	q.Commit = ""
	if err := release.ImageContext(q, bin, filepath.Join(t.TempDir(), "c")); err == nil {
		t.Error("a plan without a commit: no error")
	}
}

// checkImage builds the image and runs keyless in it: version, then a CA
// that keyless on the host enrolls with.
func checkImage(t *testing.T, p release.Plan, bin, ctx string) {
	testkit.LookPath(t, "docker", "Debian's docker.io")
	if out, err := exec.Command("docker", "info", "--format", "{{.ServerVersion}}").CombinedOutput(); err != nil {
		testkit.Unavailable(t, "docker info: %v: %s; start dockerd", err, bytes.TrimSpace(out))
	}
	id := testkit.Nonce(t)
	image := "keyless-test:image-" + id
	start := time.Now()
	// The legacy builder (Debian's docker.io has no buildx; a FROM
	// scratch image needs nothing BuildKit adds), without a network: the
	// context must hold everything.
	build := exec.Command("docker", "build", "-q", "--network", "none", "-t", image, ctx)
	build.Env = append(os.Environ(), "DOCKER_BUILDKIT=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("docker build: %v\n%s", err, out)
	}
	t.Cleanup(func() { dockerQuiet("rmi", "-f", image) })
	t.Logf("docker build: %s", time.Since(start).Round(time.Millisecond))

	// The image's configuration: the non-root user, the entry point and
	// the labels from the plan.
	var cfg struct {
		User       string
		Entrypoint []string
		Cmd        []string
		Labels     map[string]string
	}
	if err := json.Unmarshal([]byte(docker(t, nil, "image", "inspect", "-f", "{{json .Config}}", image)), &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.User != imageUser {
		t.Errorf("Config.User = %q, want %q", cfg.User, imageUser)
	}
	if strings.Join(cfg.Entrypoint, " ") != "/usr/bin/keyless" || strings.Join(cfg.Cmd, " ") != "--help" {
		t.Errorf("entrypoint %q, cmd %q", cfg.Entrypoint, cfg.Cmd)
	}
	for k, v := range map[string]string{
		"org.opencontainers.image.version":  p.Version,
		"org.opencontainers.image.revision": p.Commit,
		"org.opencontainers.image.created":  "2026-11-27T10:00:00Z",
		"org.opencontainers.image.source":   "https://github.com/keyless-dev/keyless",
	} {
		if cfg.Labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, cfg.Labels[k], v)
		}
	}

	// keyless version in the image says the stamped version and commit.
	var v struct{ Version, Commit, Platform string }
	out := docker(t, nil, "run", "--rm", "--network", "none", image, "version", "--json")
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("keyless version --json in the image printed %q: %v", out, err)
	}
	if v.Version != p.Version || v.Commit != p.Commit || v.Platform != "linux/amd64" {
		t.Errorf("keyless version --json in the image: %+v, want %s %s linux/amd64", v, p.Version, p.Commit)
	}
	if out := docker(t, nil, "run", "--rm", image, "version"); !strings.HasPrefix(out, "keyless "+p.Version+"\ncommit "+p.Commit+"\n") {
		t.Errorf("keyless version in the image printed %q", out)
	}
	if out := docker(t, nil, "run", "--rm", image); !strings.Contains(out, "Usage:") {
		t.Errorf("the image's default command printed %q, want the help", out)
	}

	// A CA in a named volume on the state directory, which Docker fills
	// from the image (owner and mode included). The password is generated
	// into the volume and never leaves it.
	vol := "keyless-test-state-" + id
	t.Cleanup(func() { dockerQuiet("volume", "rm", "-f", vol) })
	mount := vol + ":/var/lib/keyless"
	const (
		caDir    = "/var/lib/keyless/ca"
		password = "/var/lib/keyless/ca-password"
		subject  = "image-test-runner"
	)
	docker(t, nil, "run", "--rm", "-v", mount, image, "ca", "init", "--name", "Image Test CA",
		"--dns", "127.0.0.1", "--dns", "localhost", "--address", ":9000",
		"--provisioner", "runners", "--allow", subject,
		"--password-file", password, "--generate-password", "--dir", caDir)
	fingerprint := strings.TrimSpace(docker(t, nil, "run", "--rm", "-v", mount, image, "ca", "fingerprint", "--dir", caDir))
	checkVolumeOwner(t, vol)

	ca := "keyless-test-ca-" + id
	t.Cleanup(func() {
		if t.Failed() {
			logs, _ := exec.Command("docker", "logs", ca).CombinedOutput()
			t.Logf("the CA container's log:\n%s", logs)
		}
		dockerQuiet("rm", "-f", ca)
	})
	// Hardened as a deployment should run it: nothing writable but the
	// volume, no capabilities, no privilege gain.
	docker(t, nil, "run", "-d", "--name", ca, "-v", mount, "-p", "127.0.0.1::9000",
		"--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges", image,
		"ca", "serve", "--dir", caDir, "--password-file", password)
	hostPort := strings.TrimSpace(strings.SplitN(docker(t, nil, "port", ca, "9000/tcp"), "\n", 2)[0])
	caURL := "https://" + hostPort

	// On the host: bootstrap trust by the fingerprint, once the CA
	// answers (Docker's proxy accepts before the CA listens).
	home := t.TempDir()
	env := append(os.Environ(), "HOME="+home, "XDG_CONFIG_HOME="+filepath.Join(home, "config"))
	var bootstrapOut []byte
	testkit.WaitFor(t, 60*time.Second, "keyless bootstrap against the CA in the container", func() (bool, string) {
		if running := strings.TrimSpace(docker(t, nil, "inspect", "-f", "{{.State.Running}}", ca)); running != "true" {
			t.Fatalf("the CA container stopped")
		}
		cmd := exec.Command(bin, "bootstrap", "--ca-url", caURL, "--fingerprint", fingerprint)
		cmd.Env = env
		var err error
		bootstrapOut, err = cmd.CombinedOutput()
		return err == nil, string(bootstrapOut)
	})

	// A one-time token minted in the CA's container goes through a pipe
	// to keyless certificate on the host, never to a file or a command line.
	token := docker(t, nil, "exec", ca, "keyless", "ca", "token", subject, "--dir", caDir, "--password-file", password)
	certDir := t.TempDir()
	crt, key := filepath.Join(certDir, "runner.crt"), filepath.Join(certDir, "runner.key")
	cmd := exec.Command(bin, "certificate", subject, crt, key, "--token-file", "-")
	cmd.Env, cmd.Stdin = env, strings.NewReader(token)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("keyless certificate from the CA in the container: %v\n%s", err, out)
	}

	// The certificate chains to the root bootstrap pinned, for client auth.
	roots := x509.NewCertPool()
	for _, c := range readCerts(t, filepath.Join(home, "config", "keyless", "root_ca.crt")) {
		roots.AddCert(c)
	}
	chain := readCerts(t, crt)
	if len(chain) != 2 {
		t.Fatalf("%s holds %d certificates, want the leaf and the intermediate", crt, len(chain))
	}
	inter := x509.NewCertPool()
	inter.AddCert(chain[1])
	if _, err := chain[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("the certificate does not chain to the CA's root: %v", err)
	}
	if chain[0].Subject.CommonName != subject {
		t.Errorf("subject %q, want %q", chain[0].Subject.CommonName, subject)
	}
	t.Logf("image test: %s in all", time.Since(start).Round(time.Millisecond))
}

// checkVolumeOwner checks, from the host, that the CA in the volume was
// written by the image's user and not by root: keyless has no command
// that prints its uid, and scratch has no id.
func checkVolumeOwner(t *testing.T, vol string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Logf("not root: the volume's files are not checked for their owner (Config.User is)")
		return
	}
	dir := strings.TrimSpace(docker(t, nil, "volume", "inspect", "-f", "{{.Mountpoint}}", vol))
	for name, mode := range map[string]os.FileMode{
		".":                      os.ModeDir | 0o700,
		"ca-password":            0o600,
		"ca/config/ca.yaml":      0o600,
		"ca/secrets/root_ca_key": 0o600,
		"ca/certs/root_ca.crt":   0o644,
	} {
		fi, err := os.Lstat(filepath.Join(dir, name))
		if err != nil {
			t.Error(err)
			continue
		}
		st := fi.Sys().(*syscall.Stat_t)
		if got := fmt.Sprintf("%d:%d", st.Uid, st.Gid); got != imageUser || fi.Mode() != mode {
			t.Errorf("%s in the volume: owner %s, mode %v; want %s, %v", name, got, fi.Mode(), imageUser, mode)
		}
	}
}

// docker runs a docker command and returns its standard output, failing
// t with its standard error.
func docker(t *testing.T, stdin *strings.Reader, args ...string) string {
	t.Helper()
	cmd := exec.Command("docker", args...)
	if stdin != nil {
		cmd.Stdin = stdin
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("docker %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(stderr.Bytes()))
	}
	return string(out)
}

// dockerQuiet runs a clean-up docker command, whose failure matters not.
func dockerQuiet(args ...string) { _ = exec.Command("docker", args...).Run() }

func readFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func readCerts(t *testing.T, name string) []*x509.Certificate {
	t.Helper()
	rest := readFile(t, name)
	var certs []*x509.Certificate
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return certs
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		certs = append(certs, c)
	}
}
