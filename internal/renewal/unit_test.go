package renewal_test

import (
	"context"
	"flag"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/keyless-dev/keyless/internal/ca/catest"
	"github.com/keyless-dev/keyless/internal/enroll"
	"github.com/keyless-dev/keyless/internal/renewal"
	"github.com/keyless-dev/keyless/internal/svcunit"
	"github.com/keyless-dev/keyless/internal/svcunit/svcunittest"
)

var update = flag.Bool("update", false, "rewrite the samples in docs/renewal.md from the generator")

// snapshot is every file and directory under root, with what a write
// would change.
func snapshot(t *testing.T, root string) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		files[path] = info.Mode().String() + " " + info.ModTime().String()
		if !d.IsDir() {
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			files[path] += " " + string(data)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// TestUnitCoversEveryWrite renews a certificate whose key, root and
// certificate live in separate directories, with HOME and TMPDIR inside
// the watched tree too, and checks that everything the renewal created,
// changed or removed lies in a directory the unit makes writable, as
// systemd reads the unit.
func TestUnitCoversEveryWrite(t *testing.T) {
	ctx := context.Background()
	c := catest.Start(t, catest.Options{})
	root := t.TempDir()
	for _, d := range []string{"certs", "keys", "trust", "home", "tmp"} {
		if err := os.Mkdir(filepath.Join(root, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	crt, key := filepath.Join(root, "certs", "runner.crt"), filepath.Join(root, "keys", "runner.key")
	e := enroll.Enroller{Client: c.Client(t)}
	if _, err := e.Enroll(ctx, enroll.Request{Subject: "gitlab-runner", CertPath: crt, KeyPath: key, Token: c.Token(t, 0, "gitlab-runner")}); err != nil {
		t.Fatal(err)
	}
	rootFile := filepath.Join(root, "trust", "root_ca.crt")
	if err := os.WriteFile(rootFile, []byte("root"), 0o644); err != nil {
		t.Fatal(err)
	}
	tmp := os.TempDir()
	t.Setenv("HOME", filepath.Join(root, "home"))
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(root, "home"))
	t.Setenv("XDG_CACHE_HOME", filepath.Join(root, "home"))
	t.Setenv("TMPDIR", filepath.Join(root, "tmp"))

	before := snapshot(t, root)
	rn, err := renewal.New(renewal.Config{Client: c.Client(t), CertPath: crt, KeyPath: key})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if res, err := rn.Once(ctx, true); err != nil || !res.Renewed {
			t.Fatalf("renewing: %+v %v", res, err)
		}
	}
	after := snapshot(t, root)
	var changed []string
	for p, v := range after {
		if before[p] != v {
			changed = append(changed, p)
		}
	}
	for p := range before {
		if _, ok := after[p]; !ok {
			changed = append(changed, p)
		}
	}
	if len(changed) == 0 {
		t.Fatal("renewal changed nothing")
	}

	t.Setenv("TMPDIR", tmp) // where systemd's test mode, unprivileged, can read the unit
	// The unit, for the same layout under /srv (systemd hides /tmp from
	// the service, so the generator refuses it).
	const srv = "/srv/keyless-test"
	moved := func(p string) string { return srv + strings.TrimPrefix(p, root) }
	u := renewal.Unit{Executable: "/bin/true", CertPath: moved(crt), KeyPath: moved(key), CAURL: "https://ca.example:9000", RootFile: moved(rootFile)}
	svc, err := u.Service(svcunit.Systemd)
	if err != nil {
		t.Fatal(err)
	}
	text, err := svcunit.Render(svcunit.Systemd, svc)
	if err != nil {
		t.Fatal(err)
	}
	path := svcunittest.WriteUnit(t, svc.Name, text)
	writable := strings.Fields(svcunittest.Parse(t, path).Settings["ReadWritePaths"])
	if len(writable) == 0 {
		t.Fatalf("systemd reads no ReadWritePaths in\n%s", text)
	}
	for _, p := range changed {
		// A changed directory had entries created, renamed or removed in
		// it; a changed file was written in its directory.
		dir := p
		if !strings.HasPrefix(after[p]+before[p], "d") {
			dir = filepath.Dir(p)
		}
		dir = moved(dir)
		ok := false
		for _, w := range writable {
			if dir == w || strings.HasPrefix(dir, w+"/") {
				ok = true
			}
		}
		if !ok {
			t.Errorf("renewal wrote in %s (%s), which the unit leaves read-only (ReadWritePaths %q)", dir, p, writable)
		}
	}
	if want := []string{srv + "/certs"}; !cmp.Equal(writable, want) {
		t.Errorf("ReadWritePaths %q, want only %q: renewal writes nowhere else", writable, want)
	}
}

// TestUnit: the renewal daemon's service, in both formats, as systemd and
// plistlib read it; its sandbox; its default user.
func TestUnit(t *testing.T) {
	u := renewal.Unit{
		Executable: "/bin/true",
		CertPath:   "/srv/key less/100%/runner.crt", KeyPath: "/srv/$HOME/runner.key",
		CAURL: "https://10.0.0.5:9000", RootFile: `/srv/a&b<c>/it's "root".crt`,
		Exec: `systemctl reload "gitlab-runner" && echo $PATH 100%`,
		Log:  []string{"--log-format", "json"},
	}
	want := []string{"/bin/true", "renew", u.CertPath, u.KeyPath, "--daemon", "--ca-url", u.CAURL, "--root", u.RootFile, "--exec", u.Exec, "--log-format", "json"}

	svc, err := u.Service(svcunit.Systemd)
	if err != nil {
		t.Fatal(err)
	}
	if svc.User != renewal.DefaultUser || !svc.Notify || !svc.ReloadOnHUP {
		t.Errorf("service %+v: want user %s, Type=notify, reload on SIGHUP", svc, renewal.DefaultUser)
	}
	if want := []netip.Prefix{netip.MustParsePrefix("10.0.0.5/32")}; !cmp.Equal(svc.IPAddressAllow, want, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })) {
		t.Errorf("IPAddressAllow %v, want %v", svc.IPAddressAllow, want)
	}
	text, err := svcunit.Render(svcunit.Systemd, svc)
	if err != nil {
		t.Fatal(err)
	}
	path := svcunittest.WriteUnit(t, svc.Name, text)
	svcunittest.Verify(t, path)
	got := svcunittest.Parse(t, path)
	if start := got.Exec["ExecStart"]; len(start) != 1 {
		t.Fatalf("ExecStart %q", start)
	} else if argv, err := svcunittest.Args(start[0]); err != nil {
		t.Error(err)
	} else if diff := cmp.Diff(want, argv); diff != "" {
		t.Errorf("ExecStart as systemd reads it (-want +got):\n%s\n%s", diff, text)
	}
	for k, v := range map[string]string{"Type": "notify", "User": "keyless", "ReadWritePaths": "/srv/key less/100%", "ProtectHome": "yes"} {
		if got.Settings[k] != v {
			t.Errorf("%s: systemd read %q, want %q", k, got.Settings[k], v)
		}
	}
	if len(got.Exec["ExecReload"]) != 1 {
		t.Errorf("no ExecReload: systemctl reload would not renew at once")
	}
	if exp := svcunittest.Exposure(t, path); exp > 2.5 {
		t.Errorf("exposure %.1f, want 2.5 or less:\n%s", exp, text)
	}

	svc, err = u.Service(svcunit.Launchd)
	if err != nil {
		t.Fatal(err)
	}
	if svc.User != "" {
		t.Errorf("launchd user %q, want root by default", svc.User)
	}
	plist, err := svcunit.Render(svcunit.Launchd, svc)
	if err != nil {
		t.Fatal(err)
	}
	var args []string
	raw, _ := svcunittest.Plist(t, plist)["ProgramArguments"].([]any)
	for _, a := range raw {
		s, _ := a.(string)
		args = append(args, s)
	}
	if diff := cmp.Diff(want, args); diff != "" {
		t.Errorf("ProgramArguments (-want +got):\n%s\n%s", diff, plist)
	}
}

