package cli

import (
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"net"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/keyless-dev/keyless/internal/atomicfile"
	"github.com/keyless-dev/keyless/internal/buildinfo"
	"github.com/keyless-dev/keyless/internal/ca"
	"github.com/keyless-dev/keyless/internal/caops"
	"github.com/keyless-dev/keyless/internal/caproto"
	"github.com/keyless-dev/keyless/internal/pki"
	"github.com/keyless-dev/keyless/internal/sdnotify"
	"github.com/keyless-dev/keyless/internal/secretfile"
	"github.com/keyless-dev/keyless/internal/store"
)

func newCACommand(s streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ca",
		Short: "Run a small private CA for workload certificates, compatible with the step CLI",
		Long: `keyless ca is a private certificate authority for runner certificates: it
issues short-lived certificates fit for IAM Roles Anywhere to holders of a
one-time token, renews and revokes them, and publishes a CRL. It speaks
step-ca's API, so the step CLI and smallstep's client library work with it.

Each provisioner has a policy: the names it may issue (so the CN your AWS
trust policy trusts cannot be minted by every password holder), and the
default, minimum and maximum lifetimes (24h, 5m and 168h unless changed).`,
		Example: `  keyless ca init --name "Homelab CA" --dns 10.0.0.5 --address :9000 --provisioner runners --allow 'gitlab-runner' --allow 'gitlab-runner-*' --password-file pw
  keyless ca serve --password-file pw
  keyless ca bundle > trust-anchor.pem`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newCAInitCommand(s), newCAServeCommand(s), newCATokenCommand(s), newCARevokeCommand(s),
		newCAListCommand(s), newCABundleCommand(s), newCAFingerprintCommand(s), newCACRLCommand(s))
	return cmd
}

// caDirFlags are the flags of commands that work on a CA directory.
type caDirFlags struct {
	dir, passwordFile, provPasswordFile, url string
	in                                       io.Reader // for a password file named -
}

func (f *caDirFlags) register(cmd *cobra.Command, in io.Reader, secrets bool) {
	f.in = in
	cmd.Flags().StringVar(&f.dir, "dir", caops.DefaultDir(), "the CA `directory`")
	if secrets {
		cmd.Flags().StringVar(&f.passwordFile, "password-file", "", "`file` holding the CA's password")
		cmd.Flags().StringVar(&f.provPasswordFile, "provisioner-password-file", "", "`file` holding the provisioner key's own password, when it has one (used while the CA runs)")
		cmd.Flags().StringVar(&f.url, "ca-url", "", "the running CA's `URL` (default: https://<first DNS name>:<port>)")
	}
}

// password reads --password-file, refusing one others can read.
func (f *caDirFlags) password() ([]byte, error) {
	if f.passwordFile == "" {
		return nil, caops.ErrNoPassword
	}
	return secretfile.Read("--password-file", f.passwordFile, f.in)
}

// warnWeak warns about a password too short for what it protects, one
// made before keyless refused those: ca init no longer takes it, but a
// CA made with it still opens.
func warnWeak(w io.Writer, what string, password []byte) {
	if err := secretfile.CheckStrength(what, password); err != nil {
		fmt.Fprintf(w, "keyless: warning: %v\nkeyless: hint: make a new CA with a longer password (keyless ca init --generate-password) and move runners to it\n", err)
	}
}

// provisionerPassword reads --provisioner-password-file by the same rule.
func (f *caDirFlags) provisionerPassword() ([]byte, error) {
	return secretfile.Read("--provisioner-password-file", f.provPasswordFile, f.in)
}

func (f *caDirFlags) requirePassword() ([]byte, error) {
	pw, err := f.password()
	if errors.Is(err, caops.ErrNoPassword) {
		return nil, usageErrorf("--password-file is required: the file holding the CA's password")
	}
	return pw, err
}

func (f *caDirFlags) secrets() caops.Secrets {
	s := caops.Secrets{Password: f.password}
	if f.provPasswordFile != "" {
		s.ProvisionerPassword = f.provisionerPassword
	}
	return s
}

