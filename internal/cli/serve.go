package cli

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/spf13/cobra"

	"github.com/keyless-dev/keyless/internal/awscreds"
	"github.com/keyless-dev/keyless/internal/buildinfo"
	"github.com/keyless-dev/keyless/internal/credserve"
	"github.com/keyless-dev/keyless/internal/sdnotify"
)

func newServeCommand(s streams) *cobra.Command {
	var (
		keys      keyFlags
		r         awscreds.Request
		address   string
		allowFrom []string
		port      int
		hopLimit  int
		debug     bool
		logs      *logFlags
	)
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve temporary AWS credentials over a local IMDSv2 endpoint, as aws_signing_helper serve does",
		Long: `Serve the credentials of one Roles Anywhere session on a local endpoint that
speaks the EC2 Instance Metadata Service (IMDSv2): every AWS SDK and the AWS
CLI find it through AWS_EC2_METADATA_SERVICE_ENDPOINT. It takes the flags of
AWS's aws_signing_helper serve (those of credential-process, --port and
--hop-limit), so switching is one word.

Unlike the helper it:
- caches the session in memory and refreshes it ahead (one CreateSession
  however many requests), and through a Roles Anywhere outage answers the
  last good credentials until 15 minutes before they expire (a third of the
  session for sessions under 45 minutes), then 503: never empty or expired
  credentials with 200;
- listens on --address, 127.0.0.1 by default. On any other address (a
  container bridge such as 172.17.0.1, or 0.0.0.0) the hop limit defaults to
  1, so no answer crosses a router; an explicit --hop-limit there is obeyed
  and logged as a warning. IMDS has no per-caller authentication, so off
  loopback it answers only this host and the subnets of its bridges
  (Docker's networks), plus --allow-from; every container there gets the
  credentials (keyless agent gives each CI job its own instead);
- answers only requests addressed to an IP address or localhost (a
  DNS-rebinding page in a browser cannot reach it), and 404 for role names
  it does not serve;
- gets the first credentials before it reports ready, so a wrong key,
  password or ARN fails at start (exit 1), not at the first request.

It prints the export line for AWS_EC2_METADATA_SERVICE_ENDPOINT on standard
output once it serves, and stops on SIGINT or SIGTERM, letting requests in
flight finish. docs/serve.md has more.`,
		Example: `  keyless serve --certificate /etc/keyless/runner.crt --private-key /etc/keyless/runner.key \
      --trust-anchor-arn arn:aws:rolesanywhere:us-east-1:111122223333:trust-anchor/3f7c1a0e-0000-4000-8000-000000000001 \
      --profile-arn arn:aws:rolesanywhere:us-east-1:111122223333:profile/3f7c1a0e-0000-4000-8000-000000000002 \
      --role-arn arn:aws:iam::111122223333:role/ci-deployer
  # in another shell:
  AWS_EC2_METADATA_SERVICE_ENDPOINT=http://127.0.0.1:9911/ aws sts get-caller-identity

  # For the containers on Docker's default bridge (hop limit 1 by default):
  keyless serve --address 172.17.0.1 ... # then in a container: AWS_EC2_METADATA_SERVICE_ENDPOINT=http://172.17.0.1:9911/`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			fs := cmd.Flags()
			if err := keys.check(fs); err != nil {
				return err
			}
			if debug {
				if fs.Changed("log-level") {
					return usageErrorf("--debug means --log-level debug, which contradicts --log-level %s; give one of them", fs.Lookup("log-level").Value)
				}
				if err := fs.Set("log-level", "debug"); err != nil {
					return err
				}
			}
			hop := 0 // the default for the address
			if fs.Changed("hop-limit") {
				if hopLimit < 1 || hopLimit > 255 {
					return usageErrorf("--hop-limit %d: must be 1 to 255 (the IP TTL of the answers)", hopLimit)
				}
				hop = hopLimit
			}
			logger, err := logs.logger(cmd, s.err, true)
			if err != nil {
				return err
			}
			r.Files, r.Password = keys.files(), keys.passwordFunc()
			var from []netip.Prefix
			for _, c := range allowFrom {
				p, err := netip.ParsePrefix(c)
				if err != nil {
					return usageErrorf("--allow-from %q: want a CIDR range such as 10.8.0.0/24", c)
				}
				from = append(from, p.Masked())
			}
			srv, err := credserve.New(credserve.Options{Request: r, Address: address, Port: port, HopLimit: hop, Logger: logger, AllowFrom: from,
				Fetcher: awscreds.Fetcher{Name: flagName, Logger: logger, UserAgent: buildinfo.UserAgent()},
				Events: func(e credserve.Event) {
					switch e := e.(type) {
					case credserve.Listening:
						fmt.Fprintf(s.out, "export AWS_EC2_METADATA_SERVICE_ENDPOINT=%s\n", e.URL)
					case credserve.Ready:
						notify(logger, sdnotify.Ready)
					}
				}})
			var oe *credserve.OptionError
			if errors.As(err, &oe) {
				return usageErrorf("%v", oe)
			}
			if err != nil {
				return err
			}
			ctx, stop := daemonContext(cmd.Context(), nil)
			defer stop()
			err = srv.Run(ctx)
			notify(logger, sdnotify.Stopping)
			var se *credserve.StartError
			if errors.As(err, &se) && se.Listen {
				return withHint(err, "another process may hold the port (the helper's serve uses 9911 too); choose another with --port")
			}
			return err
		},
	}
	fs := cmd.Flags()
	registerSessionFlags(fs, s.in, &keys, &r)
	fs.StringVar(&address, "address", credserve.DefaultAddress, "IP `address` to listen on; on any address but loopback the hop limit defaults to 1")
	fs.StringArrayVar(&allowFrom, "allow-from", nil, "off loopback, also answer sources in this `CIDR` range (repeatable; default: only this host and its bridges' subnets)")
	fs.IntVar(&port, "port", credserve.DefaultPort, "port to listen on (0 picks a free one, printed at start)")
	fs.IntVar(&hopLimit, "hop-limit", 0, "IP TTL of the answers, 1 to 255 (default 64 on loopback, 1 on any other --address)")
	fs.BoolVar(&debug, "debug", false, "log each step (the same as --log-level debug; never keys or credentials)")
	logs = registerLogFlags(cmd, "")
	return cmd
}
