// Package cli is keyless's command line: the cobra command tree, flags
// (with KEYLESS_* environment variables as fallbacks), help with examples,
// and the one place where errors become "keyless: error:" lines, hints and
// exit codes. Commands are thin: they parse and check flags, wire the use
// cases (enroll, renewal, awscreds, caops, devstack), print their results
// and add hints to their typed errors; nothing here schedules, fetches or
// keeps time. Only cmd/keyless imports it.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/keyless-dev/keyless/internal/logline"
	"github.com/keyless-dev/keyless/internal/sdnotify"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Exit codes.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

// streams are the process's standard streams, passed in so tests can
// run commands in-process.
type streams struct {
	in       io.Reader
	out, err io.Writer
}

// Main runs keyless with args (without the program name) and returns the
// process exit code.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	// No signal handling here: the default for SIGINT and SIGTERM (exit)
	// is right for short commands, and installing a handler costs about a
	// millisecond of every run. Long-running commands install their own.
	ctx := context.Background()
	s := streams{in: stdin, out: stdout, err: stderr}
	root := newRootCommand(s, args)
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return exitOK
	}
	err = asUsage(err)
	var ue *usageError
	if !errors.As(err, &ue) && strings.HasPrefix(err.Error(), "unknown command ") {
		// cobra's own error for a mistyped subcommand.
		err = &usageError{err: err, command: "keyless"}
	}
	if errors.As(err, &ue) && ue.command == "" && cmd != nil {
		ue.command = cmd.CommandPath()
	}
	if cmd != nil && cmd.Name() == "credential-process" && wantsEnvFormat(cmd, args) {
		fmt.Fprint(stdout, envFailSafe)
	}
	return report(stderr, err)
}

// envFailSafe is what credential-process --format env prints on standard
// output when it fails. eval "$(keyless credential-process --format env
// ...)" cannot see keyless's exit code, and an empty output would eval to
// success with the variables unset (or, worse, stale ones from an
// earlier eval still set); this unsets them and makes the eval fail, so
// a set -e script stops there.
const envFailSafe = "unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN AWS_CREDENTIAL_EXPIRATION; false # keyless credential-process failed: its error is on stderr\n"

// wantsEnvFormat reports whether the failed command was asked for
// --format env, even when flag parsing stopped before reaching it.
func wantsEnvFormat(cmd *cobra.Command, args []string) bool {
	// Case-blind: a mistyped --format Env is refused, and its eval must
	// fail too.
	if f := cmd.Flags().Lookup("format"); f != nil && f.Changed {
		return strings.EqualFold(f.Value.String(), "env")
	}
	for i, a := range args {
		if strings.EqualFold(a, "--format=env") || a == "--format" && i+1 < len(args) && strings.EqualFold(args[i+1], "env") {
			return true
		}
	}
	return strings.EqualFold(os.Getenv(envName("format")), "env")
}

// commands are keyless's top-level commands, each made by its
// constructor. A run makes only the command it names (see
// newRootCommand); name must be the command's Name().
var commands = []struct {
	name string
	make func(streams) *cobra.Command
}{
	{"version", newVersionCommand},
	{"credential-process", newCredentialProcessCommand},
	{"sign-string", newSignStringCommand},
	{"read-certificate-data", newReadCertificateDataCommand},
	{"emulator", newEmulatorCommand},
	{"ca", newCACommand},
	{"bootstrap", newBootstrapCommand},
	{"certificate", newCertificateCommand},
	{"renew", newRenewCommand},
	{"revoke", newRevokeCommand},
	{"dev", newDevCommand},
	{"agent", newAgentCommand},
	{"serve", newServeCommand},
	{"update", newUpdateCommand},
	{"doctor", newDoctorCommand},
}

