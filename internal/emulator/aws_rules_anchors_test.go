package emulator_test

import (
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"math/big"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keyless-dev/keyless/internal/emulator"
	"github.com/keyless-dev/keyless/internal/iampolicy"
	"github.com/keyless-dev/keyless/internal/pki"
	"github.com/keyless-dev/keyless/internal/pki/pkitest"
)

// The rules AWS applies to trust anchors, their CRLs and trust policies,
// each broken once at seed load, through the control plane and (for the
// intermediates of a chain) at CreateSession. See docs/emulator.md.

// bundleCase is a trust anchor bundle that breaks one rule.
type bundleCase struct {
	name   string
	bundle func(t *testing.T) []byte
	want   string // in the seed's error and the control plane's message
}

func pemOf(cas ...*pkitest.CA) []byte {
	var out []byte
	for _, ca := range cas {
		out = append(out, pki.EncodeCertificates(ca.Cert)...)
	}
	return out
}

func refusedBundles() []bundleCase {
	ca := func(o pkitest.CAOptions) func(t *testing.T) []byte {
		return func(t *testing.T) []byte { return pemOf(pkitest.NewCA(t, o)) }
	}
	return []bundleCase{
		{"CA without keyUsage", ca(pkitest.CAOptions{Name: "no-key-usage", NoKeyUsage: true}),
			`certificate 1 (CN=no-key-usage,O=keyless tests): certificate cannot be a Roles Anywhere CA certificate: it has no keyUsage extension`},
		{"CA whose keyUsage lacks keyCertSign", ca(pkitest.CAOptions{Name: "crl-sign-only", KeyUsage: x509.KeyUsageCRLSign}),
			`certificate 1 (CN=crl-sign-only,O=keyless tests): certificate cannot be a Roles Anywhere CA certificate: its keyUsage does not include keyCertSign`},
		{"SHA-1-signed root", func(t *testing.T) []byte {
			return pemOf(pkitest.NewCA(t, pkitest.CAOptions{Name: "sha1-root", Key: pkitest.Key(t, pkitest.RSA2048), SignatureAlgorithm: x509.SHA1WithRSA}))
		}, `certificate 1 (CN=sha1-root,O=keyless tests): certificate cannot be a Roles Anywhere CA certificate: it is signed with SHA1-RSA; Roles Anywhere requires SHA-256 or stronger`},
		{"RSA 1024 root", func(t *testing.T) []byte {
			return pemOf(pkitest.NewCA(t, pkitest.CAOptions{Name: "rsa1024-root", Key: pkitest.Key(t, pkitest.RSA1024)}))
		}, `certificate 1 (CN=rsa1024-root,O=keyless tests): certificate cannot be a Roles Anywhere CA certificate: its key is RSA 1024 bits`},
		{"a leaf", func(t *testing.T) []byte {
			return pki.EncodeCertificates(pkitest.NewRoot(t, "leaf-issuer").Leaf(t, pkitest.LeafOptions{}))
		}, `certificate 1 (CN=gitlab-runner,O=keyless tests): certificate cannot be a Roles Anywhere CA certificate: it is not a CA certificate`},
		{"second certificate without keyUsage", func(t *testing.T) []byte {
			return pemOf(pkitest.NewRoot(t, "good-root"), pkitest.NewCA(t, pkitest.CAOptions{Name: "second-no-ku", NoKeyUsage: true}))
		}, `certificate 2 (CN=second-no-ku,O=keyless tests): certificate cannot be a Roles Anywhere CA certificate: it has no keyUsage extension`},
		{"three certificates", func(t *testing.T) []byte {
			root := pkitest.NewRoot(t, "three-root")
			return pemOf(root, root.Intermediate(t, "three-int-1"), root.Intermediate(t, "three-int-2"))
		}, `the bundle holds 3 certificates; Roles Anywhere allows at most 2 per trust anchor (quota "Certificates per trust anchor", not adjustable)`},
	}
}

// anchorSeed is goodSeed without its CRL, so a bundle alone decides.
func anchorSeed(t *testing.T, dir string, bundle []byte) string {
	t.Helper()
	writeFile(t, filepath.Join(dir, "certs", "bundle.pem"), string(bundle))
	doc := strings.Replace(goodSeed, "    crls: [certs/ca.crl]\n", "", 1)
	if doc == goodSeed {
		t.Fatal("goodSeed changed: no crls line")
	}
	return doc
}

