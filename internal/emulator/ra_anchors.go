package emulator

import (
	"fmt"
	"net/http"
	"strings"
)

// Trust anchors: CreateTrustAnchor, GetTrustAnchor, ListTrustAnchors,
// UpdateTrustAnchor, DeleteTrustAnchor, Enable/DisableTrustAnchor.

func registerRAAnchors() {
	registerRA(http.MethodPost, "/trustanchors", "CreateTrustAnchor", (*Emulator).createTrustAnchor)
	registerRA(http.MethodGet, "/trustanchors", "ListTrustAnchors", (*Emulator).listTrustAnchors)
	registerRA(http.MethodGet, "/trustanchor/{id}", "GetTrustAnchor", (*Emulator).getTrustAnchor)
	registerRA(http.MethodPatch, "/trustanchor/{id}", "UpdateTrustAnchor", (*Emulator).updateTrustAnchor)
	registerRA(http.MethodDelete, "/trustanchor/{id}", "DeleteTrustAnchor", (*Emulator).deleteTrustAnchor)
	registerRA(http.MethodPost, "/trustanchor/{id}/enable", "EnableTrustAnchor", (*Emulator).enableTrustAnchor)
	registerRA(http.MethodPost, "/trustanchor/{id}/disable", "DisableTrustAnchor", (*Emulator).disableTrustAnchor)
}

// Wire shapes (rest-json), member names as in AWS's model.
type jsonSource struct {
	SourceType string         `json:"sourceType"`
	SourceData jsonSourceData `json:"sourceData"`
}

type jsonSourceData struct {
	X509CertificateData string `json:"x509CertificateData,omitempty"`
	AcmPcaArn           string `json:"acmPcaArn,omitempty"`
}

type jsonTrustAnchor struct {
	TrustAnchorID        string                `json:"trustAnchorId"`
	TrustAnchorArn       string                `json:"trustAnchorArn"`
	Name                 string                `json:"name"`
	Source               jsonSource            `json:"source"`
	Enabled              bool                  `json:"enabled"`
	CreatedAt            string                `json:"createdAt"`
	UpdatedAt            string                `json:"updatedAt"`
	NotificationSettings []NotificationSetting `json:"notificationSettings"`
}

type trustAnchorResponse struct {
	TrustAnchor jsonTrustAnchor `json:"trustAnchor"`
}

// defaultNotificationSettings are the settings AWS gives a trust anchor
// created without any: both expiry events, 45 days ahead, on every
// channel, configured by the service.
func defaultNotificationSettings() []NotificationSetting {
	return []NotificationSetting{
		{Enabled: true, Event: "CA_CERTIFICATE_EXPIRY", Threshold: 45, Channel: "ALL", ConfiguredBy: "rolesanywhere.amazonaws.com"},
		{Enabled: true, Event: "END_ENTITY_CERTIFICATE_EXPIRY", Threshold: 45, Channel: "ALL", ConfiguredBy: "rolesanywhere.amazonaws.com"},
	}
}

func toJSONAnchor(ta *TrustAnchor) jsonTrustAnchor {
	ns := ta.NotificationSettings
	if ns == nil {
		ns = defaultNotificationSettings()
	}
	return jsonTrustAnchor{TrustAnchorID: ta.ID, TrustAnchorArn: ta.ARN, Name: ta.Name,
		Source:  jsonSource{SourceType: "CERTIFICATE_BUNDLE", SourceData: jsonSourceData{X509CertificateData: ta.BundlePEM}},
		Enabled: ta.Enabled, CreatedAt: isoTime(ta.CreatedAt), UpdatedAt: isoTime(ta.UpdatedAt), NotificationSettings: ns}
}

type jsonSourceIn struct {
	SourceType *string `json:"sourceType"`
	SourceData *struct {
		X509CertificateData *string `json:"x509CertificateData"`
		AcmPcaArn           *string `json:"acmPcaArn"`
	} `json:"sourceData"`
}

