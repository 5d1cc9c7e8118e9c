package emulator

import (
	"bytes"
	"cmp"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/keyless-dev/keyless/internal/rolesanywhere"
)

// The control plane: Roles Anywhere's REST API (rest-json, 2018-05-10)
// here, IAM's Query API in iam.go. Both verify SigV4 against the seed's
// operators, change resources through state.update, and answer in AWS's
// shapes and error envelopes, with the rule that refused a call appended
// to the message as everywhere in the emulator.

// maxControlBody caps control-plane request bodies: the largest AWS
// accepts is ImportCrl's 300,000-byte CRL, base64-encoded in JSON.
const maxControlBody = 1 << 20

// raCall is one Roles Anywhere control-plane request, authenticated.
type raCall struct {
	r      *http.Request
	body   []byte
	params map[string]string // path parameters
	query  url.Values
	caller caller
}

// raOp handles one operation; it returns the HTTP status and the value
// to encode as the JSON answer (nil: an empty body), or a refusal.
type raOp func(e *Emulator, c *raCall) (int, any, *apiError)

// raRoute maps a method and a path pattern ("/trustanchor/{id}") to an
// operation.
type raRoute struct {
	method, pattern, name string
	op                    raOp
}

// raRoutes is the Roles Anywhere control plane, in the order of AWS's
// model. Operations register here (see ra_*.go); read them through
// controlPlane.
var raRoutes []raRoute

// controlPlaneTables are the control plane's operations.
type controlPlaneTables struct {
	iam map[string]iamOp
	ra  []raRoute
}

var controlPlaneOnce sync.Once

// controlPlane returns the operations, registering them on first use:
// in package init, every keyless command (a credential-process cache
// hit too) would build them.
func controlPlane() controlPlaneTables {
	controlPlaneOnce.Do(func() {
		// IAM's, then Roles Anywhere's in the order of AWS's model.
		registerIAMList()
		registerIAMPolicies()
		registerIAMRoleChanges()
		registerIAMRoles()
		registerIAMTags()
		registerIAMUsers()
		registerRAAnchors()
		registerRACRLs()
		registerRANotifications()
		registerRAProfiles()
		registerRASubjects()
		registerRATags()
	})
	return controlPlaneTables{iam: iamOps, ra: raRoutes}
}

func registerRA(method, pattern, name string, op raOp) {
	raRoutes = append(raRoutes, raRoute{method: method, pattern: pattern, name: name, op: op})
}

// isRolesAnywherePath reports whether path belongs to the Roles Anywhere
// control plane.
func isRolesAnywherePath(path string) bool {
	for _, rt := range controlPlane().ra {
		if _, ok := matchPattern(rt.pattern, path); ok {
			return true
		}
	}
	return false
}

// matchPattern matches a path against a pattern with {name} segments and
// returns the segments' values, unescaped.
func matchPattern(pattern, path string) (map[string]string, bool) {
	ps := strings.Split(strings.Trim(pattern, "/"), "/")
	xs := strings.Split(strings.Trim(path, "/"), "/")
	if len(ps) != len(xs) {
		return nil, false
	}
	var params map[string]string
	for i, p := range ps {
		if strings.HasPrefix(p, "{") && strings.HasSuffix(p, "}") {
			v, err := url.PathUnescape(xs[i])
			if err != nil || v == "" {
				return nil, false
			}
			if params == nil {
				params = map[string]string{}
			}
			params[p[1:len(p)-1]] = v
			continue
		}
		if p != xs[i] {
			return nil, false
		}
	}
	return params, true
}

// rolesAnywhere serves the Roles Anywhere control plane.
func (e *Emulator) rolesAnywhere(w http.ResponseWriter, r *http.Request) {
	var route *raRoute
	var params map[string]string
	pathKnown := false
	routes := controlPlane().ra
	for i := range routes {
		p, ok := matchPattern(routes[i].pattern, r.URL.EscapedPath())
		if !ok {
			continue
		}
		pathKnown = true
		if routes[i].method == r.Method {
			route, params = &routes[i], p
			break
		}
	}
	if route == nil {
		rule := "no operation at " + truncate(r.Method+" "+r.URL.Path)
		if pathKnown {
			rule = truncate(r.URL.Path) + " does not take " + truncate(r.Method)
		}
		writeJSONError(w, &apiError{status: http.StatusNotFound, code: "UnknownOperationException", message: "Unknown operation", rule: rule})
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxControlBody))
	if err != nil {
		writeJSONError(w, validationError("The request body could not be read or is over %d bytes", maxControlBody))
		return
	}
	who, fail := e.verifySigV4(r, body, "rolesanywhere", []string{e.st.region})
	if fail != nil {
		e.log.Warn(route.name+" refused", "code", fail.code, "rule", fail.rule)
		writeJSONError(w, restError(fail))
		return
	}
	if who.op == nil {
		// Sessions from CreateSession carry the role's permissions on AWS;
		// the emulator models no identity policies, so only operators may
		// change what it serves.
		f := &apiError{status: http.StatusForbidden, code: "AccessDeniedException",
			message: fmt.Sprintf("User: %s is not authorized to perform: rolesanywhere:%s", who.arn(e), route.name),
			rule:    "only the seed's operators may call the control plane; session credentials may not"}
		e.log.Warn(route.name+" refused", "code", f.code, "rule", f.rule)
		writeJSONError(w, f)
		return
	}
	status, out, apiErr := route.op(e, &raCall{r: r, body: body, params: params, query: r.URL.Query(), caller: who})
	if apiErr != nil {
		e.log.Warn(route.name+" refused", "code", apiErr.code, "rule", apiErr.rule, "message", apiErr.message)
		writeJSONError(w, apiErr)
		return
	}
	e.log.Info(route.name, "caller", who.arn(e))
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if out != nil {
		_ = json.NewEncoder(w).Encode(out)
	}
}

