package cli

import (
	"cmp"
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/spf13/cobra"

	"github.com/keyless-dev/keyless/internal/enroll"
	"github.com/keyless-dev/keyless/internal/identity"
	"github.com/keyless-dev/keyless/internal/renewal"
	"github.com/keyless-dev/keyless/internal/sdnotify"
	"github.com/keyless-dev/keyless/internal/svcunit"
)

func newRenewCommand(s streams) *cobra.Command {
	var (
		ca                          caFlags
		c                           renewal.Config
		force, daemon               bool
		method, execCmd, unit, user string
		logs                        *logFlags
	)
	cmd := &cobra.Command{
		Use:   "renew CRT KEY",
		Short: "Renew a certificate when it is due, once or as a daemon",
		Long: `Renew the certificate in CRT (with its key in KEY, which stays the same)
from the CA that issued it. Without --force it renews only inside the
renewal window: the last third of the certificate's lifetime, or the last
--expires-in; otherwise it says when the window opens and exits 0, so it
is safe to run from a timer. (step ca renew, by contrast, always renews
unless --expires-in is given.)

It renews over mTLS, presenting the certificate, and falls back to step's
renewal token (a JWT signed with the key) when the TLS path fails, as
behind a TLS-terminating proxy, or when the certificate has expired and
the CA allows renewal after expiry. The new certificate replaces CRT
atomically; a crash leaves the old one or the new one.

--daemon keeps running: it renews at about two thirds of each lifetime
(with jitter, so a fleet does not renew at once), retries with capped
exponential backoff while the CA is unreachable, keeps the current
certificate in place until it expires, renews at once on SIGHUP, runs
--exec after each renewal, and logs each attempt. --print-unit writes a
systemd unit or a launchd plist that runs it as a service. The systemd
unit is sandboxed and runs as the user keyless (--user to choose), which
must exist and own the certificate's directory; docs/renewal.md says why
and how.`,
		Example: `  keyless renew runner.crt runner.key
  keyless renew runner.crt runner.key --daemon --exec 'systemctl reload gitlab-runner'
  keyless renew /etc/keyless/runner.crt /etc/keyless/runner.key --daemon --print-unit systemd > /etc/systemd/system/keyless-renew.service
  keyless renew /etc/keyless/runner.crt /etc/keyless/runner.key --print-unit systemd --user gitlab-runner`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if unit != "" {
				return printUnit(s, unit, renewal.Unit{CertPath: args[0], KeyPath: args[1], CAURL: ca.url, RootFile: ca.root, Exec: execCmd, User: user, Log: logs.args(cmd.Flags())})
			}
			if cmd.Flags().Changed("user") {
				return usageErrorf("--user goes with --print-unit: it names the user the service runs as")
			}
			m, err := renewal.ParseMethod(method)
			if err != nil {
				return usageErrorf("--method %v", err)
			}
			logger, err := logs.logger(cmd, s.err, daemon)
			if err != nil {
				return err
			}
			if c.Client, err = ca.client(); err != nil {
				return err
			}
			c.Method, c.CertPath, c.KeyPath, c.Logger = m, args[0], args[1], logger
			if execCmd != "" {
				out, flush := io.Writer(s.err), func() {}
				if logs.json() {
					w := &logWriter{logger: logger, msg: "--exec output"}
					out, flush = w, w.Flush
				}
				hook := renewal.ExecHook(execCmd, out)
				c.AfterRenew = func(ctx context.Context, leaf *x509.Certificate) error {
					err := hook(ctx, leaf)
					flush()
					if err == nil {
						notify(logger, sdnotify.Status("renewed serial %s and ran --exec", leaf.SerialNumber))
					}
					return err
				}
			}
			if daemon {
				c.Events = logRenewal(logger)
				return renewDaemon(cmd, c, force)
			}
			r, err := renewal.New(c)
			if err != nil {
				return usageErrorf("%v", err)
			}
			res, err := r.Once(cmd.Context(), force)
			if err != nil {
				return err
			}
			if !res.Renewed {
				fmt.Fprintf(s.out, "keyless: %s is valid until %s; not renewing before %s (use --force to renew now)\n",
					args[0], res.Leaf.NotAfter.UTC().Format(time.RFC3339), res.Opens.UTC().Format(time.RFC3339))
				return nil
			}
			fmt.Fprintf(s.out, "keyless: renewed %s: serial %s, valid until %s\n", args[0], res.Leaf.SerialNumber, res.Leaf.NotAfter.UTC().Format(time.RFC3339))
			if c.AfterRenew != nil {
				return c.AfterRenew(cmd.Context(), res.Leaf)
			}
			return nil
		},
	}
	ca.register(cmd)
	f := cmd.Flags()
	f.BoolVar(&force, "force", false, "renew now, even outside the renewal window")
	f.DurationVar(&c.ExpiresIn, "expires-in", 0, "renew only when at most this `duration` is left (default: the last third of the lifetime)")
	f.BoolVar(&daemon, "daemon", false, "keep running and renew each certificate at about two thirds of its lifetime")
	f.StringVar(&execCmd, "exec", "", "run this `command` (with sh -c) after each renewal")
	f.StringVar(&method, "method", string(renewal.Auto), "how to prove possession: auto (mTLS, then the renewal token), mtls or token")
	f.DurationVar(&c.BackoffMin, "backoff-min", renewal.DefaultBackoffMin, "first wait after a failed attempt (--daemon)")
	f.DurationVar(&c.BackoffMax, "backoff-max", renewal.DefaultBackoffMax, "longest wait between failed attempts (--daemon)")
	f.StringVar(&unit, "print-unit", "", "print a service definition for --daemon: systemd or launchd")
	f.StringVar(&user, "user", "", "with --print-unit: the `user` the service runs as (default: "+renewal.DefaultUser+" for systemd, root for launchd)")
	logs = registerLogFlags(cmd, "")
	return cmd
}

