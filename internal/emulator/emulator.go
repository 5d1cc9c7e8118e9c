// Package emulator is a local IAM Roles Anywhere and STS endpoint: an
// http.Handler over in-memory state seeded from a YAML file (see Seed).
//
// It verifies a CreateSession request the way AWS does (the SigV4-X509
// signature, the leaf certificate's profile, the chain to the trust
// anchor, its CRLs, the profile and role, the role's trust policy, the
// duration and the session name), answers with AWS's status, error code
// and message, and logs the exact rule that refused a request, which AWS
// never tells. Credentials it issues work for STS GetCallerIdentity,
// verified with standard SigV4, until they expire.
//
// Tests start it in-process behind httptest; the emulator command serves
// it. It never talks to AWS. Any keyless package may import it; it has no
// dependency on the CLI.
package emulator

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/keyless-dev/keyless/internal/logline"
	"github.com/keyless-dev/keyless/internal/sigv4"
)

// Config configures an Emulator.
type Config struct {
	// Seed holds the resources to serve. Required.
	Seed *Seed
	// Now is the server's clock; nil means time.Now.
	Now func() time.Time
	// Rand makes credentials and request ids; nil means crypto/rand.
	Rand io.Reader
	// Logger receives one line per decision; nil discards.
	Logger *slog.Logger
	// MaxSkew is the allowed distance between a request's date and Now
	// for CreateSession and the control plane; zero means 5 minutes,
	// standard SigV4's window.
	MaxSkew time.Duration
	// STSMaxSkew is the same for STS, which allows more; zero means
	// DefaultSTSMaxSkew.
	STSMaxSkew time.Duration
	// StatePath, when set, keeps the resources in this file (a
	// snapshot) and StatePath+".journal" across restarts: every change is
	// appended to the journal (fdatasynced) before it is answered, and at
	// start an existing state is loaded in place of the seed's resources
	// (the seed's account, region and operators still apply). See
	// journal.go and docs/emulator.md.
	StatePath string
	// MaxCredentials bounds the issued credentials kept for STS; when it
	// is reached, the credentials closest to expiry are forgotten first.
	// Zero means DefaultMaxCredentials.
	MaxCredentials int
}

// DefaultSTSMaxSkew is STS's clock-skew window: its refusals read
// "Signature expired: <date> is now earlier than <date> (<now> - 15
// min.)", and it accepts requests dated within 15 minutes either way.
const DefaultSTSMaxSkew = 15 * time.Minute

// DefaultMaxCredentials bounds memory: about 1 KB per credential, so the
// default caps the store near 100 MB even under a flood of sessions.
const DefaultMaxCredentials = 100_000

// Emulator serves Roles Anywhere CreateSession, STS GetCallerIdentity,
// the control plane (Roles Anywhere's and IAM's APIs) and GET /health.
// It is safe for concurrent use.
type Emulator struct {
	seed    *Seed
	now     func() time.Time
	rand    io.Reader
	log     *slog.Logger
	maxSkew time.Duration
	// stsMaxSkew is STS's window (maxSkew is the others').
	stsMaxSkew time.Duration

	st        *state
	operators map[string]*Operator // by access key id

	creds *credentialStore
	// certs remembers the certificates of CreateSession requests parsed
	// (by their exact header text), as chains remembers verified chains.
	certs  *sigv4.CertificateCache
	chains chainCache
	// crlChecks caches CRL signature checks by CRL and issuer; see
	// crlSignedBy.
	crlChecks crlCheckCache
	// subjects records who has had sessions, for ListSubjects.
	subjects subjectLog
}

