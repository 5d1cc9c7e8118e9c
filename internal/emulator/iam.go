package emulator

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// IAM's Query API (version 2010-05-08): the role operations Terraform's
// aws_iam_role and the AWS CLI use. IAM is global: requests are signed
// for us-east-1 (aws-cn: cn-north-1, aws-us-gov: us-gov-west-1).

const (
	iamVersion   = "2010-05-08"
	iamNamespace = "https://iam.amazonaws.com/doc/2010-05-08/"
)

// iamOp handles one IAM action with the request's parameters; it returns
// the value to marshal inside <ActionResult> (nil: no result element),
// or a refusal.
type iamOp func(e *Emulator, p url.Values, who caller) (any, *stsError)

// iamOps are the IAM actions served, by name (see iam_*.go); read them
// through controlPlane.
var iamOps map[string]iamOp

func registerIAM(action string, op iamOp) {
	if iamOps == nil {
		iamOps = map[string]iamOp{}
	}
	iamOps[action] = op
}

// iamRegion is the region IAM requests are signed for in a partition.
func iamRegion(partition string) string {
	switch partition {
	case "aws-cn":
		return "cn-north-1"
	case "aws-us-gov":
		return "us-gov-west-1"
	}
	return "us-east-1"
}

// queryParams collects a Query-protocol request's parameters from the
// URL and, for a form POST, the body.
func queryParams(r *http.Request, body []byte) (url.Values, *stsError) {
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
	return params, nil
}

// iam serves IAM's Query API.
func (e *Emulator) iam(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxControlBody))
	if err != nil {
		e.writeQueryError(w, &stsError{status: http.StatusBadRequest, typ: "Sender", code: "InvalidInput", message: "The request body could not be read or is too large"}, iamNamespace)
		return
	}
	action, out, fail := e.handleIAM(r, body)
	if fail != nil {
		e.log.Warn("IAM refused", "action", truncate(action), "code", fail.code, "rule", fail.rule, "message", fail.message)
		e.writeQueryError(w, fail, iamNamespace)
		return
	}
	e.log.Info("IAM " + action)
	w.Header().Set("Content-Type", "text/xml")
	_, _ = w.Write(out)
}

func (e *Emulator) handleIAM(r *http.Request, body []byte) (string, []byte, *stsError) {
	if r.Method != http.MethodPost && r.Method != http.MethodGet {
		return "", nil, &stsError{status: http.StatusMethodNotAllowed, typ: "Sender", code: "InvalidAction", message: "IAM takes POST or GET"}
	}
	p, fail := queryParams(r, body)
	if fail != nil {
		return "", nil, fail
	}
	if _, presigned := p["X-Amz-Algorithm"]; presigned {
		return "", nil, &stsError{status: http.StatusForbidden, typ: "Sender", code: "AccessDenied", message: "Query-string (presigned) authentication is not supported by the keyless emulator; sign with the Authorization header"}
	}
	who, fail := e.verifySigV4(r, body, "iam", []string{iamRegion(e.st.partition)})
	if fail != nil {
		return first(p["Action"]), nil, fail
	}
	action := first(p["Action"])
	if action == "" {
		return "", nil, &stsError{status: http.StatusBadRequest, typ: "Sender", code: "MissingAction", message: "Missing Action"}
	}
	op := controlPlane().iam[action]
	if v := first(p["Version"]); v != iamVersion || op == nil {
		return action, nil, &stsError{status: http.StatusBadRequest, typ: "Sender", code: "InvalidAction", message: fmt.Sprintf("Could not find operation %s for version %s", truncate(action), truncate(v)),
			rule: "the emulator implements " + strings.Join(sortedKeys(controlPlane().iam), ", ") + " of IAM " + iamVersion}
	}
	if who.op == nil {
		return action, nil, &stsError{status: http.StatusForbidden, typ: "Sender", code: "AccessDenied",
			message: fmt.Sprintf("User: %s is not authorized to perform: iam:%s", who.arn(e), action),
			rule:    "only the seed's operators may call the control plane; session credentials may not"}
	}
	result, fail := op(e, p, who)
	if fail != nil {
		return action, nil, fail
	}
	out, err := e.iamResponse(r, action, result)
	if err != nil {
		return action, nil, &stsError{status: http.StatusInternalServerError, typ: "Receiver", code: "ServiceFailure", message: "Internal error", rule: err.Error()}
	}
	return action, out, nil
}

