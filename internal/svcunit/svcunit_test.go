package svcunit_test

import (
	"encoding/xml"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/keyless-dev/keyless/internal/svcunit"
	"github.com/keyless-dev/keyless/internal/svcunit/svcunittest"
)

// awkward are arguments a shell, systemd or XML would each read
// differently from what was meant.
var awkward = []string{
	"plain", "with space", `dou"ble`, "it's", `back\slash`, `trailing\`, "100%", "%n%h%%", "$HOME", "${HOME}", "$$", "$",
	";", "a;b", "", "&amp;", "<b>", "]]>", "<!-- x -->", "--force", "--", "-", "é 日本", "`id`", "a  b",
}

// awkwardDirs are directories with the same troubles.
var awkwardDirs = []string{
	"/srv/with space", `/srv/dou"ble`, "/srv/it's", `/srv/back\slash`, "/srv/100%", "/srv/%n", "/srv/$HOME", "/srv/a&b<c>", "/srv/é",
}

// program makes an executable at an awkward path (systemd refuses
// quotes and backslashes there; everything else must work).
func program(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "bin dir %n $HOME & <x> ;")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "keyless")
	if err := os.WriteFile(path, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

func service(prog string) svcunit.Service {
	return svcunit.Service{
		Name:        "keyless-test",
		Label:       "dev.keyless.test",
		Description: `keyless: a 100% "awkward" test & <check>`,
		Command:     append([]string{prog, "renew"}, awkward...),
		User:        "keyless",
		WritePaths:  awkwardDirs,
		ReadPaths:   []string{"/etc/keyless/root_ca.crt"},
		Notify:      true,
		ReloadOnHUP: true,
		LogFile:     "/var/log/keyless test.log",
	}
}

// TestSystemdAsSystemdReadsIt loads the unit into systemd itself and
// expects every argument, path and value back exactly as described.
func TestSystemdAsSystemdReadsIt(t *testing.T) {
	prog := program(t)
	for _, tc := range []struct {
		name string
		edit func(*svcunit.Service)
		home string
	}{
		{"awkward", func(*svcunit.Service) {}, "yes"},
		{"root", func(s *svcunit.Service) { s.User = "" }, "yes"},
		{"home", func(s *svcunit.Service) { s.WritePaths = append(s.WritePaths, "/home/runner/keyless certs") }, "read-only"},
		{"reads from home", func(s *svcunit.Service) { s.ReadPaths = []string{"/root/ca.crt"} }, "read-only"},
		{"simple", func(s *svcunit.Service) { s.Notify, s.ReloadOnHUP = false, false }, "yes"},
		{"privileged pre-start", privileged(prog), "yes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := service(prog)
			tc.edit(&s)
			unit, err := svcunit.Render(svcunit.Systemd, s)
			if err != nil {
				t.Fatal(err)
			}
			path := svcunittest.WriteUnit(t, s.Name, unit)
			svcunittest.Verify(t, path)
			got := svcunittest.Parse(t, path)
			start := got.Exec["ExecStart"]
			if len(start) != 1 {
				t.Fatalf("ExecStart: %q\n%s", start, unit)
			}
			argv, err := svcunittest.Args(start[0])
			if err != nil {
				t.Fatalf("%v\n%s", err, unit)
			}
			if diff := cmp.Diff(s.Command, argv); diff != "" {
				t.Errorf("the program systemd would start (-want +got):\n%s\n%s", diff, unit)
			}
			want := map[string]string{
				"Description":    s.Description,
				"ReadWritePaths": strings.Join(s.WritePaths, " "),
				"ProtectHome":    tc.home,
				"ProtectSystem":  "strict",
				"UMask":          "0077",
				"Type":           "notify",
				"User":           s.User,
			}
			if !s.Notify {
				want["Type"] = "exec"
			}
			for k, v := range want {
				if got.Settings[k] != v {
					t.Errorf("%s: systemd read %q, want %q", k, got.Settings[k], v)
				}
			}
			pre := got.Exec["ExecStartPre"]
			if len(s.PreStart) == 0 && len(pre) != 0 {
				t.Errorf("ExecStartPre nobody asked for: %q", pre)
			}
			if len(s.PreStart) > 0 {
				if len(pre) != 1 {
					t.Fatalf("ExecStartPre: %q\n%s", pre, unit)
				}
				argv, err := svcunittest.Args(pre[0])
				if err != nil {
					t.Fatalf("%v\n%s", err, unit)
				}
				if diff := cmp.Diff(s.PreStart, argv); diff != "" {
					t.Errorf("the pre-start program systemd would run (-want +got):\n%s\n%s", diff, unit)
				}
				// systemd's dump does not show the prefix: the line must.
				if !strings.Contains(unit, "\nExecStartPre=\"+") && !strings.Contains(unit, "\nExecStartPre=+") {
					t.Errorf("the pre-start command does not run with full privileges (+):\n%s", unit)
				}
			}
			privateUsers, caps := "yes", ""
			if len(s.Capabilities) > 0 || len(s.Groups) > 0 {
				privateUsers = "no"
			}
			if len(s.Capabilities) > 0 {
				caps = strings.ToLower(strings.Join(s.Capabilities, " "))
			}
			for k, v := range map[string]string{
				"PrivateUsers": privateUsers, "AmbientCapabilities": caps, "CapabilityBoundingSet": caps,
				"RuntimeDirectory": s.RuntimeDirectory, "SupplementaryGroups": strings.Join(s.Groups, " "),
			} {
				if got.Settings[k] != v {
					t.Errorf("%s: systemd read %q, want %q\n%s", k, got.Settings[k], v, unit)
				}
			}
			if reload := got.Exec["ExecReload"]; s.ReloadOnHUP != (len(reload) == 1) {
				t.Errorf("ReloadOnHUP %v, ExecReload %q", s.ReloadOnHUP, reload)
			} else if s.ReloadOnHUP && strings.Join(reload[0], " ") != "/bin/kill -HUP $MAINPID" {
				t.Errorf("ExecReload: %q", reload[0])
			}
		})
	}
}