// renewDaemon runs the scheduler until SIGINT or SIGTERM (exit 0), and
// renews at once on SIGHUP.
func renewDaemon(cmd *cobra.Command, c renewal.Config, force bool) error {
	r, err := renewal.New(c)
	if err != nil {
		return usageErrorf("%v", err)
	}
	ctx, stop := daemonContext(cmd.Context(), r.RenewNow)
	defer stop()
	notify(c.Logger, sdnotify.Ready)
	return r.Run(ctx, force)
}

// logRenewal logs the scheduler's events, one line each, and tells the
// service manager what the daemon is doing.
func logRenewal(logger *slog.Logger) func(renewal.Event) {
	rfc := func(t time.Time) string { return t.UTC().Format(time.RFC3339) }
	return func(e renewal.Event) {
		switch e := e.(type) {
		case renewal.Scheduled:
			logger.Info("next renewal", "at", rfc(e.At), "serial", e.Serial, "notAfter", rfc(e.NotAfter))
		case renewal.Asked:
			logger.Info("SIGHUP: renewing now")
		case renewal.Renewing:
			logger.Info("renewing", "certificate", e.Certificate, "serial", e.Serial)
		case renewal.Renewed:
			logger.Info("renewed", "certificate", e.Certificate, "serial", e.Leaf.SerialNumber.String(), "notAfter", rfc(e.Leaf.NotAfter))
			notify(logger, sdnotify.Status("renewed: serial %s, valid until %s", e.Leaf.SerialNumber, rfc(e.Leaf.NotAfter)))
		case renewal.Failed:
			msg, hint := describe(e.Err)
			logger.Error("renewal failed; keeping the current certificate", "err", msg, "hint", hint, "retryIn", e.RetryIn.String(), "notAfter", rfc(e.NotAfter))
			notify(logger, sdnotify.Status("renewal failed, retrying in %s: %s", e.RetryIn, msg))
		case renewal.HookFailed:
			logger.Warn("--exec failed", "err", e.Err)
		case renewal.Stopping:
			logger.Info("stopping")
			notify(logger, sdnotify.Stopping)
		}
	}
}

func printUnit(s streams, kind string, u renewal.Unit) error {
	// The service may run without this user's HOME, so the CA's URL and
	// root go into the unit, from the flags or what bootstrap stored.
	if u.CAURL == "" || u.RootFile == "" {
		if url, root, err := enroll.Stored(enroll.DefaultConfigDir()); err == nil {
			u.CAURL, u.RootFile = cmp.Or(u.CAURL, url), cmp.Or(u.RootFile, root)
		}
	}
	if u.CAURL == "" || u.RootFile == "" {
		if _, err := svcunit.ParseFormat(kind); err != nil {
			return usageErrorf("--print-unit %v", err)
		}
		if u.User != "" {
			if err := svcunit.CheckUserName(u.User); err != nil {
				return usageErrorf("--user %q: %v", u.User, err)
			}
		}
		return withHint(usageErrorf("the unit needs the CA: give --ca-url and --root"), "or run keyless bootstrap first")
	}
	return printService(s, kind, u.User, "renew ...", func(exe string, f svcunit.Format) (svcunit.Service, error) {
		u.Executable = exe
		return u.Service(f)
	})
}

func newRevokeCommand(s streams) *cobra.Command {
	var (
		ca  caFlags
		why revokeReason
	)
	cmd := &cobra.Command{
		Use:   "revoke CRT KEY",
		Short: "Revoke a certificate with its own key (mTLS), at any step-compatible CA",
		Long: `Revoke the certificate in CRT, proving possession of KEY over mTLS (a
certificate may always revoke itself). The revocation is passive: it goes
on the CA's CRL, and the certificate can no longer renew (keyless ca
revokes every other certificate for the same key with it). To revoke a
certificate you do not hold, use keyless ca revoke on the CA host.`,
		Example: `  keyless revoke runner.crt runner.key --reason "runner decommissioned"`,
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			client, err := ca.client()
			if err != nil {
				return err
			}
			pair, err := identity.LoadPair(args[0], args[1])
			if err != nil {
				return err
			}
			if err := client.Revoke(cmd.Context(), pair, why.code, why.text); err != nil {
				return err
			}
			fmt.Fprintf(s.out, "keyless: revoked %s (serial %s)\n", args[0], pair.Leaf.SerialNumber)
			return nil
		},
	}
	ca.register(cmd)
	why.register(cmd)
	return cmd
}

// revokeReason is why a certificate is revoked: --reason and
// --reason-code.
type revokeReason struct {
	text string
	code int
}

func (r *revokeReason) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&r.text, "reason", "", "why, for the CA's records")
	cmd.Flags().IntVar(&r.code, "reason-code", 0, "RFC 5280 reason code (0 unspecified, 1 keyCompromise, 4 superseded, 5 cessationOfOperation)")
}
