package cli

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"

	"github.com/spf13/cobra"

	"github.com/keyless-dev/keyless/internal/atomicfile"
	"github.com/keyless-dev/keyless/internal/emulator"
)

func newEmulatorCommand(s streams) *cobra.Command {
	var (
		configPath, listen, outputs string
		statePath                   string
		tlsCert, tlsKey             string
		logs                        *logFlags
	)
	cmd := &cobra.Command{
		Use:   "emulator --config emulator.yaml [--state state.json]",
		Short: "Serve a local IAM Roles Anywhere + STS endpoint that verifies what AWS verifies",
		Long: `Serve CreateSession (POST /sessions), STS GetCallerIdentity (POST /) and
GET /health from in-memory state seeded from a YAML file, so a whole Roles
Anywhere setup runs and is tested offline.

Every CreateSession is checked as AWS checks it: the SigV4-X509 signature
(RSA, ECDSA or ML-DSA), the leaf certificate (v3, CA=false,
digitalSignature, SHA-256+, RSA 2048-4096, ECDSA P-256/P-384 or
ML-DSA-44/65/87, a subject, valid now), its chain of at most 5 certificates
to the trust anchor's bundle, the anchor's CRLs, anchor and profile
enabled, the role in the profile, the role's trust policy, the duration
against the role's maximum, the session name and the profile's session
policies. A refusal carries AWS's status and error code, and says which
rule failed, in the response and in the log. docs/emulator.md lists every
rule with its AWS source and the test that proves it.

It serves plain HTTP on loopback only; give --tls-cert and --tls-key to
serve HTTPS, which may listen on any address. Credentials it issues are
random and accepted only by this process's STS, until they expire.

The control plane (IAM Roles Anywhere's API and IAM's role operations, for
Terraform, the AWS CLI and the SDKs) answers requests signed with an
operator key from the seed's operators. With --state FILE, what the control
plane creates survives restarts.

The seed file's format is in docs/emulator.md.`,
		Example: `  keyless emulator --config emulator.yaml --listen 127.0.0.1:8443 --outputs outputs.json

  # then, in another shell:
  keyless credential-process --endpoint http://127.0.0.1:8443 \
    --trust-anchor-arn "$(jq -r '.trustAnchors["gitlab-runner-ca"]' outputs.json)" ...
  aws sts get-caller-identity --endpoint-url http://127.0.0.1:8443`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if configPath == "" {
				return usageErrorf("--config is required: the seed file with the account, trust anchors, roles and profiles")
			}
			if (tlsCert == "") != (tlsKey == "") {
				return usageErrorf("--tls-cert and --tls-key go together")
			}
			logger, err := logs.logger(cmd, s.err, true)
			if err != nil {
				return err
			}
			seed, err := emulator.LoadSeed(configPath)
			if err != nil {
				return withHint(err, "the seed format is in docs/emulator.md; field names follow the AWS API (trustAnchors, roles, profiles)")
			}
			var tlsConfig *tls.Config
			if tlsCert != "" {
				pair, err := tls.LoadX509KeyPair(tlsCert, tlsKey)
				if err != nil {
					return fmt.Errorf("--tls-cert %s / --tls-key %s: %w", tlsCert, tlsKey, err)
				}
				tlsConfig = &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
			}
			if _, _, err := net.SplitHostPort(listen); err != nil {
				return usageErrorf("--listen %q: %v (want HOST:PORT such as 127.0.0.1:8443)", listen, err)
			}
			emu, err := emulator.New(emulator.Config{Seed: seed, Logger: logger, StatePath: statePath})
			var stateErr *emulator.StateFileError
			if errors.As(err, &stateErr) && !stateErr.Refused {
				return fmt.Errorf("--state: %w", err)
			}
			if errors.As(err, &stateErr) {
				return withHint(fmt.Errorf("--state: %w", err), "the state file is written by keyless emulator only, for the seed's account and region, and an older version's file is refused when a resource in it breaks a rule added since (the error names it); move the file away (or delete it) to start again from the seed")
			}
			if err != nil {
				return err
			}
			// Ctrl-C and SIGTERM are handled from before --outputs tells a
			// script that the emulator is serving.
			ctx, stop := daemonContext(cmd.Context(), nil)
			defer stop()
			srv, err := emulator.Start(listen, emu, tlsConfig, logger)
			if errors.Is(err, emulator.ErrPlainHTTP) {
				return withHint(&usageError{err: fmt.Errorf("--listen %w", err)}, "listen on 127.0.0.1, or give --tls-cert and --tls-key to serve HTTPS on other addresses")
			}
			if err != nil {
				return fmt.Errorf("--listen %w", err)
			}
			defer srv.Close()
			for _, w := range seed.Warnings {
				logger.Warn(w)
			}
			fmt.Fprintf(s.out, "keyless emulator: serving %s for account %s in %s\n", srv.URL(), seed.Account, seed.Region)
			fmt.Fprint(s.out, emu.Summary())
			if outputs != "" {
				data, err := json.MarshalIndent(emu.Outputs(srv.URL()), "", "  ")
				if err != nil {
					return err
				}
				// ARNs are not secret; scripts running as another user may
				// read them.
				if err := atomicfile.WriteFile(outputs, append(data, '\n'), 0o644); err != nil {
					return fmt.Errorf("--outputs %s: %w", outputs, err)
				}
			}
			select {
			case <-ctx.Done():
				return srv.Close()
			case <-srv.Done():
				return srv.Err()
			}
		},
	}
	f := cmd.Flags()
	f.StringVar(&configPath, "config", "", "seed `file` (YAML): account, region, trustAnchors, roles, profiles")
	f.StringVar(&listen, "listen", "127.0.0.1:8443", "`address` to serve on; port 0 picks a free port")
	f.StringVar(&statePath, "state", "", "keep the resources in this JSON `file` across restarts: loaded at start when it exists (in place of the seed's resources), rewritten atomically before every change is answered")
	f.StringVar(&outputs, "outputs", "", "write the endpoint and every resource's ARN to this JSON `file` once serving")
	f.StringVar(&tlsCert, "tls-cert", "", "serve HTTPS with this certificate `file` (PEM, with its chain)")
	f.StringVar(&tlsKey, "tls-key", "", "private key `file` for --tls-cert")
	logs = registerLogFlags(cmd, "log only refusals, not every session")
	return cmd
}