// iamResponse wraps result as IAM answers: <ActionResponse> holding
// <ActionResult> (when there is a result) and the request id.
func (e *Emulator) iamResponse(r *http.Request, action string, result any) ([]byte, error) {
	var b strings.Builder
	b.WriteString(xml.Header)
	fmt.Fprintf(&b, `<%sResponse xmlns="%s">`, action, iamNamespace)
	if result != nil {
		// result marshals as <x>...</x> (named so, whatever its type:
		// results may be anonymous structs); IAM's result holds the
		// members directly, so the wrapper element is dropped.
		var inner strings.Builder
		if err := xml.NewEncoder(&inner).EncodeElement(result, xml.StartElement{Name: xml.Name{Local: "x"}}); err != nil {
			return nil, err
		}
		fmt.Fprintf(&b, "<%sResult>", action)
		b.WriteString(stripOuter(inner.String()))
		fmt.Fprintf(&b, "</%sResult>", action)
	}
	fmt.Fprintf(&b, "<ResponseMetadata><RequestId>%s</RequestId></ResponseMetadata></%sResponse>", e.requestIDOf(r), action)
	return []byte(b.String()), nil
}

// stripOuter removes the outermost element of marshalled XML.
func stripOuter(s string) string {
	start := strings.IndexByte(s, '>')
	end := strings.LastIndexByte(s, '<')
	if start < 0 || end <= start {
		return ""
	}
	return s[start+1 : end]
}

// iamInvalid is IAM's ValidationError for a parameter out of its
// constraints, worded as AWS words it.
func iamInvalid(member, value, constraint string) *stsError {
	return &stsError{status: http.StatusBadRequest, typ: "Sender", code: "ValidationError",
		message: fmt.Sprintf("1 validation error detected: Value '%s' at '%s' failed to satisfy constraint: %s", truncate(value), member, constraint)}
}

func iamNoSuchRole(name string) *stsError {
	return &stsError{status: http.StatusNotFound, typ: "Sender", code: "NoSuchEntity", message: fmt.Sprintf("The role with name %s cannot be found.", truncate(name))}
}

// members returns a Query list's entries: Name.member.1, .2, ... (each
// entry's parameters under its prefix, "Name.member.N."), in order, up to
// the first gap. One pass over the parameters: a request may carry tens
// of thousands of them.
func members(p url.Values, name string) []string {
	head := name + ".member."
	present := map[int]bool{}
	for k := range p {
		rest, ok := strings.CutPrefix(k, head)
		if !ok {
			continue
		}
		digits, _, _ := strings.Cut(rest, ".")
		if n, err := strconv.Atoi(digits); err == nil && n >= 1 && strconv.Itoa(n) == digits {
			present[n] = true
		}
	}
	var prefixes []string
	for i := 1; present[i]; i++ {
		prefixes = append(prefixes, head+strconv.Itoa(i))
	}
	return prefixes
}

