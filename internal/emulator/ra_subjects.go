package emulator

import (
	"net/http"
	"slices"
	"strings"
)

// Subjects: GetSubject and ListSubjects, from what CreateSession
// recorded (subjectLog).

func registerRASubjects() {
	registerRA(http.MethodGet, "/subject/{id}", "GetSubject", (*Emulator).getSubject)
	registerRA(http.MethodGet, "/subjects", "ListSubjects", (*Emulator).listSubjects)
}

type jsonSubjectSummary struct {
	SubjectID   string `json:"subjectId"`
	SubjectArn  string `json:"subjectArn"`
	X509Subject string `json:"x509Subject"`
	Enabled     bool   `json:"enabled"`
	CreatedAt   string `json:"createdAt"`
	UpdatedAt   string `json:"updatedAt"`
	LastSeenAt  string `json:"lastSeenAt"`
}

type jsonCredentialSummary struct {
	SeenAt              string `json:"seenAt"`
	SerialNumber        string `json:"serialNumber"`
	Issuer              string `json:"issuer"`
	Enabled             bool   `json:"enabled"`
	Failed              bool   `json:"failed"`
	X509CertificateData string `json:"x509CertificateData"`
}

type jsonInstanceProperty struct {
	SeenAt     string            `json:"seenAt"`
	Properties map[string]string `json:"properties"`
	Failed     bool              `json:"failed"`
}

type jsonSubjectDetail struct {
	jsonSubjectSummary
	Credentials        []jsonCredentialSummary `json:"credentials"`
	InstanceProperties []jsonInstanceProperty  `json:"instanceProperties"`
}

func toJSONSubjectSummary(s *Subject) jsonSubjectSummary {
	return jsonSubjectSummary{SubjectID: s.ID, SubjectArn: s.ARN, X509Subject: s.X509Subject, Enabled: s.Enabled,
		CreatedAt: isoTime(s.CreatedAt), UpdatedAt: isoTime(s.UpdatedAt), LastSeenAt: isoTime(s.LastSeenAt)}
}

func toJSONSubjectDetail(s *Subject) jsonSubjectDetail {
	d := jsonSubjectDetail{jsonSubjectSummary: toJSONSubjectSummary(s),
		Credentials: []jsonCredentialSummary{}, InstanceProperties: []jsonInstanceProperty{}}
	for _, c := range s.Credentials {
		d.Credentials = append(d.Credentials, jsonCredentialSummary{SeenAt: isoTime(c.SeenAt), SerialNumber: c.SerialNumber,
			Issuer: c.Issuer, Enabled: c.Enabled, Failed: c.Failed, X509CertificateData: c.PEM})
	}
	for _, p := range s.InstanceProperties {
		d.InstanceProperties = append(d.InstanceProperties, jsonInstanceProperty{SeenAt: isoTime(p.SeenAt), Properties: p.Properties, Failed: p.Failed})
	}
	return d
}

func (e *Emulator) getSubject(c *raCall) (int, any, *apiError) {
	id := c.params["id"]
	for _, s := range e.subjects.snapshot() {
		if s.ID == id {
			return http.StatusOK, struct {
				Subject jsonSubjectDetail `json:"subject"`
			}{toJSONSubjectDetail(&s)}, nil
		}
	}
	return 0, nil, &apiError{status: http.StatusNotFound, code: "ResourceNotFoundException", message: "Resource not found",
		rule: "no subject with id " + truncate(id) + " (subjects are recorded by CreateSession; they are not kept in the state file)"}
}

func (e *Emulator) listSubjects(c *raCall) (int, any, *apiError) {
	subjects := e.subjects.snapshot()
	// Oldest first, ties by id, so that pages are stable.
	slices.SortStableFunc(subjects, func(a, b Subject) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	all := make([]jsonSubjectSummary, 0, len(subjects))
	for i := range subjects {
		all = append(all, toJSONSubjectSummary(&subjects[i]))
	}
	items, next, fail := page(all, c.query.Get("nextToken"), c.query.Get("pageSize"), 50, 50)
	if fail != nil {
		return 0, nil, fail
	}
	return http.StatusOK, struct {
		Subjects  []jsonSubjectSummary `json:"subjects"`
		NextToken string               `json:"nextToken,omitempty"`
	}{items, next}, nil
}
