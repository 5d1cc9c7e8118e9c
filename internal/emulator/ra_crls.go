package emulator

import (
	"fmt"
	"net/http"

	"github.com/keyless-dev/keyless/internal/rolesanywhere"
)

// CRLs: ImportCrl, GetCrl, ListCrls, UpdateCrl, DeleteCrl,
// Enable/DisableCrl. CreateSession applies a trust anchor's enabled CRLs
// (checkRevocation).

func registerRACRLs() {
	registerRA(http.MethodPost, "/crls", "ImportCrl", (*Emulator).importCRL)
	registerRA(http.MethodGet, "/crls", "ListCrls", (*Emulator).listCRLs)
	registerRA(http.MethodGet, "/crl/{id}", "GetCrl", (*Emulator).getCRL)
	registerRA(http.MethodPatch, "/crl/{id}", "UpdateCrl", (*Emulator).updateCRL)
	registerRA(http.MethodDelete, "/crl/{id}", "DeleteCrl", (*Emulator).deleteCRL)
	registerRA(http.MethodPost, "/crl/{id}/enable", "EnableCrl", (*Emulator).enableCRL)
	registerRA(http.MethodPost, "/crl/{id}/disable", "DisableCrl", (*Emulator).disableCRL)
}

// maxCRLBytes is the API's limit on crlData (decoded).
const maxCRLBytes = 300_000

type jsonCRL struct {
	CrlID          string `json:"crlId"`
	CrlArn         string `json:"crlArn"`
	Name           string `json:"name"`
	Enabled        bool   `json:"enabled"`
	CrlData        []byte `json:"crlData"` // base64, as the model's blob
	TrustAnchorArn string `json:"trustAnchorArn"`
	CreatedAt      string `json:"createdAt"`
	UpdatedAt      string `json:"updatedAt"`
}

type crlResponse struct {
	Crl jsonCRL `json:"crl"`
}

func toJSONCRL(c *CRL) jsonCRL {
	return jsonCRL{CrlID: c.ID, CrlArn: c.ARN, Name: c.Name, Enabled: c.Enabled, CrlData: c.Data, TrustAnchorArn: c.TrustAnchorARN,
		CreatedAt: isoTime(c.CreatedAt), UpdatedAt: isoTime(c.UpdatedAt)}
}

// parseCRLData checks crlData (PEM, as AWS documents, or DER) and parses
// it.
func parseCRLData(data []byte) (*CRL, *apiError) {
	if len(data) == 0 || len(data) > maxCRLBytes {
		return nil, validationError("1 validation error detected: Value at 'crlData' failed to satisfy constraint: Member must have length between 1 and %d", maxCRLBytes)
	}
	crl, err := parseCRL(data)
	if err != nil {
		return nil, &apiError{status: http.StatusBadRequest, code: "ValidationException", message: "Invalid certificate revocation list", rule: err.Error()}
	}
	return crl, nil
}

// checkCRLFor refuses a CRL that names a CA of the anchor's bundle as
// its issuer but is not signed by it. A CRL of a CA outside the bundle
// (an intermediate) is kept: CreateSession checks its signature against
// the issuer in each request's chain.
func (e *Emulator) checkCRLFor(crl *CRL, ta *TrustAnchor) *apiError {
	inBundle, err := crlIssuerInBundle(crl, ta.Certificates)
	if err != nil {
		return &apiError{status: http.StatusBadRequest, code: "ValidationException", message: "Invalid certificate revocation list", rule: err.Error()}
	}
	if !inBundle {
		e.log.Warn("CRL issuer is not in the trust anchor's bundle; its signature is checked against the issuer in each request's chain",
			"crl", crl.Name, "issuer", crl.List.Issuer.String(), "trustAnchor", ta.Name)
	}
	return nil
}

func (e *Emulator) importCRL(c *raCall) (int, any, *apiError) {
	var in struct {
		Name           *string   `json:"name"`
		CrlData        []byte    `json:"crlData"`
		TrustAnchorArn *string   `json:"trustAnchorArn"`
		Enabled        *bool     `json:"enabled"`
		Tags           []jsonTag `json:"tags"`
	}
	if fail := decodeJSON(c.body, &in); fail != nil {
		return 0, nil, fail
	}
	if in.Name == nil || !validResourceName(*in.Name) {
		return 0, nil, validationError("1 validation error detected: Value at 'name' failed to satisfy constraint: Member is required, 1 to 255 of A-Z a-z 0-9 space _ -")
	}
	if in.TrustAnchorArn == nil {
		return 0, nil, validationError("1 validation error detected: Value null at 'trustAnchorArn' failed to satisfy constraint: Member must not be null")
	}
	if _, err := rolesanywhere.ParseTrustAnchorARN(*in.TrustAnchorArn); err != nil {
		return 0, nil, &apiError{status: http.StatusBadRequest, code: "ValidationException",
			message: "1 validation error detected: Value at 'trustAnchorArn' failed to satisfy constraint: Member must be a trust anchor ARN", rule: err.Error()}
	}
	crl, fail := parseCRLData(in.CrlData)
	if fail != nil {
		return 0, nil, fail
	}
	tags, fail := raTags(in.Tags)
	if fail != nil {
		return 0, nil, fail
	}
	id, err := e.newID()
	if err != nil {
		return 0, nil, internalError(err)
	}
	now := e.now().UTC()
	crl.ID, crl.ARN, crl.Name, crl.Source = id, e.st.arn("rolesanywhere", e.st.region, "crl/"+id), *in.Name, *in.Name
	crl.TrustAnchorARN = *in.TrustAnchorArn
	// Disabled unless asked: the API documents no default, and AWS's
	// examples enable a CRL explicitly (--enabled, or EnableCrl). A CRL
	// that would be applied on import is safer but would make a CRL
	// imported here act where the same call leaves AWS's inert.
	crl.Enabled = in.Enabled != nil && *in.Enabled
	crl.CreatedAt, crl.UpdatedAt = now, now
	err = e.st.update(func(r *resources) error {
		ta := r.anchorByARN(crl.TrustAnchorARN)
		if ta == nil {
			return &apiError{status: http.StatusNotFound, code: "ResourceNotFoundException", message: "Resource not found",
				rule: "no trust anchor " + truncate(crl.TrustAnchorARN)}
		}
		if n := len(r.crlsFor(ta.ARN)); n >= maxAnchorCRLs {
			// ImportCrl's model has ValidationException as its only
			// client error; AWS's wording is not documented.
			return &apiError{status: http.StatusBadRequest, code: "ValidationException",
				message: fmt.Sprintf("Cannot import more than %d CRLs for a trust anchor", maxAnchorCRLs),
				rule:    fmt.Sprintf("trust anchor %s already has %d CRLs (quota \"CRLs per trust anchor\", not adjustable); delete one (DeleteCrl) or replace its data (UpdateCrl)", ta.Name, n)}
		}
		if fail := e.checkCRLFor(crl, ta); fail != nil {
			return fail
		}
		r.crls[id] = crl
		if len(tags) > 0 {
			r.tags[crl.ARN] = tags
		}
		return nil
	})
	if err != nil {
		return 0, nil, asAPIError(err)
	}
	return http.StatusCreated, crlResponse{toJSONCRL(crl)}, nil
}