// newRootCommand makes the command tree for a run with args. When args
// start with a command's name, only that command (with its
// subcommands) is made: the others cannot run, and making all of them
// (hundreds of flags) is a good part of a credential-process cache hit's
// time. Otherwise (help, completion, a flag, a mistyped command) the
// whole tree is made, so lists and suggestions are complete.
func newRootCommand(s streams, args []string) *cobra.Command {
	root := newRoot(s)
	named := false
	for _, c := range commands {
		if len(args) > 0 && args[0] == c.name {
			root.AddCommand(c.make(s))
			// Nor the completion command: it runs only as keyless
			// completion, which makes the whole tree.
			root.CompletionOptions.DisableDefaultCmd = true
			named = true
			break
		}
	}
	if !named {
		for _, c := range commands {
			root.AddCommand(c.make(s))
		}
		initCompletion(root)
	}
	argsAreUsage(root)
	return root
}

// newRoot makes the root command, without its subcommands.
func newRoot(s streams) *cobra.Command {
	var showVersion bool
	root := &cobra.Command{
		Use:   "keyless",
		Short: "Short-lived AWS credentials from X.509 certificates, with no stored AWS keys",
		Long: `keyless gives CI runners and other machines outside AWS short-lived AWS
credentials through IAM Roles Anywhere: a certificate from your private CA is
exchanged for temporary STS credentials, and no long-lived AWS key is stored.

Exit codes: 0 success, 1 failure, 2 bad usage (a missing or wrong flag).
Every flag can also be set with a KEYLESS_* environment variable named after
it (--role-arn is KEYLESS_ROLE_ARN); a flag on the command line wins.`,
		Example: `  # Use keyless as the credential_process of an AWS CLI profile (~/.aws/config):
  [profile ci]
  credential_process = keyless credential-process --certificate /etc/keyless/runner.crt --private-key /etc/keyless/runner.key --trust-anchor-arn arn:aws:rolesanywhere:us-east-1:111122223333:trust-anchor/TA --profile-arn arn:aws:rolesanywhere:us-east-1:111122223333:profile/P --role-arn arn:aws:iam::111122223333:role/ci-deployer

  keyless version`,
		SilenceErrors: true,
		SilenceUsage:  true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			// Before the environment: a secret may come from KEYLESS_*,
			// never from the command line.
			if err := checkSecretFlags(cmd.Flags(), s.err); err != nil {
				return err
			}
			return applyEnvironment(cmd.Flags())
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageErrorf("unknown command %q", args[0])
			}
			if showVersion {
				printVersion(s.out)
				return nil
			}
			return cmd.Help()
		},
	}
	root.Flags().BoolVar(&showVersion, "version", false, "print keyless's version (as keyless version does) and exit")
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return &usageError{err: err, command: cmd.CommandPath()}
	})
	return root
}

// argsAreUsage makes a wrong number of arguments, which cobra reports as
// a plain error, a usage error (exit 2) that shows the command's usage
// line, in every command.
func argsAreUsage(c *cobra.Command) {
	if check := c.Args; check != nil {
		c.Args = func(cmd *cobra.Command, args []string) error {
			err := check(cmd, args)
			switch {
			case err == nil:
				return nil
			case !cmd.HasSubCommands() && len(args) > 0 && strings.HasPrefix(err.Error(), "unknown command"):
				// cobra.NoArgs on a leaf says "unknown command".
				err = fmt.Errorf("%s takes no arguments, not %q; usage: %s", cmd.CommandPath(), args[0], cmd.UseLine())
			default:
				err = fmt.Errorf("%v; usage: %s", err, cmd.UseLine())
			}
			return &usageError{err: err, command: cmd.CommandPath()}
		}
	}
	for _, sub := range c.Commands() {
		argsAreUsage(sub)
	}
}

// applyEnvironment sets each flag not given on the command line from
// KEYLESS_<FLAG_NAME> when that variable is set.
func applyEnvironment(flags *pflag.FlagSet) error {
	var err error
	flags.VisitAll(func(f *pflag.Flag) {
		if err != nil || f.Changed || f.Name == "help" {
			return
		}
		name := envName(f.Name)
		v, ok := os.LookupEnv(name)
		if !ok {
			return
		}
		if e := flags.Set(f.Name, v); e != nil {
			err = usageErrorf("%s=%q: %v (it sets --%s)", name, v, e, f.Name)
			return
		}
		_ = flags.SetAnnotation(f.Name, envAnnotation, []string{name})
	})
	return err
}

// envAnnotation marks a flag that applyEnvironment set.
const envAnnotation = "keyless/env"