// anchorSource checks a trust anchor's source and parses its bundle.
func anchorSource(src *jsonSourceIn) (*TrustAnchor, *apiError) {
	if src == nil || src.SourceData == nil {
		return nil, validationError("source is required: {sourceType: CERTIFICATE_BUNDLE, sourceData: {x509CertificateData: PEM}}")
	}
	typ := ""
	if src.SourceType != nil {
		typ = *src.SourceType
	}
	switch typ {
	case "CERTIFICATE_BUNDLE", "":
	case "AWS_ACM_PCA", "SELF_SIGNED_REPOSITORY":
		return nil, &apiError{status: http.StatusBadRequest, code: "ValidationException", message: "Unsupported source type " + typ,
			rule: "the emulator has no AWS Private CA; use sourceType CERTIFICATE_BUNDLE with the CA bundle (keyless ca bundle)"}
	default:
		return nil, validationError("1 validation error detected: Value '%s' at 'source.sourceType' failed to satisfy constraint: Member must satisfy enum value set: [AWS_ACM_PCA, CERTIFICATE_BUNDLE, SELF_SIGNED_REPOSITORY]", truncate(typ))
	}
	if src.SourceData.X509CertificateData == nil {
		return nil, validationError("source.sourceData.x509CertificateData is required for sourceType CERTIFICATE_BUNDLE")
	}
	data := strings.TrimSpace(*src.SourceData.X509CertificateData)
	if n, long := bundleTooLong(data); long {
		return nil, &apiError{status: http.StatusBadRequest, code: "ValidationException",
			message: fmt.Sprintf("1 validation error detected: Value at 'source.sourceData.x509CertificateData' failed to satisfy constraint: Member must have length less than or equal to %d", maxBundleChars),
			rule:    fmt.Sprintf("the bundle is %d characters", n)}
	}
	// The quota of certificates and the rules for CA certificates: AWS
	// answers ValidationException, the only client error its model gives
	// CreateTrustAnchor and UpdateTrustAnchor; its wording is not
	// documented.
	certs, err := parseBundle([]byte(data))
	if err != nil {
		return nil, &apiError{status: http.StatusBadRequest, code: "ValidationException", message: "Invalid certificate bundle", rule: err.Error()}
	}
	ta := &TrustAnchor{}
	ta.setCertificates(certs, *src.SourceData.X509CertificateData)
	return ta, nil
}

func (e *Emulator) createTrustAnchor(c *raCall) (int, any, *apiError) {
	var in struct {
		Name                 *string               `json:"name"`
		Source               *jsonSourceIn         `json:"source"`
		Enabled              *bool                 `json:"enabled"`
		Tags                 []jsonTag             `json:"tags"`
		NotificationSettings []NotificationSetting `json:"notificationSettings"`
	}
	if fail := decodeJSON(c.body, &in); fail != nil {
		return 0, nil, fail
	}
	if in.Name == nil || !validResourceName(*in.Name) {
		return 0, nil, validationError("name is required: 1 to 255 of A-Z a-z 0-9 space _ -")
	}
	ta, fail := anchorSource(in.Source)
	if fail != nil {
		return 0, nil, fail
	}
	tags, fail := raTags(in.Tags)
	if fail != nil {
		return 0, nil, fail
	}
	settings, fail := notificationSettings(nil, in.NotificationSettings, e.st.account)
	if fail != nil {
		return 0, nil, fail
	}
	id, err := e.newID()
	if err != nil {
		return 0, nil, internalError(err)
	}
	now := e.now().UTC()
	ta.Name, ta.ID, ta.ARN = *in.Name, id, e.st.arn("rolesanywhere", e.st.region, "trust-anchor/"+id)
	// Enabled unless asked otherwise, as AWS creates them.
	ta.Enabled = in.Enabled == nil || *in.Enabled
	ta.CreatedAt, ta.UpdatedAt = now, now
	ta.NotificationSettings = settings
	if err := e.st.update(func(r *resources) error {
		r.anchors[id] = ta
		if len(tags) > 0 {
			r.tags[ta.ARN] = tags
		}
		return nil
	}); err != nil {
		return 0, nil, asAPIError(err)
	}
	return http.StatusCreated, trustAnchorResponse{toJSONAnchor(ta)}, nil
}

