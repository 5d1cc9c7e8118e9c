package release_test

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyless-dev/keyless/internal/testkit"
	"github.com/keyless-dev/keyless/interop/release"
)

// The version every test release is stamped with.
const testVersion = "v1.2.3"

// cleanups run after every test, for what the shared releases made
// (worktrees registered in the repository, temporary directories).
var cleanups []func()

func TestMain(m *testing.M) {
	code := m.Run()
	for i := len(cleanups) - 1; i >= 0; i-- {
		cleanups[i]()
	}
	os.Exit(code)
}

// checkouts are two `git worktree add --detach` copies of HEAD in
// unrelated temporary directories, and the release command built once.
type checkouts struct {
	root, head, epoch string // the repository, its HEAD and HEAD's committer time (unix)
	base              string // the temporary directory everything lives in
	tool              string // the built interop/release/cmd/release
	a, b              string // the two worktrees
}

var (
	setupOnce sync.Once
	setup     checkouts
	setupErr  error
	setupSkip string
)

// needCheckouts returns the shared checkouts, making them on first use.
func needCheckouts(t *testing.T) checkouts {
	t.Helper()
	setupOnce.Do(func() { setup, setupSkip, setupErr = makeCheckouts() })
	if setupSkip != "" {
		testkit.Unavailable(t, "%s", setupSkip)
	}
	if setupErr != nil {
		t.Fatal(setupErr)
	}
	return setup
}

func makeCheckouts() (c checkouts, skip string, err error) {
	if _, err := exec.LookPath("git"); err != nil {
		return c, "git not found on PATH; install Debian's git", nil
	}
	out := func(dir string, name string, args ...string) (string, error) {
		cmd := exec.Command(name, args...)
		cmd.Dir = dir
		b, err := cmd.CombinedOutput()
		if err != nil {
			return "", fmt.Errorf("%s %s: %v\n%s", name, strings.Join(args, " "), err, b)
		}
		return strings.TrimSpace(string(b)), nil
	}
	if c.root, err = out(".", "git", "rev-parse", "--show-toplevel"); err != nil {
		return c, fmt.Sprintf("these tests build releases from git worktrees of this checkout, and it is not one: %v", err), nil
	}
	if c.head, err = out(c.root, "git", "rev-parse", "HEAD"); err != nil {
		return c, "", err
	}
	if c.epoch, err = out(c.root, "git", "log", "-1", "--format=%ct", "HEAD"); err != nil {
		return c, "", err
	}
	if c.base, err = os.MkdirTemp("", "keyless-release-test-"); err != nil {
		return c, "", err
	}
	cleanups = append(cleanups, func() { os.RemoveAll(c.base) })
	c.tool = filepath.Join(c.base, "release")
	if _, err := out(".", "go", "build", "-o", c.tool, "./cmd/release"); err != nil {
		return c, "", err
	}
	// Different names and depths, so nothing path-dependent can hide.
	c.a = filepath.Join(c.base, "a", "keyless")
	c.b = filepath.Join(c.base, "elsewhere", "deeper", "checkout")
	for _, wt := range []string{c.a, c.b} {
		if _, err := out(c.root, "git", "worktree", "add", "--detach", "-q", wt, c.head); err != nil {
			return c, "", err
		}
		cleanups = append(cleanups, func() {
			exec.Command("git", "-C", c.root, "worktree", "remove", "--force", wt).Run()
		})
	}
	return c, "", nil
}

// result is one run of the release command.
type result struct {
	code           int
	stdout, stderr string
	took           time.Duration
}

// runRelease runs the release command in dir with args; env adds to the
// environment (SOURCE_DATE_EPOCH is removed, so the commit time counts).
func runRelease(t *testing.T, c checkouts, dir string, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(c.tool, args...)
	cmd.Dir = dir
	cmd.Env = append(withoutEpoch(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String(), took: time.Since(start)}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("running release %s: %v", strings.Join(args, " "), err)
	}
	return r
}

// releases are the full releases the tests share: every target built in
// checkout a and in checkout b, and linux-amd64 built again in b with an
// empty build cache.
type releases struct {
	checkouts
	distA, distB, distCold string
	tookA, tookB, tookCold time.Duration
	imageCold              string // --image-context of the cold run
	stdoutCold             string
}

var (
	releasesOnce sync.Once
	shared       releases
	sharedErr    error
)

