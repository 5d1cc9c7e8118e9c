package emulator

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/keyless-dev/keyless/internal/sigv4x509"
)

const (
	stsVersion   = "2011-06-15"
	stsNamespace = "https://sts.amazonaws.com/doc/2011-06-15/"
	hmacAlg      = "AWS4-HMAC-SHA256"
	amzDate      = "20060102T150405Z"
)

type stsError struct {
	status        int
	typ, code     string
	message, rule string
}

func (e *Emulator) sts(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		e.writeSTSError(w, &stsError{status: http.StatusBadRequest, typ: "Sender", code: "InvalidParameterValue", message: "The request body could not be read or is too large"})
		return
	}
	out, fail := e.handleSTS(r, body)
	if fail != nil {
		e.log.Warn("STS refused", "code", fail.code, "rule", fail.rule, "message", fail.message)
		e.writeSTSError(w, fail)
		return
	}
	w.Header().Set("Content-Type", "text/xml")
	_, _ = w.Write(out)
}

type callerIdentityResponse struct {
	XMLName xml.Name `xml:"GetCallerIdentityResponse"`
	Xmlns   string   `xml:"xmlns,attr"`
	Result  struct {
		Arn     string `xml:"Arn"`
		UserID  string `xml:"UserId"`
		Account string `xml:"Account"`
	} `xml:"GetCallerIdentityResult"`
	RequestID string `xml:"ResponseMetadata>RequestId"`
}

func (e *Emulator) handleSTS(r *http.Request, body []byte) ([]byte, *stsError) {
	if r.Method != http.MethodPost && r.Method != http.MethodGet {
		return nil, &stsError{status: http.StatusMethodNotAllowed, typ: "Sender", code: "InvalidAction", message: "STS takes POST or GET"}
	}
	params, err := parseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, &stsError{status: http.StatusBadRequest, typ: "Sender", code: "MalformedQueryString", message: "The query string is malformed"}
	}
	if r.Method == http.MethodPost && strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		form, err := parseQuery(string(body))
		if err != nil {
			return nil, &stsError{status: http.StatusBadRequest, typ: "Sender", code: "MalformedQueryString", message: "The form body is malformed"}
		}
		for k, v := range form {
			params[k] = append(params[k], v...)
		}
	}
	if _, presigned := params["X-Amz-Algorithm"]; presigned {
		return nil, &stsError{status: http.StatusForbidden, typ: "Sender", code: "AccessDenied", message: "Query-string (presigned) authentication is not supported by the keyless emulator; sign with the Authorization header"}
	}
	cred, fail := e.verifySigV4(r, body)
	if fail != nil {
		return nil, fail
	}
	action := first(params["Action"])
	if action == "" {
		return nil, &stsError{status: http.StatusBadRequest, typ: "Sender", code: "MissingAction", message: "Missing Action"}
	}
	if v := first(params["Version"]); v != stsVersion {
		return nil, &stsError{status: http.StatusBadRequest, typ: "Sender", code: "InvalidAction", message: fmt.Sprintf("Could not find operation %s for version %s", truncate(action), truncate(v))}
	}
	if action != "GetCallerIdentity" {
		return nil, &stsError{status: http.StatusBadRequest, typ: "Sender", code: "InvalidAction", message: fmt.Sprintf("Could not find operation %s for version %s", truncate(action), stsVersion),
			rule: "the emulator implements only GetCallerIdentity"}
	}
	var resp callerIdentityResponse
	resp.Xmlns = stsNamespace
	resp.Result.Arn = "arn:" + e.seed.Partition + ":sts::" + e.seed.Account + ":assumed-role/" + cred.Role.Name + "/" + cred.SessionName
	resp.Result.UserID = cred.Role.ID + ":" + cred.SessionName
	resp.Result.Account = e.seed.Account
	resp.RequestID = e.requestID()
	out, err := xml.Marshal(resp)
	if err != nil {
		return nil, &stsError{status: http.StatusInternalServerError, typ: "Receiver", code: "InternalFailure", message: "Internal error"}
	}
	e.log.Info("GetCallerIdentity", "arn", resp.Result.Arn)
	return append([]byte(xml.Header), out...), nil
}