func TestUnitChoices(t *testing.T) {
	base := renewal.Unit{Executable: "/usr/local/bin/keyless", CertPath: "/etc/keyless/runner.crt", KeyPath: "/etc/keyless/runner.key", RootFile: "/etc/keyless/root_ca.crt"}
	for _, tc := range []struct {
		name, caURL string
		want        []string
	}{
		{"IPv4", "https://10.0.0.5:9000", []string{"10.0.0.5/32"}},
		{"IPv6", "https://[fd00::5]:9000", []string{"fd00::5/128"}},
		{"IPv6 with a zone", "https://[fe80::5%25eth0]:9000", []string{"fe80::5/128"}},
		{"IPv4-mapped", "https://[::ffff:10.0.0.5]:9000", []string{"10.0.0.5/32"}},
		{"a name", "https://ca.example:9000", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := base
			u.CAURL = tc.caURL
			svc, err := u.Service(svcunit.Systemd)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, p := range svc.IPAddressAllow {
				got = append(got, p.String())
			}
			if !cmp.Equal(got, tc.want) {
				t.Errorf("IPAddressAllow %q, want %q", got, tc.want)
			}
		})
	}

	// root's home is closed to the service's user.
	u := base
	u.CAURL, u.RootFile = "https://10.0.0.5:9000", "/root/.config/keyless/root_ca.crt"
	if _, err := u.Service(svcunit.Systemd); err == nil || !strings.Contains(err.Error(), "cannot read") {
		t.Errorf("root file in /root for user keyless: %v", err)
	}
	for _, user := range []string{"root"} {
		u.User = user
		if _, err := u.Service(svcunit.Systemd); err != nil {
			t.Errorf("as %s: %v", user, err)
		}
	}
	u.User = ""
	if _, err := u.Service(svcunit.Launchd); err != nil {
		t.Errorf("launchd runs as root by default: %v", err)
	}
}

