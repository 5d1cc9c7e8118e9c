package cli

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/keyless-dev/keyless/internal/agentapi"
	"github.com/keyless-dev/keyless/internal/awscreds"
	"github.com/keyless-dev/keyless/internal/buildinfo"
	"github.com/keyless-dev/keyless/internal/jsonstr"
	"github.com/keyless-dev/keyless/internal/rolesanywhere"
)

func newCredentialProcessCommand(s streams) *cobra.Command {
	var (
		keys   keyFlags
		r      awscreds.Request
		format string
		debug  bool
		target string
	)
	cmd := &cobra.Command{
		Use:   "credential-process",
		Short: "Print temporary AWS credentials for a certificate, as credential_process expects",
		Long: `Exchange a certificate and its private key for temporary AWS credentials
through IAM Roles Anywhere CreateSession, and print them in the JSON form the
AWS CLI and SDKs read from a credential_process (or, with --format env, as
shell export lines).

It takes the same flags as AWS's aws_signing_helper credential-process, so
switching is one word in ~/.aws/config. Unlike it, keyless caches the
credentials (in $XDG_CACHE_HOME/keyless, or ~/.cache/keyless) and reuses them
while more than 15 minutes remain, so running the AWS CLI a hundred times
costs one CreateSession; --no-cache turns this off. Cached credentials are
reused only with the same certificate and the same key file: a key replaced
by one that does not match fails at once. An encrypted key is not decrypted
on a hit, so a wrong password (with the key file unchanged) shows on the
next miss, when the credentials are fetched again.

The region is --region, else the trust anchor ARN's. The endpoint is
--endpoint, else AWS_ENDPOINT_URL_ROLESANYWHERE, else the region's public
endpoint (the global AWS_ENDPOINT_URL is not used: it usually points at a
local emulator of other services). AWS_CA_BUNDLE replaces the trusted CAs for
it; cached credentials are reused only with the same AWS_CA_BUNDLE file, which
a hit checks by its identity (one stat: inode, size, modification and change
times), so any change to the file is a miss, and a file changed in the last
few seconds is read whole. Plain http is accepted only for loopback endpoints.`,
		Example: `  # ~/.aws/config:
  [profile ci]
  credential_process = keyless credential-process --certificate /etc/keyless/runner.crt --private-key /etc/keyless/runner.key --trust-anchor-arn arn:aws:rolesanywhere:us-east-1:111122223333:trust-anchor/3f7c1a0e-0000-4000-8000-000000000001 --profile-arn arn:aws:rolesanywhere:us-east-1:111122223333:profile/3f7c1a0e-0000-4000-8000-000000000002 --role-arn arn:aws:iam::111122223333:role/ci-deployer

  # Ask a running keyless agent instead: no key file needed, no AWS flags
  # (the agent's rules decide the role for this user):
  credential_process = keyless credential-process --agent /run/keyless/agent.sock

  # In a CI script, without jq:
  eval "$(keyless credential-process --format env --certificate runner.crt --private-key runner.key \
      --trust-anchor-arn "$TA_ARN" --profile-arn "$PROFILE_ARN" --role-arn "$ROLE_ARN")"
  aws sts get-caller-identity`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if format != "json" && format != "env" {
				return usageErrorf("--format %q: must be json or env", format)
			}
			if target != "" {
				return fromAgent(cmd, s, target, format)
			}
			if err := keys.check(cmd.Flags()); err != nil {
				return err
			}
			r.Files, r.Password = keys.files(), keys.passwordFunc()
			f := &awscreds.Fetcher{Name: flagName, Logger: newLogger(s.err, debug), UserAgent: buildinfo.UserAgent()}
			res, err := f.Fetch(cmd.Context(), r)
			if err != nil {
				return err
			}
			return printCredentials(s.out, format, res.Credentials)
		},
	}
	fs := cmd.Flags()
	registerSessionFlags(fs, s.in, &keys, &r)
	fs.BoolVar(&debug, "debug", false, "log each step to stderr (never keys or credentials)")
	fs.StringVar(&format, "format", "json", "output format: json (credential_process) or env (POSIX shell export lines; on failure, a line that unsets them and fails, so eval fails too)")
	fs.BoolVar(&r.NoCache, "no-cache", false, "always call CreateSession; neither read nor write the credentials cache")
	fs.StringVar(&target, "agent", "", "get the credentials from a keyless agent: its unix `socket` (the agent's rules match this user), or its container-credentials URL with the token in AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE or AWS_CONTAINER_AUTHORIZATION_TOKEN")
	fs.StringVar(&r.CacheDir, "cache-dir", "", "credentials cache directory (default $XDG_CACHE_HOME/keyless or ~/.cache/keyless)")
	return cmd
}

// credentialProcessOutput is the JSON AWS SDKs read from a
// credential_process, fields in the order AWS's helper prints them.
type credentialProcessOutput struct {
	Version         int    `json:"Version"`
	AccessKeyID     string `json:"AccessKeyId"`
	SecretAccessKey string `json:"SecretAccessKey"`
	SessionToken    string `json:"SessionToken"`
	Expiration      string `json:"Expiration"`
}

