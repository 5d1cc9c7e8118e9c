package cli

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/spf13/cobra"

	"github.com/keyless-dev/keyless/internal/atomicfile"
	"github.com/keyless-dev/keyless/internal/ca"
	"github.com/keyless-dev/keyless/internal/ca/caapi"
	"github.com/keyless-dev/keyless/internal/caproto"
	"github.com/keyless-dev/keyless/internal/pki"
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

// defaultCADir is where a CA lives unless --dir says otherwise.
func defaultCADir() string {
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "keyless", "ca")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".local", "share", "keyless", "ca")
	}
	return "keyless-ca"
}

func addDirFlag(cmd *cobra.Command, dir *string) {
	cmd.Flags().StringVar(dir, "dir", defaultCADir(), "the CA `directory`")
}

// checkPrivateFile refuses a file that group or others can read: a CA
// key, its password or the encrypted provisioner key must be this user's
// alone.
func checkPrivateFile(what, path string) error {
	info, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("%s %s: %w", what, path, err)
	}
	if runtime.GOOS != "windows" && info.Mode().Perm()&0o077 != 0 {
		return withHint(fmt.Errorf("%s %s has mode %04o: group or others can read it", what, path, info.Mode().Perm()),
			"run chmod 600 %s (and make sure nobody copied it meanwhile)", path)
	}
	return nil
}

func readCAPassword(path string) ([]byte, error) {
	if path == "" {
		return nil, usageErrorf("--password-file is required: the file holding the CA's password")
	}
	if err := checkPrivateFile("--password-file", path); err != nil {
		return nil, err
	}
	return readPasswordFile("--password-file", path)
}

