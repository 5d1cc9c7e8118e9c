package cli

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/keyless-dev/keyless/internal/identity"
	"github.com/keyless-dev/keyless/internal/pki"
)

// keyFlags are the flags that name a certificate and key, shared by the
// commands that sign.
type keyFlags struct {
	certificate   string
	privateKey    string
	intermediates string
	password      string
	passwordFile  string
}

// AWS's helper reads keys from PKCS#11 tokens, TPMs and OS certificate
// stores; keyless does not yet. Its flags are accepted, hidden, so that
// the error says so instead of "unknown flag".
var (
	unsupportedFlags     = []string{"cert-selector", "system-store-name", "pkcs11-lib", "tpm-key-password"}
	unsupportedBoolFlags = []string{"reuse-pin", "no-tpm-key-password"}
)

func (k *keyFlags) register(fs *pflag.FlagSet, certHelp, keyHelp string, chain bool) {
	fs.StringVar(&k.certificate, "certificate", "", certHelp)
	fs.StringVar(&k.privateKey, "private-key", "", keyHelp)
	if chain {
		fs.StringVar(&k.intermediates, "intermediates", "", "path to a PEM bundle of intermediate CA certificates, sent in X-Amz-X509-Chain (default: any certificates after the leaf in --certificate)")
	}
	fs.StringVar(&k.password, "pkcs8-password", "", "password of an encrypted private key or PKCS#12 file (visible to other users in the process list: prefer --pkcs8-password-file or KEYLESS_PKCS8_PASSWORD)")
	fs.StringVar(&k.passwordFile, "pkcs8-password-file", "", "file holding the password of an encrypted private key or PKCS#12 file (one trailing newline is ignored)")

	for _, name := range unsupportedFlags {
		fs.String(name, "", "not supported by keyless")
		_ = fs.MarkHidden(name)
	}
	for _, name := range unsupportedBoolFlags {
		fs.Bool(name, false, "not supported by keyless")
		_ = fs.MarkHidden(name)
	}
}

// check refuses AWS helper flags keyless does not implement and
// contradictory password flags.
func (k *keyFlags) check(fs *pflag.FlagSet) error {
	for _, name := range append(unsupportedFlags, unsupportedBoolFlags...) {
		if f := fs.Lookup(name); f != nil && f.Changed {
			return usageErrorf("--%s: keyless reads keys from files only (PKCS#11, TPM and OS certificate stores are not supported yet); use --certificate and --private-key", name)
		}
	}
	if strings.HasPrefix(k.privateKey, "pkcs11:") || strings.HasPrefix(k.privateKey, "handle:") || strings.HasPrefix(k.certificate, "pkcs11:") {
		return usageErrorf("--private-key %q: keyless reads keys from files only (PKCS#11 and TPM keys are not supported yet)", k.privateKey)
	}
	if k.password != "" && k.passwordFile != "" {
		return usageErrorf("--pkcs8-password and --pkcs8-password-file both given; use one")
	}
	return nil
}

func (k *keyFlags) files() identity.Files {
	return identity.Files{Certificate: k.certificate, PrivateKey: k.privateKey, Intermediates: k.intermediates}
}

// passwordFunc returns the password from the flag, the password file, or
// a prompt on the controlling terminal, in that order. It is only called
// for encrypted files.
func (k *keyFlags) passwordFunc() identity.PasswordFunc {
	return func(path string) ([]byte, error) {
		if k.password != "" {
			return []byte(k.password), nil
		}
		if k.passwordFile != "" {
			return readPasswordFile("--pkcs8-password-file", k.passwordFile)
		}
		return promptPassword(path)
	}
}

// readPasswordFile reads a password from the file a flag names: the
// first line, without its line ending.
func readPasswordFile(flag, path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, withHint(fmt.Errorf("%s: %w", flag, err), "the file must exist and be readable by the user running keyless")
	}
	data = bytes.TrimSuffix(data, []byte("\n"))
	data = bytes.TrimSuffix(data, []byte("\r"))
	if len(data) == 0 {
		return nil, withHint(fmt.Errorf("%s %s is empty", flag, path), "write the password into the file")
	}
	return data, nil
}

// promptPassword asks on /dev/tty, not on stdin or stdout, which belong to
// the program that runs keyless (the AWS CLI reads credential_process's
// stdout). Without a terminal the key cannot be decrypted.
func promptPassword(path string) ([]byte, error) {
	tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil {
		return nil, pki.ErrPasswordRequired
	}
	defer tty.Close()
	if !term.IsTerminal(int(tty.Fd())) {
		return nil, pki.ErrPasswordRequired
	}
	fmt.Fprintf(tty, "keyless: password for %s: ", path)
	pw, err := term.ReadPassword(int(tty.Fd()))
	fmt.Fprintln(tty)
	if err != nil {
		return nil, fmt.Errorf("reading the password from the terminal: %w", err)
	}
	if len(pw) == 0 {
		return nil, errors.Join(pki.ErrPasswordRequired, errors.New("an empty password was typed"))
	}
	return pw, nil
}