// queryTags reads Tags.member.N.Key/Value, within IAM's limits: 50 tags,
// keys up to 128 characters and values up to 256.
func queryTags(p url.Values, name string) ([]Tag, *stsError) {
	var tags []Tag
	seen := map[string]bool{}
	for _, m := range members(p, name) {
		t := Tag{Key: first(p[m+".Key"]), Value: first(p[m+".Value"])}
		if t.Key == "" || len(t.Key) > 128 {
			return nil, iamInvalid(name+".member.key", t.Key, "Member must have length between 1 and 128")
		}
		if strings.HasPrefix(strings.ToLower(t.Key), "aws:") {
			return nil, &stsError{status: http.StatusBadRequest, typ: "Sender", code: "InvalidInput", message: "Tag keys beginning with 'aws:' are reserved for AWS use.",
				rule: "tag key " + truncate(t.Key)}
		}
		if len(t.Value) > 256 {
			return nil, iamInvalid(name+".member.value", t.Value, "Member must have length less than or equal to 256")
		}
		if seen[strings.ToLower(t.Key)] {
			return nil, &stsError{status: http.StatusBadRequest, typ: "Sender", code: "InvalidInput", message: "Duplicate tag keys found. Please note that Tag keys are case insensitive."}
		}
		seen[strings.ToLower(t.Key)] = true
		tags = append(tags, t)
	}
	if len(tags) > 50 {
		return nil, &stsError{status: http.StatusConflict, typ: "Sender", code: "LimitExceeded", message: "The number of tags has reached the maximum limit."}
	}
	return tags, nil
}

// xmlRole is IAM's Role shape.
type xmlRole struct {
	Path                     string       `xml:"Path"`
	RoleName                 string       `xml:"RoleName"`
	RoleID                   string       `xml:"RoleId"`
	Arn                      string       `xml:"Arn"`
	CreateDate               string       `xml:"CreateDate"`
	AssumeRolePolicyDocument string       `xml:"AssumeRolePolicyDocument"`
	Description              string       `xml:"Description,omitempty"`
	MaxSessionDuration       int          `xml:"MaxSessionDuration"`
	PermissionsBoundary      *xmlBoundary `xml:"PermissionsBoundary,omitempty"`
	Tags                     *xmlTags     `xml:"Tags,omitempty"`
	RoleLastUsed             *struct{}    `xml:"RoleLastUsed,omitempty"`
}

type xmlBoundary struct {
	Type string `xml:"PermissionsBoundaryType"`
	Arn  string `xml:"PermissionsBoundaryArn"`
}

type xmlTags struct {
	Member []xmlTag `xml:"member"`
}

type xmlTag struct {
	Key   string `xml:"Key"`
	Value string `xml:"Value"`
}

func toXMLTags(tags []Tag) *xmlTags {
	if len(tags) == 0 {
		return nil
	}
	out := &xmlTags{}
	for _, t := range sortedTags(tags) {
		out.Member = append(out.Member, xmlTag(t))
	}
	return out
}

// iamTime formats a time as IAM's answers do.
func iamTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05Z") }

// toXMLRole renders a role; lastUsed adds the empty RoleLastUsed GetRole
// answers with.
func toXMLRole(r *Role, lastUsed bool) xmlRole {
	x := xmlRole{Path: r.Path, RoleName: r.Name, RoleID: r.ID, Arn: r.ARN, CreateDate: iamTime(r.CreatedAt),
		// IAM answers with the policy URL-encoded (RFC 3986), as given.
		AssumeRolePolicyDocument: iamEscape(r.TrustPolicyDocument),
		Description:              r.Description, MaxSessionDuration: r.MaxSessionDuration, Tags: toXMLTags(r.Tags)}
	if r.PermissionsBoundary != "" {
		x.PermissionsBoundary = &xmlBoundary{Type: "PermissionsBoundaryPolicy", Arn: r.PermissionsBoundary}
	}
	if lastUsed {
		x.RoleLastUsed = &struct{}{}
	}
	return x
}

// asSTSError returns the refusal a state.update function returned, or
// IAM's ServiceFailure for anything else (a state file that could not be
// written).
func asSTSError(err error) *stsError {
	var fail *stsError
	if errors.As(err, &fail) {
		return fail
	}
	rule := err.Error()
	var api *apiError
	if errors.As(err, &api) {
		rule = api.rule
	}
	return &stsError{status: http.StatusInternalServerError, typ: "Receiver", code: "ServiceFailure", message: "Internal error", rule: rule}
}