// restError puts an authentication refusal, made in STS's Query terms by
// verifySigV4, into the codes JSON services answer with.
func restError(f *stsError) *apiError {
	code := f.code
	switch f.code {
	case "InvalidClientTokenId":
		code = "UnrecognizedClientException"
	case "SignatureDoesNotMatch":
		code = "InvalidSignatureException"
	case "MissingAuthenticationToken":
		code = "MissingAuthenticationTokenException"
	case "IncompleteSignature":
		code = "IncompleteSignatureException"
	case "MalformedQueryString":
		code = "ValidationException"
	case "ExpiredToken":
		code = "ExpiredTokenException"
	case "AccessDenied":
		code = "AccessDeniedException"
	}
	return &apiError{status: f.status, code: code, message: f.message, rule: f.rule}
}

// decodeJSON decodes a request body into v as AWS's JSON protocol does:
// member names match exactly (encoding/json alone would fold case), and
// unknown members are ignored. An empty body is an empty object.
func decodeJSON(body []byte, v any) *apiError {
	if len(bytes.TrimSpace(body)) == 0 {
		body = []byte("{}")
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		return &apiError{status: http.StatusBadRequest, code: "SerializationException", message: "Unable to parse the request body as JSON", rule: truncate(err.Error())}
	}
	exact, err := exactMembers(v, raw)
	if err != nil {
		return &apiError{status: http.StatusBadRequest, code: "SerializationException", message: "Unable to parse the request body as JSON", rule: truncate(err.Error())}
	}
	if err := json.Unmarshal(exact, v); err != nil {
		return &apiError{status: http.StatusBadRequest, code: "SerializationException", message: "Unable to parse the request body as JSON", rule: truncate(err.Error())}
	}
	return nil
}

// exactMembers keeps the members of raw whose names are exactly the json
// tags of v's struct fields.
func exactMembers(v any, raw map[string]json.RawMessage) ([]byte, error) {
	names := jsonNames(v)
	kept := map[string]json.RawMessage{}
	for k, val := range raw {
		if names[k] {
			kept[k] = val
		}
	}
	return json.Marshal(kept)
}

// jsonNames returns the json member names of the struct v points to.
func jsonNames(v any) map[string]bool {
	t := reflect.TypeOf(v)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	names := map[string]bool{}
	if t.Kind() != reflect.Struct {
		return names
	}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if f.Anonymous && f.Tag.Get("json") == "" {
			// An embedded struct's members are the outer struct's, as
			// encoding/json treats them.
			for n := range jsonNames(reflect.New(f.Type).Interface()) {
				names[n] = true
			}
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" {
			name = f.Name
		}
		if name != "-" {
			names[name] = true
		}
	}
	return names
}

// page cuts items (already in a stable order) into one page of a list
// operation: nextToken is the opaque token the previous page returned,
// pageSize the caller's (default and maximum max). It returns the page
// and the token of the next one ("" at the end).
func page[T any](items []T, nextToken, pageSize string, def, max int) ([]T, string, *apiError) {
	size := def
	if pageSize != "" {
		n, err := strconv.Atoi(pageSize)
		if err != nil || n < 1 || n > max {
			return nil, "", validationError("pageSize must be an integer from 1 to %d", max)
		}
		size = n
	}
	start := 0
	if nextToken != "" {
		raw, err := base64.RawURLEncoding.DecodeString(nextToken)
		n, aerr := strconv.Atoi(string(raw))
		if err != nil || aerr != nil || n < 0 || n > len(items) {
			return nil, "", validationError("Invalid nextToken")
		}
		start = n
	}
	end := min(start+size, len(items))
	next := ""
	if end < len(items) {
		next = base64.RawURLEncoding.EncodeToString([]byte(strconv.Itoa(end)))
	}
	return items[start:end], next, nil
}

func validResourceName(s string) bool { return rolesanywhere.ValidResourceName(s) }

func internalError(err error) *apiError {
	return &apiError{status: http.StatusInternalServerError, code: "InternalServerException", message: "Internal error", rule: err.Error()}
}

