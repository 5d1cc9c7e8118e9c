package emulator

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// IAM's list operations: Marker/MaxItems pagination, and the lists
// Terraform reads about a role that the emulator has nothing in.

func registerIAMList() {
	registerIAM("ListInstanceProfilesForRole", (*Emulator).listInstanceProfilesForRole)
}

// IAM's page sizes: MaxItems is 1 to 1000, 100 when not given.
const (
	iamDefaultMaxItems = 100
	iamMaxMaxItems     = 1000
)

// iamPageInfo is the end of every IAM list answer: whether there are
// more items, and the Marker that asks for them.
type iamPageInfo struct {
	IsTruncated bool   `xml:"IsTruncated"`
	Marker      string `xml:"Marker,omitempty"`
}

// iamPage cuts one page out of items, which are in ascending order of
// key, with unique keys. The Marker IAM answers with is opaque; here it is
// the key of the first item of the next page, so that a page is still
// right when items before it are deleted between calls (as Terraform
// does when it empties a role).
func iamPage[T any](p url.Values, items []T, key func(T) string) ([]T, iamPageInfo, *stsError) {
	size := iamDefaultMaxItems
	if v, ok := p["MaxItems"]; ok {
		n, err := strconv.Atoi(first(v))
		if err != nil || n < 1 || n > iamMaxMaxItems {
			return nil, iamPageInfo{}, iamInvalid("maxItems", first(v), fmt.Sprintf("Member must have value between 1 and %d", iamMaxMaxItems))
		}
		size = n
	}
	start := 0
	if v, ok := p["Marker"]; ok {
		raw, err := base64.RawURLEncoding.DecodeString(first(v))
		if err != nil || len(raw) == 0 {
			return nil, iamPageInfo{}, &stsError{status: http.StatusBadRequest, typ: "Sender", code: "ValidationError", message: "Invalid Marker.",
				rule: "a Marker is the one the previous page of this list answered with"}
		}
		from := string(raw)
		start, _ = slices.BinarySearchFunc(items, from, func(it T, k string) int { return strings.Compare(key(it), k) })
	}
	end := min(start+size, len(items))
	info := iamPageInfo{}
	if end < len(items) {
		info = iamPageInfo{IsTruncated: true, Marker: base64.RawURLEncoding.EncodeToString([]byte(key(items[end])))}
	}
	return items[start:end], info, nil
}

// xmlStrings is a list of strings as IAM's XML has it.
type xmlStrings struct {
	Member []string `xml:"member"`
}

// listInstanceProfilesForRole answers with no instance profiles: the
// emulator has none (Terraform lists them before it deletes a role).
func (e *Emulator) listInstanceProfilesForRole(p url.Values, _ caller) (any, *stsError) {
	name, fail := roleNameParam(p)
	if fail != nil {
		return nil, fail
	}
	if e.st.snapshot().roleByName(name) == nil {
		return nil, iamNoSuchRole(name)
	}
	_, info, fail := iamPage(p, []string(nil), func(s string) string { return s })
	if fail != nil {
		return nil, fail
	}
	return struct {
		InstanceProfiles xmlStrings `xml:"InstanceProfiles"`
		iamPageInfo
	}{iamPageInfo: info}, nil
}

// iamEscape URL-encodes a policy document as IAM's answers carry it:
// every byte but the unreserved characters of RFC 3986 is %XX-encoded,
// so that both path-style and query-style decoding (Terraform uses
// url.QueryUnescape) give the document back.
func iamEscape(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(s) * 2)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

// roleNameParam reads and checks RoleName.
func roleNameParam(p url.Values) (string, *stsError) {
	name := first(p["RoleName"])
	if !validIAMName(name, 64) {
		return "", iamInvalid("roleName", name, "Member must satisfy regular expression pattern: [\\w+=,.@-]+ and have length between 1 and 64")
	}
	return name, nil
}

// changeRole replaces the role named name with a copy changed by fn.
// The copy's slices and map are its own, so fn may change them in place;
// the published role is never touched. It returns the new role.
func (e *Emulator) changeRole(name string, fn func(r *resources, role *Role) *stsError) (*Role, *stsError) {
	var changed *Role
	err := e.st.update(func(r *resources) error {
		cur := r.roleByName(name)
		if cur == nil {
			return iamNoSuchRole(name)
		}
		c := *cur
		c.Tags = slices.Clone(cur.Tags)
		c.ManagedPolicyARNs = slices.Clone(cur.ManagedPolicyARNs)
		c.InlinePolicies = cloneMap(cur.InlinePolicies)
		if fail := fn(r, &c); fail != nil {
			return fail
		}
		r.roles[c.Name] = &c
		changed = &c
		return nil
	})
	if err != nil {
		return nil, asSTSError(err)
	}
	return changed, nil
}

func cloneMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
