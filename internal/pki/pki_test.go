package pki_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/youmark/pkcs8"
	"software.sslmate.com/src/go-pkcs12"

	"github.com/keyless-dev/keyless/internal/pki"
	"github.com/keyless-dev/keyless/internal/pki/pkitest"
)

func password(pw string) pki.PasswordFunc {
	return func() ([]byte, error) { return []byte(pw), nil }
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func sameKey(t *testing.T, got, want crypto.Signer) {
	t.Helper()
	if !got.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(want.Public()) {
		t.Fatalf("parsed key differs from the original")
	}
}

func TestParsePrivateKeyFormats(t *testing.T) {
	for _, kind := range []string{pkitest.RSA2048, pkitest.RSA3072, pkitest.RSA4096, pkitest.P256, pkitest.P384} {
		key := pkitest.Key(t, kind)
		p8, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		formats := map[string][]byte{
			"pkcs8-pem": pemBlock("PRIVATE KEY", p8),
			"pkcs8-der": p8,
		}
		switch k := key.(type) {
		case *ecdsa.PrivateKey:
			sec1, err := x509.MarshalECPrivateKey(k)
			if err != nil {
				t.Fatal(err)
			}
			formats["sec1-pem"] = pemBlock("EC PRIVATE KEY", sec1)
			formats["sec1-der"] = sec1
			params := pemBlock("EC PARAMETERS", []byte{0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07})
			formats["sec1-after-ec-parameters"] = append(params, pemBlock("EC PRIVATE KEY", sec1)...)
		default:
			pkcs1 := x509.MarshalPKCS1PrivateKey(key.(*rsa.PrivateKey))
			formats["pkcs1-pem"] = pemBlock("RSA PRIVATE KEY", pkcs1)
			formats["pkcs1-der"] = pkcs1
		}
		for name, data := range formats {
			t.Run(kind+"/"+name, func(t *testing.T) {
				got, err := pki.ParsePrivateKey(data, nil)
				if err != nil {
					t.Fatalf("ParsePrivateKey: %v", err)
				}
				sameKey(t, got, key)
			})
		}
	}
}

func TestParseEncryptedPKCS8(t *testing.T) {
	kdfs := map[string]pkcs8.KDFOpts{
		"pbkdf2-sha1":   pkcs8.PBKDF2Opts{SaltSize: 8, IterationCount: 2048, HMACHash: crypto.SHA1},
		"pbkdf2-sha256": pkcs8.PBKDF2Opts{SaltSize: 16, IterationCount: 2048, HMACHash: crypto.SHA256},
		"scrypt":        pkcs8.ScryptOpts{SaltSize: 16, CostParameter: 1 << 14, BlockSize: 8, ParallelizationParameter: 1},
	}
	ciphers := map[string]pkcs8.Cipher{"aes-128-cbc": pkcs8.AES128CBC, "aes-192-cbc": pkcs8.AES192CBC, "aes-256-cbc": pkcs8.AES256CBC}
	for _, kind := range []string{pkitest.RSA2048, pkitest.P256, pkitest.P384} {
		key := pkitest.Key(t, kind)
		for kdfName, kdf := range kdfs {
			for cipherName, c := range ciphers {
				der, err := pkcs8.MarshalPrivateKey(key, []byte("s3cret pass"), &pkcs8.Opts{Cipher: c, KDFOpts: kdf})
				if err != nil {
					t.Fatal(err)
				}
				data := pemBlock("ENCRYPTED PRIVATE KEY", der)
				t.Run(kind+"/"+kdfName+"/"+cipherName, func(t *testing.T) {
					got, err := pki.ParsePrivateKey(data, password("s3cret pass"))
					if err != nil {
						t.Fatalf("right password: %v", err)
					}
					sameKey(t, got, key)
					if _, err := pki.ParsePrivateKey(data, password("wrong")); !errors.Is(err, pki.ErrIncorrectPassword) {
						t.Errorf("wrong password: got %v, want ErrIncorrectPassword", err)
					}
					if _, err := pki.ParsePrivateKey(data, nil); !errors.Is(err, pki.ErrPasswordRequired) {
						t.Errorf("no password: got %v, want ErrPasswordRequired", err)
					}
					if _, err := pki.ParsePrivateKey(data, password("")); !errors.Is(err, pki.ErrPasswordRequired) {
						t.Errorf("empty password: got %v, want ErrPasswordRequired", err)
					}
					if _, err := pki.ParsePrivateKey(der, password("s3cret pass")); err != nil {
						t.Errorf("DER form: %v", err)
					}
				})
			}
		}
	}
}

func TestPasswordFuncErrorIsReturned(t *testing.T) {
	der, err := pkcs8.MarshalPrivateKey(pkitest.Key(t, pkitest.P256), []byte("x"), nil)
	if err != nil {
		t.Fatal(err)
	}
	sentinel := errors.New("no tty")
	_, err = pki.ParsePrivateKey(pemBlock("ENCRYPTED PRIVATE KEY", der), func() ([]byte, error) { return nil, sentinel })
	if !errors.Is(err, sentinel) {
		t.Fatalf("got %v, want the PasswordFunc's error", err)
	}
}

func TestParsePrivateKeyRefusals(t *testing.T) {
	p521, err := x509.MarshalPKCS8PrivateKey(pkitest.Key(t, pkitest.P521))
	if err != nil {
		t.Fatal(err)
	}
	rsa1024, err := x509.MarshalPKCS8PrivateKey(pkitest.Key(t, pkitest.RSA1024))
	if err != nil {
		t.Fatal(err)
	}
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ed, err := x509.MarshalPKCS8PrivateKey(edKey)
	if err != nil {
		t.Fatal(err)
	}
	sec1, err := x509.MarshalECPrivateKey(pkitest.Key(t, pkitest.P256).(*ecdsa.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	legacy := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Headers: map[string]string{"Proc-Type": "4,ENCRYPTED", "DEK-Info": "AES-256-CBC,00112233445566778899AABBCCDDEEFF"}, Bytes: sec1})
	cert := pkitest.NewRoot(t, "refusals").Cert
	pbes1 := encryptedWith(t, asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 12, 1, 3}, nil)
	hugeIterations := pbes2PBKDF2(t, 1<<30)

	tests := []struct {
		name    string
		data    []byte
		want    error
		message string
	}{
		{"rsa-1024", pemBlock("PRIVATE KEY", rsa1024), pki.ErrUnsupportedKey, "RSA 1024-bit"},
		{"p-521", pemBlock("PRIVATE KEY", p521), pki.ErrUnsupportedKey, "P-521"},
		{"ed25519", pemBlock("PRIVATE KEY", ed), pki.ErrUnsupportedKey, "Ed25519"},
		{"legacy-pem-encryption", legacy, pki.ErrUnsupportedEncryption, "openssl pkcs8 -topk8"},
		{"pbes1", pemBlock("ENCRYPTED PRIVATE KEY", pbes1), pki.ErrUnsupportedEncryption, "PBES1"},
		{"ciphertext-not-whole-blocks", pemBlock("ENCRYPTED PRIVATE KEY", pbes2PBKDF2(t, 2048)), pki.ErrUnsupportedEncryption, "blocks"},
		{"absurd-pbkdf2-iterations", pemBlock("ENCRYPTED PRIVATE KEY", hugeIterations), pki.ErrUnsupportedEncryption, "iteration count"},
		{"certificate-instead", pki.EncodeCertificates(cert), pki.ErrNotPrivateKey, "swapped"},
		{"csr-only", pemBlock("CERTIFICATE REQUEST", []byte{0x30, 0x00}), pki.ErrNotPrivateKey, "CERTIFICATE REQUEST"},
		{"openssh", pemBlock("OPENSSH PRIVATE KEY", []byte("x")), pki.ErrUnsupportedKey, "OpenSSH"},
		{"tpm", pemBlock("TSS2 PRIVATE KEY", []byte("x")), pki.ErrUnsupportedKey, "TPM"},
		{"text", []byte("hello world\n"), pki.ErrNotPrivateKey, "no PEM"},
		{"empty", nil, pki.ErrNotPrivateKey, "no PEM"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := pki.ParsePrivateKey(tt.data, password("pw"))
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.message) {
				t.Errorf("error %q does not mention %q", err, tt.message)
			}
		})
	}
	t.Run("truncated-pem", func(t *testing.T) {
		data := pemBlock("PRIVATE KEY", rsa1024)
		_, err := pki.ParsePrivateKey(data[:len(data)-30], nil)
		if err == nil || !strings.Contains(err.Error(), "truncated") {
			t.Fatalf("got %v, want a truncation error", err)
		}
	})
}

