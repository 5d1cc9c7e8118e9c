package awshelper_test

// ML-DSA interop with AWS's helper v1.8.0, the first version that signs
// with AWS4-X509-MLDSA. Its source is not on the Go module proxy (which
// serves v1.4.0, the library the other tests use), so a fresh CI machine
// cannot build it: these tests replay requests the real v1.8.0 binary
// signed, recorded once into testdata/mldsa/*.json. The binary runs live
// only with the build tag "record", where KEYLESS_AWS_HELPER_V18 must
// name it.
//
// To regenerate the vectors (keys and certificates are made fresh by
// keyless's CA for the recording; nothing of AWS's is committed), or to
// run the helper live against the emulator:
//
//	cd interop/awshelper
//	KEYLESS_AWS_HELPER_V18=/path/to/rolesanywhere-credential-helper \
//	  go test -tags record -run 'TestRecordMLDSAVectors|TestHelperV18MLDSALive' .
//
// The recorder (mldsa_record_test.go, build tag "record") gets an
// ML-DSA-44, -65 and -87 certificate from an in-process keyless CA with
// `keyless certificate --kty ML-DSA-xx`'s code path, runs the helper's
// credential-process against an in-process emulator trusting that CA,
// and writes what the helper sent (method, host, path, query, headers,
// body), the time it signed at, the trust-anchor bundle and the identity.

import (
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keyless-dev/keyless/internal/emulator/emulatortest"
	"github.com/keyless-dev/keyless/internal/mldsa"
	"github.com/keyless-dev/keyless/internal/pki"
	"github.com/keyless-dev/keyless/internal/sigv4"
)

// mldsaVector is one recorded CreateSession request of the helper.
type mldsaVector struct {
	Helper       string `json:"helper"`
	ParameterSet string `json:"parameterSet"`
	// Time is X-Amz-Date's instant: the emulator's clock on replay.
	Time time.Time `json:"time"`
	// Bundle is the trust anchor's certificates (PEM): keyless CA's root.
	Bundle string `json:"trustAnchorBundle"`
	// Certificate, Intermediates and PrivateKey are the identity the
	// helper signed with (PEM), made for the recording.
	Certificate   string        `json:"certificate"`
	Intermediates string        `json:"intermediates"`
	PrivateKey    string        `json:"privateKey"`
	Request       recordedHTTP  `json:"request"`
	Response      recordedReply `json:"response"`
}

type recordedHTTP struct {
	Method   string      `json:"method"`
	Host     string      `json:"host"`
	Path     string      `json:"path"`
	RawQuery string      `json:"rawQuery"`
	Header   http.Header `json:"header"`
	Body     string      `json:"body"`
}

type recordedReply struct {
	Status int `json:"status"`
}

// mldsaSeed is the reference deployment trusting bundle, with fixed
// trust-anchor and profile IDs: their ARNs are in the recorded (signed)
// query, so the replaying emulator must have the same ones.
func mldsaSeed(bundle []byte) string {
	seed := emulatortest.Seed(bundle)
	for name, id := range map[string]string{emulatortest.TrustAnchor: "0f5b1c2d-3e4f-4a5b-8c6d-7e8f9a0b1c2d", emulatortest.Profile: "1a2b3c4d-5e6f-4a7b-9c8d-0e1f2a3b4c5d"} {
		seed = strings.Replace(seed, "  - name: "+name+"\n", "  - name: "+name+"\n    id: "+id+"\n", 1)
	}
	return seed
}

func loadVectors(t *testing.T) []mldsaVector {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "mldsa", "*.json"))
	if err != nil || len(files) != 3 {
		t.Fatalf("want 3 recorded vectors in testdata/mldsa, found %d (%v)", len(files), err)
	}
	var out []mldsaVector
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var v mldsaVector
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out = append(out, v)
	}
	return out
}

func (v mldsaVector) httpRequest(t *testing.T, authorization string) *http.Request {
	t.Helper()
	r := httptest.NewRequest(v.Request.Method, v.Request.Path+"?"+v.Request.RawQuery, strings.NewReader(v.Request.Body))
	r.Host = v.Request.Host
	r.Header = v.Request.Header.Clone()
	if authorization != "" {
		r.Header.Set("Authorization", authorization)
	}
	return r
}

