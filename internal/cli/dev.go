package cli

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/spf13/cobra"

	"github.com/keyless-dev/keyless/internal/atomicfile"
	"github.com/keyless-dev/keyless/internal/ca"
	"github.com/keyless-dev/keyless/internal/ca/caapi"
	"github.com/keyless-dev/keyless/internal/caclient"
	"github.com/keyless-dev/keyless/internal/emulator"
	"github.com/keyless-dev/keyless/internal/identity"
	"github.com/keyless-dev/keyless/internal/pki"
	"github.com/keyless-dev/keyless/internal/rolesanywhere"
	"github.com/keyless-dev/keyless/internal/sigv4"
	"github.com/keyless-dev/keyless/internal/store"
)

// The dev stack's fixed names: the account and role the README promises.
const (
	devAccount     = "111122223333"
	devRegion      = "us-east-1"
	devRole        = "keyless-dev-runner"
	devAnchor      = "keyless-dev-ca"
	devProfile     = "keyless-dev"
	devSubject     = "gitlab-runner"
	devProvisioner = "dev"
)

type devOptions struct {
	dir, listenCA, listenAWS string
	once                     bool
}

func newDevCommand(s streams) *cobra.Command {
	var o devOptions
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run the whole keyless chain locally: CA, runner certificate, Roles Anywhere, STS",
		Long: `Start the whole chain on loopback, with no AWS account and no network:
a keyless CA issues a gitlab-runner certificate, the emulator exchanges it
through Roles Anywhere CreateSession, and STS (the AWS SDK for Go) says
which role you are. Each step prints its result, then the profile and
environment to use the running stack from another shell with the AWS CLI.

It keeps serving (CA, emulator, certificate renewal) until Ctrl-C. With
--once it stops after the check and exits 0 only if every step
succeeded. The state lives in a temporary directory, removed at exit,
unless --dir names one, which is kept and reused (the same CA) next time.`,
		Example: `  go run ./cmd/keyless dev
  keyless dev --once
  keyless dev --dir ./dev-stack --listen-aws 127.0.0.1:8443`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runDev(cmd.Context(), s, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.dir, "dir", "", "keep the stack's files (CA, certificate, seed) in this `directory` and reuse them")
	f.BoolVar(&o.once, "once", false, "stop after the check; exit 0 only if every step succeeded")
	f.StringVar(&o.listenCA, "listen-ca", "127.0.0.1:0", "`address` of the CA (HTTPS)")
	f.StringVar(&o.listenAWS, "listen-aws", "127.0.0.1:0", "`address` of the Roles Anywhere + STS emulator (HTTP, loopback only)")
	return cmd
}

// devStack is the running stack.
type devStack struct {
	out               io.Writer
	dir               string
	caURL, awsURL     string
	servers           []*http.Server
	db                store.Store
	client            *caclient.Client
	crt, key          string
	ta, profile, role string
}

func (d *devStack) step(n int, what string) { fmt.Fprintf(d.out, "%d. %s", n, what) }
func (d *devStack) ok(format string, args ...any) {
	fmt.Fprintf(d.out, " ok: "+format+"\n", args...)
}

func (d *devStack) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, srv := range d.servers {
		srv.Shutdown(ctx)
	}
	if d.db != nil {
		d.db.Close()
	}
}

