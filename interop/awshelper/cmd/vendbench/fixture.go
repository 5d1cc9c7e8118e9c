//go:build linux

package main

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"

	"github.com/keyless-dev/keyless/internal/emulator"
	"github.com/keyless-dev/keyless/internal/emulator/emulatortest"
	"github.com/keyless-dev/keyless/internal/gitlab/gitlabfake"
	"github.com/keyless-dev/keyless/internal/pki"
	"github.com/keyless-dev/keyless/internal/pki/pkitest"
)

// fixture is what both servers talk to, in this process: the runner's
// certificate and key (from a throwaway CA), the Roles Anywhere emulator
// trusting that CA (the reference deployment, accepting session names),
// and the fake GitLab with one running job.
type fixture struct {
	certFile, keyFile                string
	anchorARN, profileARN, roleARN   string
	emulatorURL, gitlabURL, jobToken string
	gitlab                           *gitlabfake.Server
	sessions                         *atomic.Int64 // CreateSession calls
}

func newFixture(t emulatortest.TB, dir string) *fixture {
	f := &fixture{sessions: new(atomic.Int64)}
	root := pkitest.NewRoot(t, "vendbench-root")
	key := pkitest.Key(t, pkitest.P256)
	leaf := root.Leaf(t, pkitest.LeafOptions{Key: key, CommonName: emulatortest.CommonName})
	keyPEM, err := pki.EncodePrivateKey(key)
	if err != nil {
		t.Fatalf("%v", err)
	}
	f.certFile = pkitest.WriteFile(t, dir, "runner.crt", pki.EncodeCertificates(leaf))
	f.keyFile = pkitest.WriteFile(t, dir, "runner.key", keyPEM)

	ref := emulatortest.Reference(pki.EncodeCertificates(root.Cert))
	ref.AcceptRoleSessionName = true
	seed, err := emulator.ParseSeed([]byte(ref.Seed()), emulator.SeedSource{Name: "vendbench-emulator.yaml"})
	if err != nil {
		t.Fatalf("emulator seed: %v", err)
	}
	emu, err := emulator.New(emulator.Config{Seed: seed, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("emulator: %v", err)
	}
	emuSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Path == "/sessions" {
			f.sessions.Add(1)
		}
		emu.ServeHTTP(w, r)
	}))
	t.Cleanup(emuSrv.Close)
	f.emulatorURL = emuSrv.URL
	out := seed.Outputs(emuSrv.URL)
	f.anchorARN, f.profileARN, f.roleARN = out.TrustAnchors[emulatortest.TrustAnchor], out.Profiles[emulatortest.Profile], out.Roles[emulatortest.Role]

	f.gitlab = gitlabfake.New(gitlabfake.Options{})
	glSrv := httptest.NewServer(f.gitlab)
	t.Cleanup(glSrv.Close)
	f.gitlab.SetIssuer(glSrv.URL)
	f.gitlabURL = glSrv.URL
	f.jobToken = f.gitlab.AddJob(gitlabfake.Job{ID: jobID, ProjectID: projectID, ProjectPath: projectPath})
	return f
}

// agentYAML is agent.yaml for an agent listening on addr (in the
// directory of the certificate and key): job tokens of the job's
// project get the role, in a session named after the job.
func (f *fixture) agentYAML(addr string) string {
	return fmt.Sprintf(`identity:
  certificate: runner.crt
  key: runner.key
aws:
  trustAnchorArn: %s
  endpoint: %s
gitlab:
  url: %s
listen:
  containerCredentials: [%q]
rules:
  - name: bench
    identity: gitlab-job-token
    match: {project_path: %s}
    roleArn: %s
    profileArn: %s
    sessionName: gitlab-{project_id}-{job_id}
`, f.anchorARN, f.emulatorURL, f.gitlabURL, addr, projectPath, f.roleARN, f.profileARN)
}