func needReleases(t *testing.T) releases {
	t.Helper()
	c := needCheckouts(t)
	releasesOnce.Do(func() {
		r := releases{checkouts: c, distA: filepath.Join(c.a, "dist"), distB: filepath.Join(c.b, "dist"), distCold: filepath.Join(c.base, "cold", "dist"),
			imageCold: filepath.Join(c.base, "cold", "image")}
		var discard string
		for _, run := range []struct {
			dir    string
			env    []string
			took   *time.Duration
			stdout *string
			args   []string
		}{
			{c.a, nil, &r.tookA, &discard, []string{testVersion}},
			{filepath.Join(c.b, "internal"), nil, &r.tookB, &discard, []string{testVersion}}, // any directory of the checkout
			{c.b, []string{"GOCACHE=" + filepath.Join(c.base, "cold", "gocache")}, &r.tookCold, &r.stdoutCold,
				[]string{"--dist", r.distCold, "--only-targets", "linux-amd64", "--image-context", r.imageCold, testVersion}},
		} {
			res := runRelease(t, c, run.dir, run.env, run.args...)
			if res.code != 0 {
				sharedErr = fmt.Errorf("release %s in %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(run.args, " "), run.dir, res.code, res.stdout, res.stderr)
				return
			}
			*run.took, *run.stdout = res.took, res.stdout
		}
		shared = r
	})
	if sharedErr != nil {
		t.Fatal(sharedErr)
	}
	return shared
}

func readDir(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		files[e.Name()] = b
	}
	return files
}

