package emulator_test

import (
	"bufio"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/keyless-dev/keyless/internal/emulator"
	"github.com/keyless-dev/keyless/internal/pki"
	"github.com/keyless-dev/keyless/internal/pki/pkitest"
	"github.com/keyless-dev/keyless/internal/testkit"
)

// operatorsSeed is a seed with the test operator and no resources, and
// bundleSeed one that also has a trust anchor, a role and a profile.
const operatorsSeed = `account: "111122223333"
region: us-east-1
operators:
  - name: admin
    accessKeyId: ` + operatorKeyID + `
    secretAccessKey: ` + operatorSecret + `
`

const bundleSeed = operatorsSeed + `trustAnchors:
  - name: seeded-ca
    certificateBundle: bundle.pem
roles:
  - name: seeded-role
    assumeRolePolicy: '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"rolesanywhere.amazonaws.com"},"Action":["sts:AssumeRole","sts:TagSession","sts:SetSourceIdentity"]}]}'
profiles:
  - name: seeded-profile
    roles: [seeded-role]
`

// stateEnv starts an emulator over the seed in dir/emulator.yaml (with
// dir/bundle.pem) and the state file statePath, on clock.
func stateEnv(t *testing.T, dir, seed, statePath string, clock *testkit.Clock) *env {
	t.Helper()
	e, err := tryStateEnv(t, dir, seed, statePath, clock)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func tryStateEnv(t *testing.T, dir, seed, statePath string, clock *testkit.Clock) (*env, error) {
	t.Helper()
	path := pkitest.WriteFile(t, dir, "emulator.yaml", []byte(seed))
	parsed, err := emulator.LoadSeed(path)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, dir: dir, clock: clock, logs: &testkit.Buffer{}}
	e.emu, err = emulator.New(emulator.Config{Seed: parsed, Now: clock.Now, StatePath: statePath,
		Logger: slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelInfo}))})
	if err != nil {
		return nil, err
	}
	e.srv = httptest.NewServer(e.emu)
	t.Cleanup(e.srv.Close)
	return e, nil
}

func writeBundle(t *testing.T, dir string) string {
	t.Helper()
	bundle := string(pki.EncodeCertificates(pkitest.NewRoot(t, "state-root").Cert))
	pkitest.WriteFile(t, dir, "bundle.pem", []byte(bundle))
	return bundle
}

func createAnchorBody(name, bundle string) map[string]any {
	return map[string]any{"name": name, "source": map[string]any{"sourceType": "CERTIFICATE_BUNDLE",
		"sourceData": map[string]any{"x509CertificateData": bundle}}}
}