// asAPIError returns the refusal a state.update function returned, or an
// internal error for anything else.
func asAPIError(err error) *apiError {
	var fail *apiError
	if errors.As(err, &fail) {
		return fail
	}
	return internalError(err)
}

// sortedByCreation orders resources as AWS lists them: oldest first, ties
// by id, so that pages are stable.
func sortedByCreation[T any](m map[string]T, key func(T) (int64, string)) []T {
	out := make([]T, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	slices.SortFunc(out, func(a, b T) int {
		ta, ia := key(a)
		tb, ib := key(b)
		if ta != tb {
			return cmp.Compare(ta, tb)
		}
		return strings.Compare(ia, ib)
	})
	return out
}

// Roles Anywhere's tag limits: a request's tag list holds at most 200
// (the API's TagList constraint), and a resource at most 50 tags (AWS's
// limit on user tags per resource, which TooManyTagsException reports;
// the Roles Anywhere documentation states no other).
const (
	maxRATagList   = 200
	maxRATags      = 50
	maxTagKeyLen   = 128
	maxTagValueLen = 256
)

// tooManyTags refuses a resource that would have n tags.
func tooManyTags(n int) *apiError {
	return &apiError{status: http.StatusBadRequest, code: "TooManyTagsException", message: "Too many tags",
		rule: fmt.Sprintf("the resource would have %d tags; at most %d", n, maxRATags)}
}

// raTags checks tags given to Roles Anywhere.
func raTags(in []jsonTag) ([]Tag, *apiError) {
	if len(in) > maxRATagList {
		return nil, validationError("1 validation error detected: 'tags' has %d members; at most %d are allowed", len(in), maxRATagList)
	}
	if len(in) > maxRATags {
		return nil, tooManyTags(len(in))
	}
	seen := map[string]bool{}
	var out []Tag
	for _, t := range in {
		if t.Key == "" || len(t.Key) > maxTagKeyLen || len(t.Value) > maxTagValueLen {
			return nil, validationError("tag keys are 1 to %d characters and values at most %d", maxTagKeyLen, maxTagValueLen)
		}
		if strings.HasPrefix(strings.ToLower(t.Key), "aws:") {
			return nil, validationError("tag keys may not begin with aws:")
		}
		if seen[t.Key] {
			return nil, validationError("tag key %s is given twice", truncate(t.Key))
		}
		seen[t.Key] = true
		out = append(out, Tag(t))
	}
	return out, nil
}

// notificationSettings applies settings given to CreateTrustAnchor or
// PutNotificationSettings over current ones (nil: AWS's defaults).
// configuredBy is the account (AWS's API reference: customized settings
// show the account ID that configured them).
func notificationSettings(current, in []NotificationSetting, configuredBy string) ([]NotificationSetting, *apiError) {
	if len(in) == 0 {
		return current, nil
	}
	if current == nil {
		current = defaultNotificationSettings()
	}
	out := slices.Clone(current)
	for _, s := range in {
		switch s.Event {
		case "CA_CERTIFICATE_EXPIRY", "END_ENTITY_CERTIFICATE_EXPIRY":
		default:
			return nil, validationError("notification event must be CA_CERTIFICATE_EXPIRY or END_ENTITY_CERTIFICATE_EXPIRY")
		}
		if s.Threshold != 0 && (s.Threshold < 1 || s.Threshold > 360) {
			return nil, validationError("notification threshold must be 1 to 360 days")
		}
		if s.Channel == "" {
			s.Channel = "ALL"
		}
		if s.Channel != "ALL" {
			return nil, validationError("notification channel must be ALL")
		}
		s.ConfiguredBy = configuredBy
		for i := range out {
			if out[i].Event == s.Event && out[i].Channel == s.Channel {
				if s.Threshold == 0 {
					s.Threshold = out[i].Threshold
				}
				out[i] = s
			}
		}
	}
	return out, nil
}

// listPage answers one page of a list operation over m: the resources
// oldest first (sortedByCreation), cut by the request's nextToken and
// pageSize (at most 50, AWS's maximum), each rendered by to.
func listPage[T, J any](c *raCall, m map[string]T, key func(T) (int64, string), to func(T) J) ([]J, string, *apiError) {
	items, next, fail := page(sortedByCreation(m, key), c.query.Get("nextToken"), c.query.Get("pageSize"), 50, 50)
	if fail != nil {
		return nil, "", fail
	}
	out := make([]J, 0, len(items))
	for _, v := range items {
		out = append(out, to(v))
	}
	return out, next, nil
}

// byID finds the resource of kind ("trust anchor") a request's path
// names, or answers ResourceNotFoundException.
func byID[T any](m map[string]*T, id, kind string) (*T, *apiError) {
	v := m[id]
	if v == nil {
		return nil, &apiError{status: http.StatusNotFound, code: "ResourceNotFoundException", message: "Resource not found", rule: "no " + kind + " with id " + truncate(id)}
	}
	return v, nil
}