// encryptedWith builds an EncryptedPrivateKeyInfo with the given algorithm.
func encryptedWith(t testing.TB, alg asn1.ObjectIdentifier, params []byte) []byte {
	t.Helper()
	type algID struct {
		Algorithm  asn1.ObjectIdentifier
		Parameters asn1.RawValue `asn1:"optional"`
	}
	v := struct {
		Alg  algID
		Data []byte
	}{Alg: algID{Algorithm: alg}, Data: []byte("ciphertext")}
	if params != nil {
		v.Alg.Parameters = asn1.RawValue{FullBytes: params}
	}
	der, err := asn1.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func pbes2PBKDF2(t testing.TB, iterations int) []byte {
	t.Helper()
	type algID struct {
		Algorithm  asn1.ObjectIdentifier
		Parameters asn1.RawValue
	}
	kdfParams, err := asn1.Marshal(struct {
		Salt       []byte
		Iterations int
	}{[]byte("saltsalt"), iterations})
	if err != nil {
		t.Fatal(err)
	}
	iv, _ := asn1.Marshal(make([]byte, 16))
	params, err := asn1.Marshal(struct{ KDF, Enc algID }{
		algID{asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 12}, asn1.RawValue{FullBytes: kdfParams}},
		algID{asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 42}, asn1.RawValue{FullBytes: iv}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return encryptedWith(t, asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 13}, params)
}

func TestParseCertificates(t *testing.T) {
	root := pkitest.NewRoot(t, "certs")
	inter := root.Intermediate(t, "certs-int")
	leaf := inter.Leaf(t, pkitest.LeafOptions{})
	bundle := pki.EncodeCertificates(leaf, inter.Cert)

	t.Run("pem-bundle-in-order", func(t *testing.T) {
		withText := append([]byte("subject=CN = gitlab-runner\n"), bundle...)
		got, err := pki.ParseCertificates(withText)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || !got[0].Equal(leaf) || !got[1].Equal(inter.Cert) {
			t.Fatalf("got %d certificates, want leaf then intermediate", len(got))
		}
	})
	t.Run("der", func(t *testing.T) {
		got, err := pki.ParseCertificates(leaf.Raw)
		if err != nil || len(got) != 1 || !got[0].Equal(leaf) {
			t.Fatalf("got %v, %v", got, err)
		}
	})
	key, _ := pki.EncodePrivateKey(pkitest.Key(t, pkitest.P256))
	for name, tc := range map[string]struct {
		data    []byte
		message string
	}{
		"private-key":   {key, "swapped"},
		"key-in-bundle": {append(append([]byte{}, bundle...), key...), "PEM block 3"},
		"garbage":       {[]byte("not a cert"), "no PEM CERTIFICATE"},
		"bad-der":       {[]byte{0x30, 0x03, 0x01, 0x01, 0x00}, "DER data"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := pki.ParseCertificates(tc.data)
			if !errors.Is(err, pki.ErrNotCertificate) || !strings.Contains(err.Error(), tc.message) {
				t.Fatalf("got %v, want ErrNotCertificate mentioning %q", err, tc.message)
			}
		})
	}
	t.Run("corrupt-base64", func(t *testing.T) {
		bad := bytes.Replace(pki.EncodeCertificates(leaf), []byte("MII"), []byte("M!I"), 1)
		if _, err := pki.ParseCertificates(bad); err == nil {
			t.Fatal("corrupt PEM parsed")
		}
	})
}

