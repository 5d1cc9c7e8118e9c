package emulator_test

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keyless-dev/keyless/internal/emulator"
)

func TestIAMGetUserAndCallerIdentity(t *testing.T) {
	e := newEnv(t, setup{})
	type user struct {
		Path, UserName, UserId, Arn, CreateDate string
	}
	var own, named struct {
		User user `xml:"GetUserResult>User"`
	}
	// Terraform's provider asks for the caller's own user first.
	e.iamOK(act("GetUser"), &own)
	want := user{Path: "/", UserName: "admin", Arn: "arn:aws:iam::111122223333:user/admin"}
	if own.User.Path != want.Path || own.User.UserName != want.UserName || own.User.Arn != want.Arn ||
		!strings.HasPrefix(own.User.UserId, "AIDA") || !strings.HasSuffix(own.User.CreateDate, "Z") {
		t.Errorf("GetUser: %+v", own.User)
	}
	e.iamOK(act("GetUser", "UserName", "ADMIN"), &named)
	if named.User != own.User {
		t.Errorf("GetUser UserName=ADMIN: %+v, want %+v", named.User, own.User)
	}
	e.iamFails(act("GetUser", "UserName", "nobody"), 404, "NoSuchEntity", "The user with name nobody cannot be found.")
	e.iamFails(act("GetUser", "UserName", "no/slash"), 400, "ValidationError", "userName")

	// sts:GetCallerIdentity with the operator's key names the same user.
	id, err := e.stsClient("us-east-1").GetCallerIdentity(context.Background(), operator)
	if err != nil {
		t.Fatalf("GetCallerIdentity as the operator: %v", err)
	}
	if id.Arn != own.User.Arn || id.UserID != own.User.UserId || id.Account != "111122223333" {
		t.Errorf("GetCallerIdentity: %+v, want the user %+v", id, own.User)
	}
}

// withState is e's environment served by a new emulator over the state
// file at path (made from the seed when it does not exist).
func (e *env) withState(path string) *env {
	e.t.Helper()
	seed, err := emulator.LoadSeed(filepath.Join(e.dir, "emulator.yaml"))
	if err != nil {
		e.t.Fatal(err)
	}
	emu, err := emulator.New(emulator.Config{Seed: seed, Now: e.now, StatePath: path,
		Logger: slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelInfo}))})
	if err != nil {
		e.t.Fatal(err)
	}
	c := *e
	c.emu, c.srv = emu, httptest.NewServer(emu)
	e.t.Cleanup(c.srv.Close)
	return &c
}

// TestIAMStateFile: what the IAM operations change is in the state file,
// and an emulator started over it serves the same answers.
func TestIAMStateFile(t *testing.T) {
	e := newEnv(t, setup{})
	path := filepath.Join(e.dir, "state.json")
	a := e.withState(path)
	trust := strings.Replace(rolesAnywhereTrust, `"sts:AssumeRole",`, "", 1)
	a.createRole("kept", "Path", "/ci/", "Description", "kept across restarts", "MaxSessionDuration", "7200",
		"PermissionsBoundary", "arn:aws:iam::aws:policy/PowerUserAccess", "Tags.member.1.Key", "team", "Tags.member.1.Value", "ci")
	a.iamOK(act("UpdateAssumeRolePolicy", "RoleName", "kept", "PolicyDocument", trust), nil)
	a.iamOK(act("PutRolePolicy", "RoleName", "kept", "PolicyName", "read", "PolicyDocument", readPolicy), nil)
	a.iamOK(act("AttachRolePolicy", "RoleName", "kept", "PolicyArn", "arn:aws:iam::aws:policy/ReadOnlyAccess"), nil)
	a.iamOK(act("DeleteRole", "RoleName", "not-in-profile"), nil)

	b := e.withState(path)
	calls := []url.Values{
		act("GetRole", "RoleName", "kept"),
		act("GetRolePolicy", "RoleName", "kept", "PolicyName", "read"),
		act("ListAttachedRolePolicies", "RoleName", "kept"),
		act("ListRoleTags", "RoleName", "kept"),
		act("ListRoles"),
	}
	for _, p := range calls {
		before, after := a.iamOK(p, nil), b.iamOK(p, nil)
		if stripRequestID(before) != stripRequestID(after) {
			t.Errorf("%s after a restart:\n got %s\nwant %s", p.Get("Action"), after, before)
		}
	}
	b.iamFails(act("GetRole", "RoleName", "not-in-profile"), 404, "NoSuchEntity")
	if doc, _ := url.QueryUnescape(b.getRole("kept").AssumeRolePolicyDocument); doc != trust {
		t.Errorf("trust policy after a restart: %s", doc)
	}
}

func stripRequestID(body string) string {
	i := strings.Index(body, "<RequestId>")
	if i < 0 {
		return body
	}
	return body[:i]
}
