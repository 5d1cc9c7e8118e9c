package ca

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
	"reflect"
	"time"
	"unicode/utf8"

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
	if pp, isEC := parent.PublicKey.(*ecdsa.PublicKey); !isEC || !ek.PublicKey.Equal(pp) {
		// x509 refuses a key that is not the parent's; without its
		// check of its own signature, nothing else here would.
		return mldsa.CreateCertificate(rnd, tmpl, parent, pub, key)
	}
	tbs, opts, ok := leafTBS(tmpl, parent, pub)
	if !ok {
		var err error
		if tbs, opts, err = captureTBS(tmpl, parent, pub, ek.Public()); err != nil {
			return nil, err
		}
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

// probePublicKey is the public key of checkEncodable's probe CSRs. Nothing
// is ever signed for it, so any 32 bytes serve: these are not derived from
// a private key, which would cost a millisecond of scalar multiplication.
var probePublicKey = ed25519.PublicKey(make([]byte, ed25519.PublicKeySize))

// probeCSR is the DER CSR x509.CreateCertificateRequest makes of tmpl for
// probePublicKey, with a zero signature in place of the real one: what
// x509.ParseCertificateRequest reads (it does not check the signature)
// to find whether the names survive a round trip, without the Ed25519
// signature and verification CreateCertificateRequest would spend.
func probeCSR(tmpl *x509.CertificateRequest) ([]byte, error) {
	c := &tbsCapture{pub: probePublicKey}
	_, err := x509.CreateCertificateRequest(errReader{}, tmpl, c)
	if !errors.Is(err, errCaptured) {
		if err == nil {
			err = errors.New("x509.CreateCertificateRequest did not ask for a signature")
		}
		return nil, err
	}
	return assemble(c.tbs, ed25519AlgorithmIdentifier, make([]byte, ed25519.SignatureSize))
}

// The leaf profile leafTBS encodes itself: x509.CreateCertificate's
// encoding of a certificate costs, with encoding/asn1's reflection, about
// as much CPU as the ECDSA signature (issue 16). It writes the same bytes
// (TestCreateCertificateMatchesX509 and FuzzCreateCertificate compare
// them) for the templates issue makes, and leaves everything else to x509.
var (
	oidSignatureECDSAWithSHA256 = []byte{0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02}
	oidSignatureECDSAWithSHA384 = []byte{0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03}
	oidCommonName               = asn1.ObjectIdentifier{2, 5, 4, 3}
	oidExtKeyUsage              = asn1.ObjectIdentifier{2, 5, 29, 37}
	oidKeyUsage                 = asn1.ObjectIdentifier{2, 5, 29, 15}
	oidBasicConstraints         = asn1.ObjectIdentifier{2, 5, 29, 19}
	oidAuthorityKeyID           = asn1.ObjectIdentifier{2, 5, 29, 35}
	oidSubjectAltName           = asn1.ObjectIdentifier{2, 5, 29, 17}
	oidClientAuth               = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 2}
	oidServerAuth               = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 1}
)

// leafTBS encodes the TBSCertificate of a template in issue's profile
// (a CN-only subject, SANs, digitalSignature, clientAuth and perhaps
// serverAuth, CA:false) under an ECDSA issuer; ok is false for anything
// else, which x509 then encodes.
func leafTBS(tmpl, parent *x509.Certificate, pub crypto.PublicKey) (tbs []byte, opts crypto.SignerOpts, ok bool) {
	var alg []byte
	switch tmpl.SignatureAlgorithm {
	case x509.ECDSAWithSHA256:
		alg, opts = oidSignatureECDSAWithSHA256, crypto.SHA256
	case x509.ECDSAWithSHA384:
		alg, opts = oidSignatureECDSAWithSHA384, crypto.SHA384
	default:
		return nil, nil, false
	}
	pk, isEC := parent.PublicKey.(*ecdsa.PublicKey)
	if !isEC || (alg[len(alg)-1] == 0x02) != (pk.Curve.Params().BitSize <= 256) {
		return nil, nil, false
	}
	if !inLeafProfile(tmpl) || len(parent.RawSubject) == 0 {
		return nil, nil, false
	}
	spki, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, nil, false
	}
	nb, na := tmpl.NotBefore.UTC(), tmpl.NotAfter.UTC()
	for _, t := range []time.Time{nb, na} {
		if y := t.Year(); y < 0 || y > 9999 {
			return nil, nil, false
		}
	}
	cn := tmpl.Subject.CommonName
	cnTag := cbasn1.PrintableString
	for i := 0; i < len(cn); i++ {
		if c := cn[i]; c >= utf8.RuneSelf || !printable(c) {
			cnTag = cbasn1.UTF8String
			break
		}
	}
	if cnTag == cbasn1.UTF8String && !utf8.ValidString(cn) {
		return nil, nil, false
	}
	for _, list := range [][]string{tmpl.DNSNames, tmpl.EmailAddresses} {
		for _, n := range list {
			if !isASCII(n) {
				return nil, nil, false
			}
		}
	}
	uris := make([]string, len(tmpl.URIs))
	for i, u := range tmpl.URIs {
		if uris[i] = u.String(); !isASCII(uris[i]) {
			return nil, nil, false
		}
	}

	var sb cryptobyte.Builder
	sb.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		if cn == "" {
			return
		}
		b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1ObjectIdentifier(oidCommonName)
				b.AddASN1(cnTag, func(b *cryptobyte.Builder) { b.AddBytes([]byte(cn)) })
			})
		})
	})
	subject, err := sb.Bytes()
	if err != nil || bytes.Equal(subject, parent.RawSubject) {
		// x509 leaves the authority key identifier out of a
		// certificate whose subject is its issuer's: its own path.
		return nil, nil, false
	}

	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
			b.AddASN1Int64(2)
		})
		b.AddASN1BigInt(tmpl.SerialNumber)
		b.AddBytes(alg)
		b.AddBytes(parent.RawSubject)
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			addTime(b, nb)
			addTime(b, na)
		})
		b.AddBytes(subject)
		b.AddBytes(spki)
		b.AddASN1(cbasn1.Tag(3).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				// keyUsage digitalSignature: one bit, seven unused.
				addExtension(b, oidKeyUsage, true, func(b *cryptobyte.Builder) {
					b.AddASN1(cbasn1.BIT_STRING, func(b *cryptobyte.Builder) { b.AddBytes([]byte{7, 0x80}) })
				})
				addExtension(b, oidExtKeyUsage, false, func(b *cryptobyte.Builder) {
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
						for _, u := range tmpl.ExtKeyUsage {
							if u == x509.ExtKeyUsageServerAuth {
								b.AddASN1ObjectIdentifier(oidServerAuth)
							} else {
								b.AddASN1ObjectIdentifier(oidClientAuth)
							}
						}
					})
				})
				addExtension(b, oidBasicConstraints, true, func(b *cryptobyte.Builder) {
					b.AddASN1(cbasn1.SEQUENCE, func(*cryptobyte.Builder) {})
				})
				if len(parent.SubjectKeyId) > 0 {
					addExtension(b, oidAuthorityKeyID, false, func(b *cryptobyte.Builder) {
						b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
							b.AddASN1(cbasn1.Tag(0).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes(parent.SubjectKeyId) })
						})
					})
				}
				if len(tmpl.DNSNames)+len(tmpl.EmailAddresses)+len(tmpl.IPAddresses)+len(uris) > 0 {
					addExtension(b, oidSubjectAltName, cn == "", func(b *cryptobyte.Builder) {
						b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
							for _, n := range tmpl.DNSNames {
								b.AddASN1(cbasn1.Tag(2).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes([]byte(n)) })
							}
							for _, n := range tmpl.EmailAddresses {
								b.AddASN1(cbasn1.Tag(1).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes([]byte(n)) })
							}
							for _, ip := range tmpl.IPAddresses {
								if v4 := ip.To4(); v4 != nil {
									ip = v4
								}
								b.AddASN1(cbasn1.Tag(7).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes(ip) })
							}
							for _, u := range uris {
								b.AddASN1(cbasn1.Tag(6).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes([]byte(u)) })
							}
						})
					})
				}
			})
		})
	})
	tbs, err = b.Bytes()
	if err != nil {
		return nil, nil, false
	}
	return tbs, opts, true
}