// crlByID finds a CRL by the id in a request's path.
func crlByID(r *resources, id string) (*CRL, *apiError) {
	return byID(r.crls, id, "CRL")
}

func (e *Emulator) getCRL(c *raCall) (int, any, *apiError) {
	crl, fail := crlByID(e.st.snapshot(), c.params["id"])
	if fail != nil {
		return 0, nil, fail
	}
	return http.StatusOK, crlResponse{toJSONCRL(crl)}, nil
}

func (e *Emulator) listCRLs(c *raCall) (int, any, *apiError) {
	items, next, fail := listPage(c, e.st.snapshot().crls, func(v *CRL) (int64, string) { return v.CreatedAt.UnixNano(), v.ID }, toJSONCRL)
	if fail != nil {
		return 0, nil, fail
	}
	return http.StatusOK, struct {
		Crls      []jsonCRL `json:"crls"`
		NextToken string    `json:"nextToken,omitempty"`
	}{items, next}, nil
}

// changeCRL replaces the CRL the request names with a copy fn changed.
func (e *Emulator) changeCRL(c *raCall, fn func(r *resources, crl *CRL) *apiError) (int, any, *apiError) {
	var out *CRL
	err := e.st.update(func(r *resources) error {
		crl, fail := crlByID(r, c.params["id"])
		if fail != nil {
			return fail
		}
		n := *crl
		if fail := fn(r, &n); fail != nil {
			return fail
		}
		n.UpdatedAt = e.now().UTC()
		r.crls[n.ID] = &n
		out = &n
		return nil
	})
	if err != nil {
		return 0, nil, asAPIError(err)
	}
	return http.StatusOK, crlResponse{toJSONCRL(out)}, nil
}

func (e *Emulator) updateCRL(c *raCall) (int, any, *apiError) {
	var in struct {
		Name    *string `json:"name"`
		CrlData []byte  `json:"crlData"`
	}
	if fail := decodeJSON(c.body, &in); fail != nil {
		return 0, nil, fail
	}
	if in.Name != nil && !validResourceName(*in.Name) {
		return 0, nil, validationError("1 validation error detected: Value at 'name' failed to satisfy constraint: Member must be 1 to 255 of A-Z a-z 0-9 space _ -")
	}
	var fresh *CRL
	if in.CrlData != nil {
		var fail *apiError
		if fresh, fail = parseCRLData(in.CrlData); fail != nil {
			return 0, nil, fail
		}
	}
	return e.changeCRL(c, func(r *resources, crl *CRL) *apiError {
		if in.Name != nil {
			crl.Name, crl.Source = *in.Name, *in.Name
		}
		if fresh != nil {
			if ta := r.anchorByARN(crl.TrustAnchorARN); ta != nil {
				if fail := e.checkCRLFor(fresh, ta); fail != nil {
					return fail
				}
			}
			crl.Data, crl.List, crl.revoked = fresh.Data, fresh.List, fresh.revoked
		}
		return nil
	})
}

func (e *Emulator) deleteCRL(c *raCall) (int, any, *apiError) {
	var out *CRL
	err := e.st.update(func(r *resources) error {
		crl, fail := crlByID(r, c.params["id"])
		if fail != nil {
			return fail
		}
		delete(r.crls, crl.ID)
		delete(r.tags, crl.ARN)
		out = crl
		return nil
	})
	if err != nil {
		return 0, nil, asAPIError(err)
	}
	return http.StatusOK, crlResponse{toJSONCRL(out)}, nil
}

func (e *Emulator) enableCRL(c *raCall) (int, any, *apiError) {
	return e.changeCRL(c, func(_ *resources, crl *CRL) *apiError { crl.Enabled = true; return nil })
}

func (e *Emulator) disableCRL(c *raCall) (int, any, *apiError) {
	return e.changeCRL(c, func(_ *resources, crl *CRL) *apiError { crl.Enabled = false; return nil })
}
