package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"

	"github.com/keyless-dev/keyless/internal/mldsa"
	"github.com/youmark/pkcs8"
)

// Sentinel errors callers branch on to give the right hint.
var (
	// ErrNotPrivateKey means the data holds no private key.
	ErrNotPrivateKey = errors.New("not a private key")
	// ErrPasswordRequired means the key is encrypted and the PasswordFunc
	// was nil or returned no password.
	ErrPasswordRequired = errors.New("the key is encrypted and no password was given")
	// ErrIncorrectPassword means the password does not decrypt the key.
	ErrIncorrectPassword = errors.New("incorrect password")
	// ErrUnsupportedKey means the key is of a type or size that IAM Roles
	// Anywhere does not accept.
	ErrUnsupportedKey = errors.New("unsupported key type")
	// ErrUnsupportedEncryption means the key is encrypted with a scheme
	// keyless does not read.
	ErrUnsupportedEncryption = errors.New("unsupported key encryption")
)

// PasswordFunc returns the password for an encrypted key or PKCS#12 file. It
// is called only when one is needed, at most once per parse. A nil
// PasswordFunc means no password is available.
type PasswordFunc func() ([]byte, error)

// ParsePrivateKey parses the first private key in PEM data: PKCS#1 ("RSA
// PRIVATE KEY"), SEC1 ("EC PRIVATE KEY"), PKCS#8 ("PRIVATE KEY") or encrypted
// PKCS#8 ("ENCRYPTED PRIVATE KEY": PBES2 with PBKDF2-HMAC-SHA1/SHA256 or
// scrypt and AES-CBC, as OpenSSL 3 and ACM export write it). Unencrypted DER
// (PKCS#8, encrypted PKCS#8, PKCS#1 or SEC1) is accepted too. "EC PARAMETERS" blocks, which
// `openssl ecparam -genkey` writes first, are skipped. The key must be one
// Roles Anywhere accepts (see CheckPublicKey).
func ParsePrivateKey(data []byte, password PasswordFunc) (crypto.Signer, error) {
	blocks, err := pemBlocks(data)
	if err != nil {
		return nil, err
	}
	if len(blocks) == 0 {
		if !looksLikeDER(data) {
			return nil, fmt.Errorf("%w: no PEM private key block and not DER", ErrNotPrivateKey)
		}
		key, err := parseDERKey(data, password)
		if err != nil {
			return nil, err
		}
		return checkedSigner(key)
	}
	for _, b := range blocks {
		switch b.Type {
		case "EC PARAMETERS":
			continue
		case "RSA PRIVATE KEY", "EC PRIVATE KEY":
			if _, ok := b.Headers["DEK-Info"]; ok {
				return nil, fmt.Errorf("%w: legacy OpenSSL PEM encryption (Proc-Type/DEK-Info) is weak and not read; convert the key to encrypted PKCS#8 with `openssl pkcs8 -topk8 -v2 aes-256-cbc -in KEY -out KEY.p8`", ErrUnsupportedEncryption)
			}
			var key any
			if b.Type == "RSA PRIVATE KEY" {
				key, err = x509.ParsePKCS1PrivateKey(b.Bytes)
			} else {
				key, err = x509.ParseECPrivateKey(b.Bytes)
			}
			if err != nil {
				return nil, fmt.Errorf("parsing %s block: %w", b.Type, err)
			}
			return checkedSigner(key)
		case "PRIVATE KEY":
			if _, ok := mldsa.IsPKCS8(b.Bytes); ok {
				key, err := mldsa.ParsePKCS8(b.Bytes)
				if err != nil {
					return nil, fmt.Errorf("parsing PKCS#8 PRIVATE KEY block: %w", err)
				}
				return key, nil
			}
			key, err := x509.ParsePKCS8PrivateKey(b.Bytes)
			if err != nil {
				return nil, fmt.Errorf("parsing PKCS#8 PRIVATE KEY block: %w", unsupportedPKCS8(b.Bytes, err))
			}
			return checkedSigner(key)
		case "ENCRYPTED PRIVATE KEY":
			key, err := decryptPKCS8(b.Bytes, password)
			if err != nil {
				return nil, err
			}
			return checkedSigner(key)
		case "OPENSSH PRIVATE KEY":
			return nil, fmt.Errorf("%w: this is an OpenSSH key; X.509 signing needs a PEM key (PKCS#8, PKCS#1 or SEC1)", ErrUnsupportedKey)
		case "TSS2 PRIVATE KEY":
			return nil, fmt.Errorf("%w: TPM-wrapped keys (TSS2) are not supported yet; use a key file", ErrUnsupportedKey)
		case "CERTIFICATE":
			return nil, fmt.Errorf("%w: found a CERTIFICATE block where a private key was expected (were the certificate and key files swapped?)", ErrNotPrivateKey)
		}
	}
	types := make([]string, 0, len(blocks))
	for _, b := range blocks {
		types = append(types, fmt.Sprintf("%q", b.Type))
	}
	return nil, fmt.Errorf("%w: PEM holds %s and no private key block", ErrNotPrivateKey, strings.Join(types, ", "))
}