func runDev(ctx context.Context, s streams, o devOptions) (err error) {
	for _, a := range []struct{ flag, addr string }{{"--listen-ca", o.listenCA}, {"--listen-aws", o.listenAWS}} {
		host, _, err := net.SplitHostPort(a.addr)
		if err != nil || !isLoopbackHost(host) {
			return usageErrorf("%s %q: keyless dev serves on loopback only (127.0.0.1:PORT)", a.flag, a.addr)
		}
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	d := &devStack{out: s.out, dir: o.dir}
	if d.dir == "" {
		if d.dir, err = os.MkdirTemp("", "keyless-dev-"); err != nil {
			return err
		}
		defer os.RemoveAll(d.dir)
	} else if err := os.MkdirAll(d.dir, 0o700); err != nil {
		return err
	}
	defer d.close()
	logger := newLoggerAt(s.err, slog.LevelWarn)

	fmt.Fprintf(s.out, "keyless dev: the whole chain on loopback, in %s\n", d.dir)
	d.step(1, "CA")
	if err := d.startCA(o.listenCA, logger); err != nil {
		fmt.Fprintln(s.out, " FAILED")
		return err
	}
	d.step(2, "Roles Anywhere + STS emulator")
	if err := d.startEmulator(o.listenAWS, logger); err != nil {
		fmt.Fprintln(s.out, " FAILED")
		return err
	}
	d.step(3, "runner certificate")
	leaf, err := d.enroll(ctx)
	if err != nil {
		fmt.Fprintln(s.out, " FAILED")
		return err
	}
	d.ok("CN=%s from the CA, serial %s, valid until %s, in %s", devSubject, leaf.SerialNumber, leaf.NotAfter.UTC().Format(time.RFC3339), d.crt)
	d.step(4, "CreateSession")
	sess, err := d.createSession(ctx)
	if err != nil {
		fmt.Fprintln(s.out, " FAILED")
		return err
	}
	d.ok("credentials for %s until %s", sess.AssumedRoleARN, sess.Credentials.Expiration.Format(time.RFC3339))
	d.step(5, "STS GetCallerIdentity (signed by the AWS SDK for Go v2)")
	arn, err := d.callerIdentity(ctx, sess.Credentials)
	if err != nil {
		fmt.Fprintln(s.out, " FAILED")
		return err
	}
	d.ok("you are")
	fmt.Fprintf(s.out, "\n%s\n\n", arn)
	if arn != sess.AssumedRoleARN {
		return fmt.Errorf("STS says %s, CreateSession said %s", arn, sess.AssumedRoleARN)
	}
	if o.once {
		fmt.Fprintln(s.out, "keyless dev: every step succeeded")
		return nil
	}
	if err := d.printUsage(); err != nil {
		return err
	}
	fmt.Fprintln(s.out, "keyless dev: serving; Ctrl-C stops everything")

	renewErr := make(chan error, 1)
	go func() {
		renewErr <- renewLoop(ctx, d.client, renewOptions{method: "auto", backoffMin: 5 * time.Second, backoffMax: time.Minute},
			d.crt, d.key, newLoggerAt(s.err, slog.LevelInfo), nil)
	}()
	select {
	case <-ctx.Done():
		fmt.Fprintln(s.out, "keyless dev: stopping")
		return nil
	case err := <-renewErr:
		return err
	}
}

// startCA initialises (or reuses) the CA in dir/ca and serves it.
func (d *devStack) startCA(listen string, logger *slog.Logger) error {
	caDir := filepath.Join(d.dir, "ca")
	pwPath := filepath.Join(d.dir, "ca-password")
	password, err := os.ReadFile(pwPath)
	reused := err == nil
	if errors.Is(err, fs.ErrNotExist) {
		// A throwaway CA for a throwaway stack: the password sits next to
		// it, 0600, and never leaves the machine.
		b := make([]byte, 24)
		if _, err := rand.Read(b); err != nil {
			return err
		}
		password = []byte(hex.EncodeToString(b))
		if err := atomicfile.WriteFile(pwPath, password, 0o600); err != nil {
			return err
		}
		if _, err := ca.Init(caDir, ca.InitOptions{Name: "keyless dev", DNSNames: []string{"127.0.0.1", "localhost"}, Address: listen,
			Provisioner: devProvisioner, Password: password, Allow: []string{devSubject}}); err != nil {
			return err
		}
	} else if err != nil {
		return err
	}
	c, err := openCADir(caDir)
	if err != nil {
		return err
	}
	a, db, err := c.authority(password, false, logger)
	if err != nil {
		return err
	}
	d.db = db
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("--listen-ca %s: %w", listen, err)
	}
	srv := &http.Server{Handler: caapi.New(caapi.Config{Authority: a, Version: "keyless/" + currentBuild().Version, Logger: logger}),
		TLSConfig: caapi.TLSConfig(a, nil), ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelDebug)}
	go srv.ServeTLS(ln, "", "")
	d.servers = append(d.servers, srv)
	d.caURL = "https://" + ln.Addr().String()
	if d.client, err = caclient.New(d.caURL, c.root, caclient.Options{}); err != nil {
		return err
	}
	bundle := filepath.Join(d.dir, "bundle.pem")
	if err := atomicfile.WriteFile(bundle, pki.EncodeCertificates(c.root, c.intermediate), 0o644); err != nil {
		return err
	}
	how := "new"
	if reused {
		how = "reused"
	}
	d.ok("%s CA at %s, root %s, trust anchor bundle %s", how, d.caURL, pki.Fingerprint(c.root)[:16], bundle)
	return nil
}