func TestParsePKCS12(t *testing.T) {
	root := pkitest.NewRoot(t, "p12")
	inter := root.Intermediate(t, "p12-int")
	for _, kind := range []string{pkitest.RSA2048, pkitest.P256, pkitest.P384} {
		key := pkitest.Key(t, kind)
		leaf := inter.Leaf(t, pkitest.LeafOptions{Key: key})
		encoders := map[string]*pkcs12.Encoder{
			"modern-openssl3-default": pkcs12.Modern2023,
			"legacy-rc2":              pkcs12.LegacyRC2,
			"legacy-3des":             pkcs12.LegacyDES,
		}
		for name, enc := range encoders {
			t.Run(kind+"/"+name, func(t *testing.T) {
				data, err := enc.Encode(key, leaf, []*x509.Certificate{inter.Cert}, "p12 pass")
				if err != nil {
					t.Fatal(err)
				}
				if !pki.IsPKCS12(data) {
					t.Fatal("IsPKCS12 = false")
				}
				id, err := pki.ParsePKCS12(data, password("p12 pass"))
				if err != nil {
					t.Fatal(err)
				}
				sameKey(t, id.Key, key)
				if !id.Certificate.Equal(leaf) || len(id.Intermediates) != 1 || !id.Intermediates[0].Equal(inter.Cert) {
					t.Fatalf("wrong certificates: leaf %v, %d intermediates", id.Certificate.Subject, len(id.Intermediates))
				}
				if _, err := pki.ParsePKCS12(data, password("wrong")); !errors.Is(err, pki.ErrIncorrectPassword) {
					t.Errorf("wrong password: got %v", err)
				}
				if _, err := pki.ParsePKCS12(data, nil); !errors.Is(err, pki.ErrPasswordRequired) {
					t.Errorf("no password: got %v", err)
				}
			})
		}
		t.Run(kind+"/empty-password-is-not-asked", func(t *testing.T) {
			data, err := pkcs12.Modern2023.Encode(key, leaf, nil, "")
			if err != nil {
				t.Fatal(err)
			}
			asked := false
			id, err := pki.ParsePKCS12(data, func() ([]byte, error) { asked = true; return nil, nil })
			if err != nil || asked {
				t.Fatalf("err %v, asked %v", err, asked)
			}
			sameKey(t, id.Key, key)
		})
		t.Run(kind+"/passwordless", func(t *testing.T) {
			data, err := pkcs12.Passwordless.Encode(key, leaf, nil, "")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := pki.ParsePKCS12(data, nil); err != nil {
				t.Fatal(err)
			}
		})
	}
	t.Run("leaf-not-first", func(t *testing.T) {
		key := pkitest.Key(t, pkitest.P256)
		leaf := inter.Leaf(t, pkitest.LeafOptions{Key: key})
		data, err := pkcs12.Modern2023.Encode(key, inter.Cert, []*x509.Certificate{leaf}, "pw")
		if err != nil {
			t.Fatal(err)
		}
		id, err := pki.ParsePKCS12(data, password("pw"))
		if err != nil {
			t.Fatal(err)
		}
		if !id.Certificate.Equal(leaf) || !id.Intermediates[0].Equal(inter.Cert) {
			t.Fatal("leaf not found by key")
		}
	})
	t.Run("no-certificate-matches-key", func(t *testing.T) {
		data, err := pkcs12.Modern2023.Encode(pkitest.Key(t, pkitest.P384), inter.Cert, nil, "pw")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := pki.ParsePKCS12(data, password("pw")); err == nil || !strings.Contains(err.Error(), "matches") {
			t.Fatalf("got %v", err)
		}
	})
	if pki.IsPKCS12([]byte("-----BEGIN CERTIFICATE-----")) || pki.IsPKCS12(inter.Cert.Raw) {
		t.Error("IsPKCS12 true for non-PKCS#12 data")
	}
}

