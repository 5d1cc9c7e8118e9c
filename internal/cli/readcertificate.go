package cli

import (
	"encoding/json"
	"time"

	"github.com/spf13/cobra"

	"github.com/keyless-dev/keyless/internal/identity"
	"github.com/keyless-dev/keyless/internal/pki"
)

// zeroTime asks identity.Load to skip the leaf's validity checks: the
// diagnostic commands must work on any certificate, expired ones included.
var zeroTime time.Time

type readCertificateOptions struct {
	keys  keyFlags
	debug bool
}

func newReadCertificateDataCommand(s streams) *cobra.Command {
	o := &readCertificateOptions{}
	cmd := &cobra.Command{
		Use:   "read-certificate-data",
		Short: "Print a certificate's key type, base64 DER and serial, as aws_signing_helper read-certificate-data does",
		Long: `Print the JSON that AWS's credential helper prints for a certificate file:
keyType (RSA or EC), certificateData (the base64 DER sent in X-Amz-X509),
serialNumber (decimal, as in the Authorization header's Credential) and
supportedAlgorithms. For a file with several certificates, the first one is read.`,
		Example: `  keyless read-certificate-data --certificate /etc/keyless/runner.crt`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.keys.check(cmd.Flags()); err != nil {
				return err
			}
			if o.keys.certificate == "" {
				return usageErrorf("missing --certificate")
			}
			cert, err := identity.LoadCertificate(o.keys.certificate, o.keys.passwordFunc())
			if err != nil {
				return err
			}
			newLogger(s.err, o.debug).Debug("read certificate", "subject", cert.Subject.String())
			data, err := json.Marshal(pki.HelperCertificateData(cert))
			if err != nil {
				return err
			}
			_, err = s.out.Write(data)
			return err
		},
	}
	fs := cmd.Flags()
	o.keys.register(fs, s.in, "path to the certificate (PEM, DER or PKCS#12)", "", false)
	_ = fs.MarkHidden("private-key")
	fs.BoolVar(&o.debug, "debug", false, "log each step to stderr")
	return cmd
}
