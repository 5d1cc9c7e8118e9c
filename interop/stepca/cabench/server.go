// Package cabench measures certificate authorities as processes: it starts
// `keyless ca serve` and step-ca v0.30.2, each in its own process with a
// JWK provisioner and a bbolt database on disk, drives them with
// smallstep's own Go client (github.com/smallstep/certificates/ca) over
// keep-alive TLS, and reads each server's CPU time from /proc, so what is
// compared is the CPU a CA spends per certificate, not only how fast one
// client sees it answer on a machine it shares. cmd/cabench is its
// command line.
package cabench

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/smallstep/certificates/ca"
	"go.step.sm/crypto/jose"
	"go.step.sm/crypto/pemutil"
)

// ProvisionerName names the JWK provisioner of both CAs.
const ProvisionerName = "bench"

// Subject is the name every benchmark certificate is for (CN and DNS SAN).
const Subject = "gitlab-runner"

// Server is one CA process.
type Server struct {
	Name         string // "keyless" or "step-ca"
	URL          string // https://127.0.0.1:PORT
	Fingerprint  string // hex SHA-256 of the root
	Root         *x509.Certificate
	Intermediate *x509.Certificate
	password     []byte

	cmd    *exec.Cmd
	out    *syncBuffer
	exited chan struct{}
	err    error // Wait's result, once exited is closed

	provOnce sync.Once
	prov     *ca.Provisioner
	provErr  error
}

// PID is the server process's id.
func (s *Server) PID() int { return s.cmd.Process.Pid }

// Output is what the server wrote to stdout and stderr so far.
func (s *Server) Output() string { return s.out.String() }

// Stop sends SIGTERM and waits for the process to exit (SIGKILL after 10
// seconds).
func (s *Server) Stop() error {
	select {
	case <-s.exited:
		return fmt.Errorf("%s exited before it was stopped: %v", s.Name, s.err)
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
		return nil
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
		return fmt.Errorf("%s did not stop within 10s of SIGTERM", s.Name)
	}
}

// StartKeyless makes a CA in dir with `keyless ca init` (a random
// password written to a file by --generate-password, a JWK provisioner)
// and serves it with `keyless ca serve` until Stop. extraServe are more
// arguments for `ca serve` (such as --log-level).
func StartKeyless(ctx context.Context, bin, dir string, extraServe ...string) (*Server, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	caDir, pwFile := filepath.Join(dir, "ca"), filepath.Join(dir, "password")
	var stdout, stderr bytes.Buffer
	init := exec.CommandContext(ctx, bin, "ca", "init", "--name", "Bench CA", "--dns", "127.0.0.1", "--dns", "localhost",
		"--address", addr, "--provisioner", ProvisionerName, "--password-file", pwFile, "--generate-password", "--dir", caDir)
	init.Stdout, init.Stderr = &stdout, &stderr
	if err := init.Run(); err != nil {
		return nil, fmt.Errorf("%s ca init: %v\n%s%s", bin, err, stdout.Bytes(), stderr.Bytes())
	}
	m := regexp.MustCompile(`(?m)^Root fingerprint: ([0-9a-f]{64})\r?$`).FindStringSubmatch(stdout.String())
	if m == nil {
		return nil, fmt.Errorf("%s ca init printed no root fingerprint:\n%s", bin, stdout.Bytes())
	}
	pw, err := os.ReadFile(pwFile)
	if err != nil {
		return nil, err
	}
	s := &Server{Name: "keyless", URL: "https://" + addr, Fingerprint: m[1], password: bytes.TrimRight(bytes.SplitN(pw, []byte("\n"), 2)[0], "\r")}
	if s.Root, err = readCert(filepath.Join(caDir, "certs", "root_ca.crt")); err != nil {
		return nil, err
	}
	if s.Intermediate, err = readCert(filepath.Join(caDir, "certs", "intermediate_ca.crt")); err != nil {
		return nil, err
	}
	args := append([]string{"ca", "serve", "--dir", caDir, "--password-file", pwFile}, extraServe...)
	if err := s.start(ctx, bin, args...); err != nil {
		return nil, err
	}
	return s, nil
}

