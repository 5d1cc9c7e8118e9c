package caapi_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"flag"
	"math/big"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/keyless-dev/keyless/internal/caproto"
	"github.com/keyless-dev/keyless/internal/pki"
)

var updateSeeds = flag.Bool("update-seeds", false, "rewrite the committed seeds of FuzzSign, FuzzRevoke and FuzzRenew")

// The committed seeds of FuzzSign, FuzzRevoke and FuzzRenew are named
// after the status the CA answers them with ("201-default",
// "403-lifetime-too-long"): TestFuzzSeeds checks that each still gets it,
// so that a change to the fuzz CA or the token format cannot quietly turn
// the valid seeds into refused ones. Regenerate them with
//
//	go test ./internal/ca/caapi -run TestUpdateFuzzSeeds -update-seeds

// TestFuzzSeeds runs every committed seed named after a status and
// expects that status, with the fuzz targets' own checks.
func TestFuzzSeeds(t *testing.T) {
	fx := newFuzzCA(t)
	for _, target := range []string{"FuzzSign", "FuzzRevoke", "FuzzRenew"} {
		files, err := filepath.Glob(filepath.Join("testdata", "fuzz", target, "[0-9][0-9][0-9]-*"))
		if err != nil || len(files) == 0 {
			t.Fatalf("%s: no committed seeds (%v)", target, err)
		}
		for _, file := range files {
			name := filepath.Base(file)
			t.Run(target+"/"+name, func(t *testing.T) {
				want, _ := strconv.Atoi(name[:3])
				v := readCorpusFile(t, file)
				s := fx.server(t)
				var got int
				switch target {
				case "FuzzSign":
					got = checkSign(t, s, v[0].([]byte))
				case "FuzzRevoke":
					got = checkRevoke(t, s, v[0].([]byte), v[1].(bool))
				case "FuzzRenew":
					got = checkRenew(t, s, v[0].(string), v[1].(bool))
				}
				if got != want {
					t.Errorf("status %d, the seed is named for %d", got, want)
				}
			})
		}
	}
}

// readCorpusFile reads a file in Go's fuzz corpus format ("go test fuzz
// v1", then one typed literal a line) holding []byte, string and bool
// values.
func readCorpusFile(t *testing.T, path string) []any {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if lines[0] != "go test fuzz v1" {
		t.Fatalf("%s: not a corpus file", path)
	}
	var out []any
	for _, l := range lines[1:] {
		typ, lit, ok := strings.Cut(l, "(")
		if !ok || !strings.HasSuffix(lit, ")") {
			t.Fatalf("%s: line %q", path, l)
		}
		lit = strings.TrimSuffix(lit, ")")
		switch typ {
		case "[]byte", "string":
			s, err := strconv.Unquote(lit)
			if err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			if typ == "string" {
				out = append(out, s)
			} else {
				out = append(out, []byte(s))
			}
		case "bool":
			out = append(out, lit == "true")
		default:
			t.Fatalf("%s: type %s", path, typ)
		}
	}
	return out
}

