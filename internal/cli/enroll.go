package cli

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/keyless-dev/keyless/internal/caclient"
	"github.com/keyless-dev/keyless/internal/enroll"
	"github.com/keyless-dev/keyless/internal/pki"
	"github.com/keyless-dev/keyless/internal/secretfile"
)

// caFlags are --ca-url and --root, defaulting to what bootstrap stored.
type caFlags struct {
	url, root string
}

func (f *caFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.url, "ca-url", "", "the CA's `URL`, https://host:port (default: what keyless bootstrap stored)")
	cmd.Flags().StringVar(&f.root, "root", "", "the CA's root certificate `file` (default: what keyless bootstrap stored)")
}

func (f *caFlags) client() (*caclient.Client, error) {
	trust, err := enroll.LoadTrust(enroll.DefaultConfigDir(), f.url, f.root)
	if err != nil {
		return nil, err
	}
	return trust.Client(caclient.Options{})
}

func newBootstrapCommand(s streams) *cobra.Command {
	var caURL, fingerprint string
	cmd := &cobra.Command{
		Use:   "bootstrap --ca-url URL --fingerprint SHA256",
		Short: "Trust a CA by its root fingerprint and remember its URL",
		Long: `Fetch the CA's root certificate, check that its SHA-256 is the fingerprint
(given out of band: keyless ca fingerprint, or step certificate fingerprint
on the CA host), and store it and the CA URL in keyless's configuration
directory ($XDG_CONFIG_HOME/keyless, else ~/.config/keyless), where
keyless certificate and keyless renew find them. A mismatch stores
nothing.`,
		Example: `  keyless bootstrap --ca-url https://10.0.0.5:9000 --fingerprint 0f1e2d...`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if caURL == "" || fingerprint == "" {
				return usageErrorf("--ca-url and --fingerprint are required")
			}
			t, err := enroll.Bootstrap(cmd.Context(), enroll.DefaultConfigDir(), caURL, fingerprint)
			if err != nil {
				return err
			}
			fmt.Fprintf(s.out, "keyless: trusting root %q (%s) of %s\n", t.Root.Subject.CommonName, pki.Fingerprint(t.Root), caURL)
			fmt.Fprintf(s.out, "Root: %s\n", t.RootFile)
			return nil
		},
	}
	cmd.Flags().StringVar(&caURL, "ca-url", "", "the CA's `URL`, https://host:port")
	cmd.Flags().StringVar(&fingerprint, "fingerprint", "", "the root certificate's SHA-256 `fingerprint` (hex)")
	return cmd
}

func newCertificateCommand(s streams) *cobra.Command {
	var (
		ca        caFlags
		r         enroll.Request
		pwFile    string
		tokenFile string
	)
	cmd := &cobra.Command{
		Use:   "certificate SUBJECT CRT KEY",
		Short: "Get a certificate from a step-compatible CA (keyless ca or step-ca)",
		Long: `Generate a key here (it never leaves this machine), make a CSR for SUBJECT
and the --san names, get a one-time token, and have the CA sign it. The
token comes from --token-file (made on the CA host with keyless ca token;
- reads it from standard input) or KEYLESS_TOKEN, or from the
provisioner's password (--provisioner-password-file), which decrypts the
provisioner key the CA serves. A token or password on the command line is
refused: any user on the machine could read it there and spend it first. CRT gets the certificate and
the intermediate after it (or the intermediate goes to --chain-file); KEY
gets the key, 0600. Both are written as a pair, atomically. Existing files
are replaced only with --force.`,
		Example: `  ssh ca-host keyless ca token gitlab-runner | keyless certificate gitlab-runner runner.crt runner.key --token-file - --not-after 168h
  keyless certificate gitlab-runner runner.crt runner.key --provisioner runners --provisioner-password-file pw
  keyless certificate gitlab-runner runner.crt runner.key --token-file token --kty ML-DSA-65   # post-quantum: AWS4-X509-MLDSA`,
		Args: cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			r.Subject, r.CertPath, r.KeyPath = args[0], args[1], args[2]
			if tokenFile != "" && r.Token != "" {
				return usageErrorf("--token-file and KEYLESS_TOKEN both given; use one")
			}
			if (r.Token == "" && tokenFile == "") == (pwFile == "") {
				return usageErrorf("give --token-file (or KEYLESS_TOKEN) or --provisioner-password-file")
			}
			if tokenFile != "" {
				tok, err := secretfile.Read("--token-file", tokenFile, s.in)
				if err != nil {
					return err
				}
				r.Token = strings.TrimSpace(string(tok))
			}
			if pwFile != "" {
				var err error
				if r.ProvisionerPassword, err = secretfile.Read("--provisioner-password-file", pwFile, s.in); err != nil {
					return err
				}
			}
			client, err := ca.client()
			if err != nil {
				return err
			}
			certs, err := (&enroll.Enroller{Client: client}).Enroll(cmd.Context(), r)
			if err != nil {
				return err
			}
			fmt.Fprintf(s.out, "keyless: certificate for %s, serial %s, valid until %s\n", r.Subject, certs.Leaf.SerialNumber,
				certs.Leaf.NotAfter.UTC().Format(time.RFC3339))
			return nil
		},
	}
	ca.register(cmd)
	f := cmd.Flags()
	f.StringSliceVar(&r.SANs, "san", nil, "a subject alternative `name` (repeatable; default: the subject)")
	f.StringVar(&r.NotAfter, "not-after", "", "when the certificate expires: a `duration` from now (168h) or an RFC 3339 time (default: the CA's)")
	f.StringVar(&r.NotBefore, "not-before", "", "when it becomes valid (default: now)")
	f.StringVar(&r.Provisioner, "provisioner", "", "the JWK provisioner's `name` (default: the CA's only one)")
	f.StringVar(&pwFile, "provisioner-password-file", "", "`file` holding the provisioner's password on its first line (- reads standard input); yours, mode 0600")
	f.StringVar(&tokenFile, "token-file", "", "`file` holding a one-time token made on the CA host (keyless ca token or step ca token); - reads standard input; or set KEYLESS_TOKEN")
	// --token exists so KEYLESS_TOKEN can set it and so that step's
	// spelling gets a refusal that shows the safe forms, not "unknown flag".
	f.StringVar(&r.Token, "token", "", "the token itself: only through KEYLESS_TOKEN")
	_ = f.MarkHidden("token")
	secretFlag(f, "token", true, "--token-file FILE, --token-file - (standard input) or the KEYLESS_TOKEN environment variable")
	f.StringVar(&r.KeyType, "kty", enroll.KeyEC, "key type: EC (P-256), RSA, or ML-DSA-44, ML-DSA-65 or ML-DSA-87 (post-quantum; ML-DSA means ML-DSA-65)")
	f.IntVar(&r.KeySize, "size", 2048, "RSA key size in bits (2048, 3072 or 4096)")
	f.StringVar(&r.ChainPath, "chain-file", "", "write the intermediate here instead of after the leaf in CRT")
	f.BoolVar(&r.Force, "force", false, "replace existing files")
	return cmd
}
