package caproto

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	jose "github.com/go-jose/go-jose/v4"
)

// jweIterations is the PBES2 count step-ca's tools use for provisioner
// keys; the password-to-key cost (about 150 ms) is what makes a stolen
// encrypted key expensive to brute-force.
const jweIterations = 600_000

// ProvisionerKey is a JWK provisioner's key pair: the public JWK the CA
// verifies tokens with, and the private JWK encrypted with the
// provisioner password (step's format: compact JWE, PBES2-HS256+A128KW,
// A256GCM, cty jwk+json).
type ProvisionerKey struct {
	Public       jose.JSONWebKey
	EncryptedKey string
}

// NewProvisionerKey makes a P-256 provisioner key and encrypts its private
// half with password.
func NewProvisionerKey(password []byte, rnd io.Reader) (*ProvisionerKey, error) {
	if rnd == nil {
		rnd = rand.Reader
	}
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rnd)
	if err != nil {
		return nil, fmt.Errorf("generating provisioner key: %w", err)
	}
	jwk := jose.JSONWebKey{Key: priv, Algorithm: string(jose.ES256), Use: "sig"}
	kid, err := Thumbprint(&jwk)
	if err != nil {
		return nil, err
	}
	jwk.KeyID = kid
	enc, err := encryptJWK(&jwk, password)
	if err != nil {
		return nil, err
	}
	return &ProvisionerKey{Public: jwk.Public(), EncryptedKey: enc}, nil
}

// Thumbprint is a key's RFC 7638 SHA-256 thumbprint, base64url: step's
// provisioner "kid".
func Thumbprint(jwk *jose.JSONWebKey) (string, error) {
	sum, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("key thumbprint: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(sum), nil
}

func encryptJWK(jwk *jose.JSONWebKey, password []byte) (string, error) {
	if len(password) == 0 {
		return "", errors.New("encrypting provisioner key: empty password")
	}
	plain, err := json.Marshal(jwk)
	if err != nil {
		return "", fmt.Errorf("encoding provisioner key: %w", err)
	}
	enc, err := jose.NewEncrypter(jose.A256GCM,
		jose.Recipient{Algorithm: jose.PBES2_HS256_A128KW, Key: password, PBES2Count: jweIterations},
		(&jose.EncrypterOptions{}).WithContentType("jwk+json"))
	if err != nil {
		return "", fmt.Errorf("encrypting provisioner key: %w", err)
	}
	obj, err := enc.Encrypt(plain)
	if err != nil {
		return "", fmt.Errorf("encrypting provisioner key: %w", err)
	}
	return obj.CompactSerialize()
}

// ErrWrongPassword means a provisioner key did not decrypt.
var ErrWrongPassword = errors.New("the password does not decrypt the provisioner key")

// DecryptProvisionerKey decrypts a provisioner's encrypted key (step's
// JWE) with password and returns the private JWK.
func DecryptProvisionerKey(encrypted string, password []byte) (*jose.JSONWebKey, error) {
	obj, err := jose.ParseEncryptedCompact(encrypted,
		[]jose.KeyAlgorithm{jose.PBES2_HS256_A128KW},
		[]jose.ContentEncryption{jose.A256GCM, jose.A128GCM, jose.A192GCM})
	if err != nil {
		return nil, fmt.Errorf("provisioner key is not a JWE: %w", err)
	}
	plain, err := obj.Decrypt(password)
	if err != nil {
		return nil, ErrWrongPassword
	}
	var jwk jose.JSONWebKey
	if err := json.Unmarshal(plain, &jwk); err != nil {
		return nil, fmt.Errorf("provisioner key: %w", err)
	}
	if jwk.IsPublic() {
		return nil, errors.New("provisioner key: the JWE holds a public key")
	}
	return &jwk, nil
}
