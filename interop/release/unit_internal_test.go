package release

import "testing"

// The serial numbers are RFC 9562 version 5 UUIDs; the expected values
// are Python's uuid.uuid5 of the same names.
func TestNameUUID(t *testing.T) {
	if got, want := nameUUID(urlNamespace, "https://www.python.org"), "30709ed8-a35e-547c-8ef0-c6bf5e229681"; got != want {
		t.Errorf("uuid5(URL, python.org) = %s, want %s", got, want)
	}
	if got, want := nameUUID(sbomNamespace, "abc/def"), "01ce1803-932d-5eef-8a4e-56e03110b070"; got != want {
		t.Errorf("uuid5(keyless sbom namespace, abc/def) = %s, want %s", got, want)
	}
}

func TestPURL(t *testing.T) {
	for in, want := range map[[2]string]string{
		{"github.com/spf13/cobra", "v1.10.1"}:             "pkg:golang/github.com/spf13/cobra@v1.10.1",
		{"github.com/BurntSushi/toml", "v1.0.0"}:          "pkg:golang/github.com/BurntSushi/toml@v1.0.0",
		{"example.com/m", "v2.0.0+incompatible"}:          "pkg:golang/example.com/m@v2.0.0%2Bincompatible",
		{"std", "go1.26.8"}:                               "pkg:golang/std@go1.26.8",
		{"golang.org/x/sys", "v0.0.0-20260101000000-abc"}: "pkg:golang/golang.org/x/sys@v0.0.0-20260101000000-abc",
	} {
		if got := purl(in[0], in[1]); got != want {
			t.Errorf("purl(%q, %q) = %q, want %q", in[0], in[1], got, want)
		}
	}
}
