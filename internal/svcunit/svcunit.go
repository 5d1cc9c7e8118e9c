// Package svcunit writes the service definitions keyless prints for its
// daemons, a systemd unit or a launchd property list, from one
// description of the service: its command line, the user it runs as, the
// paths it reads and writes, whether it speaks sd_notify and reloads on
// SIGHUP.
//
// The systemd unit is sandboxed: it runs as an unprivileged user with no
// capabilities (or only those it declares, such as CAP_NET_BIND_SERVICE),
// sees the system read-only and can write only the directories the
// service declares, has a system call filter, and may open only unix and
// IP sockets (and netlink, to list interfaces, when it says so).
// `systemd-analyze security` rates it about 1 on its scale of 10 (the
// tests hold it to 2.5 or less, and 3.5 with a capability). A step that
// needs more privilege, such as adding host addresses, is a separate
// pre-start command run as root outside the sandbox (ExecStartPre=+), so
// the long-running process never holds it.
//
// Every value is escaped for the format that carries it, and a value a
// format cannot carry faithfully (a control character, an executable
// path systemd refuses, a file the sandbox would hide) is an error, never
// a silently different file. Neither format puts user data in comments.
//
// It is a domain package: the use cases describe their service
// (renewal.Unit, caops.Unit, agent.Unit), internal/cli prints it for
// --print-unit, and internal/deploygen writes the files in deploy/.
package svcunit

import (
	"encoding/xml"
	"fmt"
	"net/netip"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"
)

// Format is a kind of service definition.
type Format string

// Formats.
const (
	Systemd Format = "systemd" // a systemd service unit
	Launchd Format = "launchd" // a launchd property list (macOS)
)

// ParseFormat parses "systemd" or "launchd".
func ParseFormat(s string) (Format, error) {
	switch f := Format(s); f {
	case Systemd, Launchd:
		return f, nil
	}
	return "", fmt.Errorf("%q: want systemd or launchd", s)
}

// Service describes a long-running keyless command for a service manager.
type Service struct {
	// Name names the systemd unit (Name.service): lowercase letters,
	// digits and dashes.
	Name string
	// Label is the launchd job's label, such as dev.keyless.renew.
	Label string
	// Description is the unit's one-line description.
	Description string
	// Command is the command line; Command[0] is an absolute path.
	Command []string
	// User runs the service; empty or "root" means root. See
	// CheckUserName.
	User string
	// WritePaths are the directories the service writes, absolute. In
	// the systemd unit they are the only writable places (ReadWritePaths=).
	WritePaths []string
	// ReadPaths are the files it reads besides its executable and the
	// system's, absolute: the sandbox must leave them visible.
	ReadPaths []string
	// Notify: the service tells systemd when it is ready (sd_notify
	// READY=1), so the unit is Type=notify.
	Notify bool
	// ReloadOnHUP: SIGHUP makes the service act at once, and
	// `systemctl reload` sends it.
	ReloadOnHUP bool
	// IPAddressAllow, if not empty, are the only IP addresses the
	// service may talk to (systemd's IPAddressAllow=, with
	// IPAddressDeny=any).
	IPAddressAllow []netip.Prefix
	// LogFile is where launchd sends the service's standard error;
	// systemd sends it to the journal.
	LogFile string

	// The settings below are systemd's only: launchd has nothing that
	// carries them, so a launchd Render refuses a Service that sets
	// them.

	// PreStart, if not empty, is a command run to completion before the
	// service starts, as root and outside the sandbox (ExecStartPre=+):
	// the one step that needs a privilege the service itself must not
	// hold. PreStart[0] is an absolute path.
	PreStart []string
	// Capabilities are the only capabilities the service holds
	// (AmbientCapabilities= and CapabilityBoundingSet=), such as
	// CAP_NET_BIND_SERVICE for a port below 1024; empty means none.
	// A service with capabilities runs without PrivateUsers=: in a user
	// namespace of its own they would not reach the host's network.
	Capabilities []string
	// RuntimeDirectory is a directory below /run that systemd makes for
	// the service, owned by its user, and removes when it stops
	// (RuntimeDirectory=): "keyless" is /run/keyless. One path
	// component.
	RuntimeDirectory string
	// Groups are supplementary groups of the service's user
	// (SupplementaryGroups=), such as the group a socket it makes is
	// handed to. A service with groups runs without PrivateUsers=,
	// whose user namespace maps no group but the user's own.
	Groups []string
	// ReadsInterfaces: the service lists the host's interfaces and
	// their addresses, which Go does over netlink (AF_NETLINK, which
	// is read-only without CAP_NET_ADMIN).
	ReadsInterfaces bool
}

