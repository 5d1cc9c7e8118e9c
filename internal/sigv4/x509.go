package sigv4

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/keyless-dev/keyless/internal/mldsa"
)

// Roles Anywhere's service name and canonical URI.
const (
	// RolesAnywhereService is the service name in an X509 credential
	// scope.
	RolesAnywhereService = "rolesanywhere"
	// X509CanonicalURI is the path an X509 request signs. AWS's helper
	// signs "/sessions" whatever path prefix the endpoint has, so keyless
	// does the same on both sides.
	X509CanonicalURI = "/sessions"
)

// X509Algorithm returns the Roles Anywhere algorithm for a public key.
func X509Algorithm(pub crypto.PublicKey) (string, error) {
	switch pub.(type) {
	case *rsa.PublicKey:
		return AlgorithmRSA, nil
	case *ecdsa.PublicKey:
		return AlgorithmECDSA, nil
	case *mldsa.PublicKey:
		return AlgorithmMLDSA, nil
	default:
		return "", fmt.Errorf("no SigV4-X509 algorithm for %T keys", pub)
	}
}

// X509Signer signs CreateSession requests. Certificate is the end-entity
// certificate of Key; Intermediates go in X-Amz-X509-Chain in order. An
// X509Signer is safe for concurrent use if Key is.
type X509Signer struct {
	Key           crypto.Signer
	Certificate   *x509.Certificate
	Intermediates []*x509.Certificate
}

// Sign sets X-Amz-Date, X-Amz-X509, X-Amz-X509-Chain (or removes it when
// there are no intermediates) and Authorization on req. It signs every
// header present on req at that moment except Authorization, User-Agent
// and X-Amzn-Trace-Id, plus host (req.Host, else req.URL.Host), and body,
// which must be the exact bytes req will send. Callers set Content-Type
// (and any other header they want signed) before calling Sign.
func (s *X509Signer) Sign(req *http.Request, body []byte, region string, now time.Time) error {
	if s.Key == nil || s.Certificate == nil {
		return errors.New("signer needs a key and a certificate")
	}
	alg, err := X509Algorithm(s.Key.Public())
	if err != nil {
		return err
	}
	if region == "" {
		return errors.New("signing needs a region")
	}
	date := now.UTC().Format(TimeFormat)
	req.Header.Set(HeaderDate, date)
	req.Header.Set(HeaderX509, base64.StdEncoding.EncodeToString(s.Certificate.Raw))
	if len(s.Intermediates) > 0 {
		chain := make([]string, len(s.Intermediates))
		for i, c := range s.Intermediates {
			chain[i] = base64.StdEncoding.EncodeToString(c.Raw)
		}
		req.Header.Set(HeaderChain, strings.Join(chain, ","))
	} else {
		req.Header.Del(HeaderChain)
	}
	a := &Authorization{Algorithm: alg, Credential: s.Certificate.SerialNumber.String(), Day: date[:8], Region: region,
		Service: RolesAnywhereService, SignedHeaders: headerNames(req.Header)}
	digest, err := HelperRules.canonicalRequestDigest(req.Method, X509CanonicalURI, req.URL.RawQuery, req.Header, requestHost(req), a.SignedHeaders, PayloadHash(body))
	if err != nil {
		return err
	}
	if a.Signature, err = signStringToSign(s.Key, alg, stringToSign(alg, date, Scope(a.Day, region, a.Service), digest)); err != nil {
		return fmt.Errorf("signing request: %w", err)
	}
	req.Header.Set("Authorization", a.String())
	return nil
}

// X509VerifyOptions say what, beyond the signature, VerifyX509 checks.
type X509VerifyOptions struct {
	// Now is the verifier's clock; the zero time skips the skew check.
	Now time.Time
	// MaxSkew is the allowed distance between X-Amz-Date and Now; zero
	// means DefaultMaxSkew.
	MaxSkew time.Duration
	// Region, when set, must be the scope's region.
	Region string
	// Certificates, when set, remembers parsed certificates across
	// requests (see CertificateCache).
	Certificates *CertificateCache
}

