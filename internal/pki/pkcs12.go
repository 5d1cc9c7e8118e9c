package pki

import (
	"crypto"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"

	"software.sslmate.com/src/go-pkcs12"
)

// Identity is a private key, its certificate, and the intermediate
// certificates that lead from it towards a trust anchor.
type Identity struct {
	Key           crypto.Signer
	Certificate   *x509.Certificate
	Intermediates []*x509.Certificate
}

type pfxHeader struct {
	Version  int
	AuthSafe asn1.RawValue
	MacData  asn1.RawValue `asn1:"optional"`
}

// IsPKCS12 reports whether data looks like a DER PKCS#12 (PFX) file.
func IsPKCS12(data []byte) bool {
	var pfx pfxHeader
	rest, err := asn1.Unmarshal(data, &pfx)
	return err == nil && len(rest) == 0 && pfx.Version == 3
}

func hasMAC(data []byte) bool {
	var pfx pfxHeader
	_, err := asn1.Unmarshal(data, &pfx)
	return err == nil && len(pfx.MacData.FullBytes) > 0
}

// ParsePKCS12 reads a PKCS#12 file holding one private key and its
// certificate, plus any intermediates. It reads OpenSSL 3's default (PBES2,
// PBKDF2-HMAC-SHA256, AES-256-CBC, SHA-256 MAC), the legacy 3DES/RC2 files
// of OpenSSL 1.x and Windows, and files without a password. The empty
// password is tried first, so password is called only for files that need
// one. The leaf is the certificate that matches the key wherever it sits in
// the file; the other certificates become Intermediates in file order.
func ParsePKCS12(data []byte, password PasswordFunc) (*Identity, error) {
	key, leaf, cas, err := pkcs12.DecodeChain(data, "")
	if err != nil && !hasMAC(data) {
		// Without a MAC the decoder reads only files that are not
		// encrypted at all; an encrypted one fails to decrypt here.
		return nil, fmt.Errorf("%w: the PKCS#12 file is encrypted but has no MAC (openssl pkcs12 -nomac), which cannot be read; export it again with a MAC: %v", ErrUnsupportedEncryption, err)
	}
	if errors.Is(err, pkcs12.ErrIncorrectPassword) {
		pw, perr := askPassword(password)
		if perr != nil {
			return nil, perr
		}
		key, leaf, cas, err = pkcs12.DecodeChain(data, string(pw))
		if errors.Is(err, pkcs12.ErrIncorrectPassword) || errors.Is(err, pkcs12.ErrDecryption) {
			return nil, ErrIncorrectPassword
		}
	}
	if err != nil {
		return nil, fmt.Errorf("reading PKCS#12: %w", err)
	}
	signer, err := checkedSigner(key)
	if err != nil {
		return nil, err
	}
	all := append([]*x509.Certificate{leaf}, cas...)
	id := &Identity{Key: signer}
	for _, c := range all {
		if id.Certificate == nil && KeyMatchesCertificate(signer, c) {
			id.Certificate = c
			continue
		}
		id.Intermediates = append(id.Intermediates, c)
	}
	if id.Certificate == nil {
		return nil, errors.New("reading PKCS#12: no certificate in the file matches its private key")
	}
	return id, nil
}