// fromEnvironment reports whether f was set from its KEYLESS_* variable
// rather than on the command line.
func fromEnvironment(f *pflag.Flag) bool {
	return f.Changed && f.Annotations[envAnnotation] != nil
}

// Flags that take a secret itself carry this annotation: whether a value
// on the command line is refused (or only warned about), and the safe
// ways to give it.
const secretAnnotation = "keyless/secret"

// secretFlag marks the flag name as one that takes a secret. Any user on
// the machine can read a command line (ps, /proc/PID/cmdline), so a
// value given there is refused with a hint naming safe, or, where AWS's
// helper takes the same flag (refuse false), accepted with a warning.
// The same value from the flag's KEYLESS_* variable is taken silently:
// a process's environment is readable only by its own user and root.
func secretFlag(fs *pflag.FlagSet, name string, refuse bool, safe string) {
	mode := "warn"
	if refuse {
		mode = "refuse"
	}
	_ = fs.SetAnnotation(name, secretAnnotation, []string{mode, safe})
}

// checkSecretFlags refuses, or warns about, secrets given on the command
// line. It runs before applyEnvironment, so Changed means argv.
func checkSecretFlags(flags *pflag.FlagSet, stderr io.Writer) error {
	var err error
	flags.VisitAll(func(f *pflag.Flag) {
		a := f.Annotations[secretAnnotation]
		if err != nil || !f.Changed || len(a) != 2 {
			return
		}
		if a[0] == "refuse" {
			err = withHint(usageErrorf("--%s takes no secret on the command line: any user on this machine can read it there (ps, /proc/PID/cmdline)", f.Name),
				"give it with %s", a[1])
			return
		}
		fmt.Fprintf(stderr, "keyless: warning: --%s is readable by every user on this machine (ps, /proc/PID/cmdline); use %s\n", f.Name, a[1])
	})
	return err
}

func envName(flag string) string {
	return "KEYLESS_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// usageError is a mistake in how keyless was called; it exits 2.
type usageError struct {
	err     error
	command string
}

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usageErrorf(format string, args ...any) error {
	return &usageError{err: fmt.Errorf(format, args...)}
}

// hinted is an error with advice on how to fix it.
type hinted struct {
	err  error
	hint string
}

func (e *hinted) Error() string { return e.err.Error() }
func (e *hinted) Unwrap() error { return e.err }

func withHint(err error, format string, args ...any) error {
	return &hinted{err: err, hint: fmt.Sprintf(format, args...)}
}

// report prints err as "keyless: error: ..." plus any hint, and returns the
// exit code.
func report(w io.Writer, err error) int {
	code := exitError
	var ue *usageError
	if errors.As(err, &ue) {
		code = exitUsage
	}
	msg, hint := describe(err)
	fmt.Fprintf(w, "keyless: error: %s\n", msg)
	if hint != "" {
		fmt.Fprintf(w, "keyless: hint: %s\n", hint)
	} else if ue != nil && ue.command != "" {
		fmt.Fprintf(w, "keyless: hint: run '%s --help' for usage\n", ue.command)
	}
	return code
}

// newLogger returns the logger of a short command: warnings, and debug
// lines when debug is set.
func newLogger(w io.Writer, debug bool) *slog.Logger {
	if debug {
		return logline.New(w, slog.LevelDebug)
	}
	return logline.New(w, slog.LevelWarn)
}

// notify tells the service manager the daemon's state; a failure is
// logged, never fatal.
func notify(logger *slog.Logger, state ...string) {
	if _, err := sdnotify.Notify(state...); err != nil {
		logger.Warn("telling the service manager", "err", err)
	}
}

// daemonContext is ctx until SIGINT or SIGTERM, for a long-running
// command, which exits 0 on them; each SIGHUP calls onHUP, when it is set.
// stop undoes the signal handling.
func daemonContext(ctx context.Context, onHUP func()) (_ context.Context, stop func()) {
	ctx, cancel := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	if onHUP == nil {
		return ctx, cancel
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		for range hup {
			onHUP()
		}
	}()
	return ctx, func() {
		signal.Stop(hup)
		close(hup)
		cancel()
	}
}
