package doctor_test

import (
	"context"
	"crypto/x509"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyless-dev/keyless/internal/agent"
	"github.com/keyless-dev/keyless/internal/awscreds"
	"github.com/keyless-dev/keyless/internal/ca"
	"github.com/keyless-dev/keyless/internal/ca/catest"
	"github.com/keyless-dev/keyless/internal/doctor"
	"github.com/keyless-dev/keyless/internal/emulator"
	"github.com/keyless-dev/keyless/internal/emulator/emulatortest"
	"github.com/keyless-dev/keyless/internal/enroll"
	"github.com/keyless-dev/keyless/internal/identity"
	"github.com/keyless-dev/keyless/internal/pki"
	"github.com/keyless-dev/keyless/internal/pki/pkitest"
	"github.com/keyless-dev/keyless/internal/testkit"
)

// setup is a runner's whole chain, healthy until a test breaks it: a
// keyless CA, a certificate enrolled from it, the emulator seeded with
// the reference deployment trusting the CA, the role's trust policy as a
// file, and the doctor's configuration for all of it.
type setup struct {
	t          *testing.T
	dir        string
	ca         *catest.CA
	cert, key  string
	emuURL     string
	ta, pr, ro string
	clock      *testkit.Clock
	cfg        doctor.Config
}

// seedEdit changes the reference seed before the emulator starts.
type seedEdit func(seed string, s *setup) string

func newSetup(t *testing.T, cn string, edit seedEdit, bundle ...*x509.Certificate) *setup {
	t.Helper()
	s := &setup{t: t, dir: t.TempDir(), clock: testkit.NewClock(time.Now())}
	s.ca = catest.Start(t, catest.Options{})
	s.cert, s.key = filepath.Join(s.dir, "runner.crt"), filepath.Join(s.dir, "runner.key")
	provisioner := 1 // runners: gitlab-runner only
	if cn != emulatortest.CommonName {
		provisioner = 0
	}
	if _, err := (&enroll.Enroller{Client: s.ca.Client(t)}).Enroll(context.Background(), enroll.Request{
		Subject: cn, CertPath: s.cert, KeyPath: s.key, Token: s.ca.Token(t, provisioner, cn), NotAfter: "24h"}); err != nil {
		t.Fatal(err)
	}
	if len(bundle) == 0 {
		bundle = []*x509.Certificate{s.ca.Root.Cert}
	}
	seedText := emulatortest.Seed(pki.EncodeCertificates(bundle...))
	if edit != nil {
		seedText = edit(seedText, s)
	}
	srv := emulatortest.NewSeed(t, seedText, nil, nil)
	s.emuURL = srv.URL
	s.ta, s.pr, s.ro = srv.TrustAnchorARN, srv.ProfileARN, srv.RoleARN
	policy := strings.ReplaceAll(emulatortest.TrustPolicy, "${trustAnchors."+emulatortest.TrustAnchor+".arn}", s.ta)
	policyFile := pkitest.WriteFile(t, s.dir, "policy.json", []byte(policy))
	s.cfg = doctor.Config{
		Request: awscreds.Request{Files: identity.Files{Certificate: s.cert, PrivateKey: s.key},
			TrustAnchorARN: s.ta, ProfileARN: s.pr, RoleARN: s.ro, DurationSeconds: 3600, Endpoint: s.emuURL},
		Getenv:      func(string) string { return "" },
		Name:        func(field string) string { return "--" + field },
		TrustPolicy: policyFile,
		CAURL:       s.ca.URL, RootFile: s.ca.RootFile,
		Clock:   s.clock,
		Timeout: 5 * time.Second,
	}
	return s
}

func (s *setup) run() *doctor.Report {
	s.t.Helper()
	rep, err := doctor.Run(context.Background(), s.cfg)
	if err != nil {
		s.t.Fatal(err)
	}
	for _, c := range rep.Results {
		s.t.Logf("%-14s %-4s %s | fix: %s", c.ID, c.Status, c.Detail, c.Fix)
	}
	return rep
}