// privileged makes s a service like the agent: a privileged pre-start
// command with awkward arguments, a capability, a runtime directory, a
// group and netlink.
func privileged(prog string) func(*svcunit.Service) {
	return func(s *svcunit.Service) {
		s.PreStart = append([]string{prog, "agent", "setup-network"}, awkward...)
		s.Capabilities = []string{"CAP_NET_BIND_SERVICE"}
		s.RuntimeDirectory = "keyless"
		s.Groups = []string{"gitlab-runner"}
		s.ReadsInterfaces = true
	}
}

// TestSystemdPrivileges: each privilege is in the unit exactly when the
// service asks for it, and nothing else changes with it.
func TestSystemdPrivileges(t *testing.T) {
	for _, tc := range []struct {
		name       string
		edit       func(*svcunit.Service)
		has, lacks []string
	}{
		{"none", func(*svcunit.Service) {},
			[]string{"\nPrivateUsers=yes\n", "\nCapabilityBoundingSet=\n", "\nAmbientCapabilities=\n", "\nRestrictAddressFamilies=AF_UNIX AF_INET AF_INET6\n"},
			[]string{"ExecStartPre", "RuntimeDirectory", "SupplementaryGroups", "AF_NETLINK", "@chown"}},
		{"pre-start", func(s *svcunit.Service) { s.PreStart = []string{"/usr/local/bin/keyless", "agent", "setup-network"} },
			[]string{"\nExecStartPre=+/usr/local/bin/keyless agent setup-network\n", "\nPrivateUsers=yes\n", "\nCapabilityBoundingSet=\n"},
			nil},
		{"capability", func(s *svcunit.Service) { s.Capabilities = []string{"CAP_NET_BIND_SERVICE"} },
			[]string{"\nCapabilityBoundingSet=CAP_NET_BIND_SERVICE\n", "\nAmbientCapabilities=CAP_NET_BIND_SERVICE\n"},
			[]string{"PrivateUsers", "@chown"}},
		{"runtime directory", func(s *svcunit.Service) { s.RuntimeDirectory = "keyless" },
			[]string{"\nRuntimeDirectory=keyless\nRuntimeDirectoryMode=0755\n", "\nPrivateUsers=yes\n"},
			nil},
		{"group", func(s *svcunit.Service) { s.Groups = []string{"keyless", "ssl-cert"} },
			[]string{"\nSupplementaryGroups=keyless ssl-cert\n", "\nSystemCallFilter=@chown\n", "\nCapabilityBoundingSet=\n"},
			[]string{"PrivateUsers"}},
		{"interfaces", func(s *svcunit.Service) { s.ReadsInterfaces = true },
			[]string{"\nRestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK\n"},
			nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := service("/usr/local/bin/keyless")
			tc.edit(&s)
			unit, err := svcunit.Render(svcunit.Systemd, s)
			if err != nil {
				t.Fatal(err)
			}
			for _, h := range tc.has {
				if !strings.Contains(unit, h) {
					t.Errorf("no %q in:\n%s", h, unit)
				}
			}
			for _, l := range tc.lacks {
				if strings.Contains(unit, l) {
					t.Errorf("%q in:\n%s", l, unit)
				}
			}
		})
	}
}