func TestSeedRefusesTrustAnchorCertificates(t *testing.T) {
	for _, tt := range refusedBundles() {
		t.Run(tt.name, func(t *testing.T) {
			dir := seedDir(t)
			doc := anchorSeed(t, dir, tt.bundle(t))
			_, err := emulator.ParseSeed([]byte(doc), emulator.SeedSource{Name: "emulator.yaml", Dir: dir})
			want := "emulator.yaml:7: trustAnchors[0].certificateBundle: " + tt.want
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("got %v\nwant …%s…", err, want)
			}
		})
	}
	t.Run("inline bundle names its field", func(t *testing.T) {
		dir := seedDir(t)
		bundle := pemOf(pkitest.NewCA(t, pkitest.CAOptions{Name: "inline-no-ku", NoKeyUsage: true}))
		doc := strings.Replace(anchorSeed(t, dir, nil), "    certificateBundle: certs/bundle.pem\n",
			"    certificateBundlePem: |\n"+indent(string(bundle), 6)+"\n", 1)
		_, err := emulator.ParseSeed([]byte(doc), emulator.SeedSource{Name: "emulator.yaml", Dir: dir})
		if err == nil || !strings.Contains(err.Error(), "trustAnchors[0].certificateBundlePem: certificate 1 (CN=inline-no-ku,O=keyless tests): ") ||
			!strings.Contains(err.Error(), "it has no keyUsage extension") {
			t.Errorf("got %v", err)
		}
	})
	t.Run("root and intermediate load", func(t *testing.T) {
		dir := seedDir(t)
		root := pkitest.NewRoot(t, "two-root")
		doc := anchorSeed(t, dir, pemOf(root, root.Intermediate(t, "two-int")))
		s, err := emulator.ParseSeed([]byte(doc), emulator.SeedSource{Name: "emulator.yaml", Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		if n := len(s.TrustAnchors[0].Certificates); n != 2 {
			t.Errorf("%d certificates", n)
		}
	})
}

// paddedBundle is a valid one-certificate bundle of exactly n characters:
// text before the PEM block (as `openssl x509 -text` writes it) pads it.
func paddedBundle(t *testing.T, n int) []byte {
	t.Helper()
	cert := pemOf(pkitest.NewRoot(t, "padded-root"))
	pad := n - len(strings.TrimSpace(string(cert))) - 1 // the newline after the padding
	if pad < 1 {
		t.Fatalf("a bundle of %d characters cannot hold the certificate", n)
	}
	return []byte(strings.Repeat("x", pad) + "\n" + string(cert))
}

func TestSeedBundleCharacterLimit(t *testing.T) {
	dir := seedDir(t)
	doc := anchorSeed(t, dir, paddedBundle(t, 204800))
	if _, err := emulator.ParseSeed([]byte(doc), emulator.SeedSource{Name: "emulator.yaml", Dir: dir}); err != nil {
		t.Fatalf("a bundle of 204,800 characters: %v", err)
	}
	doc = anchorSeed(t, dir, paddedBundle(t, 204801))
	_, err := emulator.ParseSeed([]byte(doc), emulator.SeedSource{Name: "emulator.yaml", Dir: dir})
	want := "emulator.yaml:7: trustAnchors[0].certificateBundle: the bundle is 204801 characters; AWS accepts at most 204800"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("got %v\nwant …%s…", err, want)
	}
}

func TestSeedRefusesThirdCRL(t *testing.T) {
	dir := seedDir(t)
	two := strings.Replace(goodSeed, "crls: [certs/ca.crl]", "crls: [certs/ca.crl, certs/ca.crl]", 1)
	if _, err := emulator.ParseSeed([]byte(two), emulator.SeedSource{Name: "emulator.yaml", Dir: dir}); err != nil {
		t.Fatalf("two CRLs: %v", err)
	}
	three := strings.Replace(goodSeed, "crls: [certs/ca.crl]", "crls: [certs/ca.crl, certs/ca.crl, certs/ca.crl]", 1)
	_, err := emulator.ParseSeed([]byte(three), emulator.SeedSource{Name: "emulator.yaml", Dir: dir})
	want := `emulator.yaml:8: trustAnchors[0].crls[2]: 3 CRLs for one trust anchor; Roles Anywhere allows at most 2 (quota "CRLs per trust anchor", not adjustable)`
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("got %v\nwant …%s…", err, want)
	}
}

// longPolicy is the seed's trust policy, naming anchor, grown to n
// characters without white space, with as much white space again.
func longPolicy(t *testing.T, n int, anchor string) string {
	t.Helper()
	deny := func(v string) string {
		return `,{"Effect":"Deny","Principal":"*","Action":"sts:AssumeRole","Condition":{"StringEquals":{"aws:PrincipalTag/pad":"` + v + `"}}}`
	}
	base := strings.TrimSuffix(strings.ReplaceAll(seedPolicy, "${trustAnchors.gitlab-runner-ca.arn}", anchor), "]}")
	short := base + deny("") + "]}"
	grow := n - iampolicy.TrustPolicyChars([]byte(short))
	if grow < 0 {
		t.Fatalf("the policy is already %d characters", iampolicy.TrustPolicyChars([]byte(short)))
	}
	return base + deny(strings.Repeat("x", grow)) + strings.Repeat(" \n", n) + "]}"
}