// TestHelperV18MLDSAVectors replays the requests AWS's helper v1.8.0
// signed with ML-DSA-44, -65 and -87 keys into the emulator, its clock at
// the recorded time: each gets credentials, and each with one signature
// byte flipped gets AWS's "Invalid signature". keyless's own signer,
// given the same key, time and headers, must produce the helper's
// Authorization header byte for byte (ML-DSA as the helper uses it is
// deterministic).
func TestHelperV18MLDSAVectors(t *testing.T) {
	seen := map[string]bool{}
	for _, v := range loadVectors(t) {
		seen[v.ParameterSet] = true
		t.Run(v.ParameterSet, func(t *testing.T) {
			authz := v.Request.Header.Get("Authorization")
			if !strings.HasPrefix(authz, sigv4.AlgorithmMLDSA+" ") {
				t.Fatalf("recorded Authorization %.40q is not %s", authz, sigv4.AlgorithmMLDSA)
			}
			bundle, err := pki.ParseCertificates([]byte(v.Bundle))
			if err != nil {
				t.Fatal(err)
			}
			now := func() time.Time { return v.Time }
			srv := emulatortest.NewSeed(t, mldsaSeed(pki.EncodeCertificates(bundle...)), now, nil)

			w := httptest.NewRecorder()
			srv.Emulator.ServeHTTP(w, v.httpRequest(t, ""))
			if w.Code != http.StatusCreated {
				t.Fatalf("replay: %d %s", w.Code, w.Body.String())
			}
			var session struct {
				CredentialSet []struct {
					Credentials struct{ AccessKeyId string } `json:"credentials"`
				} `json:"credentialSet"`
			}
			if err := json.Unmarshal(w.Body.Bytes(), &session); err != nil || len(session.CredentialSet) != 1 ||
				!strings.HasPrefix(session.CredentialSet[0].Credentials.AccessKeyId, "ASIA") {
				t.Fatalf("replay answer is not a session (%v)", err)
			}

			i := strings.LastIndex(authz, "Signature=") + len("Signature=")
			sig, err := hex.DecodeString(authz[i:])
			if err != nil {
				t.Fatal(err)
			}
			p, _ := mldsa.ByName(v.ParameterSet)
			if len(sig) != p.SignatureSize() {
				t.Fatalf("recorded signature is %d bytes, want %d for %s", len(sig), p.SignatureSize(), v.ParameterSet)
			}
			sig[len(sig)/2] ^= 0x01
			w = httptest.NewRecorder()
			srv.Emulator.ServeHTTP(w, v.httpRequest(t, authz[:i]+hex.EncodeToString(sig)))
			if w.Code != http.StatusForbidden || !strings.Contains(w.Body.String(), "Invalid signature") {
				t.Fatalf("flipped signature byte: %d %s, want 403 Invalid signature", w.Code, w.Body.String())
			}

			// keyless's signer over the same headers, key and time.
			key, err := pki.ParsePrivateKey([]byte(v.PrivateKey), nil)
			if err != nil {
				t.Fatal(err)
			}
			certs, err := pki.ParseCertificates([]byte(v.Certificate))
			if err != nil {
				t.Fatal(err)
			}
			inter, err := pki.ParseCertificates([]byte(v.Intermediates))
			if err != nil {
				t.Fatal(err)
			}
			a, err := sigv4.ParseAuthorization(authz)
			if err != nil {
				t.Fatal(err)
			}
			req := httptest.NewRequest(v.Request.Method, v.Request.Path+"?"+v.Request.RawQuery, nil)
			req.Host = v.Request.Host
			req.Header = http.Header{}
			for _, name := range a.SignedHeaders {
				if name != "host" {
					req.Header[http.CanonicalHeaderKey(name)] = v.Request.Header.Values(name)
				}
			}
			s := sigv4.X509Signer{Key: key, Certificate: certs[0], Intermediates: inter}
			if err := s.Sign(req, []byte(v.Request.Body), a.Region, v.Time); err != nil {
				t.Fatal(err)
			}
			if got := req.Header.Get("Authorization"); got != authz {
				t.Fatalf("keyless's signature differs from the helper's:\n got %.120s...\nwant %.120s...", got, authz)
			}
		})
	}
	for _, p := range mldsa.All {
		if !seen[p.Name()] {
			t.Errorf("no recorded vector for %s", p.Name())
		}
	}
}
