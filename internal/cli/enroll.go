package cli

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/keyless-dev/keyless/internal/atomicfile"
	"github.com/keyless-dev/keyless/internal/caclient"
	"github.com/keyless-dev/keyless/internal/identity"
	"github.com/keyless-dev/keyless/internal/pki"
)

// configDir is where keyless bootstrap keeps the CA's root and URL.
func configDir() string {
	if d := os.Getenv("XDG_CONFIG_HOME"); d != "" {
		return filepath.Join(d, "keyless")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".config", "keyless")
	}
	return ".keyless"
}

// bootstrapped is what keyless bootstrap stores (config dir, ca.yaml).
type bootstrapped struct {
	CAURL       string `yaml:"ca-url"`
	Fingerprint string `yaml:"fingerprint"`
	Root        string `yaml:"root"`
}

// caFlags are --ca-url and --root, defaulting to what bootstrap stored.
type caFlags struct {
	url, root string
}

func (f *caFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.url, "ca-url", "", "the CA's `URL`, https://host:port (default: what keyless bootstrap stored)")
	cmd.Flags().StringVar(&f.root, "root", "", "the CA's root certificate `file` (default: what keyless bootstrap stored)")
}

// loadBootstrapped reads what keyless bootstrap stored.
func loadBootstrapped() (*bootstrapped, error) {
	path := filepath.Join(configDir(), "ca.yaml")
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var b bootstrapped
	if err := yaml.Unmarshal(data, &b); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &b, nil
}

func (f *caFlags) client() (*caclient.Client, error) {
	u, rootPath := f.url, f.root
	if u == "" || rootPath == "" {
		b, err := loadBootstrapped()
		if errors.Is(err, fs.ErrNotExist) {
			return nil, withHint(&usageError{err: errors.New("no CA: give --ca-url and --root")},
				"or run keyless bootstrap --ca-url https://CA:9000 --fingerprint $(keyless ca fingerprint) once")
		}
		if err != nil {
			return nil, err
		}
		if u == "" {
			u = b.CAURL
		}
		if rootPath == "" {
			rootPath = b.Root
		}
	}
	root, err := loadCert(rootPath)
	if err != nil {
		return nil, fmt.Errorf("--root: %w", err)
	}
	c, err := caclient.New(u, root, caclient.Options{})
	if err != nil {
		return nil, usageErrorf("--ca-url: %v", err)
	}
	return c, nil
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
			root, err := caclient.Bootstrap(cmd.Context(), caURL, fingerprint, 0)
			if errors.Is(err, caclient.ErrFingerprint) {
				return withHint(err, "check the fingerprint on the CA host (keyless ca fingerprint); a mismatch may mean someone is in the way")
			}
			if err != nil {
				return err
			}
			dir := configDir()
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return err
			}
			rootPath := filepath.Join(dir, "root_ca.crt")
			if err := atomicfile.WriteFile(rootPath, pki.EncodeCertificates(root), 0o644); err != nil {
				return err
			}
			data, err := yaml.Marshal(bootstrapped{CAURL: strings.TrimSuffix(caURL, "/"), Fingerprint: pki.Fingerprint(root), Root: rootPath})
			if err != nil {
				return err
			}
			if err := atomicfile.WriteFile(filepath.Join(dir, "ca.yaml"), data, 0o644); err != nil {
				return err
			}
			fmt.Fprintf(s.out, "keyless: trusting root %q (%s) of %s\n", root.Subject.CommonName, pki.Fingerprint(root), caURL)
			fmt.Fprintf(s.out, "Root: %s\n", rootPath)
			return nil
		},
	}
	cmd.Flags().StringVar(&caURL, "ca-url", "", "the CA's `URL`, https://host:port")
	cmd.Flags().StringVar(&fingerprint, "fingerprint", "", "the root certificate's SHA-256 `fingerprint` (hex)")
	return cmd
}