// connect opens the CA for an operator command: its directory, or its API
// while it runs.
func (f *caDirFlags) connect(access caops.Access) (caops.Operator, error) {
	d, err := caops.Open(f.dir)
	if err != nil {
		return nil, err
	}
	op, err := d.Connect(access, f.secrets(), caops.ConnectOptions{CAURL: f.url})
	if errors.Is(err, caops.ErrNoPassword) {
		return nil, usageErrorf("--password-file is required: the file holding the CA's password")
	}
	return op, err
}

func newCAInitCommand(s streams) *cobra.Command {
	var (
		f        caDirFlags
		o        ca.InitOptions
		generate bool
	)
	cmd := &cobra.Command{
		Use:   "init --name NAME --dns ADDR... --address :9000 --provisioner NAME --password-file F",
		Short: "Create a CA: root and intermediate keys and certificates, a provisioner, the configuration",
		Long: `Create a CA in --dir: a root (10 years) and an intermediate CA, P-256 by
default, with their keys encrypted with the password (encrypted PKCS#8,
readable by openssl pkey); a JWK provisioner whose private key is stored
encrypted with the same password, as step-ca stores it; and
config/ca.yaml. It prints the root fingerprint clients bootstrap with. An
IP given to --dns becomes an IP SAN of the CA's TLS certificate. An
existing CA is never overwritten.

--allow sets the names (subject CN and SANs) the provisioner may issue;
"*" matches one or more letters, digits, - or _ within one DNS label, or
one URI path segment ("gitlab-runner-*" does not match
gitlab-runner-x.evil.com).
Without --allow it may issue any name: restrict it to the names your AWS
trust policy expects.`,
		Example: `  keyless ca init --name "Homelab CA" --dns 10.0.0.5 --dns ca.lan --address :9000 \
    --provisioner runners --allow gitlab-runner --allow 'gitlab-runner-*' --password-file /etc/keyless/ca-password`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.Name == "" || len(o.DNSNames) == 0 || o.Address == "" || o.Provisioner == "" {
				return usageErrorf("--name, --dns, --address and --provisioner are required")
			}
			if o.KeyType != "EC" && o.KeyType != "RSA" {
				return usageErrorf("--kty %q: want EC or RSA", o.KeyType)
			}
			if _, _, err := net.SplitHostPort(o.Address); err != nil {
				return usageErrorf("--address %q: want [HOST]:PORT such as :9000", o.Address)
			}
			var err error
			if generate {
				if f.passwordFile == "" {
					return usageErrorf("--generate-password needs --password-file: the file to write the new password to")
				}
				pw, err := secretfile.Generate()
				if err != nil {
					return err
				}
				if err := secretfile.WriteNew(f.passwordFile, []byte(pw)); err != nil {
					if errors.Is(err, fs.ErrExist) {
						return withHint(fmt.Errorf("--password-file %s exists", f.passwordFile), "keyless never replaces a password file: drop --generate-password to use the password in it, or name a new file")
					}
					return fmt.Errorf("--password-file %s: %w", f.passwordFile, err)
				}
				fmt.Fprintf(s.out, "keyless ca: wrote a new random password to %s (0600); keep a copy somewhere safe: without it the CA keys cannot be opened\n", f.passwordFile)
			}
			if o.Password, err = f.requirePassword(); err != nil {
				return err
			}
			if f.provPasswordFile != "" {
				if o.ProvisionerPassword, err = f.provisionerPassword(); err != nil {
					return err
				}
			}
			d, err := caops.Init(f.dir, o)
			if err != nil {
				return err
			}
			cfg := d.Config
			fmt.Fprintf(s.out, "keyless ca: created %q in %s\n", o.Name, f.dir)
			fmt.Fprintf(s.out, "Root fingerprint: %s\n", pki.Fingerprint(d.Root))
			fmt.Fprintf(s.out, "Root certificate: %s\n", cfg.Path(cfg.Root))
			fmt.Fprintf(s.out, "Provisioner: %s (JWK), may issue: %s\n", o.Provisioner, strings.Join(cfg.Provisioners[0].Allow, ", "))
			fmt.Fprintf(s.out, "Start it:     keyless ca serve --dir %s --password-file %s\n", f.dir, f.passwordFile)
			fmt.Fprintf(s.out, "Trust anchor: keyless ca bundle --dir %s > bundle.pem\n", f.dir)
			if f.provPasswordFile == "" {
				fmt.Fprintf(s.err, "keyless: note: the provisioner key is encrypted with the CA password, as step ca init does; anyone enrolling with keyless certificate --provisioner-password-file learns it (mint tokens on the CA host with keyless ca token, or give --provisioner-password-file)\n")
			}
			if len(o.Allow) == 0 {
				fmt.Fprintf(s.err, "keyless: warning: provisioner %s may issue any name; anyone with the password can mint the CN your AWS trust policy trusts (set allow in %s)\n",
					o.Provisioner, cfg.Path(ca.ConfigFile))
			}
			return nil
		},
	}
	f.register(cmd, s.in, false)
	fl := cmd.Flags()
	fl.StringVar(&o.Name, "name", "", "the CA's `name`")
	fl.StringSliceVar(&o.DNSNames, "dns", nil, "a DNS name or IP `address` clients reach the CA by (repeatable)")
	fl.StringVar(&o.Address, "address", "", "`[host]:port` to serve on, such as :9000")
	fl.StringVar(&o.Provisioner, "provisioner", "", "`name` of the first provisioner (JWK)")
	fl.StringSliceVar(&o.Allow, "allow", nil, "`pattern` of names the provisioner may issue (repeatable; * is a wildcard within one label or path segment): plain patterns match the CN and DNS names, uri:, email: and ip: patterns those SANs")
	fl.StringVar(&f.passwordFile, "password-file", "", "`file` holding the password for the CA keys (and the provisioner key, unless --provisioner-password-file): at least 12 characters on its first line; yours, mode 0600")
	fl.BoolVar(&generate, "generate-password", false, "write a new random password to --password-file (which must not exist) and use it")
	fl.StringVar(&f.provPasswordFile, "provisioner-password-file", "", "`file` holding a separate password for the provisioner key, the one runners enrol with (at least 12 characters)")
	fl.StringVar(&o.KeyType, "kty", "EC", "key type of the CA keys: EC (P-256) or RSA (3072)")
	return cmd
}