// EncodePrivateKey returns key as an unencrypted PKCS#8 PEM block (an
// ML-DSA key in RFC 9881's seed-and-expanded-key form, which AWS's helper
// reads).
func EncodePrivateKey(key crypto.Signer) ([]byte, error) {
	var der []byte
	var err error
	if k, ok := key.(*mldsa.PrivateKey); ok {
		der, err = mldsa.MarshalPKCS8(k)
	} else {
		der, err = x509.MarshalPKCS8PrivateKey(key)
	}
	if err != nil {
		return nil, fmt.Errorf("encoding private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// EncryptionIterations is the PBKDF2-HMAC-SHA256 iteration count of keys
// keyless encrypts: OWASP's 2023 advice for that hash. Decrypting costs a
// few hundred milliseconds, paid once when a CA starts or a command runs.
const EncryptionIterations = 600_000

// EncryptPrivateKey encodes key as an "ENCRYPTED PRIVATE KEY" PEM block:
// PKCS#8 under PBES2 with PBKDF2-HMAC-SHA256 and AES-256-CBC, which
// OpenSSL 3 reads (openssl pkey -in F) and ParsePrivateKey decrypts.
func EncryptPrivateKey(key crypto.Signer, password []byte) ([]byte, error) {
	if len(password) == 0 {
		return nil, errors.New("encrypting private key: empty password")
	}
	if k, ok := key.(*mldsa.PrivateKey); ok {
		out, err := encryptMLDSA(k, password)
		if err != nil {
			return nil, fmt.Errorf("encrypting private key: %w", err)
		}
		return out, nil
	}
	der, err := pkcs8.MarshalPrivateKey(key, password, &pkcs8.Opts{
		Cipher:  pkcs8.AES256CBC,
		KDFOpts: pkcs8.PBKDF2Opts{SaltSize: 16, IterationCount: EncryptionIterations, HMACHash: crypto.SHA256},
	})
	if err != nil {
		return nil, fmt.Errorf("encrypting private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: der}), nil
}

func parseDERKey(der []byte, password PasswordFunc) (any, error) {
	if _, ok := mldsa.IsPKCS8(der); ok {
		return mldsa.ParsePKCS8(der)
	}
	key, err := x509.ParsePKCS8PrivateKey(der)
	if err == nil {
		return key, nil
	}
	if isEncryptedPKCS8(der) {
		return decryptPKCS8(der, password)
	}
	if e := unsupportedPKCS8(der, err); errors.Is(e, ErrUnsupportedKey) {
		return nil, e
	}
	if key, err := x509.ParsePKCS1PrivateKey(der); err == nil {
		return key, nil
	}
	if key, err := x509.ParseECPrivateKey(der); err == nil {
		return key, nil
	}
	return nil, fmt.Errorf("%w: DER data is not a PKCS#8, PKCS#1 or SEC1 private key", ErrNotPrivateKey)
}

var (
	oidPBES2           = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 13}
	oidPBKDF2          = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 12}
	oidScrypt          = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 11591, 4, 11}
	oidAES128CBC       = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 2}
	oidAES192CBC       = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 22}
	oidAES256CBC       = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 42}
	oidDESEDE3CBC      = asn1.ObjectIdentifier{1, 2, 840, 113549, 3, 7}
	oidPublicKeyEd448  = asn1.ObjectIdentifier{1, 3, 101, 113}
	oidPublicKeyX25519 = asn1.ObjectIdentifier{1, 3, 101, 110}
	oidPublicKeyDSA    = asn1.ObjectIdentifier{1, 2, 840, 10040, 4, 1}
	oidPublicKeyMLDSA  = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 3}
)

type encryptedPrivateKeyInfo struct {
	Algorithm pkix.AlgorithmIdentifier
	Data      []byte
}

