// Package sigv4x509 signs and verifies IAM Roles Anywhere CreateSession
// requests with the SigV4-X509 scheme (AWS4-X509-RSA-SHA256 and
// AWS4-X509-ECDSA-SHA256): SigV4's canonical request and string to sign,
// signed with the private key of an X.509 certificate that travels in the
// X-Amz-X509 header. The output is byte-identical to AWS's own credential
// helper (v1.4.0), which the interop tests check.
//
// It does nothing else: no HTTP round trips, no policy, no trust decisions
// beyond "this certificate's key made this signature". The CreateSession
// client and the emulator build on it.
package sigv4x509

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"
)

// Names and formats of the scheme.
const (
	AlgorithmRSA   = "AWS4-X509-RSA-SHA256"
	AlgorithmECDSA = "AWS4-X509-ECDSA-SHA256"
	// Service is the service name in the credential scope.
	Service = "rolesanywhere"
	// TimeFormat is the X-Amz-Date layout.
	TimeFormat = "20060102T150405Z"
	// CanonicalURI is the path that is signed. AWS's helper signs
	// "/sessions" whatever path prefix the endpoint has, so keyless does
	// the same on both sides.
	CanonicalURI = "/sessions"

	HeaderDate  = "X-Amz-Date"
	HeaderX509  = "X-Amz-X509"
	HeaderChain = "X-Amz-X509-Chain"
)

// unsignedHeaders are never signed, as in AWS's helper: proxies and the
// transport may rewrite them.
var unsignedHeaders = map[string]bool{
	"authorization":   true,
	"user-agent":      true,
	"x-amzn-trace-id": true,
}

// Algorithm returns the SigV4-X509 algorithm name for a public key.
func Algorithm(pub crypto.PublicKey) (string, error) {
	switch pub.(type) {
	case *rsa.PublicKey:
		return AlgorithmRSA, nil
	case *ecdsa.PublicKey:
		return AlgorithmECDSA, nil
	default:
		return "", fmt.Errorf("no SigV4-X509 algorithm for %T keys", pub)
	}
}

// Signer signs CreateSession requests. Certificate is the end-entity
// certificate of Key; Intermediates go in X-Amz-X509-Chain in order.
// A Signer is safe for concurrent use if Key is.
type Signer struct {
	Key           crypto.Signer
	Certificate   *x509.Certificate
	Intermediates []*x509.Certificate
}

// Sign sets X-Amz-Date, X-Amz-X509, X-Amz-X509-Chain (or removes it when
// there are no intermediates) and Authorization on req. It signs every
// header present on req at that moment except Authorization, User-Agent and
// X-Amzn-Trace-Id, plus host (req.Host, else req.URL.Host), and body, which
// must be the exact bytes req will send. Callers set Content-Type (and any
// other header they want signed) before calling Sign.
func (s *Signer) Sign(req *http.Request, body []byte, region string, now time.Time) error {
	if s.Key == nil || s.Certificate == nil {
		return errors.New("signer needs a key and a certificate")
	}
	alg, err := Algorithm(s.Key.Public())
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

	host := requestHost(req)
	names := headerNames(req.Header)
	canonical, err := CanonicalRequest(req.Method, req.URL.RawQuery, req.Header, host, names, PayloadHash(body))
	if err != nil {
		return err
	}
	scope := Scope(date[:8], region)
	sts := StringToSign(alg, date, scope, canonical)
	sig, err := signDigest(s.Key, sts)
	if err != nil {
		return fmt.Errorf("signing request: %w", err)
	}
	req.Header.Set("Authorization", fmt.Sprintf("%s Credential=%s/%s, SignedHeaders=%s, Signature=%s",
		alg, s.Certificate.SerialNumber.String(), scope, strings.Join(names, ";"), hex.EncodeToString(sig)))
	return nil
}

// signDigest signs the SHA-256 of the string to sign: PKCS#1 v1.5 for RSA
// (deterministic), ASN.1 DER (r, s) for ECDSA.
func signDigest(key crypto.Signer, stringToSign string) ([]byte, error) {
	sum := sha256.Sum256([]byte(stringToSign))
	return key.Sign(rand.Reader, sum[:], crypto.SHA256)
}

// Scope returns the credential scope for a YYYYMMDD date and region.
func Scope(day, region string) string {
	return day + "/" + region + "/" + Service + "/aws4_request"
}

// PayloadHash returns the lowercase hex SHA-256 of body.
func PayloadHash(body []byte) string {
	sum := sha256.Sum256(body)
	return hex.EncodeToString(sum[:])
}

// StringToSign joins the algorithm, date, scope and the hex SHA-256 of the
// canonical request, one per line.
func StringToSign(algorithm, date, scope, canonicalRequest string) string {
	sum := sha256.Sum256([]byte(canonicalRequest))
	return algorithm + "\n" + date + "\n" + scope + "\n" + hex.EncodeToString(sum[:])
}

// CanonicalRequest builds the SigV4 canonical request (no trailing
// newline) for the signed header names, which must be lower-case and
// sorted. The host header's value is host; every other value comes from
// header, multiple values joined by ",", trimmed, with inner runs of
// spaces collapsed to one.
func CanonicalRequest(method, rawQuery string, header http.Header, host string, signed []string, payloadHash string) (string, error) {
	query, err := CanonicalQuery(rawQuery)
	if err != nil {
		return "", err
	}
	lower := make(map[string][]string, len(header))
	for k, v := range header {
		l := strings.ToLower(k)
		lower[l] = append(lower[l], v...)
	}
	var b strings.Builder
	b.WriteString(method)
	b.WriteString("\n")
	b.WriteString(CanonicalURI)
	b.WriteString("\n")
	b.WriteString(query)
	b.WriteString("\n")
	for _, name := range signed {
		var value string
		if name == "host" {
			value = host
		} else {
			value = strings.Join(lower[name], ",")
		}
		b.WriteString(name)
		b.WriteString(":")
		b.WriteString(collapseSpaces(value))
		b.WriteString("\n")
	}
	b.WriteString("\n")
	b.WriteString(strings.Join(signed, ";"))
	b.WriteString("\n")
	b.WriteString(payloadHash)
	return b.String(), nil
}

// CanonicalQuery returns the query with keys sorted and keys and values
// percent-encoded as SigV4 wants (space as %20, never +).
func CanonicalQuery(rawQuery string) (string, error) {
	if rawQuery == "" {
		return "", nil
	}
	values, err := url.ParseQuery(rawQuery)
	if err != nil {
		return "", fmt.Errorf("parsing query string: %w", err)
	}
	return strings.ReplaceAll(values.Encode(), "+", "%20"), nil
}

// headerNames returns the lower-cased, sorted names of the headers to sign.
func headerNames(h http.Header) []string {
	names := []string{"host"}
	for k := range h {
		l := strings.ToLower(k)
		if unsignedHeaders[l] || l == "host" {
			continue
		}
		names = append(names, l)
	}
	sort.Strings(names)
	return names
}

func requestHost(req *http.Request) string {
	if req.Host != "" {
		return req.Host
	}
	return req.URL.Host
}

// collapseSpaces trims leading and trailing spaces and turns each inner
// run of spaces into one, as SigV4 canonical headers require.
func collapseSpaces(s string) string {
	s = strings.Trim(s, " ")
	if !strings.Contains(s, "  ") {
		return s
	}
	var b strings.Builder
	space := false
	for i := 0; i < len(s); i++ {
		if s[i] == ' ' {
			if !space {
				b.WriteByte(' ')
			}
			space = true
			continue
		}
		space = false
		b.WriteByte(s[i])
	}
	return b.String()
}
