package cli_test

import (
	"bytes"
	"encoding/json"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/keyless-dev/keyless/internal/cli"
)

// runKeyless runs keyless in process and returns its exit code and output.
func runKeyless(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = cli.Main(args, strings.NewReader(""), &out, &errOut)
	return code, out.String(), errOut.String()
}

// TestVersionJSON parses keyless version --json as a script would: one
// object with exactly the documented fields, saying what the plain
// output says.
func TestVersionJSON(t *testing.T) {
	code, out, stderr := runKeyless(t, "version", "--json")
	if code != 0 || stderr != "" {
		t.Fatalf("keyless version --json: exit %d, stderr %q", code, stderr)
	}
	if strings.Count(out, "\n") != 1 || !strings.HasSuffix(out, "\n") {
		t.Errorf("keyless version --json printed %q, want one line", out)
	}
	var v struct {
		Version  string `json:"version"`
		Commit   string `json:"commit"`
		Go       string `json:"go"`
		Platform string `json:"platform"`
	}
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("keyless version --json printed %q: %v", out, err)
	}
	if v.Version == "" || v.Commit == "" {
		t.Errorf("version or commit empty in %q", out)
	}
	if v.Go != runtime.Version() || v.Platform != runtime.GOOS+"/"+runtime.GOARCH {
		t.Errorf("go %q, platform %q; want %q, %q", v.Go, v.Platform, runtime.Version(), runtime.GOOS+"/"+runtime.GOARCH)
	}

	// The plain output, unchanged, says the same, and so does --version.
	want := "keyless " + v.Version + "\ncommit " + v.Commit + "\n" + v.Go + " " + v.Platform + "\n"
	for _, args := range [][]string{{"version"}, {"--version"}} {
		code, plain, _ := runKeyless(t, args...)
		if code != 0 {
			t.Fatalf("keyless %v: exit %d", args, code)
		}
		if diff := cmp.Diff(want, plain); diff != "" {
			t.Errorf("keyless %v (-want +got):\n%s", args, diff)
		}
	}
}
