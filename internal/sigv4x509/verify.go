package sigv4x509

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
)

// Verification errors. Each says which rule failed, so a server can tell
// the client (and its log) exactly why a request was refused.
var (
	// ErrMalformed means a header is missing or does not parse.
	ErrMalformed = errors.New("malformed SigV4-X509 request")
	// ErrSignedHeaders means a header that must be signed is not.
	ErrSignedHeaders = errors.New("required header not signed")
	// ErrSerialMismatch means the Credential serial is not the
	// certificate's serial.
	ErrSerialMismatch = errors.New("credential serial does not match the certificate")
	// ErrScope means the credential scope disagrees with the date, the
	// service or the expected region.
	ErrScope = errors.New("credential scope mismatch")
	// ErrClockSkew means X-Amz-Date is too far from the verifier's clock.
	ErrClockSkew = errors.New("request date outside the allowed clock skew")
	// ErrSignature means the signature does not verify with the
	// certificate's public key.
	ErrSignature = errors.New("signature does not verify")
)

// DefaultMaxSkew is the clock-skew window of standard SigV4, which Roles
// Anywhere is taken to use too.
const DefaultMaxSkew = 5 * time.Minute

// Authorization is a parsed SigV4-X509 Authorization header.
type Authorization struct {
	Algorithm     string
	Serial        string // decimal
	Day           string // YYYYMMDD
	Region        string
	Service       string
	SignedHeaders []string
	Signature     []byte
}

// ParseAuthorization parses "<algorithm> Credential=<serial>/<day>/<region>/
// <service>/aws4_request, SignedHeaders=<a;b>, Signature=<hex>".
func ParseAuthorization(s string) (*Authorization, error) {
	alg, rest, ok := strings.Cut(s, " ")
	if !ok {
		return nil, fmt.Errorf("%w: Authorization has no credentials after the algorithm", ErrMalformed)
	}
	if alg != AlgorithmRSA && alg != AlgorithmECDSA {
		return nil, fmt.Errorf("%w: unknown algorithm %q (want %s or %s)", ErrMalformed, truncate(alg), AlgorithmRSA, AlgorithmECDSA)
	}
	a := &Authorization{Algorithm: alg}
	seen := map[string]bool{}
	for _, part := range strings.Split(rest, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || seen[k] {
			return nil, fmt.Errorf("%w: Authorization component %q", ErrMalformed, truncate(part))
		}
		seen[k] = true
		switch k {
		case "Credential":
			fields := strings.Split(v, "/")
			if len(fields) != 5 || fields[4] != "aws4_request" {
				return nil, fmt.Errorf("%w: Credential must be serial/date/region/service/aws4_request", ErrMalformed)
			}
			if !isDecimal(fields[0]) {
				return nil, fmt.Errorf("%w: Credential serial %q is not a decimal number", ErrMalformed, truncate(fields[0]))
			}
			a.Serial, a.Day, a.Region, a.Service = fields[0], fields[1], fields[2], fields[3]
		case "SignedHeaders":
			a.SignedHeaders = strings.Split(v, ";")
			for i, h := range a.SignedHeaders {
				if h == "" || h != strings.ToLower(h) || (i > 0 && a.SignedHeaders[i-1] >= h) {
					return nil, fmt.Errorf("%w: SignedHeaders must be lower-case, sorted and unique", ErrMalformed)
				}
			}
		case "Signature":
			sig, err := hex.DecodeString(v)
			if err != nil || len(sig) == 0 {
				return nil, fmt.Errorf("%w: Signature is not hex", ErrMalformed)
			}
			a.Signature = sig
		default:
			return nil, fmt.Errorf("%w: unknown Authorization component %q", ErrMalformed, truncate(k))
		}
	}
	if !seen["Credential"] || !seen["SignedHeaders"] || !seen["Signature"] {
		return nil, fmt.Errorf("%w: Authorization needs Credential, SignedHeaders and Signature", ErrMalformed)
	}
	return a, nil
}

// VerifyOptions say what, beyond the signature, Verify checks.
type VerifyOptions struct {
	// Now is the verifier's clock; the zero time skips the skew check.
	Now time.Time
	// MaxSkew is the allowed distance between X-Amz-Date and Now;
	// zero means DefaultMaxSkew.
	MaxSkew time.Duration
	// Region, when set, must be the scope's region.
	Region string
}

// Verified is what a verified request proves.
type Verified struct {
	Authorization *Authorization
	Certificate   *x509.Certificate
	Intermediates []*x509.Certificate
	Date          time.Time
}