func newCertificateCommand(s streams) *cobra.Command {
	var (
		ca                                       caFlags
		sans                                     []string
		notAfter, notBefore, provisioner, pwFile string
		token, kty, chainFile                    string
		size                                     int
		force                                    bool
	)
	cmd := &cobra.Command{
		Use:   "certificate SUBJECT CRT KEY",
		Short: "Get a certificate from a step-compatible CA (keyless ca or step-ca)",
		Long: `Generate a key here (it never leaves this machine), make a CSR for SUBJECT
and the --san names, get a one-time token, and have the CA sign it. The
token comes from --token (made on the CA host with keyless ca token), or
from the provisioner's password (--provisioner-password-file), which
decrypts the provisioner key the CA serves. CRT gets the certificate and
the intermediate after it (or the intermediate goes to --chain-file); KEY
gets the key, 0600. Both are written as a pair, atomically. Existing files
are replaced only with --force.`,
		Example: `  keyless certificate gitlab-runner runner.crt runner.key --token "$TOKEN" --not-after 168h
  keyless certificate gitlab-runner runner.crt runner.key --provisioner runners --provisioner-password-file pw`,
		Args: cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			subject, crtPath, keyPath := args[0], args[1], args[2]
			if (token == "") == (pwFile == "") {
				return usageErrorf("give --token or --provisioner-password-file")
			}
			if !force {
				for _, p := range []string{crtPath, keyPath, chainFile} {
					if p == "" {
						continue
					}
					if _, err := os.Lstat(p); err == nil {
						return withHint(&usageError{err: fmt.Errorf("%s exists", p)}, "pass --force to replace it")
					}
				}
			}
			key, err := newKey(kty, size)
			if err != nil {
				return err
			}
			if len(sans) == 0 {
				sans = []string{subject}
			}
			csrPEM, err := makeCSR(key, subject, sans)
			if err != nil {
				return err
			}
			client, err := ca.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if token == "" {
				password, err := readPasswordFile("--provisioner-password-file", pwFile)
				if err != nil {
					return err
				}
				if token, err = client.SignToken(ctx, provisioner, password, subject, sans); err != nil {
					return err
				}
			}
			certs, err := client.Sign(ctx, caclient.SignRequest{CSR: csrPEM, Token: token, NotBefore: notBefore, NotAfter: notAfter, PublicKey: key.Public()})
			if err != nil {
				return signHint(err, notAfter)
			}
			keyPEM, err := pki.EncodePrivateKey(key)
			if err != nil {
				return err
			}
			certPEM := pki.EncodeCertificates(append([]*x509.Certificate{certs.Leaf}, certs.Intermediates...)...)
			if chainFile != "" {
				certPEM = pki.EncodeCertificates(certs.Leaf)
				if err := atomicfile.WriteFile(chainFile, pki.EncodeCertificates(certs.Intermediates...), 0o600); err != nil {
					return err
				}
			}
			if err := identity.WritePair(crtPath, certPEM, keyPath, keyPEM); err != nil {
				return err
			}
			fmt.Fprintf(s.out, "keyless: certificate for %s, serial %s, valid until %s\n", subject, certs.Leaf.SerialNumber,
				certs.Leaf.NotAfter.UTC().Format(time.RFC3339))
			return nil
		},
	}
	ca.register(cmd)
	f := cmd.Flags()
	f.StringSliceVar(&sans, "san", nil, "a subject alternative `name` (repeatable; default: the subject)")
	f.StringVar(&notAfter, "not-after", "", "when the certificate expires: a `duration` from now (168h) or an RFC 3339 time (default: the CA's)")
	f.StringVar(&notBefore, "not-before", "", "when it becomes valid (default: now)")
	f.StringVar(&provisioner, "provisioner", "", "the JWK provisioner's `name` (default: the CA's only one)")
	f.StringVar(&pwFile, "provisioner-password-file", "", "`file` holding the provisioner's password")
	f.StringVar(&token, "token", "", "a one-time `token` made on the CA host (keyless ca token or step ca token)")
	f.StringVar(&kty, "kty", "EC", "key type: EC (P-256) or RSA")
	f.IntVar(&size, "size", 2048, "RSA key size in bits (2048, 3072 or 4096)")
	f.StringVar(&chainFile, "chain-file", "", "write the intermediate here instead of after the leaf in CRT")
	f.BoolVar(&force, "force", false, "replace existing files")
	return cmd
}