// inLeafProfile says whether tmpl sets only what leafTBS encodes.
func inLeafProfile(tmpl *x509.Certificate) bool {
	if tmpl.SerialNumber == nil || tmpl.SerialNumber.Sign() < 0 ||
		tmpl.KeyUsage != x509.KeyUsageDigitalSignature || len(tmpl.UnknownExtKeyUsage) > 0 || len(tmpl.ExtKeyUsage) == 0 ||
		!tmpl.BasicConstraintsValid || tmpl.IsCA || tmpl.MaxPathLen != 0 || tmpl.MaxPathLenZero ||
		len(tmpl.RawSubject) > 0 || len(tmpl.SubjectKeyId) > 0 || len(tmpl.AuthorityKeyId) > 0 ||
		len(tmpl.OCSPServer) > 0 || len(tmpl.IssuingCertificateURL) > 0 || len(tmpl.CRLDistributionPoints) > 0 ||
		len(tmpl.PolicyIdentifiers) > 0 || len(tmpl.Policies) > 0 || len(tmpl.ExtraExtensions) > 0 ||
		tmpl.PermittedDNSDomainsCritical || len(tmpl.PermittedDNSDomains) > 0 || len(tmpl.ExcludedDNSDomains) > 0 ||
		len(tmpl.PermittedIPRanges) > 0 || len(tmpl.ExcludedIPRanges) > 0 || len(tmpl.PermittedEmailAddresses) > 0 ||
		len(tmpl.ExcludedEmailAddresses) > 0 || len(tmpl.PermittedURIDomains) > 0 || len(tmpl.ExcludedURIDomains) > 0 {
		return false
	}
	for _, u := range tmpl.ExtKeyUsage {
		if u != x509.ExtKeyUsageClientAuth && u != x509.ExtKeyUsageServerAuth {
			return false
		}
	}
	// A subject of a common name alone.
	return reflect.DeepEqual(tmpl.Subject, pkix.Name{CommonName: tmpl.Subject.CommonName})
}

func addExtension(b *cryptobyte.Builder, id asn1.ObjectIdentifier, critical bool, value cryptobyte.BuilderContinuation) {
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(id)
		if critical {
			b.AddASN1Boolean(true)
		}
		b.AddASN1(cbasn1.OCTET_STRING, value)
	})
}

// addTime writes t as encoding/asn1 does: UTCTime from 1950 to 2049,
// GeneralizedTime otherwise, to the second, in UTC.
func addTime(b *cryptobyte.Builder, t time.Time) {
	if y := t.Year(); y >= 1950 && y < 2050 {
		b.AddASN1(cbasn1.UTCTime, func(b *cryptobyte.Builder) { b.AddBytes([]byte(t.Format("060102150405Z"))) })
		return
	}
	b.AddASN1(cbasn1.GeneralizedTime, func(b *cryptobyte.Builder) { b.AddBytes([]byte(t.Format("20060102150405Z"))) })
}

// printable is encoding/asn1's PrintableString alphabet (without * and &).
func printable(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		'\'' <= c && c <= ')' || '+' <= c && c <= '/' || c == ' ' || c == ':' || c == '=' || c == '?'
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}
