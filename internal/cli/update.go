package cli

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/keyless-dev/keyless/internal/awscreds"
	"github.com/keyless-dev/keyless/internal/buildinfo"
	"github.com/keyless-dev/keyless/internal/credfile"
	"github.com/keyless-dev/keyless/internal/credupdate"
	"github.com/keyless-dev/keyless/internal/identity"
	"github.com/keyless-dev/keyless/internal/sdnotify"
)

func newUpdateCommand(s streams) *cobra.Command {
	var (
		keys    keyFlags
		r       awscreds.Request
		profile string
		once    bool
		debug   bool
		logs    *logFlags
	)
	cmd := &cobra.Command{
		Use:   "update",
		Short: "Keep a profile in the AWS credentials file fresh with temporary credentials",
		Long: `Write temporary AWS credentials (from IAM Roles Anywhere CreateSession, as
keyless credential-process gets them) into one profile of the AWS shared
credentials file, and keep them fresh until stopped: for tools that read only
that file. It takes the same flags as AWS's aws_signing_helper update.

The file is AWS_SHARED_CREDENTIALS_FILE, else ~/.aws/credentials. Only the
profile's aws_access_key_id, aws_secret_access_key and aws_session_token
change; other profiles, comments, blank lines, other keys and line endings
stay byte for byte. The file is replaced atomically (a reader sees the old
file or the new one, never half of one) with mode 0600, in a directory made
0700 if missing, under a lock that keeps two keyless update processes for
different profiles of one file from undoing each other. A credentials file
that is a symbolic link is refused: replacing it would replace the link.

Credentials are refreshed when a third of their lifetime is left (20
minutes of an hour; AWS's helper waits for the last 5), so a tool that
reads the file just before a refresh still has time. A failed refresh is
logged and retried after 30 seconds, doubling up to 5 minutes, and never
touches the credentials in the file. The first write must succeed, or the
command exits 1. The certificate and key are read again at each refresh,
so a renewed certificate is used from the next one; an encrypted key's
password is asked once. SIGHUP refreshes at once; SIGINT or SIGTERM stops
it (exit 0). --once writes once and exits. docs/update.md has the details.`,
		Example: `  # Keep [ci] in ~/.aws/credentials fresh (as a service, or in the background):
  keyless update --profile ci --certificate /etc/keyless/runner.crt --private-key /etc/keyless/runner.key \
      --trust-anchor-arn arn:aws:rolesanywhere:us-east-1:111122223333:trust-anchor/3f7c1a0e-0000-4000-8000-000000000001 \
      --profile-arn arn:aws:rolesanywhere:us-east-1:111122223333:profile/8e2b6d4c-0000-4000-8000-000000000002 \
      --role-arn arn:aws:iam::111122223333:role/ci-deployer
  aws sts get-caller-identity --profile ci

  # Once, into another file:
  AWS_SHARED_CREDENTIALS_FILE=./credentials keyless update --once --certificate runner.crt --private-key runner.key \
      --trust-anchor-arn "$TA_ARN" --profile-arn "$PROFILE_ARN" --role-arn "$ROLE_ARN"`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := credfile.CheckProfile(profile); err != nil {
				return usageErrorf("--profile: %v", err)
			}
			if err := keys.check(cmd.Flags()); err != nil {
				return err
			}
			if debug {
				if cmd.Flags().Changed("log-level") {
					return usageErrorf("--debug means --log-level debug; give one of them")
				}
				_ = cmd.Flags().Set("log-level", "debug")
			}
			logger, err := logs.logger(cmd, s.err, !once)
			if err != nil {
				return err
			}
			file, err := credfile.Path(os.Getenv)
			if err != nil {
				return err
			}
			r.Files, r.Password = keys.files(), keys.passwordFunc()
			if !once {
				r.Password = rememberPassword(r.Password)
			}
			f := &awscreds.Fetcher{Name: flagName, Logger: logger, UserAgent: buildinfo.UserAgent()}
			// Flag mistakes are usage errors before anything is read.
			if _, err := f.Check(r); err != nil {
				return err
			}
			cfg := credupdate.Config{Fetcher: f, Request: r, Profile: profile, File: file, Logger: logger}
			if once {
				u, err := credupdate.New(cfg)
				if err != nil {
					return err
				}
				w, err := u.Once(cmd.Context())
				if err != nil {
					return updateHint(err)
				}
				fmt.Fprintf(s.out, "keyless: wrote profile %s in %s: credentials until %s\n", w.Profile, w.File, w.Expiration.UTC().Format(time.RFC3339))
				return nil
			}
			cfg.Events = logUpdate(logger)
			u, err := credupdate.New(cfg)
			if err != nil {
				return err
			}
			ctx, stop := daemonContext(cmd.Context(), u.RefreshNow)
			defer stop()
			return updateHint(u.Run(ctx))
		},
	}
	fs := cmd.Flags()
	registerSessionFlags(fs, s.in, &keys, &r)
	fs.StringVar(&profile, "profile", "default", "the `profile` to keep fresh: its [section] in the credentials file")
	fs.BoolVar(&once, "once", false, "write the credentials once and exit")
	fs.BoolVar(&debug, "debug", false, "log each step (the same as --log-level debug; never keys or credentials)")
	logs = registerLogFlags(cmd, "")
	return cmd
}