type pbes2Params struct {
	KeyDerivationFunc pkix.AlgorithmIdentifier
	EncryptionScheme  pkix.AlgorithmIdentifier
}

type pbkdf2Params struct {
	Salt           []byte
	IterationCount int
	KeyLength      int                      `asn1:"optional"`
	PRF            pkix.AlgorithmIdentifier `asn1:"optional"`
}

type scryptParams struct {
	Salt                     []byte
	CostParameter            int
	BlockSize                int
	ParallelizationParameter int
}

// Limits on key-derivation work, so a crafted key file cannot pin the CPU or
// exhaust memory: far above what OpenSSL (2048 PBKDF2 iterations, scrypt
// N=16384) and ACM write, far below "hangs for minutes".
const (
	maxPBKDF2Iterations = 10_000_000
	maxScryptN          = 1 << 20
	maxScryptRP         = 64
)

func isEncryptedPKCS8(der []byte) bool {
	var info encryptedPrivateKeyInfo
	rest, err := asn1.Unmarshal(der, &info)
	return err == nil && len(rest) == 0 && len(info.Algorithm.Algorithm) > 0
}

// checkEncryption refuses encryption schemes keyless does not read, and
// absurd key-derivation parameters, before any work is done.
func checkEncryption(der []byte) error {
	var info encryptedPrivateKeyInfo
	if _, err := asn1.Unmarshal(der, &info); err != nil {
		return fmt.Errorf("parsing ENCRYPTED PRIVATE KEY block: %v", err)
	}
	if !info.Algorithm.Algorithm.Equal(oidPBES2) {
		return fmt.Errorf("%w: the key uses PBES1 (OID %s), the legacy scheme of OpenSSL 1.0; re-encrypt it with `openssl pkcs8 -topk8 -v2 aes-256-cbc`", ErrUnsupportedEncryption, info.Algorithm.Algorithm)
	}
	var params pbes2Params
	if _, err := asn1.Unmarshal(info.Algorithm.Parameters.FullBytes, &params); err != nil {
		return fmt.Errorf("parsing PBES2 parameters: %v", err)
	}
	kdf := params.KeyDerivationFunc
	switch {
	case kdf.Algorithm.Equal(oidPBKDF2):
		var p pbkdf2Params
		if _, err := asn1.Unmarshal(kdf.Parameters.FullBytes, &p); err != nil {
			return fmt.Errorf("parsing PBKDF2 parameters: %v", err)
		}
		if p.IterationCount < 1 || p.IterationCount > maxPBKDF2Iterations {
			return fmt.Errorf("%w: PBKDF2 iteration count %d is outside 1..%d", ErrUnsupportedEncryption, p.IterationCount, maxPBKDF2Iterations)
		}
	case kdf.Algorithm.Equal(oidScrypt):
		var p scryptParams
		if _, err := asn1.Unmarshal(kdf.Parameters.FullBytes, &p); err != nil {
			return fmt.Errorf("parsing scrypt parameters: %v", err)
		}
		if p.CostParameter < 2 || p.CostParameter > maxScryptN || p.BlockSize < 1 || p.BlockSize > maxScryptRP ||
			p.ParallelizationParameter < 1 || p.ParallelizationParameter > maxScryptRP {
			return fmt.Errorf("%w: scrypt parameters N=%d r=%d p=%d are outside the accepted range (N up to %d, r and p up to %d)",
				ErrUnsupportedEncryption, p.CostParameter, p.BlockSize, p.ParallelizationParameter, maxScryptN, maxScryptRP)
		}
	default:
		return fmt.Errorf("%w: key derivation function %s is not PBKDF2 or scrypt", ErrUnsupportedEncryption, kdf.Algorithm)
	}
	// The decryption library panics on an IV or ciphertext of the wrong
	// length, so both are checked here against the cipher's block size.
	block := 0
	switch enc := params.EncryptionScheme.Algorithm; {
	case enc.Equal(oidAES128CBC), enc.Equal(oidAES192CBC), enc.Equal(oidAES256CBC):
		block = 16
	case enc.Equal(oidDESEDE3CBC):
		block = 8
	default:
		return fmt.Errorf("%w: cipher %s is not AES-CBC or DES-EDE3-CBC", ErrUnsupportedEncryption, enc)
	}
	var iv []byte
	if _, err := asn1.Unmarshal(params.EncryptionScheme.Parameters.FullBytes, &iv); err != nil || len(iv) != block {
		return fmt.Errorf("%w: the cipher's IV is not %d bytes", ErrUnsupportedEncryption, block)
	}
	if len(info.Data) == 0 || len(info.Data)%block != 0 {
		return fmt.Errorf("%w: the encrypted key is %d bytes, not a whole number of %d-byte blocks (is the file truncated?)", ErrUnsupportedEncryption, len(info.Data), block)
	}
	return nil
}

