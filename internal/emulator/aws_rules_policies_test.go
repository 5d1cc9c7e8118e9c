package emulator_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/keyless-dev/keyless/internal/emulator"
	"github.com/keyless-dev/keyless/internal/emulator/emulatortest"
)

// The rules on a profile's session policies (sessionPolicy and
// managedPolicyArns), which Roles Anywhere passes to STS: each test breaks
// one and expects AWS's answer.

// stsExamplePolicy is the session policy of AWS's AssumeRole example,
// whose answer reports PackedPolicySize 6.
const stsExamplePolicy = `{"Version":"2012-10-17","Statement":[{"Sid":"Stmt1","Effect":"Allow","Action":"s3:*","Resource":"*"}]}`

// policyARNs makes n managed policy ARNs of the test account.
func policyARNs(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("arn:aws:iam::111122223333:policy/ci-%d", i)
	}
	return out
}

// yamlList writes a YAML flow list.
func yamlList(items []string) string {
	return "[" + strings.Join(items, ", ") + "]"
}

func TestSeedProfilePolicies(t *testing.T) {
	dir := seedDir(t)
	// The profile's last line; each case appends fields after it.
	const last = "    requireInstanceProperties: false\n"
	load := func(extra string) error {
		doc := strings.Replace(goodSeed, last, last+extra, 1)
		_, err := emulator.ParseSeed([]byte(doc), emulator.SeedSource{Name: "emulator.yaml", Dir: dir})
		return err
	}
	t.Run("accepted", func(t *testing.T) {
		arns := append(policyARNs(9), "arn:aws:iam::aws:policy/ReadOnlyAccess")
		if err := load("    managedPolicyArns: " + yamlList(arns) + "\n    sessionPolicy: '" + stsExamplePolicy + "'\n"); err != nil {
			t.Fatalf("10 managed policies and a small session policy: %v", err)
		}
	})
	tests := []struct {
		name, extra, want string
	}{
		{"11 managed policy ARNs", "    managedPolicyArns: " + yamlList(policyARNs(11)) + "\n",
			"emulator.yaml:26: profiles[0].managedPolicyArns: 11 managed policy ARNs; a session takes at most 10 (STS AssumeRole PolicyArns)"},
		{"managed policy of another account", "    managedPolicyArns: [arn:aws:iam::444455556666:policy/theirs]\n",
			"profiles[0].managedPolicyArns[0]: no such managed policy: arn:aws:iam::444455556666:policy/theirs is not AWS's (arn:aws:iam::aws:policy/...) nor of account 111122223333"},
		{"managed policy of another partition", "    managedPolicyArns: [arn:aws-cn:iam::aws:policy/ReadOnlyAccess]\n",
			"profiles[0].managedPolicyArns[0]: no such managed policy"},
		{"managed policy ARN of a role", "    managedPolicyArns: [arn:aws:iam::111122223333:role/ci-deployer]\n",
			`profiles[0].managedPolicyArns[0]: "arn:aws:iam::111122223333:role/ci-deployer" is not a managed policy ARN`},
		{"managed policy ARN over 200 characters", "    managedPolicyArns: [arn:aws:iam::aws:policy/" + strings.Repeat("x", 200) + "]\n",
			"profiles[0].managedPolicyArns[0]: the ARN is 224 characters; Roles Anywhere takes at most 200"},
		{"session policy not JSON", "    sessionPolicy: '{\"Version\":'\n",
			"profiles[0].sessionPolicy: not a session policy STS accepts: policy document is not valid JSON"},
		{"session policy with a Principal", `    sessionPolicy: '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"*"}]}'` + "\n",
			"profiles[0].sessionPolicy: not a session policy STS accepts: statement 1: Policy document should not specify a principal"},
		{"session policy without Resource", `    sessionPolicy: '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*"}]}'` + "\n",
			"profiles[0].sessionPolicy: not a session policy STS accepts: statement 1: Policy statement must contain resources"},
		{"session policy with a character STS refuses", `    sessionPolicy: '{"Version":"2012-10-17","Statement":[{"Sid":"Ω","Effect":"Allow","Action":"s3:*","Resource":"*"}]}'` + "\n",
			"profiles[0].sessionPolicy: not a session policy STS accepts: character 'Ω'"},
		{"session policy over 2,048 characters", "    sessionPolicy: '" + emulatortest.SessionPolicy(2049) + "'\n",
			"profiles[0].sessionPolicy: the session policy and managed policy ARNs are"},
		{"session policy and ARNs over 2,048 characters together", "    managedPolicyArns: " + yamlList(policyARNs(10)) + "\n    sessionPolicy: '" + emulatortest.SessionPolicy(1700) + "'\n",
			"characters of plain text; STS takes at most 2048"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := load(tt.extra)
			if err == nil {
				t.Fatal("ParseSeed accepted it")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error:\n%v\nwant it to contain:\n%s", err, tt.want)
			}
		})
	}
}

