package emulator

import (
	"crypto/subtle"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/keyless-dev/keyless/internal/sigv4"
)

const (
	stsVersion   = "2011-06-15"
	stsNamespace = "https://sts.amazonaws.com/doc/2011-06-15/"
)

type stsError struct {
	status        int
	typ, code     string
	message, rule string
}

func (e *stsError) Error() string { return e.code + ": " + e.message }

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
	params, fail := queryParams(r, body)
	if fail != nil {
		return nil, fail
	}
	if _, presigned := params["X-Amz-Algorithm"]; presigned {
		return nil, &stsError{status: http.StatusForbidden, typ: "Sender", code: "AccessDenied", message: "Query-string (presigned) authentication is not supported by the keyless emulator; sign with the Authorization header"}
	}
	who, fail := e.verifySigV4(r, body, "sts", []string{e.st.region, "us-east-1"})
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
	resp.Result.Arn, resp.Result.UserID = who.arn(e), who.userID()
	resp.Result.Account = e.st.account
	resp.RequestID = e.requestIDOf(r)
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

// caller is who signed a request: an operator (a long-lived key from the
// seed) or a session the emulator issued.
type caller struct {
	op   *Operator
	cred *credential
}

// arn is the caller's ARN as STS GetCallerIdentity gives it.
func (c caller) arn(e *Emulator) string {
	if c.op != nil {
		return e.operatorARN(c.op)
	}
	return "arn:" + e.st.partition + ":sts::" + e.st.account + ":assumed-role/" + c.cred.Role.Name + "/" + c.cred.SessionName
}

// userID is the caller's unique id as STS gives it.
func (c caller) userID() string {
	if c.op != nil {
		return "AIDA" + derivedID("user/"+c.op.Name, 17)
	}
	return c.cred.Role.ID + ":" + c.cred.SessionName
}

// verifySigV4 checks a standard SigV4 (AWS4-HMAC-SHA256) request signed
// for service: the access key id is an operator's or was issued by the
// emulator (then the session token must match it and the credentials
// must not have expired), the date is within the service's skew window
// (STS's 15 minutes, others' 5), the scope
// names one of regions and service, and the signature verifies over the
// signed headers, which must include host. Its refusals are in STS's
// terms (Query protocol codes); restError maps them for JSON services.
func (e *Emulator) verifySigV4(r *http.Request, body []byte, service string, regions []string) (caller, *stsError) {
	now := e.now()
	skew := e.maxSkew
	if service == "sts" {
		skew = e.stsMaxSkew
	}
	var who caller
	a, err := sigv4.VerifyHMAC(r, body, sigv4.HMACVerifyOptions{
		Service: service, Regions: regions, Now: now, MaxSkew: skew,
		Secret: func(r *http.Request, accessKeyID string) (string, error) {
			if op := e.operators[accessKeyID]; op != nil {
				if r.Header.Get(sigv4.HeaderSecurityToken) != "" {
					return "", &stsError{status: http.StatusForbidden, typ: "Sender", code: "InvalidClientTokenId", message: "The security token included in the request is invalid.",
						rule: "access key id " + accessKeyID + " is an operator's long-lived key, and the request carries X-Amz-Security-Token"}
				}
				who.op = op
				return op.SecretAccessKey, nil
			}
			cred := e.creds.get(accessKeyID)
			if cred == nil {
				return "", &stsError{status: http.StatusForbidden, typ: "Sender", code: "InvalidClientTokenId", message: "The security token included in the request is invalid.",
					rule: "access key id " + truncate(accessKeyID) + " is no operator of the seed and was not issued by this emulator, or was forgotten after it expired"}
			}
			if subtle.ConstantTimeCompare([]byte(r.Header.Get(sigv4.HeaderSecurityToken)), []byte(cred.SessionToken)) != 1 {
				return "", &stsError{status: http.StatusForbidden, typ: "Sender", code: "InvalidClientTokenId", message: "The security token included in the request is invalid.",
					rule: "X-Amz-Security-Token is missing or is not the session token issued with access key id " + cred.AccessKeyID}
			}
			// AWS answers a request signed with expired session
			// credentials 403 ExpiredToken.
			if !now.Before(cred.Expiration) {
				return "", &stsError{status: http.StatusForbidden, typ: "Sender", code: "ExpiredToken", message: "The security token included in the request is expired",
					rule: "credentials expired at " + cred.Expiration.UTC().Format(time.RFC3339)}
			}
			who.cred = cred
			return cred.SecretAccessKey, nil
		},
	})
	if err == nil {
		return who, nil
	}
	var fail *stsError
	denied := func(message string) *stsError {
		return &stsError{status: http.StatusForbidden, typ: "Sender", code: "SignatureDoesNotMatch", message: message}
	}
	switch {
	case errors.As(err, &fail):
	case errors.Is(err, sigv4.ErrNoAuthorization):
		fail = &stsError{status: http.StatusForbidden, typ: "Sender", code: "MissingAuthenticationToken", message: "Request is missing Authentication Token"}
	case errors.Is(err, sigv4.ErrDate):
		fail = &stsError{status: http.StatusBadRequest, typ: "Sender", code: "IncompleteSignature", message: "X-Amz-Date is missing or not YYYYMMDDTHHMMSSZ"}
	case errors.Is(err, sigv4.ErrQuery):
		fail = &stsError{status: http.StatusBadRequest, typ: "Sender", code: "MalformedQueryString", message: "The query string is malformed"}
	case errors.Is(err, sigv4.ErrHeaderMissing):
		fail = denied("The request signature we calculated does not match the signature you provided.")
	case errors.Is(err, sigv4.ErrMalformed):
		fail = &stsError{status: http.StatusBadRequest, typ: "Sender", code: "IncompleteSignature", message: "Authorization header is malformed"}
	case errors.Is(err, sigv4.ErrClockSkew):
		fail = denied(skewMessage(r.Header.Get(sigv4.HeaderDate), now, skew))
	case errors.Is(err, sigv4.ErrScopeDate):
		fail = denied("Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP")
	case errors.Is(err, sigv4.ErrScopeRegion):
		fail = denied(fmt.Sprintf("Credential should be scoped to a valid region, not '%s'.", truncate(a.Region)))
		fail.rule = "this emulator serves " + strings.Join(regions, " and ") + " for " + service + " (set AWS_REGION)"
	case errors.Is(err, sigv4.ErrScopeService):
		fail = denied("Credential should be scoped to correct service: '" + service + "'.")
	case errors.Is(err, sigv4.ErrSignedHeaders):
		fail = denied("'Host' must be a 'SignedHeader' in the AWS Authorization.")
	default:
		fail = denied("The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.")
	}
	if fail.rule == "" {
		fail.rule = err.Error()
	}
	return caller{}, fail
}

