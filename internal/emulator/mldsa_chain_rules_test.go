package emulator

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/keyless-dev/keyless/internal/mldsa"
	"github.com/keyless-dev/keyless/internal/pki/pkitest"
)

// mkCert issues tmpl for pub, signed by signer as parent (self-signed
// when parent is nil), with ML-DSA where either key is ML-DSA.
func mkCert(t *testing.T, tmpl, parent *x509.Certificate, pub crypto.PublicKey, signer crypto.Signer) *x509.Certificate {
	t.Helper()
	if tmpl.SerialNumber == nil {
		s, err := rand.Int(rand.Reader, big.NewInt(1<<62))
		if err != nil {
			t.Fatal(err)
		}
		tmpl.SerialNumber = s
	}
	if parent == nil {
		parent = tmpl
	}
	der, err := mldsa.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func caTmpl(name string, now time.Time) *x509.Certificate {
	return &x509.Certificate{Subject: pkix.Name{CommonName: name}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		BasicConstraintsValid: true, IsCA: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
}

func leafTmpl(now time.Time) *x509.Certificate {
	return &x509.Certificate{Subject: pkix.Name{CommonName: "runner"}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, BasicConstraintsValid: true}
}

func anchorOf(name string, certs ...*x509.Certificate) *TrustAnchor {
	ta := &TrustAnchor{Name: name, ARN: "arn:aws:rolesanywhere:us-east-1:000000000000:trust-anchor/" + name, Enabled: true}
	ta.setCertificates(certs, "")
	return ta
}

// unknownCritical is a critical extension no verifier knows.
var unknownCritical = pkix.Extension{Id: []int{1, 3, 6, 1, 4, 1, 99999, 1}, Critical: true, Value: []byte{0x05, 0x00}}

// TestMLDSAChainRefuses: the hand verifier for chains signed with ML-DSA
// refuses each broken rule on its own; every case is a chain that is
// valid but for the one rule it names.
func TestMLDSAChainRefuses(t *testing.T) {
	now := time.Now()
	rootKey := pkitest.Key(t, pkitest.MLDSA44+"#rules-root")
	root := mkCert(t, caTmpl("rules-root", now), nil, rootKey.Public(), rootKey)
	interKey := pkitest.Key(t, pkitest.P256+"#rules-int")
	leafKey := pkitest.Key(t, pkitest.P256+"#rules-leaf")
	// intermediate issues a P-256 intermediate CA under root, changed by
	// edit, and a leaf under it.
	intermediate := func(edit func(*x509.Certificate)) (*x509.Certificate, *x509.Certificate) {
		tmpl := caTmpl("rules-int", now)
		if edit != nil {
			edit(tmpl)
		}
		inter := mkCert(t, tmpl, root, interKey.Public(), rootKey)
		return inter, mkCert(t, leafTmpl(now), inter, leafKey.Public(), interKey)
	}
	inter, leaf := intermediate(nil)
	if chain, err := verifyMLDSAChain([]*x509.Certificate{root}, []*x509.Certificate{inter}, leaf, now, nil); err != nil || len(chain) != 3 {
		t.Fatalf("the valid chain: %d certificates, %v", len(chain), err)
	}

	type tc struct {
		name          string
		root          *x509.Certificate
		intermediates []*x509.Certificate
		leaf          *x509.Certificate
		want          string
	}
	var cases []tc
	add := func(name string, edit func(*x509.Certificate), want string) {
		i, l := intermediate(edit)
		cases = append(cases, tc{name, root, []*x509.Certificate{i}, l, want})
	}
	add("intermediate without keyUsage", func(c *x509.Certificate) { c.KeyUsage = 0 }, "no keyUsage extension")
	add("intermediate with an unhandled critical extension", func(c *x509.Certificate) { c.ExtraExtensions = []pkix.Extension{unknownCritical} }, "unhandled critical extension")
	add("intermediate with permitted DNS name constraints", func(c *x509.Certificate) {
		c.PermittedDNSDomainsCritical, c.PermittedDNSDomains = true, []string{"runner"}
	}, "name constraints")
	// policyConstraints (2.5.29.36) with requireExplicitPolicy 0.
	add("intermediate with policy constraints", func(c *x509.Certificate) {
		c.ExtraExtensions = []pkix.Extension{{Id: []int{2, 5, 29, 36}, Critical: true, Value: []byte{0x30, 0x03, 0x80, 0x01, 0x00}}}
	}, "policy constraints")
	{
		rsaKey := pkitest.Key(t, pkitest.RSA1024)
		i := mkCert(t, caTmpl("rules-rsa", now), root, rsaKey.Public(), rootKey)
		cases = append(cases, tc{"RSA-1024 intermediate", root, []*x509.Certificate{i}, mkCert(t, leafTmpl(now), i, leafKey.Public(), rsaKey), "RSA 1024 bits"})
	}
	{
		lt := leafTmpl(now)
		lt.ExtraExtensions = []pkix.Extension{{Id: []int{2, 5, 29, 36}, Critical: true, Value: []byte{0x30, 0x03, 0x80, 0x01, 0x00}}}
		cases = append(cases, tc{"leaf with policy constraints", root, []*x509.Certificate{inter}, mkCert(t, lt, inter, leafKey.Public(), interKey), "policy constraints"})
	}
	{
		lt := leafTmpl(now)
		lt.ExtraExtensions = []pkix.Extension{unknownCritical}
		cases = append(cases, tc{"leaf with an unhandled critical extension", root, []*x509.Certificate{inter}, mkCert(t, lt, inter, leafKey.Public(), interKey), "the leaf has an unhandled critical extension"})
	}
	{
		// A CA with keyUsage, but not keyCertSign, signing the leaf
		// itself: a trust-anchor certificate, so only the walk's own
		// issuer rule (not pki.CheckCA on intermediates) stands in the way.
		k := pkitest.Key(t, pkitest.MLDSA44+"#rules-nocertsign")
		rt := caTmpl("rules-nocertsign", now)
		rt.KeyUsage = x509.KeyUsageDigitalSignature | x509.KeyUsageCRLSign
		r := mkCert(t, rt, nil, k.Public(), k)
		cases = append(cases, tc{"CA keyUsage without keyCertSign", r, nil, mkCert(t, leafTmpl(now), r, leafKey.Public(), k), "lacks keyUsage keyCertSign"})
	}
	{
		k := pkitest.Key(t, pkitest.MLDSA44+"#rules-pathlen")
		rt := caTmpl("rules-pathlen", now)
		rt.MaxPathLen, rt.MaxPathLenZero = 0, true
		r := mkCert(t, rt, nil, k.Public(), k)
		i := mkCert(t, caTmpl("rules-pathlen-int", now), r, interKey.Public(), k)
		cases = append(cases, tc{"root with pathlen 0 above an intermediate", r, []*x509.Certificate{i}, mkCert(t, leafTmpl(now), i, leafKey.Public(), interKey), "allows 0 CA certificates below it"})
	}
	{
		// A chain with no ML-DSA signature is crypto/x509's to verify:
		// the hand verifier does not take it over.
		k := pkitest.Key(t, pkitest.P256+"#rules-classic")
		r := mkCert(t, caTmpl("rules-classic", now), nil, k.Public(), k)
		cases = append(cases, tc{"chain without an ML-DSA signature", r, nil, mkCert(t, leafTmpl(now), r, leafKey.Public(), k), "no ML-DSA signature"})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			chain, err := verifyMLDSAChain([]*x509.Certificate{c.root}, c.intermediates, c.leaf, now, nil)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("verifyMLDSAChain = %d certificates, %v; want an error with %q", len(chain), err, c.want)
			}
		})
	}
}