// X509Verified is what a verified X509 request proves.
type X509Verified struct {
	Authorization *Authorization
	Certificate   *x509.Certificate
	Intermediates []*x509.Certificate
	Date          time.Time
}

// VerifyX509 checks that req (whose body is body) was signed by the
// private key of the certificate in its X-Amz-X509 header: the
// Authorization header parses; host, x-amz-date and x-amz-x509 (and
// x-amz-x509-chain when sent) are signed; the Credential serial is the
// certificate's; the scope matches the date, the service and
// opts.Region; the date is within the skew window; the algorithm fits the
// key; and the signature verifies. It does not decide whether the
// certificate is trusted: that is the caller's job, with the returned
// chain.
func VerifyX509(req *http.Request, body []byte, opts X509VerifyOptions) (*X509Verified, error) {
	authz := req.Header.Get("Authorization")
	if authz == "" {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, ErrNoAuthorization)
	}
	a, err := ParseAuthorization(authz, X509Algorithms...)
	if err != nil {
		return nil, err
	}
	check := checkRequest{required: []string{"host", "x-amz-date", "x-amz-x509"}, service: RolesAnywhereService, now: opts.Now, maxSkew: opts.MaxSkew}
	if req.Header.Get(HeaderChain) != "" {
		check.required = append(check.required, "x-amz-x509-chain")
	}
	if opts.Region != "" {
		check.regions = []string{opts.Region}
	}
	if err := check.signedHeaders(req, a); err != nil {
		return nil, err
	}
	parsed, err := opts.Certificates.parse(req.Header.Get(HeaderX509))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrMalformed, HeaderX509, err)
	}
	cert := parsed.cert
	var chain []*x509.Certificate
	if v := req.Header.Get(HeaderChain); v != "" {
		chain = make([]*x509.Certificate, 0, strings.Count(v, ",")+1)
		i := 0
		for part := range strings.SplitSeq(v, ",") {
			i++
			c, err := opts.Certificates.parse(part)
			if err != nil {
				return nil, fmt.Errorf("%w: %s certificate %d: %v", ErrMalformed, HeaderChain, i, err)
			}
			chain = append(chain, c.cert)
		}
	}
	if a.Credential != cert.SerialNumber.String() {
		return nil, fmt.Errorf("%w: Credential has %s, the certificate has %s", ErrSerialMismatch, truncate(a.Credential), cert.SerialNumber)
	}
	date, dateStr, err := check.dateAndScope(req, a)
	if err != nil {
		return nil, err
	}
	pub, err := parsed.pub, parsed.pubErr
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrMalformed, HeaderX509, err)
	}
	alg, err := X509Algorithm(pub)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if alg != a.Algorithm {
		return nil, fmt.Errorf("%w: algorithm %s does not fit the certificate's key (%s)", ErrSignature, a.Algorithm, alg)
	}
	digest, err := HelperRules.canonicalRequestDigest(req.Method, X509CanonicalURI, req.URL.RawQuery, req.Header, requestHost(req), a.SignedHeaders, PayloadHash(body))
	if err != nil {
		return nil, err
	}
	if !verifyStringToSign(pub, stringToSign(a.Algorithm, dateStr, Scope(a.Day, a.Region, a.Service), digest), a.Signature) {
		return nil, fmt.Errorf("%w with the public key of certificate serial %s", ErrSignature, cert.SerialNumber)
	}
	return &X509Verified{Authorization: a, Certificate: cert, Intermediates: chain, Date: date}, nil
}

func parseCertHeader(v string) (*x509.Certificate, error) {
	if v == "" {
		return nil, errors.New("missing")
	}
	der, err := base64.StdEncoding.DecodeString(v)
	if err != nil {
		return nil, errors.New("not standard base64")
	}
	return x509.ParseCertificate(der)
}
