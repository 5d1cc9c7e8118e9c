package emulator_test

import (
	"crypto/sha256"
	"encoding/pem"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/keyless-dev/keyless/internal/pki/pkitest"
)

func TestSubjects(t *testing.T) {
	e := newEnv(t, setup{})
	if list := e.mustRA(200, "GET", "/subjects", nil); len(list["subjects"].([]any)) != 0 {
		t.Fatalf("ListSubjects before any session: %v", list)
	}
	k1, k2 := pkitest.Key(t, pkitest.P256), pkitest.Key(t, "p256#second")
	l1, l2 := e.leaf(pkitest.LeafOptions{Key: k1}), e.leaf(pkitest.LeafOptions{Key: k2})
	a := e.createSession(call{key: k1, leaf: l1})
	e.advance(time.Second)
	b := e.createSession(call{key: k2, leaf: l2, body: `{"instanceProperties":{"host":"runner-1"}}`})
	if a.status != 201 || b.status != 201 || a.session.SubjectArn != b.session.SubjectArn {
		t.Fatalf("sessions: %d %d, subjects %s %s", a.status, b.status, a.session.SubjectArn, b.session.SubjectArn)
	}
	id := a.session.SubjectArn[strings.LastIndexByte(a.session.SubjectArn, '/')+1:]

	list := e.mustRA(200, "GET", "/subjects?pageSize=1", nil)
	subjects := list["subjects"].([]any)
	if len(subjects) != 1 || list["nextToken"] != nil {
		t.Fatalf("ListSubjects: %v", list)
	}
	s := subjects[0].(map[string]any)
	if s["subjectId"] != id || s["subjectArn"] != a.session.SubjectArn || s["enabled"] != true ||
		s["x509Subject"] != l1.Subject.String() || s["lastSeenAt"] == s["createdAt"] || s["credentials"] != nil {
		t.Errorf("subject summary: %v", s)
	}

	d := e.mustRA(200, "GET", "/subject/"+id, nil)["subject"].(map[string]any)
	creds := d["credentials"].([]any)
	if len(creds) != 2 {
		t.Fatalf("credentials: %v", d)
	}
	c2 := creds[1].(map[string]any)
	if c2["serialNumber"] != l2.SerialNumber.String() || c2["issuer"] != l2.Issuer.String() || c2["enabled"] != true || c2["failed"] != false ||
		c2["x509CertificateData"] != string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: l2.Raw})) {
		t.Errorf("second credential: %v", c2)
	}
	props := d["instanceProperties"].([]any)
	if len(props) != 1 || cmp.Diff(map[string]any{"host": "runner-1"}, props[0].(map[string]any)["properties"]) != "" {
		t.Errorf("instanceProperties: %v", props)
	}

	for _, c := range []struct {
		path, code, contains string
		status               int
	}{
		{"/subject/00000000-0000-4000-8000-000000000000", "ResourceNotFoundException", "no subject with id", 404},
		{"/subjects?pageSize=0", "ValidationException", "pageSize", 400},
		{"/subjects?nextToken=bogus!", "ValidationException", "nextToken", 400},
	} {
		status, out := e.ra(operator, "GET", c.path, nil)
		msg, _ := out["message"].(string)
		if status != c.status || out["__type"] != c.code || !strings.Contains(msg, c.contains) {
			t.Errorf("GET %s: %d %v", c.path, status, out)
		}
	}
}

// TestSubjectOfCachedChain: the subject id of a session whose chain the
// emulator remembers (the second with the same certificate) is, like the
// first's, the one derived from this anchor's id and the leaf's issuer
// and subject, computed here independently. Another anchor trusting the
// same CA exists, so facts remembered for the wrong anchor would show.
func TestSubjectOfCachedChain(t *testing.T) {
	e := newEnv(t, setup{})
	e.mustRA(201, "POST", "/trustanchors", createAnchorBody("same-ca", string(pemOf(e.root, e.inter))))
	arn := e.out.TrustAnchors["gitlab-runner-ca"]
	taID := arn[strings.LastIndexByte(arn, '/')+1:]
	key := pkitest.Key(t, pkitest.P256)
	leaf := e.leaf(pkitest.LeafOptions{Key: key})
	h := sha256.New()
	h.Write([]byte(taID))
	h.Write(leaf.RawIssuer)
	h.Write(leaf.RawSubject)
	b := h.Sum(nil)[:16]
	b[6] = b[6]&0x0f | 0x50
	b[8] = b[8]&0x3f | 0x80
	want := fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
	for i := range 3 {
		a := e.createSession(call{key: key, leaf: leaf})
		if a.status != 201 {
			t.Fatalf("session %d: %d %s", i+1, a.status, a.message)
		}
		if got := a.session.SubjectArn[strings.LastIndexByte(a.session.SubjectArn, '/')+1:]; got != want {
			t.Fatalf("session %d: subject id %s, want %s (anchor %s)", i+1, got, want, taID)
		}
		e.advance(time.Second)
	}
}