func TestControlPlaneProfilePolicies(t *testing.T) {
	e := newEnv(t, setup{})
	role := e.out.Roles["ci-deployer"]
	id := e.createProfile(map[string]any{"name": "p", "roleArns": []string{role}, "managedPolicyArns": policyARNs(10)})["profileId"].(string)
	withPolicy := e.createProfile(map[string]any{"name": "q", "roleArns": []string{role}, "sessionPolicy": emulatortest.SessionPolicy(1900)})["profileId"].(string)
	for _, c := range []struct {
		name, method, path string
		body               map[string]any
		contains           string
	}{
		{"CreateProfile with 11 managed policy ARNs", "POST", "/profiles", map[string]any{"name": "p", "roleArns": []string{role}, "managedPolicyArns": policyARNs(11)},
			"Cannot use more than 10 managed policy ARNs: a session takes at most 10"},
		{"UpdateProfile to 11 managed policy ARNs", "PATCH", "/profile/" + id, map[string]any{"managedPolicyArns": policyARNs(11)},
			"Cannot use more than 10 managed policy ARNs"},
		{"session policy with a Principal", "POST", "/profiles", map[string]any{"name": "p", "roleArns": []string{role},
			"sessionPolicy": `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"*"}]}`},
			"Invalid session policy (keyless emulator: statement 1: Policy document should not specify a principal"},
		{"session policy over 2,048 characters", "POST", "/profiles", map[string]any{"name": "p", "roleArns": []string{role}, "sessionPolicy": emulatortest.SessionPolicy(2049)},
			"1 validation error detected: Value at 'sessionPolicy' failed to satisfy constraint: Member must have length less than or equal to 2048"},
		{"managed policy ARNs pushing the session policy over 2,048 characters", "PATCH", "/profile/" + withPolicy, map[string]any{"managedPolicyArns": policyARNs(10)},
			"Member must have length less than or equal to 2048"},
		{"session policy over UpdateProfile's 100,000", "PATCH", "/profile/" + id, map[string]any{"sessionPolicy": emulatortest.SessionPolicy(100001)},
			"Member must have length less than or equal to 100000"},
	} {
		t.Run(c.name, func(t *testing.T) {
			status, out := e.ra(operator, c.method, c.path, c.body)
			msg, _ := out["message"].(string)
			if status != http.StatusBadRequest || out["__type"] != "ValidationException" || !strings.Contains(msg, c.contains) {
				t.Errorf("%d %v, want 400 ValidationException containing %q", status, out, c.contains)
			}
		})
	}
	// A refused update changes nothing.
	got := e.mustRA(200, "GET", "/profile/"+withPolicy, nil)["profile"].(map[string]any)
	if _, ok := got["managedPolicyArns"]; ok {
		t.Errorf("refused UpdateProfile left managedPolicyArns %v", got["managedPolicyArns"])
	}
}

// sessionProfile makes an enabled profile for ci-deployer with the given
// session policies through the control plane and returns its ARN.
func (e *env) sessionProfile(name, policy string, arns []string) string {
	e.t.Helper()
	body := map[string]any{"name": name, "roleArns": []string{e.out.Roles["ci-deployer"]}, "enabled": true}
	if policy != "" {
		body["sessionPolicy"] = policy
	}
	if arns != nil {
		body["managedPolicyArns"] = arns
	}
	return e.createProfile(body)["profileArn"].(string)
}

func TestCreateSessionPackedPolicySize(t *testing.T) {
	e := newEnv(t, setup{})
	for _, c := range []struct {
		name   string
		policy string
		arns   []string
		want   int
	}{
		// No session policies: AWS's answer is 0 whatever the certificate.
		{name: "none", want: 0},
		// AWS's AssumeRole example policy: its PackedPolicySize is 6.
		{name: "AWS example policy", policy: stsExamplePolicy, want: 6},
		{name: "one AWS managed policy", arns: []string{"arn:aws:iam::aws:policy/ReadOnlyAccess"}, want: 8},
		{name: "policy and ten managed policies", policy: stsExamplePolicy, arns: policyARNs(10), want: 51},
	} {
		t.Run(c.name, func(t *testing.T) {
			profile := e.out.Profiles["homelab-profile"]
			if c.policy != "" || c.arns != nil {
				profile = e.sessionProfile(strings.ReplaceAll(c.name, " ", "-"), c.policy, c.arns)
			}
			a := e.createSession(call{profile: profile})
			if a.status != http.StatusCreated {
				t.Fatalf("%d %s: %s", a.status, a.code, a.message)
			}
			if got := a.session.CredentialSet[0].PackedPolicySize; got != c.want {
				t.Errorf("packedPolicySize = %d, want %d", got, c.want)
			}
		})
	}
}

func TestCreateSessionRefusesProfilePolicies(t *testing.T) {
	e := newEnv(t, setup{})
	for _, c := range []struct {
		name     string
		policy   string
		arns     []string
		contains string
	}{
		// CreateProfile takes any well-formed policy ARN (roles need not
		// exist either); STS refuses a policy of another account.
		{name: "managed policy of another account", arns: []string{"arn:aws:iam::444455556666:policy/theirs"},
			contains: "Policy arn:aws:iam::444455556666:policy/theirs does not exist or is not attachable."},
		{name: "managed policy of another partition", arns: []string{"arn:aws-us-gov:iam::aws:policy/ReadOnlyAccess"},
			contains: "Policy arn:aws-us-gov:iam::aws:policy/ReadOnlyAccess does not exist or is not attachable."},
		// Under 2,048 characters, over STS's packed allotment.
		{name: "packed policy too large", policy: emulatortest.SessionPolicy(1500), contains: "Packed policy consumes 1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			profile := e.sessionProfile(strings.ReplaceAll(c.name, " ", "-"), c.policy, c.arns)
			a := e.createSession(call{profile: profile})
			if a.status != http.StatusBadRequest || a.code != "ValidationException" || !strings.Contains(a.message, c.contains) {
				t.Errorf("%d %s %q, want 400 ValidationException containing %q", a.status, a.code, a.message, c.contains)
			}
		})
	}
}
