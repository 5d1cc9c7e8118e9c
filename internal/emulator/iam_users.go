package emulator

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// IAM users: GetUser, for the seed's operators, who are IAM users of the
// seed's account. Terraform's AWS provider calls it (for the caller's own
// user) to learn the account before it tries sts:GetCallerIdentity.

func registerIAMUsers() {
	registerIAM("GetUser", (*Emulator).getUser)
}

type xmlUser struct {
	Path       string `xml:"Path"`
	UserName   string `xml:"UserName"`
	UserID     string `xml:"UserId"`
	Arn        string `xml:"Arn"`
	CreateDate string `xml:"CreateDate"`
}

func (e *Emulator) getUser(p url.Values, who caller) (any, *stsError) {
	op := who.op
	if v, ok := p["UserName"]; ok {
		name := first(v)
		if !validIAMName(name, 64) {
			return nil, iamInvalid("userName", name, "Member must satisfy regular expression pattern: [\\w+=,.@-]+ and have length between 1 and 64")
		}
		op = nil
		for _, o := range e.seed.Operators {
			if strings.EqualFold(o.Name, name) {
				op = o
				break
			}
		}
		if op == nil {
			return nil, &stsError{status: http.StatusNotFound, typ: "Sender", code: "NoSuchEntity", message: fmt.Sprintf("The user with name %s cannot be found.", truncate(name)),
				rule: "the emulator's users are the seed's operators"}
		}
	}
	if op == nil {
		return nil, iamInvalid("userName", "null", "Must specify userName when calling with non-User credentials")
	}
	return struct {
		User xmlUser `xml:"User"`
	}{xmlUser{Path: "/", UserName: op.Name, UserID: caller{op: op}.userID(), Arn: e.operatorARN(op), CreateDate: iamTime(e.seededAt())}}, nil
}

// seededAt is when the seed's resources, its operators among them, came
// to be: the earliest creation time of anything the emulator serves
// (recorded in the state file, so it survives a restart), or now.
func (e *Emulator) seededAt() time.Time {
	r := e.st.snapshot()
	t := e.now().UTC()
	for _, ta := range r.anchors {
		if ta.CreatedAt.Before(t) {
			t = ta.CreatedAt
		}
	}
	for _, pr := range r.profiles {
		if pr.CreatedAt.Before(t) {
			t = pr.CreatedAt
		}
	}
	for _, ro := range r.roles {
		if ro.CreatedAt.Before(t) {
			t = ro.CreatedAt
		}
	}
	return t
}
