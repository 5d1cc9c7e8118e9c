package doctor

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"syscall"

	"github.com/keyless-dev/keyless/internal/caclient"
	"github.com/keyless-dev/keyless/internal/pki"
)

// ca reaches the CA over TLS verified with the pinned root alone, and
// notes its Date for the clock check.
func (r *run) ca(ctx context.Context) {
	if r.cfg.CAURL == "" || r.cfg.RootFile == "" {
		r.skip(CheckCA, "no CA configured (--ca-url and --root, or keyless bootstrap)")
		return
	}
	data, err := readSmall(r.cfg.RootFile)
	var roots []*x509.Certificate
	if err == nil {
		roots, err = pki.ParseCertificates(data)
	}
	if err != nil {
		r.add(CheckCA, Fail, fmt.Sprintf("the CA's root %s (%s): %v", r.cfg.RootFile, r.caSource(), err),
			"bootstrap the CA again: keyless bootstrap --ca-url URL --fingerprint SHA256 (keyless ca fingerprint on the CA host)")
		return
	}
	r.caRoot = roots[0]
	client, err := caclient.New(r.cfg.CAURL, r.caRoot, caclient.Options{Timeout: r.cfg.Timeout, Now: r.clk.Now})
	if err != nil {
		r.add(CheckCA, Fail, err.Error(), "give the CA as https://HOST:PORT with --ca-url, or bootstrap it again")
		return
	}
	defer client.CloseIdleConnections()
	ctx, cancel := r.timeout(ctx)
	defer cancel()
	date, err := client.Health(ctx)
	if err != nil {
		r.add(CheckCA, Fail, fmt.Sprintf("%s: %v", r.cfg.CAURL, err), r.caFix(err))
		return
	}
	r.caDate, r.caClient = date, client
	r.ok(CheckCA, "%s answers over TLS that verifies with the pinned root %q (%s)", r.cfg.CAURL, r.caRoot.Subject.CommonName, r.caSource())
}

func (r *run) caFix(err error) string {
	var unknown x509.UnknownAuthorityError
	var certErr *tls.CertificateVerificationError
	var hostErr x509.HostnameError
	var invalid x509.CertificateInvalidError
	var api *caclient.APIError
	switch {
	case errors.As(err, &hostErr):
		return fmt.Sprintf("the CA's TLS certificate is not valid for the host in %s: use the name or address the CA was initialised with (keyless ca init --dns)", r.cfg.CAURL)
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		return "the CA's TLS certificate is expired, or this machine's clock is wrong: check the clock, then restart keyless ca serve (it renews its own certificate)"
	case errors.As(err, &unknown), errors.As(err, &certErr):
		return fmt.Sprintf("the server at %s does not prove itself with the pinned root %s: if the CA was re-initialised, bootstrap it again (keyless bootstrap --ca-url %s --fingerprint $(keyless ca fingerprint)); otherwise something else answers there", r.cfg.CAURL, r.cfg.RootFile, r.cfg.CAURL)
	case errors.As(err, &api):
		return fmt.Sprintf("%s answered, but not as a CA: check that --ca-url points at keyless ca serve or step-ca", r.cfg.CAURL)
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Sprintf("nothing listens at %s: start the CA (keyless ca serve, or systemctl start keyless-ca), or fix --ca-url", r.cfg.CAURL)
	}
	return fmt.Sprintf("check that the CA runs and that this machine reaches %s (host, port, firewall)", r.cfg.CAURL)
}

// caClock compares this machine's clock with the CA's Date: tokens and
// certificates are judged on both.
func (r *run) caClock() {
	switch {
	case r.cfg.CAURL == "" || r.cfg.RootFile == "":
		r.skip(CheckCAClock, "no CA configured")
		return
	case r.status(CheckCA) != OK:
		r.skip(CheckCAClock, "%s", r.failedBefore(CheckCA))
		return
	case r.caDate.IsZero():
		r.add(CheckCAClock, Warn, "the CA sent no Date header", "")
		return
	}
	st, skew := clockSkew(r.now, r.caDate)
	detail := describeSkew(skew, "the CA's")
	switch st {
	case Fail:
		r.add(CheckCAClock, Fail, detail, "set this machine's clock right (timedatectl set-ntp true; chronyc makestep), or the CA host's if that one is wrong: certificates and tokens are judged on both clocks")
	case Warn:
		r.add(CheckCAClock, Warn, detail, "turn on time synchronisation (timedatectl set-ntp true) here and on the CA host")
	default:
		r.ok(CheckCAClock, "%s", detail)
	}
}

