package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/keyless-dev/keyless/internal/awscreds"
	"github.com/keyless-dev/keyless/internal/buildinfo"
	"github.com/keyless-dev/keyless/internal/doctor"
	"github.com/keyless-dev/keyless/internal/enroll"
)

func newDoctorCommand(s streams) *cobra.Command {
	var (
		keys    keyFlags
		r       awscreds.Request
		ca      caFlags
		cfg     doctor.Config
		asJSON  bool
		debug   bool
		ignored struct {
			format, cacheDir string
			noCache          bool
		}
	)
	cmd := &cobra.Command{
		Use:   "doctor [credential-process flags] [--trust-policy FILE] [--agent-config FILE]",
		Short: "Check a runner's whole chain, from its certificate to STS, and say how to fix what is broken",
		Long: `Check everything between this machine and AWS credentials, in order, and
print a checklist: the certificate and key (they load and match), their
expiry and renewal window, the chain to the trust anchor's bundle
(--trust-bundle, else the CA's root), the role's trust policy (offline,
with --trust-policy FILE: CN, OU, SANs and aws:SourceArn, decided as AWS
does), the CA (reachable over TLS with the pinned root), this machine's
clock against the CA's and AWS's (their Date headers), the certificate on
the CA's CRL, CreateSession, STS GetCallerIdentity with the session's
credentials, and the agent (its configuration, and its status on its
socket) when one is configured.

It takes the flags of credential-process, so the line from ~/.aws/config
can be pasted after "keyless doctor" as it is. The CA comes from --ca-url
and --root, else from what keyless bootstrap stored; the agent from
--agent-config, else ` + doctor.DefaultAgentConfig + ` when it exists.
Without --certificate, the agent's configuration says what to check: its
identity, its CA, its trust anchor and endpoint, and its first rule's
role and profile (run it as the agent's user, who can read the key). With
only --agent SOCKET (credential-process --agent, pasted), only the agent
is checked.

Each failure is followed by the fix: the command or setting to change. A
check that needs one that failed is skipped, saying which. Nothing secret
is printed: credentials are used for STS and dropped, and never cached.
Exit codes: 0 nothing failed (warnings allowed), 1 a check failed, 2 bad
usage.`,
		Example: `  # The credential_process line, pasted after "keyless doctor":
  keyless doctor credential-process --certificate /etc/keyless/runner.crt --private-key /etc/keyless/runner.key \
      --trust-anchor-arn arn:aws:rolesanywhere:us-east-1:111122223333:trust-anchor/3f7c1a0e-0000-4000-8000-000000000001 \
      --profile-arn arn:aws:rolesanywhere:us-east-1:111122223333:profile/3f7c1a0e-0000-4000-8000-000000000002 \
      --role-arn arn:aws:iam::111122223333:role/ci-deployer

  # Also check the role's trust policy offline, and the agent:
  aws iam get-role --role-name ci-deployer --query Role.AssumeRolePolicyDocument > policy.json
  keyless doctor ... --trust-policy policy.json --agent-config /etc/keyless/agent.yaml

  # The agent's own chain, from its configuration, as the agent's user:
  sudo -u keyless keyless doctor --agent-config /etc/keyless/agent.yaml

  # For scripts:
  keyless doctor ... --json | jq -r '.checks[] | select(.status == "fail") | .id'`,
		Args: pastedLine,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := keys.check(cmd.Flags()); err != nil {
				return err
			}
			r.Files, r.Password = keys.files(), keys.passwordFunc()
			cfg.Request, cfg.Name = r, flagName
			cfg.Logger = newLogger(s.err, debug)
			cfg.UserAgent = buildinfo.UserAgent()
			cfg.CAURL, cfg.RootFile = ca.url, ca.root
			if ca.url != "" || ca.root != "" {
				cfg.CASource, cfg.CAFromFlags = "--root", true
			}
			if cfg.CAURL == "" || cfg.RootFile == "" {
				dir := enroll.DefaultConfigDir()
				url, root, err := enroll.Stored(dir)
				switch {
				case err == nil:
					if cfg.CAURL == "" {
						cfg.CAURL = url
					}
					if cfg.RootFile == "" {
						cfg.RootFile, cfg.CASource = root, "keyless bootstrap, "+filepath.Join(dir, "ca.yaml")
					}
				case !errors.Is(err, enroll.ErrNotBootstrapped):
					cfg.Logger.Warn("not using what keyless bootstrap stored", "err", err)
				}
			}
			if cfg.AgentConfig == "" && cfg.AgentSocket == "" {
				if _, err := os.Stat(doctor.DefaultAgentConfig); err == nil {
					cfg.AgentConfig = doctor.DefaultAgentConfig
				}
			}
			rep, err := doctor.Run(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(s.out)
				enc.SetIndent("", "  ")
				if err := enc.Encode(struct {
					Failed bool            `json:"failed"`
					Checks []doctor.Result `json:"checks"`
				}{rep.Failed(), rep.Results}); err != nil {
					return err
				}
			} else {
				printChecklist(s.out, rep)
			}
			var failed []string
			for _, c := range rep.Results {
				if c.Status == doctor.Fail {
					failed = append(failed, c.ID)
				}
			}
			if len(failed) > 0 {
				return fmt.Errorf("%d check(s) failed: %s", len(failed), strings.Join(failed, ", "))
			}
			return nil
		},
	}
	fs := cmd.Flags()
	registerSessionFlags(fs, s.in, &keys, &r)
	ca.register(cmd)
	fs.StringVar(&cfg.TrustBundle, "trust-bundle", "", "PEM `file` of the trust anchor's CA certificates to check the chain against (default: the CA's root)")
	fs.StringVar(&cfg.TrustPolicy, "trust-policy", "", "the role's trust policy JSON `file`, to check the certificate against offline (aws iam get-role --query Role.AssumeRolePolicyDocument)")
	fs.StringVar(&cfg.STSEndpoint, "sts-endpoint", "", "STS endpoint `URL` for GetCallerIdentity (default: AWS_ENDPOINT_URL_STS, else the region's STS for AWS's endpoint, else --endpoint, as the keyless emulator serves both)")
	fs.StringVar(&cfg.AgentConfig, "agent-config", "", "the agent's agent.yaml `file` (default: "+doctor.DefaultAgentConfig+" when it exists)")
	fs.StringVar(&cfg.AgentSocket, "agent", "", "the agent's unix `socket` (default: listen.socket.path in --agent-config)")
	fs.DurationVar(&cfg.Timeout, "timeout", 10*time.Second, "how long each network check may take")
	fs.BoolVar(&asJSON, "json", false, "print the checks as JSON (id, title, status, detail, fix)")
	fs.BoolVar(&debug, "debug", false, "log each step to stderr (never keys or credentials)")
	// credential-process's own flags, accepted so its line pastes as it
	// is; the doctor never uses the cache and prints no credentials.
	fs.StringVar(&ignored.format, "format", "json", "ignored (credential-process's output format)")
	fs.BoolVar(&ignored.noCache, "no-cache", false, "ignored: the doctor never reads or writes the credentials cache")
	fs.StringVar(&ignored.cacheDir, "cache-dir", "", "ignored: the doctor never reads or writes the credentials cache")
	for _, name := range []string{"format", "no-cache", "cache-dir"} {
		_ = fs.MarkHidden(name)
	}
	return cmd
}

