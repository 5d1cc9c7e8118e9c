package emulator

import (
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// resources is one version of everything the emulator serves. A version
// is never modified once published: a change clones the maps (clone),
// replaces the objects it changes with modified copies, and publishes the
// result, so CreateSession reads a consistent version without a lock, and
// a change that fails (a refused call, a state file that cannot be
// written) is simply not published.
type resources struct {
	// anchors, profiles and crls are keyed by id; roles by name.
	anchors  map[string]*TrustAnchor
	profiles map[string]*Profile
	crls     map[string]*CRL
	roles    map[string]*Role
	// tags are the Roles Anywhere tags of trust anchors, profiles and
	// CRLs, by ARN. (IAM role tags live on the Role.)
	tags map[string][]Tag

	// crlsByAnchor indexes crls by trust anchor ARN, so a session does
	// not scan every CRL. It is built when the version is published
	// (indexed) and is nil before: a version being changed has none.
	crlsByAnchor map[string][]*CRL
	// anchorsBySubject indexes anchors (their keys in anchors, in
	// order) by the subject of each certificate in their bundles, so a
	// refused session finds the anchors that could issue its chain
	// without scanning them all. Built with crlsByAnchor.
	anchorsBySubject map[string][]string
}

// indexed builds r's indexes and returns r, which must not change
// afterwards: state calls it on every version it publishes.
func (r *resources) indexed() *resources {
	r.crlsByAnchor = make(map[string][]*CRL, len(r.anchors))
	for _, id := range sortedKeys(r.crls) {
		c := r.crls[id]
		r.crlsByAnchor[c.TrustAnchorARN] = append(r.crlsByAnchor[c.TrustAnchorARN], c)
	}
	r.anchorsBySubject = make(map[string][]string, len(r.anchors))
	for _, id := range sortedKeys(r.anchors) {
		for _, c := range r.anchors[id].Certificates {
			ids := r.anchorsBySubject[string(c.RawSubject)]
			if len(ids) == 0 || ids[len(ids)-1] != id {
				r.anchorsBySubject[string(c.RawSubject)] = append(ids, id)
			}
		}
	}
	return r
}

// indexedFrom is indexed, reusing prev's indexes when r has the very
// same trust anchors and CRLs as prev (the indexes depend on nothing
// else, and published objects never change), as after a change to a
// profile, a role or tags: rebuilding them costs O(n log n) per change.
func (r *resources) indexedFrom(prev *resources) *resources {
	if prev != nil && prev.crlsByAnchor != nil && samePointers(prev.anchors, r.anchors) && samePointers(prev.crls, r.crls) {
		r.crlsByAnchor, r.anchorsBySubject = prev.crlsByAnchor, prev.anchorsBySubject
		return r
	}
	return r.indexed()
}

// samePointers reports whether a and b map the same keys to the same
// objects.
func samePointers[V comparable](a, b map[string]V) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range b {
		if av, ok := a[k]; !ok || av != v {
			return false
		}
	}
	return true
}

// anchorsIssuing returns the keys, in order, of the anchors with a
// certificate named as the issuer of one of certs: only they can end a
// chain of certs.
func (r *resources) anchorsIssuing(certs []*x509.Certificate) []string {
	if r.anchorsBySubject == nil {
		return sortedKeys(r.anchors)
	}
	var ids []string
	for _, c := range certs {
		ids = append(ids, r.anchorsBySubject[string(c.RawIssuer)]...)
	}
	slices.Sort(ids)
	return slices.Compact(ids)
}

// Tag is a key and value on a resource.
type Tag struct {
	Key, Value string
}

func newResources() *resources {
	return &resources{
		anchors:  map[string]*TrustAnchor{},
		profiles: map[string]*Profile{},
		crls:     map[string]*CRL{},
		roles:    map[string]*Role{},
		tags:     map[string][]Tag{},
	}
}

// clone copies the maps, not the objects: objects are replaced, never
// changed in place.
func (r *resources) clone() *resources {
	return &resources{
		anchors:  maps.Clone(r.anchors),
		profiles: maps.Clone(r.profiles),
		crls:     maps.Clone(r.crls),
		roles:    maps.Clone(r.roles),
		tags:     maps.Clone(r.tags),
	}
}