// TestSystemdPreStartQuoting: a program path systemd must see quoted
// keeps its + prefix inside the quotes, where systemd looks for it.
func TestSystemdPreStartQuoting(t *testing.T) {
	s := service("/usr/local/bin/keyless")
	s.PreStart = []string{"/opt/key less/keyless", "agent", "setup-network", "--config", "/etc/keyless/a b.yaml"}
	unit, err := svcunit.Render(svcunit.Systemd, s)
	if err != nil {
		t.Fatal(err)
	}
	if want := "\nExecStartPre=\"+/opt/key less/keyless\" agent setup-network --config \"/etc/keyless/a b.yaml\"\n"; !strings.Contains(unit, want) {
		t.Errorf("want %q in:\n%s", want, unit)
	}
}

// TestSystemdExposure holds the sandbox to an exposure of 2.5 or less in
// systemd's own rating, for each kind of service keyless describes.
func TestSystemdExposure(t *testing.T) {
	prog := program(t)
	for _, tc := range []struct {
		name string
		edit func(*svcunit.Service)
	}{
		{"dedicated user", func(*svcunit.Service) {}},
		{"dedicated user, one peer", func(s *svcunit.Service) {
			s.IPAddressAllow = []netip.Prefix{netip.MustParsePrefix("10.0.0.5/32")}
		}},
		{"root", func(s *svcunit.Service) { s.User = "root" }},
		{"home", func(s *svcunit.Service) { s.WritePaths = []string{"/home/runner/keyless"} }},
		{"privileged pre-start, a capability, a group, netlink", privileged(prog)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := service(prog)
			tc.edit(&s)
			unit, err := svcunit.Render(svcunit.Systemd, s)
			if err != nil {
				t.Fatal(err)
			}
			// The pre-start command runs outside the sandbox, which
			// systemd's rating does not count; the service's own
			// privileges it does.
			limit := 2.5
			if len(s.Capabilities) > 0 {
				limit = 3.5
			}
			if got := svcunittest.Exposure(t, svcunittest.WriteUnit(t, s.Name, unit)); got > limit {
				t.Errorf("exposure %.1f, want %.1f or less:\n%s", got, limit, unit)
			}
		})
	}
}

func TestSystemdIPAddressAllow(t *testing.T) {
	s := service("/usr/local/bin/keyless")
	s.IPAddressAllow = []netip.Prefix{netip.MustParsePrefix("10.0.0.5/32"), netip.MustParsePrefix("fd00::/8")}
	unit, err := svcunit.Render(svcunit.Systemd, s)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(unit, "\nIPAddressDeny=any\nIPAddressAllow=10.0.0.5 fd00::/8\n") {
		t.Errorf("no IP allow list:\n%s", unit)
	}
	s.IPAddressAllow = nil
	if unit, _ := svcunit.Render(svcunit.Systemd, s); strings.Contains(unit, "IPAddress") {
		t.Errorf("an IP allow list nobody asked for:\n%s", unit)
	}
}