// logUpdate logs the updater's events, one line each, and tells the
// service manager what the daemon is doing: ready once the first
// credentials are in the file.
func logUpdate(logger *slog.Logger) func(credupdate.Event) {
	rfc := func(t time.Time) string { return t.UTC().Format(time.RFC3339) }
	ready := false
	return func(e credupdate.Event) {
		switch e := e.(type) {
		case credupdate.Wrote:
			logger.Info("wrote credentials", "profile", e.Profile, "file", e.File, "expiration", rfc(e.Expiration))
			if !ready {
				ready = true
				notify(logger, sdnotify.Ready)
			}
			notify(logger, sdnotify.Status("profile %s: credentials until %s", e.Profile, rfc(e.Expiration)))
		case credupdate.Scheduled:
			if !e.Retry {
				logger.Info("next refresh", "at", rfc(e.At), "expiration", rfc(e.Expiration))
			}
		case credupdate.Asked:
			logger.Info("SIGHUP: refreshing now")
		case credupdate.Failed:
			msg, hint := describe(updateHint(e.Err))
			attrs := []any{"err", msg, "hint", hint, "retryIn", e.RetryIn.String(), "expiration", rfc(e.Expiration)}
			if e.Expired {
				logger.Error("refresh failed; the credentials in the file have expired", attrs...)
			} else {
				logger.Warn("refresh failed; keeping the credentials in the file", attrs...)
			}
			notify(logger, sdnotify.Status("refresh failed, retrying in %s: %s", e.RetryIn, msg))
		case credupdate.Stopping:
			logger.Info("stopping")
			notify(logger, sdnotify.Stopping)
		}
	}
}

// updateHint adds the fix to the credentials file's refusals.
func updateHint(err error) error {
	var (
		fe  *credfile.FileError
		dup *credfile.DuplicateProfileError
		amb *credfile.AmbiguousHeaderError
	)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, credfile.ErrSymlink) && errors.As(err, &fe):
		return withHint(err, "set %s to where the link points (readlink -f %s), so the real file is replaced", credfile.EnvFile, fe.Path)
	case errors.As(err, &dup) && errors.As(err, &fe):
		return withHint(err, "edit %s so that [%s] appears once", fe.Path, dup.Profile)
	case errors.As(err, &amb) && errors.As(err, &fe):
		return withHint(err, "edit line %d of %s", amb.Line, fe.Path)
	case errors.Is(err, credfile.ErrBareCR) && errors.As(err, &fe):
		return withHint(err, "convert its old Mac line endings, for example with mac2unix %s (from dos2unix)", fe.Path)
	}
	return err
}

// rememberPassword keeps the first password ask gives (the first write,
// which must succeed, proves it right) for the daemon's later refreshes:
// each reloads the key, so a renewed certificate and key are picked up,
// but a terminal prompt in the background would stop the process, and
// standard input (--pkcs8-password-file -) can be read only once. AWS's
// helper keeps the decrypted key itself for as long.
func rememberPassword(ask identity.PasswordFunc) identity.PasswordFunc {
	var kept []byte
	return func(path string) ([]byte, error) {
		if kept != nil {
			return kept, nil
		}
		pw, err := ask(path)
		if err == nil {
			kept = pw
		}
		return pw, err
	}
}