// startAgent runs keyless agent for the setup's identity, answering on a
// unix socket, and writes its agent.yaml; it stops when the test ends.
func (s *setup) startAgent(run bool) (configFile, socket string) {
	s.t.Helper()
	socket = filepath.Join(s.dir, "agent.sock")
	cfg := fmt.Sprintf(`identity:
  certificate: %s
  key: %s
aws:
  trustAnchorArn: %s
  endpoint: %s
listen:
  socket: {path: %s, mode: "0600"}
rules:
  - name: me
    identity: unix-peer
    match: {uid: "%d"}
    roleArn: %s
    profileArn: %s
`, s.cert, s.key, s.ta, s.emuURL, socket, os.Getuid(), s.ro, s.pr)
	configFile = pkitest.WriteFile(s.t, s.dir, "agent.yaml", []byte(cfg))
	if !run {
		return configFile, socket
	}
	c, err := agent.LoadConfig(configFile)
	if err != nil {
		s.t.Fatal(err)
	}
	ready := make(chan struct{})
	a, err := agent.New(agent.Options{Config: c, Getenv: func(string) string { return "" }, Events: func(e agent.Event) {
		if _, ok := e.(agent.Ready); ok {
			close(ready)
		}
	}})
	if err != nil {
		s.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	s.t.Cleanup(func() {
		cancel()
		<-done
	})
	select {
	case <-ready:
	case err := <-done:
		s.t.Fatalf("the agent stopped: %v", err)
	}
	return configFile, socket
}

// want checks that each named check has its status and that every
// other check is ok or skipped; for a failure, that its fix says fix.
func want(t *testing.T, rep *doctor.Report, statuses map[string]doctor.Status, fixes map[string]string) {
	t.Helper()
	for _, c := range rep.Results {
		w, named := statuses[c.ID]
		switch {
		case named && c.Status != w:
			t.Errorf("check %s is %s (%s), want %s", c.ID, c.Status, c.Detail, w)
		case !named && c.Status != doctor.OK && c.Status != doctor.Skip:
			t.Errorf("check %s is %s (%s; fix: %s), want ok or skip", c.ID, c.Status, c.Detail, c.Fix)
		}
	}
	for id, fix := range fixes {
		if got := rep.Get(id).Fix; !strings.Contains(got, fix) {
			t.Errorf("check %s's fix is %q, want it to say %q", id, got, fix)
		}
	}
	if failed := rep.Failed(); failed != (len(fixes) > 0) {
		t.Errorf("Failed() = %t", failed)
	}
}

// TestHealthy: every check passes on a sound chain, the agent included.
func TestHealthy(t *testing.T) {
	s := newSetup(t, emulatortest.CommonName, nil)
	s.cfg.AgentConfig, _ = s.startAgent(true)
	rep := s.run()
	if len(rep.Results) != 12 {
		t.Errorf("%d checks, want 12", len(rep.Results))
	}
	for _, c := range rep.Results {
		if c.Status != doctor.OK {
			t.Errorf("check %s is %s: %s (fix: %s)", c.ID, c.Status, c.Detail, c.Fix)
		}
	}
	if rep.Failed() {
		t.Error("Failed() on a healthy chain")
	}
	if d := rep.Get(doctor.CheckSTS).Detail; !strings.Contains(d, "assumed-role/"+emulatortest.Role+"/") {
		t.Errorf("STS says %q", d)
	}
	for _, c := range rep.Results {
		if strings.Contains(c.Detail, "ASIA") {
			t.Errorf("check %s shows an access key id: %s", c.ID, c.Detail)
		}
	}
}

// TestBroken breaks the chain one way at a time and expects the doctor
// to name the check that fails and the fix, and to skip what needs it.
func TestBroken(t *testing.T) {
	const (
		ok   = doctor.OK
		fail = doctor.Fail
		skip = doctor.Skip
		warn = doctor.Warn
	)
	type S = map[string]doctor.Status
	type F = map[string]string
	tests := []struct {
		name  string
		cn    string
		edit  seedEdit
		other bool // the trust anchor holds another CA
		brk   func(t *testing.T, s *setup)
		want  S
		fixes F
	}{{
		name: "expired certificate",
		brk: func(t *testing.T, s *setup) {
			k := pkitest.Key(t, pkitest.P256)
			leaf := s.ca.Intermediate.Leaf(t, pkitest.LeafOptions{Key: k, NotBefore: time.Now().Add(-50 * time.Minute), NotAfter: time.Now().Add(-10 * time.Minute)})
			keyPEM, _ := pki.EncodePrivateKey(k)
			pkitest.WriteFile(t, s.dir, "runner.crt", pki.EncodeCertificates(leaf, s.ca.Intermediate.Cert))
			pkitest.WriteFile(t, s.dir, "runner.key", keyPEM)
		},
		want:  S{doctor.CheckValidity: fail, doctor.CheckCreateSession: skip, doctor.CheckSTS: skip, doctor.CheckChain: ok},
		fixes: F{doctor.CheckValidity: "keyless certificate gitlab-runner " + "RUNNER"},
	}, {
		name: "in the renewal window",
		brk: func(t *testing.T, s *setup) {
			s.clock.Advance(20 * time.Hour) // of 24
			s.cfg.Clock = s.clock
		},
		// The clocks are 20 hours off too, now: only the renewal is
		// asserted.
		want:  S{doctor.CheckValidity: warn, doctor.CheckAWSClock: fail, doctor.CheckCAClock: fail, doctor.CheckCreateSession: skip, doctor.CheckSTS: skip},
		fixes: F{doctor.CheckValidity: "keyless renew RUNNER", doctor.CheckAWSClock: "timedatectl"},
	}, {
		name: "wrong key",
		brk: func(t *testing.T, s *setup) {
			keyPEM, _ := pki.EncodePrivateKey(pkitest.Key(t, pkitest.P256))
			pkitest.WriteFile(t, s.dir, "runner.key", keyPEM)
		},
		want: S{doctor.CheckIdentity: fail, doctor.CheckValidity: skip, doctor.CheckChain: skip, doctor.CheckTrustPolicy: skip,
			doctor.CheckCRL: skip, doctor.CheckCreateSession: skip, doctor.CheckSTS: skip},
		fixes: F{doctor.CheckIdentity: "private-key must be the key this certificate was issued for"},
	}, {
		name: "wrong CN",
		cn:   "runner-2",
		want: S{doctor.CheckTrustPolicy: fail, doctor.CheckCreateSession: fail, doctor.CheckSTS: skip},
		fixes: F{doctor.CheckTrustPolicy: "the certificate's names do not meet the policy's condition",
			doctor.CheckCreateSession: "the role's trust policy refuses this certificate"},
	}, {
		name: "trust policy reads request tags",
		brk: func(t *testing.T, s *setup) {
			policy := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"rolesanywhere.amazonaws.com"},
			  "Action":["sts:AssumeRole","sts:TagSession","sts:SetSourceIdentity"],"Condition":{"StringEquals":{"aws:RequestTag/x509Subject/CN":"gitlab-runner"}}}]}`
			s.cfg.TrustPolicy = pkitest.WriteFile(t, s.dir, "policy.json", []byte(policy))
		},
		want:  S{doctor.CheckTrustPolicy: fail},
		fixes: F{doctor.CheckTrustPolicy: "AWS does not define aws:RequestTag/x509Subject/CN for a Roles Anywhere session"},
	}, {
		name: "skewed clock",
		brk: func(t *testing.T, s *setup) {
			s.clock.Advance(10 * time.Minute)
		},
		want:  S{doctor.CheckAWSClock: fail, doctor.CheckCAClock: fail, doctor.CheckCreateSession: skip, doctor.CheckSTS: skip},
		fixes: F{doctor.CheckAWSClock: "timedatectl set-ntp true", doctor.CheckCAClock: "timedatectl set-ntp true"},
	}, {
		name: "slightly skewed clock",
		brk: func(t *testing.T, s *setup) {
			s.clock.Advance(3 * time.Minute)
		},
		want: S{doctor.CheckAWSClock: warn, doctor.CheckCAClock: warn},
	}, {
		name: "unreachable CA",
		brk: func(t *testing.T, s *setup) {
			s.ca.SetDown(true)
		},
		want:  S{doctor.CheckCA: fail, doctor.CheckCAClock: skip, doctor.CheckCRL: skip, doctor.CheckCreateSession: ok},
		fixes: F{doctor.CheckCA: "check that the CA runs"},
	}, {
		name: "CA not listening",
		brk: func(t *testing.T, s *setup) {
			s.cfg.CAURL = "https://" + testkit.Addr(t)
		},
		want:  S{doctor.CheckCA: fail, doctor.CheckCAClock: skip, doctor.CheckCRL: skip},
		fixes: F{doctor.CheckCA: "nothing listens at https://127.0.0.1:"},
	}, {
		name: "CA with another root",
		brk: func(t *testing.T, s *setup) {
			s.cfg.RootFile = pkitest.WriteFile(t, s.dir, "other-root.crt", pki.EncodeCertificates(pkitest.NewRoot(t, "impostor").Cert))
		},
		want:  S{doctor.CheckCA: fail, doctor.CheckChain: fail, doctor.CheckCRL: skip},
		fixes: F{doctor.CheckCA: "does not prove itself with the pinned root", doctor.CheckChain: "not from the CA"},
	}, {
		name: "AWS endpoint not listening",
		brk: func(t *testing.T, s *setup) {
			s.cfg.Request.Endpoint = "http://" + testkit.Addr(t)
		},
		want:  S{doctor.CheckAWSClock: fail, doctor.CheckCreateSession: skip, doctor.CheckSTS: skip},
		fixes: F{doctor.CheckAWSClock: "nothing listens there: check --endpoint"},
	}, {
		name: "intermediate not sent",
		brk: func(t *testing.T, s *setup) {
			leaf, err := identity.LoadCertificate(s.cert, nil)
			if err != nil {
				t.Fatal(err)
			}
			pkitest.WriteFile(t, s.dir, "runner.crt", pki.EncodeCertificates(leaf))
		},
		want: S{doctor.CheckChain: fail, doctor.CheckCreateSession: fail, doctor.CheckSTS: skip, doctor.CheckCRL: skip},
		fixes: F{doctor.CheckChain: "send the intermediate CA with the certificate: --intermediates FILE",
			doctor.CheckCreateSession: "send the intermediate CA with the certificate: --intermediates FILE"},
	}, {
		name:  "wrong trust anchor",
		other: true,
		want:  S{doctor.CheckCreateSession: fail, doctor.CheckSTS: skip, doctor.CheckChain: ok},
		fixes: F{doctor.CheckCreateSession: "must hold the CA that issued this certificate"},
	}, {
		name:  "certificate of another trust anchor",
		other: true,
		edit: func(seed string, s *setup) string {
			// A second anchor, which does hold the CA.
			bundle := pkitest.WriteFile(s.t, s.dir, "ca.pem", pki.EncodeCertificates(s.ca.Root.Cert))
			return strings.Replace(seed, "roles:\n", "  - name: runners-ca\n    certificateBundle: "+bundle+"\nroles:\n", 1)
		},
		want:  S{doctor.CheckCreateSession: fail},
		fixes: F{doctor.CheckCreateSession: "the certificate belongs to another trust anchor: use its ARN as --trust-anchor-arn"},
	}, {
		name:  "wrong trust bundle",
		other: true,
		brk: func(t *testing.T, s *setup) {
			s.cfg.TrustBundle = pkitest.WriteFile(t, s.dir, "bundle.pem", pki.EncodeCertificates(pkitest.NewRoot(t, "other").Cert))
		},
		want:  S{doctor.CheckChain: fail, doctor.CheckCreateSession: fail},
		fixes: F{doctor.CheckChain: "the trust anchor must hold the CA that issued this certificate", doctor.CheckCreateSession: "update-trust-anchor"},
	}, {
		name:  "disabled profile",
		edit:  func(seed string, _ *setup) string { return seed + "    enabled: false\n" },
		want:  S{doctor.CheckCreateSession: fail, doctor.CheckSTS: skip},
		fixes: F{doctor.CheckCreateSession: "aws rolesanywhere enable-profile --profile-id "},
	}, {
		name: "duration above the role's maximum",
		edit: func(seed string, _ *setup) string {
			seed = strings.Replace(seed, "maxSessionDuration: 43200", "maxSessionDuration: 3600", 1)
			return strings.Replace(seed, "durationSeconds: 3600", "durationSeconds: 7200", 1)
		},
		brk:   func(t *testing.T, s *setup) { s.cfg.Request.DurationSeconds = 7200 },
		want:  S{doctor.CheckCreateSession: fail, doctor.CheckSTS: skip},
		fixes: F{doctor.CheckCreateSession: "raise the role's MaxSessionDuration (aws iam update-role --role-name "},
	}, {
		name: "role not in profile",
		brk: func(t *testing.T, s *setup) {
			s.cfg.Request.RoleARN = "arn:aws:iam::" + emulatortest.Account + ":role/other"
		},
		want:  S{doctor.CheckCreateSession: fail, doctor.CheckSTS: skip},
		fixes: F{doctor.CheckCreateSession: "add the role to the profile (aws rolesanywhere update-profile"},
	}, {
		name: "revoked certificate",
		brk: func(t *testing.T, s *setup) {
			pair, err := identity.LoadPair(s.cert, s.key)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.ca.Client(t).Revoke(context.Background(), pair, 1, "key compromise"); err != nil {
				t.Fatal(err)
			}
		},
		// AWS has not been given the CRL: it still issues a session.
		want:  S{doctor.CheckCRL: fail, doctor.CheckCreateSession: ok},
		fixes: F{doctor.CheckCRL: "aws rolesanywhere import-crl"},
	}, {
		name: "agent down",
		brk: func(t *testing.T, s *setup) {
			s.cfg.AgentConfig, _ = s.startAgent(false)
		},
		want:  S{doctor.CheckAgentConfig: ok, doctor.CheckAgent: fail},
		fixes: F{doctor.CheckAgent: "systemctl start keyless-agent"},
	}, {
		name: "agent given as its URL",
		brk: func(t *testing.T, s *setup) {
			s.cfg.AgentSocket = "http://127.0.0.1:9911/v1/credentials"
		},
		want:  S{doctor.CheckAgent: fail},
		fixes: F{doctor.CheckAgent: "give the agent's socket with --agent SOCKET"},
	}, {
		name: "agent configuration broken",
		brk: func(t *testing.T, s *setup) {
			s.cfg.AgentConfig = pkitest.WriteFile(t, s.dir, "agent.yaml", []byte("identity:\n  certificate: runner.crt\n  colour: blue\n"))
		},
		want:  S{doctor.CheckAgentConfig: fail, doctor.CheckAgent: skip},
		fixes: F{doctor.CheckAgentConfig: "--check"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cn := tt.cn
			if cn == "" {
				cn = emulatortest.CommonName
			}
			var bundle []*x509.Certificate
			if tt.other {
				bundle = append(bundle, pkitest.NewRoot(t, "other").Cert)
			}
			s := newSetup(t, cn, tt.edit, bundle...)
			if tt.brk != nil {
				tt.brk(t, s)
			}
			rep := s.run()
			fixes := F{}
			for id, f := range tt.fixes {
				fixes[id] = strings.ReplaceAll(f, "RUNNER", s.cert+" "+s.key)
			}
			want(t, rep, tt.want, fixes)
		})
	}
}

// TestInputErrors: a request that cannot be checked at all is an
// *awscreds.InputError naming the field, not a report.
func TestInputErrors(t *testing.T) {
	_, err := doctor.Run(context.Background(), doctor.Config{Request: awscreds.Request{DurationSeconds: 3600},
		Getenv: func(string) string { return "" }, Name: func(f string) string { return "--" + f }})
	if err == nil || !strings.Contains(err.Error(), "--certificate") {
		t.Fatalf("got %v, want an error naming --certificate", err)
	}
}

// TestFromAgentConfig: with no certificate but agent.yaml, the doctor
// checks the agent's own chain (identity, trust anchor, endpoint, the
// first rule's role) and names agent.yaml's fields in its fixes.
func TestFromAgentConfig(t *testing.T) {
	s := newSetup(t, emulatortest.CommonName, nil)
	s.cfg.AgentConfig, _ = s.startAgent(true)
	s.cfg.Request = awscreds.Request{DurationSeconds: 3600}
	rep := s.run()
	for _, c := range rep.Results {
		if c.Status != doctor.OK {
			t.Errorf("check %s is %s: %s (fix: %s)", c.ID, c.Status, c.Detail, c.Fix)
		}
	}

	// The agent's key replaced by another: the fix names identity.key.
	keyPEM, _ := pki.EncodePrivateKey(pkitest.Key(t, pkitest.P256))
	pkitest.WriteFile(t, s.dir, "runner.key", keyPEM)
	rep = s.run()
	want(t, rep, map[string]doctor.Status{doctor.CheckIdentity: doctor.Fail, doctor.CheckValidity: doctor.Skip, doctor.CheckChain: doctor.Skip,
		doctor.CheckTrustPolicy: doctor.Skip, doctor.CheckCRL: doctor.Skip, doctor.CheckCreateSession: doctor.Skip, doctor.CheckSTS: doctor.Skip},
		map[string]string{doctor.CheckIdentity: "identity.key in " + s.cfg.AgentConfig + " must be the key"})

	// A configuration that does not load cannot say what to check.
	s.cfg.AgentConfig = pkitest.WriteFile(t, s.dir, "broken.yaml", []byte("identity: {colour: blue}\n"))
	if _, err := doctor.Run(context.Background(), s.cfg); err == nil || !strings.Contains(err.Error(), "broken.yaml") {
		t.Errorf("a broken agent.yaml: %v", err)
	}
}

// TestAgentSocketOnly: credential-process --agent SOCKET pasted after
// keyless doctor checks the agent alone.
func TestAgentSocketOnly(t *testing.T) {
	s := newSetup(t, emulatortest.CommonName, nil)
	_, s.cfg.AgentSocket = s.startAgent(true)
	s.cfg.Request = awscreds.Request{DurationSeconds: 3600}
	rep := s.run()
	for _, c := range rep.Results {
		want := doctor.Skip
		if c.ID == doctor.CheckAgent {
			want = doctor.OK
		}
		if c.Status != want {
			t.Errorf("check %s is %s (%s), want %s", c.ID, c.Status, c.Detail, want)
		}
	}
}

// TestForgedCRL: a CRL that names the certificate's issuer but is not
// signed by it (served by whatever answers at the CA's URL) is not
// believed: the certificate is neither reported revoked nor cleared.
func TestForgedCRL(t *testing.T) {
	s := newSetup(t, emulatortest.CommonName, nil)
	leaf, err := identity.LoadCertificate(s.cert, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Same name as the CA's intermediate, another key.
	forger := pkitest.NewRoot(t, s.ca.Intermediate.Cert.Subject.CommonName)
	if string(forger.Cert.RawSubject) != string(leaf.RawIssuer) {
		t.Fatal("the forger's name is not the issuer's")
	}
	crl := forger.CRL(t, leaf.SerialNumber)
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/1.0/crl" {
			_, _ = w.Write(crl)
		}
	}))
	t.Cleanup(srv.Close)
	s.cfg.CAURL = srv.URL
	s.cfg.RootFile = pkitest.WriteFile(t, s.dir, "fake-root.crt", pki.EncodeCertificates(srv.Certificate()))
	s.cfg.TrustBundle = s.ca.RootFile
	rep := s.run()
	want(t, rep, map[string]doctor.Status{doctor.CheckCRL: doctor.Warn}, nil)
	if d := rep.Get(doctor.CheckCRL).Detail; !strings.Contains(d, "signature does not verify") {
		t.Errorf("crl: %s", d)
	}
}

// TestOverTLS: an HTTPS endpoint whose CA is in AWS_CA_BUNDLE is trusted
// for CreateSession and STS alike; without it, the AWS check fails and
// says to set AWS_CA_BUNDLE.
func TestOverTLS(t *testing.T) {
	s := newSetup(t, emulatortest.CommonName, nil)
	seed, err := emulator.ParseSeed([]byte(emulatortest.Seed(pki.EncodeCertificates(s.ca.Root.Cert))), emulator.SeedSource{Name: "seed.yaml"})
	if err != nil {
		t.Fatal(err)
	}
	emu, err := emulator.New(emulator.Config{Seed: seed})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewTLSServer(emu)
	t.Cleanup(srv.Close)
	out := seed.Outputs(srv.URL)
	r := &s.cfg.Request
	r.Endpoint, r.TrustAnchorARN, r.ProfileARN, r.RoleARN = srv.URL, out.TrustAnchors[emulatortest.TrustAnchor], out.Profiles[emulatortest.Profile], out.Roles[emulatortest.Role]
	s.cfg.TrustPolicy = ""
	bundle := pkitest.WriteFile(t, s.dir, "endpoint-ca.pem", pki.EncodeCertificates(srv.Certificate()))
	s.cfg.Getenv = func(k string) string {
		if k == "AWS_CA_BUNDLE" {
			return bundle
		}
		return ""
	}
	want(t, s.run(), map[string]doctor.Status{doctor.CheckSTS: doctor.OK, doctor.CheckCreateSession: doctor.OK}, nil)

	s.cfg.Getenv = func(string) string { return "" }
	want(t, s.run(), map[string]doctor.Status{doctor.CheckAWSClock: doctor.Fail, doctor.CheckCreateSession: doctor.Skip},
		map[string]string{doctor.CheckAWSClock: "point AWS_CA_BUNDLE at that CA's certificate"})
}

// TestStaleCRL: a CRL that does not list the certificate but whose
// nextUpdate has passed on this machine's clock is a warning that the CA
// stopped signing CRLs, not a clean bill.
func TestStaleCRL(t *testing.T) {
	s := newSetup(t, emulatortest.CommonName, nil)
	// The real CA, reloaded (as kill -HUP does) to sign CRLs valid for a
	// second; this machine's clock half of WarnSkew ahead of the CA's and
	// the emulator's: the clock checks pass, the CRL's nextUpdate is past.
	cfg, err := ca.ParseConfig(append(s.ca.ConfigYAML, "crlValidity: 1s\n"...))
	if err != nil {
		t.Fatal(err)
	}
	s.ca.Authority.Reload(cfg)
	s.clock.Advance(doctor.WarnSkew / 2)
	rep := s.run()
	want(t, rep, map[string]doctor.Status{doctor.CheckCRL: doctor.Warn}, nil)
	c := rep.Get(doctor.CheckCRL)
	if !strings.Contains(c.Detail, "not revoked, but the CRL is stale") {
		t.Errorf("crl: %s", c.Detail)
	}
	if c.Fix != "check that the CA is running and signing CRLs" {
		t.Errorf("crl's fix: %q", c.Fix)
	}
}

// TestSTSOfAnotherAccount: --sts-endpoint pointing at another account's
// STS. Another emulator refuses the session's credentials (it did not
// issue them); an STS that accepts them but answers for an account other
// than the role's is a warning naming both accounts.
func TestSTSOfAnotherAccount(t *testing.T) {
	const other = "444455556666"
	s := newSetup(t, emulatortest.CommonName, nil)

	ref := emulatortest.Reference(pki.EncodeCertificates(s.ca.Root.Cert))
	ref.Account = other
	otherEmu := emulatortest.NewReference(t, ref, nil, nil)
	s.cfg.STSEndpoint = otherEmu.URL
	want(t, s.run(), map[string]doctor.Status{doctor.CheckSTS: doctor.Fail},
		map[string]string{doctor.CheckSTS: "refused by STS there: check --sts-endpoint"})

	// An STS of account other that takes the credentials: test code
	// only, it answers any signed request with a session's token.
	arn := "arn:aws:sts::" + other + ":assumed-role/" + emulatortest.Role + "/doctor"
	var asked atomic.Int32
	fake := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 ") || r.Header.Get("X-Amz-Security-Token") == "" {
			http.Error(w, "unsigned", http.StatusForbidden)
			return
		}
		asked.Add(1)
		w.Header().Set("Content-Type", "text/xml")
		fmt.Fprintf(w, `<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><GetCallerIdentityResult>`+
			`<Arn>%s</Arn><UserId>AROAEXAMPLEEXAMPLE:doctor</UserId><Account>%s</Account></GetCallerIdentityResult>`+
			`<ResponseMetadata><RequestId>1</RequestId></ResponseMetadata></GetCallerIdentityResponse>`, arn, other)
	}))
	t.Cleanup(fake.Close)
	s.cfg.STSEndpoint = fake.URL
	rep := s.run()
	want(t, rep, map[string]doctor.Status{doctor.CheckSTS: doctor.Warn}, nil)
	if asked.Load() != 1 {
		t.Errorf("the STS was asked %d times, want once", asked.Load())
	}
	c := rep.Get(doctor.CheckSTS)
	if want := arn + " is in account " + other + ", not the role's " + emulatortest.Account; !strings.Contains(c.Detail, want) {
		t.Errorf("sts: %q, want it to say %q", c.Detail, want)
	}
	if c.Fix != "check --sts-endpoint" {
		t.Errorf("sts's fix: %q", c.Fix)
	}
}