func first(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

// verifySigV4 checks a standard SigV4 (AWS4-HMAC-SHA256) Authorization
// header against the credentials the emulator issued: the access key id
// is known, the session token matches it, the credentials have not
// expired, the date is within the skew window, the scope names this
// region (or us-east-1, STS's global region) and sts, and the signature
// verifies over the signed headers, which must include host.
func (e *Emulator) verifySigV4(r *http.Request, body []byte) (*credential, *stsError) {
	authz := r.Header.Get("Authorization")
	if authz == "" {
		return nil, &stsError{status: http.StatusForbidden, typ: "Sender", code: "MissingAuthenticationToken", message: "Request is missing Authentication Token"}
	}
	a, err := parseHMACAuthorization(authz)
	if err != nil {
		return nil, &stsError{status: http.StatusBadRequest, typ: "Sender", code: "IncompleteSignature", message: "Authorization header is malformed", rule: err.Error()}
	}
	cred := e.creds.get(a.accessKeyID)
	token := r.Header.Get("X-Amz-Security-Token")
	if cred == nil {
		return nil, &stsError{status: http.StatusForbidden, typ: "Sender", code: "InvalidClientTokenId", message: "The security token included in the request is invalid.",
			rule: "access key id " + truncate(a.accessKeyID) + " was not issued by this emulator, or was forgotten after it expired"}
	}
	if subtle.ConstantTimeCompare([]byte(token), []byte(cred.SessionToken)) != 1 {
		return nil, &stsError{status: http.StatusForbidden, typ: "Sender", code: "InvalidClientTokenId", message: "The security token included in the request is invalid.",
			rule: "X-Amz-Security-Token is missing or is not the session token issued with access key id " + cred.AccessKeyID}
	}
	now := e.now()
	if !now.Before(cred.Expiration) {
		return nil, &stsError{status: http.StatusBadRequest, typ: "Sender", code: "ExpiredToken", message: "The security token included in the request is expired",
			rule: "credentials expired at " + cred.Expiration.UTC().Format(time.RFC3339)}
	}
	dateStr := r.Header.Get("X-Amz-Date")
	date, err := time.Parse(amzDate, dateStr)
	if err != nil {
		return nil, &stsError{status: http.StatusBadRequest, typ: "Sender", code: "IncompleteSignature", message: "X-Amz-Date is missing or not YYYYMMDDTHHMMSSZ"}
	}
	if d := now.Sub(date); d > e.maxSkew || d < -e.maxSkew {
		return nil, &stsError{status: http.StatusForbidden, typ: "Sender", code: "SignatureDoesNotMatch",
			message: fmt.Sprintf("Signature expired: %s is now earlier than %s (%s - %s.)", dateStr, now.Add(-e.maxSkew).UTC().Format(amzDate), now.UTC().Format(amzDate), e.maxSkew)}
	}
	if a.day != dateStr[:8] {
		return nil, &stsError{status: http.StatusForbidden, typ: "Sender", code: "SignatureDoesNotMatch", message: "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP"}
	}
	if a.region != e.seed.Region && a.region != "us-east-1" {
		return nil, &stsError{status: http.StatusForbidden, typ: "Sender", code: "SignatureDoesNotMatch", message: fmt.Sprintf("Credential should be scoped to a valid region, not '%s'.", truncate(a.region)),
			rule: "this emulator serves " + e.seed.Region + " (set AWS_REGION)"}
	}
	if a.service != "sts" {
		return nil, &stsError{status: http.StatusForbidden, typ: "Sender", code: "SignatureDoesNotMatch", message: "Credential should be scoped to correct service: 'sts'."}
	}
	if !slices.Contains(a.signedHeaders, "host") {
		return nil, &stsError{status: http.StatusForbidden, typ: "Sender", code: "SignatureDoesNotMatch", message: "'Host' must be a 'SignedHeader' in the AWS Authorization."}
	}
	for _, h := range a.signedHeaders {
		if h != "host" && len(r.Header.Values(h)) == 0 {
			return nil, &stsError{status: http.StatusForbidden, typ: "Sender", code: "SignatureDoesNotMatch", message: "The request signature we calculated does not match the signature you provided.",
				rule: "signed header " + truncate(h) + " is not in the request"}
		}
	}
	// The body is always hashed: it carries Action and its parameters, and
	// only S3 lets a signature leave the payload out (UNSIGNED-PAYLOAD).
	canonical, err := canonicalHMACRequest(r, a.signedHeaders, sigv4x509.PayloadHash(body))
	if err != nil {
		return nil, &stsError{status: http.StatusBadRequest, typ: "Sender", code: "MalformedQueryString", message: "The query string is malformed"}
	}
	scope := a.day + "/" + a.region + "/" + a.service + "/aws4_request"
	sum := sha256.Sum256([]byte(canonical))
	stringToSign := hmacAlg + "\n" + dateStr + "\n" + scope + "\n" + hex.EncodeToString(sum[:])
	key := hmacSHA256([]byte("AWS4"+cred.SecretAccessKey), a.day)
	key = hmacSHA256(key, a.region)
	key = hmacSHA256(key, a.service)
	key = hmacSHA256(key, "aws4_request")
	want := hmacSHA256(key, stringToSign)
	if !hmac.Equal(want, a.signature) {
		return nil, &stsError{status: http.StatusForbidden, typ: "Sender", code: "SignatureDoesNotMatch",
			message: "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.",
			rule:    "HMAC over the canonical request does not verify with the secret issued with " + cred.AccessKeyID}
	}
	return cred, nil
}

type hmacAuthorization struct {
	accessKeyID, day, region, service string
	signedHeaders                     []string
	signature                         []byte
}

func parseHMACAuthorization(s string) (*hmacAuthorization, error) {
	alg, rest, ok := strings.Cut(s, " ")
	if !ok || alg != hmacAlg {
		return nil, fmt.Errorf("algorithm must be %s", hmacAlg)
	}
	a := &hmacAuthorization{}
	seen := map[string]bool{}
	for _, part := range strings.Split(rest, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || seen[k] {
			return nil, fmt.Errorf("component %q", truncate(part))
		}
		seen[k] = true
		switch k {
		case "Credential":
			f := strings.Split(v, "/")
			if len(f) != 5 || f[4] != "aws4_request" || f[0] == "" {
				return nil, fmt.Errorf("credential must be AKID/date/region/service/aws4_request")
			}
			a.accessKeyID, a.day, a.region, a.service = f[0], f[1], f[2], f[3]
		case "SignedHeaders":
			a.signedHeaders = strings.Split(v, ";")
			for i, h := range a.signedHeaders {
				if h == "" || h != strings.ToLower(h) || (i > 0 && a.signedHeaders[i-1] >= h) {
					return nil, fmt.Errorf("SignedHeaders must be lower-case, sorted and unique")
				}
			}
		case "Signature":
			sig, err := hex.DecodeString(v)
			if err != nil || len(sig) != sha256.Size {
				return nil, fmt.Errorf("signature must be 64 hex digits")
			}
			a.signature = sig
		default:
			return nil, fmt.Errorf("unknown component %q", truncate(k))
		}
	}
	if !seen["Credential"] || !seen["SignedHeaders"] || !seen["Signature"] {
		return nil, fmt.Errorf("needs Credential, SignedHeaders and Signature")
	}
	return a, nil
}

// canonicalHMACRequest builds standard SigV4's canonical request. The
// path is URI-encoded per segment, as for every service but S3.
func canonicalHMACRequest(r *http.Request, signed []string, payloadHash string) (string, error) {
	query, err := sigv4x509.CanonicalQuery(r.URL.RawQuery)
	if err != nil {
		return "", err
	}
	path := r.URL.EscapedPath()
	if path == "" {
		path = "/"
	}
	var b strings.Builder
	b.WriteString(r.Method + "\n" + path + "\n" + query + "\n")
	for _, name := range signed {
		var value string
		if name == "host" {
			value = r.Host
		} else {
			vals := r.Header.Values(name)
			for i := range vals {
				vals[i] = strings.Join(strings.Fields(vals[i]), " ")
			}
			value = strings.Join(vals, ",")
		}
		b.WriteString(name + ":" + value + "\n")
	}
	b.WriteString("\n" + strings.Join(signed, ";") + "\n" + payloadHash)
	return b.String(), nil
}

func hmacSHA256(key []byte, data string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(data))
	return m.Sum(nil)
}

func (e *Emulator) requestID() string {
	var b [16]byte
	_, _ = io.ReadFull(e.rand, b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

type stsErrorResponse struct {
	XMLName xml.Name `xml:"ErrorResponse"`
	Xmlns   string   `xml:"xmlns,attr"`
	Error   struct {
		Type    string `xml:"Type"`
		Code    string `xml:"Code"`
		Message string `xml:"Message"`
	} `xml:"Error"`
	RequestID string `xml:"RequestId"`
}

func (e *Emulator) writeSTSError(w http.ResponseWriter, f *stsError) {
	var resp stsErrorResponse
	resp.Xmlns = stsNamespace
	resp.Error.Type = f.typ
	resp.Error.Code = f.code
	resp.Error.Message = f.message
	if f.rule != "" {
		resp.Error.Message += " (keyless emulator: " + f.rule + ")"
	}
	resp.RequestID = e.requestID()
	out, _ := xml.Marshal(resp)
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(f.status)
	_, _ = w.Write(append([]byte(xml.Header), out...))
}