const seedAnchorARN = "arn:aws:rolesanywhere:us-east-1:111122223333:trust-anchor/3f7c1a0e-0000-4000-8000-000000000001"

func TestSeedRefusesTrustPolicyOverIAMQuota(t *testing.T) {
	dir := seedDir(t)
	doc := strings.Replace(goodSeed, "    managedPolicyArns: []\n", "", 1)
	start := strings.Index(doc, "    assumeRolePolicy: |")
	end := strings.Index(doc, "profiles:")
	doc = doc[:start] + "    assumeRolePolicyFile: policy.json\n" + doc[end:]

	// 2,048 characters without white space load, however much white
	// space there is (IAM does not count it).
	writeFile(t, filepath.Join(dir, "policy.json"), longPolicy(t, 2048, seedAnchorARN))
	if _, err := emulator.ParseSeed([]byte(doc), emulator.SeedSource{Name: "emulator.yaml", Dir: dir}); err != nil {
		t.Fatalf("a 2,048-character trust policy: %v", err)
	}
	writeFile(t, filepath.Join(dir, "policy.json"), longPolicy(t, 2049, seedAnchorARN))
	_, err := emulator.ParseSeed([]byte(doc), emulator.SeedSource{Name: "emulator.yaml", Dir: dir})
	want := `roles[0].assumeRolePolicyFile: trust policy of role ci-deployer: trust policy exceeds IAM's quota: it is 2049 characters without white space, and IAM's quota "Role trust policy length" is 2048`
	if err == nil || !strings.Contains(err.Error(), want) || !strings.HasPrefix(err.Error(), "emulator.yaml:") {
		t.Fatalf("got %v\nwant …%s…", err, want)
	}
}

func TestIAMTrustPolicyQuotaIgnoresWhiteSpace(t *testing.T) {
	e := newEnv(t, setup{})
	doc := longPolicy(t, 2048, e.out.TrustAnchors["gitlab-runner-ca"])
	e.iamOK(act("CreateRole", "RoleName", "spacious", "AssumeRolePolicyDocument", doc), nil)
	e.iamFails(act("CreateRole", "RoleName", "too-long", "AssumeRolePolicyDocument", strings.Replace(doc, `"x`, `"xx`, 1)),
		409, "LimitExceeded", "Cannot exceed quota for ACLSizePerRole: 2048")
}

func TestControlPlaneRefusesTrustAnchorCertificates(t *testing.T) {
	e := newEnv(t, setup{})
	id := "3f7c1a0e-0000-4000-8000-000000000001" // gitlab-runner-ca
	cases := append(refusedBundles(), bundleCase{"over 204,800 characters", func(t *testing.T) []byte { return paddedBundle(t, 204801) },
		"1 validation error detected: Value at 'source.sourceData.x509CertificateData' failed to satisfy constraint: Member must have length less than or equal to 204800"})
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			bundle := tt.bundle(t)
			status, out := e.ra(operator, "POST", "/trustanchors", createAnchorBody("refused", string(bundle)))
			if msg, _ := out["message"].(string); status != 400 || out["__type"] != "ValidationException" || !strings.Contains(msg, tt.want) {
				t.Errorf("CreateTrustAnchor: %d %v\nwant 400 ValidationException with …%s…", status, out, tt.want)
			}
			status, out = e.ra(operator, "PATCH", "/trustanchor/"+id, map[string]any{"source": createAnchorBody("", string(bundle))["source"]})
			if msg, _ := out["message"].(string); status != 400 || out["__type"] != "ValidationException" || !strings.Contains(msg, tt.want) {
				t.Errorf("UpdateTrustAnchor: %d %v\nwant 400 ValidationException with …%s…", status, out, tt.want)
			}
		})
	}
	if list := e.mustRA(200, "GET", "/trustanchors", nil)["trustAnchors"].([]any); len(list) != 2 {
		t.Errorf("refused calls left %d trust anchors, want the seed's 2", len(list))
	}
	// The anchor still trusts its CA: no refused update changed it.
	if a := e.createSession(call{}); a.status != 201 {
		t.Errorf("CreateSession after the refused updates: %d %s", a.status, a.message)
	}
	// Two certificates, and 204,800 characters, are accepted.
	root := pkitest.NewRoot(t, "cp-two-root")
	e.mustRA(201, "POST", "/trustanchors", createAnchorBody("two", string(pemOf(root, root.Intermediate(t, "cp-two-int")))))
	e.mustRA(201, "POST", "/trustanchors", createAnchorBody("padded", string(paddedBundle(t, 204800))))
}

