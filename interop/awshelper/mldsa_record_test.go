//go:build record

package awshelper_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyless-dev/keyless/internal/ca/catest"
	"github.com/keyless-dev/keyless/internal/emulator/emulatortest"
	"github.com/keyless-dev/keyless/internal/enroll"
	"github.com/keyless-dev/keyless/internal/pki"
	"github.com/keyless-dev/keyless/internal/sigv4"
)

// TestRecordMLDSAVectors writes testdata/mldsa/<parameter set>.json from
// a live run of AWS's helper v1.8.0 (see mldsa_test.go for how to run
// it). It is built only with -tags record.
func TestRecordMLDSAVectors(t *testing.T) {
	bin := os.Getenv(helperV18Env)
	if bin == "" {
		t.Fatalf("set %s to AWS's helper v1.8.0 binary", helperV18Env)
	}
	c := catest.Start(t, catest.Options{})
	dir := filepath.Join("testdata", "mldsa")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, kty := range mldsaKeyTypes {
		id := newMLDSAIdentity(t, c, kty)
		req, _, status := runHelperV18(t, bin, id)
		date, err := time.Parse(sigv4.TimeFormat, req.Header.Get(sigv4.HeaderDate))
		if err != nil {
			t.Fatal(err)
		}
		read := func(p string) string {
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			return string(b)
		}
		// The emulator is reached over plain HTTP on loopback; nothing in
		// the request is a secret but the signature, which is the point.
		v := mldsaVector{Helper: "rolesanywhere-credential-helper v1.8.0 (credential-process)", ParameterSet: kty, Time: date,
			Bundle: string(pki.EncodeCertificates(id.ca.Root.Cert)), Certificate: read(id.cert), Intermediates: read(id.chain), PrivateKey: read(id.key),
			Request: req, Response: recordedReply{Status: status}}
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		name := filepath.Join(dir, strings.ToLower(kty)+".json")
		if err := os.WriteFile(name, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s", name)
	}
}

// TestHelperV18MLDSALive runs AWS's helper v1.8.0 (KEYLESS_AWS_HELPER_V18
// names its binary) with an ML-DSA-44, -65 and -87 certificate from
// keyless's CA against the emulator, and checks that it signs with
// AWS4-X509-MLDSA and gets credentials. Like the recorder, it is built
// only with -tags record: v1.8.0 is not on the Go module proxy, so CI
// cannot install it, and the recorded vectors (TestHelperV18MLDSAVectors)
// are what CI runs; a skipped live test would hide that under
// KEYLESS_INTEROP=require.
func TestHelperV18MLDSALive(t *testing.T) {
	bin := os.Getenv(helperV18Env)
	if bin == "" {
		t.Fatalf("set %s to AWS's helper v1.8.0 binary", helperV18Env)
	}
	c := catest.Start(t, catest.Options{})
	for _, kty := range mldsaKeyTypes {
		t.Run(kty, func(t *testing.T) {
			id := newMLDSAIdentity(t, c, kty)
			req, out, _ := runHelperV18(t, bin, id)
			if a := req.Header.Get("Authorization"); !strings.HasPrefix(a, sigv4.AlgorithmMLDSA+" ") {
				t.Fatalf("the helper signed with %.40q, want %s", a, sigv4.AlgorithmMLDSA)
			}
			var cp struct{ AccessKeyId, SecretAccessKey, SessionToken string }
			if err := json.Unmarshal(out, &cp); err != nil || !strings.HasPrefix(cp.AccessKeyId, "ASIA") || cp.SecretAccessKey == "" || cp.SessionToken == "" {
				t.Fatalf("helper output is not credentials (%v)", err)
			}
		})
	}
}

// helperV18Env names the helper v1.8.0 binary for the live test and the
// recorder.
const helperV18Env = "KEYLESS_AWS_HELPER_V18"

var mldsaKeyTypes = []string{enroll.KeyMLDSA44, enroll.KeyMLDSA65, enroll.KeyMLDSA87}

// mldsaIdentity gets an ML-DSA certificate of kty from an in-process
// keyless CA, as `keyless certificate --kty kty` does, and returns the
// paths of the pair, the chain, and the CA's root.
type mldsaIdentity struct {
	dir, cert, key, chain string
	ca                    *catest.CA
}

func newMLDSAIdentity(t *testing.T, c *catest.CA, kty string) mldsaIdentity {
	t.Helper()
	ctx := context.Background()
	client := c.Client(t)
	dir := t.TempDir()
	id := mldsaIdentity{dir: dir, cert: filepath.Join(dir, "runner.crt"), key: filepath.Join(dir, "runner.key"), chain: filepath.Join(dir, "chain.crt"), ca: c}
	e := enroll.Enroller{Client: client}
	if _, err := e.Enroll(ctx, enroll.Request{Subject: emulatortest.CommonName, CertPath: id.cert, KeyPath: id.key, ChainPath: id.chain,
		KeyType: kty, Provisioner: catest.Runners, ProvisionerPassword: []byte(catest.Password), NotAfter: "168h"}); err != nil {
		t.Fatalf("enrolling an %s certificate: %v", kty, err)
	}
	return id
}

// capture is an emulator behind a handler that keeps every request.
type capture struct {
	mu   sync.Mutex
	reqs []recordedHTTP
	emu  http.Handler
}

func (c *capture) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body bytes.Buffer
	_, _ = body.ReadFrom(r.Body)
	c.mu.Lock()
	c.reqs = append(c.reqs, recordedHTTP{Method: r.Method, Host: r.Host, Path: r.URL.Path, RawQuery: r.URL.RawQuery, Header: r.Header.Clone(), Body: body.String()})
	c.mu.Unlock()
	r.Body = http.NoBody
	if body.Len() > 0 {
		r.Body = readCloser{bytes.NewReader(body.Bytes())}
	}
	c.emu.ServeHTTP(w, r)
}

type readCloser struct{ *bytes.Reader }

func (readCloser) Close() error { return nil }

// runHelperV18 runs the helper binary's credential-process for id against
// an emulator trusting id's CA, and returns the request it sent and its
// standard output.
func runHelperV18(t *testing.T, bin string, id mldsaIdentity) (recordedHTTP, []byte, int) {
	t.Helper()
	var logs bytes.Buffer
	srv := emulatortest.NewSeed(t, mldsaSeed(pki.EncodeCertificates(id.ca.Root.Cert)), nil, slog.New(slog.NewTextHandler(&logs, nil)))
	capt := &capture{emu: srv.Emulator}
	front := httptest.NewServer(capt)
	t.Cleanup(front.Close)
	cmd := exec.Command(bin, "credential-process", "--certificate", id.cert, "--private-key", id.key, "--intermediates", id.chain,
		"--trust-anchor-arn", srv.TrustAnchorARN, "--profile-arn", srv.ProfileARN, "--role-arn", srv.RoleARN,
		"--endpoint", front.URL, "--region", emulatortest.Region)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helper v1.8.0 credential-process: %v\n%s\nemulator log:\n%s", err, stderr.String(), logs.String())
	}
	capt.mu.Lock()
	defer capt.mu.Unlock()
	if len(capt.reqs) != 1 {
		t.Fatalf("the helper made %d requests, want 1", len(capt.reqs))
	}
	return capt.reqs[0], out, http.StatusCreated
}
