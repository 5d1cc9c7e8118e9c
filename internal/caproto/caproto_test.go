package caproto_test

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/keyless-dev/keyless/internal/caproto"
	"github.com/keyless-dev/keyless/internal/pki/pkitest"
)

func TestProvisionerKeyAndToken(t *testing.T) {
	k, err := caproto.NewProvisionerKey([]byte("pw"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := caproto.DecryptProvisionerKey(k.EncryptedKey, []byte("wrong")); !errors.Is(err, caproto.ErrWrongPassword) {
		t.Fatalf("wrong password: %v", err)
	}
	priv, err := caproto.DecryptProvisionerKey(k.EncryptedKey, []byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	tok, err := caproto.NewToken(caproto.TokenOptions{Provisioner: "runners", Key: priv, Subject: "gitlab-runner", SANs: []string{"gitlab-runner"},
		Audience: "https://ca:9000" + caproto.PathSign, Now: now})
	var c caproto.Claims
	parsed := verified(t, tok, err, k.Public.Key, &c)
	if c.Issuer != "runners" || c.Subject != "gitlab-runner" || len(c.ID) != 64 || !c.Expiry.Time().Equal(now.Add(caproto.DefaultTokenLifetime)) ||
		parsed.Headers[0].KeyID != k.Public.KeyID {
		t.Errorf("claims %+v, kid %q", c, parsed.Headers[0].KeyID)
	}
	for _, bad := range []caproto.TokenOptions{
		{Provisioner: "p", Key: priv, Subject: "s", Audience: "a", Lifetime: 25 * time.Hour},
		{Provisioner: "p", Key: &k.Public, Subject: "s", Audience: "a"},
		{Key: priv, Subject: "s", Audience: "a"},
	} {
		if _, err := caproto.NewToken(bad); err == nil {
			t.Errorf("NewToken(%+v) made a token", bad)
		}
	}
}

// verified parses a token that was made without err, checks its
// signature with pub and reads its claims.
func verified(t *testing.T, tok string, err error, pub any, claims any) *jwt.JSONWebToken {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := jwt.ParseSigned(tok, caproto.Algorithms)
	if err != nil {
		t.Fatal(err)
	}
	if err := parsed.Claims(pub, claims); err != nil {
		t.Fatalf("the token does not verify with the public key: %v", err)
	}
	return parsed
}

func TestRenewToken(t *testing.T) {
	root := pkitest.NewRoot(t, "caproto-root")
	key := pkitest.Key(t, pkitest.P256)
	leaf := root.Leaf(t, pkitest.LeafOptions{Key: key})
	now := time.Now()
	tok, err := caproto.NewRenewToken(tls.Certificate{Certificate: [][]byte{leaf.Raw}, PrivateKey: key, Leaf: leaf}, "https://ca/1.0/renew", now)
	var c jwt.Claims
	parsed := verified(t, tok, err, key.Public(), &c)
	if c.Issuer != caproto.RenewTokenIssuer || c.Subject != leaf.Subject.CommonName {
		t.Fatalf("claims %+v", c)
	}
	if _, ok := parsed.Headers[0].ExtraHeaders["x5cInsecure"]; !ok {
		t.Error("no x5cInsecure header")
	}
	if _, err := caproto.NewRenewToken(tls.Certificate{Leaf: leaf}, "a", now); err == nil {
		t.Error("a renewal token without the key")
	}
}

func TestErrorResponseJSON(t *testing.T) {
	in := caproto.ErrorResponse{Status: 403, Message: "m", Reason: caproto.ReasonLifetimeTooLong, Limit: caproto.Duration(168 * time.Hour)}
	data, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), `"limit":"168h0m0s"`) {
		t.Errorf("%s", data)
	}
	var out caproto.ErrorResponse
	if err := json.Unmarshal(data, &out); err != nil || out != in {
		t.Fatalf("round trip: %+v %v", out, err)
	}
	// step-ca's shape decodes with no reason.
	var step caproto.ErrorResponse
	if err := json.Unmarshal([]byte(`{"status":401,"message":"token already used"}`), &step); err != nil || step.Reason != "" {
		t.Fatalf("step-ca's error: %+v %v", step, err)
	}
	if err := json.Unmarshal([]byte(`{"limit":"forever"}`), &out); err == nil {
		t.Error("a limit that is not a duration was accepted")
	}
}

func FuzzDecryptProvisionerKey(f *testing.F) {
	f.Add("eyJhbGciOiJQQkVTMi1IUzI1NitBMTI4S1ciLCJlbmMiOiJBMjU2R0NNIn0.a.b.c.d", "pw")
	f.Add("", "")
	f.Fuzz(func(t *testing.T, enc, pw string) {
		if len(enc) > 4096 {
			return
		}
		if k, err := caproto.DecryptProvisionerKey(enc, []byte(pw)); err == nil && k.IsPublic() {
			t.Fatal("returned a public key as the private one")
		}
	})
}

// TestCheckCompact: a token spelled any other way than the one canonical
// base64url encoding is refused, so it cannot pass for a new token.
func TestCheckCompact(t *testing.T) {
	key, err := caproto.NewProvisionerKey([]byte("correct horse battery staple"), nil)
	if err != nil {
		t.Fatal(err)
	}
	priv, err := caproto.DecryptProvisionerKey(key.EncryptedKey, []byte("correct horse battery staple"))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := caproto.NewToken(caproto.TokenOptions{Provisioner: "p", Key: priv, Subject: "x", Audience: "https://ca/1.0/sign", Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	header, payload, err := caproto.CheckCompact(tok)
	if err != nil {
		t.Fatalf("a token keyless made: %v", err)
	}
	if !strings.HasPrefix(string(header), "{") || !strings.Contains(string(payload), `"sub":"x"`) {
		t.Errorf("decoded header %q payload %q", header, payload)
	}
	parts := strings.Split(tok, ".")
	for name, variant := range map[string]string{
		"padding":           parts[0] + "." + parts[1] + "==." + parts[2],
		"line break":        parts[0] + "." + parts[1][:10] + "\n" + parts[1][10:] + "." + parts[2],
		"standard alphabet": parts[0] + "." + strings.NewReplacer("-", "+", "_", "/").Replace(parts[1]) + "+." + parts[2],
		"two parts":         parts[0] + "." + parts[1],
		"four parts":        tok + ".x",
		"spare bits":        parts[0] + "." + spareBits(t, parts[1]) + "." + parts[2],
	} {
		if _, _, err := caproto.CheckCompact(variant); !errors.Is(err, caproto.ErrNonCanonical) {
			t.Errorf("%s: got %v, want ErrNonCanonical", name, err)
		}
	}
}

// spareBits rewrites a base64url segment's last character so that it
// decodes to the same bytes with non-zero unused bits, if the segment's
// length leaves any (it does for lengths not a multiple of 4); otherwise
// it appends two characters that do.
func spareBits(t *testing.T, seg string) string {
	t.Helper()
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	if len(seg)%4 == 0 {
		seg += "AB" // one zero byte, with a spare bit set
		return seg
	}
	last := strings.IndexByte(alphabet, seg[len(seg)-1])
	return seg[:len(seg)-1] + string(alphabet[last|1])
}
