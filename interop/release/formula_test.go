package release_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/keyless-dev/keyless/internal/testkit"
	"github.com/keyless-dev/keyless/interop/release"
)

// fakeSums are SHA256SUMS entries for every archive of v1.2.3, each a
// different digest.
func fakeSums() map[string]string {
	sums := map[string]string{}
	for _, name := range []string{
		"keyless_1.2.3_darwin_arm64.tar.gz", "keyless_1.2.3_darwin_amd64.tar.gz",
		"keyless_1.2.3_linux_arm64.tar.gz", "keyless_1.2.3_linux_amd64.tar.gz",
		"keyless_1.2.3_linux_armv7.tar.gz", "keyless_1.2.3_windows_amd64.zip",
		"keyless_1.2.3_amd64.deb",
	} {
		h := sha256.Sum256([]byte(name))
		sums[name] = hex.EncodeToString(h[:])
	}
	return sums
}

// TestFormula renders the formula from fake checksums, checks it with
// Ruby's parser, and loads it in Ruby with a stand-in for Homebrew's DSL
// (testdata/brewstub.rb) to see, for each OS and CPU, the archive and
// checksum Homebrew would pick, what install does, the service and the
// test.
func TestFormula(t *testing.T) {
	p := release.Plan{Version: "v1.2.3", Commit: strings.Repeat("ab", 20)}
	sums := fakeSums()
	rb, err := release.RenderFormula(p, sums)
	if err != nil {
		t.Fatal(err)
	}
	ruby := testkit.LookPath(t, "ruby", "Debian's ruby")
	file := filepath.Join(t.TempDir(), "keyless.rb")
	if err := os.WriteFile(file, rb, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(ruby, "-wc", file).CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != "Syntax OK" {
		t.Fatalf("ruby -wc keyless.rb: %v: %s\n%s", err, out, rb)
	}
	var stderr bytes.Buffer
	cmd := exec.Command(ruby, "-W0", filepath.Join("testdata", "brewstub.rb"), file)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("loading keyless.rb with testdata/brewstub.rb: %v: %s\n%s", err, stderr.Bytes(), rb)
	}
	type service struct {
		Run          []string `json:"run"`
		KeepAlive    bool     `json:"keep_alive"`
		LogPath      string   `json:"log_path"`
		ErrorLogPath string   `json:"error_log_path"`
	}
	type platform struct {
		Desc         string     `json:"desc"`
		Homepage     string     `json:"homepage"`
		License      string     `json:"license"`
		Version      string     `json:"version"`
		URL          []string   `json:"url"`
		SHA256       []string   `json:"sha256"`
		BinInstall   []string   `json:"bin_install"`
		Completions  [][]string `json:"completions"`
		Caveats      string     `json:"caveats"`
		Service      service    `json:"service"`
		TestCommands []string   `json:"test_commands"`
		TestMatches  []string   `json:"test_matches"`
		OS, Arch     string
	}
	var got map[string]platform
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("brewstub printed %q: %v", out, err)
	}
	archives := map[string]string{
		"macos-arm": "darwin_arm64", "macos-intel": "darwin_amd64",
		"linux-arm": "linux_arm64", "linux-intel": "linux_amd64",
	}
	for key, arch := range archives {
		name := "keyless_1.2.3_" + arch + ".tar.gz"
		want := platform{
			Desc:        "Short-lived AWS credentials from X.509 certificates, with no stored AWS keys",
			Homepage:    "https://github.com/keyless-dev/keyless",
			Version:     "1.2.3",
			URL:         []string{"https://github.com/keyless-dev/keyless/releases/download/v1.2.3/" + name},
			SHA256:      []string{sums[name]},
			BinInstall:  []string{"keyless"},
			Completions: [][]string{{"BIN/keyless", "completion"}},
			Service: service{
				Run:       []string{"OPT_BIN/keyless", "agent", "--config", "ETC/keyless/agent.yaml"},
				KeepAlive: true, LogPath: "VAR/log/keyless-agent.log", ErrorLogPath: "VAR/log/keyless-agent.log",
			},
			TestCommands: []string{"BIN/keyless version"},
			TestMatches:  []string{"keyless v1.2.3"},
		}
		g := got[key]
		g.OS, g.Arch = "", ""
		if !strings.Contains(g.Caveats, "ETC/keyless/agent.yaml") || !strings.Contains(g.Caveats, "/blob/v1.2.3/docs/agent.md") {
			t.Errorf("%s: the caveats do not name the agent's configuration: %q", key, g.Caveats)
		}
		g.Caveats = ""
		if diff := cmp.Diff(want, g); diff != "" {
			t.Errorf("%s: what Homebrew would see (-want +got):\n%s", key, diff)
		}
	}
}

// TestFormulaRefusals breaks each check of RenderFormula: a formula must
// never point at an archive it cannot verify.
func TestFormulaRefusals(t *testing.T) {
	p := release.Plan{Version: "v1.2.3"}
	for _, tc := range []struct {
		name    string
		version string
		edit    func(map[string]string)
		want    string
	}{
		{"missing sum", "v1.2.3", func(s map[string]string) { delete(s, "keyless_1.2.3_linux_arm64.tar.gz") },
			"no SHA-256 for keyless_1.2.3_linux_arm64.tar.gz in the checksums"},
		{"short sum", "v1.2.3", func(s map[string]string) { s["keyless_1.2.3_darwin_arm64.tar.gz"] = "abc" },
			`the SHA-256 of keyless_1.2.3_darwin_arm64.tar.gz is "abc", not 64 lower-case hex digits`},
		{"upper-case sum", "v1.2.3", func(s map[string]string) {
			s["keyless_1.2.3_darwin_amd64.tar.gz"] = strings.ToUpper(s["keyless_1.2.3_darwin_amd64.tar.gz"])
		}, "not 64 lower-case hex digits"},
		{"no v", "1.2.3", nil, `VERSION "1.2.3" has no leading v; use v1.2.3`},
		{"quote in version", `v1.2.3-"x`, nil, `VERSION "v1.2.3-\"x": want vMAJOR.MINOR.PATCH`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sums := fakeSums()
			if tc.edit != nil {
				tc.edit(sums)
			}
			q := p
			q.Version = tc.version
			rb, err := release.RenderFormula(q, sums)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want one saying %q", err, tc.want)
			}
			if rb != nil {
				t.Errorf("a formula was rendered anyway")
			}
		})
	}
}