// New returns an Emulator over cfg.Seed, or, when cfg.StatePath names an
// existing state file, over the resources recorded there.
func New(cfg Config) (*Emulator, error) {
	if cfg.Seed == nil {
		return nil, errors.New("emulator: no seed")
	}
	e := &Emulator{
		seed:       cfg.Seed,
		now:        cfg.Now,
		rand:       cfg.Rand,
		log:        cfg.Logger,
		maxSkew:    cfg.MaxSkew,
		stsMaxSkew: cfg.STSMaxSkew,
		operators:  map[string]*Operator{},
	}
	if e.now == nil {
		e.now = time.Now
	}
	if e.rand == nil {
		e.rand = rand.Reader
	}
	e.log = logline.Or(e.log)
	if e.maxSkew == 0 {
		e.maxSkew = sigv4.DefaultMaxSkew
	}
	if e.stsMaxSkew == 0 {
		e.stsMaxSkew = DefaultSTSMaxSkew
	}
	max := cfg.MaxCredentials
	if max <= 0 {
		max = DefaultMaxCredentials
	}
	e.creds = newCredentialStore(max)
	e.certs = sigv4.NewCertificateCache(maxCachedCertificates)
	for _, op := range e.seed.Operators {
		e.operators[op.AccessKeyID] = op
	}
	e.st = &state{account: e.seed.Account, region: e.seed.Region, partition: e.seed.Partition}
	res, err := e.seedResources()
	if err != nil {
		return nil, err
	}
	if cfg.StatePath != "" {
		loaded, err := e.openState(cfg.StatePath, res)
		if err != nil {
			return nil, err
		}
		res = loaded
	}
	e.st.cur.Store(res.indexed())
	return e, nil
}

// seedResources makes the seed's resources, as the control plane's calls
// would: the same objects, ids and ARNs, created now, one microsecond
// (the precision of Roles Anywhere's timestamps) apart in the seed's
// order, so that lists, oldest first, follow the seed as they would
// follow the calls.
func (e *Emulator) seedResources() (*resources, error) {
	start := e.now().UTC()
	n := 0
	tick := func() time.Time {
		n++
		return start.Add(time.Duration(n-1) * time.Microsecond)
	}
	res := newResources()
	for _, ta := range e.seed.TrustAnchors {
		c := *ta
		now := tick()
		c.CreatedAt, c.UpdatedAt = now, now
		c.CRLs = nil
		res.anchors[c.ID] = &c
		for _, crl := range ta.CRLs {
			id, err := e.newID()
			if err != nil {
				return nil, err
			}
			cc := *crl
			cc.ID, cc.ARN, cc.TrustAnchorARN = id, e.st.arn("rolesanywhere", e.st.region, "crl/"+id), ta.ARN
			now := tick()
			cc.CreatedAt, cc.UpdatedAt = now, now
			// Refusals name the CRL resource as ListCrls shows it, as for an
			// imported CRL and after a restart from a state file.
			cc.Source = cc.Name
			res.crls[id] = &cc
		}
	}
	for _, p := range e.seed.Profiles {
		c := *p
		now := tick()
		c.CreatedAt, c.UpdatedAt = now, now
		c.CreatedBy = e.seedCreator()
		c.AttributeMappings = defaultAttributeMappings()
		res.profiles[c.ID] = &c
	}
	for _, r := range e.seed.Roles {
		c := *r
		c.CreatedAt = start
		res.roles[c.Name] = &c
	}
	return res, nil
}

// seedCreator is the createdBy of resources the seed makes: its first
// operator, or the account's root.
func (e *Emulator) seedCreator() string {
	if len(e.seed.Operators) > 0 {
		return e.operatorARN(e.seed.Operators[0])
	}
	return "arn:" + e.seed.Partition + ":iam::" + e.seed.Account + ":root"
}

func (e *Emulator) operatorARN(op *Operator) string {
	return "arn:" + e.seed.Partition + ":iam::" + e.seed.Account + ":user/" + op.Name
}

// newID makes a random (version 4) UUID, as AWS's resource ids are.
func (e *Emulator) newID() (string, error) {
	var b [16]byte
	if _, err := io.ReadFull(e.rand, b[:]); err != nil {
		return "", fmt.Errorf("generating an id: %w", err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:]), nil
}

// Seed returns the resources the emulator serves.
func (e *Emulator) Seed() *Seed { return e.seed }

// ActiveCredentials returns how many issued credentials are remembered.
func (e *Emulator) ActiveCredentials() int {
	return e.creds.len(e.now())
}

// Known reports whether the emulator remembers credentials with this
// access key id (expired ones included, until they are dropped).
func (e *Emulator) Known(accessKeyID string) bool {
	return e.creds.get(accessKeyID) != nil
}

// maxCachedCertificates bounds the parsed-certificate cache: twice the
// chains the chain cache holds, a leaf and an intermediate each.
const maxCachedCertificates = 2 * maxCachedChains

// maxBody caps request bodies: CreateSession and STS bodies are tiny.
const maxBody = 64 << 10