// StartStepCA makes a PKI in dir the way `step ca init` makes one (P-256
// root and intermediate, the intermediate key encrypted with the password,
// a JWK provisioner whose private key is stored encrypted with the same
// password, a bbolt database) and serves it with bin, a step-ca server
// that takes -config and -password-file (cmd/stepca-server).
func StartStepCA(ctx context.Context, bin, dir string) (*Server, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	stepDir := filepath.Join(dir, "step")
	for _, d := range []string{"certs", "secrets", "config", "db"} {
		if err := os.MkdirAll(filepath.Join(stepDir, d), 0o700); err != nil {
			return nil, err
		}
	}
	pwBytes := make([]byte, 24)
	if _, err := rand.Read(pwBytes); err != nil {
		return nil, err
	}
	s := &Server{Name: "step-ca", URL: "https://" + addr, password: []byte(hex.EncodeToString(pwBytes))}
	pwFile := filepath.Join(dir, "step-password")
	if err := os.WriteFile(pwFile, s.password, 0o600); err != nil {
		return nil, err
	}
	rootKey, root, err := NewCACert("Bench Step Root CA", nil, nil, 1)
	if err != nil {
		return nil, err
	}
	interKey, inter, err := NewCACert("Bench Step Intermediate CA", root, rootKey, 0)
	if err != nil {
		return nil, err
	}
	s.Root, s.Intermediate = root, inter
	sum := sha256.Sum256(root.Raw)
	s.Fingerprint = hex.EncodeToString(sum[:])
	rootFile, interFile := filepath.Join(stepDir, "certs", "root_ca.crt"), filepath.Join(stepDir, "certs", "intermediate_ca.crt")
	for f, der := range map[string][]byte{rootFile: root.Raw, interFile: inter.Raw} {
		if err := os.WriteFile(f, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
			return nil, err
		}
	}
	block, err := pemutil.Serialize(interKey, pemutil.WithPassword(s.password))
	if err != nil {
		return nil, fmt.Errorf("encrypting the intermediate key: %w", err)
	}
	interKeyFile := filepath.Join(stepDir, "secrets", "intermediate_ca_key")
	if err := os.WriteFile(interKeyFile, pem.EncodeToMemory(block), 0o600); err != nil {
		return nil, err
	}
	jwk, err := jose.GenerateJWK("EC", "P-256", "ES256", "sig", "", 0)
	if err != nil {
		return nil, fmt.Errorf("generating the provisioner key: %w", err)
	}
	jwe, err := jose.EncryptJWK(jwk, s.password)
	if err != nil {
		return nil, fmt.Errorf("encrypting the provisioner key: %w", err)
	}
	encryptedKey, err := jwe.CompactSerialize()
	if err != nil {
		return nil, err
	}
	pub := jwk.Public()
	cfgFile := filepath.Join(stepDir, "config", "ca.json")
	cfgJSON, err := json.MarshalIndent(map[string]any{
		"root":     rootFile,
		"crt":      interFile,
		"key":      interKeyFile,
		"address":  addr,
		"dnsNames": []string{"127.0.0.1", "localhost"},
		"db":       map[string]any{"type": "bbolt", "dataSource": filepath.Join(stepDir, "db", "bolt.db")},
		"authority": map[string]any{
			"provisioners": []any{map[string]any{"type": "JWK", "name": ProvisionerName, "key": &pub, "encryptedKey": encryptedKey}},
		},
		"tls": map[string]any{
			"cipherSuites":  []string{"TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"},
			"minVersion":    1.2,
			"maxVersion":    1.3,
			"renegotiation": false,
		},
	}, "", "\t")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(cfgFile, cfgJSON, 0o600); err != nil {
		return nil, err
	}
	if err := s.start(ctx, bin, "-config", cfgFile, "-password-file", pwFile); err != nil {
		return nil, err
	}
	return s, nil
}