// writeCorpusFile writes values in Go's fuzz corpus format.
func writeCorpusFile(t *testing.T, dir, name string, values ...any) {
	t.Helper()
	var b strings.Builder
	b.WriteString("go test fuzz v1\n")
	for _, v := range values {
		switch v := v.(type) {
		case []byte:
			b.WriteString("[]byte(" + strconv.Quote(string(v)) + ")\n")
		case string:
			b.WriteString("string(" + strconv.Quote(v) + ")\n")
		case bool:
			b.WriteString("bool(" + strconv.FormatBool(v) + ")\n")
		default:
			t.Fatalf("corpus value of type %T", v)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, name), []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// seedToken is a one-time token of the fuzz CA, valid at fuzzNow unless
// told otherwise.
type seedToken struct {
	prov     int    // index in fuzzProvisioners
	iss, kid string // default: the provisioner's
	signer   int    // index of the provisioner key that signs; -1: the prov's
	sub      string
	sans     []string
	aud      string        // default: https://ca.test/1.0/sign
	at       time.Time     // iat and nbf; default a minute before fuzzNow
	lifetime time.Duration // default 5m
	noJTI    bool
	noExp    bool
}

func (fx *fuzzCA) token(t *testing.T, o seedToken) string {
	t.Helper()
	p := fuzzProvisioners[o.prov]
	if o.iss == "" {
		o.iss = p.name
	}
	key := fx.prov[o.prov]
	if o.signer > 0 {
		key = fx.prov[o.signer]
	}
	if o.kid == "" {
		o.kid = fx.prov[o.prov].KeyID
	}
	if o.sub == "" {
		o.sub = fuzzLeafSubject
	}
	if o.aud == "" {
		o.aud = "https://" + fuzzCAName + caproto.PathSign
	}
	if o.at.IsZero() {
		o.at = fuzzNow.Add(-time.Minute)
	}
	if o.lifetime == 0 {
		o.lifetime = 5 * time.Minute
	}
	c := caproto.Claims{Claims: jwt.Claims{Issuer: o.iss, Subject: o.sub, Audience: jwt.Audience{o.aud},
		IssuedAt: jwt.NewNumericDate(o.at), NotBefore: jwt.NewNumericDate(o.at), Expiry: jwt.NewNumericDate(o.at.Add(o.lifetime))}, SANs: o.sans}
	if !o.noJTI {
		c.ID = randomID(t)
	}
	if o.noExp {
		c.Expiry = nil
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key.Key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader(jose.HeaderKey("kid"), o.kid))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.Signed(signer).Claims(c).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func randomID(t *testing.T) string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// seedRenewToken is a renewal token: signed by key (default: the
// fixture leaf's), carrying x5c (default: the leaf and the intermediate)
// in its x5cInsecure header.
type seedRenewToken struct {
	key      crypto.Signer
	x5c      any
	aud      string
	at       time.Time
	lifetime time.Duration
	noExp    bool
}

func (fx *fuzzCA) renewToken(t *testing.T, o seedRenewToken) string {
	t.Helper()
	if o.key == nil {
		o.key = fx.leafKey
	}
	if o.x5c == nil {
		o.x5c = []string{base64.StdEncoding.EncodeToString(fx.leaf.Raw), base64.StdEncoding.EncodeToString(fx.inter.Raw)}
	}
	if o.aud == "" {
		o.aud = "https://" + fuzzCAName + caproto.PathRenew
	}
	if o.at.IsZero() {
		o.at = fuzzNow.Add(-time.Minute)
	}
	if o.lifetime == 0 {
		o.lifetime = caproto.RenewTokenLifetime
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: o.key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("x5cInsecure", o.x5c))
	if err != nil {
		t.Fatal(err)
	}
	c := jwt.Claims{Issuer: caproto.RenewTokenIssuer, Subject: fuzzLeafSubject, Audience: jwt.Audience{o.aud},
		IssuedAt: jwt.NewNumericDate(o.at), NotBefore: jwt.NewNumericDate(o.at), Expiry: jwt.NewNumericDate(o.at.Add(o.lifetime))}
	if o.noExp {
		c.Expiry = nil
	}
	tok, err := jwt.Signed(signer).Claims(c).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// seedCSR is a PEM CSR for key with a common name and names sorted into
// the SAN fields as the CA sorts a token's.
func seedCSR(t *testing.T, key crypto.Signer, pemType, cn string, names ...string) string {
	t.Helper()
	s := pki.SortNames(names)
	tmpl := &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn},
		DNSNames: s.DNSNames, EmailAddresses: s.EmailAddresses, IPAddresses: s.IPAddresses, URIs: s.URIs}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatal(err)
	}
	if pemType == "" {
		pemType = "CERTIFICATE REQUEST"
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: pemType, Bytes: der}))
}