func newCAServeCommand(s streams) *cobra.Command {
	var (
		f          caDirFlags
		unit, user string
		logs       *logFlags
	)
	cmd := &cobra.Command{
		Use:   "serve --password-file F",
		Short: "Serve the CA's step-compatible HTTPS API",
		Long: `Serve the CA on the address in its configuration, over HTTPS only (TLS 1.2
or later) with a 24-hour server certificate from the intermediate that is
renewed in process. Client certificates are requested, not required: mTLS
renewal and revocation use them.

It refuses to start when a key, the configuration (which holds the
encrypted provisioner key) or the password file can be read by group or
others. Every issued certificate, used token and revocation is recorded in
db/keyless.db (bbolt) before the client hears of it.

SIGHUP reloads config/ca.yaml (provisioners and policies); SIGTERM or
Ctrl-C lets requests in flight finish, then exits.

It runs Go's garbage collector with GOGC=400 rather than 100: the heap may
grow to five times what is live (a few tens of MB) for a quarter of the
collections. GOGC in the environment overrides it; GOMEMLIMIT caps the heap
as for any Go program.

--print-unit writes a systemd unit or a launchd plist that serves this CA
as a service: on systemd as the user keyless (--user to choose), which
must own the CA directory and the password file, sandboxed so that it can
write only the database's directory.`,
		Example: `  keyless ca serve --dir /var/lib/keyless/ca --password-file /etc/keyless/ca-password
  keyless ca serve --dir /var/lib/keyless/ca --password-file /etc/keyless/ca-password --log-format json --log-level warn
  keyless ca serve --dir /var/lib/keyless/ca --password-file /etc/keyless/ca-password --print-unit systemd > /etc/systemd/system/keyless-ca.service`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if unit != "" {
				return printCAUnit(s, unit, &f, user, logs.args(cmd.Flags()))
			}
			if user != "" {
				return usageErrorf("--user goes with --print-unit: it names the user the service runs as")
			}
			logger, err := logs.logger(cmd, s.err, true)
			if err != nil {
				return err
			}
			d, err := caops.Open(f.dir)
			if err != nil {
				return err
			}
			password, err := f.requirePassword()
			if err != nil {
				return err
			}
			warnWeak(s.err, "--password-file", password)
			tuneServeGC()
			run, err := d.Start(caops.ServeOptions{Password: password, Version: "keyless/" + buildinfo.Read().Version, Logger: logger})
			if errors.Is(err, store.ErrLocked) {
				return withHint(err, "another keyless ca serve (or operator command) is using %s", f.dir)
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(s.out, "keyless ca: serving %s\n", run.Server.URL())
			fmt.Fprintf(s.out, "Root fingerprint: %s\n", run.Authority.RootFingerprint())
			ctx, stop := daemonContext(cmd.Context(), func() {
				notify(logger, sdnotify.Reloading)
				if n, err := run.Reload(); err != nil {
					logger.Error("reload failed; keeping the running configuration", "err", err)
				} else {
					logger.Info("reloaded the configuration", "provisioners", n)
				}
				notify(logger, sdnotify.Ready)
			})
			defer stop()
			notify(logger, sdnotify.Ready, sdnotify.Status("serving %s", run.Server.URL()))
			defer notify(logger, sdnotify.Stopping)
			return run.Serve(ctx)
		},
	}
	f.register(cmd, s.in, false)
	cmd.Flags().StringVar(&f.passwordFile, "password-file", "", "`file` holding the CA's password")
	cmd.Flags().StringVar(&unit, "print-unit", "", "print a service definition that serves this CA: systemd or launchd")
	cmd.Flags().StringVar(&user, "user", "", "with --print-unit: the `user` the service runs as (default: "+caops.DefaultUser+" for systemd, root for launchd)")
	logs = registerLogFlags(cmd, "log only refusals and errors, not every certificate")
	return cmd
}