// pastedLine accepts the words before credential-process's flags in a
// credential_process line ("keyless credential-process", or
// "/usr/local/bin/aws_signing_helper credential-process": any program
// before credential-process), so the line can be pasted after "keyless
// doctor" as it is.
func pastedLine(cmd *cobra.Command, args []string) error {
	switch {
	case len(args) == 0,
		len(args) == 1 && args[0] == "credential-process",
		len(args) == 2 && args[1] == "credential-process":
		return nil
	}
	return fmt.Errorf("keyless doctor takes credential-process's flags, not %q", args[0])
}

// marks are the checklist's status words, one width.
var marks = map[doctor.Status]string{doctor.OK: "[ok]  ", doctor.Warn: "[warn]", doctor.Fail: "[FAIL]", doctor.Skip: "[skip]"}

func printChecklist(w io.Writer, rep *doctor.Report) {
	counts := map[doctor.Status]int{}
	for _, c := range rep.Results {
		counts[c.Status]++
		fmt.Fprintf(w, "%s %s: %s\n", marks[c.Status], c.Title, c.Detail)
		if c.Fix != "" && (c.Status == doctor.Fail || c.Status == doctor.Warn) {
			fmt.Fprintf(w, "       fix: %s\n", c.Fix)
		}
	}
	fmt.Fprintf(w, "%d ok, %d failed, %d warnings, %d skipped\n", counts[doctor.OK], counts[doctor.Fail], counts[doctor.Warn], counts[doctor.Skip])
}