func newCAInitCommand(s streams) *cobra.Command {
	var (
		dir, name, address, provisioner, passwordFile, kty, provPasswordFile string
		dnsNames, allow                                                      []string
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
"*" matches any run of characters. Without --allow it may issue any name:
restrict it to the names your AWS trust policy expects.`,
		Example: `  keyless ca init --name "Homelab CA" --dns 10.0.0.5 --dns ca.lan --address :9000 \
    --provisioner runners --allow gitlab-runner --allow 'gitlab-runner-*' --password-file /etc/keyless/ca-password`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if name == "" || len(dnsNames) == 0 || address == "" || provisioner == "" {
				return usageErrorf("--name, --dns, --address and --provisioner are required")
			}
			if kty != "EC" && kty != "RSA" {
				return usageErrorf("--kty %q: want EC or RSA", kty)
			}
			if _, _, err := net.SplitHostPort(address); err != nil {
				return usageErrorf("--address %q: want [HOST]:PORT such as :9000", address)
			}
			password, err := readCAPassword(passwordFile)
			if err != nil {
				return err
			}
			var provPassword []byte
			if provPasswordFile != "" {
				if provPassword, err = readPasswordFile("--provisioner-password-file", provPasswordFile); err != nil {
					return err
				}
			}
			cfg, err := ca.Init(dir, ca.InitOptions{Name: name, DNSNames: dnsNames, Address: address, Provisioner: provisioner,
				Password: password, ProvisionerPassword: provPassword, KeyType: kty, Allow: allow})
			if errors.Is(err, ca.ErrExists) {
				return withHint(err, "use another --dir, or remove the old CA yourself if you really mean to replace it")
			}
			if err != nil {
				return err
			}
			root, err := loadCert(cfg.Path(cfg.Root))
			if err != nil {
				return err
			}
			fmt.Fprintf(s.out, "keyless ca: created %q in %s\n", name, dir)
			fmt.Fprintf(s.out, "Root fingerprint: %s\n", pki.Fingerprint(root))
			fmt.Fprintf(s.out, "Root certificate: %s\n", cfg.Path(cfg.Root))
			fmt.Fprintf(s.out, "Provisioner: %s (JWK), may issue: %s\n", provisioner, strings.Join(cfg.Provisioners[0].Allow, ", "))
			fmt.Fprintf(s.out, "Start it:     keyless ca serve --dir %s --password-file %s\n", dir, passwordFile)
			fmt.Fprintf(s.out, "Trust anchor: keyless ca bundle --dir %s > bundle.pem\n", dir)
			if provPasswordFile == "" {
				fmt.Fprintf(s.err, "keyless: note: the provisioner key is encrypted with the CA password, as step ca init does; anyone enrolling with keyless certificate --provisioner-password-file learns it (mint tokens on the CA host with keyless ca token, or give --provisioner-password-file)\n")
			}
			if len(allow) == 0 {
				fmt.Fprintf(s.err, "keyless: warning: provisioner %s may issue any name; anyone with the password can mint the CN your AWS trust policy trusts (set allow in %s)\n",
					provisioner, cfg.Path(ca.ConfigFile))
			}
			return nil
		},
	}
	f := cmd.Flags()
	addDirFlag(cmd, &dir)
	f.StringVar(&name, "name", "", "the CA's `name`")
	f.StringSliceVar(&dnsNames, "dns", nil, "a DNS name or IP `address` clients reach the CA by (repeatable)")
	f.StringVar(&address, "address", "", "`[host]:port` to serve on, such as :9000")
	f.StringVar(&provisioner, "provisioner", "", "`name` of the first provisioner (JWK)")
	f.StringSliceVar(&allow, "allow", nil, "`pattern` of names the provisioner may issue (repeatable; * is a wildcard)")
	f.StringVar(&passwordFile, "password-file", "", "`file` holding the password for the CA keys (and the provisioner key, unless --provisioner-password-file)")
	f.StringVar(&provPasswordFile, "provisioner-password-file", "", "`file` holding a separate password for the provisioner key, the one runners enrol with")
	f.StringVar(&kty, "kty", "EC", "key type of the CA keys: EC (P-256) or RSA (3072)")
	return cmd
}

func loadCert(path string) (*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	certs, err := pki.ParseCertificates(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return certs[0], nil
}

// caFiles is a CA directory opened for work.
type caFiles struct {
	cfg                *ca.Config
	root, intermediate *x509.Certificate
}

func openCADir(dir string) (*caFiles, error) {
	cfg, err := ca.LoadConfig(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, withHint(err, "no CA in %s: create one with keyless ca init, or point --dir at it", dir)
	}
	if err != nil {
		return nil, err
	}
	root, inter, err := ca.LoadCertificates(cfg)
	if err != nil {
		return nil, err
	}
	return &caFiles{cfg: cfg, root: root, intermediate: inter}, nil
}

// authority opens the CA's key and store for work in this process,
// refusing a key file others can read.
func (c *caFiles) authority(password []byte, readOnly bool, logger *slog.Logger) (*ca.Authority, store.Store, error) {
	if err := checkPrivateFile("the intermediate key", c.cfg.Path(c.cfg.Key)); err != nil {
		return nil, nil, err
	}
	a, db, err := ca.Open(c.cfg, password, ca.OpenOptions{ReadOnly: readOnly, Logger: logger})
	if errors.Is(err, pki.ErrIncorrectPassword) {
		return nil, nil, withHint(err, "--password-file must hold the password given to keyless ca init")
	}
	return a, db, err
}

func newCAServeCommand(s streams) *cobra.Command {
	var dir, passwordFile string
	var quiet bool
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
Ctrl-C lets requests in flight finish, then exits.`,
		Example: `  keyless ca serve --dir /var/lib/keyless/ca --password-file /etc/keyless/ca-password`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := openCADir(dir)
			if err != nil {
				return err
			}
			if err := checkPrivateFile("the CA configuration", filepath.Join(dir, ca.ConfigFile)); err != nil {
				return err
			}
			if c.cfg.RootKey != "" {
				if err := checkPrivateFile("the root key", c.cfg.Path(c.cfg.RootKey)); err != nil && !errors.Is(err, fs.ErrNotExist) {
					return err
				}
			}
			password, err := readCAPassword(passwordFile)
			if err != nil {
				return err
			}
			level := slog.LevelInfo
			if quiet {
				level = slog.LevelWarn
			}
			logger := newLoggerAt(s.err, level)
			a, db, err := c.authority(password, false, logger)
			if errors.Is(err, store.ErrLocked) {
				return withHint(err, "another keyless ca serve (or operator command) is using %s", dir)
			}
			if err != nil {
				return err
			}
			defer db.Close()
			ln, err := net.Listen("tcp", c.cfg.Address)
			if err != nil {
				return fmt.Errorf("listening on %s (address in %s): %w", c.cfg.Address, ca.ConfigFile, err)
			}
			handler := caapi.New(caapi.Config{Authority: a, Version: "keyless/" + currentBuild().Version, Logger: logger})
			srv := &http.Server{
				Handler:           handler,
				TLSConfig:         caapi.TLSConfig(a, nil),
				ReadHeaderTimeout: 10 * time.Second,
				ReadTimeout:       30 * time.Second,
				WriteTimeout:      30 * time.Second,
				IdleTimeout:       2 * time.Minute,
				ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelDebug),
			}
			fmt.Fprintf(s.out, "keyless ca: serving https://%s\n", ln.Addr())
			fmt.Fprintf(s.out, "Root fingerprint: %s\n", a.RootFingerprint())

			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			defer signal.Stop(hup)
			done := make(chan error, 1)
			go func() { done <- srv.ServeTLS(ln, "", "") }()
			for {
				select {
				case err := <-done:
					return err
				case <-hup:
					cfg, err := ca.LoadConfig(dir)
					if err != nil {
						logger.Error("reload failed; keeping the running configuration", "err", err)
						continue
					}
					a.Reload(cfg)
					logger.Info("reloaded the configuration", "provisioners", len(cfg.Provisioners))
				case <-ctx.Done():
					shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					err := srv.Shutdown(shutdown)
					cancel()
					<-done
					return err
				}
			}
		},
	}
	addDirFlag(cmd, &dir)
	cmd.Flags().StringVar(&passwordFile, "password-file", "", "`file` holding the CA's password")
	cmd.Flags().BoolVar(&quiet, "quiet", false, "log only refusals and errors, not every certificate")
	return cmd
}

