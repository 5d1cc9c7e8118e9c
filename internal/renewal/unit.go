package renewal

import (
	"fmt"
	"path/filepath"
	"strings"
)

// Unit describes the service that runs keyless renew --daemon.
type Unit struct {
	// Executable is keyless's path.
	Executable        string
	CertPath, KeyPath string
	// CAURL and RootFile are written into the unit: the service may run
	// without the bootstrapping user's home directory.
	CAURL, RootFile string
	// Exec is the --exec command, if any.
	Exec string
}

// Render writes the service definition for kind: a systemd unit or a
// launchd plist. Paths are made absolute.
func (u Unit) Render(kind string) (string, error) {
	crt := absPath(u.CertPath)
	args := []string{u.Executable, "renew", crt, absPath(u.KeyPath), "--daemon", "--ca-url", u.CAURL, "--root", absPath(u.RootFile)}
	if u.Exec != "" {
		args = append(args, "--exec", u.Exec)
	}
	switch kind {
	case "systemd":
		quoted := make([]string, len(args))
		for i, a := range args {
			quoted[i] = systemdQuote(a)
		}
		return fmt.Sprintf(`# keyless certificate renewal; replaces a timer that runs "step ca renew --force".
# Install: save as /etc/systemd/system/keyless-renew.service, then
#   systemctl daemon-reload && systemctl enable --now keyless-renew
[Unit]
Description=keyless: renew %[1]s before it expires
Wants=network-online.target
After=network-online.target

[Service]
Type=notify
ExecStart=%[2]s
ExecReload=/bin/kill -HUP $MAINPID
Restart=on-failure
RestartSec=30
NoNewPrivileges=yes
ProtectSystem=strict
ReadWritePaths=%[3]s
PrivateTmp=yes

[Install]
WantedBy=multi-user.target
`, crt, strings.Join(quoted, " "), filepath.Dir(crt)), nil
	case "launchd":
		var b strings.Builder
		for _, a := range args {
			fmt.Fprintf(&b, "    <string>%s</string>\n", xmlEscape(a))
		}
		return fmt.Sprintf(`<?xml version="1.0" encoding="UTF-8"?>
<!-- keyless certificate renewal; replaces a 12-hour launchd job running "step ca renew --force".
     Install: save as /Library/LaunchDaemons/dev.keyless.renew.plist, then
       sudo launchctl bootstrap system /Library/LaunchDaemons/dev.keyless.renew.plist -->
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
  <key>Label</key>
  <string>dev.keyless.renew</string>
  <key>ProgramArguments</key>
  <array>
%s  </array>
  <key>RunAtLoad</key>
  <true/>
  <key>KeepAlive</key>
  <true/>
  <key>StandardErrorPath</key>
  <string>/var/log/keyless-renew.log</string>
</dict>
</plist>
`, b.String()), nil
	}
	return "", fmt.Errorf("%q: want systemd or launchd", kind)
}

func absPath(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

func systemdQuote(s string) string {
	if s != "" && !strings.ContainsAny(s, " \t\"'\\$%;") {
		return s
	}
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, `$`, `$$`, `%`, `%%`)
	return `"` + r.Replace(s) + `"`
}

func xmlEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;").Replace(s)
}
