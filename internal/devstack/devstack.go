// Package devstack runs the whole keyless chain on loopback, with no AWS
// account and no network: a keyless CA, the Roles Anywhere and STS
// emulator seeded with the reference deployment, a runner certificate
// enrolled from the CA, credentials for it, and STS's word on whose they
// are; then keyless agent with a fake GitLab (dev-only: agent.yaml cannot
// enable it), which gives a running job its own session; then it keeps
// the certificate renewed. Each step is the use case the matching command
// uses (caops, enroll, awscreds, agent, renewal), so the stack shows the
// real thing working.
//
// It is what keyless dev runs; tests of later parts (the agent) can start
// it too. The stack's state lives in a directory: a temporary one removed
// at Close, or one the caller keeps, whose CA is reused next time.
package devstack

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/base32"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/keyless-dev/keyless/internal/agent"
	"github.com/keyless-dev/keyless/internal/agentapi"
	"github.com/keyless-dev/keyless/internal/atomicfile"
	"github.com/keyless-dev/keyless/internal/awscreds"
	"github.com/keyless-dev/keyless/internal/ca"
	"github.com/keyless-dev/keyless/internal/caclient"
	"github.com/keyless-dev/keyless/internal/caops"
	"github.com/keyless-dev/keyless/internal/emulator"
	"github.com/keyless-dev/keyless/internal/enroll"
	"github.com/keyless-dev/keyless/internal/gitlab/gitlabfake"
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
	// AdminProfile is the AWS CLI profile with the emulator's operator
	// key, for its control plane (Roles Anywhere, IAM, STS).
	AdminProfile = "keyless-dev-admin"
	// Operator is the operator's IAM user name.
	Operator = "keyless-dev-admin"
	// The fake GitLab's project and running job, whose token the agent
	// exchanges for a session named gitlab-42-1001.
	ProjectID   = 42
	ProjectPath = "keyless-dev/app"
	JobID       = 1001
	// IDTokenAudience is the aud the agent accepts in id_tokens.
	IDTokenAudience = "keyless-dev"
)

// Config shapes a stack.
type Config struct {
	// Dir keeps the stack's files; empty means a temporary directory,
	// removed at Close.
	Dir string
	// ListenCA, ListenAWS and ListenAgent are loopback addresses (port 0
	// picks one); ListenAgent is the agent's container-credentials
	// endpoint.
	ListenCA, ListenAWS, ListenAgent string
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
	// OperatorKeyID is the emulator's operator access key id, new for
	// each run; its secret is in OperatorSecretPath (0600) and never
	// printed.
	OperatorKeyID, OperatorSecretPath string
	operatorSecret                    string

	// The runner (Enroll).
	CertPath, KeyPath string

	// The agent (StartAgent): its container-credentials URL, the fake
	// GitLab's running job's token, and the files a job would use.
	AgentURL, AgentSocket, JobToken string
	AgentConfig, AgentEnv           string
	gitlab                          *serve.Server
	agentStop                       context.CancelFunc
	agentDone                       chan error
}

