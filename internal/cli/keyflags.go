package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/keyless-dev/keyless/internal/identity"
	"github.com/keyless-dev/keyless/internal/pki"
	"github.com/keyless-dev/keyless/internal/secretfile"
)

// keyFlags are the flags that name a certificate and key, shared by the
// commands that sign.
type keyFlags struct {
	certificate   string
	privateKey    string
	intermediates string
	password      string
	passwordFile  string
	stdin         io.Reader // for --pkcs8-password-file -
}

// AWS's helper reads keys from PKCS#11 tokens, TPMs and OS certificate
// stores; keyless does not yet. Its flags are accepted, hidden, so that
// the error says so instead of "unknown flag".
var (
	unsupportedFlags     = []string{"cert-selector", "system-store-name", "pkcs11-lib", "tpm-key-password"}
	unsupportedBoolFlags = []string{"reuse-pin", "no-tpm-key-password"}
)

func (k *keyFlags) register(fs *pflag.FlagSet, stdin io.Reader, certHelp, keyHelp string, chain bool) {
	k.stdin = stdin
	fs.StringVar(&k.certificate, "certificate", "", certHelp)
	fs.StringVar(&k.privateKey, "private-key", "", keyHelp)
	if chain {
		fs.StringVar(&k.intermediates, "intermediates", "", "path to a PEM bundle of intermediate CA certificates, sent in X-Amz-X509-Chain (default: any certificates after the leaf in --certificate)")
	}
	// AWS's helper takes the password itself; keyless still does, so a
	// configuration can switch by one word, but warns: see secretFlag.
	fs.StringVar(&k.password, "pkcs8-password", "", "the password of an encrypted key, for drop-in use only: other users can read it in the process list, so keyless warns (use --pkcs8-password-file or KEYLESS_PKCS8_PASSWORD)")
	secretFlag(fs, "pkcs8-password", false, "--pkcs8-password-file FILE (- for standard input) or the KEYLESS_PKCS8_PASSWORD environment variable")
	fs.StringVar(&k.passwordFile, "pkcs8-password-file", "", "`file` holding the password of an encrypted private key or PKCS#12 file on its first line (- reads standard input); it must be yours and mode 0600")

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
			return secretfile.Read("--pkcs8-password-file", k.passwordFile, k.stdin)
		}
		return promptPassword(path)
	}
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
