// Package mldsa gives keyless ML-DSA (FIPS 204) keys in the shapes the
// rest of keyless uses: a crypto.Signer private key, a comparable public
// key, PKCS#8 and SubjectPublicKeyInfo encodings (RFC 9881) and the
// signature checks X.509 needs. Go's standard library has no public
// ML-DSA, so the arithmetic is Cloudflare's circl; this package is the
// one place keyless imports it. It is a domain package: pki, sigv4, ca
// and the emulator import it.
//
// Every signature here is "pure" ML-DSA with an empty context string,
// deterministic (FIPS 204's hedged variant is not used), over the
// message bytes themselves: what AWS's credential helper v1.8.0 signs
// for AWS4-X509-MLDSA, and what RFC 9881 asks of certificates and CSRs.
package mldsa

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/subtle"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/cloudflare/circl/sign"
	"github.com/cloudflare/circl/sign/mldsa/mldsa44"
	"github.com/cloudflare/circl/sign/mldsa/mldsa65"
	"github.com/cloudflare/circl/sign/mldsa/mldsa87"
)

// Params is one ML-DSA parameter set. The three values are ML44, ML65 and
// ML87; compare them by pointer.
type Params struct {
	name   string
	oid    asn1.ObjectIdentifier
	scheme sign.Scheme
	// expandedSize is the length of FIPS 204's expanded private key.
	expandedSize int
}

// The parameter sets of FIPS 204, with the OIDs NIST assigned
// (id-ml-dsa-44/65/87, 2.16.840.1.101.3.4.3.17-19), used both as the
// public-key algorithm and as the signature algorithm.
var (
	ML44 = &Params{name: "ML-DSA-44", oid: asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 3, 17}, scheme: mldsa44.Scheme(), expandedSize: mldsa44.PrivateKeySize}
	ML65 = &Params{name: "ML-DSA-65", oid: asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 3, 18}, scheme: mldsa65.Scheme(), expandedSize: mldsa65.PrivateKeySize}
	ML87 = &Params{name: "ML-DSA-87", oid: asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 3, 19}, scheme: mldsa87.Scheme(), expandedSize: mldsa87.PrivateKeySize}
)

// All lists the parameter sets, smallest first.
var All = []*Params{ML44, ML65, ML87}

// SeedSize is the length of the seed every ML-DSA key is derived from.
const SeedSize = 32

// Name is the parameter set's FIPS 204 name, such as "ML-DSA-65".
func (p *Params) Name() string { return p.name }

// OID is the parameter set's object identifier.
func (p *Params) OID() asn1.ObjectIdentifier { return p.oid }

// SignatureSize is the length in bytes of every signature.
func (p *Params) SignatureSize() int { return p.scheme.SignatureSize() }

// PublicKeySize is the length in bytes of the encoded public key.
func (p *Params) PublicKeySize() int { return p.scheme.PublicKeySize() }

// ByName finds a parameter set by its name, case-insensitively, with or
// without the hyphens ("ML-DSA-65", "mldsa65").
func ByName(name string) (*Params, bool) {
	n := strings.ReplaceAll(strings.ToUpper(name), "-", "")
	for _, p := range All {
		if n == strings.ReplaceAll(p.name, "-", "") {
			return p, true
		}
	}
	return nil, false
}

// ByOID finds a parameter set by its OID.
func ByOID(oid asn1.ObjectIdentifier) (*Params, bool) {
	for _, p := range All {
		if p.oid.Equal(oid) {
			return p, true
		}
	}
	return nil, false
}

// PublicKey is an ML-DSA public key.
type PublicKey struct {
	params *Params
	key    sign.PublicKey
	raw    []byte
}

// Params is the key's parameter set.
func (k *PublicKey) Params() *Params { return k.params }

// Bytes is the FIPS 204 encoding of the key (the BIT STRING of its
// SubjectPublicKeyInfo).
func (k *PublicKey) Bytes() []byte { return bytes.Clone(k.raw) }

// Equal reports whether other is the same key of the same parameter set.
func (k *PublicKey) Equal(other crypto.PublicKey) bool {
	o, ok := other.(*PublicKey)
	return ok && o.params == k.params && bytes.Equal(o.raw, k.raw)
}

// NewPublicKey decodes a FIPS 204 public key of parameter set p.
func NewPublicKey(p *Params, raw []byte) (*PublicKey, error) {
	if len(raw) != p.PublicKeySize() {
		return nil, fmt.Errorf("%s public key is %d bytes, want %d", p.name, len(raw), p.PublicKeySize())
	}
	key, err := p.scheme.UnmarshalBinaryPublicKey(raw)
	if err != nil {
		return nil, fmt.Errorf("%s public key: %w", p.name, err)
	}
	return &PublicKey{params: p, key: key, raw: bytes.Clone(raw)}, nil
}

