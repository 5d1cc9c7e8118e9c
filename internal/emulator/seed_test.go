package emulator_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/keyless-dev/keyless/internal/emulator"
	"github.com/keyless-dev/keyless/internal/pki"
	"github.com/keyless-dev/keyless/internal/pki/pkitest"
)

const seedPolicy = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"rolesanywhere.amazonaws.com"},"Action":["sts:AssumeRole","sts:TagSession","sts:SetSourceIdentity"],"Condition":{"ArnEquals":{"aws:SourceArn":"${trustAnchors.gitlab-runner-ca.arn}"}}}]}`

// seedDir writes a CA bundle, a leaf, a CRL and a policy file into a
// temporary directory for seeds to name.
func seedDir(t *testing.T) string {
	dir := t.TempDir()
	root := pkitest.NewRoot(t, "seed-root")
	writeFile(t, filepath.Join(dir, "certs", "bundle.pem"), string(pki.EncodeCertificates(root.Cert)))
	writeFile(t, filepath.Join(dir, "certs", "leaf.pem"), string(pki.EncodeCertificates(root.Leaf(t, pkitest.LeafOptions{}))))
	writeFile(t, filepath.Join(dir, "certs", "ca.crl"), string(root.CRL(t)))
	writeFile(t, filepath.Join(dir, "policy.json"), seedPolicy)
	return dir
}

const goodSeed = `account: "111122223333"
region: us-east-1
trustAnchors:
  - name: gitlab-runner-ca
    id: 3f7c1a0e-0000-4000-8000-000000000001
    enabled: true
    certificateBundle: certs/bundle.pem
    crls: [certs/ca.crl]
roles:
  - name: ci-deployer
    maxSessionDuration: 3600
    assumeRolePolicy: |
      {"Version":"2012-10-17","Statement":[{"Effect":"Allow",
        "Principal":{"Service":"rolesanywhere.amazonaws.com"},
        "Action":["sts:AssumeRole","sts:TagSession","sts:SetSourceIdentity"],
        "Condition":{"ArnEquals":{"aws:SourceArn":"${trustAnchors.gitlab-runner-ca.arn}"},
                     "StringEquals":{"aws:PrincipalTag/x509Subject/CN":"gitlab-runner"}}}]}
    managedPolicyArns: []
profiles:
  - name: homelab-profile
    enabled: true
    roles: [ci-deployer]
    durationSeconds: 3600
    acceptRoleSessionName: false
    requireInstanceProperties: false