func newCATokenCommand(s streams) *cobra.Command {
	var (
		f   caDirFlags
		r   caops.TokenRequest
		out string
	)
	cmd := &cobra.Command{
		Use:   "token SUBJECT",
		Short: "Mint a one-time enrollment token on the CA host",
		Long: `Print a one-time token that lets its holder get one certificate for SUBJECT
(and --san names), within the provisioner's policy. Made on the CA host, it
means the runner never learns the provisioner password: hand the token
over (through a pipe, or a file only you can read: --out writes one 0600),
and the runner runs keyless certificate SUBJECT CRT KEY --token-file FILE.
A token is a bearer secret until it is spent or expires: never put it on
a command line.`,
		Example: `  ssh ca-host keyless ca token gitlab-runner --dir /var/lib/keyless/ca --password-file /etc/keyless/ca-password \
    | keyless certificate gitlab-runner runner.crt runner.key --token-file -
  keyless ca token gitlab-runner --ttl 10m --password-file pw --out token`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			d, err := caops.Open(f.dir)
			if err != nil {
				return err
			}
			if f.provPasswordFile != "" {
				r.Password, err = f.provisionerPassword()
			} else {
				r.Password, err = f.requirePassword()
			}
			if err != nil {
				return err
			}
			warnWeak(s.err, "the provisioner's password", r.Password)
			r.Subject, r.CAURL = args[0], f.url
			tok, err := d.Token(r)
			if err != nil {
				return err
			}
			if out != "" {
				return atomicfile.WriteFile(out, []byte(tok+"\n"), 0o600)
			}
			fmt.Fprintln(s.out, tok)
			return nil
		},
	}
	f.register(cmd, s.in, false)
	fl := cmd.Flags()
	fl.StringVar(&f.passwordFile, "password-file", "", "`file` holding the CA password (which encrypts the provisioner key unless init was given --provisioner-password-file)")
	fl.StringVar(&f.provPasswordFile, "provisioner-password-file", "", "`file` holding the provisioner key's own password")
	fl.StringVar(&r.Provisioner, "provisioner", "", "provisioner `name` (default: the first)")
	fl.StringSliceVar(&r.SANs, "san", nil, "a subject alternative `name` (repeatable; default: the subject)")
	fl.DurationVar(&r.TTL, "ttl", caproto.DefaultTokenLifetime, "how long the token is valid (at most 24h)")
	fl.StringVar(&out, "out", "", "write the token to this `file` (0600, replaced atomically) instead of standard output")
	fl.StringVar(&f.url, "ca-url", "", "the CA's `URL` as clients reach it (default: https://<first DNS name>:<port>)")
	return cmd
}