// Render writes s as a service definition in format f.
func Render(f Format, s Service) (string, error) {
	switch f {
	case Systemd:
		return s.systemd()
	case Launchd:
		return s.launchd()
	}
	return "", fmt.Errorf("format %q: want systemd or launchd", f)
}

// The patterns are compiled on first use: every keyless command links
// this package, and only unit-writing commands use them. (Static values,
// not sync.OnceValue closures made in package init.)
var (
	nameRE  = lazyRegexp{expr: `^[a-z0-9][a-z0-9-]*$`}
	labelRE = lazyRegexp{expr: `^[A-Za-z0-9][A-Za-z0-9.-]*$`}
	userRE  = lazyRegexp{expr: `^[A-Za-z_][A-Za-z0-9_-]{0,31}$`}
	runRE   = lazyRegexp{expr: `^[A-Za-z0-9_][A-Za-z0-9_.-]*$`}
)

// lazyRegexp is a pattern compiled on its first get.
type lazyRegexp struct {
	expr string
	once sync.Once
	re   *regexp.Regexp
}

func (l *lazyRegexp) get() *regexp.Regexp {
	l.once.Do(func() { l.re = regexp.MustCompile(l.expr) })
	return l.re
}

// capabilities are the Linux capabilities systemd knows by name (Linux
// 6.x, as capability.h lists them). A name systemd did not know would be
// dropped with a warning: a service quietly without what it needs, or a
// typo nobody sees. An array, not a map: a map literal this size is
// built at every keyless start.
var capabilities = [...]string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
	"CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
	"CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
	"CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
	"CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
	"CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
	"CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN",
	"CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON",
	"CAP_BPF", "CAP_CHECKPOINT_RESTORE",
}

// CheckUserName reports whether name is a user name both systemd's User=
// and launchd's UserName accept as written: up to 32 letters, digits,
// underscores and dashes, not starting with a digit or a dash.
func CheckUserName(name string) error {
	if !userRE.get().MatchString(name) {
		return fmt.Errorf("want a user name: up to 32 letters, digits, _ and -, starting with a letter or _")
	}
	return nil
}

// check validates what both formats need.
func (s Service) check() error {
	if !nameRE.get().MatchString(s.Name) {
		return fmt.Errorf("service name %q: want lowercase letters, digits and dashes", s.Name)
	}
	if !labelRE.get().MatchString(s.Label) {
		return fmt.Errorf("launchd label %q: want letters, digits, dots and dashes", s.Label)
	}
	if len(s.Command) == 0 {
		return fmt.Errorf("service %s has no command", s.Name)
	}
	if s.User != "" {
		if err := CheckUserName(s.User); err != nil {
			return fmt.Errorf("user %q: %w", s.User, err)
		}
	}
	texts := append([]string{s.Description, s.LogFile}, s.Command...)
	texts = append(texts, s.PreStart...)
	for _, t := range texts {
		if err := checkText(t); err != nil {
			return err
		}
	}
	paths := append([]string{s.Command[0]}, s.WritePaths...)
	if len(s.PreStart) > 0 {
		paths = append(paths, s.PreStart[0])
	}
	paths = append(paths, s.ReadPaths...)
	if s.LogFile != "" {
		paths = append(paths, s.LogFile)
	}
	for _, p := range paths {
		if err := checkText(p); err != nil {
			return err
		}
		if !filepath.IsAbs(p) || filepath.Clean(p) != p {
			return fmt.Errorf("path %q: want an absolute, clean path", p)
		}
	}
	for _, c := range s.Capabilities {
		if !slices.Contains(capabilities[:], c) {
			return fmt.Errorf("capability %q: want a Linux capability such as CAP_NET_BIND_SERVICE", c)
		}
	}
	if d := s.RuntimeDirectory; d != "" && (!runRE.get().MatchString(d) || d == "." || d == "..") {
		return fmt.Errorf("runtime directory %q: want one directory name below /run, such as keyless", d)
	}
	for _, g := range s.Groups {
		if err := CheckUserName(g); err != nil {
			return fmt.Errorf("group %q: %w", g, err)
		}
	}
	return nil
}

