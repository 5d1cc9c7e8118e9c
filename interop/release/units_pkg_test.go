package release

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestUnitsAreDeploys expects each packaged unit to be deploy/systemd's,
// line for line (every sandboxing setting kept), but for the executable
// (/usr/bin/keyless, where the package puts it) and the header comment.
func TestUnitsAreDeploys(t *testing.T) {
	units, err := Units()
	if err != nil {
		t.Fatal(err)
	}
	deployed, _ := filepath.Glob("../../deploy/systemd/*.service")
	if len(deployed) != 3 || len(units) != 3 {
		t.Fatalf("deploy/systemd has %d units, the package %d; want 3 and 3", len(deployed), len(units))
	}
	body := func(s string) string { return s[strings.Index(s, "[Unit]\n"):] }
	for _, path := range deployed {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		name := filepath.Base(path)
		want := strings.ReplaceAll(body(string(b)), "/usr/local/bin/keyless ", BinPath+" ")
		got, ok := units[name]
		if !ok {
			t.Errorf("the package has no %s", name)
			continue
		}
		if body(got) != want {
			t.Errorf("%s differs from deploy/systemd's:\n%s\nwant:\n%s", name, body(got), want)
		}
		if !strings.HasPrefix(got, "# "+name+", installed by the keyless package and not enabled.\n") {
			t.Errorf("%s header:\n%.300s", name, got)
		}
		if strings.Contains(got, "/usr/local") {
			t.Errorf("%s names /usr/local", name)
		}
	}
}