func signBody(t *testing.T, csr, ott, notBefore, notAfter string) []byte {
	t.Helper()
	b, err := json.Marshal(caproto.SignRequest{CSR: csr, OTT: ott, NotBefore: notBefore, NotAfter: notAfter})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func jsonBody(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// hs256Token is a token whose header names an algorithm tokens may not
// use.
func hs256Token(claims string) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + enc([]byte(claims)) + "." + enc([]byte("not a signature"))
}

func TestUpdateFuzzSeeds(t *testing.T) {
	if !*updateSeeds {
		t.Skip("rewrites testdata/fuzz; run with -update-seeds")
	}
	fx := newFuzzCA(t)
	gen := func(kind string) crypto.Signer {
		var k crypto.Signer
		var err error
		switch kind {
		case "rsa1024":
			k, err = rsa.GenerateKey(rand.Reader, 1024)
		case "rsa2048":
			k, err = rsa.GenerateKey(rand.Reader, 2048)
		case "p384":
			k, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
		case "p521":
			k, err = ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
		case "ed25519":
			_, k, err = ed25519.GenerateKey(rand.Reader)
		}
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	csrKey := fuzzECDSA(t, "csr")
	csr := seedCSR(t, csrKey, "", fuzzLeafSubject, fuzzLeafSubject)
	tok := func(o seedToken) string { return fx.token(t, o) }
	ok := tok(seedToken{sans: []string{fuzzLeafSubject}})
	adminNames := []string{"build.example.org", "10.0.0.7", "2001:db8::7", "spiffe://example.org/ci", "ci@example.org"}
	adminTok := func() string { return tok(seedToken{prov: 1, sub: adminNames[0], sans: adminNames}) }
	badSig := func() string {
		block, _ := pem.Decode([]byte(csr))
		der := append([]byte(nil), block.Bytes...)
		der[len(der)-5] ^= 0xff
		return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
	}
	tampered := func(tok string) string {
		parts := strings.Split(tok, ".")
		claims, _ := base64.RawURLEncoding.DecodeString(parts[1])
		parts[1] = base64.RawURLEncoding.EncodeToString([]byte(strings.Replace(string(claims), fuzzLeafSubject, "gitlab-runnex", 1)))
		return strings.Join(parts, ".")
	}
	renewTok := fx.renewToken(t, seedRenewToken{})

	sign := map[string][]byte{
		"201-default":                     signBody(t, csr, ok, "", ""),
		"201-csr-without-names":           signBody(t, seedCSR(t, csrKey, "", fuzzLeafSubject), tok(seedToken{}), "", ""),
		"201-csr-empty-subject":           signBody(t, seedCSR(t, csrKey, "", ""), tok(seedToken{}), "", ""),
		"201-new-certificate-request-pem": signBody(t, seedCSR(t, csrKey, "NEW CERTIFICATE REQUEST", fuzzLeafSubject), tok(seedToken{}), "", ""),
		"201-notafter-168h":               signBody(t, csr, tok(seedToken{}), "", "168h"),
		"201-notafter-rfc3339":            signBody(t, csr, tok(seedToken{}), "", "2030-01-02T12:00:00Z"),
		"201-notbefore-and-notafter":      signBody(t, csr, tok(seedToken{}), "2m", "25h"),
		"403-notbefore-after-the-token":   signBody(t, csr, tok(seedToken{}), "1h", "25h"),
		"403-notbefore-in-the-past":       signBody(t, csr, tok(seedToken{}), "-1h", ""),
		"201-notafter-fractional":         signBody(t, csr, tok(seedToken{}), "2030-01-01T12:00:00.9Z", "2030-01-01T12:05:01Z"),
		"201-runner-suffix":               signBody(t, seedCSR(t, csrKey, "", "gitlab-runner-42", "gitlab-runner-42"), tok(seedToken{sub: "gitlab-runner-42"}), "", ""),
		"201-admin-ip-uri-email":          signBody(t, seedCSR(t, csrKey, "", adminNames[0]), adminTok(), "", ""),
		"201-csr-with-all-names":          signBody(t, seedCSR(t, csrKey, "", adminNames[0], adminNames...), adminTok(), "", ""),
		"201-duplicate-sans":              signBody(t, csr, tok(seedToken{sans: []string{fuzzLeafSubject, fuzzLeafSubject}}), "", ""),
		"201-rsa2048-csr":                 signBody(t, seedCSR(t, gen("rsa2048"), "", fuzzLeafSubject), tok(seedToken{}), "", ""),
		"201-p384-csr":                    signBody(t, seedCSR(t, gen("p384"), "", fuzzLeafSubject), tok(seedToken{}), "", ""),
		"201-token-lifetime-24h":          signBody(t, csr, tok(seedToken{lifetime: 24 * time.Hour}), "", ""),
		"201-audience-ip-port-short-path": signBody(t, csr, tok(seedToken{aud: "https://127.0.0.1:9443/sign"}), "", ""),
		"201-unknown-fields":              []byte(strings.Replace(string(signBody(t, csr, tok(seedToken{}), "", "")), "{", `{"provisioner":"x","extra":[1,2],`, 1)),
		"403-runner-name-longer-than-dns": signBody(t, seedCSR(t, csrKey, "", ""), tok(seedToken{sub: "gitlab-runner-" + strings.Repeat("x", 300)}), "", ""),
		"201-non-ascii-common-name":       signBody(t, seedCSR(t, csrKey, "", ""), tok(seedToken{prov: 1, sub: "bâtiment", sans: []string{"batiment.example.org"}}), "", ""),
		"400-non-ascii-dns-name":          signBody(t, seedCSR(t, csrKey, "", ""), tok(seedToken{sub: "gitlab-runner-é"}), "", ""),
		"400-non-ascii-email":             signBody(t, seedCSR(t, csrKey, "", ""), tok(seedToken{sans: []string{fuzzLeafSubject, "gitlab-runner-é@example.org"}}), "", ""),
		"400-non-ascii-uri-host":          signBody(t, seedCSR(t, csrKey, "", ""), tok(seedToken{prov: 1, sub: "x", sans: []string{"spiffe://é.example.org/ci"}}), "", ""),
		"400-uri-host-not-a-domain":       signBody(t, seedCSR(t, csrKey, "", ""), tok(seedToken{prov: 1, sub: "x", sans: []string{"spiffe://-a..b/ci"}}), "", ""),
		"201-non-ascii-uri-path":          signBody(t, seedCSR(t, csrKey, "", ""), tok(seedToken{prov: 1, sub: "x", sans: []string{"spiffe://example.org/é"}}), "", ""),
		"403-lifetime-too-long":           signBody(t, csr, tok(seedToken{}), "", "169h"),
		"403-lifetime-too-short":          signBody(t, csr, tok(seedToken{}), "", "4m"),
		"400-notafter-before-notbefore":   signBody(t, csr, tok(seedToken{}), "1m", "2030-01-01T12:00:30Z"),
		"400-notafter-not-a-time":         signBody(t, csr, tok(seedToken{}), "", "tomorrow"),
		"400-notbefore-not-a-time":        signBody(t, csr, tok(seedToken{}), "yesterday", ""),
		"403-subject-not-allowed":         signBody(t, seedCSR(t, csrKey, "", "admin-box"), tok(seedToken{sub: "admin-box"}), "", ""),
		"403-san-not-allowed":             signBody(t, csr, tok(seedToken{sans: []string{fuzzLeafSubject, "evil"}}), "", ""),
		"403-csr-names-differ":            signBody(t, seedCSR(t, csrKey, "", fuzzLeafSubject, "other-host"), tok(seedToken{}), "", ""),
		"403-csr-common-name-differs":     signBody(t, seedCSR(t, csrKey, "", "other-host"), tok(seedToken{}), "", ""),
		"401-expired-token":               signBody(t, csr, tok(seedToken{at: fuzzNow.Add(-10 * time.Minute)}), "", ""),
		"401-token-not-yet-valid":         signBody(t, csr, tok(seedToken{at: fuzzNow.Add(10 * time.Minute)}), "", ""),
		"401-wrong-audience":              signBody(t, csr, tok(seedToken{aud: "https://elsewhere.test/1.0/sign"}), "", ""),
		"401-revoke-audience":             signBody(t, csr, tok(seedToken{aud: "https://" + fuzzCAName + caproto.PathRevoke}), "", ""),
		"401-http-audience":               signBody(t, csr, tok(seedToken{aud: "http://" + fuzzCAName + caproto.PathSign}), "", ""),
		"401-unknown-provisioner":         signBody(t, csr, tok(seedToken{iss: "nobody"}), "", ""),
		"401-key-not-the-provisioners":    signBody(t, csr, tok(seedToken{signer: 1}), "", ""),
		"401-kid-of-another-provisioner":  signBody(t, csr, tok(seedToken{kid: fx.prov[1].KeyID}), "", ""),
		"401-token-lives-too-long":        signBody(t, csr, tok(seedToken{lifetime: 25 * time.Hour}), "", ""),
		"401-token-without-jti":           signBody(t, csr, tok(seedToken{noJTI: true}), "", ""),
		"401-token-without-exp":           signBody(t, csr, tok(seedToken{noExp: true}), "", ""),
		"401-token-hs256":                 signBody(t, csr, hs256Token(`{"iss":"runners","sub":"gitlab-runner"}`), "", ""),
		"401-token-tampered":              signBody(t, csr, tampered(tok(seedToken{})), "", ""),
		"401-renewal-token":               signBody(t, csr, renewTok, "", ""),
		"400-rsa1024-csr":                 signBody(t, seedCSR(t, gen("rsa1024"), "", fuzzLeafSubject), tok(seedToken{}), "", ""),
		"400-p521-csr":                    signBody(t, seedCSR(t, gen("p521"), "", fuzzLeafSubject), tok(seedToken{}), "", ""),
		"400-ed25519-csr":                 signBody(t, seedCSR(t, gen("ed25519"), "", fuzzLeafSubject), tok(seedToken{}), "", ""),
		"400-csr-bad-signature":           signBody(t, badSig(), tok(seedToken{}), "", ""),
		"400-csr-not-pem":                 signBody(t, "MIIB", tok(seedToken{}), "", ""),
		"400-csr-is-a-certificate":        signBody(t, string(pki.EncodeCertificates(fx.leaf)), tok(seedToken{}), "", ""),
		"400-missing-ott":                 signBody(t, csr, "", "", ""),
		"400-missing-csr":                 signBody(t, "", tok(seedToken{}), "", ""),
		"400-malformed-json":              []byte(`{"csr":`),
		"400-empty-body":                  {},
		"400-json-array":                  []byte(`[]`),
		"400-csr-not-a-string":            []byte(`{"csr":1,"ott":"a.b.c"}`),
	}

	serial := fx.leaf.SerialNumber.String()
	revokeTok := func(o seedToken) string {
		if o.aud == "" {
			o.aud = "https://" + fuzzCAName + caproto.PathRevoke
		}
		if o.sub == "" {
			o.sub = serial
		}
		return tok(o)
	}
	type revokeSeed struct {
		body []byte
		mtls bool
	}
	rev := func(v map[string]any, mtls bool) revokeSeed { return revokeSeed{jsonBody(t, v), mtls} }
	revoke := map[string]revokeSeed{
		"200-token":                        rev(map[string]any{"serial": serial, "ott": revokeTok(seedToken{}), "reasonCode": 1, "reason": "key compromise", "passive": true}, false),
		"200-token-hex-serial":             rev(map[string]any{"serial": "0x" + fx.leaf.SerialNumber.Text(16), "ott": revokeTok(seedToken{}), "passive": true}, false),
		"200-mtls":                         rev(map[string]any{"serial": serial, "reasonCode": 4, "passive": true}, true),
		"200-token-and-mtls":               rev(map[string]any{"serial": serial, "ott": revokeTok(seedToken{}), "reasonCode": 10, "passive": true}, true),
		"403-mtls-another-serial":          rev(map[string]any{"serial": "12345", "passive": true}, true),
		"403-token-of-another-provisioner": rev(map[string]any{"serial": serial, "ott": revokeTok(seedToken{prov: 1}), "passive": true}, false),
		"403-token-for-another-serial":     rev(map[string]any{"serial": serial, "ott": revokeTok(seedToken{sub: "12345"}), "passive": true}, false),
		"403-serial-not-issued":            rev(map[string]any{"serial": "12345", "ott": revokeTok(seedToken{sub: "12345"}), "passive": true}, false),
		"501-active-revocation":            rev(map[string]any{"serial": serial, "ott": revokeTok(seedToken{}), "passive": false}, false),
		"400-reason-code-7":                rev(map[string]any{"serial": serial, "ott": revokeTok(seedToken{}), "reasonCode": 7, "passive": true}, false),
		"400-reason-code-11":               rev(map[string]any{"serial": serial, "ott": revokeTok(seedToken{}), "reasonCode": 11, "passive": true}, false),
		"400-reason-code-negative":         rev(map[string]any{"serial": serial, "reasonCode": -1, "passive": true}, true),
		"400-serial-zero":                  rev(map[string]any{"serial": "0", "passive": true}, true),
		"400-serial-negative":              rev(map[string]any{"serial": "-" + serial, "passive": true}, true),
		"400-serial-not-a-number":          rev(map[string]any{"serial": "12x", "ott": revokeTok(seedToken{sub: "12x"}), "passive": true}, false),
		"400-serial-empty":                 rev(map[string]any{"serial": "", "passive": true}, true),
		"400-serial-a-json-number":         rev(map[string]any{"serial": 12345, "passive": true}, true),
		"401-neither-token-nor-mtls":       rev(map[string]any{"serial": serial, "passive": true}, false),
		"401-sign-token":                   rev(map[string]any{"serial": serial, "ott": revokeTok(seedToken{aud: "https://" + fuzzCAName + caproto.PathSign}), "passive": true}, false),
		"401-expired-token":                rev(map[string]any{"serial": serial, "ott": revokeTok(seedToken{at: fuzzNow.Add(-10 * time.Minute)}), "passive": true}, false),
		"401-renewal-token":                rev(map[string]any{"serial": serial, "ott": renewTok, "passive": true}, false),
		"400-malformed-json":               {[]byte(`{"serial":`), true},
		"400-empty-body":                   {[]byte{}, false},
	}

	other := newOtherCA(t)
	otherLeafKey := fuzzECDSA(t, "other leaf")
	otherLeaf := other.leaf(t, otherLeafKey)
	b64 := func(der []byte) string { return base64.StdEncoding.EncodeToString(der) }
	type renewSeed struct {
		authorization string
		mtls          bool
	}
	bearer := func(o seedRenewToken) string { return "Bearer " + fx.renewToken(t, o) }
	renew := map[string]renewSeed{
		"201-token":                 {"Bearer " + renewTok, false},
		"201-token-padded":          {"Bearer   " + fx.renewToken(t, seedRenewToken{}) + "  ", false},
		"201-mtls":                  {"", true},
		"201-token-and-mtls":        {bearer(seedRenewToken{}), true},
		"201-token-leaf-only":       {bearer(seedRenewToken{x5c: []string{b64(fx.leaf.Raw)}}), false},
		"201-token-ip-audience":     {bearer(seedRenewToken{aud: "https://127.0.0.1:9000/renew"}), false},
		"401-no-certificate":        {"", false},
		"401-basic-auth":            {"Basic Zm9vOmJhcg==", false},
		"401-empty-bearer":          {"Bearer ", false},
		"401-lowercase-bearer":      {"bearer " + fx.renewToken(t, seedRenewToken{}), false},
		"401-wrong-audience":        {bearer(seedRenewToken{aud: "https://elsewhere.test/1.0/renew"}), false},
		"401-sign-audience":         {bearer(seedRenewToken{aud: "https://" + fuzzCAName + caproto.PathSign}), false},
		"401-expired-token":         {bearer(seedRenewToken{at: fuzzNow.Add(-10 * time.Minute)}), false},
		"401-token-not-yet-valid":   {bearer(seedRenewToken{at: fuzzNow.Add(10 * time.Minute)}), false},
		"401-token-lives-too-long":  {bearer(seedRenewToken{lifetime: 25 * time.Hour}), false},
		"401-token-without-exp":     {bearer(seedRenewToken{noExp: true}), false},
		"401-not-the-leafs-key":     {bearer(seedRenewToken{key: fuzzECDSA(t, "not the leaf")}), false},
		"401-another-cas-leaf":      {bearer(seedRenewToken{key: otherLeafKey, x5c: []string{b64(otherLeaf.Raw), b64(other.cert.Raw)}}), false},
		"401-x5c-intermediate-only": {bearer(seedRenewToken{x5c: []string{b64(fx.inter.Raw)}}), false},
		"401-x5c-not-base64":        {bearer(seedRenewToken{x5c: []string{"not base64!"}}), false},
		"401-x5c-not-a-certificate": {bearer(seedRenewToken{x5c: []string{b64([]byte{0x30, 0x03, 0x02, 0x01, 0x01})}}), false},
		"401-x5c-not-a-list":        {bearer(seedRenewToken{x5c: b64(fx.leaf.Raw)}), false},
		"401-x5c-list-of-numbers":   {bearer(seedRenewToken{x5c: []int{1, 2}}), false},
		"401-provisioner-token":     {"Bearer " + tok(seedToken{aud: "https://" + fuzzCAName + caproto.PathRenew}), false},
		"401-hs256-token":           {"Bearer " + hs256Token(`{"iss":"step-ca-client/1.0"}`), false},
	}

	write := func(target string, each func(dir string)) {
		dir := filepath.Join("testdata", "fuzz", target)
		old, _ := filepath.Glob(filepath.Join(dir, "[0-9][0-9][0-9]-*"))
		for _, f := range old {
			os.Remove(f)
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		each(dir)
	}
	write("FuzzSign", func(dir string) {
		for name, body := range sign {
			writeCorpusFile(t, dir, name, body)
		}
	})
	write("FuzzRevoke", func(dir string) {
		for name, s := range revoke {
			writeCorpusFile(t, dir, name, s.body, s.mtls)
		}
	})
	write("FuzzRenew", func(dir string) {
		for name, s := range renew {
			writeCorpusFile(t, dir, name, s.authorization, s.mtls)
		}
	})
}

// otherCA is a CA that is not the fuzz CA, for certificates it did not
// issue.
type otherCA struct {
	cert *x509.Certificate
	key  ed25519.PrivateKey
}

func newOtherCA(t *testing.T) *otherCA {
	key := fuzzEd25519("other CA")
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(3), Subject: pkix.Name{CommonName: "keyless fuzz intermediate"},
		NotBefore: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), NotAfter: time.Date(2126, 1, 1, 0, 0, 0, 0, time.UTC),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true}
	return &otherCA{cert: fuzzCertificate(t, tmpl, tmpl, key.Public(), key), key: key}
}

func (o *otherCA) leaf(t *testing.T, key *ecdsa.PrivateKey) *x509.Certificate {
	return fuzzCertificate(t, &x509.Certificate{SerialNumber: new(big.Int).SetBytes([]byte{0x5a, 0x5a}), Subject: pkix.Name{CommonName: fuzzLeafSubject},
		DNSNames: []string{fuzzLeafSubject}, NotBefore: fuzzNow.Add(-12 * time.Hour), NotAfter: fuzzNow.Add(12 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}, o.cert, key.Public(), o.key)
}
