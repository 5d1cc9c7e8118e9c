package pki

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/des"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"hash"

	"golang.org/x/crypto/scrypt"

	"github.com/keyless-dev/keyless/internal/mldsa"
)

// The PBKDF2 pseudo-random functions of RFC 8018 (HMAC-SHA1 when absent).
var (
	oidHMACSHA1   = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 7}
	oidHMACSHA256 = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 9}
	oidHMACSHA384 = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 10}
	oidHMACSHA512 = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 11}
)

// decryptMLDSA decrypts an ENCRYPTED PRIVATE KEY (PBES2, which
// checkEncryption has already bounded) whose plaintext the PKCS#8 library
// could not parse, and reads it if it is an ML-DSA key: AWS's helper
// v1.8.0 reads encrypted ML-DSA keys, and the library knows only the
// algorithms crypto/x509 knows. It returns ErrIncorrectPassword when the
// plaintext is not a valid PKCS#8 ML-DSA key, which is what a wrong
// password gives.
func decryptMLDSA(der, pw []byte) (*mldsa.PrivateKey, error) {
	var info encryptedPrivateKeyInfo
	if _, err := asn1.Unmarshal(der, &info); err != nil {
		return nil, ErrIncorrectPassword
	}
	var params pbes2Params
	if _, err := asn1.Unmarshal(info.Algorithm.Parameters.FullBytes, &params); err != nil {
		return nil, ErrIncorrectPassword
	}
	var newBlock func([]byte) (cipher.Block, error)
	keyLen := 0
	switch enc := params.EncryptionScheme.Algorithm; {
	case enc.Equal(oidAES128CBC):
		newBlock, keyLen = aes.NewCipher, 16
	case enc.Equal(oidAES192CBC):
		newBlock, keyLen = aes.NewCipher, 24
	case enc.Equal(oidAES256CBC):
		newBlock, keyLen = aes.NewCipher, 32
	case enc.Equal(oidDESEDE3CBC):
		newBlock, keyLen = des.NewTripleDESCipher, 24
	default:
		return nil, ErrUnsupportedEncryption
	}
	var iv []byte
	if _, err := asn1.Unmarshal(params.EncryptionScheme.Parameters.FullBytes, &iv); err != nil {
		return nil, ErrUnsupportedEncryption
	}
	var key []byte
	var err error
	kdf := params.KeyDerivationFunc
	switch {
	case kdf.Algorithm.Equal(oidPBKDF2):
		var p pbkdf2Params
		if _, err := asn1.Unmarshal(kdf.Parameters.FullBytes, &p); err != nil {
			return nil, ErrUnsupportedEncryption
		}
		var h func() hash.Hash
		switch prf := p.PRF.Algorithm; {
		case len(prf) == 0, prf.Equal(oidHMACSHA1):
			h = sha1.New
		case prf.Equal(oidHMACSHA256):
			h = sha256.New
		case prf.Equal(oidHMACSHA384):
			h = sha512.New384
		case prf.Equal(oidHMACSHA512):
			h = sha512.New
		default:
			return nil, ErrUnsupportedEncryption
		}
		key, err = pbkdf2.Key(h, string(pw), p.Salt, p.IterationCount, keyLen)
	case kdf.Algorithm.Equal(oidScrypt):
		var p scryptParams
		if _, err := asn1.Unmarshal(kdf.Parameters.FullBytes, &p); err != nil {
			return nil, ErrUnsupportedEncryption
		}
		key, err = scrypt.Key(pw, p.Salt, p.CostParameter, p.BlockSize, p.ParallelizationParameter, keyLen)
	default:
		return nil, ErrUnsupportedEncryption
	}
	if err != nil {
		return nil, ErrUnsupportedEncryption
	}
	block, err := newBlock(key)
	if err != nil || len(iv) != block.BlockSize() || len(info.Data)%block.BlockSize() != 0 || len(info.Data) == 0 {
		return nil, ErrUnsupportedEncryption
	}
	plain := make([]byte, len(info.Data))
	defer clear(plain)
	cipher.NewCBCDecrypter(block, iv).CryptBlocks(plain, info.Data)
	// PKCS#7 padding, checked without branching on its bytes.
	n := int(plain[len(plain)-1])
	if n == 0 || n > block.BlockSize() {
		return nil, ErrIncorrectPassword
	}
	pad := make([]byte, n)
	for i := range pad {
		pad[i] = byte(n)
	}
	if subtle.ConstantTimeCompare(plain[len(plain)-n:], pad) != 1 {
		return nil, ErrIncorrectPassword
	}
	plain = plain[:len(plain)-n]
	if _, ok := mldsa.IsPKCS8(plain); !ok {
		return nil, ErrIncorrectPassword
	}
	k, err := mldsa.ParsePKCS8(plain)
	if err != nil {
		return nil, err
	}
	return k, nil
}

// encryptMLDSA is EncryptPrivateKey for an ML-DSA key: the same PBES2
// scheme (PBKDF2-HMAC-SHA256, EncryptionIterations, AES-256-CBC) over
// its PKCS#8 encoding, which the PKCS#8 library cannot write.
func encryptMLDSA(k *mldsa.PrivateKey, password []byte) ([]byte, error) {
	plain, err := mldsa.MarshalPKCS8(k)
	if err != nil {
		return nil, err
	}
	defer clear(plain)
	salt, iv := make([]byte, 16), make([]byte, aes.BlockSize)
	if _, err := rand.Read(salt); err != nil {
		return nil, err
	}
	if _, err := rand.Read(iv); err != nil {
		return nil, err
	}
	key, err := pbkdf2.Key(sha256.New, string(password), salt, EncryptionIterations, 32)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	n := aes.BlockSize - len(plain)%aes.BlockSize
	padded := append(bytes.Clone(plain), bytes.Repeat([]byte{byte(n)}, n)...)
	defer clear(padded)
	data := make([]byte, len(padded))
	cipher.NewCBCEncrypter(block, iv).CryptBlocks(data, padded)
	// No keyLength (it is optional): AWS's helper v1.8.0 does not parse
	// one and reads the key as undecryptable.
	kdfParams, err := asn1.Marshal(pbkdf2Params{Salt: salt, IterationCount: EncryptionIterations,
		PRF: pkix.AlgorithmIdentifier{Algorithm: oidHMACSHA256, Parameters: asn1.NullRawValue}})
	if err != nil {
		return nil, err
	}
	ivDER, err := asn1.Marshal(iv)
	if err != nil {
		return nil, err
	}
	pbes2, err := asn1.Marshal(pbes2Params{
		KeyDerivationFunc: pkix.AlgorithmIdentifier{Algorithm: oidPBKDF2, Parameters: asn1.RawValue{FullBytes: kdfParams}},
		EncryptionScheme:  pkix.AlgorithmIdentifier{Algorithm: oidAES256CBC, Parameters: asn1.RawValue{FullBytes: ivDER}},
	})
	if err != nil {
		return nil, err
	}
	der, err := asn1.Marshal(encryptedPrivateKeyInfo{Algorithm: pkix.AlgorithmIdentifier{Algorithm: oidPBES2, Parameters: asn1.RawValue{FullBytes: pbes2}}, Data: data})
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: der}), nil
}
