package release

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"
	"text/template"
)

// ReleaseURL is where a release's artefacts are downloaded from: GitHub's
// release assets, under the tag (the version with its v).
const ReleaseURL = "https://github.com/keyless-dev/keyless/releases/download"

// formulaPlatform is one archive the formula installs. Homebrew runs on
// macOS (arm64, amd64) and on Linux (amd64, arm64: it has no 32-bit ARM
// support, so linux-armv7 has no block).
type formulaPlatform struct {
	OS, Arch     string // Homebrew's on_macos/on_linux, on_arm/on_intel
	GOOS, GOARCH string
	URL, SHA256  string
}

var sha256RE = regexp.MustCompile(`^[0-9a-f]{64}$`)

// FormulaTargets are the archives the formula installs: a release built
// with only some targets (--only-targets) has a formula only when it
// has all of these.
var FormulaTargets = []Target{
	{GOOS: "darwin", GOARCH: "arm64"}, {GOOS: "darwin", GOARCH: "amd64"},
	{GOOS: "linux", GOARCH: "arm64"}, {GOOS: "linux", GOARCH: "amd64"},
}

// RenderFormula renders keyless.rb, the Homebrew formula of release p,
// from sums (archive name to lower-case hex SHA-256, as SHA256SUMS lists
// them). It fails when a platform's archive has no sum or a malformed one:
// a formula must never install an archive it cannot check.
//
// The formula installs the binary and the completions keyless generates
// (keyless completion bash|zsh|fish), runs keyless version as its test,
// and has a service (brew services start keyless) that runs the agent
// with $(brew --prefix)/etc/keyless/agent.yaml. It has no license line
// while the project has no LICENSE file to name.
func RenderFormula(p Plan, sums map[string]string) ([]byte, error) {
	if err := CheckVersion(p.Version); err != nil {
		return nil, fmt.Errorf("formula: %w", err)
	}
	var platforms []formulaPlatform
	for _, t := range FormulaTargets {
		pl := formulaPlatform{OS: "linux", Arch: "intel", GOOS: t.GOOS, GOARCH: t.GOARCH}
		if t.GOOS == "darwin" {
			pl.OS = "macos"
		}
		if t.GOARCH == "arm64" {
			pl.Arch = "arm"
		}
		platforms = append(platforms, pl)
	}
	for i := range platforms {
		pl := &platforms[i]
		name := ArchiveName(p, Target{GOOS: pl.GOOS, GOARCH: pl.GOARCH})
		sum, ok := sums[name]
		if !ok {
			return nil, fmt.Errorf("formula: no SHA-256 for %s in the checksums", name)
		}
		if !sha256RE.MatchString(sum) {
			return nil, fmt.Errorf("formula: the SHA-256 of %s is %q, not 64 lower-case hex digits", name, sum)
		}
		pl.URL = ReleaseURL + "/" + p.Version + "/" + name
		pl.SHA256 = sum
	}
	var b bytes.Buffer
	err := formulaTemplate.Execute(&b, struct {
		Version, Tag string
		Macos, Linux []formulaPlatform
	}{p.VersionNumber(), p.Version, platforms[:2], platforms[2:]})
	if err != nil {
		return nil, fmt.Errorf("formula: %w", err)
	}
	return b.Bytes(), nil
}

// rubyString quotes s as a Ruby string literal without interpolation.
func rubyString(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, `#`, `\#`).Replace(s) + `"`
}

var formulaTemplate = template.Must(template.New("keyless.rb").Funcs(template.FuncMap{"ruby": rubyString}).Parse(`# keyless {{.Tag}}: written by keyless's release tooling (interop/release,
# RenderFormula) from the release's SHA256SUMS; edit the template, not this.
class Keyless < Formula
  desc "Short-lived AWS credentials from X.509 certificates, with no stored AWS keys"
  homepage "https://github.com/keyless-dev/keyless"
  version {{ruby .Version}}

  on_macos do
{{- range .Macos}}
    on_{{.Arch}} do
      url {{ruby .URL}}
      sha256 {{ruby .SHA256}}
    end
{{- end}}
  end

  on_linux do
{{- range .Linux}}
    on_{{.Arch}} do
      url {{ruby .URL}}
      sha256 {{ruby .SHA256}}
    end
{{- end}}
  end

  def install
    bin.install "keyless"
    generate_completions_from_executable(bin/"keyless", "completion")
  end

  def caveats
    <<~EOS
      The service runs the agent with #{etc}/keyless/agent.yaml, which you write
      first: https://github.com/keyless-dev/keyless/blob/{{.Tag}}/docs/agent.md
      On macOS, Docker Desktop's containers cannot reach the host's link-local
      addresses: the agent listens on loopback and a relay container forwards
      to it: https://github.com/keyless-dev/keyless/blob/{{.Tag}}/docs/gitlab.md
    EOS
  end

  service do
    run [opt_bin/"keyless", "agent", "--config", etc/"keyless/agent.yaml"]
    keep_alive true
    log_path var/"log/keyless-agent.log"
    error_log_path var/"log/keyless-agent.log"
  end

  test do
    assert_match "keyless v#{version}", shell_output("#{bin}/keyless version")
  end
end
`))