// New checks cfg and makes the stack's directory.
func New(cfg Config) (*Stack, error) {
	if cfg.ListenAgent == "" {
		cfg.ListenAgent = "127.0.0.1:0"
	}
	for _, a := range []struct{ field, addr string }{{"listen-ca", cfg.ListenCA}, {"listen-aws", cfg.ListenAWS}, {"listen-agent", cfg.ListenAgent}} {
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
	if s.agentStop != nil {
		s.agentStop()
		errs = append(errs, <-s.agentDone)
	}
	if s.gitlab != nil {
		errs = append(errs, s.gitlab.Close())
	}
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
//
// The emulator gets an operator, whose key may call its control plane:
// a random access key id and secret made for each run, the secret in
// Dir/operator-secret (0600), which the seed names.
func (s *Stack) StartEmulator() error {
	path := filepath.Join(s.Dir, "emulator.yaml")
	if err := s.newOperator(); err != nil {
		return err
	}
	seed := emulator.Reference{Account: Account, Region: Region, TrustAnchor: TrustAnchor, Role: Role, Profile: Profile,
		CommonName: Subject, BundleFile: "bundle.pem", MaxSessionDuration: 3600, DurationSeconds: 3600,
		// The agent names each session after its job.
		AcceptRoleSessionName: true}.Seed()
	seed += fmt.Sprintf(`# The control plane's operator, new for each run of keyless dev; its
# secret is in operator-secret (0600).
operators:
  - name: %s
    accessKeyId: %s
    secretAccessKeyFile: operator-secret
`, Operator, s.OperatorKeyID)
	if err := atomicfile.WriteFile(path, []byte(seed), 0o644); err != nil {
		return err
	}
	parsed, err := emulator.LoadSeed(path)
	if err != nil {
		return err
	}
	emu, err := emulator.New(emulator.Config{Seed: parsed, Logger: s.logger})
	if err != nil {
		return err
	}
	if s.emuServer, err = emulator.Start(s.cfg.ListenAWS, emu, nil, s.logger); err != nil {
		return err
	}
	s.AWSURL = s.emuServer.URL()
	// For scripts: the endpoint the AWS CLI's --endpoint-url takes.
	if err := atomicfile.WriteFile(filepath.Join(s.Dir, "aws-endpoint"), []byte(s.AWSURL+"\n"), 0o644); err != nil {
		return err
	}
	out := parsed.Outputs(s.AWSURL)
	s.TrustAnchorARN, s.ProfileARN, s.RoleARN = out.TrustAnchors[TrustAnchor], out.Profiles[Profile], out.Roles[Role]
	return nil
}

// newOperator makes the operator's key: an access key id shaped like
// AWS's (AKIA and 16 of A-Z2-7) and a 40-character secret, as AWS's are,
// from crypto/rand, the secret written to Dir/operator-secret.
func (s *Stack) newOperator() error {
	var id [10]byte
	var secret [30]byte
	if _, err := rand.Read(id[:]); err != nil {
		return err
	}
	if _, err := rand.Read(secret[:]); err != nil {
		return err
	}
	s.OperatorKeyID = "AKIA" + base32.StdEncoding.EncodeToString(id[:])
	s.operatorSecret = base64.StdEncoding.EncodeToString(secret[:])
	s.OperatorSecretPath = filepath.Join(s.Dir, "operator-secret")
	return atomicfile.WriteFile(s.OperatorSecretPath, []byte(s.operatorSecret+"\n"), 0o600)
}

// OperatorCredentials returns the operator's key, for tests.
func (s *Stack) OperatorCredentials() sigv4.Credentials {
	return sigv4.Credentials{AccessKeyID: s.OperatorKeyID, SecretAccessKey: s.operatorSecret}
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
// credential_process against the stack, and whose profile AdminProfile
// holds the operator's key for the emulator's control plane; it returns
// the path and AWSProfile's text (AdminProfile's holds the secret, which
// is never printed).
func (s *Stack) WriteAWSConfig(executable string) (string, string, error) {
	path := filepath.Join(s.Dir, "aws-config")
	profile := fmt.Sprintf(`[profile %s]
region = %s
credential_process = %s credential-process --certificate %s --private-key %s --trust-anchor-arn %s --profile-arn %s --role-arn %s --endpoint %s
`, AWSProfile, Region, executable, s.CertPath, s.KeyPath, s.TrustAnchorARN, s.ProfileARN, s.RoleARN, s.AWSURL)
	// The operator's secret in plain text: it is a throwaway key made for
	// this run, accepted only by this loopback emulator, in a 0600 file
	// of a dev-only directory. Never do this with a real AWS key.
	// services= points the AWS CLI (2.13 and later) and the SDKs at the
	// emulator for each service; older CLIs (Debian 12's 2.9.19) ignore
	// it and need --endpoint-url.
	admin := fmt.Sprintf(`
[profile %s]
# keyless dev's operator key for the emulator's control plane (Roles
# Anywhere, IAM, STS). A throwaway key made for this run, accepted only
# by the emulator at %s: never put a real AWS key in a file like this.
region = %s
aws_access_key_id = %s
aws_secret_access_key = %s
services = %s

[services %s]
rolesanywhere =
  endpoint_url = %s
iam =
  endpoint_url = %s
sts =
  endpoint_url = %s
`, AdminProfile, s.AWSURL, Region, s.OperatorKeyID, s.operatorSecret, AdminProfile, AdminProfile, s.AWSURL, s.AWSURL, s.AWSURL)
	return path, profile, atomicfile.WriteFile(path, []byte(profile+admin), 0o600)
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

// StartAgent starts a fake GitLab on loopback with one running job of
// project ProjectPath, and keyless agent for the runner's certificate:
// its configuration is Dir/agent.yaml, loaded as keyless agent loads it,
// with a rule that gives the dev role to that project's jobs. It writes
// Dir/agent.env, the two lines a job would have, and serves until Close.
// The runner's certificate is renewed by Renew, not by the agent.
func (s *Stack) StartAgent(ctx context.Context) error {
	fake := gitlabfake.New(gitlabfake.Options{})
	var err error
	if s.gitlab, err = serve.Start("127.0.0.1:0", fake, serve.Options{Logger: s.logger}); err != nil {
		return err
	}
	fake.SetIssuer(s.gitlab.URL())
	s.JobToken = fake.AddJob(gitlabfake.Job{ID: JobID, ProjectID: ProjectID, ProjectPath: ProjectPath, Ref: "main"})
	s.AgentSocket = filepath.Join(s.Dir, "agent.sock")
	s.AgentConfig = filepath.Join(s.Dir, "agent.yaml")
	yaml := fmt.Sprintf(`# keyless agent's configuration for the dev stack (docs/agent.md).
identity:
  certificate: runner.crt
  key: runner.key
aws:
  trustAnchorArn: %s
  endpoint: %s
gitlab:
  url: %s
  idTokens: {issuer: %s, audience: %s}
listen:
  containerCredentials: [%q]
  socket: {path: agent.sock}
rules:
  - name: dev-app
    identity: [gitlab-job-token, gitlab-id-token]
    match: {project_path: %s}
    roleArn: %s
    profileArn: %s
    sessionName: gitlab-{project_id}-{job_id}
`, s.TrustAnchorARN, s.AWSURL, s.gitlab.URL(), s.gitlab.URL(), IDTokenAudience, s.cfg.ListenAgent, ProjectPath, s.RoleARN, s.ProfileARN)
	if err := atomicfile.WriteFile(s.AgentConfig, []byte(yaml), 0o600); err != nil {
		return err
	}
	cfg, err := agent.LoadConfig(s.AgentConfig)
	if err != nil {
		return err
	}
	ready := make(chan struct{})
	a, err := agent.New(agent.Options{Config: cfg, Logger: s.logger, Version: s.cfg.Version, UserAgent: s.cfg.UserAgent,
		Getenv: func(string) string { return "" },
		Events: func(e agent.Event) {
			switch e := e.(type) {
			case agent.Listening:
				if e.Kind == "container-credentials" {
					s.AgentURL = e.Address
				}
			case agent.Ready:
				close(ready)
			}
		}})
	if err != nil {
		return err
	}
	ctx, s.agentStop = context.WithCancel(ctx)
	s.agentDone = make(chan error, 1)
	go func() { s.agentDone <- a.Run(ctx) }()
	select {
	case <-ready:
	case err := <-s.agentDone:
		s.agentStop, s.agentDone = nil, nil
		if err == nil {
			err = errors.New("the agent stopped before it was ready")
		}
		return err
	}
	s.AgentEnv = filepath.Join(s.Dir, "agent.env")
	env := fmt.Sprintf("AWS_CONTAINER_CREDENTIALS_FULL_URI=%s\nAWS_CONTAINER_AUTHORIZATION_TOKEN=%s\n", s.AgentURL, s.JobToken)
	return atomicfile.WriteFile(s.AgentEnv, []byte(env), 0o600)
}

// AgentCallerIdentity gets the job's credentials from the agent as an AWS
// SDK in the job would, and asks STS whose they are.
func (s *Stack) AgentCallerIdentity(ctx context.Context) (*sts.Identity, *agentapi.Credentials, error) {
	c, err := agentapi.NewClient(s.AgentURL, s.JobToken)
	if err != nil {
		return nil, nil, err
	}
	creds, err := c.Credentials(ctx)
	if err != nil {
		return nil, nil, err
	}
	id, err := sts.New(s.AWSURL, Region).GetCallerIdentity(ctx, sigv4.Credentials{AccessKeyID: creds.AccessKeyID,
		SecretAccessKey: creds.SecretAccessKey, SessionToken: creds.Token, Expiration: creds.Expiration})
	return id, creds, err
}