func newCARevokeCommand(s streams) *cobra.Command {
	var (
		f   caDirFlags
		why revokeReason
	)
	cmd := &cobra.Command{
		Use:   "revoke SERIAL",
		Short: "Revoke a certificate: it goes on the CRL and can no longer renew",
		Long: `Revoke a certificate by its serial number (decimal, as keyless ca list
shows it; 0x-prefixed hex is accepted too). With the CA stopped this works
on its directory; while it runs, it goes through its API with a revoke
token made from the provisioner key. Renewal keeps a certificate's key, so
a revocation is of the key: every unexpired certificate the CA issued for
the same key (those it was renewed from, and renewed into) is revoked
with it, and none renews again; the runner enrolls again with a new key.
Re-publish the CRL to AWS afterwards (keyless ca crl, then aws
rolesanywhere import-crl or update-crl).`,
		Example: `  keyless ca revoke 245019374592847574937459837459 --reason "runner decommissioned" --password-file pw`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			serial, ok := parseSerial(args[0])
			if !ok {
				return usageErrorf("serial %q: want a decimal number (or 0x-prefixed hex)", args[0])
			}
			op, err := f.connect(caops.Keys)
			if err != nil {
				return err
			}
			defer op.Close()
			if err := op.Revoke(cmd.Context(), serial, why.code, why.text); err != nil {
				return err
			}
			fmt.Fprintf(s.out, "keyless ca: revoked %s\n", serial)
			return nil
		},
	}
	f.register(cmd, s.in, true)
	why.register(cmd)
	return cmd
}

func parseSerial(s string) (string, bool) {
	n := new(big.Int)
	if hexPart, ok := strings.CutPrefix(strings.ToLower(s), "0x"); ok {
		if _, ok := n.SetString(hexPart, 16); !ok {
			return "", false
		}
	} else if _, ok := n.SetString(s, 10); !ok {
		return "", false
	}
	if n.Sign() <= 0 {
		return "", false
	}
	return n.String(), true
}

func newCAListCommand(s streams) *cobra.Command {
	var (
		f        caDirFlags
		expiring time.Duration
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List issued certificates with their validity and revocation",
		Long: `List every certificate the CA issued, oldest first: serial, subject,
names, validity, provisioner, and whether it is revoked or expired.
--expiring 24h keeps the unrevoked ones that expire within 24 hours,
soonest first; the CA finds them through an index, without reading every
certificate. With the CA stopped it reads its database; while the CA runs
(and holds the database), it asks the CA's API with a token from the
provisioner key, which needs --password-file. The list is printed as it is
read; columns are aligned within each block of 1,000 rows.`,
		Example: `  keyless ca list --expiring 24h`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			op, err := f.connect(caops.Records)
			if err != nil {
				return err
			}
			defer op.Close()
			// A tabwriter holds its rows until Flush: flushing every
			// listBlock rows keeps a list of millions from being held.
			const listBlock = 1000
			tw := tabwriter.NewWriter(s.out, 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "SERIAL\tSUBJECT\tNAMES\tNOT AFTER\tPROVISIONER\tSTATUS")
			rows := 0
			err = op.List(cmd.Context(), caops.ListOptions{Expiring: expiring}, func(rec caops.Listed) error {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", rec.Serial, rec.Subject, strings.Join(rec.SANs, ","),
					rec.NotAfter.UTC().Format(time.RFC3339), rec.Provisioner, rec.Status)
				if rows++; rows%listBlock == 0 {
					return tw.Flush()
				}
				return nil
			})
			if errors.Is(err, caops.ErrNoPassword) {
				return withHint(err, "the running CA holds its database; pass --password-file to list through its API")
			}
			if err != nil {
				return err
			}
			return tw.Flush()
		},
	}
	f.register(cmd, s.in, true)
	cmd.Flags().DurationVar(&expiring, "expiring", 0, "only valid certificates that expire within this `duration`")
	return cmd
}