// caURL is the CA's URL as this machine reaches it: --ca-url, else its
// first DNS name and the configured port.
func caURL(flag string, cfg *ca.Config) string {
	if flag != "" {
		return strings.TrimSuffix(flag, "/")
	}
	_, port, _ := net.SplitHostPort(cfg.Address)
	return "https://" + net.JoinHostPort(cfg.DNSNames[0], port)
}

// provisionerPassword is the provisioner key's password: from
// --provisioner-password-file when given, else the CA password.
func provisionerPassword(file string, caPassword []byte) ([]byte, error) {
	if file == "" {
		return caPassword, nil
	}
	return readPasswordFile("--provisioner-password-file", file)
}

// provisionerKey decrypts a provisioner's key.
func provisionerKey(cfg *ca.Config, name string, password []byte) (*ca.ProvisionerConfig, *jose.JSONWebKey, error) {
	var p *ca.ProvisionerConfig
	for i := range cfg.Provisioners {
		if name == "" || cfg.Provisioners[i].Name == name {
			p = &cfg.Provisioners[i]
			break
		}
	}
	if p == nil {
		var names []string
		for _, q := range cfg.Provisioners {
			names = append(names, q.Name)
		}
		return nil, nil, usageErrorf("--provisioner %q: no such provisioner (have: %s)", name, strings.Join(names, ", "))
	}
	key, err := caproto.DecryptProvisionerKey(p.EncryptedKey, password)
	if errors.Is(err, caproto.ErrWrongPassword) {
		return nil, nil, withHint(err, "give provisioner %s's password with --provisioner-password-file (or --password-file when it is the CA password)", p.Name)
	}
	if err != nil {
		return nil, nil, err
	}
	return p, key, nil
}