// anchorByID finds a trust anchor by the id in a request's path.
func anchorByID(r *resources, id string) (*TrustAnchor, *apiError) {
	return byID(r.anchors, id, "trust anchor")
}

func (e *Emulator) getTrustAnchor(c *raCall) (int, any, *apiError) {
	ta, fail := anchorByID(e.st.snapshot(), c.params["id"])
	if fail != nil {
		return 0, nil, fail
	}
	return http.StatusOK, trustAnchorResponse{toJSONAnchor(ta)}, nil
}

func (e *Emulator) listTrustAnchors(c *raCall) (int, any, *apiError) {
	items, next, fail := listPage(c, e.st.snapshot().anchors, func(v *TrustAnchor) (int64, string) { return v.CreatedAt.UnixNano(), v.ID }, toJSONAnchor)
	if fail != nil {
		return 0, nil, fail
	}
	return http.StatusOK, struct {
		TrustAnchors []jsonTrustAnchor `json:"trustAnchors"`
		NextToken    string            `json:"nextToken,omitempty"`
	}{items, next}, nil
}

func (e *Emulator) updateTrustAnchor(c *raCall) (int, any, *apiError) {
	var in struct {
		Name   *string       `json:"name"`
		Source *jsonSourceIn `json:"source"`
	}
	if fail := decodeJSON(c.body, &in); fail != nil {
		return 0, nil, fail
	}
	if in.Name != nil && !validResourceName(*in.Name) {
		return 0, nil, validationError("name must be 1 to 255 of A-Z a-z 0-9 space _ -")
	}
	var fresh *TrustAnchor
	if in.Source != nil {
		var fail *apiError
		if fresh, fail = anchorSource(in.Source); fail != nil {
			return 0, nil, fail
		}
	}
	return e.changeAnchor(c.params["id"], func(n *TrustAnchor) *apiError {
		if in.Name != nil {
			n.Name = *in.Name
		}
		if fresh != nil {
			n.setCertificates(fresh.Certificates, fresh.BundlePEM)
		}
		return nil
	})
}

// changeAnchor replaces the trust anchor with this id by a copy fn
// changes (fn must replace, not modify, the copy's slices), and answers
// with it.
func (e *Emulator) changeAnchor(id string, fn func(n *TrustAnchor) *apiError) (int, any, *apiError) {
	var out *TrustAnchor
	err := e.st.update(func(r *resources) error {
		ta, fail := anchorByID(r, id)
		if fail != nil {
			return fail
		}
		n := *ta
		if fail := fn(&n); fail != nil {
			return fail
		}
		n.UpdatedAt = e.now().UTC()
		r.anchors[n.ID] = &n
		out = &n
		return nil
	})
	if err != nil {
		return 0, nil, asAPIError(err)
	}
	return http.StatusOK, trustAnchorResponse{toJSONAnchor(out)}, nil
}

func (e *Emulator) deleteTrustAnchor(c *raCall) (int, any, *apiError) {
	var out *TrustAnchor
	err := e.st.update(func(r *resources) error {
		ta, fail := anchorByID(r, c.params["id"])
		if fail != nil {
			return fail
		}
		delete(r.anchors, ta.ID)
		delete(r.tags, ta.ARN)
		// AWS deletes the anchor's CRLs with it.
		for id, crl := range r.crls {
			if crl.TrustAnchorARN == ta.ARN {
				delete(r.crls, id)
				delete(r.tags, crl.ARN)
			}
		}
		out = ta
		return nil
	})
	if err != nil {
		return 0, nil, asAPIError(err)
	}
	return http.StatusOK, trustAnchorResponse{toJSONAnchor(out)}, nil
}

func (e *Emulator) enableTrustAnchor(c *raCall) (int, any, *apiError) {
	return e.setAnchorEnabled(c, true)
}

func (e *Emulator) disableTrustAnchor(c *raCall) (int, any, *apiError) {
	return e.setAnchorEnabled(c, false)
}

func (e *Emulator) setAnchorEnabled(c *raCall, enabled bool) (int, any, *apiError) {
	return e.changeAnchor(c.params["id"], func(n *TrustAnchor) *apiError {
		n.Enabled = enabled
		return nil
	})
}
