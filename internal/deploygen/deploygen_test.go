package deploygen_test

import (
	"bytes"
	"encoding/xml"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/keyless-dev/keyless/internal/deploygen"
	"github.com/keyless-dev/keyless/internal/svcunit/svcunittest"
)

const deploy = "../../deploy"

// committed reads the committed files of deploy/systemd and
// deploy/launchd, by their path below deploy/.
func committed(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, pattern := range []string{"systemd/*", "launchd/*"} {
		paths, err := filepath.Glob(filepath.Join(deploy, pattern))
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range paths {
			if filepath.Ext(p) == ".md" {
				continue
			}
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			rel, _ := filepath.Rel(deploy, p)
			out[rel] = string(b)
		}
	}
	return out
}

// TestCommittedFilesAreGenerated fails when deploy/ holds other files, or
// other contents, than the generator writes.
func TestCommittedFilesAreGenerated(t *testing.T) {
	want, err := deploygen.Files()
	if err != nil {
		t.Fatal(err)
	}
	if len(want) != 6 {
		t.Errorf("%d files, want a systemd unit and a launchd plist for each of agent, ca and renew", len(want))
	}
	if diff := cmp.Diff(want, committed(t)); diff != "" {
		t.Errorf("deploy/ differs from what the generator writes; run go generate ./internal/deploygen and commit the result (-generated +committed):\n%s", diff)
	}
}

// TestSystemdUnits loads each committed unit into systemd: verify finds
// nothing wrong, the exposure is at most 2.5 (CA, renew) or 3.5 (agent,
// which keeps CAP_NET_BIND_SERVICE for port 80), and only the agent's
// privileged pre-start step may add addresses.
func TestSystemdUnits(t *testing.T) {
	files := committed(t)
	// systemd-analyze verify wants the program to exist: the committed
	// file with only its path changed.
	dir, err := os.MkdirTemp("", "deploy-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(dir, "keyless")
	if err := os.WriteFile(exe, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		limit float64
		user  string
		caps  string
		pre   []string
	}{
		{"keyless-agent", 3.5, deploygen.LinuxUser, "cap_net_bind_service", []string{exe, "agent", "setup-network", "169.254.170.2", "169.254.170.23"}},
		{"keyless-ca", 2.5, deploygen.LinuxCAUser, "", nil},
		{"keyless-renew", 2.5, deploygen.LinuxUser, "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			text, ok := files["systemd/"+tc.name+".service"]
			if !ok {
				t.Fatalf("no deploy/systemd/%s.service", tc.name)
			}
			if n := strings.Count(text, deploygen.Executable); n == 0 {
				t.Fatalf("the unit does not run %s", deploygen.Executable)
			}
			path := svcunittest.WriteUnit(t, tc.name, strings.ReplaceAll(text, deploygen.Executable, exe))
			svcunittest.Verify(t, path)
			if got := svcunittest.Exposure(t, path); got > tc.limit {
				t.Errorf("exposure %.1f, want %.1f or less", got, tc.limit)
			}
			p := svcunittest.Parse(t, path)
			for k, v := range map[string]string{"User": tc.user, "CapabilityBoundingSet": tc.caps, "AmbientCapabilities": tc.caps} {
				if p.Settings[k] != v {
					t.Errorf("%s: systemd read %q, want %q", k, p.Settings[k], v)
				}
			}
			var pre []string
			if got := p.Exec["ExecStartPre"]; len(got) == 1 {
				pre = got[0]
			} else if len(got) > 1 {
				t.Errorf("ExecStartPre: %q", got)
			}
			if diff := cmp.Diff(tc.pre, pre); diff != "" {
				t.Errorf("ExecStartPre (-want +got):\n%s", diff)
			}
			// The pre-start step is privileged (+), and nothing else is.
			if privileged := strings.Contains(text, "\nExecStartPre=+"); privileged != (tc.pre != nil) {
				t.Errorf("a privileged pre-start step: %v, want %v", privileged, tc.pre != nil)
			}
			if strings.Contains(text, "CAP_NET_ADMIN") || strings.Contains(text, "CAP_SYS_ADMIN") {
				t.Error("the daemon holds an administrator's capability")
			}
		})
	}
}

// plistValue is a property-list value, decoded strictly by encoding/xml.
type plistValue struct {
	XMLName xml.Name
	Text    string       `xml:",chardata"`
	Items   []plistValue `xml:",any"`
}

// TestLaunchdPlists parses each committed property list (launchd runs
// only on macOS, so parsing is the check): with Go's XML decoder in its
// strict mode, shaped as a plist, and with Python's plistlib where it
// is installed.
func TestLaunchdPlists(t *testing.T) {
	files := committed(t)
	for _, label := range []string{"dev.keyless.agent", "dev.keyless.ca", "dev.keyless.renew"} {
		t.Run(label, func(t *testing.T) {
			text, ok := files["launchd/"+label+".plist"]
			if !ok {
				t.Fatalf("no deploy/launchd/%s.plist", label)
			}
			d := xml.NewDecoder(strings.NewReader(text))
			d.Strict = true
			var doc plistValue
			if err := d.Decode(&doc); err != nil {
				t.Fatalf("not XML: %v", err)
			}
			for {
				tok, err := d.Token()
				if err == io.EOF {
					break
				}
				if cd, ok := tok.(xml.CharData); err != nil || !ok || len(bytes.TrimSpace(cd)) != 0 {
					t.Fatalf("something after the plist: %v %v", tok, err)
				}
			}
			if doc.XMLName.Local != "plist" || len(doc.Items) != 1 || doc.Items[0].XMLName.Local != "dict" {
				t.Fatalf("not a plist holding one dict: %+v", doc)
			}
			dict := doc.Items[0].Items
			keys := map[string]plistValue{}
			for i := 0; i < len(dict); i += 2 {
				if dict[i].XMLName.Local != "key" || i+1 == len(dict) {
					t.Fatalf("the dict does not alternate key and value at %d", i)
				}
				keys[dict[i].Text] = dict[i+1]
			}
			user := deploygen.MacOSUser
			if label == "dev.keyless.ca" {
				user = deploygen.MacOSCAUser
			}
			if keys["Label"].Text != label || keys["UserName"].Text != user {
				t.Errorf("Label %q, UserName %q", keys["Label"].Text, keys["UserName"].Text)
			}
			var args []string
			for _, a := range keys["ProgramArguments"].Items {
				args = append(args, a.Text)
			}
			if len(args) < 2 || args[0] != deploygen.Executable {
				t.Errorf("ProgramArguments %q", args)
			}
			if slices.Contains(args, "setup-network") || slices.Contains(args, "--setup-network") {
				t.Errorf("ProgramArguments %q: macOS cannot add the link-local addresses", args)
			}
			if !bytes.Contains([]byte(text), []byte("<key>KeepAlive</key>\n  <true/>")) {
				t.Error("launchd would not restart it")
			}
			// plistlib, as launchd's own parser is not available here.
			got := svcunittest.Plist(t, text)
			if got["Label"] != label {
				t.Errorf("plistlib: Label %v", got["Label"])
			}
		})
	}
}