`

func TestParseSeedIssueExample(t *testing.T) {
	dir := seedDir(t)
	s, err := emulator.ParseSeed([]byte(goodSeed), emulator.SeedSource{Name: "emulator.yaml", Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	out := s.Outputs("")
	if diff := cmp.Diff(map[string]string{"gitlab-runner-ca": "arn:aws:rolesanywhere:us-east-1:111122223333:trust-anchor/3f7c1a0e-0000-4000-8000-000000000001"}, out.TrustAnchors); diff != "" {
		t.Errorf("trust anchors (-want +got):\n%s", diff)
	}
	if got := out.Roles["ci-deployer"]; got != "arn:aws:iam::111122223333:role/ci-deployer" {
		t.Errorf("role ARN %s", got)
	}
	p := out.Profiles["homelab-profile"]
	if !strings.HasPrefix(p, "arn:aws:rolesanywhere:us-east-1:111122223333:profile/") || len(p) != len("arn:aws:rolesanywhere:us-east-1:111122223333:profile/")+36 {
		t.Errorf("profile ARN %s: want a random UUID id", p)
	}
	if len(s.TrustAnchors[0].CRLs) != 1 || !s.TrustAnchors[0].Enabled {
		t.Errorf("anchor: %d CRLs, enabled %t", len(s.TrustAnchors[0].CRLs), s.TrustAnchors[0].Enabled)
	}
	// Role ids are stable across runs, so scripts can match them.
	s2, _ := emulator.ParseSeed([]byte(goodSeed), emulator.SeedSource{Name: "emulator.yaml", Dir: dir})
	if s.Roles[0].ID != s2.Roles[0].ID || !strings.HasPrefix(s.Roles[0].ID, "AROA") {
		t.Errorf("role ids %s, %s", s.Roles[0].ID, s2.Roles[0].ID)
	}
	e, err := emulator.New(emulator.Config{Seed: s})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(e.Summary(), "trust anchor gitlab-runner-ca: arn:aws:rolesanywhere:") {
		t.Errorf("summary:\n%s", e.Summary())
	}
	if diff := cmp.Diff(out, e.Outputs("")); diff != "" {
		t.Errorf("the emulator's outputs differ from the seed's (-seed +emulator):\n%s", diff)
	}
}

func TestParseSeedRefuses(t *testing.T) {
	dir := seedDir(t)
	leafPEM := "certs/leaf.pem"
	tests := []struct {
		name    string
		replace [2]string // old, new in goodSeed
		want    string    // substring of the error, which starts with the file and line
	}{
		{"unknown field", [2]string{"    enabled: true\n    certificateBundle", "    enabled: true\n    certificatBundle"},
			`emulator.yaml:7: unknown field "certificatBundle" (allowed here: name, id, enabled, certificateBundle`},
		{"unknown top-level field", [2]string{"region: us-east-1\n", "region: us-east-1\nregions: [eu-west-1]\n"},
			`emulator.yaml:3: unknown field "regions"`},
		{"account unquoted with leading zero lost", [2]string{`account: "111122223333"`, `account: 11112222333`},
			`emulator.yaml:1: account: "11112222333" is not a 12-digit AWS account id`},
		{"region", [2]string{"region: us-east-1", "region: US East"}, `emulator.yaml:2: region: "US East" is not an AWS region`},
		{"bad YAML", [2]string{"roles:\n", "roles: [\n"}, `emulator.yaml:`},
		{"id not a UUID", [2]string{"id: 3f7c1a0e-0000-4000-8000-000000000001", "id: ta-1"}, `emulator.yaml:5: trustAnchors[0].id: "ta-1" is not a UUID`},
		{"missing bundle file", [2]string{"certs/bundle.pem", "certs/nope.pem"}, `emulator.yaml:7: trustAnchors[0].certificateBundle: open`},
		{"leaf in bundle", [2]string{"certs/bundle.pem", leafPEM}, `is not a CA certificate`},
		{"both bundle forms", [2]string{"    crls:", "    certificateBundlePem: x\n    crls:"}, `not both`},
		{"CRL not a CRL", [2]string{"crls: [certs/ca.crl]", "crls: [policy.json]"}, `emulator.yaml:8: trustAnchors[0].crls[0]: policy.json: not a CRL`},
		{"duration below range", [2]string{"durationSeconds: 3600", "durationSeconds: 899"}, `profiles[0].durationSeconds: 899 is outside Roles Anywhere's range 900 to 43200`},
		{"role maximum above range", [2]string{"maxSessionDuration: 3600", "maxSessionDuration: 43201"}, `roles[0].maxSessionDuration: 43201 is outside IAM's range 3600 to 43200`},
		{"unknown role in profile", [2]string{"roles: [ci-deployer]", "roles: [ci-deploy]"}, `emulator.yaml:22: profiles[0].roles[0]: no role "ci-deploy" in this seed (roles: ci-deployer)`},
		{"unknown reference", [2]string{"${trustAnchors.gitlab-runner-ca.arn}", "${trustAnchors.gitlab.arn}"}, `roles[0].assumeRolePolicy: ${trustAnchors.gitlab.arn} names nothing in this seed`},
		{"bad policy", [2]string{`"Effect":"Allow"`, `"Effect":"allow"`}, `roles[0].assumeRolePolicy: trust policy of role ci-deployer: statement 1`},
		// What IAM's CreateRole refuses in a trust policy (MalformedPolicyDocument).
		{"trust policy without Principal", [2]string{`"Principal":{"Service":"rolesanywhere.amazonaws.com"},`, ``},
			`emulator.yaml:12: roles[0].assumeRolePolicy: trust policy of role ci-deployer: statement 1: Missing required field Principal`},
		{"trust policy with NotPrincipal", [2]string{`"Principal":{"Service"`, `"NotPrincipal":{"Service"`},
			`roles[0].assumeRolePolicy: trust policy of role ci-deployer: statement 1: Has prohibited field NotPrincipal`},
		{"trust policy with Resource", [2]string{`"sts:SetSourceIdentity"],`, `"sts:SetSourceIdentity"],"Resource":"*",`},
			`roles[0].assumeRolePolicy: trust policy of role ci-deployer: statement 1: Has prohibited field Resource`},
		{"trust policy with NotResource", [2]string{`"sts:SetSourceIdentity"],`, `"sts:SetSourceIdentity"],"NotResource":"arn:aws:s3:::x",`},
			`roles[0].assumeRolePolicy: trust policy of role ci-deployer: statement 1: Has prohibited field NotResource`},
		{"policy in both places", [2]string{"    managedPolicyArns: []", "    assumeRolePolicyFile: policy.json"}, `not both`},
		{"duplicate names", [2]string{"profiles:\n", "  - name: ci-deployer\n    assumeRolePolicyFile: policy.json\nprofiles:\n"}, `another role is already named "ci-deployer"`},
		{"bad role name", [2]string{"  - name: ci-deployer\n", "  - name: ci deployer\n"}, `is not an IAM role name`},
		{"second document", [2]string{"profiles:\n", "---\nprofiles:\n"}, `more than one YAML document`},
		{"duplicate key", [2]string{"region: us-east-1\n", "region: us-east-1\nregion: us-west-2\n"}, `mapping key "region" already defined`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := strings.Replace(goodSeed, tt.replace[0], tt.replace[1], 1)
			if doc == goodSeed {
				t.Fatalf("replacement %q not found", tt.replace[0])
			}
			_, err := emulator.ParseSeed([]byte(doc), emulator.SeedSource{Name: "emulator.yaml", Dir: dir})
			if err == nil {
				t.Fatal("ParseSeed accepted it")
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "emulator.yaml") {
				t.Errorf("error:\n%v\nwant it to contain:\n%s", err, tt.want)
			}
		})
	}
}

