package cli

import (
	"crypto"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/keyless-dev/keyless/internal/identity"
	"github.com/keyless-dev/keyless/internal/pki"
)

type signStringOptions struct {
	keys   keyFlags
	format string
	digest string
	debug  bool
}

func newSignStringCommand(s streams) *cobra.Command {
	o := &signStringOptions{}
	cmd := &cobra.Command{
		Use:   "sign-string",
		Short: "Sign AWS's fixed test string with a private key, as aws_signing_helper sign-string does",
		Long: `Sign the fixed string AWS's credential helper signs in its sign-string
command ("AWS Roles Anywhere Credential Helper Signing Test" || "1" ||
SHA-256("IAM RA" || public key)), and print the signature as hex (text), a JSON
string (json, the default) or raw bytes (bin). It checks that a key can sign
without calling AWS. RSA keys sign with PKCS#1 v1.5, ECDSA keys with ASN.1 DER.`,
		Example: `  keyless sign-string --private-key runner.key --format text
  keyless sign-string --certificate runner.p12 --pkcs8-password-file p12.pass --digest SHA384`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.keys.check(cmd.Flags()); err != nil {
				return err
			}
			return runSignString(s, o)
		},
	}
	fs := cmd.Flags()
	o.keys.register(fs, s.in, "certificate (a PKCS#12 file holding the key, or a PEM certificate checked against --private-key)", "path to the private key", false)
	fs.StringVar(&o.format, "format", "json", "output: json (a JSON string of hex), text (hex) or bin (raw signature bytes)")
	fs.StringVar(&o.digest, "digest", "SHA256", "digest: SHA256, SHA384 or SHA512")
	fs.BoolVar(&o.debug, "debug", false, "log each step to stderr")
	return cmd
}

func runSignString(s streams, o *signStringOptions) error {
	var hash crypto.Hash
	switch o.digest {
	case "SHA256":
		hash = crypto.SHA256
	case "SHA384":
		hash = crypto.SHA384
	case "SHA512":
		hash = crypto.SHA512
	default:
		return usageErrorf("--digest %q: must be SHA256, SHA384 or SHA512", o.digest)
	}
	if o.format != "json" && o.format != "text" && o.format != "bin" {
		return usageErrorf("--format %q: must be json, text or bin", o.format)
	}
	if o.keys.privateKey == "" && o.keys.certificate == "" {
		return usageErrorf("missing --private-key (or --certificate with a PKCS#12 file)")
	}
	logger := newLogger(s.err, o.debug)
	var key crypto.Signer
	if o.keys.certificate != "" {
		id, err := identity.Load(o.keys.files(), o.keys.passwordFunc(), zeroTime)
		if err != nil {
			return err
		}
		key = id.Key
	} else {
		k, err := identity.LoadKey(o.keys.privateKey, o.keys.passwordFunc())
		if err != nil {
			return err
		}
		key = k
	}
	logger.Debug("signing the fixed test string", "digest", o.digest)
	sig, err := pki.SignTestMessage(key, hash)
	if err != nil {
		return err
	}
	switch o.format {
	case "text":
		_, err = fmt.Fprint(s.out, hex.EncodeToString(sig))
	case "json":
		b, _ := json.Marshal(hex.EncodeToString(sig))
		_, err = s.out.Write(b)
	case "bin":
		_, err = s.out.Write(sig)
	}
	return err
}