// Verify reports whether sig is k's pure ML-DSA signature of msg with an
// empty context.
func (k *PublicKey) Verify(msg, sig []byte) bool {
	if len(sig) != k.params.SignatureSize() {
		return false
	}
	return k.params.scheme.Verify(k.key, msg, sig, nil)
}

// PrivateKey is an ML-DSA private key, kept with the seed it was derived
// from so that it can be written back in the form AWS's helper reads.
type PrivateKey struct {
	params *Params
	seed   [SeedSize]byte
	key    sign.PrivateKey
	pub    *PublicKey
}

// NewKeyFromSeed derives the key pair of parameter set p from seed.
func NewKeyFromSeed(p *Params, seed []byte) (*PrivateKey, error) {
	if len(seed) != SeedSize {
		return nil, fmt.Errorf("%s seed is %d bytes, want %d", p.name, len(seed), SeedSize)
	}
	pub, priv := p.scheme.DeriveKey(seed)
	raw, err := pub.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("%s public key: %w", p.name, err)
	}
	k := &PrivateKey{params: p, key: priv, pub: &PublicKey{params: p, key: pub, raw: raw}}
	copy(k.seed[:], seed)
	return k, nil
}

// GenerateKey makes a new key of parameter set p from rnd's bytes (nil
// means crypto/rand).
func GenerateKey(p *Params, rnd io.Reader) (*PrivateKey, error) {
	if rnd == nil {
		rnd = rand.Reader
	}
	var seed [SeedSize]byte
	if _, err := io.ReadFull(rnd, seed[:]); err != nil {
		return nil, fmt.Errorf("generating %s key: %w", p.name, err)
	}
	defer clear(seed[:])
	return NewKeyFromSeed(p, seed[:])
}

// Params is the key's parameter set.
func (k *PrivateKey) Params() *Params { return k.params }

// Public returns the key's *PublicKey.
func (k *PrivateKey) Public() crypto.PublicKey { return k.pub }

// PublicKey returns the key's public key.
func (k *PrivateKey) PublicKey() *PublicKey { return k.pub }

// Equal reports whether other is the same private key.
func (k *PrivateKey) Equal(other crypto.PrivateKey) bool {
	o, ok := other.(*PrivateKey)
	return ok && o.params == k.params && subtle.ConstantTimeCompare(o.seed[:], k.seed[:]) == 1
}

// ErrHashed is returned by Sign when asked to sign a digest: ML-DSA
// signs the message itself.
var ErrHashed = errors.New("ML-DSA signs the message itself, not a digest: pass crypto.Hash(0)")

// Sign signs msg (the message, not a digest: opts must be nil or
// crypto.Hash(0)) with pure, deterministic ML-DSA and an empty context;
// rnd is not used. It makes PrivateKey a crypto.Signer.
func (k *PrivateKey) Sign(_ io.Reader, msg []byte, opts crypto.SignerOpts) ([]byte, error) {
	if opts != nil && opts.HashFunc() != 0 {
		return nil, ErrHashed
	}
	return k.params.scheme.Sign(k.key, msg, nil), nil
}

// The private-key CHOICE of RFC 9881: [0] IMPLICIT seed, the expanded key
// alone, or a SEQUENCE of both.
type bothForm struct {
	Seed     []byte
	Expanded []byte
}

type pkcs8 struct {
	Version    int
	Algorithm  pkix.AlgorithmIdentifier
	PrivateKey []byte
}

// ErrExpandedOnly means a PKCS#8 ML-DSA key holds only the expanded key,
// not the seed.
var ErrExpandedOnly = errors.New("the ML-DSA key holds only the expanded private key, not its seed; AWS's helper reads neither it nor keyless: write the key with its seed (OpenSSL 3.5's default \"seed-priv\" format, or `keyless` made keys)")

// IsPKCS8 reports whether der is an unencrypted PKCS#8 key whose
// algorithm is one of the ML-DSA OIDs, and which one.
func IsPKCS8(der []byte) (*Params, bool) {
	var info pkcs8
	if _, err := asn1.Unmarshal(der, &info); err != nil {
		return nil, false
	}
	return ByOID(info.Algorithm.Algorithm)
}