func (e *Emulator) requestID() string {
	var b [16]byte
	_, _ = io.ReadFull(e.rand, b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return formatUUID(b)
}

// formatUUID writes 16 bytes as a UUID: 8-4-4-4-12 lower-case hex digits.
func formatUUID(b [16]byte) string {
	out := make([]byte, 0, 36)
	for i, part := range [][]byte{b[0:4], b[4:6], b[6:8], b[8:10], b[10:16]} {
		if i > 0 {
			out = append(out, '-')
		}
		out = hex.AppendEncode(out, part)
	}
	return string(out)
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
	e.writeQueryError(w, f, stsNamespace)
}

// writeQueryError writes a Query-protocol (STS, IAM) error envelope in
// the service's namespace.
func (e *Emulator) writeQueryError(w http.ResponseWriter, f *stsError, namespace string) {
	var resp stsErrorResponse
	resp.Xmlns = namespace
	resp.Error.Type = f.typ
	resp.Error.Code = f.code
	resp.Error.Message = f.message
	if f.rule != "" {
		resp.Error.Message += " (keyless emulator: " + f.rule + ")"
	}
	// The id ServeHTTP put in the header, so that both say the same.
	resp.RequestID = w.Header().Get(requestIDHeader)
	if resp.RequestID == "" {
		resp.RequestID = e.requestID()
		w.Header().Set(requestIDHeader, resp.RequestID)
	}
	out, _ := xml.Marshal(resp)
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(f.status)
	_, _ = w.Write(append([]byte(xml.Header), out...))
}

// skewMessage is AWS's answer to a request dated outside the skew
// window: "Signature expired: <date> is now earlier than <now - skew>
// (<now> - 15 min.)" for a date too far in the past, "Signature not yet
// current: <date> is still later than <now + skew> (<now> + 15 min.)"
// for one too far in the future.
func skewMessage(dateStr string, now time.Time, skew time.Duration) string {
	f := func(t time.Time) string { return t.UTC().Format(sigv4.TimeFormat) }
	minutes := int(skew / time.Minute)
	if date, err := time.Parse(sigv4.TimeFormat, dateStr); err == nil && date.After(now) {
		return fmt.Sprintf("Signature not yet current: %s is still later than %s (%s + %d min.)", dateStr, f(now.Add(skew)), f(now), minutes)
	}
	return fmt.Sprintf("Signature expired: %s is now earlier than %s (%s - %d min.)", dateStr, f(now.Add(-skew)), f(now), minutes)
}
