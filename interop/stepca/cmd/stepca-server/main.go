// Command stepca-server runs smallstep's step-ca v0.30.2 server (the
// module github.com/smallstep/certificates this interop module already
// depends on) from a ca.json, the way step-ca's own main does: load the
// configuration, build the CA with the password for the intermediate key,
// and serve until SIGTERM or SIGINT. It exists so cabench can measure
// step-ca as a separate process without building smallstep's cmd/step-ca,
// which links every KMS and CAS plugin (Azure, Vault, PKCS#11, ...).
//
// Usage:
//
//	stepca-server -config step/config/ca.json -password-file step-password
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"github.com/smallstep/certificates/authority/config"
	"github.com/smallstep/certificates/ca"
)

func main() {
	cfgFile := flag.String("config", "", "step-ca's ca.json (required)")
	pwFile := flag.String("password-file", "", "file holding the password of the intermediate key (required)")
	flag.Parse()
	if *cfgFile == "" || *pwFile == "" || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: stepca-server -config ca.json -password-file FILE")
		os.Exit(2)
	}
	if err := run(*cfgFile, *pwFile); err != nil {
		fmt.Fprintln(os.Stderr, "stepca-server:", err)
		os.Exit(1)
	}
}

func run(cfgFile, pwFile string) error {
	pw, err := os.ReadFile(pwFile)
	if err != nil {
		return err
	}
	pw = bytes.TrimRight(bytes.SplitN(pw, []byte("\n"), 2)[0], "\r")
	cfg, err := config.LoadConfiguration(cfgFile)
	if err != nil {
		return fmt.Errorf("loading %s: %w", cfgFile, err)
	}
	srv, err := ca.New(cfg, ca.WithConfigFile(cfgFile), ca.WithPassword(pw))
	if err != nil {
		return fmt.Errorf("step-ca ca.New: %w", err)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	exited := make(chan error, 1)
	go func() { exited <- srv.Run() }()
	select {
	case err := <-exited:
		return err
	case <-sig:
	}
	if err := srv.Stop(); err != nil {
		return err
	}
	if err := <-exited; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