// anchorByARN returns the trust anchor an ARN names, or nil.
func (r *resources) anchorByARN(arn string) *TrustAnchor {
	ta := r.anchors[idFromARN(arn, "trust-anchor/")]
	if ta == nil || ta.ARN != arn {
		return nil
	}
	return ta
}

// profileByARN returns the profile an ARN names, or nil.
func (r *resources) profileByARN(arn string) *Profile {
	p := r.profiles[idFromARN(arn, "profile/")]
	if p == nil || p.ARN != arn {
		return nil
	}
	return p
}

// roleByARN returns the role an ARN names (path included), or nil.
func (r *resources) roleByARN(arn string) *Role {
	i := strings.LastIndexByte(arn, '/')
	if i < 0 {
		return nil
	}
	role := r.roles[arn[i+1:]]
	if role == nil || role.ARN != arn {
		return nil
	}
	return role
}

// roleByName finds a role as IAM does: names are unique regardless of
// case, and a lookup ignores case.
func (r *resources) roleByName(name string) *Role {
	if role := r.roles[name]; role != nil {
		return role
	}
	for n, role := range r.roles {
		if strings.EqualFold(n, name) {
			return role
		}
	}
	return nil
}

// crlsFor returns the CRLs imported for a trust anchor, enabled or not.
func (r *resources) crlsFor(anchorARN string) []*CRL {
	if r.crlsByAnchor != nil {
		return r.crlsByAnchor[anchorARN]
	}
	var out []*CRL
	for _, c := range r.crls {
		if c.TrustAnchorARN == anchorARN {
			out = append(out, c)
		}
	}
	return out
}

func idFromARN(arn, prefix string) string {
	i := strings.LastIndex(arn, ":"+prefix)
	if i < 0 {
		return ""
	}
	return arn[i+1+len(prefix):]
}

// state holds the current version of the resources and serialises
// changes to them.
type state struct {
	account, region, partition string

	cur atomic.Pointer[resources]
	// mu serialises update; readers never take it.
	mu sync.Mutex
	// persist, when set, durably records next, the version after prev,
	// before it is published (see journal.go); an error refuses the
	// change, and persist leaves the files holding prev.
	persist func(prev, next *resources) error
	// journal is the state file's writer, when there is one (persist
	// is its record).
	journal *journal
	// version counts published changes.
	version uint64
}

// snapshot returns the current version, for reading only.
func (st *state) snapshot() *resources { return st.cur.Load() }

// update applies fn to a copy of the current version and publishes the
// copy if fn succeeds and the copy is recorded (persist). fn must replace
// the objects it changes with copies, never change them in place.
func (st *state) update(fn func(r *resources) error) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	next := st.cur.Load().clone()
	if err := fn(next); err != nil {
		return err
	}
	if st.persist != nil {
		if err := st.persist(st.cur.Load(), next); err != nil {
			return &apiError{status: 500, code: "InternalServerException", message: "Internal error",
				rule: fmt.Sprintf("recording the change in the state file: %v", err)}
		}
	}
	st.cur.Store(next.indexedFrom(st.cur.Load()))
	st.version++
	return nil
}

// arn makes an ARN in the state's partition and account.
func (st *state) arn(service, region, resource string) string {
	return "arn:" + st.partition + ":" + service + ":" + region + ":" + st.account + ":" + resource
}

// bundleDigest identifies a trust anchor's certificates, so that a chain
// verified against an earlier bundle is not taken from the cache after
// the bundle changes.
func bundleDigest(ta *TrustAnchor) [32]byte {
	h := sha256.New()
	for _, c := range ta.Certificates {
		h.Write(c.Raw)
	}
	var d [32]byte
	h.Sum(d[:0])
	return d
}

// isoTime formats a time as Roles Anywhere's JSON timestamps are.
func isoTime(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.000000Z")
}

// sortedKeys returns m's keys in order, for deterministic output.
func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}
