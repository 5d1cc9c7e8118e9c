package awshelper_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyless-dev/keyless/internal/pki"
	"github.com/keyless-dev/keyless/internal/pki/pkitest"
	"github.com/keyless-dev/keyless/internal/sigv4"
	"github.com/keyless-dev/keyless/internal/testkit"
)

// These tests run the aws_signing_helper binary (built from the v1.4.0
// module with cgo, as AWS ships it) and the keyless binary (built with
// CGO_ENABLED=0) side by side and compare what they print.

func TestMain(m *testing.M) { os.Exit(testkit.Main(m).Run()) }

// binaries builds both programs once per test process: keyless as it
// ships, AWS's helper with cgo (it links PKCS#11 and TPM code).
func binaries(t testing.TB) (keyless, awsHelper string) {
	t.Helper()
	return testkit.Keyless(t), testkit.Build(t, "aws_signing_helper", "github.com/aws/rolesanywhere-credential-helper", true)
}

func run(t testing.TB, bin string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "XDG_CACHE_HOME="+os.Getenv("XDG_CACHE_HOME"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(bin), strings.Join(args, " "), err, stderr.Bytes())
	}
	return out
}

func TestReadCertificateDataParity(t *testing.T) {
	keyless, awsHelper := binaries(t)
	for _, kind := range []string{pkitest.RSA2048, pkitest.P256, pkitest.P384} {
		id := writeIdentity(t, kind)
		bundle := filepath.Join(filepath.Dir(id.cert), "bundle.pem")
		leaf, _ := os.ReadFile(id.cert)
		chain, _ := os.ReadFile(id.chain)
		if err := os.WriteFile(bundle, append(leaf, chain...), 0o600); err != nil {
			t.Fatal(err)
		}
		for _, file := range []string{id.cert, bundle} {
			want := run(t, awsHelper, "read-certificate-data", "--certificate", file)
			got := run(t, keyless, "read-certificate-data", "--certificate", file)
			if !bytes.Equal(got, want) {
				t.Errorf("%s %s:\nhelper:  %s\nkeyless: %s", kind, filepath.Base(file), want, got)
			}
		}
	}
}

func TestSignStringParity(t *testing.T) {
	keyless, awsHelper := binaries(t)
	digests := map[string]crypto.Hash{"SHA256": crypto.SHA256, "SHA384": crypto.SHA384, "SHA512": crypto.SHA512}

	// RSA PKCS#1 v1.5 is deterministic: outputs must be identical.
	id := writeIdentity(t, pkitest.RSA2048)
	for digest := range digests {
		for _, format := range []string{"json", "text", "bin"} {
			args := []string{"sign-string", "--certificate", id.cert, "--private-key", id.key, "--digest", digest, "--format", format}
			want := run(t, awsHelper, args...)
			got := run(t, keyless, args...)
			if !bytes.Equal(got, want) {
				t.Errorf("RSA %s %s:\nhelper:  %x\nkeyless: %x", digest, format, want, got)
			}
		}
	}

	// ECDSA is randomised: both signatures must verify over the fixed
	// string as AWS's helper defines it.
	for _, kind := range []string{pkitest.P256, pkitest.P384} {
		id := writeIdentity(t, kind)
		pub := id.signer.Key.Public().(*ecdsa.PublicKey)
		for name, hash := range digests {
			args := []string{"sign-string", "--certificate", id.cert, "--private-key", id.key, "--digest", name, "--format", "text"}
			for bin, label := range map[string]string{awsHelper: "helper", keyless: "keyless"} {
				sig, err := hex.DecodeString(string(run(t, bin, args...)))
				if err != nil {
					t.Fatalf("%s output is not hex: %v", label, err)
				}
				h := hash.New()
				h.Write(fixedString(t, pub))
				if !ecdsa.VerifyASN1(pub, h.Sum(nil), sig) {
					t.Errorf("%s %s %s signature does not verify over the fixed string", kind, name, label)
				}
			}
		}
	}
}

// fixedString is AWS's helper's sign-string message, written from its
// definition: "AWS Roles Anywhere Credential Helper Signing Test" || "1" ||
// SHA256("IAM RA" || uncompressed EC point or PKCS#1 RSA public key).
func fixedString(t *testing.T, pub crypto.PublicKey) []byte {
	var b []byte
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		var err error
		if b, err = k.Bytes(); err != nil { // the uncompressed point, as elliptic.Marshal in the helper
			t.Fatal(err)
		}
	case *rsa.PublicKey:
		b = x509.MarshalPKCS1PublicKey(k)
	}
	sum := sha256.Sum256(append([]byte("IAM RA"), b...))
	return append([]byte("AWS Roles Anywhere Credential Helper Signing Test1"), sum[:]...)
}

// fixedServer answers every verified CreateSession with the same
// credentials, so two clients' outputs can be compared byte for byte.
type fixedServer struct {
	*httptest.Server
	mu       sync.Mutex
	requests []*http.Request
	bodies   [][]byte
}