func newCATokenCommand(s streams) *cobra.Command {
	var (
		dir, passwordFile, provisioner, url, provPasswordFile string
		sans                                                  []string
		ttl                                                   time.Duration
	)
	cmd := &cobra.Command{
		Use:   "token SUBJECT",
		Short: "Mint a one-time enrollment token on the CA host",
		Long: `Print a one-time token that lets its holder get one certificate for SUBJECT
(and --san names), within the provisioner's policy. Made on the CA host, it
means the runner never learns the provisioner password: hand the token
over, and the runner runs keyless certificate SUBJECT crt key --token T.`,
		Example: `  keyless ca token gitlab-runner --ttl 10m --password-file pw`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := openCADir(dir)
			if err != nil {
				return err
			}
			var password []byte
			if provPasswordFile != "" {
				password, err = readPasswordFile("--provisioner-password-file", provPasswordFile)
			} else {
				password, err = readCAPassword(passwordFile)
			}
			if err != nil {
				return err
			}
			p, key, err := provisionerKey(c.cfg, provisioner, password)
			if err != nil {
				return err
			}
			if len(sans) == 0 {
				sans = []string{args[0]}
			}
			tok, err := caproto.NewToken(caproto.TokenOptions{Provisioner: p.Name, Key: key, Subject: args[0], SANs: sans,
				Audience: caURL(url, c.cfg) + "/1.0/sign", RootSHA256: pki.Fingerprint(c.root), Lifetime: ttl})
			if err != nil {
				return err
			}
			fmt.Fprintln(s.out, tok)
			return nil
		},
	}
	addDirFlag(cmd, &dir)
	f := cmd.Flags()
	f.StringVar(&passwordFile, "password-file", "", "`file` holding the CA password (which encrypts the provisioner key unless init was given --provisioner-password-file)")
	f.StringVar(&provPasswordFile, "provisioner-password-file", "", "`file` holding the provisioner key's own password")
	f.StringVar(&provisioner, "provisioner", "", "provisioner `name` (default: the first)")
	f.StringSliceVar(&sans, "san", nil, "a subject alternative `name` (repeatable; default: the subject)")
	f.DurationVar(&ttl, "ttl", caproto.DefaultTokenLifetime, "how long the token is valid (at most 24h)")
	f.StringVar(&url, "ca-url", "", "the CA's `URL` as clients reach it (default: https://<first DNS name>:<port>)")
	return cmd
}

// apiClient talks to the running CA, trusting its root.
func apiClient(root *x509.Certificate) *http.Client {
	pool := x509.NewCertPool()
	pool.AddCert(root)
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
	}}
}

// apiCall calls the running CA: body, when not nil, is sent as JSON, and
// token, when set, as a Bearer token.
func apiCall(client *http.Client, method, url string, body any, token string) ([]byte, error) {
	var r io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		r = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, withHint(fmt.Errorf("calling the CA: %w", err), "the CA's database is in use, so keyless asked the running CA at %s; check it is reachable, or pass --ca-url", url)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 300 {
		var e struct{ Message string }
		_ = json.Unmarshal(data, &e)
		return nil, fmt.Errorf("the CA refused (%d): %s", resp.StatusCode, e.Message)
	}
	return data, nil
}

