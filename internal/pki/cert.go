// Package pki parses and checks the X.509 certificates and private keys that
// keyless signs with: PEM and DER certificates and chains; PKCS#1, SEC1,
// PKCS#8 and encrypted PKCS#8 private keys; PKCS#12 files. It also holds the
// rules that IAM Roles Anywhere applies to keys and leaf certificates, so
// every part of keyless refuses the same things for the same reasons.
//
// It is pure: it works on bytes a caller hands in, does no file or network
// I/O and keeps no global state. Any keyless package may import it. Errors
// never contain key material.
package pki

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"

	"github.com/keyless-dev/keyless/internal/mldsa"
)

// ErrNotCertificate means the data holds no certificate at all (for
// example a private key given where a certificate was expected).
var ErrNotCertificate = errors.New("not a certificate")

// ParseCertificates returns every certificate in data, in order. data is
// either PEM holding only CERTIFICATE blocks (text around the blocks is
// ignored, as openssl writes it) or a single DER certificate. A PEM block of
// another type is an error that names the type, because a private key or CSR
// in a chain file is a mistake the user wants to hear about.
func ParseCertificates(data []byte) ([]*x509.Certificate, error) {
	blocks, err := pemBlocks(data)
	if err != nil {
		return nil, err
	}
	if len(blocks) == 0 {
		if looksLikeDER(data) {
			cert, err := x509.ParseCertificate(data)
			if err != nil {
				return nil, fmt.Errorf("%w: DER data does not parse as a certificate: %v", ErrNotCertificate, err)
			}
			return []*x509.Certificate{cert}, nil
		}
		return nil, fmt.Errorf("%w: no PEM CERTIFICATE block and not DER", ErrNotCertificate)
	}
	var certs []*x509.Certificate
	for i, b := range blocks {
		if b.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("%w: PEM block %d is %q, want \"CERTIFICATE\"%s", ErrNotCertificate, i+1, b.Type, swappedHint(b.Type))
		}
		cert, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("PEM block %d: parsing certificate: %w", i+1, err)
		}
		certs = append(certs, cert)
	}
	return certs, nil
}

// EncodeCertificates returns the PEM encoding of certs, in order.
func EncodeCertificates(certs ...*x509.Certificate) []byte {
	var buf bytes.Buffer
	for _, c := range certs {
		_ = pem.Encode(&buf, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	return buf.Bytes()
}

// Fingerprint returns the lowercase hex SHA-256 of the certificate's DER, the
// form `step certificate fingerprint` prints.
func Fingerprint(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	return hex.EncodeToString(sum[:])
}

// pemBlocks decodes every PEM block in data. It returns no blocks and no
// error when data has no PEM at all, and an error when PEM starts but does
// not decode (a truncated or corrupted file).
func pemBlocks(data []byte) ([]*pem.Block, error) {
	var blocks []*pem.Block
	rest := data
	for {
		block, r := pem.Decode(rest)
		if block == nil {
			if bytes.Contains(rest, []byte("-----BEGIN ")) {
				return nil, errors.New("PEM data is truncated or corrupted (a BEGIN line has no matching END line or invalid base64)")
			}
			return blocks, nil
		}
		blocks = append(blocks, block)
		rest = r
	}
}

// looksLikeDER reports whether data starts like a DER SEQUENCE.
func looksLikeDER(data []byte) bool {
	return len(data) > 2 && data[0] == 0x30
}

func swappedHint(blockType string) string {
	if strings.Contains(blockType, "PRIVATE KEY") {
		return " (this is a private key: were the certificate and key files swapped?)"
	}
	if strings.Contains(blockType, "CERTIFICATE REQUEST") {
		return " (this is a certificate signing request, not a certificate)"
	}
	return ""
}

// CertificateData is what AWS's helper prints for read-certificate-data,
// fields in its order: the key type (RSA or EC), the base64 DER sent in
// X-Amz-X509, the decimal serial of the Authorization header's
// Credential, and the algorithms the key signs with.
type CertificateData struct {
	KeyType         string   `json:"keyType"`
	CertificateData string   `json:"certificateData"`
	SerialNumber    string   `json:"serialNumber"`
	Algorithms      []string `json:"supportedAlgorithms"`
}

// HelperCertificateData describes cert as AWS's helper does.
func HelperCertificateData(cert *x509.Certificate) CertificateData {
	keyType := ""
	switch cert.PublicKeyAlgorithm {
	case x509.RSA:
		keyType = "RSA"
	case x509.ECDSA:
		keyType = "EC"
	default:
		// AWS's helper v1.8.0 names an ML-DSA key by its parameter set
		// and lists that one name as its only algorithm.
		if k, ok, err := mldsa.ParsePKIXPublicKey(cert.RawSubjectPublicKeyInfo); ok && err == nil {
			name := k.Params().Name()
			return CertificateData{KeyType: name, CertificateData: base64.StdEncoding.EncodeToString(cert.Raw),
				SerialNumber: cert.SerialNumber.String(), Algorithms: []string{name}}
		}
	}
	return CertificateData{
		KeyType:         keyType,
		CertificateData: base64.StdEncoding.EncodeToString(cert.Raw),
		SerialNumber:    cert.SerialNumber.String(),
		Algorithms:      []string{keyType + "SHA256", keyType + "SHA384", keyType + "SHA512"},
	}
}