// askPassword asks password for an encrypted file's password:
// ErrPasswordRequired when there is none to ask, or it gives none.
func askPassword(password PasswordFunc) ([]byte, error) {
	if password == nil {
		return nil, ErrPasswordRequired
	}
	pw, err := password()
	if err != nil {
		return nil, err
	}
	if len(pw) == 0 {
		return nil, ErrPasswordRequired
	}
	return pw, nil
}

func decryptPKCS8(der []byte, password PasswordFunc) (any, error) {
	if err := checkEncryption(der); err != nil {
		return nil, err
	}
	pw, err := askPassword(password)
	if err != nil {
		return nil, err
	}
	key, _, err := pkcs8.ParsePrivateKey(der, pw)
	if err != nil {
		// The library reports a wrong password as a failure to parse the
		// decrypted bytes; every other failure is about the file itself.
		if strings.Contains(err.Error(), "incorrect password") {
			// Or a key of an algorithm the library does not know:
			// ML-DSA, which keyless decrypts itself.
			k, err := decryptMLDSA(der, pw)
			if err != nil {
				return nil, err
			}
			return k, nil
		}
		return nil, fmt.Errorf("%w: %v", ErrUnsupportedEncryption, err)
	}
	return key, nil
}

// unsupportedPKCS8 turns the standard library's error for a PKCS#8 key of an
// algorithm it does not know into ErrUnsupportedKey naming the algorithm.
func unsupportedPKCS8(der []byte, err error) error {
	var info struct {
		Version    int
		Algorithm  pkix.AlgorithmIdentifier
		PrivateKey []byte
	}
	if _, e := asn1.Unmarshal(der, &info); e != nil {
		return err
	}
	switch oid := info.Algorithm.Algorithm; {
	case oid.Equal(oidPublicKeyEd448):
		return fmt.Errorf("%w: Ed448", ErrUnsupportedKey)
	case oid.Equal(oidPublicKeyX25519):
		return fmt.Errorf("%w: X25519 is a key-agreement key and cannot sign", ErrUnsupportedKey)
	case oid.Equal(oidPublicKeyDSA):
		return fmt.Errorf("%w: DSA", ErrUnsupportedKey)
	case len(oid) == len(oidPublicKeyMLDSA)+1 && oid[:len(oidPublicKeyMLDSA)].Equal(oidPublicKeyMLDSA):
		return fmt.Errorf("%w: OID %s is not ML-DSA-44, -65 or -87 (2.16.840.1.101.3.4.3.17-19)", ErrUnsupportedKey, oid)
	}
	if strings.Contains(err.Error(), "curve") {
		return fmt.Errorf("%w: %v", ErrUnsupportedKey, err)
	}
	return err
}

func checkedSigner(key any) (crypto.Signer, error) {
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%w: %T cannot sign", ErrUnsupportedKey, key)
	}
	if err := CheckPublicKey(signer.Public()); err != nil {
		return nil, err
	}
	return signer, nil
}

// CheckPublicKey reports whether IAM Roles Anywhere accepts the key: RSA
// 2048 to 4096 bits, ECDSA on P-256 or P-384, or ML-DSA-44/65/87. The
// error says which key it got.
func CheckPublicKey(pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case *mldsa.PublicKey:
		return nil
	case *rsa.PublicKey:
		if bits := k.N.BitLen(); bits < 2048 || bits > 4096 {
			return fmt.Errorf("%w: RSA %d-bit; Roles Anywhere accepts RSA 2048 to 4096 bits, ECDSA P-256/P-384 and ML-DSA-44/65/87", ErrUnsupportedKey, bits)
		}
		return nil
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() && k.Curve != elliptic.P384() {
			return fmt.Errorf("%w: ECDSA %s; Roles Anywhere accepts ECDSA P-256/P-384, RSA 2048 to 4096 bits and ML-DSA-44/65/87", ErrUnsupportedKey, k.Curve.Params().Name)
		}
		return nil
	case ed25519.PublicKey:
		return fmt.Errorf("%w: Ed25519; Roles Anywhere accepts RSA 2048 to 4096 bits, ECDSA P-256/P-384 and ML-DSA-44/65/87", ErrUnsupportedKey)
	default:
		return fmt.Errorf("%w: %T; Roles Anywhere accepts RSA 2048 to 4096 bits, ECDSA P-256/P-384 and ML-DSA-44/65/87", ErrUnsupportedKey, pub)
	}
}