// ServeHTTP routes POST /sessions to CreateSession, GET /health to the
// health check, and anything carrying an Action (the AWS Query protocol)
// to STS.
func (e *Emulator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// AWS answers every request with its id in x-amzn-RequestId, which
	// the SDKs put in their errors and response metadata; the Query
	// protocol's <RequestId> in the body is the same id.
	id := e.requestID()
	w.Header().Set(requestIDHeader, id)
	r = r.WithContext(context.WithValue(r.Context(), requestIDKey{}, id))
	switch {
	case r.URL.Path == "/health":
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"status":"ok"}`+"\n")
	case r.URL.Path == "/sessions":
		e.createSession(w, r)
	case r.URL.Path == "/":
		if signedFor(r) == "iam" {
			e.iam(w, r)
			return
		}
		e.sts(w, r)
	case isRolesAnywherePath(r.URL.EscapedPath()):
		e.rolesAnywhere(w, r)
	default:
		writeJSONError(w, &apiError{
			status: http.StatusNotFound, code: "UnknownOperationException",
			message: "Unknown operation", rule: "no operation at " + truncate(r.URL.Path) + " (the emulator serves POST /sessions, STS and IAM at /, Roles Anywhere's control plane, GET /health)",
		})
	}
}

// requestIDHeader carries the request's id in every answer.
const requestIDHeader = "X-Amzn-Requestid"

type requestIDKey struct{}

// requestIDOf returns the id ServeHTTP gave r (a fresh one for a request
// that did not come through it).
func (e *Emulator) requestIDOf(r *http.Request) string {
	if id, ok := r.Context().Value(requestIDKey{}).(string); ok {
		return id
	}
	return e.requestID()
}

// signedFor returns the service a SigV4 Authorization header is scoped
// to ("" when there is none or it does not parse): IAM and STS share the
// Query protocol and the path /, and only the scope tells them apart.
func signedFor(r *http.Request) string {
	a, err := sigv4.ParseAuthorization(r.Header.Get("Authorization"), sigv4.AlgorithmHMAC)
	if err != nil {
		return ""
	}
	return a.Service
}

// Outputs is what `keyless emulator --outputs` writes, shaped like
// `terraform output -json` flattened: resource names to ARNs.
type Outputs struct {
	Endpoint     string            `json:"endpoint,omitempty"`
	Account      string            `json:"account"`
	Region       string            `json:"region"`
	TrustAnchors map[string]string `json:"trustAnchors"`
	Profiles     map[string]string `json:"profiles"`
	Roles        map[string]string `json:"roles"`
}

// Outputs returns the ARNs of every resource the emulator serves now, by
// name (when names repeat, the most recently created wins).
func (e *Emulator) Outputs(endpoint string) Outputs {
	r := e.st.snapshot()
	o := Outputs{Endpoint: endpoint, Account: e.st.account, Region: e.st.region,
		TrustAnchors: map[string]string{}, Profiles: map[string]string{}, Roles: map[string]string{}}
	for _, t := range sortedByCreation(r.anchors, func(t *TrustAnchor) (int64, string) { return t.CreatedAt.UnixNano(), t.ID }) {
		o.TrustAnchors[t.Name] = t.ARN
	}
	for _, p := range sortedByCreation(r.profiles, func(p *Profile) (int64, string) { return p.CreatedAt.UnixNano(), p.ID }) {
		o.Profiles[p.Name] = p.ARN
	}
	for _, ro := range r.roles {
		o.Roles[ro.Name] = ro.ARN
	}
	return o
}

// Summary lists each resource the emulator serves now with its ARN, one
// per line, for people.
func (e *Emulator) Summary() string {
	r := e.st.snapshot()
	var lines []string
	for _, t := range sortedByCreation(r.anchors, func(t *TrustAnchor) (int64, string) { return t.CreatedAt.UnixNano(), t.ID }) {
		lines = append(lines, "trust anchor "+t.Name+": "+t.ARN+disabled(t.Enabled))
	}
	for _, p := range sortedByCreation(r.profiles, func(p *Profile) (int64, string) { return p.CreatedAt.UnixNano(), p.ID }) {
		lines = append(lines, "profile "+p.Name+": "+p.ARN+disabled(p.Enabled))
	}
	for _, name := range sortedKeys(r.roles) {
		lines = append(lines, "role "+name+": "+r.roles[name].ARN)
	}
	if len(e.operators) > 0 {
		lines = append(lines, fmt.Sprintf("control plane: %d operator key(s) from the seed", len(e.operators)))
	}
	return strings.Join(lines, "\n") + "\n"
}

func disabled(enabled bool) string {
	if enabled {
		return ""
	}
	return " (disabled)"
}

// Outputs returns the ARNs of every resource by name.
func (s *Seed) Outputs(endpoint string) Outputs {
	o := Outputs{Endpoint: endpoint, Account: s.Account, Region: s.Region,
		TrustAnchors: map[string]string{}, Profiles: map[string]string{}, Roles: map[string]string{}}
	for _, t := range s.TrustAnchors {
		o.TrustAnchors[t.Name] = t.ARN
	}
	for _, p := range s.Profiles {
		o.Profiles[p.Name] = p.ARN
	}
	for _, r := range s.Roles {
		o.Roles[r.Name] = r.ARN
	}
	return o
}

// apiError is a refusal: what the client sees (status, code, message) and
// the rule that failed, which goes to the log and, after the message, to
// the client too: the emulator's point is to say why.
type apiError struct {
	status  int
	code    string
	message string
	rule    string
}

func (e *apiError) Error() string { return e.code + ": " + e.clientMessage() }

func (e *apiError) clientMessage() string {
	if e.rule == "" {
		return e.message
	}
	return e.message + " (keyless emulator: " + e.rule + ")"
}

func writeJSONError(w http.ResponseWriter, e *apiError) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Amzn-ErrorType", e.code)
	w.WriteHeader(e.status)
	_ = json.NewEncoder(w).Encode(map[string]string{"message": e.clientMessage()})
}

// truncate keeps client-supplied text in messages and logs short.
func truncate(s string) string {
	if len(s) > 100 {
		return strings.ToValidUTF8(s[:100], "") + "..."
	}
	return s
}

// credential is an issued set of temporary credentials and who they are.
type credential struct {
	AccessKeyID, SecretAccessKey, SessionToken string
	Expiration                                 time.Time
	Role                                       *Role
	SessionName                                string
	heapIndex                                  int
}

// credentialStore remembers issued credentials until they expire, at most
// max of them, in a map by access key id and a min-heap by expiry.
type credentialStore struct {
	mu   sync.Mutex
	byID map[string]*credential
	heap []*credential
	max  int
}

func newCredentialStore(max int) *credentialStore {
	return &credentialStore{byID: map[string]*credential{}, max: max}
}

func (s *credentialStore) add(c *credential, now time.Time) (evicted int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dropExpired(now)
	for len(s.heap) >= s.max {
		s.pop()
		evicted++
	}
	s.byID[c.AccessKeyID] = c
	c.heapIndex = len(s.heap)
	s.heap = append(s.heap, c)
	s.up(c.heapIndex)
	return evicted
}

// get returns the credential for an access key id, even if expired (the
// caller distinguishes ExpiredToken from an unknown key).
func (s *credentialStore) get(id string) *credential {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.byID[id]
}

func (s *credentialStore) len(now time.Time) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dropExpired(now)
	return len(s.heap)
}

// expiredGrace keeps expired credentials a little longer, so a client
// using them just after expiry hears ExpiredToken rather than an unknown
// key.
const expiredGrace = 15 * time.Minute

func (s *credentialStore) dropExpired(now time.Time) {
	for len(s.heap) > 0 && now.Sub(s.heap[0].Expiration) > expiredGrace {
		s.pop()
	}
}

func (s *credentialStore) pop() {
	c := s.heap[0]
	last := len(s.heap) - 1
	s.swap(0, last)
	s.heap = s.heap[:last]
	if last > 0 {
		s.down(0)
	}
	delete(s.byID, c.AccessKeyID)
}

func (s *credentialStore) less(i, j int) bool {
	return s.heap[i].Expiration.Before(s.heap[j].Expiration)
}

func (s *credentialStore) swap(i, j int) {
	s.heap[i], s.heap[j] = s.heap[j], s.heap[i]
	s.heap[i].heapIndex = i
	s.heap[j].heapIndex = j
}

func (s *credentialStore) up(i int) {
	for i > 0 {
		parent := (i - 1) / 2
		if !s.less(i, parent) {
			return
		}
		s.swap(i, parent)
		i = parent
	}
}

func (s *credentialStore) down(i int) {
	n := len(s.heap)
	for {
		smallest := i
		for _, c := range []int{2*i + 1, 2*i + 2} {
			if c < n && s.less(c, smallest) {
				smallest = c
			}
		}
		if smallest == i {
			return
		}
		s.swap(i, smallest)
		i = smallest
	}
}
