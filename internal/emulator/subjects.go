package emulator

import (
	"crypto/x509"
	"encoding/pem"
	"sync"
	"time"
)

// Subject is who has had sessions through a trust anchor: one per
// certificate subject and issuer, as Roles Anywhere's subjects are, with
// the certificates it used (GetSubject, ListSubjects).
type Subject struct {
	ID, ARN              string
	X509Subject          string
	Enabled              bool
	CreatedAt, UpdatedAt time.Time
	LastSeenAt           time.Time
	Credentials          []SubjectCredential
	InstanceProperties   []SubjectInstanceProperties
}

// SubjectCredential is a certificate a subject used.
type SubjectCredential struct {
	SeenAt       time.Time
	SerialNumber string
	Issuer       string
	Enabled      bool
	Failed       bool
	PEM          string
}

// SubjectInstanceProperties are instance properties a subject sent.
type SubjectInstanceProperties struct {
	SeenAt     time.Time
	Properties map[string]string
	Failed     bool
}

// Bounds on what subjectLog remembers, so a flood of certificates cannot
// grow the emulator without limit: subjects beyond maxSubjects are not
// recorded (their sessions still work), and each keeps its latest
// maxSubjectCredentials certificates and property sets.
const (
	maxSubjects           = 10_000
	maxSubjectCredentials = 10
)

// subjectLog records subjects as sessions are issued. It is not part of
// the state file: AWS derives subjects from sessions, not from calls.
type subjectLog struct {
	mu   sync.Mutex
	byID map[string]*Subject
}

// record notes a session for leaf as the subject id (subjectID of leaf
// and its trust anchor) and returns the subject's ARN.
func (l *subjectLog) record(e *Emulator, id string, leaf *x509.Certificate, props map[string]string, now time.Time) string {
	arn := e.st.arn("rolesanywhere", e.st.region, "subject/"+id)
	now = now.UTC()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.byID == nil {
		l.byID = map[string]*Subject{}
	}
	s := l.byID[id]
	if s == nil {
		if len(l.byID) >= maxSubjects {
			return arn
		}
		s = &Subject{ID: id, ARN: arn, X509Subject: leaf.Subject.String(), Enabled: true, CreatedAt: now}
		l.byID[id] = s
	}
	s.UpdatedAt, s.LastSeenAt = now, now
	serial := leaf.SerialNumber.String()
	found := false
	for i := range s.Credentials {
		if s.Credentials[i].SerialNumber == serial {
			s.Credentials[i].SeenAt = now
			found = true
		}
	}
	if !found {
		s.Credentials = append(s.Credentials, SubjectCredential{SeenAt: now, SerialNumber: serial, Issuer: leaf.Issuer.String(), Enabled: true,
			PEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf.Raw}))})
		if len(s.Credentials) > maxSubjectCredentials {
			s.Credentials = s.Credentials[len(s.Credentials)-maxSubjectCredentials:]
		}
	}
	if len(props) > 0 {
		s.InstanceProperties = append(s.InstanceProperties, SubjectInstanceProperties{SeenAt: now, Properties: props})
		if len(s.InstanceProperties) > maxSubjectCredentials {
			s.InstanceProperties = s.InstanceProperties[len(s.InstanceProperties)-maxSubjectCredentials:]
		}
	}
	return arn
}

// snapshot returns copies of the recorded subjects.
func (l *subjectLog) snapshot() []Subject {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]Subject, 0, len(l.byID))
	for _, id := range sortedKeys(l.byID) {
		s := *l.byID[id]
		s.Credentials = append([]SubjectCredential(nil), s.Credentials...)
		s.InstanceProperties = append([]SubjectInstanceProperties(nil), s.InstanceProperties...)
		out = append(out, s)
	}
	return out
}
