package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/keyless-dev/keyless/internal/caclient"
	"github.com/keyless-dev/keyless/internal/identity"
	"github.com/keyless-dev/keyless/internal/pki"
)

type renewOptions struct {
	ca                     caFlags
	force, daemon          bool
	expiresIn              time.Duration
	method, execCmd, unit  string
	backoffMin, backoffMax time.Duration
}

func newRenewCommand(s streams) *cobra.Command {
	var o renewOptions
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
systemd unit or a launchd plist that runs it as a service.`,
		Example: `  keyless renew runner.crt runner.key
  keyless renew runner.crt runner.key --daemon --exec 'systemctl reload gitlab-runner'
  keyless renew /etc/keyless/runner.crt /etc/keyless/runner.key --daemon --print-unit systemd > /etc/systemd/system/keyless-renew.service`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.unit != "" {
				return printUnit(s, o, args[0], args[1])
			}
			switch o.method {
			case "auto", "mtls", "token":
			default:
				return usageErrorf("--method %q: want auto, mtls or token", o.method)
			}
			client, err := o.ca.client()
			if err != nil {
				return err
			}
			logger := newLoggerAt(s.err, slog.LevelInfo)
			if o.daemon {
				return renewDaemon(cmd.Context(), s, client, o, args[0], args[1], logger)
			}
			pair, err := loadPair(args[0], args[1])
			if err != nil {
				return err
			}
			now := time.Now()
			if opens := windowOpens(pair.Leaf, o.expiresIn); !o.force && now.Before(opens) {
				fmt.Fprintf(s.out, "keyless: %s is valid until %s; not renewing before %s (use --force to renew now)\n",
					args[0], pair.Leaf.NotAfter.UTC().Format(time.RFC3339), opens.UTC().Format(time.RFC3339))
				return nil
			}
			leaf, err := renewOnce(cmd.Context(), client, o.method, args[0], args[1], pair, logger)
			if err != nil {
				return err
			}
			fmt.Fprintf(s.out, "keyless: renewed %s: serial %s, valid until %s\n", args[0], leaf.SerialNumber, leaf.NotAfter.UTC().Format(time.RFC3339))
			return runExec(cmd.Context(), o.execCmd, logger)
		},
	}
	o.ca.register(cmd)
	f := cmd.Flags()
	f.BoolVar(&o.force, "force", false, "renew now, even outside the renewal window")
	f.DurationVar(&o.expiresIn, "expires-in", 0, "renew only when at most this `duration` is left (default: the last third of the lifetime)")
	f.BoolVar(&o.daemon, "daemon", false, "keep running and renew each certificate at about two thirds of its lifetime")
	f.StringVar(&o.execCmd, "exec", "", "run this `command` (with sh -c) after each renewal")
	f.StringVar(&o.method, "method", "auto", "how to prove possession: auto (mTLS, then the renewal token), mtls or token")
	f.DurationVar(&o.backoffMin, "backoff-min", 30*time.Second, "first wait after a failed attempt (--daemon)")
	f.DurationVar(&o.backoffMax, "backoff-max", 10*time.Minute, "longest wait between failed attempts (--daemon)")
	f.StringVar(&o.unit, "print-unit", "", "print a service definition for --daemon: systemd or launchd")
	return cmd
}

// windowOpens is when renewal becomes due: expiresIn before expiry, or
// when two thirds of the lifetime have passed.
func windowOpens(leaf *x509.Certificate, expiresIn time.Duration) time.Time {
	if expiresIn > 0 {
		return leaf.NotAfter.Add(-expiresIn)
	}
	life := leaf.NotAfter.Sub(leaf.NotBefore)
	return leaf.NotAfter.Add(-life / 3)
}

// renewOnce renews pair and writes the new certificate (with the chain
// the CA sent) over crtPath.
func renewOnce(ctx context.Context, client *caclient.Client, method, crtPath, keyPath string, pair tls.Certificate, logger *slog.Logger) (*x509.Certificate, error) {
	var certs *caclient.Certificates
	var err error
	expired := time.Now().After(pair.Leaf.NotAfter)
	switch {
	case method == "token" || method == "auto" && expired:
		certs, err = client.RenewWithToken(ctx, pair)
	default:
		certs, err = client.Renew(ctx, pair)
		if err != nil && method == "auto" && tlsPathFailed(err) {
			logger.Warn("renewal over mTLS failed; trying the renewal token", "err", err)
			var tokErr error
			if certs, tokErr = client.RenewWithToken(ctx, pair); tokErr != nil {
				err = fmt.Errorf("%w (and with the renewal token: %v)", err, tokErr)
			} else {
				err = nil
			}
		}
	}
	if err != nil {
		return nil, renewHint(err, pair.Leaf, crtPath, keyPath)
	}
	// Keep CRT's layout: the leaf alone if that is what it held (the
	// chain lives in a --chain-file), else the leaf and the chain.
	chain := []*x509.Certificate{certs.Leaf}
	if len(pair.Certificate) > 1 {
		chain = append(chain, certs.Intermediates...)
	}
	if err := identity.WritePair(crtPath, pki.EncodeCertificates(chain...), keyPath, nil); err != nil {
		return nil, err
	}
	return certs.Leaf, nil
}

// tlsPathFailed tells a failure of the mTLS path itself (a connection or
// handshake error, or a CA that never saw the client certificate, as
// behind a TLS-terminating proxy: step-ca answers 400, keyless ca 401
// "needs the current certificate") from a refusal of the certificate,
// which the renewal token would only repeat.
func tlsPathFailed(err error) bool {
	var ae *caclient.APIError
	if !errors.As(err, &ae) {
		return true
	}
	return ae.Status == 400 || strings.Contains(ae.Message, "needs the current certificate")
}

func renewHint(err error, leaf *x509.Certificate, crtPath, keyPath string) error {
	var ae *caclient.APIError
	if !errors.As(err, &ae) {
		return err
	}
	if ae.Temporary() {
		return err // the CA's own trouble, not the certificate's
	}
	msg := strings.ToLower(ae.Message)
	switch {
	case strings.Contains(msg, "revoked"):
		return withHint(err, "the certificate was revoked: enroll again (keyless certificate %s %s %s --force with a new token)", leaf.Subject.CommonName, crtPath, keyPath)
	case time.Now().After(leaf.NotAfter) || strings.Contains(msg, "certificate expired"):
		return withHint(err, "the certificate expired on %s and the CA does not renew expired certificates: re-enrollment is needed (keyless ca token %s on the CA host, then keyless certificate %s %s %s --token TOKEN --force)",
			leaf.NotAfter.UTC().Format(time.RFC3339), leaf.Subject.CommonName, leaf.Subject.CommonName, crtPath, keyPath)
	case ae.Status == 401:
		return withHint(err, "the CA does not accept this certificate any more (revoked, or not issued by it): enroll again with keyless certificate %s %s %s --force and a new token",
			leaf.Subject.CommonName, crtPath, keyPath)
	}
	return err
}

func runExec(ctx context.Context, command string, logger *slog.Logger) error {
	if command == "" {
		return nil
	}
	cmd := exec.CommandContext(ctx, "sh", "-c", command)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		logger.Warn("--exec failed", "command", command, "err", err)
		return fmt.Errorf("--exec %q: %w", command, err)
	}
	return nil
}

// renewDaemon renews pair for as long as it runs. Errors are logged and
// retried; it returns only on SIGINT/SIGTERM (nil) or an unusable pair.
func renewDaemon(ctx context.Context, s streams, client *caclient.Client, o renewOptions, crtPath, keyPath string, logger *slog.Logger) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	return renewLoop(ctx, client, o, crtPath, keyPath, logger, hup)
}

// renewLoop is the daemon's loop: it renews until ctx ends, at once when
// hup (which may be nil) delivers.
func renewLoop(ctx context.Context, client *caclient.Client, o renewOptions, crtPath, keyPath string, logger *slog.Logger, hup <-chan os.Signal) error {
	backoff := time.Duration(0)
	forceNext := o.force
	for {
		pair, err := loadPair(crtPath, keyPath)
		if err != nil {
			return err
		}
		var wait time.Duration
		switch {
		case backoff > 0:
			wait = backoff
		case forceNext:
			wait = 0
		default:
			opens := windowOpens(pair.Leaf, o.expiresIn)
			if o.expiresIn == 0 {
				// About two thirds of the lifetime, minus up to a
				// twentieth of it, so a fleet spreads out.
				life := pair.Leaf.NotAfter.Sub(pair.Leaf.NotBefore)
				opens = opens.Add(-time.Duration(rand.Int64N(int64(life/20) + 1)))
			}
			wait = time.Until(opens)
		}
		if wait > 0 {
			logger.Info("next renewal", "at", time.Now().Add(wait).UTC().Format(time.RFC3339), "serial", pair.Leaf.SerialNumber.String(),
				"notAfter", pair.Leaf.NotAfter.UTC().Format(time.RFC3339))
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				logger.Info("stopping")
				return nil
			case <-hup:
				t.Stop()
				logger.Info("SIGHUP: renewing now")
				backoff = 0
			case <-t.C:
			}
		}
		forceNext = false
		logger.Info("renewing", "certificate", crtPath, "serial", pair.Leaf.SerialNumber.String())
		leaf, err := renewOnce(ctx, client, o.method, crtPath, keyPath, pair, logger)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			backoff = nextBackoff(backoff, o.backoffMin, o.backoffMax)
			msg, hint := describe(err)
			logger.Error("renewal failed; keeping the current certificate", "err", msg, "hint", hint, "retryIn", backoff.String(),
				"notAfter", pair.Leaf.NotAfter.UTC().Format(time.RFC3339))
			continue
		}
		backoff = 0
		logger.Info("renewed", "certificate", crtPath, "serial", leaf.SerialNumber.String(), "notAfter", leaf.NotAfter.UTC().Format(time.RFC3339))
		if err := runExec(ctx, o.execCmd, logger); err != nil && ctx.Err() != nil {
			return nil
		}
	}
}

// nextBackoff doubles the wait, from min up to max, with jitter of up to
// a quarter so that runners do not retry in step.
func nextBackoff(cur, min, max time.Duration) time.Duration {
	next := cur * 2
	if next < min {
		next = min
	}
	if next > max {
		next = max
	}
	return next - time.Duration(rand.Int64N(int64(next/4)+1))
}

func printUnit(s streams, o renewOptions, crtPath, keyPath string) error {
	exe, err := os.Executable()
	if err != nil {
		exe = "/usr/local/bin/keyless"
	}
	abs := func(p string) string {
		if a, err := filepath.Abs(p); err == nil {
			return a
		}
		return p
	}
	if o.unit != "systemd" && o.unit != "launchd" {
		return usageErrorf("--print-unit %q: want systemd or launchd", o.unit)
	}
	// The service may run without this user's HOME, so the CA's URL and
	// root go into the unit, from the flags or what bootstrap stored.
	caURL, root := o.ca.url, o.ca.root
	if b, err := loadBootstrapped(); err == nil {
		if caURL == "" {
			caURL = b.CAURL
		}
		if root == "" {
			root = b.Root
		}
	}
	if caURL == "" || root == "" {
		return withHint(usageErrorf("the unit needs the CA: give --ca-url and --root"), "or run keyless bootstrap first")
	}
	args := []string{exe, "renew", abs(crtPath), abs(keyPath), "--daemon", "--ca-url", caURL, "--root", abs(root)}
	if o.execCmd != "" {
		args = append(args, "--exec", o.execCmd)
	}
	switch o.unit {
	case "systemd":
		quoted := make([]string, len(args))
		for i, a := range args {
			quoted[i] = systemdQuote(a)
		}
		fmt.Fprintf(s.out, `# keyless certificate renewal; replaces a timer that runs "step ca renew --force".
# Install: save as /etc/systemd/system/keyless-renew.service, then
#   systemctl daemon-reload && systemctl enable --now keyless-renew
[Unit]
Description=keyless: renew %[1]s before it expires
Wants=network-online.target
After=network-online.target

[Service]
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
`, abs(crtPath), strings.Join(quoted, " "), filepath.Dir(abs(crtPath)))
	case "launchd":
		var b strings.Builder
		for _, a := range args {
			fmt.Fprintf(&b, "    <string>%s</string>\n", xmlEscape(a))
		}
		fmt.Fprintf(s.out, `<?xml version="1.0" encoding="UTF-8"?>
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
`, b.String())
	default:
		return usageErrorf("--print-unit %q: want systemd or launchd", o.unit)
	}
	return nil
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

func newRevokeCommand(s streams) *cobra.Command {
	var (
		ca         caFlags
		reason     string
		reasonCode int
	)
	cmd := &cobra.Command{
		Use:   "revoke CRT KEY",
		Short: "Revoke a certificate with its own key (mTLS), at any step-compatible CA",
		Long: `Revoke the certificate in CRT, proving possession of KEY over mTLS (a
certificate may always revoke itself). The revocation is passive: it goes
on the CA's CRL, and the certificate can no longer renew. To revoke a
certificate you do not hold, use keyless ca revoke on the CA host.`,
		Example: `  keyless revoke runner.crt runner.key --reason "runner decommissioned"`,
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			client, err := ca.client()
			if err != nil {
				return err
			}
			pair, err := loadPair(args[0], args[1])
			if err != nil {
				return err
			}
			if err := client.Revoke(cmd.Context(), pair, reasonCode, reason); err != nil {
				return err
			}
			fmt.Fprintf(s.out, "keyless: revoked %s (serial %s)\n", args[0], pair.Leaf.SerialNumber)
			return nil
		},
	}
	ca.register(cmd)
	cmd.Flags().StringVar(&reason, "reason", "", "why, for the CA's records")
	cmd.Flags().IntVar(&reasonCode, "reason-code", 0, "RFC 5280 reason code (0 unspecified, 1 keyCompromise, 4 superseded, 5 cessationOfOperation)")
	return cmd
}
