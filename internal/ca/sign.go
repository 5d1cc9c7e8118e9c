package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/x509"
	"errors"
	"fmt"
	"io"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/keyless-dev/keyless/internal/mldsa"
)

// Signing a leaf costs one ECDSA signature. x509.CreateCertificate then
// verifies that signature against the issuer's public key, to catch a
// crypto.Signer that misbehaves (a faulty HSM, or an RSA-CRT fault that
// would leak the key): one ECDSA verification more, about as dear as the
// token's or the CSR's, measured at a fifth of the CA's CPU per
// certificate (issue 16). The CA's intermediate key is an in-memory
// *ecdsa.PrivateKey whose signatures come from Go's own ECDSA, so
// createCertificate has Go encode the certificate exactly as
// x509.CreateCertificate does (it is x509.CreateCertificate, stopped at
// the signature), signs that encoding once, and assembles the certificate
// around it. Any other key (RSA, ML-DSA) and any ML-DSA subject key take
// the full path with its check.

// errCaptured stops x509.CreateCertificate and CreateCertificateRequest
// once they hand over what they would sign.
var errCaptured = errors.New("ca: to-be-signed encoding captured")

// tbsCapture is a crypto.Signer that records the message x509 asks it to
// sign (the DER TBSCertificate or CertificationRequestInfo, whole, since
// it is a crypto.MessageSigner) and refuses to sign it.
type tbsCapture struct {
	pub  crypto.PublicKey
	tbs  []byte
	opts crypto.SignerOpts
}

func (c *tbsCapture) Public() crypto.PublicKey { return c.pub }

func (c *tbsCapture) Sign(io.Reader, []byte, crypto.SignerOpts) ([]byte, error) {
	return nil, errors.New("ca: x509 asked for a signature of a digest, not of the message")
}

func (c *tbsCapture) SignMessage(_ io.Reader, msg []byte, opts crypto.SignerOpts) ([]byte, error) {
	c.tbs, c.opts = append([]byte(nil), msg...), opts
	return nil, errCaptured
}

// captureTBS is the TBSCertificate x509.CreateCertificate makes for these
// arguments and an issuer key whose public half is issuerPub, and the
// options to sign it with.
func captureTBS(tmpl, parent *x509.Certificate, pub crypto.PublicKey, issuerPub crypto.PublicKey) ([]byte, crypto.SignerOpts, error) {
	c := &tbsCapture{pub: issuerPub}
	// The random source is only read for a missing serial, which the
	// CA always sets; errReader makes any other read an error.
	_, err := x509.CreateCertificate(errReader{}, tmpl, parent, pub, c)
	if !errors.Is(err, errCaptured) {
		if err == nil {
			err = errors.New("x509.CreateCertificate did not ask for a signature")
		}
		return nil, nil, err
	}
	return c.tbs, c.opts, nil
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) {
	return 0, errors.New("ca: unexpected read of randomness while encoding")
}

// createCertificate is mldsa.CreateCertificate (x509.CreateCertificate
// that also takes ML-DSA keys) whose result, for an ECDSA issuer key and a
// classical subject key, is signed once and not verified again (see
// above).
func createCertificate(rnd io.Reader, tmpl, parent *x509.Certificate, pub crypto.PublicKey, key crypto.Signer) ([]byte, error) {
	ek, ok := key.(*ecdsa.PrivateKey)
	if _, ml := pub.(*mldsa.PublicKey); !ok || ml || tmpl.SerialNumber == nil {
		return mldsa.CreateCertificate(rnd, tmpl, parent, pub, key)
	}
	tbs, opts, err := captureTBS(tmpl, parent, pub, ek.Public())
	if err != nil {
		return nil, err
	}
	sig, err := crypto.SignMessage(ek, rnd, tbs, opts)
	if err != nil {
		return nil, err
	}
	return assembleCertificate(tbs, sig)
}

// assembleCertificate is the DER Certificate of a TBSCertificate and its
// signature, encoded as x509.CreateCertificate encodes it: SEQUENCE {
// tbsCertificate, signatureAlgorithm (the TBS's own signature field),
// BIT STRING signature }.
func assembleCertificate(tbs, sig []byte) ([]byte, error) {
	in := cryptobyte.String(tbs)
	var body cryptobyte.String
	var alg cryptobyte.String
	if !in.ReadASN1(&body, cbasn1.SEQUENCE) || !in.Empty() ||
		!body.SkipOptionalASN1(cbasn1.Tag(0).Constructed().ContextSpecific()) ||
		!body.SkipASN1(cbasn1.INTEGER) ||
		!body.ReadASN1Element(&alg, cbasn1.SEQUENCE) {
		return nil, errors.New("ca: malformed TBSCertificate")
	}
	return assemble(tbs, alg, sig)
}

func assemble(tbs, alg, sig []byte) ([]byte, error) {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddBytes(tbs)
		b.AddBytes(alg)
		b.AddASN1BitString(sig)
	})
	der, err := b.Bytes()
	if err != nil {
		return nil, fmt.Errorf("ca: encoding the certificate: %w", err)
	}
	return der, nil
}

// ed25519AlgorithmIdentifier is the DER AlgorithmIdentifier of Ed25519
// (RFC 8410): SEQUENCE { OID 1.3.101.112 }.
var ed25519AlgorithmIdentifier = []byte{0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70}

// probeCSR is the DER CSR x509.CreateCertificateRequest makes of tmpl for
// nameProbeKey, with a zero signature in place of the real one: what
// x509.ParseCertificateRequest reads (it does not check the signature)
// to find whether the names survive a round trip, without the Ed25519
// signature and verification CreateCertificateRequest would spend.
func probeCSR(tmpl *x509.CertificateRequest) ([]byte, error) {
	c := &tbsCapture{pub: nameProbeKey.Public()}
	_, err := x509.CreateCertificateRequest(errReader{}, tmpl, c)
	if !errors.Is(err, errCaptured) {
		if err == nil {
			err = errors.New("x509.CreateCertificateRequest did not ask for a signature")
		}
		return nil, err
	}
	return assemble(c.tbs, ed25519AlgorithmIdentifier, make([]byte, ed25519.SignatureSize))
}
