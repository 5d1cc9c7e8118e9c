package awsmodel

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
)

// Models are the models of the services the emulator's control plane
// speaks, each service possibly from several sources (see scripts/aws-models).
type Models struct {
	all []*Model
}

// Files the models are read from, under the directory scripts/aws-models
// fills: the newest shapes (npm aws-sdk, minified) and the full models
// with errors and enums (Go module aws-sdk-go).
var modelFiles = []string{
	"js-2.1693.0/rolesanywhere-2018-05-10.min.json",
	"js-2.1693.0/iam-2010-05-08.min.json",
	"js-2.1693.0/sts-2011-06-15.min.json",
	"go-1.55.5/rolesanywhere-2018-05-10.api-2.json",
	"go-1.55.5/iam-2010-05-08.api-2.json",
	"go-1.55.5/sts-2011-06-15.api-2.json",
}

// Dir is where scripts/aws-models puts the models: $KEYLESS_AWS_MODELS,
// else ${KEYLESS_CACHE:-$HOME/.cache/keyless}/aws-models.
func Dir() string {
	if d := os.Getenv("KEYLESS_AWS_MODELS"); d != "" {
		return d
	}
	cache := os.Getenv("KEYLESS_CACHE")
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(home, ".cache", "keyless")
	}
	return filepath.Join(cache, "aws-models")
}

// ErrNoModels means the models have not been fetched; run scripts/aws-models.
var ErrNoModels = errors.New("AWS service models not fetched (run scripts/aws-models, or set KEYLESS_AWS_MODELS to its output)")

// LoadDir loads every model under dir (see Dir).
func LoadDir(dir string) (*Models, error) {
	ms := &Models{}
	for _, f := range modelFiles {
		m, err := Load(filepath.Join(dir, f))
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%w: %s is missing", ErrNoModels, filepath.Join(dir, f))
		}
		if err != nil {
			return nil, err
		}
		ms.all = append(ms.all, m)
	}
	return ms, nil
}

// NewModels groups models that were loaded one by one.
func NewModels(ms ...*Model) *Models { return &Models{all: ms} }

// Check checks one exchange against every model it belongs to, and
// returns the differences, each once. It reports whether the exchange was
// a control-plane call at all: a query call with an Action and a Version
// some model has, or a request whose path is an operation of a rest-json
// model or that is signed (standard SigV4) for one's service. Others
// (CreateSession, /health) are not checked.
func (ms *Models) Check(x *Exchange) (checked bool, out []Mismatch) {
	params := queryParams(x)
	service := signingService(x.ReqHeader.Get("Authorization"))
	seen := map[string]bool{}
	for _, m := range ms.all {
		mine := false
		switch m.Protocol {
		case "query":
			mine = params.Get("Action") != "" && params.Get("Version") == m.APIVersion
		case "rest-json":
			mine = m.FindREST(x.Method, x.Path) != nil || service == m.SigningName && !isDataPlane(x)
		}
		if !mine {
			continue
		}
		checked = true
		for _, mm := range m.Check(x) {
			key := mm.Operation + "\x00" + mm.Where + "\x00" + mm.Problem
			if !seen[key] {
				seen[key] = true
				out = append(out, mm)
			}
		}
	}
	return checked, out
}

// isDataPlane reports a Roles Anywhere CreateSession call, which is no
// control-plane operation (it is signed with SigV4-X509).
func isDataPlane(x *Exchange) bool {
	return x.Path == "/sessions" || strings.HasPrefix(x.ReqHeader.Get("Authorization"), "AWS4-X509-")
}

// signingService is the service of a standard SigV4 Authorization
// header's credential scope ("" when it is not one).
func signingService(auth string) string {
	if !strings.HasPrefix(auth, "AWS4-HMAC-SHA256 ") {
		return ""
	}
	_, rest, ok := strings.Cut(auth, "Credential=")
	if !ok {
		return ""
	}
	cred, _, _ := strings.Cut(rest, ",")
	parts := strings.Split(strings.TrimSpace(cred), "/")
	if len(parts) != 5 {
		return ""
	}
	return parts[3]
}