// systemdOnly refuses, for a format other than systemd, a setting only
// systemd carries.
func (s Service) systemdOnly(f Format) error {
	for _, set := range []struct {
		name string
		set  bool
	}{
		{"a pre-start command", len(s.PreStart) > 0},
		{"capabilities", len(s.Capabilities) > 0},
		{"a runtime directory", s.RuntimeDirectory != ""},
		{"supplementary groups", len(s.Groups) > 0},
	} {
		if set.set {
			return fmt.Errorf("service %s: %s has nothing that carries %s", s.Name, f, set.name)
		}
	}
	return nil
}

// checkText refuses what neither format can carry: invalid UTF-8, and
// control characters (XML 1.0 forbids most; systemd would need escapes
// that not every setting understands, and a newline would end the line).
func checkText(s string) error {
	if !utf8.ValidString(s) {
		return fmt.Errorf("%q is not valid UTF-8", s)
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r == 0xfffe || r == 0xffff {
			return fmt.Errorf("%q holds a control character, which a service definition cannot carry", s)
		}
	}
	return nil
}

func (s Service) runsAsRoot() bool { return s.User == "" || s.User == "root" }

// Directories the sandbox replaces: PrivateTmp= gives the service its own
// empty /tmp and /var/tmp, ProtectHome= hides the home directories.
var (
	tmpDirs  = []string{"/tmp", "/var/tmp"}
	homeDirs = []string{"/home", "/root", "/run/user"}
)

// under reports whether path is dir or below it.
func under(path string, dirs ...string) (string, bool) {
	for _, d := range dirs {
		if path == d || strings.HasPrefix(path, d+"/") {
			return d, true
		}
	}
	return "", false
}

// protectHome chooses ProtectHome=: "yes" hides the home directories
// entirely, and ReadWritePaths= cannot reopen a directory below one (it
// has nothing to remount there: systemd issue #7153), so a service that
// reads or writes below a home directory gets "read-only", under which
// ReadWritePaths= works for subdirectories.
func (s Service) protectHome() (string, error) {
	mode := "yes"
	for _, p := range append(append([]string{s.Command[0]}, s.ReadPaths...), s.WritePaths...) {
		if _, ok := under(p, homeDirs...); ok {
			mode = "read-only"
		}
	}
	for _, p := range s.WritePaths {
		for _, d := range homeDirs {
			if p == d {
				return "", fmt.Errorf("%s: the sandbox can make directories below %s writable but not %s itself; keep the files in a directory of their own", p, d, d)
			}
		}
	}
	return mode, nil
}

