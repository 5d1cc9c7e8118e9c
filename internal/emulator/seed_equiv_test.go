package emulator_test

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"math/big"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/keyless-dev/keyless/internal/emulator"
	"github.com/keyless-dev/keyless/internal/pki/pkitest"
	"github.com/keyless-dev/keyless/internal/testkit"
)

// TestSeedEqualsCalls: the seed is equivalent to the same resources made
// through the control plane. One emulator is seeded with the test
// environment's resources (two trust anchors, one with a CRL revoking a
// serial, two roles, a profile accepting session names); a second, with
// only the operator in its seed, gets the same resources through
// CreateTrustAnchor, ImportCrl, CreateRole and CreateProfile, their inputs
// read from the first one's Get answers. Every Get and List answer is
// then the same apart from ids, ARNs' ids and timestamps, and so is every
// CreateSession decision, refusals with their rules included.
func TestSeedEqualsCalls(t *testing.T) {
	revokedSerial := big.NewInt(0x5eed)
	seeded := newEnv(t, setup{revoked: []*big.Int{revokedSerial}, acceptSessionName: true})
	made := operatorOnlyEnv(t, seeded)

	// Placeholders for each resource's id, the same for both emulators.
	ids := map[string]string{}
	anchorID := func(arn string) string { return arn[strings.LastIndexByte(arn, '/')+1:] }

	// Trust anchors, then their CRLs.
	seedAnchors := seeded.mustRA(200, "GET", "/trustanchors", nil)["trustAnchors"].([]any)
	arnMap := map[string]string{}
	for i, a := range seedAnchors {
		a := a.(map[string]any)
		src := a["source"].(map[string]any)
		made.advance(time.Second)
		out := made.mustRA(201, "POST", "/trustanchors", map[string]any{"name": a["name"], "enabled": a["enabled"], "source": src})["trustAnchor"].(map[string]any)
		arnMap[a["trustAnchorArn"].(string)] = out["trustAnchorArn"].(string)
		ids[a["trustAnchorId"].(string)] = fmt.Sprintf("ANCHOR-%d", i)
		ids[out["trustAnchorId"].(string)] = fmt.Sprintf("ANCHOR-%d", i)
	}
	seedCRLs := seeded.mustRA(200, "GET", "/crls", nil)["crls"].([]any)
	if len(seedCRLs) != 1 {
		t.Fatalf("the seed's CRLs: %v", seedCRLs)
	}
	for i, c := range seedCRLs {
		c := c.(map[string]any)
		made.advance(time.Second)
		out := made.mustRA(201, "POST", "/crls", map[string]any{"name": c["name"], "enabled": c["enabled"], "crlData": c["crlData"],
			"trustAnchorArn": arnMap[c["trustAnchorArn"].(string)]})["crl"].(map[string]any)
		ids[c["crlId"].(string)] = fmt.Sprintf("CRL-%d", i)
		ids[out["crlId"].(string)] = fmt.Sprintf("CRL-%d", i)
	}

	// Roles, with their trust policies naming the new anchors.
	roleNames := []string{"ci-deployer", "not-in-profile"}
	for i, name := range roleNames {
		_, body := seeded.iam(operator, url.Values{"Action": {"GetRole"}, "RoleName": {name}})
		doc, err := url.PathUnescape(xmlField(t, body, "AssumeRolePolicyDocument"))
		if err != nil {
			t.Fatal(err)
		}
		for from, to := range arnMap {
			doc = strings.ReplaceAll(doc, from, to)
		}
		status, out := made.iam(operator, url.Values{"Action": {"CreateRole"}, "RoleName": {name}, "AssumeRolePolicyDocument": {doc},
			"MaxSessionDuration": {xmlField(t, body, "MaxSessionDuration")}, "Path": {xmlField(t, body, "Path")}})
		if status != 200 {
			t.Fatalf("CreateRole %s: %d %s", name, status, out)
		}
		ids[xmlField(t, body, "RoleId")] = fmt.Sprintf("ROLE-%d", i)
		ids[xmlField(t, out, "RoleId")] = fmt.Sprintf("ROLE-%d", i)
	}

	// Profiles.
	for i, p := range seeded.mustRA(200, "GET", "/profiles", nil)["profiles"].([]any) {
		p := p.(map[string]any)
		in := map[string]any{}
		for _, k := range []string{"name", "enabled", "roleArns", "durationSeconds", "acceptRoleSessionName", "requireInstanceProperties", "managedPolicyArns", "sessionPolicy"} {
			if v, ok := p[k]; ok {
				in[k] = v
			}
		}
		made.advance(time.Second)
		out := made.createProfile(in)
		ids[p["profileId"].(string)] = fmt.Sprintf("PROFILE-%d", i)
		ids[out["profileId"].(string)] = fmt.Sprintf("PROFILE-%d", i)
	}
	made.out = made.emu.Outputs(made.srv.URL)

	normalize := func(v any) string {
		t.Helper()
		s, ok := v.(string)
		if !ok {
			data, err := json.MarshalIndent(v, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			s = string(data)
		}
		for id, placeholder := range ids {
			s = strings.ReplaceAll(s, id, placeholder)
		}
		s = timestamps.ReplaceAllString(s, "TIME")
		return requestIDs.ReplaceAllString(s, "REQUEST-ID")
	}
	answers := func(e *env) map[string]string {
		got := map[string]string{}
		for path, member := range map[string]string{"/trustanchors": "trustAnchors", "/crls": "crls", "/profiles": "profiles"} {
			list := e.mustRA(200, "GET", path, nil)
			got["GET "+path] = normalize(list)
			for _, item := range list[member].([]any) {
				item := item.(map[string]any)
				for _, k := range []string{"trustAnchorArn", "crlArn", "profileArn"} {
					if arn, ok := item[k].(string); ok && !(k == "trustAnchorArn" && path == "/crls") {
						one := "/" + strings.TrimSuffix(strings.TrimPrefix(path, "/"), "s") + "/" + anchorID(arn)
						got["GET "+normalize(one)] = normalize(e.mustRA(200, "GET", one, nil))
						got["tags "+normalize(one)] = normalize(e.listTags(arn))
					}
				}
			}
		}
		for _, name := range roleNames {
			_, body := e.iam(operator, url.Values{"Action": {"GetRole"}, "RoleName": {name}})
			got["GetRole "+name] = normalize(body)
		}
		return got
	}
	if diff := cmp.Diff(answers(seeded), answers(made)); diff != "" {
		t.Errorf("Get and List answers differ between the seed and the same calls (-seed +calls):\n%s", diff)
	}

	// The same CreateSession requests, each against both emulators.
	key := pkitest.Key(t, pkitest.P256)
	leaf := seeded.leaf(pkitest.LeafOptions{Key: key})
	wrongKey := pkitest.Key(t, pkitest.P256)
	wrongCN := seeded.leaf(pkitest.LeafOptions{Key: wrongKey, CommonName: "someone-else"})
	revokedKey := pkitest.Key(t, pkitest.P256)
	revoked := seeded.leaf(pkitest.LeafOptions{Key: revokedKey, Serial: revokedSerial})
	for _, c := range []struct {
		name string
		call func(e *env) call
	}{
		{"accepted", func(e *env) call { return call{key: key, leaf: leaf} }},
		{"session name", func(e *env) call {
			return call{key: key, leaf: leaf, body: `{"durationSeconds":3600,"roleSessionName":"job-42"}`}
		}},
		{"wrong CN", func(e *env) call { return call{key: wrongKey, leaf: wrongCN} }},
		{"revoked by the CRL", func(e *env) call { return call{key: revokedKey, leaf: revoked} }},
		{"role not in profile", func(e *env) call { return call{key: key, leaf: leaf, role: e.out.Roles["not-in-profile"]} }},
		{"another anchor", func(e *env) call { return call{key: key, leaf: leaf, ta: e.out.TrustAnchors["other-ca"]} }},
		{"longer than the role allows", func(e *env) call { return call{key: key, leaf: leaf, body: `{"durationSeconds":7200}`} }},
	} {
		t.Run(c.name, func(t *testing.T) {
			decision := func(e *env) string {
				a := e.createSession(c.call(e))
				var s struct {
					Status                               int
					Code, Message                        string
					RoleArn, AssumedRole, SourceIdentity string
					Expiration                           string
					PackedPolicySize                     int
					HasCredentials, SubjectArnLooksRight bool
				}
				s.Status, s.Code, s.Message = a.status, a.code, a.message
				if len(a.session.CredentialSet) == 1 {
					cs := a.session.CredentialSet[0]
					s.RoleArn, s.AssumedRole, s.SourceIdentity, s.Expiration = cs.RoleArn, cs.AssumedRoleUser.Arn, cs.SourceIdentity, cs.Credentials.Expiration
					s.PackedPolicySize = cs.PackedPolicySize
					s.HasCredentials = strings.HasPrefix(cs.Credentials.AccessKeyID, "ASIA") && cs.Credentials.SecretAccessKey != ""
					s.SubjectArnLooksRight = strings.HasPrefix(a.session.SubjectArn, "arn:aws:rolesanywhere:us-east-1:111122223333:subject/")
				}
				return normalize(s)
			}
			if diff := cmp.Diff(decision(seeded), decision(made)); diff != "" {
				t.Errorf("CreateSession decisions differ (-seed +calls):\n%s", diff)
			}
		})
	}
}

var (
	timestamps = regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z`)
	requestIDs = regexp.MustCompile(`<RequestId>[^<]*</RequestId>`)
)

// operatorOnlyEnv is an emulator whose seed has only the test operator,
// trusting like like's: the same CAs, clock and log.
func operatorOnlyEnv(t *testing.T, like *env) *env {
	t.Helper()
	seed, err := emulator.ParseSeed([]byte(operatorsSeed), emulator.SeedSource{Name: "operators.yaml"})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, dir: t.TempDir(), root: like.root, inter: like.inter, other: like.other, clock: like.clock, logs: &testkit.Buffer{}}
	e.emu, err = emulator.New(emulator.Config{Seed: seed, Now: e.now,
		Logger: slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelInfo}))})
	if err != nil {
		t.Fatal(err)
	}
	e.srv = httptest.NewServer(e.emu)
	t.Cleanup(e.srv.Close)
	return e
}

// xmlField returns the text of the first <name> element of an IAM answer.
func xmlField(t *testing.T, body, name string) string {
	t.Helper()
	m := regexp.MustCompile(`<` + name + `>([^<]*)</` + name + `>`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no <%s> in %s", name, body)
	}
	return m[1]
}
