package cli

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/keyless-dev/keyless/internal/agent"
	"github.com/keyless-dev/keyless/internal/caops"
	"github.com/keyless-dev/keyless/internal/svcunit"
)

// printService prints the service definition a use case describes, for
// --print-unit KIND (systemd or launchd) and --user USER: describe gets
// this keyless's path and the format. cmdline is the command to print
// again with the installed keyless, for the hint when this one was built
// by go run.
func printService(s streams, kind, user, cmdline string, describe func(exe string, f svcunit.Format) (svcunit.Service, error)) error {
	format, err := svcunit.ParseFormat(kind)
	if err != nil {
		return usageErrorf("--print-unit %v", err)
	}
	if user != "" {
		if err := svcunit.CheckUserName(user); err != nil {
			return usageErrorf("--user %q: %v", user, err)
		}
	}
	exe, err := os.Executable()
	if err != nil {
		exe = "/usr/local/bin/keyless"
	}
	if builtByGoRun(exe) {
		return withHint(usageErrorf("--print-unit: this keyless was built by go run, into %s, which Go trims or removes; a unit must not run it from there", filepath.Dir(exe)),
			"build keyless where it can stay, then print the unit with it: CGO_ENABLED=0 go build -o /usr/local/bin/keyless ./cmd/keyless && /usr/local/bin/keyless %s --print-unit %s", cmdline, kind)
	}
	svc, err := describe(exe, format)
	if err != nil {
		return usageErrorf("--print-unit %s: %v", format, err)
	}
	text, err := svcunit.Render(format, svc)
	if err != nil {
		return usageErrorf("--print-unit %s: %v", format, err)
	}
	_, err = fmt.Fprint(s.out, text)
	return err
}

// printAgentUnit prints the agent's service for --print-unit.
func printAgentUnit(s streams, kind string, u agent.Unit) error {
	return printService(s, kind, u.User, "agent --config "+u.ConfigFile, func(exe string, f svcunit.Format) (svcunit.Service, error) {
		u.Executable = exe
		return u.Service(f)
	})
}

// printCAUnit prints the CA server's service for --print-unit: the CA
// directory says where it listens and keeps its database.
func printCAUnit(s streams, kind string, f *caDirFlags, user string, log []string) error {
	if f.passwordFile == "" || f.passwordFile == "-" {
		return usageErrorf("--print-unit needs --password-file: the file the service reads the CA's password from")
	}
	d, err := caops.Open(f.dir)
	if err != nil {
		return err
	}
	return printService(s, kind, user, "ca serve --dir "+f.dir+" --password-file "+f.passwordFile, func(exe string, format svcunit.Format) (svcunit.Service, error) {
		return d.Unit(exe, f.passwordFile, log, user).Service(format)
	})
}
