// Package devstack runs the whole keyless chain on loopback, with no AWS
// account and no network: a keyless CA, the Roles Anywhere and STS
// emulator seeded with the reference deployment, a runner certificate
// enrolled from the CA, credentials for it, and STS's word on whose they
// are; then it keeps the certificate renewed. Each step is the use case
// the matching command uses (caops, enroll, awscreds, renewal), so the
// stack shows the real thing working.
//
// It is what keyless dev runs; tests of later parts (the agent) can start
// it too. The stack's state lives in a directory: a temporary one removed
// at Close, or one the caller keeps, whose CA is reused next time.
package devstack

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/keyless-dev/keyless/internal/atomicfile"
	"github.com/keyless-dev/keyless/internal/awscreds"
	"github.com/keyless-dev/keyless/internal/ca"
	"github.com/keyless-dev/keyless/internal/caclient"
	"github.com/keyless-dev/keyless/internal/caops"
	"github.com/keyless-dev/keyless/internal/emulator"
	"github.com/keyless-dev/keyless/internal/enroll"
	"github.com/keyless-dev/keyless/internal/identity"
	"github.com/keyless-dev/keyless/internal/logline"
	"github.com/keyless-dev/keyless/internal/pki"
	"github.com/keyless-dev/keyless/internal/renewal"
	"github.com/keyless-dev/keyless/internal/secretfile"
	"github.com/keyless-dev/keyless/internal/serve"
	"github.com/keyless-dev/keyless/internal/sigv4"
	"github.com/keyless-dev/keyless/internal/sts"
)

// The stack's fixed names: the account and role the README promises.
const (
	Account     = "111122223333"
	Region      = "us-east-1"
	Role        = "keyless-dev-runner"
	TrustAnchor = "keyless-dev-ca"
	Profile     = "keyless-dev"
	Subject     = "gitlab-runner"
	Provisioner = "dev"
	// AWSProfile is the AWS CLI profile WriteAWSConfig writes.
	AWSProfile = "keyless-dev"
)

// Config shapes a stack.
type Config struct {
	// Dir keeps the stack's files; empty means a temporary directory,
	// removed at Close.
	Dir string
	// ListenCA and ListenAWS are loopback addresses (port 0 picks one).
	ListenCA, ListenAWS string
	// Version is what the CA's /version says; UserAgent what CreateSession
	// sends.
	Version, UserAgent string
	// Logger gets the servers' refusals; nil discards.
	Logger *slog.Logger
}

// ErrNotLoopback means a listen address is not on loopback: the dev
// stack's CA password and credentials stay on this machine.
var ErrNotLoopback = errors.New("keyless dev serves on loopback only (127.0.0.1:PORT)")

// AddressError is a listen address the stack refuses; Field is
// "listen-ca" or "listen-aws".
type AddressError struct {
	Field, Address string
	Err            error
}

func (e *AddressError) Error() string { return fmt.Sprintf("%s %q: %v", e.Field, e.Address, e.Err) }
func (e *AddressError) Unwrap() error { return e.Err }

// Stack is a running dev stack. Its fields fill in as its steps run.
type Stack struct {
	cfg       Config
	Dir       string
	temporary bool

	// The CA (StartCA).
	CA          *caops.Dir
	CAURL       string
	BundlePath  string
	ReusedCA    bool
	caRunning   *caops.Running
	caClient    *caclient.Client
	caPassword  []byte
	emuServer   *serve.Server
	logger      *slog.Logger
	credentials sigv4.Credentials

	// The emulator (StartEmulator).
	AWSURL                              string
	TrustAnchorARN, ProfileARN, RoleARN string

	// The runner (Enroll).
	CertPath, KeyPath string
}

// New checks cfg and makes the stack's directory.
func New(cfg Config) (*Stack, error) {
	for _, a := range []struct{ field, addr string }{{"listen-ca", cfg.ListenCA}, {"listen-aws", cfg.ListenAWS}} {
		host, _, err := net.SplitHostPort(a.addr)
		if err != nil || !emulator.IsLoopback(host) {
			return nil, &AddressError{Field: a.field, Address: a.addr, Err: ErrNotLoopback}
		}
	}
	s := &Stack{cfg: cfg, Dir: cfg.Dir, logger: cfg.Logger}
	s.logger = logline.Or(s.logger)
	if s.Dir == "" {
		dir, err := os.MkdirTemp("", "keyless-dev-")
		if err != nil {
			return nil, err
		}
		s.Dir, s.temporary = dir, true
	} else if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		return nil, err
	}
	return s, nil
}

// Close stops the servers and removes a temporary directory.
func (s *Stack) Close() error {
	var errs []error
	if s.caClient != nil {
		s.caClient.CloseIdleConnections()
	}
	if s.emuServer != nil {
		errs = append(errs, s.emuServer.Close())
	}
	if s.caRunning != nil {
		errs = append(errs, s.caRunning.Close())
	}
	if s.temporary {
		errs = append(errs, os.RemoveAll(s.Dir))
	}
	return errors.Join(errs...)
}