// TestMLDSAChainTriesAnotherPath: an intermediate refused by the CA rules
// does not end the walk; another intermediate with the same name and key
// that meets them makes the chain.
func TestMLDSAChainTriesAnotherPath(t *testing.T) {
	now := time.Now()
	rootKey := pkitest.Key(t, pkitest.MLDSA44+"#path-root")
	root := mkCert(t, caTmpl("path-root", now), nil, rootKey.Public(), rootKey)
	interKey := pkitest.Key(t, pkitest.P256+"#path-int")
	bt := caTmpl("path-int", now)
	bt.KeyUsage = 0
	bad := mkCert(t, bt, root, interKey.Public(), rootKey)
	good := mkCert(t, caTmpl("path-int", now), root, interKey.Public(), rootKey)
	leaf := mkCert(t, leafTmpl(now), good, pkitest.Key(t, pkitest.P256).Public(), interKey)
	_, err := verifyWith(anchorOf("path"), leaf, []*x509.Certificate{bad, good}, now, newSigBudget())
	if err == nil {
		t.Fatal("an anchor without certificates verified a chain")
	}
	chain, err := verifyWith(anchorOf("path", root), leaf, []*x509.Certificate{bad, good}, now, newSigBudget())
	if err != nil || len(chain) != 3 || !chain[1].Equal(good) {
		t.Fatalf("verifyWith = %d certificates, %v; want leaf, the intermediate with keyUsage, root", len(chain), err)
	}
	if _, err := verifyWith(anchorOf("path", root), leaf, []*x509.Certificate{bad}, now, newSigBudget()); err == nil || !strings.Contains(err.Error(), "keyUsage") {
		t.Fatalf("only the intermediate without keyUsage: %v", err)
	}
}