// crl looks the certificate up on the CA's CRL, checked against its
// issuer's signature.
func (r *run) crl(ctx context.Context) {
	switch {
	case r.id == nil:
		r.skip(CheckCRL, "%s", r.failedBefore(CheckIdentity))
		return
	case r.cfg.CAURL == "" || r.cfg.RootFile == "":
		r.skip(CheckCRL, "no CA configured")
		return
	case r.caClient == nil:
		r.skip(CheckCRL, "%s", r.failedBefore(CheckCA))
		return
	}
	ctx, cancel := r.timeout(ctx)
	defer cancel()
	defer r.caClient.CloseIdleConnections()
	der, err := r.caClient.CRL(ctx)
	var api *caclient.APIError
	if errors.As(err, &api) && (api.Status == http.StatusNotFound || api.Status == http.StatusNotImplemented) {
		r.skip(CheckCRL, "the CA serves no CRL (%d)", api.Status)
		return
	}
	if err != nil {
		r.add(CheckCRL, Warn, fmt.Sprintf("fetching the CRL: %v", err), "check the CA's log: keyless ca crl on the CA host shows whether it can sign one")
		return
	}
	list, err := x509.ParseRevocationList(der)
	if err != nil {
		r.add(CheckCRL, Warn, err.Error(), "")
		return
	}
	leaf := r.id.Certificate
	if !bytes.Equal(list.RawIssuer, leaf.RawIssuer) {
		r.skip(CheckCRL, "the CA's CRL is issued by %q, not by this certificate's issuer %q", list.Issuer.String(), leaf.Issuer.String())
		return
	}
	issuer := r.issuerOf(leaf)
	if issuer == nil {
		r.skip(CheckCRL, "the certificate's issuer %q is neither sent with it nor the CA's root, so the CRL's signature cannot be checked", leaf.Issuer.String())
		return
	}
	if list.CheckSignatureFrom(issuer) != nil {
		r.add(CheckCRL, Warn, "the CRL's signature does not verify with the certificate's issuer", "check that the CA signs its CRL with the key that issues certificates")
		return
	}
	for _, e := range list.RevokedCertificateEntries {
		if e.SerialNumber.Cmp(leaf.SerialNumber) == 0 {
			r.add(CheckCRL, Fail, fmt.Sprintf("serial %s is revoked since %s on the CA's CRL", leaf.SerialNumber, rfc(e.RevocationTime)),
				r.reenroll()+"; and publish the CRL to AWS so it refuses the old certificate too: keyless ca crl --out ca.crl, then aws rolesanywhere import-crl --name NAME --crl-data fileb://ca.crl --trust-anchor-arn "+r.cfg.Request.TrustAnchorARN+" --enabled (or update-crl)")
			return
		}
	}
	if !list.NextUpdate.IsZero() && r.now.After(list.NextUpdate) {
		r.add(CheckCRL, Warn, fmt.Sprintf("not revoked, but the CRL is stale (next update was due %s)", rfc(list.NextUpdate)), "check that the CA is running and signing CRLs")
		return
	}
	r.ok(CheckCRL, "serial %s is not on the CA's CRL (%d revoked, issued %s)", leaf.SerialNumber, len(list.RevokedCertificateEntries), rfc(list.ThisUpdate))
}

// issuerOf finds leaf's issuer among its intermediates and the CA's root.
func (r *run) issuerOf(leaf *x509.Certificate) *x509.Certificate {
	for _, c := range append(append([]*x509.Certificate{}, r.id.Intermediates...), r.caRoot) {
		if c != nil && bytes.Equal(c.RawSubject, leaf.RawIssuer) && leaf.CheckSignatureFrom(c) == nil {
			return c
		}
	}
	return nil
}