// Issue 17's first criterion: two builds of the same commit from
// different directories give identical files, and an empty build cache
// changes nothing.
func TestReproducible(t *testing.T) {
	r := needReleases(t)
	t.Logf("release of %d targets: %v in checkout a, %v in checkout b (same build cache); linux-amd64 alone with an empty GOCACHE: %v",
		len(release.Targets), r.tookA.Round(time.Second), r.tookB.Round(time.Second), r.tookCold.Round(time.Second))
	a, b := readDir(t, r.distA), readDir(t, r.distB)
	if !slices.Equal(sortedKeys(a), sortedKeys(b)) {
		t.Fatalf("dist trees differ in names:\n a: %v\n b: %v", sortedKeys(a), sortedKeys(b))
	}
	for name := range a {
		if !bytes.Equal(a[name], b[name]) {
			t.Errorf("%s differs between the checkouts in %s and %s", name, r.a, r.b)
		}
	}
	p := release.Plan{Version: testVersion}
	want := []string{release.SumsName, "keyless.rb"}
	for _, tg := range release.Targets {
		want = append(want, release.ArchiveName(p, tg), release.SBOMName(p, tg))
	}
	for _, n := range want {
		if _, ok := a[n]; !ok {
			t.Errorf("dist lacks %s; it has %v", n, sortedKeys(a))
		}
	}

	cold := readDir(t, r.distCold)
	lin := release.Target{GOOS: "linux", GOARCH: "amd64"}
	amd64 := release.PackageArchs[0]
	coldWant := []string{release.ArchiveName(p, lin), release.SBOMName(p, lin), release.DebName(p, amd64), release.RPMName(p, amd64)}
	for _, n := range coldWant {
		if !bytes.Equal(cold[n], a[n]) {
			t.Errorf("%s built with an empty GOCACHE differs from the one built with the shared cache", n)
		}
	}
	// --only-targets linux-amd64: that target's files and SHA256SUMS, no
	// other package, and no formula (it needs four archives).
	if got, want := sortedKeys(cold), slices.Sorted(slices.Values(append(coldWant, "SHA256SUMS"))); !slices.Equal(got, want) {
		t.Errorf("--only-targets linux-amd64 made %v, want %v", got, want)
	}
	// Nothing of the staging is left beside dist.
	for _, dir := range []string{filepath.Dir(r.distA), filepath.Dir(r.distCold)} {
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if strings.Contains(e.Name(), ".tmp-") || strings.Contains(e.Name(), ".old-") {
				t.Errorf("%s left in %s", e.Name(), dir)
			}
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// Every artefact listed in SHA256SUMS verifies, with keyless's Verify and
// with coreutils' sha256sum, and every other file of dist is listed.
func TestSHA256SUMS(t *testing.T) {
	r := needReleases(t)
	for _, dist := range []string{r.distA, r.distCold} {
		if err := release.Verify(dist); err != nil {
			t.Error(err)
		}
		b, err := os.ReadFile(filepath.Join(dist, release.SumsName))
		if err != nil {
			t.Fatal(err)
		}
		sums, err := release.ParseSums(b)
		if err != nil {
			t.Fatal(err)
		}
		files := readDir(t, dist)
		delete(files, release.SumsName)
		if !slices.Equal(sortedKeys(sums), sortedKeys(files)) {
			t.Errorf("SHA256SUMS lists %v, dist holds %v", sortedKeys(sums), sortedKeys(files))
		}
		if _, err := exec.LookPath("sha256sum"); err != nil {
			testkit.Unavailable(t, "sha256sum not found on PATH; install Debian's coreutils")
		}
		cmd := exec.Command("sha256sum", "--strict", "-c", release.SumsName)
		cmd.Dir = dist
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("sha256sum -c in %s: %v\n%s", dist, err, out)
		}
	}
}

// unpack returns the files of an archive, by name, in archive order, and
// checks that its headers carry nothing of the build machine.
func unpack(t *testing.T, path string, epoch time.Time) (names []string, files map[string][]byte) {
	t.Helper()
	files = map[string][]byte{}
	wantMode := func(name string) os.FileMode {
		if strings.HasPrefix(name, "keyless") {
			return 0o755
		}
		return 0o644
	}
	if strings.HasSuffix(path, ".zip") {
		zr, err := zip.OpenReader(path)
		if err != nil {
			t.Fatal(err)
		}
		defer zr.Close()
		for _, f := range zr.File {
			if !f.Modified.Equal(epoch) || f.Mode().Perm() != wantMode(f.Name) || f.Mode()&os.ModeType != 0 {
				t.Errorf("%s: %s has time %v mode %v, want %v and %v", path, f.Name, f.Modified, f.Mode(), epoch, wantMode(f.Name))
			}
			rc, err := f.Open()
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(rc)
			rc.Close()
			if err != nil {
				t.Fatal(err)
			}
			names = append(names, f.Name)
			files[f.Name] = b
		}
		return names, files
	}
	fh, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	zr, err := gzip.NewReader(fh)
	if err != nil {
		t.Fatal(err)
	}
	if zr.Name != "" || !zr.ModTime.IsZero() || zr.OS != 255 {
		t.Errorf("%s: gzip header name %q time %v OS %d, want none, none, 255", path, zr.Name, zr.ModTime, zr.OS)
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag != tar.TypeReg || !h.ModTime.Equal(epoch) || h.Uid != 0 || h.Gid != 0 || h.Uname != "root" || h.Gname != "root" || os.FileMode(h.Mode) != wantMode(h.Name) {
			t.Errorf("%s: %s is type %c time %v owner %d/%d %s/%s mode %o; want a regular file, %v, 0/0 root/root, %o",
				path, h.Name, h.Typeflag, h.ModTime, h.Uid, h.Gid, h.Uname, h.Gname, h.Mode, epoch, wantMode(h.Name))
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
		files[h.Name] = b
	}
	return names, files
}

// unpackBinary unpacks target's binary from the release in dist into a
// temporary file and returns its path.
func unpackBinary(t *testing.T, r releases, dist string, tg release.Target) string {
	t.Helper()
	epoch := epochOf(t, r)
	_, files := unpack(t, filepath.Join(dist, release.ArchiveName(release.Plan{Version: testVersion}, tg)), epoch)
	b, ok := files[tg.Exe()]
	if !ok {
		t.Fatalf("%s archive has no %s", tg, tg.Exe())
	}
	path := filepath.Join(t.TempDir(), tg.Exe())
	if err := os.WriteFile(path, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

func epochOf(t *testing.T, c releases) time.Time {
	var sec int64
	if _, err := fmt.Sscan(c.epoch, &sec); err != nil {
		t.Fatalf("commit time %q: %v", c.epoch, err)
	}
	return time.Unix(sec, 0).UTC()
}

// Each archive holds the binary, README.md (and LICENSE when the
// checkout has one), sorted, owned by root, dated at the commit.
func TestArchiveLayout(t *testing.T) {
	r := needReleases(t)
	readme, err := os.ReadFile(filepath.Join(r.a, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, licErr := os.Stat(filepath.Join(r.a, "LICENSE"))
	for _, tg := range release.Targets {
		names, files := unpack(t, filepath.Join(r.distA, release.ArchiveName(release.Plan{Version: testVersion}, tg)), epochOf(t, r))
		want := []string{"README.md", tg.Exe()}
		if licErr == nil {
			want = append(want, "LICENSE")
		}
		slices.Sort(want)
		if !slices.Equal(names, want) {
			t.Errorf("%s archive holds %v, want %v in that order", tg, names, want)
		}
		if !bytes.Equal(files["README.md"], readme) {
			t.Errorf("%s archive's README.md is not the checkout's", tg)
		}
	}
}

// The binaries are what their platforms load: `file` names each format.
func TestBinaryFormats(t *testing.T) {
	r := needReleases(t)
	if _, err := exec.LookPath("file"); err != nil {
		testkit.Unavailable(t, "file not found on PATH; install Debian's file")
	}
	want := map[string][]string{
		"linux-amd64":   {"ELF 64-bit LSB executable", "x86-64", "statically linked"},
		"linux-arm64":   {"ELF 64-bit LSB executable", "ARM aarch64", "statically linked"},
		"linux-armv7":   {"ELF 32-bit LSB executable", "ARM", "EABI5", "statically linked"},
		"darwin-arm64":  {"Mach-O 64-bit", "arm64"},
		"darwin-amd64":  {"Mach-O 64-bit", "x86_64"},
		"windows-amd64": {"PE32+ executable", "x86-64"},
	}
	for _, tg := range release.Targets {
		out, err := exec.Command("file", "-b", unpackBinary(t, r, r.distA, tg)).CombinedOutput()
		if err != nil {
			t.Fatalf("file: %v\n%s", err, out)
		}
		for _, w := range want[tg.String()] {
			if !strings.Contains(string(out), w) {
				t.Errorf("file says the %s binary is %q; want it to say %q", tg, strings.TrimSpace(string(out)), w)
			}
		}
		if strings.Contains(string(out), "not stripped") || strings.Contains(string(out), "with debug_info") {
			t.Errorf("the %s binary is not stripped (-s -w): %s", tg, out)
		}
	}
}

// The linux binaries run (amd64 natively, arm64 under Debian's
// qemu-aarch64-static called directly) and say the stamped version and
// commit.
func TestBinariesRun(t *testing.T) {
	r := needReleases(t)
	check := func(t *testing.T, out []byte, err error, platform string) {
		t.Helper()
		if err != nil {
			t.Fatalf("keyless version: %v\n%s", err, out)
		}
		for _, w := range []string{"keyless " + testVersion + "\n", "commit " + r.head + "\n", platform} {
			if !strings.Contains(string(out), w) {
				t.Errorf("keyless version said\n%s\nwant %q in it", out, w)
			}
		}
	}
	t.Run("linux-amd64", func(t *testing.T) {
		bin := unpackBinary(t, r, r.distA, release.Target{GOOS: "linux", GOARCH: "amd64"})
		out, err := exec.Command(bin, "version").CombinedOutput()
		check(t, out, err, "linux/amd64")
	})
	t.Run("linux-arm64 under qemu-aarch64-static", func(t *testing.T) {
		qemu, err := exec.LookPath("qemu-aarch64-static")
		if err != nil {
			testkit.Unavailable(t, "qemu-aarch64-static not found on PATH; install Debian's qemu-user-static")
		}
		bin := unpackBinary(t, r, r.distA, release.Target{GOOS: "linux", GOARCH: "arm64"})
		out, err := exec.Command(qemu, bin, "version").CombinedOutput()
		check(t, out, err, "linux/arm64")
	})
}

// goVersionM parses `go version -m BIN`: the Go version, the main module
// path, and every linked module as path@version with its h1 sum (a
// replaced module counts as its replacement).
func goVersionM(t *testing.T, bin string) (goVersion, mainPath string, mods map[string]string) {
	t.Helper()
	out, err := exec.Command("go", "version", "-m", bin).CombinedOutput()
	if err != nil {
		t.Fatalf("go version -m: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	_, goVersion, _ = strings.Cut(lines[0], ": ")
	mods = map[string]string{}
	var last string
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		switch {
		case len(f) >= 2 && f[0] == "mod":
			mainPath = f[1]
		case len(f) >= 3 && f[0] == "dep":
			last = f[1] + "@" + f[2]
			mods[last] = ""
			if len(f) >= 4 {
				mods[last] = f[3]
			}
		case len(f) >= 3 && f[0] == "=>":
			delete(mods, last)
			mods[f[1]+"@"+f[2]] = ""
			if len(f) >= 4 {
				mods[f[1]+"@"+f[2]] = f[3]
			}
		}
	}
	return goVersion, mainPath, mods
}

type bom struct {
	BOMFormat, SpecVersion, SerialNumber string
	Version                              int
	Metadata                             struct {
		Timestamp string
		Component component
	}
	Components []component
}

type component struct {
	Type, Name, Version, PURL string
	BOMRef                    string `json:"bom-ref"`
	Properties                []struct{ Name, Value string }
}

func (c component) prop(name string) string {
	for _, p := range c.Properties {
		if p.Name == name {
			return p.Value
		}
	}
	return ""
}

// The SBOM lists exactly the modules `go version -m` finds in the binary,
// with their versions, purls and h1 sums, plus the main module and the
// standard library, with a commit-derived serial and time.
func TestSBOMMatchesBinary(t *testing.T) {
	r := needReleases(t)
	serials := map[string]bool{}
	for _, tg := range release.Targets {
		t.Run(tg.String(), func(t *testing.T) {
			bin := unpackBinary(t, r, r.distA, tg)
			goVersion, mainPath, mods := goVersionM(t, bin)
			raw, err := os.ReadFile(filepath.Join(r.distA, release.SBOMName(release.Plan{Version: testVersion}, tg)))
			if err != nil {
				t.Fatal(err)
			}
			var b bom
			dec := json.NewDecoder(bytes.NewReader(raw))
			if err := dec.Decode(&b); err != nil {
				t.Fatal(err)
			}
			if b.BOMFormat != "CycloneDX" || b.SpecVersion != "1.5" || b.Version != 1 {
				t.Errorf("bomFormat %q specVersion %q version %d, want CycloneDX 1.5, 1", b.BOMFormat, b.SpecVersion, b.Version)
			}
			if !regexp.MustCompile(`^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`).MatchString(b.SerialNumber) || serials[b.SerialNumber] {
				t.Errorf("serialNumber %q: want a name-based (v5) urn:uuid, different for each SBOM", b.SerialNumber)
			}
			serials[b.SerialNumber] = true
			if want := epochOf(t, r).Format(time.RFC3339); b.Metadata.Timestamp != want {
				t.Errorf("timestamp %q, want the commit time %q", b.Metadata.Timestamp, want)
			}
			m := b.Metadata.Component
			if m.Name != "keyless" || m.Version != testVersion || m.PURL != "pkg:golang/"+mainPath+"@"+testVersion || m.Type != "application" {
				t.Errorf("metadata.component = %+v, want keyless %s, purl pkg:golang/%s@%s", m, testVersion, mainPath, testVersion)
			}
			if got := m.prop("golang:build:GOOS") + "/" + m.prop("golang:build:GOARCH"); got != tg.GOOS+"/"+tg.GOARCH {
				t.Errorf("build properties say %s, want %s/%s", got, tg.GOOS, tg.GOARCH)
			}
			got := map[string]string{}
			for _, c := range b.Components {
				if c.Name == "std" {
					if c.Version != goVersion || c.PURL != "pkg:golang/std@"+goVersion {
						t.Errorf("std component %+v, want version %s (go version -m's)", c, goVersion)
					}
					continue
				}
				if c.PURL != "pkg:golang/"+c.Name+"@"+strings.ReplaceAll(c.Version, "+", "%2B") || c.Type != "library" {
					t.Errorf("component %s@%s has purl %q type %q", c.Name, c.Version, c.PURL, c.Type)
				}
				got[c.Name+"@"+c.Version] = c.prop(release.PropModuleSum)
			}
			if len(mods) == 0 {
				t.Fatalf("go version -m listed no modules in %s", bin)
			}
			for mod, sum := range mods {
				if gs, ok := got[mod]; !ok {
					t.Errorf("the SBOM lacks %s, which go version -m lists", mod)
				} else if gs != sum {
					t.Errorf("%s: SBOM sum %q, go version -m %q", mod, gs, sum)
				}
			}
			for mod := range got {
				if _, ok := mods[mod]; !ok {
					t.Errorf("the SBOM lists %s, which go version -m does not", mod)
				}
			}
			if t.Failed() {
				t.Logf("SBOM:\n%s", raw)
			}
		})
	}
}

// Mistakes in how release is called exit 2 with a message that names the
// mistake and the fix, and leave no dist behind.
func TestBadInput(t *testing.T) {
	c := needCheckouts(t)
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"no v", []string{"1.2.3"}, []string{"VERSION", "use v1.2.3"}},
		{"two numbers", []string{"v1.2"}, []string{"VERSION", "vMAJOR.MINOR.PATCH"}},
		{"build metadata", []string{"v1.2.3+meta"}, []string{"VERSION", "build metadata"}},
		{"no VERSION", nil, []string{"exactly one argument, VERSION"}},
		{"two arguments", []string{"v1.2.3", "v1.2.4"}, []string{"exactly one argument, VERSION"}},
		{"unknown flag", []string{"--fast", "v1.2.3"}, []string{"flag provided but not defined: -fast", "usage: release"}},
		{"unknown target", []string{"--only-targets", "linux-arm", testVersion}, []string{"--only-targets", `unknown target "linux-arm"`, "linux-armv7"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dist := filepath.Join(t.TempDir(), "dist")
			res := runRelease(t, c, c.a, nil, append([]string{"--dist", dist}, tc.args...)...)
			if res.code != 2 {
				t.Errorf("exit %d, want 2\nstderr:\n%s", res.code, res.stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(res.stderr, w) {
					t.Errorf("stderr\n%s\nwant %q in it", res.stderr, w)
				}
			}
			if _, err := os.Stat(dist); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("a refused release left %s: %v", dist, err)
			}
		})
	}

	t.Run("dirty checkout", func(t *testing.T) {
		dirt := filepath.Join(c.a, "internal", "uncommitted.go")
		write(t, dirt, "package internal\n")
		t.Cleanup(func() { os.Remove(dirt) })
		parent := t.TempDir()
		dist := filepath.Join(parent, "dist")
		res := runRelease(t, c, c.a, nil, "--dist", dist, "--only-targets", "linux-amd64", testVersion)
		if res.code != 2 || !strings.Contains(res.stderr, "uncommitted changes") || !strings.Contains(res.stderr, "internal/uncommitted.go") || !strings.Contains(res.stderr, "--allow-dirty") {
			t.Errorf("release on a dirty checkout: exit %d, stderr\n%s\nwant 2, naming the file and --allow-dirty", res.code, res.stderr)
		}
		if entries, _ := os.ReadDir(parent); len(entries) != 0 {
			t.Errorf("a refused release left %v in %s", entries, parent)
		}
		// --allow-dirty builds, and the binary says it is not the commit.
		res = runRelease(t, c, c.a, nil, "--allow-dirty", "--dist", dist, "--only-targets", "linux-amd64", testVersion)
		if res.code != 0 {
			t.Fatalf("release --allow-dirty: exit %d\n%s", res.code, res.stderr)
		}
		bin := unpackBinary(t, releases{checkouts: c}, dist, release.Target{GOOS: "linux", GOARCH: "amd64"})
		out, err := exec.Command(bin, "version").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "commit "+c.head+"-dirty\n") {
			t.Errorf("keyless version of a dirty build: %v\n%s\nwant commit %s-dirty", err, out, c.head)
		}
	})

	t.Run("image context without linux-amd64", func(t *testing.T) {
		parent := t.TempDir()
		res := runRelease(t, c, c.a, nil, "--dist", filepath.Join(parent, "dist"), "--image-context", filepath.Join(parent, "image"), "--only-targets", "linux-arm64", testVersion)
		if res.code != 2 || !strings.Contains(res.stderr, "--image-context") || !strings.Contains(res.stderr, "linux-amd64") {
			t.Errorf("--image-context with --only-targets linux-arm64: exit %d, stderr\n%s\nwant 2 naming --image-context and linux-amd64", res.code, res.stderr)
		}
		if entries, _ := os.ReadDir(parent); len(entries) != 0 {
			t.Errorf("a refused release left %v in %s", entries, parent)
		}
	})

	t.Run("image context not empty", func(t *testing.T) {
		parent := t.TempDir()
		write(t, filepath.Join(parent, "image", "old"), "x")
		res := runRelease(t, c, c.a, nil, "--dist", filepath.Join(parent, "dist"), "--image-context", filepath.Join(parent, "image"), "--only-targets", "linux-amd64", testVersion)
		if res.code != 2 || !strings.Contains(res.stderr, "not empty") || !strings.Contains(res.stderr, "old") {
			t.Errorf("--image-context over a directory holding old: exit %d, stderr\n%s\nwant 2 saying it is not empty", res.code, res.stderr)
		}
	})

	// --force never replaces the checkout, even through a symlink.
	t.Run("dist through a symlink to the checkout", func(t *testing.T) {
		link := filepath.Join(t.TempDir(), "link")
		if err := os.Symlink(filepath.Dir(c.a), link); err != nil {
			t.Fatal(err)
		}
		res := runRelease(t, c, c.a, nil, "--dist", filepath.Join(link, filepath.Base(c.a)), "--force", "--only-targets", "linux-amd64", testVersion)
		if res.code != 2 || !strings.Contains(res.stderr, "contains the checkout") {
			t.Errorf("--dist <symlink>/checkout --force: exit %d, stderr\n%s\nwant 2, refusing", res.code, res.stderr)
		}
		if _, err := os.Stat(filepath.Join(c.a, "go.mod")); err != nil {
			t.Errorf("the checkout after the refusal: %v", err)
		}
	})

	t.Run("dist with someone's files", func(t *testing.T) {
		dist := filepath.Join(t.TempDir(), "dist")
		write(t, filepath.Join(dist, "notes.txt"), "mine")
		res := runRelease(t, c, c.a, nil, "--dist", dist, "--only-targets", "linux-amd64", testVersion)
		if res.code != 2 || !strings.Contains(res.stderr, "notes.txt") || !strings.Contains(res.stderr, "--force") {
			t.Errorf("release into a dist with notes.txt: exit %d, stderr\n%s\nwant 2 naming notes.txt and --force", res.code, res.stderr)
		}
		if b, err := os.ReadFile(filepath.Join(dist, "notes.txt")); err != nil || string(b) != "mine" {
			t.Errorf("notes.txt after the refusal: %q, %v", b, err)
		}
	})
}

// The SBOMs are valid CycloneDX 1.5 by the official JSON schema
// (testdata/cyclonedx), checked with Debian's python3-jsonschema; a
// broken copy is refused, so the check is not vacuous.
func TestSBOMSchema(t *testing.T) {
	r := needReleases(t)
	const python = "/usr/bin/python3"
	if err := exec.Command(python, "-c", "import jsonschema").Run(); err != nil {
		testkit.Unavailable(t, "%s cannot import jsonschema (%v); install Debian's python3-jsonschema", python, err)
	}
	var files []string
	for _, tg := range release.Targets {
		files = append(files, filepath.Join(r.distA, release.SBOMName(release.Plan{Version: testVersion}, tg)))
	}
	validate := func(files ...string) ([]byte, error) {
		return exec.Command(python, append([]string{filepath.Join("testdata", "cyclonedx", "validate.py")}, files...)...).CombinedOutput()
	}
	if out, err := validate(files...); err != nil {
		t.Errorf("validating the SBOMs against CycloneDX 1.5: %v\n%s", err, out)
	}

	raw, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	broken := filepath.Join(t.TempDir(), "broken.cdx.json")
	write(t, broken, strings.Replace(string(raw), `"type": "library"`, `"type": "toolchain"`, 1))
	if out, err := validate(broken); err == nil || !strings.Contains(string(out), "toolchain") {
		t.Errorf("the validator accepted a component of type toolchain: %v\n%s", err, out)
	}
}

// --help explains the command with an example, on stdout, exit 0.
func TestHelp(t *testing.T) {
	c := needCheckouts(t)
	res := runRelease(t, c, c.a, nil, "--help")
	if res.code != 0 || res.stderr != "" {
		t.Errorf("release --help: exit %d, stderr %q; want 0 and nothing", res.code, res.stderr)
	}
	for _, w := range []string{"usage: release", "Example:", "scripts/release v1.2.3", "-only-targets", "linux-armv7", "-allow-dirty", "-force", "-dist", "-image-context"} {
		if !strings.Contains(res.stdout, w) {
			t.Errorf("release --help says\n%s\nwant %q in it", res.stdout, w)
		}
	}
}