func newFixedServer(t testing.TB) *fixedServer {
	exp := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	answer, _ := json.Marshal(map[string]any{
		"credentialSet": []any{map[string]any{
			"assumedRoleUser": map[string]string{"arn": "arn:aws:sts::111122223333:assumed-role/ci-deployer/s", "assumedRoleId": "AROAEXAMPLE:s"},
			"credentials": map[string]string{
				"accessKeyId": "ASIAINTEROPEXAMPLE01", "secretAccessKey": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
				"sessionToken": "IQoJb3JpZ2luX2VjEXAMPLETOKEN+/=", "expiration": exp,
			},
			"packedPolicySize": 0, "roleArn": roleARN, "sourceIdentity": "CN=gitlab-runner",
		}},
		"subjectArn": "arn:aws:rolesanywhere:us-east-1:111122223333:subject/41c10bae-6783-40d4-ab20-65dc5d922e45",
	})
	fs := &fixedServer{}
	fs.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if _, err := sigv4.VerifyX509(r, body, sigv4.X509VerifyOptions{Now: time.Now(), Region: "us-east-1"}); err != nil {
			w.Header().Set("X-Amzn-ErrorType", "AccessDeniedException")
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprintf(w, `{"message":%q}`, err.Error())
			return
		}
		fs.mu.Lock()
		fs.requests = append(fs.requests, r)
		fs.bodies = append(fs.bodies, body)
		fs.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		w.Write(answer)
	}))
	t.Cleanup(fs.Close)
	return fs
}

func TestCredentialProcessParity(t *testing.T) {
	keyless, awsHelper := binaries(t)
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	for _, kind := range []string{pkitest.RSA2048, pkitest.P256} {
		t.Run(kind, func(t *testing.T) {
			id := writeIdentity(t, kind)
			srv := newFixedServer(t)
			args := []string{"credential-process", "--certificate", id.cert, "--private-key", id.key, "--intermediates", id.chain,
				"--trust-anchor-arn", taARN, "--profile-arn", profARN, "--role-arn", roleARN, "--endpoint", srv.URL}
			want := run(t, awsHelper, args...)
			got := run(t, keyless, append(args, "--no-cache")...)
			if !bytes.Equal(got, want) {
				t.Fatalf("outputs differ\nhelper:  %s\nkeyless: %s", want, got)
			}
			cached := run(t, keyless, args...)
			if !bytes.Equal(cached, want) {
				t.Fatalf("output through the cache differs\nhelper:  %s\nkeyless: %s", want, cached)
			}
			h, k := srv.requests[0], srv.requests[1]
			if h.URL.RawQuery != k.URL.RawQuery || !bytes.Equal(srv.bodies[0], srv.bodies[1]) {
				t.Fatalf("requests differ:\nhelper:  %s %s\nkeyless: %s %s", h.URL.RawQuery, srv.bodies[0], k.URL.RawQuery, srv.bodies[1])
			}
			if strip(dateless(h.Header.Get("Authorization"))) != strip(dateless(k.Header.Get("Authorization"))) {
				t.Fatalf("Authorization differs beyond date and signature\nhelper:  %s\nkeyless: %s", h.Header.Get("Authorization"), k.Header.Get("Authorization"))
			}
		})
	}
}

// dateless removes the scope date, which differs when the two processes
// run on either side of midnight UTC.
func dateless(authz string) string {
	i := strings.Index(authz, "/")
	return authz[:i] + authz[i+9:]
}

// BenchmarkProcess times whole processes, as the AWS CLI runs them for each
// command: keyless with a warm cache, keyless without the cache, and AWS's
// helper (which has none), each against a loopback endpoint.
func BenchmarkProcess(b *testing.B) {
	keyless, awsHelper := binaries(b)
	b.Setenv("XDG_CACHE_HOME", b.TempDir())
	root := pkitest.NewRoot(b, "bench-root")
	key := pkitest.Key(b, pkitest.P256)
	leaf := root.Leaf(b, pkitest.LeafOptions{Key: key})
	dir := b.TempDir()
	id := identityFilesFor(b, dir, leaf, key)
	srv := newFixedServer(b)
	args := []string{"credential-process", "--certificate", id.cert, "--private-key", id.key,
		"--trust-anchor-arn", taARN, "--profile-arn", profARN, "--role-arn", roleARN, "--endpoint", srv.URL}
	run(b, keyless, args...) // warm the cache
	for _, c := range []struct {
		name string
		bin  string
		args []string
	}{
		{"keyless-cache-hit", keyless, args},
		{"keyless-no-cache", keyless, append(append([]string{}, args...), "--no-cache")},
		{"aws-helper", awsHelper, args},
	} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				run(b, c.bin, c.args...)
			}
		})
	}
}

func identityFilesFor(t testing.TB, dir string, leaf *x509.Certificate, key crypto.Signer) identityFiles {
	keyPEM, err := pki.EncodePrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return identityFiles{
		cert: pkitest.WriteFile(t, dir, "leaf.pem", pki.EncodeCertificates(leaf)),
		key:  pkitest.WriteFile(t, dir, "key.pem", keyPEM),
	}
}
