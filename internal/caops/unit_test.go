package caops_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/keyless-dev/keyless/internal/caops"
	"github.com/keyless-dev/keyless/internal/svcunit"
	"github.com/keyless-dev/keyless/internal/svcunit/svcunittest"
)

func TestUnit(t *testing.T) {
	dir, err := os.MkdirTemp("", "ca-unit-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	exe := filepath.Join(dir, "keyless")
	if err := os.WriteFile(exe, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, address, db string
		caps              []string
		writes            []string
	}{
		{"port above 1024", ":9000", "", nil, []string{"/var/lib/keyless/ca/db"}},
		{"no address", "", "", nil, []string{"/var/lib/keyless/ca/db"}},
		{"port 443", "10.0.0.5:443", "", []string{"CAP_NET_BIND_SERVICE"}, []string{"/var/lib/keyless/ca/db"}},
		{"database elsewhere", ":9000", "/srv/ca-db/keyless.db", nil, []string{"/srv/ca-db"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := caops.Unit{Executable: exe, Dir: "/var/lib/keyless/ca", PasswordFile: "/etc/keyless/ca-password", Address: tc.address, DB: tc.db}
			s, err := u.Service(svcunit.Systemd)
			if err != nil {
				t.Fatal(err)
			}
			want := svcunit.Service{Name: "keyless-ca", Label: "dev.keyless.ca", Description: "keyless ca: the private CA in /var/lib/keyless/ca",
				Command: []string{exe, "ca", "serve", "--dir", "/var/lib/keyless/ca", "--password-file", "/etc/keyless/ca-password"},
				User:    caops.DefaultUser, WritePaths: tc.writes, ReadPaths: []string{"/var/lib/keyless/ca", "/etc/keyless/ca-password"},
				Notify: true, ReloadOnHUP: true, LogFile: "/var/log/keyless-ca.log", Capabilities: tc.caps}
			if diff := cmp.Diff(want, s); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			unit, err := svcunit.Render(svcunit.Systemd, s)
			if err != nil {
				t.Fatal(err)
			}
			path := svcunittest.WriteUnit(t, s.Name, unit)
			svcunittest.Verify(t, path)
			limit := 2.5
			if len(tc.caps) > 0 {
				limit = 3.5
			}
			if got := svcunittest.Exposure(t, path); got > limit {
				t.Errorf("exposure %.1f, want %.1f or less:\n%s", got, limit, unit)
			}
			// launchd: no capabilities to give, and root unless told.
			l, err := u.Service(svcunit.Launchd)
			if err != nil {
				t.Fatal(err)
			}
			if l.User != "" || l.Capabilities != nil {
				t.Errorf("launchd: user %q, capabilities %q", l.User, l.Capabilities)
			}
			if _, err := svcunit.Render(svcunit.Launchd, l); err != nil {
				t.Error(err)
			}
		})
	}
	u := caops.Unit{Executable: "/usr/local/bin/keyless", Dir: "/root/ca", PasswordFile: "/etc/keyless/ca-password"}
	if _, err := u.Service(svcunit.Systemd); err == nil || !strings.Contains(err.Error(), "root's home directory, which user keyless-ca cannot read") {
		t.Errorf("a CA in /root for user keyless-ca: %v", err)
	}
	u.User = "root"
	if _, err := u.Service(svcunit.Systemd); err != nil {
		t.Errorf("a CA in /root for root: %v", err)
	}
}