// BuildStepCA builds cmd/stepca-server into dir and returns its path. It
// runs the go command in the current directory, which must be inside the
// interop/stepca module (as `go run ./cmd/cabench` there is).
func BuildStepCA(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "stepca-server")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/keyless-dev/keyless/interop/stepca/cmd/stepca-server")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building step-ca (go build .../interop/stepca/cmd/stepca-server; run from interop/stepca, or give -step-ca): %v\n%s", err, out)
	}
	return bin, nil
}

// start runs the server and waits until GET /health answers over TLS
// verified against the root.
func (s *Server) start(ctx context.Context, bin string, args ...string) error {
	s.out = new(syncBuffer)
	s.cmd = exec.Command(bin, args...)
	s.cmd.Stdout, s.cmd.Stderr = s.out, s.out
	if err := s.cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", s.Name, err)
	}
	s.exited = make(chan struct{})
	go func() { s.err = s.cmd.Wait(); close(s.exited) }()
	hc := s.httpClient()
	defer hc.CloseIdleConnections()
	deadline := time.Now().Add(30 * time.Second)
	var last error
	for {
		select {
		case <-s.exited:
			return fmt.Errorf("%s exited before serving (%v); its output:\n%s", s.Name, s.err, s.Output())
		case <-ctx.Done():
			_ = s.Stop()
			return ctx.Err()
		default:
		}
		resp, err := hc.Get(s.URL + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("HTTP %d", resp.StatusCode)
		}
		last = err
		if time.Now().After(deadline) {
			_ = s.Stop()
			return fmt.Errorf("%s at %s not healthy within 30s (%v); its output:\n%s", s.Name, s.URL, last, s.Output())
		}
		time.Sleep(20 * time.Millisecond) // another process: nothing to wait on but its port
	}
}

func (s *Server) httpClient() *http.Client {
	roots := x509.NewCertPool()
	roots.AddCert(s.Root)
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
}

// freeAddr is 127.0.0.1 and a port nothing listens on, drawn below the
// kernel's ephemeral range (which it never hands out on its own).
func freeAddr() (string, error) {
	low, high := 10000, 32768
	if data, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(data)); len(f) == 2 {
			if l, err := strconv.Atoi(f[0]); err == nil && l > low+1000 {
				high = l
			}
		}
	}
	for range 1000 {
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(low+mrand.IntN(high-low)))
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		ln.Close()
		return addr, nil
	}
	return "", errors.New("found no free port on 127.0.0.1 in 1000 tries")
}

// NewCACert makes a P-256 CA certificate valid for 10 years, self-signed
// when parent is nil: step-ca's root and intermediate, for cabench and
// for the interop tests' step-ca.
func NewCACert(cn string, parent *x509.Certificate, parentKey *ecdsa.PrivateKey, maxPathLen int) (*ecdsa.PrivateKey, *x509.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"keyless interop"}},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            maxPathLen,
		MaxPathLenZero:        maxPathLen == 0,
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), parentKey)
	if err != nil {
		return nil, nil, fmt.Errorf("creating %s: %w", cn, err)
	}
	cert, err := x509.ParseCertificate(der)
	return key, cert, err
}

func readCert(file string) (*x509.Certificate, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("%s holds no PEM certificate", file)
	}
	return x509.ParseCertificate(block.Bytes)
}

// syncBuffer is a bytes.Buffer safe for a process's two output streams.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	// Keep the last 1 MiB: a long run logs a line per certificate.
	if b.buf.Len() > 1<<20 {
		rest := b.buf.Bytes()[b.buf.Len()-(512<<10):]
		b.buf = *bytes.NewBuffer(append([]byte(nil), rest...))
	}
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
