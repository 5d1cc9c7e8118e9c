package cli

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/keyless-dev/keyless/internal/buildinfo"
	"github.com/keyless-dev/keyless/internal/devstack"
	"github.com/keyless-dev/keyless/internal/logline"
)

func newDevCommand(s streams) *cobra.Command {
	var (
		cfg  devstack.Config
		once bool
		logs *logFlags
	)
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run the whole keyless chain locally: CA, runner certificate, Roles Anywhere, STS",
		Long: `Start the whole chain on loopback, with no AWS account and no network:
a keyless CA issues a gitlab-runner certificate, the emulator exchanges it
through Roles Anywhere CreateSession, and STS says which role you are.
Then keyless agent starts with a fake GitLab that has one running job, and
that job's token gets credentials of its own, in a session named after the
job; DIR/agent.env holds the two variables the job would have.
Each step prints its result, then the profile and environment to use the
running stack from another shell with the AWS CLI. The emulator's control
plane (Roles Anywhere, IAM) answers profile keyless-dev-admin of
DIR/aws-config: an operator key made for each run, never printed.

It keeps serving (CA, emulator, certificate renewal) until Ctrl-C. With
--once it stops after the check and exits 0 only if every step
succeeded. The state lives in a temporary directory, removed at exit,
unless --dir names one, which is kept and reused (the same CA) next time.

Renewals are logged on standard error; the CA and the emulator log only
warnings there, unless --log-level is given.`,
		Example: `  go run ./cmd/keyless dev
  keyless dev --once
  keyless dev --dir ./dev-stack --listen-aws 127.0.0.1:8443`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg.Version, cfg.UserAgent = "keyless/"+buildinfo.Read().Version, buildinfo.UserAgent()
			o, err := logs.options(cmd, s.err, true)
			if err != nil {
				return err
			}
			logger := slog.New(logline.NewHandler(s.err, o))
			if !logs.levelSet(cmd.Flags()) {
				// The CA's and the emulator's line for every request
				// would break up the numbered steps: warnings only,
				// unless --log-level asks for more.
				o.Level = slog.LevelWarn
			}
			cfg.Logger = slog.New(logline.NewHandler(s.err, o))
			st, err := devstack.New(cfg)
			if err != nil {
				return err
			}
			defer st.Close()
			ctx, stop := daemonContext(cmd.Context(), nil)
			defer stop()
			rfc := func(t time.Time) string { return t.UTC().Format(time.RFC3339) }
			step := func(n int, what string, run func() (string, error)) error {
				fmt.Fprintf(s.out, "%d. %s", n, what)
				result, err := run()
				if err != nil {
					fmt.Fprintln(s.out, " FAILED")
					return err
				}
				fmt.Fprintf(s.out, " ok: %s\n", result)
				return nil
			}
			fmt.Fprintf(s.out, "keyless dev: the whole chain on loopback, in %s\n", st.Dir)
			var arn, assumed, jobARN string
			for i, p := range []struct {
				what string
				run  func() (string, error)
			}{
				{"CA", func() (string, error) {
					err := st.StartCA()
					return fmt.Sprintf("%s CA at %s, root %s, trust anchor bundle %s", map[bool]string{false: "new", true: "reused"}[st.ReusedCA],
						st.CAURL, st.Fingerprint()[:16], st.BundlePath), err
				}},
				{"Roles Anywhere + STS emulator", func() (string, error) {
					err := st.StartEmulator()
					return fmt.Sprintf("%s, role %s", st.AWSURL, st.RoleARN), err
				}},
				{"runner certificate", func() (string, error) {
					leaf, err := st.Enroll(ctx)
					if err != nil {
						return "", err
					}
					return fmt.Sprintf("CN=%s from the CA, serial %s, valid until %s, in %s", devstack.Subject, leaf.SerialNumber, rfc(leaf.NotAfter), st.CertPath), nil
				}},
				{"CreateSession", func() (string, error) {
					res, err := st.CreateSession(ctx)
					if err != nil {
						return "", err
					}
					assumed = res.AssumedRoleARN
					return fmt.Sprintf("credentials for %s until %s", assumed, rfc(res.Credentials.Expiration)), nil
				}},
				{"STS GetCallerIdentity (signed with SigV4)", func() (string, error) {
					id, err := st.CallerIdentity(ctx)
					if err != nil {
						return "", err
					}
					arn = id.Arn
					return "you are", nil
				}},
				{"keyless agent: a CI job's own credentials", func() (string, error) {
					if err := st.StartAgent(ctx); err != nil {
						return "", err
					}
					id, creds, err := st.AgentCallerIdentity(ctx)
					if err != nil {
						return "", err
					}
					jobARN = id.Arn
					return fmt.Sprintf("job %d of %s (token from the fake GitLab) got %s until %s, from %s",
						devstack.JobID, devstack.ProjectPath, id.Arn, rfc(creds.Expiration), st.AgentURL), nil
				}},
			} {
				if err := step(i+1, p.what, p.run); err != nil {
					return err
				}
			}
			fmt.Fprintf(s.out, "\n%s\n\n", arn)
			if arn != assumed {
				return fmt.Errorf("STS says %s, CreateSession said %s", arn, assumed)
			}
			if want := fmt.Sprintf("/gitlab-%d-%d", devstack.ProjectID, devstack.JobID); !strings.HasSuffix(jobARN, want) {
				return fmt.Errorf("the agent's session is %s, not named after the job (%s)", jobARN, want)
			}
			if once {
				fmt.Fprintln(s.out, "keyless dev: every step succeeded")
				return nil
			}
			exe, err := os.Executable()
			if err != nil {
				return err
			}
			configPath, profile, err := st.WriteAWSConfig(exe)
			if err != nil {
				return err
			}
			fmt.Fprintf(s.out, `Use it from another shell with the AWS CLI. The profile (also in %s):

%s
Paste these lines:

export AWS_CONFIG_FILE=%s
export AWS_PROFILE=%s
export AWS_ENDPOINT_URL_STS=%s
aws sts get-caller-identity --endpoint-url %s

(--endpoint-url is for AWS CLI older than 2.13, such as Debian 12's, which ignores AWS_ENDPOINT_URL_STS.)

A CI job's view: keyless agent (configuration %s) serves the job's own
credentials at %s
to any AWS SDK given these two variables (also in %s):

env $(cat %s) aws sts get-caller-identity --region us-east-1 --endpoint-url %s

The emulator's control plane (Roles Anywhere, IAM, STS) takes the profile
%s of the same file: an operator key made for this run, stored
0600 in %s and never printed. With AWS_CONFIG_FILE as above:

aws --profile %s rolesanywhere list-trust-anchors --endpoint-url %s
aws --profile %s iam get-role --role-name %s --endpoint-url %s

`, configPath, strings.TrimRight(profile, "\n"), configPath, devstack.AWSProfile, st.AWSURL, st.AWSURL,
				st.AgentConfig, st.AgentURL, st.AgentEnv, st.AgentEnv, st.AWSURL,
				devstack.AdminProfile, configPath, devstack.AdminProfile, st.AWSURL, devstack.AdminProfile, devstack.Role, st.AWSURL)
			if note := goRunNote(exe); note != "" {
				fmt.Fprintln(s.out, note)
				fmt.Fprintln(s.out)
			}
			fmt.Fprintln(s.out, "keyless dev: serving; Ctrl-C stops everything")
			if err := st.Renew(ctx, logRenewal(logger)); err != nil {
				return err
			}
			fmt.Fprintln(s.out, "keyless dev: stopping")
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Dir, "dir", "", "keep the stack's files (CA, certificate, seed) in this `directory` and reuse them")
	f.BoolVar(&once, "once", false, "stop after the check; exit 0 only if every step succeeded")
	f.StringVar(&cfg.ListenCA, "listen-ca", "127.0.0.1:0", "`address` of the CA (HTTPS)")
	f.StringVar(&cfg.ListenAWS, "listen-aws", "127.0.0.1:0", "`address` of the Roles Anywhere + STS emulator (HTTP, loopback only)")
	f.StringVar(&cfg.ListenAgent, "listen-agent", "127.0.0.1:0", "`address` of keyless agent's container-credentials endpoint (HTTP, loopback only)")
	logs = registerLogFlags(cmd, "")
	return cmd
}