func TestKeyMatchesCertificate(t *testing.T) {
	ca := pkitest.NewRoot(t, "match")
	leaf := ca.Leaf(t, pkitest.LeafOptions{Key: pkitest.Key(t, pkitest.P256)})
	if !pki.KeyMatchesCertificate(pkitest.Key(t, pkitest.P256), leaf) {
		t.Error("matching key reported as mismatch")
	}
	if pki.KeyMatchesCertificate(pkitest.Key(t, pkitest.P384), leaf) {
		t.Error("other key reported as match")
	}
	if pki.KeyMatchesCertificate(pkitest.Key(t, "p256#other"), leaf) {
		t.Error("other P-256 key reported as match")
	}
}

func TestCheckLeaf(t *testing.T) {
	ca := pkitest.NewRoot(t, "leafcheck")
	now := time.Now()
	tests := []struct {
		name string
		opts pkitest.LeafOptions
		at   time.Time
		want error
	}{
		{"valid", pkitest.LeafOptions{}, now, nil},
		{"rsa-leaf", pkitest.LeafOptions{Key: pkitest.Key(t, pkitest.RSA2048)}, now, nil},
		{"expired", pkitest.LeafOptions{NotBefore: now.Add(-2 * time.Hour), NotAfter: now.Add(-time.Hour)}, now, pki.ErrExpired},
		{"not-yet-valid", pkitest.LeafOptions{NotBefore: now.Add(time.Hour)}, now, pki.ErrNotYetValid},
		{"ca-true", pkitest.LeafOptions{IsCA: true, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign}, now, pki.ErrLeafProfile},
		{"no-digital-signature", pkitest.LeafOptions{KeyUsage: x509.KeyUsageKeyEncipherment}, now, pki.ErrLeafProfile},
		{"no-key-usage", pkitest.LeafOptions{NoKeyUsage: true}, now, pki.ErrLeafProfile},
		{"rsa-1024", pkitest.LeafOptions{Key: pkitest.Key(t, pkitest.RSA1024)}, now, pki.ErrUnsupportedKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := pki.CheckLeaf(ca.Leaf(t, tt.opts), tt.at)
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
	t.Run("sha1-signed", func(t *testing.T) {
		rsaCA := pkitest.NewRootWithKey(t, "rsa-root", pkitest.Key(t, pkitest.RSA3072))
		self := rsaCA.Leaf(t, pkitest.LeafOptions{SignatureAlgorithm: x509.SHA1WithRSA})
		if err := pki.CheckLeaf(self, now); !errors.Is(err, pki.ErrLeafProfile) || !strings.Contains(err.Error(), "SHA1") {
			t.Fatalf("got %v, want a SHA-1 refusal", err)
		}
	})
}