func newCABundleCommand(s streams) *cobra.Command {
	var f caDirFlags
	cmd := &cobra.Command{
		Use:   "bundle",
		Short: "Print the root and intermediate certificates: the Roles Anywhere trust anchor bundle",
		Long: `Print the root and intermediate CA certificates as PEM: the certificate
bundle of an IAM Roles Anywhere trust anchor (source type
CERTIFICATE_BUNDLE), or of the keyless emulator's.`,
		Example: `  keyless ca bundle > bundle.pem
  aws rolesanywhere create-trust-anchor --name runners --enabled \
    --source "sourceType=CERTIFICATE_BUNDLE,sourceData={x509CertificateData=$(keyless ca bundle)}"`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			d, err := caops.Open(f.dir)
			if err != nil {
				return err
			}
			_, err = s.out.Write(d.Bundle())
			return err
		},
	}
	f.register(cmd, s.in, false)
	return cmd
}

func newCAFingerprintCommand(s streams) *cobra.Command {
	var f caDirFlags
	cmd := &cobra.Command{
		Use:     "fingerprint",
		Short:   "Print the root certificate's SHA-256 fingerprint, for bootstrapping clients",
		Example: `  keyless bootstrap --ca-url https://10.0.0.5:9000 --fingerprint "$(keyless ca fingerprint)"`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			d, err := caops.Open(f.dir)
			if err != nil {
				return err
			}
			fmt.Fprintln(s.out, pki.Fingerprint(d.Root))
			return nil
		},
	}
	f.register(cmd, s.in, false)
	return cmd
}

func newCACRLCommand(s streams) *cobra.Command {
	var (
		f   caDirFlags
		out string
		der bool
	)
	cmd := &cobra.Command{
		Use:   "crl",
		Short: "Write the CA's current CRL, for Roles Anywhere's ImportCrl",
		Long: `Write the certificate revocation list (PEM by default, which ImportCrl
takes; --der for DER), signed by the intermediate. It lists the revoked
certificates that have not expired; when, as PEM, it is over 300,000
bytes, the most AWS's ImportCrl takes, it warns and says how to make it
smaller. While the CA runs, it is fetched from its API, which publishes it to anyone: no password is needed.
With the CA stopped it is made from the directory, and the password
(--password-file) unlocks the intermediate key.`,
		Example: `  keyless ca crl --dir /var/lib/keyless/ca --out ca.crl
  aws rolesanywhere import-crl --name runners --crl-data fileb://ca.crl --trust-anchor-arn ARN --enabled`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			op, err := f.connect(caops.Keys)
			var ue *usageError
			if errors.As(err, &ue) && f.passwordFile == "" {
				return withHint(err, "the CA in %s is not running, so the CRL is signed here, with its key; while keyless ca serve runs, keyless ca crl fetches the CRL it publishes, with no password", f.dir)
			}
			if err != nil {
				return err
			}
			defer op.Close()
			crl, err := op.CRL(cmd.Context())
			if err != nil {
				return err
			}
			var tooLarge *caops.CRLSizeError
			if errors.As(caops.CheckCRLSize(crl), &tooLarge) {
				fmt.Fprintf(s.err, "keyless: warning: %v\nkeyless: hint: %s\n", tooLarge, tooLarge.Hint())
			}
			if !der {
				crl = pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: crl})
			}
			if out == "" {
				_, err := s.out.Write(crl)
				return err
			}
			return atomicfile.WriteFile(out, crl, 0o644)
		},
	}
	f.register(cmd, s.in, true)
	cmd.Flags().StringVar(&out, "out", "", "write to this `file` instead of standard output")
	cmd.Flags().BoolVar(&der, "der", false, "write DER instead of PEM")
	return cmd
}