// startEmulator serves the emulator with a trust anchor for the CA's
// bundle, the reference setup's trust policy, and a profile.
func (d *devStack) startEmulator(listen string, logger *slog.Logger) error {
	seed := fmt.Sprintf(`# keyless dev's emulator seed: the reference deployment.
account: %q
region: %s
trustAnchors:
  - name: %s
    certificateBundle: bundle.pem
roles:
  - name: %s
    maxSessionDuration: 3600
    assumeRolePolicy: |
      {"Version":"2012-10-17","Statement":[{"Effect":"Allow",
        "Principal":{"Service":"rolesanywhere.amazonaws.com"},
        "Action":["sts:AssumeRole","sts:TagSession","sts:SetSourceIdentity"],
        "Condition":{"ArnEquals":{"aws:SourceArn":"${trustAnchors.%s.arn}"},
                     "StringEquals":{"aws:PrincipalTag/x509Subject/CN":"%s"}}}]}
profiles:
  - name: %s
    roles: [%s]
    durationSeconds: 3600
`, devAccount, devRegion, devAnchor, devRole, devAnchor, devSubject, devProfile, devRole)
	seedPath := filepath.Join(d.dir, "emulator.yaml")
	if err := atomicfile.WriteFile(seedPath, []byte(seed), 0o644); err != nil {
		return err
	}
	parsed, err := emulator.LoadSeed(seedPath)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("--listen-aws %s: %w", listen, err)
	}
	srv := &http.Server{Handler: emulator.New(emulator.Config{Seed: parsed, Logger: logger}), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	d.servers = append(d.servers, srv)
	d.awsURL = "http://" + ln.Addr().String()
	out := parsed.Outputs(d.awsURL)
	d.ta, d.profile, d.role = out.TrustAnchors[devAnchor], out.Profiles[devProfile], out.Roles[devRole]
	d.ok("%s, role %s", d.awsURL, d.role)
	return nil
}

// enroll gets the runner's certificate through the CA's API, as keyless
// certificate does with a provisioner password.
func (d *devStack) enroll(ctx context.Context) (*x509.Certificate, error) {
	password, err := os.ReadFile(filepath.Join(d.dir, "ca-password"))
	if err != nil {
		return nil, err
	}
	token, err := d.client.SignToken(ctx, devProvisioner, password, devSubject, []string{devSubject})
	if err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	csr, err := makeCSR(key, devSubject, []string{devSubject})
	if err != nil {
		return nil, err
	}
	certs, err := d.client.Sign(ctx, caclient.SignRequest{CSR: csr, Token: token, PublicKey: key.Public()})
	if err != nil {
		return nil, err
	}
	keyPEM, err := pki.EncodePrivateKey(key)
	if err != nil {
		return nil, err
	}
	d.crt, d.key = filepath.Join(d.dir, "runner.crt"), filepath.Join(d.dir, "runner.key")
	chain := append([]*x509.Certificate{certs.Leaf}, certs.Intermediates...)
	if err := identity.WritePair(d.crt, pki.EncodeCertificates(chain...), d.key, keyPEM); err != nil {
		return nil, err
	}
	return certs.Leaf, nil
}