// DescribeKey names a public key the way errors and logs show it, for
// example "ECDSA P-256" or "RSA 2048".
func DescribeKey(pub crypto.PublicKey) string {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA %d", k.N.BitLen())
	case *ecdsa.PublicKey:
		return "ECDSA " + k.Curve.Params().Name
	case ed25519.PublicKey:
		return "Ed25519"
	case *mldsa.PublicKey:
		return k.Params().Name()
	default:
		return fmt.Sprintf("%T", pub)
	}
}

// PublicKeyFingerprint returns the lowercase hex SHA-256 of the key's
// SubjectPublicKeyInfo DER, to tell keys apart in messages without showing
// anything secret.
func PublicKeyFingerprint(pub crypto.PublicKey) string {
	der, err := MarshalPKIXPublicKey(pub)
	if err != nil {
		return "unknown"
	}
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

// MarshalPKIXPublicKey is x509.MarshalPKIXPublicKey that also writes
// ML-DSA keys.
func MarshalPKIXPublicKey(pub crypto.PublicKey) ([]byte, error) {
	if k, ok := pub.(*mldsa.PublicKey); ok {
		return mldsa.MarshalPKIXPublicKey(k)
	}
	return x509.MarshalPKIXPublicKey(pub)
}

// CertificatePublicKey is cert's public key, including an ML-DSA key
// crypto/x509 leaves unparsed.
func CertificatePublicKey(cert *x509.Certificate) (crypto.PublicKey, error) {
	return mldsa.PublicKeyOf(cert)
}

// KeyMatchesCertificate reports whether key is the private key of cert.
func KeyMatchesCertificate(key crypto.Signer, cert *x509.Certificate) bool {
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok {
		return false
	}
	certPub, err := mldsa.PublicKeyOf(cert)
	return err == nil && pub.Equal(certPub)
}

// SignTestMessage signs SigningTestMessage with key over the hash
// (SHA-256, SHA-384 or SHA-512), as AWS's helper's sign-string does:
// PKCS#1 v1.5 for RSA, ASN.1 DER for ECDSA.
func SignTestMessage(key crypto.Signer, hash crypto.Hash) ([]byte, error) {
	message, err := SigningTestMessage(key.Public())
	if err != nil {
		return nil, err
	}
	if _, ok := key.(*mldsa.PrivateKey); ok {
		// AWS's helper v1.8.0 signs the message itself with ML-DSA,
		// whatever --digest says.
		return key.Sign(rand.Reader, message, crypto.Hash(0))
	}
	h := hash.New()
	h.Write(message)
	sig, err := key.Sign(rand.Reader, h.Sum(nil), hash)
	if err != nil {
		return nil, fmt.Errorf("signing: %w", err)
	}
	return sig, nil
}

// SigningTestMessage is what AWS's helper signs in its sign-string
// command (its SIGN_STRING_TEST_VERSION 1): "AWS Roles Anywhere Credential
// Helper Signing Test" || "1" || SHA-256("IAM RA" || public key), where the
// public key is the uncompressed point for ECDSA and the PKCS#1 DER for
// RSA; for ML-DSA keys the helper (v1.8.0) leaves the digest out.
func SigningTestMessage(pub crypto.PublicKey) ([]byte, error) {
	var keyBytes []byte
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		ek, err := k.ECDH()
		if err != nil {
			return nil, err
		}
		keyBytes = ek.Bytes()
	case *rsa.PublicKey:
		keyBytes = x509.MarshalPKCS1PublicKey(k)
	case *mldsa.PublicKey:
		// AWS's helper v1.8.0 adds no key digest for ML-DSA keys.
		return []byte("AWS Roles Anywhere Credential Helper Signing Test1"), nil
	default:
		return nil, fmt.Errorf("cannot sign with a %T key", pub)
	}
	sum := sha256.Sum256(append([]byte("IAM RA"), keyBytes...))
	return append([]byte("AWS Roles Anywhere Credential Helper Signing Test1"), sum[:]...), nil
}