// TestMLDSAChainSignatureBudget: five intermediates that share a name and
// an ML-DSA-87 key, each a valid issuer of every other and none issued by
// the trust anchor, cost each (certificate, issuer) signature check once
// per request (25 for the request's anchor), and twenty other anchors
// holding a certificate of that name cannot push one request past
// maxSignatureChecks; the refusal says no path reaches the anchor.
func TestMLDSAChainSignatureBudget(t *testing.T) {
	now := time.Now()
	k := pkitest.Key(t, pkitest.MLDSA87+"#loop")
	var inters []*x509.Certificate
	for range 5 {
		inters = append(inters, mkCert(t, caTmpl("loop", now), nil, k.Public(), k))
	}
	leaf := mkCert(t, leafTmpl(now), inters[0], pkitest.Key(t, pkitest.MLDSA87+"#loop-leaf").Public(), k)
	rootKey := pkitest.Key(t, pkitest.MLDSA44+"#loop-root")
	ta := anchorOf("loop-anchor", mkCert(t, caTmpl("unrelated-root", now), nil, rootKey.Public(), rootKey))

	b := newSigBudget()
	_, err := verifyWith(ta, leaf, inters, now, b)
	if !errors.Is(err, errSignatureBudget) || !strings.Contains(err.Error(), "send only the intermediates between the leaf and the trust anchor") {
		t.Fatalf("verifyWith = %v, want the budget's refusal with its fix", err)
	}
	// Every ordering of the five would be about 325 steps: the walk stops
	// at the budget, having checked each pair's signature and each
	// intermediate's CA rules at most once.
	if b.steps != maxWalkSteps || b.checks > 25 || b.caChecks != 5 {
		t.Fatalf("%d steps, %d signature checks, %d CA checks; want %d steps, at most 25 and exactly 5", b.steps, b.checks, b.caChecks, maxWalkSteps)
	}

	res := newResources()
	res.anchors[ta.ARN] = ta
	for i := range 20 {
		// Other anchors named as the loop's issuer, so each would be
		// tried for the hint: their certificates are candidate issuers
		// at every step.
		ok := pkitest.Key(t, pkitest.MLDSA44+"#loop-other")
		o := anchorOf("other-"+string(rune('a'+i)), mkCert(t, caTmpl("loop", now), nil, ok.Public(), ok))
		res.anchors[o.ARN] = o
	}
	e := &Emulator{log: slog.New(slog.DiscardHandler)}
	b = newSigBudget()
	_, fail := e.verifyChainWithin(b, res, ta, leaf, inters, now)
	if fail == nil || fail.message != untrusted {
		t.Fatalf("verifyChain = %+v, want %s", fail, untrusted)
	}
	if b.steps > maxWalkSteps || b.checks > maxSignatureChecks || b.hintAnchors != 0 {
		t.Fatalf("%d steps, %d signature checks, %d other anchors tried: over the budget, or other anchors tried after it was spent", b.steps, b.checks, b.hintAnchors)
	}
}