// StartCA creates the CA in Dir/ca, or reuses the one there, serves it,
// and writes the trust anchor bundle.
func (s *Stack) StartCA() error {
	caDir := filepath.Join(s.Dir, "ca")
	pwPath := filepath.Join(s.Dir, "ca-password")
	password, err := secretfile.Read("the dev CA's password file", pwPath, nil)
	s.ReusedCA = err == nil
	switch {
	case errors.Is(err, fs.ErrNotExist):
		// A throwaway CA for a throwaway stack: the password sits next to
		// it, 0600, and never leaves the machine.
		pw, err := secretfile.Generate()
		if err != nil {
			return err
		}
		password = []byte(pw)
		if err := secretfile.WriteNew(pwPath, password); err != nil {
			return err
		}
		if s.CA, err = caops.Init(caDir, ca.InitOptions{Name: "keyless dev", DNSNames: []string{"127.0.0.1", "localhost"},
			Address: s.cfg.ListenCA, Provisioner: Provisioner, Password: password, Allow: []string{Subject}}); err != nil {
			return err
		}
	case err != nil:
		return err
	default:
		if s.CA, err = caops.Open(caDir); err != nil {
			return err
		}
	}
	s.caPassword = password
	if s.caRunning, err = s.CA.Start(caops.ServeOptions{Password: password, Address: s.cfg.ListenCA, Version: s.cfg.Version, Logger: s.logger}); err != nil {
		return err
	}
	s.CAURL = s.caRunning.Server.URL()
	trust := enroll.Trust{URL: s.CAURL, Root: s.CA.Root}
	if s.caClient, err = trust.Client(caclient.Options{}); err != nil {
		return err
	}
	s.BundlePath = filepath.Join(s.Dir, "bundle.pem")
	return atomicfile.WriteFile(s.BundlePath, s.CA.Bundle(), 0o644)
}

// StartEmulator writes the seed (Dir/emulator.yaml), trusting the CA's
// bundle, and serves the emulator.
func (s *Stack) StartEmulator() error {
	path := filepath.Join(s.Dir, "emulator.yaml")
	seed := emulator.Reference{Account: Account, Region: Region, TrustAnchor: TrustAnchor, Role: Role, Profile: Profile,
		CommonName: Subject, BundleFile: "bundle.pem", MaxSessionDuration: 3600, DurationSeconds: 3600}.Seed()
	if err := atomicfile.WriteFile(path, []byte(seed), 0o644); err != nil {
		return err
	}
	parsed, err := emulator.LoadSeed(path)
	if err != nil {
		return err
	}
	if s.emuServer, err = emulator.Start(s.cfg.ListenAWS, emulator.New(emulator.Config{Seed: parsed, Logger: s.logger}), nil, s.logger); err != nil {
		return err
	}
	s.AWSURL = s.emuServer.URL()
	out := parsed.Outputs(s.AWSURL)
	s.TrustAnchorARN, s.ProfileARN, s.RoleARN = out.TrustAnchors[TrustAnchor], out.Profiles[Profile], out.Roles[Role]
	return nil
}

// Enroll gets the runner's certificate as keyless certificate does with
// the provisioner's password, into Dir/runner.crt and Dir/runner.key.
func (s *Stack) Enroll(ctx context.Context) (*x509.Certificate, error) {
	s.CertPath, s.KeyPath = filepath.Join(s.Dir, "runner.crt"), filepath.Join(s.Dir, "runner.key")
	e := enroll.Enroller{Client: s.caClient, Logger: s.logger}
	certs, err := e.Enroll(ctx, enroll.Request{Subject: Subject, CertPath: s.CertPath, KeyPath: s.KeyPath, Force: true,
		Provisioner: Provisioner, ProvisionerPassword: s.caPassword})
	if err != nil {
		return nil, err
	}
	return certs.Leaf, nil
}

// CreateSession exchanges the runner's certificate as keyless
// credential-process does (without the cache).
func (s *Stack) CreateSession(ctx context.Context) (*awscreds.Result, error) {
	f := awscreds.Fetcher{Logger: s.logger, UserAgent: s.cfg.UserAgent, Getenv: func(string) string { return "" }}
	res, err := f.Fetch(ctx, awscreds.Request{Files: identity.Files{Certificate: s.CertPath, PrivateKey: s.KeyPath},
		TrustAnchorARN: s.TrustAnchorARN, ProfileARN: s.ProfileARN, RoleARN: s.RoleARN, DurationSeconds: 3600, Endpoint: s.AWSURL, NoCache: true})
	if err != nil {
		return nil, err
	}
	s.credentials = res.Credentials
	return res, nil
}

// CallerIdentity asks the emulator's STS whose the session's credentials
// are.
func (s *Stack) CallerIdentity(ctx context.Context) (*sts.Identity, error) {
	return sts.New(s.AWSURL, Region).GetCallerIdentity(ctx, s.credentials)
}

// WriteAWSConfig writes an AWS CLI config file (Dir/aws-config) whose
// profile AWSProfile runs keyless (at executable) as its
// credential_process against the stack; it returns the path and the
// profile's text.
func (s *Stack) WriteAWSConfig(executable string) (string, string, error) {
	path := filepath.Join(s.Dir, "aws-config")
	profile := fmt.Sprintf(`[profile %s]
region = %s
credential_process = %s credential-process --certificate %s --private-key %s --trust-anchor-arn %s --profile-arn %s --role-arn %s --endpoint %s
`, AWSProfile, Region, executable, s.CertPath, s.KeyPath, s.TrustAnchorARN, s.ProfileARN, s.RoleARN, s.AWSURL)
	return path, profile, atomicfile.WriteFile(path, []byte(profile), 0o600)
}

// Renew keeps the runner's certificate fresh until ctx ends, as keyless
// renew --daemon does, reporting to events.
func (s *Stack) Renew(ctx context.Context, events func(renewal.Event)) error {
	r, err := renewal.New(renewal.Config{Client: s.caClient, CertPath: s.CertPath, KeyPath: s.KeyPath,
		BackoffMin: 5 * time.Second, BackoffMax: time.Minute, Events: events, Logger: s.logger})
	if err != nil {
		return err
	}
	return r.Run(ctx, false)
}

// Fingerprint is the CA root's SHA-256, hex.
func (s *Stack) Fingerprint() string { return pki.Fingerprint(s.CA.Root) }