func printCredentials(w io.Writer, format string, c rolesanywhere.Credentials) error {
	exp := c.Expiration.UTC().Format(time.RFC3339)
	if format == "env" {
		for _, kv := range [][2]string{
			{"AWS_ACCESS_KEY_ID", c.AccessKeyID},
			{"AWS_SECRET_ACCESS_KEY", c.SecretAccessKey},
			{"AWS_SESSION_TOKEN", c.SessionToken},
			{"AWS_CREDENTIAL_EXPIRATION", exp},
		} {
			if _, err := fmt.Fprintf(w, "export %s=%s\n", kv[0], shellQuote(kv[1])); err != nil {
				return err
			}
		}
		return nil
	}
	// Compact and without a trailing newline, byte for byte as AWS's
	// helper: json.Marshal of credentialProcessOutput, written by hand
	// (a test holds it to that) because the reflection of a first
	// json.Marshal is a measurable part of a cache hit.
	_, err := w.Write(appendCredentialProcessOutput(make([]byte, 0, 1024), credentialProcessOutput{Version: 1,
		AccessKeyID: c.AccessKeyID, SecretAccessKey: c.SecretAccessKey, SessionToken: c.SessionToken, Expiration: exp}))
	return err
}

// appendCredentialProcessOutput appends o as json.Marshal writes it.
func appendCredentialProcessOutput(b []byte, o credentialProcessOutput) []byte {
	b = append(b, `{"Version":`...)
	b = strconv.AppendInt(b, int64(o.Version), 10)
	b = append(b, `,"AccessKeyId":`...)
	b = jsonstr.Append(b, o.AccessKeyID)
	b = append(b, `,"SecretAccessKey":`...)
	b = jsonstr.Append(b, o.SecretAccessKey)
	b = append(b, `,"SessionToken":`...)
	b = jsonstr.Append(b, o.SessionToken)
	b = append(b, `,"Expiration":`...)
	b = jsonstr.Append(b, o.Expiration)
	return append(b, '}')
}

// shellQuote returns s as one POSIX shell word: bare when it holds only
// characters no shell treats specially, single-quoted otherwise.
func shellQuote(s string) string {
	// A leading = is zsh's =command expansion.
	safe := s != "" && s[0] != '='

	for _, r := range s {
		if !(r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || strings.ContainsRune("+/=._:-,@%", r)) {
			safe = false
			break
		}
	}
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// agentExclusive are the flags that say what to fetch; with --agent the
// agent's rules say it.
var agentExclusive = []string{"certificate", "private-key", "intermediates", "trust-anchor-arn", "profile-arn", "role-arn",
	"session-duration", "role-session-name", "region", "endpoint", "no-verify-ssl", "with-proxy", "no-cache", "cache-dir",
	"pkcs8-password", "pkcs8-password-file"}

func fromAgent(cmd *cobra.Command, s streams, target, format string) error {
	for _, name := range agentExclusive {
		if f := cmd.Flags().Lookup(name); f != nil && f.Changed {
			return usageErrorf("--%s does not go with --agent: the agent holds the key and its rules choose the role", name)
		}
	}
	var token string
	if !strings.HasPrefix(target, "/") && !strings.HasPrefix(target, ".") {
		// A URL: the token comes as the SDKs take it, never from argv.
		if file := os.Getenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"); file != "" {
			data, err := os.ReadFile(file)
			if err != nil {
				return fmt.Errorf("reading AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE: %w", err)
			}
			token = string(data)
		} else {
			token = os.Getenv("AWS_CONTAINER_AUTHORIZATION_TOKEN")
		}
	}
	c, err := agentapi.NewClient(target, token)
	if err != nil {
		return usageErrorf("--agent: %v", err)
	}
	creds, err := c.Credentials(cmd.Context())
	if err != nil {
		return withHint(err, "keyless agent status --socket SOCKET shows the agent's state; its log has one line for each refused request")
	}
	return printCredentials(s.out, format, rolesanywhere.Credentials{AccessKeyID: creds.AccessKeyID, SecretAccessKey: creds.SecretAccessKey,
		SessionToken: creds.Token, Expiration: creds.Expiration})
}

// registerSessionFlags registers the flags AWS's helper takes for one
// session (credential-process, serve, update): the certificate and key,
// the three ARNs, duration, session name, region, endpoint, TLS and proxy.
func registerSessionFlags(fs *pflag.FlagSet, stdin io.Reader, keys *keyFlags, r *awscreds.Request) {
	keys.register(fs, stdin,
		"path to the certificate: PEM (leaf first, then any intermediates), DER, or PKCS#12 holding the key too",
		"path to the private key: PEM PKCS#8, encrypted PKCS#8, PKCS#1 or SEC1", true)
	fs.StringVar(&r.TrustAnchorARN, "trust-anchor-arn", "", "ARN of the Roles Anywhere trust anchor")
	fs.StringVar(&r.ProfileARN, "profile-arn", "", "ARN of the Roles Anywhere profile")
	fs.StringVar(&r.RoleARN, "role-arn", "", "ARN of the IAM role to assume")
	fs.IntVar(&r.DurationSeconds, "session-duration", 3600, "lifetime of the credentials in seconds, 900 to 43200")
	fs.StringVar(&r.SessionName, "role-session-name", "", "name of the role session (the profile must accept session names)")
	fs.StringVar(&r.Region, "region", "", "signing region (default: the trust anchor ARN's region)")
	fs.StringVar(&r.Endpoint, "endpoint", "", "Roles Anywhere endpoint URL; https:// is assumed without a scheme (default: AWS_ENDPOINT_URL_ROLESANYWHERE, else the region's)")
	fs.BoolVar(&r.InsecureSkipVerify, "no-verify-ssl", false, "do not verify the endpoint's TLS certificate (unsafe: credentials could go to an impostor)")
	fs.BoolVar(&r.UseProxy, "with-proxy", false, "send CreateSession through HTTPS_PROXY/HTTP_PROXY (honouring NO_PROXY)")
}
