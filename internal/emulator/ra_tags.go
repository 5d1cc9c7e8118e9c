package emulator

import (
	"net/http"
	"slices"
)

// Tags of trust anchors, profiles and CRLs: TagResource, UntagResource,
// ListTagsForResource, by ARN.

func registerRATags() {
	registerRA(http.MethodGet, "/ListTagsForResource", "ListTagsForResource", (*Emulator).listTagsForResource)
	registerRA(http.MethodPost, "/TagResource", "TagResource", (*Emulator).tagResource)
	registerRA(http.MethodPost, "/UntagResource", "UntagResource", (*Emulator).untagResource)
}

// maxResourceARNChars is the API's limit on resourceArn.
const maxResourceARNChars = 1011

// taggable checks that arn names a trust anchor, profile or CRL.
func taggable(r *resources, arn string, given bool) *apiError {
	if !given {
		return validationError("1 validation error detected: Value null at 'resourceArn' failed to satisfy constraint: Member must not be null")
	}
	if arn == "" || len(arn) > maxResourceARNChars {
		return validationError("1 validation error detected: Value at 'resourceArn' failed to satisfy constraint: Member must have length between 1 and %d", maxResourceARNChars)
	}
	if r.anchorByARN(arn) != nil || r.profileByARN(arn) != nil {
		return nil
	}
	if c := r.crls[idFromARN(arn, "crl/")]; c != nil && c.ARN == arn {
		return nil
	}
	return &apiError{status: http.StatusNotFound, code: "ResourceNotFoundException", message: "Resource not found",
		rule: "no trust anchor, profile or CRL " + truncate(arn)}
}

func (e *Emulator) listTagsForResource(c *raCall) (int, any, *apiError) {
	r := e.st.snapshot()
	arn := c.query.Get("resourceArn")
	if fail := taggable(r, arn, c.query.Has("resourceArn")); fail != nil {
		return 0, nil, fail
	}
	tags := toJSONTags(r.tags[arn])
	if tags == nil {
		tags = []jsonTag{}
	}
	return http.StatusOK, struct {
		Tags []jsonTag `json:"tags"`
	}{tags}, nil
}

func (e *Emulator) tagResource(c *raCall) (int, any, *apiError) {
	var in struct {
		ResourceArn *string   `json:"resourceArn"`
		Tags        []jsonTag `json:"tags"`
	}
	if fail := decodeJSON(c.body, &in); fail != nil {
		return 0, nil, fail
	}
	if in.Tags == nil {
		return 0, nil, validationError("1 validation error detected: Value null at 'tags' failed to satisfy constraint: Member must not be null")
	}
	tags, fail := raTags(in.Tags)
	if fail != nil {
		return 0, nil, fail
	}
	err := e.st.update(func(r *resources) error {
		arn := ""
		if in.ResourceArn != nil {
			arn = *in.ResourceArn
		}
		if fail := taggable(r, arn, in.ResourceArn != nil); fail != nil {
			return fail
		}
		// A key already on the resource takes the new value.
		next := slices.Clone(r.tags[arn])
		for _, t := range tags {
			i := slices.IndexFunc(next, func(x Tag) bool { return x.Key == t.Key })
			if i >= 0 {
				next[i] = t
			} else {
				next = append(next, t)
			}
		}
		if len(next) > maxRATags {
			return tooManyTags(len(next))
		}
		r.tags[arn] = next
		return nil
	})
	if err != nil {
		return 0, nil, asAPIError(err)
	}
	return http.StatusCreated, nil, nil
}

func (e *Emulator) untagResource(c *raCall) (int, any, *apiError) {
	var in struct {
		ResourceArn *string  `json:"resourceArn"`
		TagKeys     []string `json:"tagKeys"`
	}
	if fail := decodeJSON(c.body, &in); fail != nil {
		return 0, nil, fail
	}
	if in.TagKeys == nil {
		return 0, nil, validationError("1 validation error detected: Value null at 'tagKeys' failed to satisfy constraint: Member must not be null")
	}
	if len(in.TagKeys) > maxRATagList {
		return 0, nil, validationError("1 validation error detected: 'tagKeys' has %d members; at most %d are allowed", len(in.TagKeys), maxRATagList)
	}
	for _, k := range in.TagKeys {
		if k == "" || len(k) > maxTagKeyLen {
			return 0, nil, validationError("1 validation error detected: a member of 'tagKeys' is not 1 to %d characters", maxTagKeyLen)
		}
	}
	err := e.st.update(func(r *resources) error {
		arn := ""
		if in.ResourceArn != nil {
			arn = *in.ResourceArn
		}
		if fail := taggable(r, arn, in.ResourceArn != nil); fail != nil {
			return fail
		}
		next := slices.DeleteFunc(slices.Clone(r.tags[arn]), func(t Tag) bool { return slices.Contains(in.TagKeys, t.Key) })
		if len(next) == 0 {
			delete(r.tags, arn)
		} else {
			r.tags[arn] = next
		}
		return nil
	})
	if err != nil {
		return 0, nil, asAPIError(err)
	}
	return http.StatusOK, nil, nil
}