func newKey(kty string, size int) (crypto.Signer, error) {
	switch kty {
	case "EC":
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "RSA":
		if size != 2048 && size != 3072 && size != 4096 {
			return nil, usageErrorf("--size %d: Roles Anywhere takes RSA 2048, 3072 or 4096", size)
		}
		return rsa.GenerateKey(rand.Reader, size)
	}
	return nil, usageErrorf("--kty %q: want EC or RSA", kty)
}

func makeCSR(key crypto.Signer, subject string, sans []string) ([]byte, error) {
	tmpl := &x509.CertificateRequest{Subject: pkix.Name{CommonName: subject}}
	for _, n := range sans {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if u, err := url.Parse(n); err == nil && strings.Contains(n, "://") {
			tmpl.URIs = append(tmpl.URIs, u)
		} else if strings.Contains(n, "@") {
			tmpl.EmailAddresses = append(tmpl.EmailAddresses, n)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		return nil, fmt.Errorf("making the certificate request: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), nil
}

// signHint explains the refusals people meet most.
func signHint(err error, notAfter string) error {
	var ae *caclient.APIError
	if !errors.As(err, &ae) {
		return err
	}
	msg := strings.ToLower(ae.Message)
	// step-ca's lifetime refusal: "... is more than the authorized maximum
	// certificate duration of 24h1m0s". Compiled here, not at start-up:
	// every keyless run would pay for it.
	stepMaximum := regexp.MustCompile(`authorized maximum certificate duration of ([0-9hms.]+)`)
	switch {
	case stepMaximum.MatchString(ae.Message):
		// step-ca counts its 1-minute backdate in the maximum it reports.
		m := stepMaximum.FindStringSubmatch(ae.Message)
		max, err2 := time.ParseDuration(m[1])
		if err2 == nil && max%time.Hour == time.Minute {
			max -= time.Minute
		}
		return withHint(err, "this step-ca allows at most %s for this provisioner; ask for less with --not-after, or raise claims.maxTLSCertDuration in its ca.json and restart or reload it", max)
	case strings.Contains(msg, "maximum"):
		return withHint(err, "the CA's maximum lifetime is in the message; ask for less with --not-after, or raise it on the CA: maxDuration in config/ca.yaml for keyless ca, claims.maxTLSCertDuration in ca.json for step-ca, then reload the CA")
	case strings.Contains(msg, "token already used"):
		return withHint(err, "a token buys one certificate; make a new one (keyless ca token on the CA host)")
	case strings.Contains(msg, "expired"):
		return withHint(err, "tokens live minutes: make a new one")
	case ae.Status == 401:
		return withHint(err, "a token is valid for one certificate and a few minutes; make a new one (keyless ca token, or step ca token, on the CA host)")
	}
	return err
}

// loadPair reads CRT and KEY (unencrypted) as a TLS certificate.
func loadPair(crtPath, keyPath string) (tls.Certificate, error) {
	if err := identity.RecoverPair(crtPath, keyPath); err != nil {
		return tls.Certificate{}, err
	}
	id, err := identity.Load(identity.Files{Certificate: crtPath, PrivateKey: keyPath}, nil, time.Time{})
	if err != nil {
		return tls.Certificate{}, err
	}
	chain := [][]byte{id.Certificate.Raw}
	for _, c := range id.Intermediates {
		chain = append(chain, c.Raw)
	}
	return tls.Certificate{Certificate: chain, PrivateKey: id.Key, Leaf: id.Certificate}, nil
}
