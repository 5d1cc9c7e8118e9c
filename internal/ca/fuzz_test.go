package ca

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/keyless-dev/keyless/internal/caproto"
	"github.com/keyless-dev/keyless/internal/pki/pkitest"
	"github.com/keyless-dev/keyless/internal/store"
)

func fuzzAuthority(f *testing.F) *Authority {
	k, err := caproto.NewProvisionerKey([]byte("pw"), nil)
	if err != nil {
		f.Fatal(err)
	}
	pub, _ := k.Public.MarshalJSON()
	cfg, err := ParseConfig([]byte(`name: Fuzz
address: 127.0.0.1:0
dnsNames: [127.0.0.1]
root: r
crt: c
key: k
db: d
provisioners:
  - name: admin
    type: JWK
    key: '` + string(pub) + `'
    encryptedKey: ` + k.EncryptedKey + `
    allow: [gitlab-runner]
`))
	if err != nil {
		f.Fatal(err)
	}
	root := pkitest.NewRoot(f, "fuzz-root")
	inter := root.Intermediate(f, "fuzz-int")
	a, err := New(Options{Config: cfg, Root: root.Cert, Intermediate: inter.Cert, Key: inter.Key, Store: store.NewMemory()})
	if err != nil {
		f.Fatal(err)
	}
	return a
}

// FuzzTokens feeds arbitrary strings to every token entry point: none may
// panic, and none may succeed without the provisioner's or the
// certificate's key.
func FuzzTokens(f *testing.F) {
	a := fuzzAuthority(f)
	f.Add("eyJhbGciOiJFUzI1NiIsImtpZCI6IngiLCJ0eXAiOiJKV1QifQ.eyJpc3MiOiJhZG1pbiJ9.AAAA")
	f.Add("a.b.c")
	f.Add("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.")
	f.Add(`{"protected":"","payload":"","signature":""}`)
	f.Fuzz(func(t *testing.T, token string) {
		now := time.Now()
		if _, _, _, err := a.verifyOTT(token, "sign", now); err == nil {
			t.Fatalf("verifyOTT accepted %q", token)
		}
		if _, _, err := a.verifyRenewToken(token, now); err == nil {
			t.Fatalf("verifyRenewToken accepted %q", token)
		}
		if _, err := a.Sign(SignRequest{Token: token, CSR: []byte(token)}); err == nil {
			t.Fatal("Sign accepted a fuzzed token")
		}
	})
}

func FuzzParseConfig(f *testing.F) {
	f.Add([]byte("name: x\naddress: :9000\ndnsNames: [a]\nroot: r\ncrt: c\nkey: k\ndb: d\nprovisioners:\n  - name: p\n    type: JWK\n    key: '{}'\n"))
	f.Add([]byte("maxDuration: -5m\n"))
	f.Add([]byte("provisioners: [{name: a, type: JWK, key: '{\"kty\":\"EC\"}', allow: ['']}]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := ParseConfig(data)
		if err != nil {
			return
		}
		for _, p := range cfg.Provisioners {
			if p.jwk == nil || p.MinDuration > p.DefaultDuration || p.DefaultDuration > p.MaxDuration {
				t.Fatalf("accepted an inconsistent provisioner %+v", p)
			}
		}
	})
}

// FuzzGlobMatch checks the allow-pattern matcher against a regexp, with
// each kind of part matchName uses ('*' stands for one or more of the
// part's characters).
func FuzzGlobMatch(f *testing.F) {
	f.Add("gitlab-runner-*", "gitlab-runner-7")
	f.Add("*a*b*", "xxaybz")
	f.Add("a*", "")
	f.Add("*.example.com", "a.b.example.com")
	parts := []struct {
		part  func(byte) bool
		class string
	}{
		{labelChar, "[A-Za-z0-9_-]"},
		{except(""), "."},
		{except("/"), "[^/]"},
		{except("@"), "[^@]"},
		{except(".:"), "[^.:]"},
	}
	f.Fuzz(func(t *testing.T, pattern, s string) {
		if len(pattern) > 64 || len(s) > 64 {
			return
		}
		// globMatch works on bytes, the regexp on runes: give it each
		// byte as the rune of that number.
		bytesAsRunes := func(x string) string {
			r := make([]rune, len(x))
			for i := range len(x) {
				r[i] = rune(x[i])
			}
			return string(r)
		}
		for _, p := range parts {
			lits := strings.Split(bytesAsRunes(pattern), "*")
			for i := range lits {
				lits[i] = regexp.QuoteMeta(lits[i])
			}
			re := regexp.MustCompile(`^(?s:` + strings.Join(lits, p.class+"+") + `)$`)
			if got, want := globMatch(pattern, s, p.part), re.MatchString(bytesAsRunes(s)); got != want {
				t.Fatalf("globMatch(%q, %q, %s) = %t, regexp says %t", pattern, s, p.class, got, want)
			}
		}
	})
}