// createSession exchanges the certificate as keyless credential-process
// does.
func (d *devStack) createSession(ctx context.Context) (*rolesanywhere.Session, error) {
	id, err := identity.Load(identity.Files{Certificate: d.crt, PrivateKey: d.key}, nil, time.Now())
	if err != nil {
		return nil, err
	}
	client, err := rolesanywhere.New(rolesanywhere.Config{Endpoint: d.awsURL, Region: devRegion,
		Signer: &sigv4.X509Signer{Key: id.Key, Certificate: id.Certificate, Intermediates: id.Intermediates}, UserAgent: userAgent()})
	if err != nil {
		return nil, err
	}
	return client.CreateSession(ctx, rolesanywhere.SessionInput{TrustAnchorARN: d.ta, ProfileARN: d.profile, RoleARN: d.role})
}

// callerIdentity asks the emulator's STS who the credentials are, signed
// with the AWS SDK for Go v2's SigV4 signer. (The SDK's whole STS client
// would cost every keyless command, credential-process included, about
// 1.5 ms of package initialisation; the emulator's tests run that client.)
func (d *devStack) callerIdentity(ctx context.Context, c rolesanywhere.Credentials) (string, error) {
	body := "Action=GetCallerIdentity&Version=2011-06-15"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.awsURL+"/", strings.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	sum := sha256.Sum256([]byte(body))
	creds := aws.Credentials{AccessKeyID: c.AccessKeyID, SecretAccessKey: c.SecretAccessKey, SessionToken: c.SessionToken}
	if err := v4.NewSigner().SignHTTP(ctx, creds, req, hex.EncodeToString(sum[:]), "sts", devRegion, time.Now()); err != nil {
		return "", fmt.Errorf("signing GetCallerIdentity: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("STS GetCallerIdentity: %w", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", err
	}
	var out struct {
		Arn   string `xml:"GetCallerIdentityResult>Arn"`
		Error struct {
			Code    string `xml:"Code"`
			Message string `xml:"Message"`
		} `xml:"Error"`
	}
	if err := xml.Unmarshal(data, &out); err != nil {
		return "", fmt.Errorf("STS GetCallerIdentity answered %d with %q", resp.StatusCode, data)
	}
	if resp.StatusCode != http.StatusOK || out.Arn == "" {
		return "", fmt.Errorf("STS GetCallerIdentity refused (%s): %s", out.Error.Code, out.Error.Message)
	}
	return out.Arn, nil
}

// printUsage writes an AWS config file for the running stack and prints
// how to use it from another shell.
func (d *devStack) printUsage() error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	configPath := filepath.Join(d.dir, "aws-config")
	profile := fmt.Sprintf(`[profile keyless-dev]
region = %s
credential_process = %s credential-process --certificate %s --private-key %s --trust-anchor-arn %s --profile-arn %s --role-arn %s --endpoint %s
`, devRegion, exe, d.crt, d.key, d.ta, d.profile, d.role, d.awsURL)
	if err := atomicfile.WriteFile(configPath, []byte(profile), 0o600); err != nil {
		return err
	}
	fmt.Fprintf(d.out, `Use it from another shell with the AWS CLI. The profile (also in %s):

%s
Paste these lines:

export AWS_CONFIG_FILE=%s
export AWS_PROFILE=keyless-dev
export AWS_ENDPOINT_URL_STS=%s
aws sts get-caller-identity --endpoint-url %s

(--endpoint-url is for AWS CLI older than 2.13, such as Debian 12's, which ignores AWS_ENDPOINT_URL_STS.)

`, configPath, strings.TrimRight(profile, "\n"), configPath, d.awsURL, d.awsURL)
	return nil
}