func (s Service) systemd() (string, error) {
	if err := s.check(); err != nil {
		return "", err
	}
	if strings.HasSuffix(s.Description, `\`) {
		return "", fmt.Errorf("description %q: a trailing backslash would continue the line", s.Description)
	}
	for _, p := range append(append([]string{}, s.WritePaths...), s.ReadPaths...) {
		if d, ok := under(p, tmpDirs...); ok {
			return "", fmt.Errorf("%s: the service gets a private %s (PrivateTmp=yes), so it would not see this; keep the files in a lasting directory such as /etc/keyless", p, d)
		}
	}
	home, err := s.protectHome()
	if err != nil {
		return "", err
	}
	exec, err := execLine("", s.Command)
	if err != nil {
		return "", err
	}
	pre := ""
	if len(s.PreStart) > 0 {
		if pre, err = execLine("+", s.PreStart); err != nil {
			return "", err
		}
	}
	// The user namespace of PrivateUsers= maps only root and the
	// service's own user and group: capabilities in it do not reach the
	// host's network, and another group cannot be handed a file.
	privateUsers := len(s.Capabilities) == 0 && len(s.Groups) == 0

	var b lines
	w := b.add
	w("# "+s.Name+".service, written by keyless. Install: save it as",
		"#   /etc/systemd/system/"+s.Name+".service",
		"# then: systemctl daemon-reload && systemctl enable --now "+s.Name,
		"# Change it with a drop-in (systemctl edit "+s.Name+"), so that printing",
		"# it again does not undo the change.",
		"[Unit]",
		"Description="+specifiers(s.Description),
		"Wants=network-online.target",
		"After=network-online.target",
		"",
		"[Service]")
	if s.Notify {
		w("Type=notify")
	} else {
		w("Type=exec")
	}
	if pre != "" {
		w("# Runs as root, outside the sandbox below, and exits: the only",
			"# step with the privilege it needs.",
			"ExecStartPre="+pre)
	}
	w("ExecStart=" + exec)
	if s.ReloadOnHUP {
		w("ExecReload=/bin/kill -HUP $MAINPID")
	}
	w("Restart=on-failure", "RestartSec=30")
	if !s.runsAsRoot() {
		w("User=" + s.User)
	}
	if len(s.Groups) > 0 {
		w("SupplementaryGroups=" + strings.Join(s.Groups, " "))
	}
	if s.RuntimeDirectory != "" {
		// 0755: what is inside guards itself (a socket's own mode), and
		// a group the socket is handed to must reach it.
		w("RuntimeDirectory="+s.RuntimeDirectory, "RuntimeDirectoryMode=0755")
	}
	// Files the service creates are its user's alone: keys and
	// certificates are nobody else's business.
	w("UMask=0077",
		"",
		"# The sandbox. The service can write only below ReadWritePaths=.",
		"ProtectSystem=strict")
	if len(s.WritePaths) > 0 {
		words := make([]string, len(s.WritePaths))
		for i, p := range s.WritePaths {
			words[i] = pathWord(p)
		}
		w("ReadWritePaths=" + strings.Join(words, " "))
	}
	w("ProtectHome="+home,
		"PrivateTmp=yes",
		"PrivateDevices=yes",
		"PrivateMounts=yes")
	if privateUsers {
		w("PrivateUsers=yes")
	}
	caps := strings.Join(s.Capabilities, " ")
	w("NoNewPrivileges=yes",
		"CapabilityBoundingSet="+caps,
		"AmbientCapabilities="+caps,
		"ProtectKernelTunables=yes",
		"ProtectKernelModules=yes",
		"ProtectKernelLogs=yes",
		"ProtectControlGroups=yes",
		"ProtectClock=yes",
		"ProtectHostname=yes",
		"ProtectProc=invisible",
		"ProcSubset=pid",
		"LockPersonality=yes",
		"MemoryDenyWriteExecute=yes",
		"RestrictNamespaces=yes",
		"RestrictRealtime=yes",
		"RestrictSUIDSGID=yes",
		"RemoveIPC=yes")
	if s.ReadsInterfaces {
		w("# Unix sockets (sd_notify), IP, and netlink to list interfaces.",
			"RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK")
	} else {
		w("# Unix sockets (sd_notify) and IP, nothing else.",
			"RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6")
	}
	if len(s.IPAddressAllow) > 0 {
		addrs := make([]string, len(s.IPAddressAllow))
		for i, p := range s.IPAddressAllow {
			addrs[i] = p.String()
			if p.IsSingleIP() {
				addrs[i] = p.Addr().String()
			}
		}
		w("IPAddressDeny=any", "IPAddressAllow="+strings.Join(addrs, " "))
	}
	w("SystemCallArchitectures=native",
		"SystemCallFilter=@system-service",
		"SystemCallFilter=~@privileged @resources")
	if len(s.Groups) > 0 {
		// @privileged holds chown: handing a file to a group needs it.
		w("SystemCallFilter=@chown")
	}
	w("SystemCallErrorNumber=EPERM",
		"",
		"[Install]",
		"WantedBy=multi-user.target")
	return b.String(), nil
}

// specifiers escapes the % that systemd would read as a specifier (%n,
// %h...) in settings it resolves specifiers in.
func specifiers(s string) string { return strings.ReplaceAll(s, "%", "%%") }

// execLine quotes a command line for ExecStart= and its kin, the program
// after prefix (such as "+", for full privileges). systemd resolves
// specifiers on the whole line, then splits it into words, undoing quotes
// and C escapes, then takes the prefix off the first word, then
// substitutes $VARIABLES in the arguments (not the program); "$$" is a
// literal $.
func execLine(prefix string, argv []string) (string, error) {
	prog := argv[0]
	// systemd refuses these in the program's path ("Executable name
	// contains special characters").
	if strings.ContainsAny(prog, `"'\`) {
		return "", fmt.Errorf("executable %q: systemd refuses a program path holding a quote or a backslash; install keyless elsewhere", prog)
	}
	prog = prefix + specifiers(prog)
	if strings.ContainsAny(prog, " \t;") {
		prog = `"` + prog + `"`
	}
	words := []string{prog}
	for _, a := range argv[1:] {
		words = append(words, execArg(a))
	}
	return strings.Join(words, " "), nil
}

