package cli

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/keyless-dev/keyless/internal/credcache"
	"github.com/keyless-dev/keyless/internal/identity"
	"github.com/keyless-dev/keyless/internal/pki"
	"github.com/keyless-dev/keyless/internal/rolesanywhere"
	"github.com/keyless-dev/keyless/internal/sigv4"
)

type credentialProcessOptions struct {
	keys            keyFlags
	trustAnchorARN  string
	profileARN      string
	roleARN         string
	sessionDuration int
	sessionName     string
	region          string
	endpoint        string
	noVerifySSL     bool
	withProxy       bool
	debug           bool
	format          string
	noCache         bool
	cacheDir        string
}

func newCredentialProcessCommand(s streams) *cobra.Command {
	o := &credentialProcessOptions{}
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
costs one CreateSession; --no-cache turns this off.

The region is --region, else the trust anchor ARN's. The endpoint is
--endpoint, else AWS_ENDPOINT_URL_ROLESANYWHERE, else the region's public
endpoint (the global AWS_ENDPOINT_URL is not used: it usually points at a
local emulator of other services). AWS_CA_BUNDLE replaces the trusted CAs for
it. Plain http is accepted only for loopback endpoints.`,
		Example: `  # ~/.aws/config:
  [profile ci]
  credential_process = keyless credential-process --certificate /etc/keyless/runner.crt --private-key /etc/keyless/runner.key --trust-anchor-arn arn:aws:rolesanywhere:us-east-1:111122223333:trust-anchor/3f7c1a0e-0000-4000-8000-000000000001 --profile-arn arn:aws:rolesanywhere:us-east-1:111122223333:profile/3f7c1a0e-0000-4000-8000-000000000002 --role-arn arn:aws:iam::111122223333:role/ci-deployer

  # In a CI script, without jq:
  eval "$(keyless credential-process --format env --certificate runner.crt --private-key runner.key \
      --trust-anchor-arn "$TA_ARN" --profile-arn "$PROFILE_ARN" --role-arn "$ROLE_ARN")"
  aws sts get-caller-identity`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.keys.check(cmd.Flags()); err != nil {
				return err
			}
			return runCredentialProcess(cmd.Context(), s, o)
		},
	}
	fs := cmd.Flags()
	o.keys.register(fs,
		"path to the certificate: PEM (leaf first, then any intermediates), DER, or PKCS#12 holding the key too",
		"path to the private key: PEM PKCS#8, encrypted PKCS#8, PKCS#1 or SEC1", true)
	fs.StringVar(&o.trustAnchorARN, "trust-anchor-arn", "", "ARN of the Roles Anywhere trust anchor")
	fs.StringVar(&o.profileARN, "profile-arn", "", "ARN of the Roles Anywhere profile")
	fs.StringVar(&o.roleARN, "role-arn", "", "ARN of the IAM role to assume")
	fs.IntVar(&o.sessionDuration, "session-duration", 3600, "lifetime of the credentials in seconds, 900 to 43200")
	fs.StringVar(&o.sessionName, "role-session-name", "", "name of the role session (the profile must accept session names)")
	fs.StringVar(&o.region, "region", "", "signing region (default: the trust anchor ARN's region)")
	fs.StringVar(&o.endpoint, "endpoint", "", "Roles Anywhere endpoint URL; https:// is assumed without a scheme (default: AWS_ENDPOINT_URL_ROLESANYWHERE, else the region's)")
	fs.BoolVar(&o.noVerifySSL, "no-verify-ssl", false, "do not verify the endpoint's TLS certificate (unsafe: credentials could go to an impostor)")
	fs.BoolVar(&o.withProxy, "with-proxy", false, "send CreateSession through HTTPS_PROXY/HTTP_PROXY (honouring NO_PROXY)")
	fs.BoolVar(&o.debug, "debug", false, "log each step to stderr (never keys or credentials)")
	fs.StringVar(&o.format, "format", "json", "output format: json (credential_process) or env (POSIX shell export lines)")
	fs.BoolVar(&o.noCache, "no-cache", false, "always call CreateSession; neither read nor write the credentials cache")
	fs.StringVar(&o.cacheDir, "cache-dir", "", "credentials cache directory (default $XDG_CACHE_HOME/keyless or ~/.cache/keyless)")
	return cmd
}

// checked is what validate makes of the flags and environment.
type checked struct {
	input    rolesanywhere.SessionInput
	region   string
	endpoint string
}

// validate catches missing and contradictory flags before anything is read
// or sent.
func (o *credentialProcessOptions) validate() (*checked, error) {
	var missing []string
	for _, f := range []struct{ name, v string }{
		{"--certificate", o.keys.certificate},
		{"--trust-anchor-arn", o.trustAnchorARN},
		{"--profile-arn", o.profileARN},
		{"--role-arn", o.roleARN},
	} {
		if f.v == "" {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		return nil, usageErrorf("missing %s", strings.Join(missing, ", "))
	}
	ta, err := rolesanywhere.ParseTrustAnchorARN(o.trustAnchorARN)
	if err != nil {
		return nil, usageErrorf("--trust-anchor-arn: %v", err)
	}
	prof, err := rolesanywhere.ParseProfileARN(o.profileARN)
	if err != nil {
		return nil, usageErrorf("--profile-arn: %v", err)
	}
	role, err := rolesanywhere.ParseRoleARN(o.roleARN)
	if err != nil {
		return nil, usageErrorf("--role-arn: %v", err)
	}
	if ta.Region != prof.Region {
		return nil, usageErrorf("--trust-anchor-arn is in %s but --profile-arn is in %s; both must be in the same region", ta.Region, prof.Region)
	}
	if ta.Account != prof.Account {
		return nil, usageErrorf("--trust-anchor-arn is in account %s but --profile-arn is in account %s; both must be in the same account", ta.Account, prof.Account)
	}
	if ta.Partition != prof.Partition || ta.Partition != role.Partition {
		return nil, usageErrorf("the ARNs are in different partitions (%s, %s, %s)", ta.Partition, prof.Partition, role.Partition)
	}
	region := ta.Region
	if o.region != "" {
		if !rolesanywhere.ValidRegion(o.region) {
			return nil, usageErrorf("--region %q is not an AWS region name", o.region)
		}
		if o.region != ta.Region {
			return nil, usageErrorf("--region %s contradicts the trust anchor's region %s; drop --region or fix the ARNs", o.region, ta.Region)
		}
		region = o.region
	}
	if o.sessionDuration < rolesanywhere.MinDurationSeconds || o.sessionDuration > rolesanywhere.MaxDurationSeconds {
		return nil, usageErrorf("--session-duration %d: must be %d to %d seconds (15 minutes to 12 hours)", o.sessionDuration, rolesanywhere.MinDurationSeconds, rolesanywhere.MaxDurationSeconds)
	}
	if o.sessionName != "" && !rolesanywhere.ValidSessionName(o.sessionName) {
		return nil, usageErrorf("--role-session-name %q: must be 2 to 64 characters of letters, digits and +=,.@_-", o.sessionName)
	}
	if o.format != "json" && o.format != "env" {
		return nil, usageErrorf("--format %q: must be json or env", o.format)
	}
	endpoint, err := resolveEndpoint(o.endpoint, region)
	if err != nil {
		return nil, err
	}
	return &checked{
		input: rolesanywhere.SessionInput{
			TrustAnchorARN: o.trustAnchorARN, ProfileARN: o.profileARN, RoleARN: o.roleARN,
			DurationSeconds: o.sessionDuration, RoleSessionName: o.sessionName,
		},
		region:   region,
		endpoint: endpoint,
	}, nil
}

// resolveEndpoint picks the endpoint: the flag, then
// AWS_ENDPOINT_URL_ROLESANYWHERE (unless AWS_IGNORE_CONFIGURED_ENDPOINT_URLS
// is true, as in the SDKs), then the region's default; and checks it,
// naming where it came from when it is wrong. The global AWS_ENDPOINT_URL is
// deliberately not read: CI jobs set it for LocalStack and the like, and the
// signed request must not follow it there.
func resolveEndpoint(flag, region string) (string, error) {
	source, value := "--endpoint", flag
	if value == "" && !strings.EqualFold(os.Getenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"), "true") {
		source, value = "AWS_ENDPOINT_URL_ROLESANYWHERE", os.Getenv("AWS_ENDPOINT_URL_ROLESANYWHERE")
	}
	if value == "" {
		return rolesanywhere.DefaultEndpoint(region), nil
	}
	u, err := rolesanywhere.ParseEndpoint(value)
	if err != nil {
		return "", usageErrorf("%s: %v", source, err)
	}
	return u.String(), nil
}

func runCredentialProcess(ctx context.Context, s streams, o *credentialProcessOptions) error {
	c, err := o.validate()
	if err != nil {
		return err
	}
	logger := newLogger(s.err, o.debug)
	logger.Debug("resolved the request", "region", c.region, "endpoint", c.endpoint)
	transport := rolesanywhere.TransportOptions{InsecureSkipVerify: o.noVerifySSL, UseProxy: o.withProxy}
	trust := "system roots"
	if path := os.Getenv("AWS_CA_BUNDLE"); path != "" {
		if transport.RootCAs, err = os.ReadFile(path); err != nil {
			return withHint(fmt.Errorf("AWS_CA_BUNDLE: %w", err), "point AWS_CA_BUNDLE at a readable PEM file of CA certificates, or unset it")
		}
		sum := sha256.Sum256(transport.RootCAs)
		trust = "ca-bundle " + hex.EncodeToString(sum[:])
	}

	// The certificate is read once (it may be a pipe) and the file
	// combination checked before the cache is consulted, so a command
	// fails or succeeds the same way whatever the cache holds.
	files := o.keys.files()
	if files.CertificateData, err = identity.ReadFile(identity.RoleCertificate, files.Certificate); err != nil {
		return err
	}
	if err := identity.Check(files); err != nil {
		return err
	}

	cache, key, err := o.cache(files, c, trust, logger)
	if err != nil {
		return err
	}
	if cache != nil {
		if creds, ok := cache.Get(key); ok {
			return printCredentials(s.out, o.format, creds)
		}
	}
	// Load (and, for an encrypted key, ask for the password) before taking
	// the cache lock, so other processes never wait on someone typing.
	id, err := identity.Load(files, o.keys.passwordFunc(), time.Now())
	if err != nil {
		return err
	}
	logger.Debug("loaded certificate", "subject", id.Certificate.Subject.String(), "serial", id.Certificate.SerialNumber.String(),
		"not_after", id.Certificate.NotAfter.UTC().Format(time.RFC3339), "intermediates", len(id.Intermediates))
	fetch := func(ctx context.Context) (rolesanywhere.Credentials, error) {
		return createSession(ctx, id, c, transport, logger)
	}
	var creds rolesanywhere.Credentials
	if cache == nil {
		creds, err = fetch(ctx)
	} else {
		creds, _, err = cache.GetOrFetch(ctx, key, fetch)
	}
	if err != nil {
		return err
	}
	return printCredentials(s.out, o.format, creds)
}

// cache returns the credentials cache and this request's key in it, or a
// nil cache when it is off: by --no-cache, or because --no-verify-ssl
// credentials could come from an impostor and must never be reused.
func (o *credentialProcessOptions) cache(files identity.Files, c *checked, trust string, logger *slog.Logger) (*credcache.Cache, credcache.Key, error) {
	if o.noVerifySSL {
		logger.Warn("--no-verify-ssl: the endpoint's TLS certificate is not checked, so credentials could come from an impostor; they are not cached")
	}
	if o.noCache || o.noVerifySSL {
		return nil, credcache.Key{}, nil
	}
	dir := o.cacheDir
	if dir == "" {
		var err error
		if dir, err = credcache.DefaultDir(); err != nil {
			logger.Warn("not using the credentials cache", "reason", err.Error())
			return nil, credcache.Key{}, nil
		}
	}
	fingerprint, err := identity.Fingerprint(files.Certificate, files.CertificateData)
	if err != nil {
		return nil, credcache.Key{}, err
	}
	key := credcache.Key{
		Certificate: fingerprint, TrustAnchorARN: o.trustAnchorARN, ProfileARN: o.profileARN, RoleARN: o.roleARN,
		DurationSeconds: o.sessionDuration, RoleSessionName: o.sessionName, Region: c.region, Endpoint: c.endpoint,
		Trust: trust, CertificatePath: absPath(files.Certificate),
	}
	return &credcache.Cache{Dir: dir, Logger: logger}, key, nil
}

func createSession(ctx context.Context, id *pki.Identity, c *checked, transport rolesanywhere.TransportOptions, logger *slog.Logger) (rolesanywhere.Credentials, error) {
	httpClient, err := rolesanywhere.NewHTTPClient(transport)
	if err != nil {
		return rolesanywhere.Credentials{}, withHint(fmt.Errorf("AWS_CA_BUNDLE: %w", err), "AWS_CA_BUNDLE must name a PEM file of CA certificates")
	}
	client, err := rolesanywhere.New(rolesanywhere.Config{
		Endpoint:   c.endpoint,
		Region:     c.region,
		Signer:     &sigv4.X509Signer{Key: id.Key, Certificate: id.Certificate, Intermediates: id.Intermediates},
		HTTPClient: httpClient,
		UserAgent:  userAgent(),
		Logger:     logger,
	})
	if err != nil {
		return rolesanywhere.Credentials{}, err
	}
	sess, err := client.CreateSession(ctx, c.input)
	if err != nil {
		return rolesanywhere.Credentials{}, err
	}
	logger.Debug("CreateSession succeeded", "assumed_role", sess.AssumedRoleARN, "expires", sess.Credentials.Expiration.Format(time.RFC3339))
	return sess.Credentials, nil
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
	// Compact and without a trailing newline, byte for byte as AWS's helper.
	data, err := json.Marshal(credentialProcessOutput{Version: 1, AccessKeyID: c.AccessKeyID, SecretAccessKey: c.SecretAccessKey, SessionToken: c.SessionToken, Expiration: exp})
	if err != nil {
		return err
	}
	_, err = w.Write(data)
	return err
}

// shellQuote returns s as one POSIX shell word: bare when it holds only
// characters no shell treats specially, single-quoted otherwise.
func shellQuote(s string) string {
	safe := s != ""
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