// builtByGoRun reports whether exe is a binary go run built. Go 1.24
// and later keep it in the build cache (GOCACHE/xx/<64 hex>-d/NAME),
// which Go trims and go clean -cache empties; older versions in a
// temporary .../go-buildNNN/b001/exe/NAME, removed when go run exits.
// Either way nothing lasting may point at it.
func builtByGoRun(exe string) bool {
	dir := filepath.Dir(exe)
	if filepath.Base(dir) == "exe" && strings.HasPrefix(filepath.Base(filepath.Dir(filepath.Dir(dir))), "go-build") {
		return true
	}
	name, shard := filepath.Base(dir), filepath.Base(filepath.Dir(dir))
	hash, ok := strings.CutSuffix(name, "-d")
	return ok && len(hash) == 64 && isHex(hash) && len(shard) == 2 && isHex(shard) && strings.HasPrefix(hash, shard)
}

func isHex(s string) bool {
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// goRunNote says what to do instead when exe is go run's.
func goRunNote(exe string) string {
	if !builtByGoRun(exe) {
		return ""
	}
	return `Note: this keyless was built by go run, into Go's build cache (or a
temporary directory), which Go trims or removes: the credential_process
line above may stop working once keyless dev exits. For one that lasts,
build keyless and run that:

  CGO_ENABLED=0 go build -o ./keyless ./cmd/keyless
  ./keyless dev --dir ./dev-stack`
}
