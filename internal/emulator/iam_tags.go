package emulator

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// IAM role tags: TagRole, UntagRole, ListRoleTags.

func registerIAMTags() {
	registerIAM("TagRole", (*Emulator).tagRole)
	registerIAM("UntagRole", (*Emulator).untagRole)
	registerIAM("ListRoleTags", (*Emulator).listRoleTags)
}

// maxIAMTags is IAM's limit of tags on a role.
const maxIAMTags = 50

func (e *Emulator) tagRole(p url.Values, _ caller) (any, *stsError) {
	name, fail := roleNameParam(p)
	if fail != nil {
		return nil, fail
	}
	tags, fail := queryTags(p, "Tags")
	if fail != nil {
		return nil, fail
	}
	if len(tags) == 0 {
		return nil, iamInvalid("tags", "[]", "Member must have length greater than or equal to 1")
	}
	_, fail = e.changeRole(name, func(_ *resources, role *Role) *stsError {
		for _, t := range tags {
			// A tag whose key is already there (in any case) replaces it.
			role.Tags = slices.DeleteFunc(role.Tags, func(old Tag) bool { return strings.EqualFold(old.Key, t.Key) })
			role.Tags = append(role.Tags, t)
		}
		if len(role.Tags) > maxIAMTags {
			return &stsError{status: http.StatusConflict, typ: "Sender", code: "LimitExceeded", message: "The number of tags has reached the maximum limit.",
				rule: fmt.Sprintf("role %s would have %d tags; IAM allows %d", role.Name, len(role.Tags), maxIAMTags)}
		}
		return nil
	})
	return nil, fail
}

func (e *Emulator) untagRole(p url.Values, _ caller) (any, *stsError) {
	name, fail := roleNameParam(p)
	if fail != nil {
		return nil, fail
	}
	var keys []string
	for _, m := range members(p, "TagKeys") {
		k := first(p[m])
		if k == "" || len(k) > maxTagKeyLen {
			return nil, iamInvalid("tagKeys.member", k, "Member must have length between 1 and 128")
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 || len(keys) > maxIAMTags {
		return nil, iamInvalid("tagKeys", fmt.Sprint(len(keys), " keys"), fmt.Sprintf("Member must have length between 1 and %d", maxIAMTags))
	}
	_, fail = e.changeRole(name, func(_ *resources, role *Role) *stsError {
		// Keys that are not there are ignored, as IAM does.
		role.Tags = slices.DeleteFunc(role.Tags, func(t Tag) bool {
			return slices.ContainsFunc(keys, func(k string) bool { return strings.EqualFold(k, t.Key) })
		})
		if len(role.Tags) == 0 {
			role.Tags = nil
		}
		return nil
	})
	return nil, fail
}

func (e *Emulator) listRoleTags(p url.Values, _ caller) (any, *stsError) {
	name, fail := roleNameParam(p)
	if fail != nil {
		return nil, fail
	}
	role := e.st.snapshot().roleByName(name)
	if role == nil {
		return nil, iamNoSuchRole(name)
	}
	tags := sortedTags(role.Tags)
	page, info, fail := iamPage(p, tags, func(t Tag) string { return t.Key })
	if fail != nil {
		return nil, fail
	}
	out := struct {
		Tags xmlTags `xml:"Tags"`
		iamPageInfo
	}{iamPageInfo: info}
	for _, t := range page {
		out.Tags.Member = append(out.Tags.Member, xmlTag(t))
	}
	return out, nil
}