const openTrustPolicy = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"rolesanywhere.amazonaws.com"},"Action":["sts:AssumeRole","sts:TagSession","sts:SetSourceIdentity"]}]}`

var requestID = regexp.MustCompile(`<RequestId>[^<]*</RequestId>`)

// TestStateRestartSameAnswers: what the control plane made, restarted
// from the state file, answers Get and List with the same ids, ARNs and
// timestamps, so that a Terraform plan after a restart shows no changes;
// and the seed's resources (random ids) keep theirs too.
func TestStateRestartSameAnswers(t *testing.T) {
	dir := t.TempDir()
	bundle := writeBundle(t, dir)
	statePath := filepath.Join(dir, "state", "emulator.json")
	clock := testkit.NewClock(time.Date(2026, 11, 27, 1, 2, 3, 456789000, time.UTC))
	e := stateEnv(t, dir, bundleSeed, statePath, clock)

	body := createAnchorBody("made-by-api", bundle)
	body["tags"] = []map[string]string{{"key": "team", "value": "ci"}}
	status, out := e.ra(operator, "POST", "/trustanchors", body)
	if status != 201 {
		t.Fatalf("CreateTrustAnchor: %d %v", status, out)
	}
	id := out["trustAnchor"].(map[string]any)["trustAnchorId"].(string)
	clock.Advance(time.Minute)
	if status, out := e.ra(operator, "POST", "/trustanchor/"+id+"/disable", nil); status != 200 {
		t.Fatalf("DisableTrustAnchor: %d %v", status, out)
	}
	if status, body := e.iam(operator, url.Values{"Action": {"CreateRole"}, "RoleName": {"made-by-api"}, "Path": {"/ci/"},
		"Description": {"made through IAM"}, "MaxSessionDuration": {"7200"}, "AssumeRolePolicyDocument": {openTrustPolicy},
		"Tags.member.1.Key": {"team"}, "Tags.member.1.Value": {"ci"}}); status != 200 {
		t.Fatalf("CreateRole: %d %s", status, body)
	}

	answers := func(e *env) map[string]any {
		got := map[string]any{}
		_, got["list"] = e.ra(operator, "GET", "/trustanchors", nil)
		_, got["anchor"] = e.ra(operator, "GET", "/trustanchor/"+id, nil)
		for _, name := range []string{"made-by-api", "seeded-role"} {
			_, body := e.iam(operator, url.Values{"Action": {"GetRole"}, "RoleName": {name}})
			got["role "+name] = requestID.ReplaceAllString(body, "")
		}
		got["outputs"] = e.emu.Outputs("")
		return got
	}
	before := answers(e)
	e.srv.Close()

	clock.Advance(time.Hour)
	again := stateEnv(t, dir, bundleSeed, statePath, clock)
	if diff := cmp.Diff(before, answers(again)); diff != "" {
		t.Errorf("answers after a restart from the state file differ (-before +after):\n%s", diff)
	}
	if got := testkit.DirNames(t, filepath.Dir(statePath)); !slices.Equal(got, []string{"emulator.json", "emulator.json.journal"}) {
		t.Errorf("state directory holds %v, want only emulator.json and its journal", got)
	}
	for _, p := range []string{statePath, statePath + ".journal"} {
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, mode %v; want 0600", p, err, fi.Mode().Perm())
		}
	}
	if data, _ := os.ReadFile(statePath); strings.Contains(string(data), operatorSecret) || strings.Contains(string(data), operatorKeyID) {
		t.Errorf("the state file holds the operator's key:\n%s", data)
	}
}

// TestStateWinsOverSeed: with a state file, the seed's resources are not
// applied again (a resource the control plane deleted stays deleted, one
// the seed gained is not added), and the log says so; the seed's
// operators still apply.
func TestStateWinsOverSeed(t *testing.T) {
	dir := t.TempDir()
	writeBundle(t, dir)
	statePath := filepath.Join(dir, "emulator.json")
	clock := testkit.NewClock(time.Now().Truncate(time.Second))
	e := stateEnv(t, dir, bundleSeed, statePath, clock)
	seededID := idFromARN(e.emu.Outputs("").TrustAnchors["seeded-ca"])
	if status, out := e.ra(operator, "DELETE", "/trustanchor/"+seededID, nil); status != 200 {
		t.Fatalf("DeleteTrustAnchor of the seed's anchor: %d %v", status, out)
	}
	e.srv.Close()

	grown := strings.Replace(bundleSeed, "trustAnchors:\n", "trustAnchors:\n  - name: added-later\n    certificateBundle: bundle.pem\n", 1)
	again := stateEnv(t, dir, grown, statePath, clock)
	out := again.emu.Outputs("")
	if len(out.TrustAnchors) != 0 {
		t.Errorf("after a restart with state, trust anchors %v; want none (the seed's was deleted, the seed's new one not applied)", out.TrustAnchors)
	}
	if out.Roles["seeded-role"] == "" || len(out.Profiles) != 1 {
		t.Errorf("the seed's role and profile, recorded in the state, are gone: %+v", out)
	}
	if !strings.Contains(again.logs.String(), "state file loaded; the seed's resources were applied when it was created and are not applied again") {
		t.Errorf("no log line says the seed's resources were not applied:\n%s", again.logs.String())
	}
	if status, out := again.ra(operator, "GET", "/trustanchors", nil); status != 200 {
		t.Errorf("the seed's operator after a restart: %d %v", status, out)
	}
}

// TestStateWriteFailureRefusesTheChange: a change whose journal record
// cannot be made durable (fsync fails) is refused with AWS's internal
// error, is not served, and is not in the files after a restart; when
// the previous state cannot be rewritten either, the next change writes
// the whole state, and is refused while that fails too.
func TestStateWriteFailureRefusesTheChange(t *testing.T) {
	dir := t.TempDir()
	bundle := writeBundle(t, dir)
	statePath := filepath.Join(dir, "emulator.json")
	clock := testkit.NewClock(time.Now().Truncate(time.Second))
	e := stateEnv(t, dir, operatorsSeed, statePath, clock)

	failSync := errors.New("injected fsync failure")
	emulator.SetStateSync(e.emu, func(*os.File) error { return failSync })
	status, out := e.ra(operator, "POST", "/trustanchors", createAnchorBody("refused", bundle))
	if status != 500 || out["__type"] != "InternalServerException" || !strings.Contains(out["message"].(string), "recording the change in the state file") {
		t.Errorf("CreateTrustAnchor with a failing fsync: %d %v, want 500 InternalServerException", status, out)
	}
	// And the previous state cannot be rewritten either: a directory in
	// the file's place fails the rename, even for root.
	if err := os.Remove(statePath); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(statePath, "blocker"), 0o700); err != nil {
		t.Fatal(err)
	}
	status, body := e.iam(operator, url.Values{"Action": {"CreateRole"}, "RoleName": {"refused"}, "AssumeRolePolicyDocument": {openTrustPolicy}})
	if status != 500 || !strings.Contains(body, "<Code>ServiceFailure</Code>") {
		t.Errorf("CreateRole with an unwritable state file: %d %s, want 500 ServiceFailure", status, body)
	}
	emulator.SetStateSync(e.emu, func(f *os.File) error { return f.Sync() })
	status, body = e.iam(operator, url.Values{"Action": {"CreateRole"}, "RoleName": {"refused-too"}, "AssumeRolePolicyDocument": {openTrustPolicy}})
	if status != 500 {
		t.Errorf("CreateRole while the whole state cannot be written: %d %s, want 500", status, body)
	}
	if out := e.emu.Outputs(""); len(out.TrustAnchors)+len(out.Roles) != 0 {
		t.Errorf("refused changes are served: %+v", out)
	}
	if status, out := e.ra(operator, "GET", "/trustanchors", nil); status != 200 || len(out["trustAnchors"].([]any)) != 0 {
		t.Errorf("ListTrustAnchors after a refused create: %d %v", status, out)
	}

	if err := os.RemoveAll(statePath); err != nil {
		t.Fatal(err)
	}
	if status, out := e.ra(operator, "POST", "/trustanchors", createAnchorBody("written", bundle)); status != 201 {
		t.Fatalf("CreateTrustAnchor once the file can be written: %d %v", status, out)
	}
	if status, out := e.ra(operator, "POST", "/trustanchors", createAnchorBody("appended", bundle)); status != 201 {
		t.Fatalf("CreateTrustAnchor after that: %d %v", status, out)
	}
	e.srv.Close()
	again := stateEnv(t, dir, operatorsSeed, statePath, clock)
	if got := again.emu.Outputs(""); len(got.TrustAnchors) != 2 || got.TrustAnchors["written"] == "" || got.TrustAnchors["appended"] == "" || len(got.Roles) != 0 {
		t.Errorf("after a restart: %+v; want only the written anchors", got)
	}
	if got := testkit.DirNames(t, dir); slices.ContainsFunc(got, func(n string) bool { return strings.HasPrefix(n, ".tmp-") }) {
		t.Errorf("temporary files left: %v", got)
	}
}

// TestStateFsyncFailureLeavesNoRecord: the record of a change refused
// because its fsync failed may be in the journal whole; the previous
// state, rewritten, leaves it out after a restart.
func TestStateFsyncFailureLeavesNoRecord(t *testing.T) {
	dir := t.TempDir()
	bundle := writeBundle(t, dir)
	statePath := filepath.Join(dir, "emulator.json")
	clock := testkit.NewClock(time.Now().Truncate(time.Second))
	e := stateEnv(t, dir, operatorsSeed, statePath, clock)
	emulator.SetStateSync(e.emu, func(*os.File) error { return errors.New("injected fsync failure") })
	if status, _ := e.ra(operator, "POST", "/trustanchors", createAnchorBody("refused", bundle)); status != 500 {
		t.Fatalf("CreateTrustAnchor with a failing fsync: %d, want 500", status)
	}
	e.srv.Close()
	again := stateEnv(t, dir, operatorsSeed, statePath, clock)
	if got := again.emu.Outputs(""); len(got.TrustAnchors) != 0 {
		t.Errorf("after a restart: %+v; the refused anchor is back", got)
	}
}

// TestStateRefusedAtStart: a state file that is not one, of another
// format, or of another account or region stops the start with a
// StateFileError naming the file; nothing is overwritten.
func TestStateRefusedAtStart(t *testing.T) {
	dir := t.TempDir()
	writeBundle(t, dir)
	clock := testkit.NewClock(time.Now().Truncate(time.Second))
	good := filepath.Join(dir, "good.json")
	e := stateEnv(t, dir, operatorsSeed, good, clock)
	e.srv.Close()
	valid, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ name, content, seed, want string }{
		{"empty", "", operatorsSeed, "not a state file"},
		{"torn", string(valid[:len(valid)/2]), operatorsSeed, "not a state file"},
		{"trailing data", string(valid) + "{}", operatorsSeed, "data after its JSON object"},
		{"unknown field", strings.Replace(string(valid), `"format"`, `"extra": 1, "format"`, 1), operatorsSeed, `unknown field "extra"`},
		{"other format", strings.Replace(string(valid), "keyless-emulator-state/2", "keyless-emulator-state/9", 1), operatorsSeed, `format "keyless-emulator-state/9"`},
		{"other account", string(valid), strings.Replace(operatorsSeed, "111122223333", "444455556666", 1), "it holds account 111122223333 in region us-east-1, but the seed is for account 444455556666 in region us-east-1"},
		{"other region", string(valid), strings.Replace(operatorsSeed, "us-east-1", "eu-west-1", 1), "but the seed is for account 111122223333 in region eu-west-1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "-")+".json")
			if err := os.WriteFile(path, []byte(c.content), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := tryStateEnv(t, t.TempDir(), c.seed, path, clock)
			var se *emulator.StateFileError
			if !errors.As(err, &se) || !se.Refused || se.Path != path || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), path) {
				t.Fatalf("New: %v; want a refused StateFileError for %s saying %q", err, path, c.want)
			}
			if data, _ := os.ReadFile(path); string(data) != c.content {
				t.Errorf("the refused file was changed")
			}
		})
	}
}

// TestStateWritableByOthersRefused: a state file others may write could
// hold their trust anchor, so it is refused, naming the file.
func TestStateWritableByOthersRefused(t *testing.T) {
	dir := t.TempDir()
	writeBundle(t, dir)
	clock := testkit.NewClock(time.Now().Truncate(time.Second))
	path := filepath.Join(dir, "state.json")
	e := stateEnv(t, dir, operatorsSeed, path, clock)
	e.srv.Close()
	if err := os.Chmod(path, 0o666); err != nil {
		t.Fatal(err)
	}
	_, err := tryStateEnv(t, t.TempDir(), operatorsSeed, path, clock)
	var se *emulator.StateFileError
	if !errors.As(err, &se) || se.Path != path || !strings.Contains(err.Error(), path) {
		t.Fatalf("New over a 0666 state file: %v; want a StateFileError naming %s", err, path)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := tryStateEnv(t, t.TempDir(), operatorsSeed, path, clock); err != nil {
		t.Fatalf("New over the same file at 0600: %v", err)
	}
}

func idFromARN(arn string) string { return arn[strings.LastIndexByte(arn, '/')+1:] }

// The crash test's child: KEYLESS_STATE_CHILD names the directory with
// the seed; it serves the emulator with dir/state/emulator.json and makes
// changes through the control plane from four goroutines until killed,
// printing "ack KIND NAME" after each answer.
const childEnv = "KEYLESS_STATE_CHILD"

func TestStateCrashChild(t *testing.T) {
	dir := os.Getenv(childEnv)
	if dir == "" {
		t.Skip("the child of TestStateSurvivesSIGKILL")
	}
	round := os.Getenv(childEnv + "_ROUND")
	bundle, err := os.ReadFile(filepath.Join(dir, "bundle.pem"))
	if err != nil {
		t.Fatal(err)
	}
	seed, err := emulator.LoadSeed(filepath.Join(dir, "emulator.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	emu, err := emulator.New(emulator.Config{Seed: seed, StatePath: filepath.Join(dir, "state", "emulator.json")})
	if err != nil {
		fmt.Printf("fail %v\n", err)
		return
	}
	srv := httptest.NewServer(emu)
	e := &env{t: t, srv: srv, clock: testkit.NewClock(time.Now())}
	var mu sync.Mutex
	ack := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Printf(format+"\n", args...)
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				e.clock.Set(time.Now())
				name := fmt.Sprintf("r%s-g%d-%d", round, g, i)
				if i%2 == 0 {
					if status, out := e.ra(operator, "POST", "/trustanchors", createAnchorBody(name, string(bundle))); status != http.StatusCreated {
						ack("fail CreateTrustAnchor %d %v", status, out)
						return
					}
					ack("ack anchor %s", name)
					continue
				}
				if status, body := e.iam(operator, url.Values{"Action": {"CreateRole"}, "RoleName": {name}, "AssumeRolePolicyDocument": {openTrustPolicy}}); status != http.StatusOK {
					ack("fail CreateRole %d %s", status, body)
					return
				}
				ack("ack role %s", name)
			}
		})
	}
	wg.Wait()
}

// TestStateSurvivesSIGKILL runs an emulator with --state in a child
// process that makes control-plane changes from four goroutines, kills it
// with SIGKILL after a varied number of acknowledged changes (counted from
// its output, so the kill lands in the middle of other writes), and
// restarts from the file: it must load, hold every acknowledged change,
// and leave no temporary file once loaded. Each round continues from the
// previous round's file.
func TestStateSurvivesSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	dir := t.TempDir()
	writeBundle(t, dir)
	pkitest.WriteFile(t, dir, "emulator.yaml", []byte(bundleSeed))
	stateDir := filepath.Join(dir, "state")
	statePath := filepath.Join(stateDir, "emulator.json")
	acked := map[string]map[string]bool{"anchor": {}, "role": {}}
	tornLeft := 0
	for round, killAfter := range []int{1, 2, 3, 5, 8, 13, 21, 34, 55} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestStateCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), childEnv+"="+dir, fmt.Sprintf("%s_ROUND=%d", childEnv, round))
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// A child stuck before its first answer must not hang the test.
		watchdog := time.AfterFunc(2*time.Minute, func() { cmd.Process.Kill() })
		sc := bufio.NewScanner(stdout)
		n := 0
		record := func(line string) {
			kind, name, ok := strings.Cut(strings.TrimPrefix(line, "ack "), " ")
			switch {
			case strings.HasPrefix(line, "ack ") && ok && acked[kind] != nil:
				acked[kind][name] = true
				n++
			case strings.HasPrefix(line, "fail "):
				t.Errorf("round %d: the child says %s", round, line)
			}
		}
		for n < killAfter && sc.Scan() {
			record(sc.Text())
		}
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		// What the child printed before it died was acknowledged too.
		for sc.Scan() {
			record(sc.Text())
		}
		_ = cmd.Wait()
		watchdog.Stop()
		if t.Failed() {
			t.FailNow()
		}
		if n < killAfter {
			t.Fatalf("round %d: the child stopped after %d acknowledgements, before the kill", round, n)
		}
		if slices.ContainsFunc(testkit.DirNames(t, stateDir), func(n string) bool { return strings.HasPrefix(n, ".tmp-") }) {
			tornLeft++
		}

		// Restart in-process, as the next emulator would.
		e, err := tryStateEnv(t, dir, bundleSeed, statePath, testkit.NewClock(time.Now()))
		if err != nil {
			t.Fatalf("round %d: restarting from the state file after SIGKILL: %v", round, err)
		}
		out := e.emu.Outputs("")
		for name := range acked["anchor"] {
			if out.TrustAnchors[name] == "" {
				t.Errorf("round %d: acknowledged trust anchor %s is not in the state file", round, name)
			}
		}
		for name := range acked["role"] {
			if out.Roles[name] == "" {
				t.Errorf("round %d: acknowledged role %s is not in the state file", round, name)
			}
		}
		if got := testkit.DirNames(t, stateDir); !slices.Equal(got, []string{"emulator.json", "emulator.json.journal"}) {
			t.Errorf("round %d: after a restart the state directory holds %v, want only emulator.json and its journal", round, got)
		}
		e.srv.Close()
		if t.Failed() {
			t.FailNow()
		}
	}
	t.Logf("%d anchors and %d roles acknowledged; %d of the kills left a temporary file, removed at the restart", len(acked["anchor"]), len(acked["role"]), tornLeft)
}