func TestImportCrlQuota(t *testing.T) {
	e := newEnv(t, setup{})
	anchor := e.out.TrustAnchors["gitlab-runner-ca"]
	crl := base64.StdEncoding.EncodeToString(e.inter.CRL(t))
	importCRL := func(name string) (int, map[string]any) {
		return e.ra(operator, "POST", "/crls", map[string]any{"name": name, "crlData": crl, "trustAnchorArn": anchor})
	}
	first := e.mustRA(201, "POST", "/crls", map[string]any{"name": "one", "crlData": crl, "trustAnchorArn": anchor})["crl"].(map[string]any)
	e.mustRA(201, "POST", "/crls", map[string]any{"name": "two", "crlData": crl, "trustAnchorArn": anchor})
	status, out := importCRL("three")
	if msg, _ := out["message"].(string); status != 400 || out["__type"] != "ValidationException" ||
		!strings.Contains(msg, "Cannot import more than 2 CRLs for a trust anchor") || !strings.Contains(msg, `trust anchor gitlab-runner-ca already has 2 CRLs (quota "CRLs per trust anchor"`) {
		t.Errorf("third ImportCrl: %d %v, want 400 ValidationException", status, out)
	}
	// The quota is per trust anchor: the other anchor takes its own.
	other := base64.StdEncoding.EncodeToString(e.other.CRL(t))
	e.mustRA(201, "POST", "/crls", map[string]any{"name": "other", "crlData": other, "trustAnchorArn": e.out.TrustAnchors["other-ca"]})
	// UpdateCrl replaces a list; it makes none.
	e.mustRA(200, "PATCH", "/crl/"+first["crlId"].(string), map[string]any{"crlData": crl})
	// Deleting one makes room.
	e.mustRA(200, "DELETE", "/crl/"+first["crlId"].(string), nil)
	if status, out := importCRL("three"); status != 201 {
		t.Errorf("ImportCrl after DeleteCrl: %d %v", status, out)
	}
}

func TestImportCrlQuotaCountsSeedCRLs(t *testing.T) {
	e := newEnv(t, setup{revoked: []*big.Int{}}) // the seed gives gitlab-runner-ca one CRL
	anchor := e.out.TrustAnchors["gitlab-runner-ca"]
	crl := base64.StdEncoding.EncodeToString(e.inter.CRL(t))
	e.mustRA(201, "POST", "/crls", map[string]any{"name": "second", "crlData": crl, "trustAnchorArn": anchor})
	if status, out := e.ra(operator, "POST", "/crls", map[string]any{"name": "third", "crlData": crl, "trustAnchorArn": anchor}); status != 400 || out["__type"] != "ValidationException" {
		t.Errorf("ImportCrl over the seed's CRL and one imported: %d %v", status, out)
	}
}

func TestCreateSessionRefusesIntermediateCAs(t *testing.T) {
	e := newEnv(t, setup{})
	for _, tt := range []struct {
		name string
		o    pkitest.CAOptions
		want string
	}{
		{"without keyUsage", pkitest.CAOptions{Name: "int-no-ku", NoKeyUsage: true}, "it has no keyUsage extension"},
		// (crypto/x509 itself refuses an intermediate whose keyUsage
		// lacks keyCertSign.)
		{"RSA 1024", pkitest.CAOptions{Name: "int-rsa1024", Key: pkitest.Key(t, pkitest.RSA1024)}, "its key is RSA 1024 bits"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tt.o.Parent = e.root
			inter := pkitest.NewCA(t, tt.o)
			key := pkitest.Key(t, pkitest.P256)
			leaf := inter.Leaf(t, pkitest.LeafOptions{Key: key})
			// crypto/x509 alone accepts this chain; the rule is the emulator's.
			roots := x509.NewCertPool()
			roots.AddCert(e.root.Cert)
			pool := x509.NewCertPool()
			pool.AddCert(inter.Cert)
			if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
				t.Fatalf("crypto/x509 refuses the chain itself: %v", err)
			}
			a := e.createSession(call{key: key, leaf: leaf, chain: []*x509.Certificate{inter.Cert}})
			want := fmt.Sprintf(`intermediate CA "CN=%s,O=keyless tests" in X-Amz-X509-Chain: certificate cannot be a Roles Anywhere CA certificate: %s`, tt.o.Name, tt.want)
			if a.status != 403 || a.code != "AccessDeniedException" || !strings.HasPrefix(a.message, "Untrusted Signing Certificate") || !strings.Contains(a.message, want) {
				t.Errorf("CreateSession: %d %s %s\nwant 403 AccessDeniedException Untrusted Signing Certificate with …%s…", a.status, a.code, a.message, want)
			}
		})
	}
	// The reference chain (pkitest's intermediate: keyCertSign) is accepted.
	if a := e.createSession(call{}); a.status != 201 {
		t.Errorf("reference chain: %d %s", a.status, a.message)
	}
}