// TestLaunchdAsPlistlibReadsIt parses the property list with Python's
// plistlib, a strict XML parser, and expects every argument back.
func TestLaunchdAsPlistlibReadsIt(t *testing.T) {
	for _, user := range []string{"", "root", "_keyless"} {
		t.Run("user="+user, func(t *testing.T) {
			s := service("/usr/local/bin/keyless")
			s.Command = append(s.Command, `"'\`)
			s.User = user
			plist, err := svcunit.Render(svcunit.Launchd, s)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(plist, "<!--") {
				t.Errorf("a comment in the property list:\n%s", plist)
			}
			got := svcunittest.Plist(t, plist)
			args := make([]any, len(s.Command))
			for i, a := range s.Command {
				args[i] = a
			}
			want := map[string]any{
				"Label":             s.Label,
				"ProgramArguments":  args,
				"Umask":             float64(0o077),
				"RunAtLoad":         true,
				"KeepAlive":         true,
				"StandardErrorPath": s.LogFile,
			}
			if user == "_keyless" {
				want["UserName"] = user
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("plistlib read (-want +got):\n%s\n%s", diff, plist)
			}
		})
	}
}

// FuzzLaunchdArguments: whatever the arguments, the property list is
// well-formed XML holding exactly them, or Render refuses them.
func FuzzLaunchdArguments(f *testing.F) {
	for _, a := range awkward {
		f.Add(a)
	}
	f.Add("\x00")
	f.Add("\xff")
	f.Fuzz(func(t *testing.T, arg string) {
		s := service("/usr/local/bin/keyless")
		s.Command = []string{s.Command[0], arg}
		plist, err := svcunit.Render(svcunit.Launchd, s)
		if err != nil {
			return
		}
		var doc struct {
			Dict struct {
				Array struct {
					Strings []string `xml:"string"`
				} `xml:"array"`
			} `xml:"dict"`
		}
		if err := xml.Unmarshal([]byte(plist), &doc); err != nil {
			t.Fatalf("not XML: %v\n%s", err, plist)
		}
		if diff := cmp.Diff(s.Command, doc.Dict.Array.Strings); diff != "" {
			t.Errorf("arguments (-want +got):\n%s", diff)
		}
	})
}

func TestRefusals(t *testing.T) {
	for _, tc := range []struct {
		name    string
		formats []svcunit.Format
		edit    func(*svcunit.Service)
		want    string
	}{
		{"newline in an argument", nil, func(s *svcunit.Service) { s.Command = append(s.Command, "a\n[Service]\nExecStartPre=/bin/sh") }, "control character"},
		{"newline in a path", nil, func(s *svcunit.Service) { s.WritePaths = []string{"/srv/a\nb"} }, "control character"},
		{"tab", nil, func(s *svcunit.Service) { s.Description = "a\tb" }, "control character"},
		{"invalid UTF-8", nil, func(s *svcunit.Service) { s.Command = append(s.Command, "\xff") }, "UTF-8"},
		{"relative path", nil, func(s *svcunit.Service) { s.ReadPaths = []string{"runner.key"} }, "absolute"},
		{"unclean path", nil, func(s *svcunit.Service) { s.WritePaths = []string{"/etc/keyless/"} }, "absolute, clean"},
		{"relative program", nil, func(s *svcunit.Service) { s.Command[0] = "keyless" }, "absolute"},
		{"no command", nil, func(s *svcunit.Service) { s.Command = nil }, "no command"},
		{"bad user", nil, func(s *svcunit.Service) { s.User = "a b" }, "user name"},
		{"bad name", nil, func(s *svcunit.Service) { s.Name = "Keyless Renew" }, "service name"},
		{"bad label", nil, func(s *svcunit.Service) { s.Label = "dev/keyless" }, "label"},
		{"quote in the program", []svcunit.Format{svcunit.Systemd}, func(s *svcunit.Service) { s.Command[0] = `/opt/it's/keyless` }, "quote or a backslash"},
		{"backslash in the program", []svcunit.Format{svcunit.Systemd}, func(s *svcunit.Service) { s.Command[0] = `/opt/a\b/keyless` }, "quote or a backslash"},
		{"writes /tmp", []svcunit.Format{svcunit.Systemd}, func(s *svcunit.Service) { s.WritePaths = []string{"/tmp/keyless"} }, "PrivateTmp"},
		{"reads /var/tmp", []svcunit.Format{svcunit.Systemd}, func(s *svcunit.Service) { s.ReadPaths = []string{"/var/tmp/root.crt"} }, "PrivateTmp"},
		{"writes /home itself", []svcunit.Format{svcunit.Systemd}, func(s *svcunit.Service) { s.WritePaths = []string{"/home"} }, "not /home itself"},
		{"trailing backslash", []svcunit.Format{svcunit.Systemd}, func(s *svcunit.Service) { s.Description = `a\` }, "trailing backslash"},
		{"newline in the pre-start command", nil, func(s *svcunit.Service) { s.PreStart = []string{"/usr/local/bin/keyless", "a\nExecStart=/bin/sh"} }, "control character"},
		{"relative pre-start program", nil, func(s *svcunit.Service) { s.PreStart = []string{"keyless", "agent"} }, "absolute"},
		{"quote in the pre-start program", []svcunit.Format{svcunit.Systemd}, func(s *svcunit.Service) { s.PreStart = []string{`/opt/it's/keyless`} }, "quote or a backslash"},
		{"unknown capability", nil, func(s *svcunit.Service) { s.Capabilities = []string{"CAP_NET_BIND_SERVIC"} }, "Linux capability"},
		{"capability in lower case", nil, func(s *svcunit.Service) { s.Capabilities = []string{"cap_net_bind_service"} }, "Linux capability"},
		{"capability with a newline", nil, func(s *svcunit.Service) { s.Capabilities = []string{"CAP_NET_BIND_SERVICE\nExecStartPre=/bin/sh"} }, "Linux capability"},
		{"runtime directory with a slash", nil, func(s *svcunit.Service) { s.RuntimeDirectory = "keyless/agent" }, "one directory name"},
		{"runtime directory ..", nil, func(s *svcunit.Service) { s.RuntimeDirectory = ".." }, "one directory name"},
		{"absolute runtime directory", nil, func(s *svcunit.Service) { s.RuntimeDirectory = "/run/keyless" }, "one directory name"},
		{"runtime directory with a specifier", nil, func(s *svcunit.Service) { s.RuntimeDirectory = "%n" }, "one directory name"},
		{"bad group", nil, func(s *svcunit.Service) { s.Groups = []string{"a b"} }, "group"},
		{"pre-start on launchd", []svcunit.Format{svcunit.Launchd}, func(s *svcunit.Service) { s.PreStart = []string{"/usr/local/bin/keyless"} }, "launchd has nothing that carries"},
		{"capabilities on launchd", []svcunit.Format{svcunit.Launchd}, func(s *svcunit.Service) { s.Capabilities = []string{"CAP_NET_BIND_SERVICE"} }, "launchd has nothing that carries"},
		{"runtime directory on launchd", []svcunit.Format{svcunit.Launchd}, func(s *svcunit.Service) { s.RuntimeDirectory = "keyless" }, "launchd has nothing that carries"},
		{"groups on launchd", []svcunit.Format{svcunit.Launchd}, func(s *svcunit.Service) { s.Groups = []string{"staff"} }, "launchd has nothing that carries"},
	} {
		formats := tc.formats
		if formats == nil {
			formats = []svcunit.Format{svcunit.Systemd, svcunit.Launchd}
		}
		for _, f := range formats {
			t.Run(tc.name+"/"+string(f), func(t *testing.T) {
				s := service("/usr/local/bin/keyless")
				tc.edit(&s)
				out, err := svcunit.Render(f, s)
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Errorf("Render: %v, want an error saying %q\n%s", err, tc.want, out)
				}
			})
		}
	}
}

func TestCheckUserName(t *testing.T) {
	for name, ok := range map[string]bool{
		"keyless": true, "_keyless": true, "gitlab-runner": true, "root": true, "u1": true,
		"": false, "1user": false, "-x": false, "a b": false, "a%n": false, "a$": false, "a.b": false,
		strings.Repeat("a", 32): true, strings.Repeat("a", 33): false,
	} {
		if err := svcunit.CheckUserName(name); (err == nil) != ok {
			t.Errorf("CheckUserName(%q) = %v", name, err)
		}
	}
}

func TestParseFormat(t *testing.T) {
	for _, s := range []string{"systemd", "launchd"} {
		if f, err := svcunit.ParseFormat(s); err != nil || string(f) != s {
			t.Errorf("ParseFormat(%q) = %q, %v", s, f, err)
		}
	}
	if _, err := svcunit.ParseFormat("upstart"); err == nil || !strings.Contains(err.Error(), "want systemd or launchd") {
		t.Errorf("ParseFormat(upstart): %v", err)
	}
}