// Recorder is an http.Handler that passes every request to Next, checks
// each control-plane exchange against the models, and keeps what it
// found. It is safe for concurrent use.
type Recorder struct {
	Next   http.Handler
	Models *Models

	mu         sync.Mutex
	calls      map[string]int // "rest-json POST /trustanchors 201" style keys: operation → count
	mismatches []Mismatch
	seen       map[string]bool
}

// maxRecordedBody bounds what the recorder reads of a request.
const maxRecordedBody = 4 << 20

func (r *Recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(io.LimitReader(req.Body, maxRecordedBody))
	if err != nil {
		http.Error(w, "recorder: reading the request: "+err.Error(), http.StatusBadRequest)
		return
	}
	req.Body = io.NopCloser(bytes.NewReader(body))
	rec := httptest.NewRecorder()
	r.Next.ServeHTTP(rec, req)
	resp := rec.Result()
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	respBody := rec.Body.Bytes()
	_, _ = w.Write(respBody)

	x := &Exchange{Method: req.Method, Path: req.URL.EscapedPath(), RawQuery: req.URL.RawQuery, ReqHeader: req.Header.Clone(),
		ReqBody: body, Status: resp.StatusCode, RespHeader: resp.Header, RespBody: respBody}
	r.record(x)
}

func (r *Recorder) record(x *Exchange) {
	checked, mismatches := r.Models.Check(x)
	if !checked {
		return
	}
	name := r.Models.operationName(x)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.calls == nil {
		r.calls, r.seen = map[string]int{}, map[string]bool{}
	}
	r.calls[name]++
	for _, m := range mismatches {
		key := m.Operation + "\x00" + m.Where + "\x00" + m.Problem
		if !r.seen[key] {
			r.seen[key] = true
			r.mismatches = append(r.mismatches, m)
		}
	}
}

// operationName names an exchange's operation with its status for Calls:
// "rolesanywhere:CreateTrustAnchor 201".
func (ms *Models) operationName(x *Exchange) string {
	params := queryParams(x)
	for _, m := range ms.all {
		if op := m.Operation(x); op != nil {
			if m.Protocol == "query" && params.Get("Version") != m.APIVersion {
				continue
			}
			return fmt.Sprintf("%s:%s %d", m.SigningName, op.Name, x.Status)
		}
	}
	return fmt.Sprintf("%s %s %d", x.Method, x.Path, x.Status)
}

// Mismatches returns every difference found so far, each once, sorted.
func (r *Recorder) Mismatches() []Mismatch {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := slices.Clone(r.mismatches)
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}

// Calls returns the checked calls by operation and status:
// "rolesanywhere:CreateTrustAnchor 201" → 2.
func (r *Recorder) Calls() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]int{}
	for k, v := range r.calls {
		out[k] = v
	}
	return out
}

// TB is what Verify needs of a test.
type TB interface {
	Helper()
	Errorf(format string, args ...any)
	Logf(format string, args ...any)
}

// Verify fails t with every difference found, one a line; it logs the
// operations checked.
func (r *Recorder) Verify(t TB) {
	t.Helper()
	calls := r.Calls()
	var names []string
	for k, n := range calls {
		names = append(names, fmt.Sprintf("%s ×%d", k, n))
	}
	sort.Strings(names)
	t.Logf("AWS model check: %d distinct calls checked: %s", len(names), strings.Join(names, ", "))
	ms := r.Mismatches()
	if len(ms) == 0 {
		return
	}
	lines := make([]string, len(ms))
	for i, m := range ms {
		lines[i] = "  " + m.String()
	}
	t.Errorf("the emulator's answers differ from AWS's service models in %d ways:\n%s", len(ms), strings.Join(lines, "\n"))
}

// Service returns the models of the service with this signing name
// ("rolesanywhere", "iam", "sts"), newest shapes first.
func (ms *Models) Service(signingName string) []*Model {
	var out []*Model
	for _, m := range ms.all {
		if m.SigningName == signingName {
			out = append(out, m)
		}
	}
	return out
}