func newCARevokeCommand(s streams) *cobra.Command {
	var (
		dir, passwordFile, reason, url, provPasswordFile string
		reasonCode                                       int
	)
	cmd := &cobra.Command{
		Use:   "revoke SERIAL",
		Short: "Revoke a certificate: it goes on the CRL and can no longer renew",
		Long: `Revoke a certificate by its serial number (decimal, as keyless ca list
shows it; 0x-prefixed hex is accepted too). With the CA stopped this works
on its directory; while it runs, it goes through its API with a revoke
token made from the provisioner key. Re-publish the CRL to AWS afterwards
(keyless ca crl, then aws rolesanywhere import-crl or update-crl).`,
		Example: `  keyless ca revoke 245019374592847574937459837459 --reason "runner decommissioned" --password-file pw`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			serial, ok := parseSerial(args[0])
			if !ok {
				return usageErrorf("serial %q: want a decimal number (or 0x-prefixed hex)", args[0])
			}
			c, err := openCADir(dir)
			if err != nil {
				return err
			}
			password, err := readCAPassword(passwordFile)
			if err != nil {
				return err
			}
			a, db, err := c.authority(password, false, nil)
			switch {
			case err == nil:
				defer db.Close()
				if err := a.Revoke(ca.RevokeRequest{Serial: serial, ReasonCode: reasonCode, Reason: reason, Passive: true, Operator: true}); err != nil {
					return err
				}
			case errors.Is(err, store.ErrLocked):
				provPassword, err := provisionerPassword(provPasswordFile, password)
				if err != nil {
					return err
				}
				p, key, err := provisionerKey(c.cfg, "", provPassword)
				if err != nil {
					return err
				}
				base := caURL(url, c.cfg)
				tok, err := caproto.NewToken(caproto.TokenOptions{Provisioner: p.Name, Key: key, Subject: serial, Audience: base + "/1.0/revoke"})
				if err != nil {
					return err
				}
				if _, err := apiCall(apiClient(c.root), http.MethodPost, base+"/1.0/revoke",
					map[string]any{"serial": serial, "ott": tok, "reasonCode": reasonCode, "reason": reason, "passive": true}, ""); err != nil {
					return err
				}
			default:
				return err
			}
			fmt.Fprintf(s.out, "keyless ca: revoked %s\n", serial)
			return nil
		},
	}
	addDirFlag(cmd, &dir)
	f := cmd.Flags()
	f.StringVar(&passwordFile, "password-file", "", "`file` holding the CA's password")
	f.StringVar(&reason, "reason", "", "why, for the record")
	f.StringVar(&provPasswordFile, "provisioner-password-file", "", "`file` holding the provisioner key's own password, when it has one (used while the CA runs)")
	f.IntVar(&reasonCode, "reason-code", 0, "RFC 5280 reason code (0 unspecified, 1 keyCompromise, 4 superseded, 5 cessationOfOperation)")
	f.StringVar(&url, "ca-url", "", "the running CA's `URL` (default: https://<first DNS name>:<port>)")
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
		dir, passwordFile, url, provPasswordFile string
		expiring                                 time.Duration
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List issued certificates with their validity and revocation",
		Long: `List every certificate the CA issued: serial, subject, names, validity,
provisioner, and whether it is revoked or expired. --expiring 24h keeps the
unrevoked ones that expire within 24 hours. With the CA stopped it reads
its database; while the CA runs (and holds the database), it asks the CA's
API with a token from the provisioner key, which needs --password-file.`,
		Example: `  keyless ca list --expiring 24h`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := openCADir(dir)
			if err != nil {
				return err
			}
			var list []caproto.Certificate
			db, err := store.OpenBolt(c.cfg.Path(c.cfg.DB), store.BoltOptions{ReadOnly: true})
			switch {
			case err == nil:
				defer db.Close()
				if list, err = ca.List(db); err != nil {
					return err
				}
			case errors.Is(err, store.ErrLocked):
				if passwordFile == "" {
					return withHint(err, "the running CA holds its database; pass --password-file to list through its API")
				}
				password, err := readCAPassword(passwordFile)
				if err != nil {
					return err
				}
				provPassword, err := provisionerPassword(provPasswordFile, password)
				if err != nil {
					return err
				}
				p, key, err := provisionerKey(c.cfg, "", provPassword)
				if err != nil {
					return err
				}
				base := caURL(url, c.cfg)
				tok, err := caproto.NewToken(caproto.TokenOptions{Provisioner: p.Name, Key: key, Subject: "list", Audience: base + "/1.0/" + caproto.ListOp})
				if err != nil {
					return err
				}
				data, err := apiCall(apiClient(c.root), http.MethodGet, base+"/1.0/"+caproto.ListOp, nil, tok)
				if err != nil {
					return err
				}
				var out struct{ Certificates []caproto.Certificate }
				if err := json.Unmarshal(data, &out); err != nil {
					return fmt.Errorf("the CA's certificate list: %w", err)
				}
				list = out.Certificates
			default:
				return err
			}
			now := time.Now()
			tw := tabwriter.NewWriter(s.out, 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "SERIAL\tSUBJECT\tNAMES\tNOT AFTER\tPROVISIONER\tSTATUS")
			for _, rec := range list {
				status := "valid"
				switch {
				case rec.Revoked:
					status = "revoked"
				case now.After(rec.NotAfter):
					status = "expired"
				}
				if expiring > 0 && (status != "valid" || rec.NotAfter.Sub(now) > expiring) {
					continue
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", rec.Serial, rec.Subject, strings.Join(rec.SANs, ","),
					rec.NotAfter.UTC().Format(time.RFC3339), rec.Provisioner, status)
			}
			return tw.Flush()
		},
	}
	addDirFlag(cmd, &dir)
	f := cmd.Flags()
	f.DurationVar(&expiring, "expiring", 0, "only valid certificates that expire within this `duration`")
	f.StringVar(&passwordFile, "password-file", "", "`file` holding the CA's password (needed while the CA runs)")
	f.StringVar(&provPasswordFile, "provisioner-password-file", "", "`file` holding the provisioner key's own password, when it has one")
	f.StringVar(&url, "ca-url", "", "the running CA's `URL` (default: https://<first DNS name>:<port>)")
	return cmd
}