func TestLoadSeedEmpty(t *testing.T) {
	path := filepath.Join(t.TempDir(), "empty.yaml")
	writeFile(t, path, "# nothing\n")
	_, err := emulator.LoadSeed(path)
	if err == nil || !strings.Contains(err.Error(), "the seed is empty") {
		t.Fatalf("got %v", err)
	}
}

func TestParseSeedCRLIssuer(t *testing.T) {
	dir := seedDir(t) // bundle: seed-root
	impostor := pkitest.NewRootWithKey(t, "seed-root", pkitest.Key(t, "p256#impostor"))
	writeFile(t, filepath.Join(dir, "certs", "forged.crl"), string(impostor.CRL(t)))
	doc := strings.Replace(goodSeed, "crls: [certs/ca.crl]", "crls: [certs/forged.crl]", 1)
	_, err := emulator.ParseSeed([]byte(doc), emulator.SeedSource{Name: "emulator.yaml", Dir: dir})
	if err == nil || !strings.Contains(err.Error(), `emulator.yaml:8: trustAnchors[0].crls[0]: certs/forged.crl: issued by "CN=seed-root,O=keyless tests", but its signature does not verify`) {
		t.Fatalf("got %v, want a refusal of the CRL whose signature does not verify", err)
	}

	// A CRL of a CA outside the bundle loads, with a warning.
	inter := pkitest.NewRoot(t, "seed-root-2").Intermediate(t, "seed-int")
	writeFile(t, filepath.Join(dir, "certs", "int.crl"), string(inter.CRL(t)))
	doc = strings.Replace(goodSeed, "crls: [certs/ca.crl]", "crls: [certs/ca.crl, certs/int.crl]", 1)
	s, err := emulator.ParseSeed([]byte(doc), emulator.SeedSource{Name: "emulator.yaml", Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Warnings) != 1 || !strings.Contains(s.Warnings[0], `CRL certs/int.crl is issued by "CN=seed-int,O=keyless tests", which is not in the bundle`) {
		t.Errorf("warnings: %q", s.Warnings)
	}
}
