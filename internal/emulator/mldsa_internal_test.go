package emulator

import (
	"bytes"
	"crypto/x509"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/keyless-dev/keyless/internal/pki/pkitest"
)

// TestVerifyMLDSAChain: chains that crypto/x509 cannot verify because a
// CA signs with ML-DSA verify here, and each broken link is refused.
func TestVerifyMLDSAChain(t *testing.T) {
	root := pkitest.NewRootWithKey(t, "ml-root", pkitest.Key(t, pkitest.MLDSA87))
	inter := root.Intermediate(t, "ml-int") // P-256 key, ML-DSA-87 signature
	leafKey := pkitest.Key(t, pkitest.MLDSA65)
	leaf := inter.Leaf(t, pkitest.LeafOptions{Key: leafKey})
	direct := root.Leaf(t, pkitest.LeafOptions{Key: leafKey})
	now := time.Now()
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool(root.Cert), Intermediates: pool(inter.Cert), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err == nil {
		t.Fatal("crypto/x509 verified an ML-DSA-signed chain; this code may be unneeded")
	}
	roots := []*x509.Certificate{root.Cert}

	chain, err := verifyMLDSAChain(roots, []*x509.Certificate{inter.Cert}, leaf, now, nil)
	if err != nil || len(chain) != 3 || !chain[2].Equal(root.Cert) {
		t.Fatalf("leaf, ECDSA intermediate, ML-DSA root: %d certificates, %v", len(chain), err)
	}
	if chain, err := verifyMLDSAChain(roots, nil, direct, now, nil); err != nil || len(chain) != 2 {
		t.Fatalf("leaf signed by the ML-DSA root: %v", err)
	}
	if !signedWithMLDSA([]*x509.Certificate{leaf}, []*x509.Certificate{inter.Cert}) || signedWithMLDSA([]*x509.Certificate{leaf}) {
		t.Error("signedWithMLDSA is wrong")
	}

	// A root with the same name but another key.
	impostor := pkitest.NewRootWithKey(t, "ml-root", pkitest.Key(t, pkitest.MLDSA87+"#impostor"))
	forged := impostor.Leaf(t, pkitest.LeafOptions{Key: leafKey})
	if _, err := verifyMLDSAChain(roots, nil, forged, now, nil); err == nil || !strings.Contains(err.Error(), "signature") {
		t.Errorf("leaf of an impostor root: %v", err)
	}
	// One flipped byte in the intermediate's ML-DSA signature.
	raw := bytes.Clone(inter.Cert.Raw)
	raw[len(raw)-10] ^= 1
	bad, err := x509.ParseCertificate(raw)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := verifyMLDSAChain(roots, []*x509.Certificate{bad}, leaf, now, nil); err == nil {
		t.Error("an intermediate with a flipped signature byte verified")
	}
	// An expired intermediate, an intermediate that is not a CA.
	if _, err := verifyMLDSAChain(roots, []*x509.Certificate{inter.Cert}, leaf, inter.Cert.NotAfter.Add(time.Hour), nil); err == nil || !strings.Contains(err.Error(), "not valid") {
		t.Errorf("expired intermediate: %v", err)
	}
	notCA := &pkitest.CA{Cert: root.Leaf(t, pkitest.LeafOptions{CommonName: "ml-int", Key: pkitest.Key(t, pkitest.P256+"#notca")}), Key: pkitest.Key(t, pkitest.P256+"#notca")}
	if _, err := verifyMLDSAChain(roots, []*x509.Certificate{notCA.Cert}, notCA.Leaf(t, pkitest.LeafOptions{Key: leafKey}), now, nil); err == nil || !strings.Contains(err.Error(), "not a CA") {
		t.Errorf("issuer that is not a CA: %v", err)
	}
	// No issuer at all.
	if _, err := verifyMLDSAChain(roots, nil, leaf, now, nil); err == nil {
		t.Error("a leaf whose intermediate is missing verified")
	}
}

// TestCRLSignatureMLDSA: a CRL signed by an ML-DSA CA is checked with its
// key; a tampered one, or one of another key, is not accepted.
func TestCRLSignatureMLDSA(t *testing.T) {
	root := pkitest.NewRootWithKey(t, "ml-crl-root", pkitest.Key(t, pkitest.MLDSA44))
	der := root.CRL(t, big.NewInt(42))
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		t.Fatal(err)
	}
	if err := checkCRLSignature(crl, root.Cert); err != nil {
		t.Fatalf("CRL of the ML-DSA root: %v", err)
	}
	other := pkitest.NewRootWithKey(t, "ml-crl-root", pkitest.Key(t, pkitest.MLDSA44+"#other"))
	if err := checkCRLSignature(crl, other.Cert); err == nil {
		t.Error("the CRL verified with another key")
	}
	raw := bytes.Clone(der)
	raw[len(raw)-3] ^= 1
	tampered, err := x509.ParseRevocationList(raw)
	if err != nil {
		t.Fatal(err)
	}
	if err := checkCRLSignature(tampered, root.Cert); err == nil {
		t.Error("a CRL with a flipped signature byte verified")
	}
}

func pool(certs ...*x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range certs {
		p.AddCert(c)
	}
	return p
}
