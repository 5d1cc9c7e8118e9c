package caclient_test

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/keyless-dev/keyless/internal/caclient"
	"github.com/keyless-dev/keyless/internal/pki"
	"github.com/keyless-dev/keyless/internal/pki/pkitest"
)

// serverCert makes a TLS server certificate for 127.0.0.1 from ca.
func serverCert(t *testing.T, ca *pkitest.CA) tls.Certificate {
	key := pkitest.Key(t, "p256#server")
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "ca"},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der, ca.Cert.Raw}, PrivateKey: key}
}

// fakeCA serves /root/{fp} with root and /1.0/sign with leaf and chain,
// over TLS with the given server certificate: a CA, or someone in the way.
func fakeCA(t *testing.T, tlsCert tls.Certificate, root *x509.Certificate, chain ...*x509.Certificate) *httptest.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("/root/", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]string{"ca": string(pki.EncodeCertificates(root))})
	})
	mux.HandleFunc("/1.0/sign", func(w http.ResponseWriter, r *http.Request) {
		var pems []string
		for _, c := range chain {
			pems = append(pems, string(pki.EncodeCertificates(c)))
		}
		w.WriteHeader(http.StatusCreated)
		json.NewEncoder(w).Encode(map[string]any{"crt": pems[0], "certChain": pems})
	})
	srv := httptest.NewUnstartedServer(mux)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{tlsCert}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

func TestBootstrap(t *testing.T) {
	root := pkitest.NewRoot(t, "bootstrap-root")
	inter := root.Intermediate(t, "bootstrap-int")
	srv := fakeCA(t, serverCert(t, inter), root.Cert)
	fp := pki.Fingerprint(root.Cert)

	got, err := caclient.Bootstrap(context.Background(), srv.URL, strings.ToUpper(fp[:10])+":"+fp[10:], 0)
	if err != nil || !got.Equal(root.Cert) {
		t.Fatalf("Bootstrap: %v", err)
	}
	other := pki.Fingerprint(pkitest.NewRoot(t, "other-root").Cert)
	if _, err := caclient.Bootstrap(context.Background(), srv.URL, other, 0); !errors.Is(err, caclient.ErrFingerprint) {
		t.Errorf("another root's fingerprint: got %v, want ErrFingerprint", err)
	}

	// Someone in the way serves the real root (it is public) behind their
	// own TLS certificate: the fingerprint matches, the connection does not.
	mitm := pkitest.NewRootWithKey(t, "mitm-root", pkitest.Key(t, "p256#mitm"))
	evil := fakeCA(t, serverCert(t, mitm), root.Cert)
	if _, err := caclient.Bootstrap(context.Background(), evil.URL, fp, 0); err == nil || !strings.Contains(err.Error(), "does not verify with the root it served") {
		t.Errorf("impostor's TLS certificate: got %v", err)
	}
}

func TestSignRefusesWhatItDidNotAskFor(t *testing.T) {
	root := pkitest.NewRoot(t, "sign-root")
	inter := root.Intermediate(t, "sign-int")
	ours := pkitest.Key(t, "p256#ours")
	for name, tt := range map[string]struct {
		leaf *x509.Certificate
		pub  crypto.PublicKey
		want string
	}{
		"certificate for another key": {inter.Leaf(t, pkitest.LeafOptions{Key: pkitest.Key(t, "p256#theirs")}), ours.Public(), "not for our key"},
		"certificate from another CA": {pkitest.NewRoot(t, "elsewhere").Leaf(t, pkitest.LeafOptions{Key: ours}), ours.Public(), "does not verify with its root"},
	} {
		t.Run(name, func(t *testing.T) {
			srv := fakeCA(t, serverCert(t, inter), root.Cert, tt.leaf, inter.Cert)
			c, err := caclient.New(srv.URL, root.Cert, caclient.Options{})
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.Sign(context.Background(), caclient.SignRequest{CSR: []byte("csr"), Token: "t", PublicKey: tt.pub})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error with %q", err, tt.want)
			}
		})
	}
	// The matching answer is accepted.
	srv := fakeCA(t, serverCert(t, inter), root.Cert, inter.Leaf(t, pkitest.LeafOptions{Key: ours}), inter.Cert)
	c, _ := caclient.New(srv.URL, root.Cert, caclient.Options{})
	if _, err := c.Sign(context.Background(), caclient.SignRequest{CSR: []byte("csr"), Token: "t", PublicKey: ours.Public()}); err != nil {
		t.Errorf("a good answer was refused: %v", err)
	}
}
