package credcache

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

// FuzzKeyJSON: the key's hand-written encoding, which names the entry
// files, is byte for byte json.Marshal's, so entries written before it
// keep their names.
func FuzzKeyJSON(f *testing.F) {
	k := testKey()
	f.Add(k.Certificate, k.TrustAnchorARN, k.RoleSessionName, k.Trust, k.PrivateKey, k.CertificatePath, k.DurationSeconds)
	f.Add("", "<&>", "\u2028", "\x00\xff", "", "/a\"b\\c", -1)
	f.Fuzz(func(t *testing.T, cert, ta, session, trust, privateKey, path string, duration int) {
		k := Key{Certificate: cert, TrustAnchorARN: ta, ProfileARN: ta + "p", RoleARN: session + "r", DurationSeconds: duration,
			RoleSessionName: session, Region: trust, Endpoint: path + "e", Trust: trust, PrivateKey: privateKey, CertificatePath: path}
		want, err := json.Marshal(k)
		if err != nil {
			t.Fatal(err)
		}
		if got := k.appendJSON(nil); !bytes.Equal(got, want) {
			t.Fatalf("appendJSON:\n%s\njson.Marshal:\n%s", got, want)
		}
	})
}

// FuzzParseEntry: whenever the fast reading of an entry accepts a file,
// encoding/json reads the same entry from it; and it accepts what put
// writes.
func FuzzParseEntry(f *testing.F) {
	valid, err := json.Marshal(entry{Version: entryVersion, Key: testKey(), AccessKeyID: "ASIA0000000000000001", SecretAccessKey: "s/e+c=r",
		SessionToken: "token", Expiration: time.Date(2030, 1, 2, 3, 4, 5, 600, time.UTC)})
	if err != nil {
		f.Fatal(err)
	}
	if _, ok := parseEntry(valid); !ok {
		f.Fatalf("parseEntry refuses what put writes:\n%s", valid)
	}
	noKey := testKey()
	noKey.PrivateKey = ""
	withoutPrivateKey, _ := json.Marshal(entry{Version: 1, Key: noKey, AccessKeyID: "a", SecretAccessKey: "b", SessionToken: "c", Expiration: time.Unix(1, 0).UTC()})
	if _, ok := parseEntry(withoutPrivateKey); !ok {
		f.Fatalf("parseEntry refuses an entry without a private key hash:\n%s", withoutPrivateKey)
	}
	f.Add(valid)
	f.Add(withoutPrivateKey)
	f.Add(bytes.Replace(valid, []byte(`"version":1`), []byte(`"version":01`), 1))
	f.Add(bytes.Replace(valid, []byte(`"durationSeconds":3600`), []byte(`"durationSeconds":-0`), 1))
	f.Add(bytes.Replace(valid, []byte(`"expiration":"2030`), []byte(`"expiration":"30`), 1))
	// Escapes: encoding/json decodes them, so the hand parser must refuse
	// them (and leave the entry to encoding/json) rather than read them raw.
	f.Add(bytes.Replace(valid, []byte(`"accessKeyId":"ASIA`), []byte(`"accessKeyId":"ASIA\u0041`), 1))
	f.Add(bytes.Replace(valid, []byte(`"sessionToken":"token"`), []byte(`"sessionToken":"tok\"en"`), 1))
	f.Add(bytes.Replace(valid, []byte(`"sessionToken":"token"`), []byte(`"sessionToken":"to\\ken"`), 1))
	f.Add(bytes.Replace(valid, []byte(`"sessionToken":"token"`), []byte(`"sessionToken":"to\/ken"`), 1))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, ok := parseEntry(data)
		if !ok {
			return
		}
		var want entry
		if err := json.Unmarshal(data, &want); err != nil {
			t.Fatalf("parseEntry accepted what encoding/json refuses (%v):\n%s", err, data)
		}
		if got != want {
			t.Fatalf("parseEntry read %+v, encoding/json %+v", got, want)
		}
	})
}