// Verify checks that req (whose body is body) was signed by the private
// key of the certificate in its X-Amz-X509 header: the Authorization
// header parses; host, x-amz-date and x-amz-x509 (and x-amz-x509-chain
// when sent) are signed; the Credential serial is the certificate's; the
// scope matches the date, the service and opts.Region; the date is within
// the skew window; the algorithm fits the key; and the signature verifies.
// It does not decide whether the certificate is trusted: that is the
// caller's job, with the returned chain.
func Verify(req *http.Request, body []byte, opts VerifyOptions) (*Verified, error) {
	authz := req.Header.Get("Authorization")
	if authz == "" {
		return nil, fmt.Errorf("%w: no Authorization header", ErrMalformed)
	}
	a, err := ParseAuthorization(authz)
	if err != nil {
		return nil, err
	}
	required := []string{"host", "x-amz-date", "x-amz-x509"}
	if req.Header.Get(HeaderChain) != "" {
		required = append(required, "x-amz-x509-chain")
	}
	for _, h := range required {
		if !slices.Contains(a.SignedHeaders, h) {
			return nil, fmt.Errorf("%w: %s is not in SignedHeaders", ErrSignedHeaders, h)
		}
	}
	for _, h := range a.SignedHeaders {
		if h != "host" && len(req.Header.Values(h)) == 0 {
			return nil, fmt.Errorf("%w: signed header %s is not in the request", ErrMalformed, truncate(h))
		}
	}

	cert, err := parseCertHeader(req.Header.Get(HeaderX509))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrMalformed, HeaderX509, err)
	}
	var chain []*x509.Certificate
	if v := req.Header.Get(HeaderChain); v != "" {
		for i, part := range strings.Split(v, ",") {
			c, err := parseCertHeader(part)
			if err != nil {
				return nil, fmt.Errorf("%w: %s certificate %d: %v", ErrMalformed, HeaderChain, i+1, err)
			}
			chain = append(chain, c)
		}
	}
	if a.Serial != cert.SerialNumber.String() {
		return nil, fmt.Errorf("%w: Credential has %s, the certificate has %s", ErrSerialMismatch, truncate(a.Serial), cert.SerialNumber)
	}

	dateStr := req.Header.Get(HeaderDate)
	date, err := time.Parse(TimeFormat, dateStr)
	if err != nil {
		return nil, fmt.Errorf("%w: %s %q is not YYYYMMDDTHHMMSSZ", ErrMalformed, HeaderDate, truncate(dateStr))
	}
	if a.Day != dateStr[:8] {
		return nil, fmt.Errorf("%w: scope date %s is not the date of %s %s", ErrScope, truncate(a.Day), HeaderDate, dateStr)
	}
	if a.Service != Service {
		return nil, fmt.Errorf("%w: scope service %q, want %q", ErrScope, truncate(a.Service), Service)
	}
	if opts.Region != "" && a.Region != opts.Region {
		return nil, fmt.Errorf("%w: scope region %q, want %q", ErrScope, truncate(a.Region), opts.Region)
	}
	if !opts.Now.IsZero() {
		skew := opts.MaxSkew
		if skew == 0 {
			skew = DefaultMaxSkew
		}
		if d := opts.Now.Sub(date); d > skew || d < -skew {
			return nil, fmt.Errorf("%w: %s is %s, the server's clock says %s (allowed: %s)", ErrClockSkew, HeaderDate, dateStr, opts.Now.UTC().Format(TimeFormat), skew)
		}
	}

	alg, err := Algorithm(cert.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if alg != a.Algorithm {
		return nil, fmt.Errorf("%w: algorithm %s does not fit the certificate's key (%s)", ErrSignature, a.Algorithm, alg)
	}
	canonical, err := CanonicalRequest(req.Method, req.URL.RawQuery, req.Header, requestHost(req), a.SignedHeaders, PayloadHash(body))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	sum := sha256.Sum256([]byte(StringToSign(a.Algorithm, dateStr, Scope(a.Day, a.Region), canonical)))
	ok := false
	switch pub := cert.PublicKey.(type) {
	case *rsa.PublicKey:
		ok = rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], a.Signature) == nil
	case *ecdsa.PublicKey:
		ok = ecdsa.VerifyASN1(pub, sum[:], a.Signature)
	}
	if !ok {
		return nil, fmt.Errorf("%w with the public key of certificate serial %s", ErrSignature, cert.SerialNumber)
	}
	return &Verified{Authorization: a, Certificate: cert, Intermediates: chain, Date: date}, nil
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

func isDecimal(s string) bool {
	if s == "" || (len(s) > 1 && s[0] == '0') {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// truncate keeps attacker-supplied text in errors short (callers quote
// it with %q, which escapes anything unprintable).
func truncate(s string) string {
	if len(s) > 64 {
		return strings.ToValidUTF8(s[:64], "") + "..."
	}
	return s
}