// ParsePKCS8 reads an unencrypted PKCS#8 ML-DSA private key (RFC 9881):
// the seed alone ([0] IMPLICIT OCTET STRING) or the seed with the
// expanded key (the SEQUENCE form AWS's helper v1.8.0 and OpenSSL 3.5
// write), in which case the expanded key must be the one the seed
// derives. A key with parameters in its AlgorithmIdentifier, or only the
// expanded key, is refused.
func ParsePKCS8(der []byte) (*PrivateKey, error) {
	var info pkcs8
	rest, err := asn1.Unmarshal(der, &info)
	if err != nil {
		return nil, fmt.Errorf("parsing PKCS#8: %v", err)
	}
	if len(rest) > 0 {
		return nil, errors.New("parsing PKCS#8: trailing data")
	}
	p, ok := ByOID(info.Algorithm.Algorithm)
	if !ok {
		return nil, fmt.Errorf("PKCS#8 algorithm %s is not ML-DSA", info.Algorithm.Algorithm)
	}
	if len(info.Algorithm.Parameters.FullBytes) > 0 {
		return nil, fmt.Errorf("%s PKCS#8 key has algorithm parameters; RFC 9881 says they are absent", p.name)
	}
	var raw asn1.RawValue
	if rest, err := asn1.Unmarshal(info.PrivateKey, &raw); err != nil || len(rest) > 0 {
		return nil, fmt.Errorf("%s private key is not one DER value", p.name)
	}
	switch {
	case raw.Class == asn1.ClassContextSpecific && raw.Tag == 0 && !raw.IsCompound:
		return NewKeyFromSeed(p, raw.Bytes)
	case raw.Class == asn1.ClassUniversal && raw.Tag == asn1.TagSequence:
		var both bothForm
		if rest, err := asn1.Unmarshal(raw.FullBytes, &both); err != nil || len(rest) > 0 {
			return nil, fmt.Errorf("%s private key: the seed-and-expanded-key SEQUENCE does not parse", p.name)
		}
		k, err := NewKeyFromSeed(p, both.Seed)
		clear(both.Seed)
		if err != nil {
			return nil, err
		}
		want, err := k.key.MarshalBinary()
		if err != nil {
			return nil, err
		}
		if subtle.ConstantTimeCompare(want, both.Expanded) != 1 {
			return nil, fmt.Errorf("%s private key: the expanded key is not the one its seed derives (a corrupt or tampered key file)", p.name)
		}
		return k, nil
	case raw.Class == asn1.ClassUniversal && raw.Tag == asn1.TagOctetString:
		return nil, ErrExpandedOnly
	default:
		return nil, fmt.Errorf("%s private key has an unknown form (tag %d)", p.name, raw.Tag)
	}
}

// MarshalPKCS8 writes k as unencrypted PKCS#8 in RFC 9881's
// seed-and-expanded-key form, the form AWS's helper v1.8.0 reads (it
// refuses the seed-only form) and OpenSSL 3.5 writes by default.
func MarshalPKCS8(k *PrivateKey) ([]byte, error) {
	expanded, err := k.key.MarshalBinary()
	if err != nil {
		return nil, err
	}
	inner, err := asn1.Marshal(bothForm{Seed: k.seed[:], Expanded: expanded})
	if err != nil {
		return nil, err
	}
	return asn1.Marshal(pkcs8{Algorithm: pkix.AlgorithmIdentifier{Algorithm: k.params.oid}, PrivateKey: inner})
}

type spki struct {
	Algorithm pkix.AlgorithmIdentifier
	PublicKey asn1.BitString
}

// ParsePKIXPublicKey reads a DER SubjectPublicKeyInfo of an ML-DSA key:
// one of the three OIDs, absent parameters, and a key of that
// parameter set's length. ok is false when der is well-formed but not
// ML-DSA, so callers can fall back to crypto/x509.
func ParsePKIXPublicKey(der []byte) (key *PublicKey, ok bool, err error) {
	var s spki
	rest, err := asn1.Unmarshal(der, &s)
	if err != nil {
		return nil, false, fmt.Errorf("parsing SubjectPublicKeyInfo: %v", err)
	}
	if len(rest) > 0 {
		return nil, false, errors.New("parsing SubjectPublicKeyInfo: trailing data")
	}
	p, ok := ByOID(s.Algorithm.Algorithm)
	if !ok {
		return nil, false, nil
	}
	if len(s.Algorithm.Parameters.FullBytes) > 0 {
		return nil, true, fmt.Errorf("%s SubjectPublicKeyInfo has algorithm parameters; RFC 9881 says they are absent", p.name)
	}
	if s.PublicKey.BitLength%8 != 0 {
		return nil, true, fmt.Errorf("%s public key is not a whole number of bytes", p.name)
	}
	key, err = NewPublicKey(p, s.PublicKey.Bytes)
	return key, true, err
}

// MarshalPKIXPublicKey writes k as a DER SubjectPublicKeyInfo.
func MarshalPKIXPublicKey(k *PublicKey) ([]byte, error) {
	return asn1.Marshal(spki{Algorithm: pkix.AlgorithmIdentifier{Algorithm: k.params.oid},
		PublicKey: asn1.BitString{Bytes: k.raw, BitLength: 8 * len(k.raw)}})
}
