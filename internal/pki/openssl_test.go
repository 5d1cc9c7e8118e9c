package pki_test

import (
	"crypto"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keyless-dev/keyless/internal/pki"
	"github.com/keyless-dev/keyless/internal/pki/pkitest"
	"github.com/keyless-dev/keyless/internal/testkit"
)

// These tests read files written by the real openssl command, the tool
// users make their keys with, so the parsers are checked against what
// OpenSSL 3 actually writes and not only against Go's own encoders.

func openssl(t *testing.T, dir string, args ...string) {
	t.Helper()
	bin := testkit.LookPath(t, "openssl", "the openssl package")
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func read(t *testing.T, dir, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestOpenSSLKeys(t *testing.T) {
	dir := t.TempDir()
	openssl(t, dir, "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", "rsa-pkcs8.pem")
	openssl(t, dir, "rsa", "-in", "rsa-pkcs8.pem", "-traditional", "-out", "rsa-pkcs1.pem")
	openssl(t, dir, "ecparam", "-name", "prime256v1", "-genkey", "-out", "p256-with-params.pem")
	openssl(t, dir, "ecparam", "-name", "secp384r1", "-genkey", "-noout", "-out", "p384-sec1.pem")
	openssl(t, dir, "pkcs8", "-topk8", "-nocrypt", "-in", "p384-sec1.pem", "-out", "p384-pkcs8.pem")
	openssl(t, dir, "pkcs8", "-topk8", "-nocrypt", "-in", "rsa-pkcs8.pem", "-outform", "DER", "-out", "rsa-pkcs8.der")

	plain := map[string]string{
		"rsa-pkcs8.pem":        "rsa-pkcs8.pem",
		"rsa-pkcs1.pem":        "rsa-pkcs8.pem",
		"rsa-pkcs8.der":        "rsa-pkcs8.pem",
		"p256-with-params.pem": "p256-with-params.pem",
		"p384-sec1.pem":        "p384-sec1.pem",
		"p384-pkcs8.pem":       "p384-sec1.pem",
	}
	parsed := map[string]crypto.Signer{}
	for name := range plain {
		k, err := pki.ParsePrivateKey(read(t, dir, name), nil)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		parsed[name] = k
	}
	for name, same := range plain {
		sameKey(t, parsed[name], parsed[same])
	}

	// Encrypted PKCS#8 as `openssl pkcs8 -topk8` writes it with each KDF.
	encrypted := map[string][]string{
		"enc-pbkdf2-sha256-aes256.pem": {"-v2", "aes-256-cbc", "-v2prf", "hmacWithSHA256"},
		"enc-pbkdf2-sha1-aes128.pem":   {"-v2", "aes-128-cbc", "-v2prf", "hmacWithSHA1"},
		"enc-scrypt-aes256.pem":        {"-v2", "aes-256-cbc", "-scrypt"},
		"enc-default.pem":              {},
	}
	for name, opts := range encrypted {
		for _, src := range []string{"rsa-pkcs8.pem", "p384-sec1.pem"} {
			out := src + "-" + name
			args := append([]string{"pkcs8", "-topk8", "-in", src, "-out", out, "-passout", "pass:correct horse"}, opts...)
			openssl(t, dir, args...)
			t.Run(out, func(t *testing.T) {
				k, err := pki.ParsePrivateKey(read(t, dir, out), password("correct horse"))
				if err != nil {
					t.Fatal(err)
				}
				sameKey(t, k, parsed[src])
				if _, err := pki.ParsePrivateKey(read(t, dir, out), password("battery staple")); !errors.Is(err, pki.ErrIncorrectPassword) {
					t.Fatalf("wrong password: got %v", err)
				}
			})
		}
	}

	t.Run("pbes1-refused-with-advice", func(t *testing.T) {
		openssl(t, dir, "pkcs8", "-topk8", "-in", "p384-sec1.pem", "-v1", "PBE-SHA1-3DES", "-out", "pbes1.pem", "-passout", "pass:pw")
		_, err := pki.ParsePrivateKey(read(t, dir, "pbes1.pem"), password("pw"))
		if !errors.Is(err, pki.ErrUnsupportedEncryption) || !strings.Contains(err.Error(), "-v2 aes-256-cbc") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("legacy-pem-encryption-refused-with-advice", func(t *testing.T) {
		openssl(t, dir, "ec", "-in", "p384-sec1.pem", "-aes256", "-out", "legacy.pem", "-passout", "pass:pw")
		_, err := pki.ParsePrivateKey(read(t, dir, "legacy.pem"), password("pw"))
		if !errors.Is(err, pki.ErrUnsupportedEncryption) || !strings.Contains(err.Error(), "openssl pkcs8 -topk8") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("ed25519-refused", func(t *testing.T) {
		openssl(t, dir, "genpkey", "-algorithm", "ed25519", "-out", "ed.pem")
		if _, err := pki.ParsePrivateKey(read(t, dir, "ed.pem"), nil); !errors.Is(err, pki.ErrUnsupportedKey) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("p521-refused", func(t *testing.T) {
		openssl(t, dir, "ecparam", "-name", "secp521r1", "-genkey", "-noout", "-out", "p521.pem")
		if _, err := pki.ParsePrivateKey(read(t, dir, "p521.pem"), nil); !errors.Is(err, pki.ErrUnsupportedKey) {
			t.Fatalf("got %v", err)
		}
	})
}

// An encrypted PKCS#12 file without a MAC cannot be read (the decoder only
// reads MAC-less files that are not encrypted); the error says so and how
// to re-export, instead of asking for a password that cannot help.
func TestOpenSSLPKCS12WithoutMAC(t *testing.T) {
	dir := t.TempDir()
	openssl(t, dir, "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "k.pem")
	openssl(t, dir, "req", "-x509", "-new", "-key", "k.pem", "-subj", "/CN=gitlab-runner", "-days", "1", "-out", "c.pem")
	openssl(t, dir, "pkcs12", "-export", "-inkey", "k.pem", "-in", "c.pem", "-nomac", "-passout", "pass:pw", "-out", "nomac.p12")
	asked := false
	_, err := pki.ParsePKCS12(read(t, dir, "nomac.p12"), func() ([]byte, error) { asked = true; return []byte("pw"), nil })
	if !errors.Is(err, pki.ErrUnsupportedEncryption) || !strings.Contains(err.Error(), "export it again with a MAC") || asked {
		t.Fatalf("got %v (asked for a password: %v)", err, asked)
	}
}

func TestOpenSSLPKCS12(t *testing.T) {
	dir := t.TempDir()
	openssl(t, dir, "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "ca.key")
	openssl(t, dir, "req", "-x509", "-new", "-key", "ca.key", "-subj", "/CN=test root", "-days", "2", "-out", "ca.pem")
	for _, kind := range []string{"rsa", "ec"} {
		key := kind + ".key"
		if kind == "rsa" {
			openssl(t, dir, "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", key)
		} else {
			openssl(t, dir, "ecparam", "-name", "secp384r1", "-genkey", "-noout", "-out", key)
		}
		openssl(t, dir, "req", "-new", "-key", key, "-subj", "/CN=gitlab-runner", "-out", kind+".csr")
		openssl(t, dir, "x509", "-req", "-in", kind+".csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-days", "1", "-out", kind+".pem")
		want, err := pki.ParsePrivateKey(read(t, dir, key), nil)
		if err != nil {
			t.Fatal(err)
		}
		files := map[string][]string{
			"openssl3-default": {"-passout", "pass:p12pass"},
			"legacy":           {"-legacy", "-passout", "pass:p12pass"},
			"empty-password":   {"-passout", "pass:"},
			"no-encryption":    {"-keypbe", "NONE", "-certpbe", "NONE", "-passout", "pass:"},
		}
		for name, opts := range files {
			out := kind + "-" + name + ".p12"
			args := append([]string{"pkcs12", "-export", "-inkey", key, "-in", kind + ".pem", "-certfile", "ca.pem", "-out", out}, opts...)
			openssl(t, dir, args...)
			t.Run(out, func(t *testing.T) {
				data := read(t, dir, out)
				if !pki.IsPKCS12(data) {
					t.Fatal("IsPKCS12 = false")
				}
				id, err := pki.ParsePKCS12(data, password("p12pass"))
				if err != nil {
					t.Fatal(err)
				}
				sameKey(t, id.Key, want)
				if id.Certificate.Subject.CommonName != "gitlab-runner" || len(id.Intermediates) != 1 {
					t.Fatalf("leaf %q with %d other certificates", id.Certificate.Subject.CommonName, len(id.Intermediates))
				}
				if strings.Contains(name, "default") || name == "legacy" {
					if _, err := pki.ParsePKCS12(data, password("nope")); !errors.Is(err, pki.ErrIncorrectPassword) {
						t.Fatalf("wrong password: got %v", err)
					}
				}
			})
		}
	}
}

// TestEncryptPrivateKeyOpenSSL: CA keys keyless encrypts are read by
// OpenSSL 3 with the password, refused without it, and decrypted by
// ParsePrivateKey.
func TestEncryptPrivateKeyOpenSSL(t *testing.T) {
	dir := t.TempDir()
	for _, kind := range []string{pkitest.P256, pkitest.RSA2048} {
		key := pkitest.Key(t, kind)
		enc, err := pki.EncryptPrivateKey(key, []byte("pw"))
		if err != nil {
			t.Fatal(err)
		}
		pkitest.WriteFile(t, dir, kind+".key", enc)
		openssl(t, dir, "pkey", "-in", kind+".key", "-passin", "pass:pw", "-noout")
		got, err := pki.ParsePrivateKey(enc, func() ([]byte, error) { return []byte("pw"), nil })
		if err != nil || !got.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(key.Public()) {
			t.Errorf("%s: ParsePrivateKey: %v", kind, err)
		}
		if _, err := pki.ParsePrivateKey(enc, func() ([]byte, error) { return []byte("wrong"), nil }); !errors.Is(err, pki.ErrIncorrectPassword) {
			t.Errorf("%s: wrong password gave %v", kind, err)
		}
	}
	if _, err := pki.EncryptPrivateKey(pkitest.Key(t, pkitest.P256), nil); err == nil {
		t.Error("an empty password was accepted")
	}
}