// TestDocsShowTheGeneratedUnits keeps docs/renewal.md's samples equal to
// what keyless prints; go test -run TestDocs -update rewrites them.
func TestDocsShowTheGeneratedUnits(t *testing.T) {
	u := renewal.Unit{Executable: "/usr/local/bin/keyless", CertPath: "/etc/keyless/runner.crt", KeyPath: "/etc/keyless/runner.key",
		CAURL: "https://10.0.0.5:9000", RootFile: "/etc/keyless/root_ca.crt"}
	docPath := filepath.Join("..", "..", "docs", "renewal.md")
	data, err := os.ReadFile(docPath)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	for _, s := range []struct {
		format svcunit.Format
		fence  string
	}{{svcunit.Systemd, "ini"}, {svcunit.Launchd, "xml"}} {
		svc, err := u.Service(s.format)
		if err != nil {
			t.Fatal(err)
		}
		text, err := svcunit.Render(s.format, svc)
		if err != nil {
			t.Fatal(err)
		}
		// The first block of that language after the section's heading.
		re := regexp.MustCompile("(?s)(\n## " + string(s.format) + "\n.*?```" + s.fence + "\n)(.*?)(```\n)")
		m := re.FindStringSubmatchIndex(doc)
		if m == nil {
			t.Fatalf("%s: no ```%s block under ## %s", docPath, s.fence, s.format)
		}
		if got := doc[m[4]:m[5]]; got != text {
			if !*update {
				t.Errorf("%s's %s sample is not what keyless prints (go test ./internal/renewal -run TestDocs -update):\n%s", docPath, s.format, cmp.Diff(text, got))
			}
			doc = doc[:m[4]] + text + doc[m[5]:]
		}
	}
	if *update {
		if err := os.WriteFile(docPath, []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
