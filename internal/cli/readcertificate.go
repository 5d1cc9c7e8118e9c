package cli

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"time"

	"github.com/spf13/cobra"

	"github.com/keyless-dev/keyless/internal/identity"
)

// zeroTime asks identity.Load to skip the leaf's validity checks: the
// diagnostic commands must work on any certificate, expired ones included.
var zeroTime time.Time

type readCertificateOptions struct {
	keys  keyFlags
	debug bool
}

// certificateData is what aws_signing_helper read-certificate-data prints,
// fields in its order.
type certificateData struct {
	KeyType         string   `json:"keyType"`
	CertificateData string   `json:"certificateData"`
	SerialNumber    string   `json:"serialNumber"`
	Algorithms      []string `json:"supportedAlgorithms"`
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
			keyType := ""
			switch cert.PublicKeyAlgorithm {
			case x509.RSA:
				keyType = "RSA"
			case x509.ECDSA:
				keyType = "EC"
			}
			data, err := json.Marshal(certificateData{
				KeyType:         keyType,
				CertificateData: base64.StdEncoding.EncodeToString(cert.Raw),
				SerialNumber:    cert.SerialNumber.String(),
				Algorithms:      []string{keyType + "SHA256", keyType + "SHA384", keyType + "SHA512"},
			})
			if err != nil {
				return err
			}
			_, err = s.out.Write(data)
			return err
		},
	}
	fs := cmd.Flags()
	o.keys.register(fs, "path to the certificate (PEM, DER or PKCS#12)", "", false)
	_ = fs.MarkHidden("private-key")
	fs.BoolVar(&o.debug, "debug", false, "log each step to stderr")
	return cmd
}