func newCABundleCommand(s streams) *cobra.Command {
	var dir string
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
			c, err := openCADir(dir)
			if err != nil {
				return err
			}
			_, err = s.out.Write(pki.EncodeCertificates(c.root, c.intermediate))
			return err
		},
	}
	addDirFlag(cmd, &dir)
	return cmd
}

func newCAFingerprintCommand(s streams) *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:     "fingerprint",
		Short:   "Print the root certificate's SHA-256 fingerprint, for bootstrapping clients",
		Example: `  keyless bootstrap --ca-url https://10.0.0.5:9000 --fingerprint "$(keyless ca fingerprint)"`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := openCADir(dir)
			if err != nil {
				return err
			}
			fmt.Fprintln(s.out, pki.Fingerprint(c.root))
			return nil
		},
	}
	addDirFlag(cmd, &dir)
	return cmd
}

func newCACRLCommand(s streams) *cobra.Command {
	var (
		dir, passwordFile, out, url string
		der                         bool
	)
	cmd := &cobra.Command{
		Use:   "crl",
		Short: "Write the CA's current CRL, for Roles Anywhere's ImportCrl",
		Long: `Write the certificate revocation list (PEM by default, which ImportCrl
takes; --der for DER), signed by the intermediate. With the CA stopped it is
made from the directory (the password unlocks the intermediate key); while
the CA runs, it is fetched from its API.`,
		Example: `  keyless ca crl --password-file pw --out ca.crl
  aws rolesanywhere import-crl --name runners --crl-data fileb://ca.crl --trust-anchor-arn ARN --enabled`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := openCADir(dir)
			if err != nil {
				return err
			}
			password, err := readCAPassword(passwordFile)
			if err != nil {
				return err
			}
			var crl []byte
			a, db, err := c.authority(password, false, nil)
			switch {
			case err == nil:
				defer db.Close()
				if crl, err = a.CRL(); err != nil {
					return err
				}
			case errors.Is(err, store.ErrLocked):
				if crl, err = apiCall(apiClient(c.root), http.MethodGet, caURL(url, c.cfg)+"/1.0/crl", nil, ""); err != nil {
					return err
				}
				if _, err := x509.ParseRevocationList(crl); err != nil {
					return fmt.Errorf("the CA answered something that is not a CRL: %w", err)
				}
			default:
				return err
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
	addDirFlag(cmd, &dir)
	f := cmd.Flags()
	f.StringVar(&passwordFile, "password-file", "", "`file` holding the CA's password")
	f.StringVar(&out, "out", "", "write to this `file` instead of standard output")
	f.BoolVar(&der, "der", false, "write DER instead of PEM")
	f.StringVar(&url, "ca-url", "", "the running CA's `URL` (default: https://<first DNS name>:<port>)")
	return cmd
}
