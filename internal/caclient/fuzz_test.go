package caclient

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyless-dev/keyless/internal/pki"
)

// FuzzParseIssued: a CA's answer to sign or renew, whatever it holds,
// parses to certificates or to an error, never a panic or an empty leaf.
func FuzzParseIssued(f *testing.F) {
	f.Add([]byte(`{"crt":"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n","ca":"","certChain":[]}`))
	f.Add([]byte(`{"certChain":["", "x"]}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		certs, err := parseIssued(data)
		if err == nil && (certs == nil || certs.Leaf == nil) {
			t.Fatal("parsed without a leaf")
		}
	})
}

// bootstrapRoot is the root FuzzBootstrap's CA serves, the same in every
// run so that the committed seeds hold it: an Ed25519 key from a fixed
// seed signs deterministically, so its DER never changes. It is a test
// fixture, not a secret.
func bootstrapRoot(f testing.TB) (*x509.Certificate, ed25519.PrivateKey) {
	seed := sha256.Sum256([]byte("keyless caclient FuzzBootstrap root"))
	key := ed25519.NewKeyFromSeed(seed[:])
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "keyless fuzz root"},
		NotBefore: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), NotAfter: time.Date(2126, 1, 1, 0, 0, 0, 0, time.UTC),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		f.Fatal(err)
	}
	root, err := x509.ParseCertificate(der)
	if err != nil {
		f.Fatal(err)
	}
	return root, key
}

// bootstrapRootFingerprint is bootstrapRoot's, which the committed seeds
// of FuzzBootstrap name.
const bootstrapRootFingerprint = "91357ebcc7592f3dc7a57040efc2a2efa10e55a41538d22f1a96009f1ee6e7af"

// TestBootstrapRootIsStable: if the fixed root ever changed (a new Go
// encoding it differently), the committed valid seeds of FuzzBootstrap
// would quietly become wrong-fingerprint ones.
func TestBootstrapRootIsStable(t *testing.T) {
	if root, _ := bootstrapRoot(t); pki.Fingerprint(root) != bootstrapRootFingerprint {
		t.Fatalf("the fuzz root's fingerprint is %s; regenerate testdata/fuzz/FuzzBootstrap for it", pki.Fingerprint(root))
	}
}

// FuzzBootstrap serves arbitrary answers (status and body) to the root
// request a client makes before it trusts the CA, from a CA whose TLS
// certificate chains to bootstrapRoot, and checks Bootstrap against what
// the answer holds:
//   - a fingerprint that is not 64 hex digits is refused before anything
//     is asked, and the path asked for is the normalised fingerprint;
//   - an error status is an *APIError with that status (404:
//     ErrFingerprint);
//   - an answer whose first certificate does not hash to the fingerprint
//     is ErrFingerprint; an answer that does not parse is an error that is
//     neither;
//   - what Bootstrap accepts is the answer's first certificate, hashes to
//     the fingerprint, and is the root the TLS certificate chains to:
//     nothing else is ever trusted.
func FuzzBootstrap(f *testing.F) {
	root, rootKey := bootstrapRoot(f)
	fp := pki.Fingerprint(root)
	answer := func(certs ...*x509.Certificate) []byte {
		b, _ := json.Marshal(map[string]string{"ca": string(pki.EncodeCertificates(certs...))})
		return b
	}
	f.Add(uint16(0), answer(root), fp)
	f.Add(uint16(0), answer(root), strings.ToUpper(fp[:32])+":"+fp[32:])
	f.Add(uint16(204), []byte(`{"status":404,"message":"no root"}`), fp)
	f.Add(uint16(0), []byte(`{"ca":""}`), strings.Repeat("0", 64))

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, root, key.Public(), rootKey)
	if err != nil {
		f.Fatal(err)
	}
	var (
		mu     sync.Mutex
		status int
		body   []byte
		asked  []string
	)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		asked = append(asked, r.URL.Path)
		w.WriteHeader(status)
		w.Write(body)
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der, root.Raw}, PrivateKey: key}}}
	// Bootstrap makes a transport per call: with keep-alives, every input
	// would leave a connection open.
	srv.Config.SetKeepAlivesEnabled(false)
	srv.StartTLS()
	f.Cleanup(srv.Close)

	f.Fuzz(func(t *testing.T, code uint16, answer []byte, fingerprint string) {
		mu.Lock()
		// 200 to 599: what a server may answer with a body.
		status, body, asked = 200+int(code)%400, answer, nil
		mu.Unlock()
		got, err := Bootstrap(context.Background(), srv.URL, fingerprint, 10*time.Second)

		want := strings.ToLower(strings.NewReplacer(":", "", "-", "", " ", "").Replace(fingerprint))
		if b, herr := hex.DecodeString(want); herr != nil || len(b) != sha256.Size {
			if err == nil || len(asked) != 0 {
				t.Fatalf("fingerprint %q: asked %v, err %v", fingerprint, asked, err)
			}
			return
		}
		if len(asked) != 1 || asked[0] != "/root/"+want {
			t.Fatalf("asked for %v, want /root/%s", asked, want)
		}
		var apiErr *APIError
		isAPI := errors.As(err, &apiErr)
		if status >= 300 {
			switch {
			case status == http.StatusNotFound && !errors.Is(err, ErrFingerprint):
				t.Fatalf("404: %v, want ErrFingerprint", err)
			case status != http.StatusNotFound && (!isAPI || apiErr.Status != status):
				t.Fatalf("status %d: %v, want an *APIError with it", status, err)
			}
			return
		}
		received := answer
		if status == http.StatusNoContent {
			received = nil // the server sends no body with a 204
		}
		var out struct {
			CA string `json:"ca"`
		}
		var certs []*x509.Certificate
		perr := json.Unmarshal(received, &out)
		if perr == nil {
			certs, perr = pki.ParseCertificates([]byte(out.CA))
		}
		switch {
		case perr != nil:
			if err == nil || errors.Is(err, ErrFingerprint) || isAPI {
				t.Fatalf("an answer that does not parse (%v): %v", perr, err)
			}
		case pki.Fingerprint(certs[0]) != want:
			if !errors.Is(err, ErrFingerprint) {
				t.Fatalf("the first certificate is not the fingerprint's: %v, want ErrFingerprint", err)
			}
		case !certs[0].Equal(root):
			// Hashes to the fingerprint, but the CA's TLS certificate
			// does not chain to it.
			if err == nil || errors.Is(err, ErrFingerprint) {
				t.Fatalf("a root the CA's TLS certificate does not chain to: %v", err)
			}
		case err != nil:
			t.Fatalf("refused the CA's own root: %v", err)
		}
		if err == nil && (!got.Equal(root) || pki.Fingerprint(got) != want) {
			t.Fatalf("trusted %s, which is not the fingerprint's root", got.Subject)
		}
	})
}