// execArg quotes one argument of an Exec line, when it needs it.
func execArg(s string) string {
	if s != "" && !strings.ContainsAny(s, " \t\"'\\$%;") {
		return s
	}
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, `$`, `$$`, `%`, `%%`).Replace(s) + `"`
}

// pathWord quotes a path for ReadWritePaths=: specifiers are resolved
// after quotes are undone, and a backslash escapes the next character;
// there are no variables.
func pathWord(p string) string {
	p = specifiers(p)
	if !strings.ContainsAny(p, " \t\"'\\") {
		return p
	}
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(p) + `"`
}

func (s Service) launchd() (string, error) {
	if err := s.check(); err != nil {
		return "", err
	}
	if err := s.systemdOnly(Launchd); err != nil {
		return "", err
	}
	var b lines
	w := b.add
	str := func(indent, v string) {
		b.WriteString(indent + "<string>")
		xml.EscapeText(&b, []byte(v)) // a strings.Builder never fails
		b.WriteString("</string>\n")
	}
	w(`<?xml version="1.0" encoding="UTF-8"?>`,
		`<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">`,
		`<plist version="1.0">`,
		`<dict>`,
		`  <key>Label</key>`)
	str("  ", s.Label)
	w(`  <key>ProgramArguments</key>`, `  <array>`)
	for _, a := range s.Command {
		str("    ", a)
	}
	w(`  </array>`)
	if !s.runsAsRoot() {
		w(`  <key>UserName</key>`)
		str("  ", s.User)
	}
	// 63 is 0077: files the service creates are its user's alone
	// (property lists have no octal).
	w(`  <key>Umask</key>`, `  <integer>63</integer>`,
		`  <key>RunAtLoad</key>`, `  <true/>`,
		`  <key>KeepAlive</key>`, `  <true/>`)
	if s.LogFile != "" {
		w(`  <key>StandardErrorPath</key>`)
		str("  ", s.LogFile)
	}
	w(`</dict>`, `</plist>`)
	return b.String(), nil
}

// lines builds a file a line at a time.
type lines struct{ strings.Builder }

func (b *lines) add(ls ...string) {
	for _, l := range ls {
		b.WriteString(l)
		b.WriteByte('\n')
	}
}