// TestCRLIssuerWithoutCRLSign: a CRL whose issuer's keyUsage lacks
// cRLSign is not applied, though its signature verifies with that
// issuer's key: the revoked leaf is not refused for it.
func TestCRLIssuerWithoutCRLSign(t *testing.T) {
	now := time.Now()
	k := pkitest.Key(t, pkitest.MLDSA44+"#nocrlsign")
	rt := caTmpl("nocrlsign-root", now)
	rt.KeyUsage = x509.KeyUsageCertSign
	root := mkCert(t, rt, nil, k.Public(), k)
	leaf := mkCert(t, leafTmpl(now), root, pkitest.Key(t, pkitest.P256).Public(), k)
	// crypto/x509 makes CRLs only for issuers with cRLSign: sign with
	// the same name and key, as a CA that ignores its keyUsage would.
	withCRLSign := *root
	withCRLSign.KeyUsage |= x509.KeyUsageCRLSign
	der := (&pkitest.CA{Cert: &withCRLSign, Key: k}).CRL(t, leaf.SerialNumber)
	crl, err := parseCRL(der)
	if err != nil {
		t.Fatal(err)
	}
	if err := checkCRLSignature(crl.List, &withCRLSign); err != nil {
		t.Fatalf("the CRL does not verify with its signer's key: %v", err)
	}
	if err := checkCRLSignature(crl.List, root); err == nil || !strings.Contains(err.Error(), "cRLSign") {
		t.Fatalf("checkCRLSignature = %v, want a refusal for the missing cRLSign", err)
	}
	ta := anchorOf("nocrlsign", root)
	crl.Enabled, crl.TrustAnchorARN, crl.Source = true, ta.ARN, "nocrlsign"
	res := newResources()
	res.crls["c"] = crl
	e := &Emulator{log: slog.New(slog.DiscardHandler)}
	if fail := e.checkRevocation(res, ta, []*x509.Certificate{leaf, root}); fail != nil {
		t.Fatalf("a CRL whose issuer lacks cRLSign was applied: %s", fail.rule)
	}
	// The same CRL applies once the issuer in the chain has cRLSign (a
	// fresh emulator: the CRL check cache is keyed by the issuer's DER,
	// which the copy shares).
	e = &Emulator{log: slog.New(slog.DiscardHandler)}
	if fail := e.checkRevocation(res, ta, []*x509.Certificate{leaf, &withCRLSign}); fail == nil {
		t.Fatal("the CRL of an issuer with cRLSign was not applied")
	}
}

// TestHintTriesFewAnchors: a refused ECDSA request whose issuer's name is
// held by many trust anchors is tried against at most maxHintAnchors of
// them for the "chains to another anchor" hint (crypto/x509 may spend 100
// signature checks on each), and the one it does chain to is still named
// when it is among them.
func TestHintTriesFewAnchors(t *testing.T) {
	now := time.Now()
	named := func(key crypto.Signer) *x509.Certificate {
		return mkCert(t, caTmpl("shared-name", now), nil, key.Public(), key)
	}
	issuerKey := pkitest.Key(t, pkitest.P256+"#hint-issuer")
	issuer := named(issuerKey)
	leaf := mkCert(t, leafTmpl(now), issuer, pkitest.Key(t, pkitest.P256+"#hint-leaf").Public(), issuerKey)
	otherKey := pkitest.Key(t, pkitest.P256+"#hint-requested")
	ta := anchorOf("requested", mkCert(t, caTmpl("requested-root", now), nil, otherKey.Public(), otherKey))

	res := newResources()
	res.anchors[ta.ARN] = ta
	for i := range 20 {
		k := pkitest.Key(t, fmt.Sprintf("%s#hint-%d", pkitest.P256, i))
		o := anchorOf(fmt.Sprintf("decoy-%02d", i), named(k))
		res.anchors[o.ARN] = o
	}
	e := &Emulator{log: slog.New(slog.DiscardHandler)}
	b := newSigBudget()
	_, fail := e.verifyChainWithin(b, res, ta, leaf, nil, now)
	if fail == nil || fail.message != untrusted {
		t.Fatalf("verifyChain = %+v, want %s", fail, untrusted)
	}
	if b.hintAnchors != maxHintAnchors {
		t.Fatalf("%d other anchors tried for the hint, want %d", b.hintAnchors, maxHintAnchors)
	}

	// With the real issuer among the first anchors tried, the hint names it.
	real := anchorOf("a-real", issuer)
	res.anchors[real.ARN] = real
	b = newSigBudget()
	if _, fail = e.verifyChainWithin(b, res, ta, leaf, nil, now); fail == nil || !strings.Contains(fail.rule, "chains to trust anchor a-real") {
		t.Fatalf("verifyChain = %+v, want the hint naming a-real", fail)
	}
}

// TestMLDSAPathBesideARefusedClassicPath: when crypto/x509 finds only a
// path the CA rules refuse (an intermediate without keyUsage under an
// ECDSA root), a sound path through an ML-DSA signature (the same
// intermediate's name and key, certified by an ML-DSA root of the same
// anchor) is still found; without it, the refusal stands.
func TestMLDSAPathBesideARefusedClassicPath(t *testing.T) {
	now := time.Now()
	ecKey := pkitest.Key(t, pkitest.P256+"#cross-ec-root")
	ecRoot := mkCert(t, caTmpl("cross-ec-root", now), nil, ecKey.Public(), ecKey)
	mlKey := pkitest.Key(t, pkitest.MLDSA44+"#cross-ml-root")
	mlRoot := mkCert(t, caTmpl("cross-ml-root", now), nil, mlKey.Public(), mlKey)
	interKey := pkitest.Key(t, pkitest.P256+"#cross-int")
	noKeyUsage := caTmpl("cross-int", now)
	noKeyUsage.KeyUsage = 0
	refused := mkCert(t, noKeyUsage, ecRoot, interKey.Public(), ecKey)
	sound := mkCert(t, caTmpl("cross-int", now), mlRoot, interKey.Public(), mlKey)
	leaf := mkCert(t, leafTmpl(now), refused, pkitest.Key(t, pkitest.P256+"#cross-leaf").Public(), interKey)

	chain, err := verifyWith(anchorOf("cross", ecRoot, mlRoot), leaf, []*x509.Certificate{refused, sound}, now, newSigBudget())
	if err != nil || len(chain) != 3 || !chain[2].Equal(mlRoot) {
		t.Fatalf("verifyWith = %d certificates, %v; want the path through the ML-DSA root", len(chain), err)
	}
	if _, err := verifyWith(anchorOf("classic-only", ecRoot), leaf, []*x509.Certificate{refused}, now, newSigBudget()); err == nil || !strings.Contains(err.Error(), "no keyUsage extension") {
		t.Fatalf("verifyWith = %v, want the CA rules' refusal", err)
	}
}
