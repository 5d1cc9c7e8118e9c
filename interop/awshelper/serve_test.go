package awshelper_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os/exec"
	"regexp"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keyless-dev/keyless/internal/emulator/emulatortest"
	"github.com/keyless-dev/keyless/internal/pki"
	"github.com/keyless-dev/keyless/internal/pki/pkitest"
	"github.com/keyless-dev/keyless/internal/sigv4"
	"github.com/keyless-dev/keyless/internal/sts"
	"github.com/keyless-dev/keyless/internal/testkit"
)

// helperServe starts AWS's aws_signing_helper serve with args and returns
// its base URL, read from the port it logs.
func helperServe(t *testing.T, bin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"serve"}, args...)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	})
	ports := make(chan string, 1)
	var log strings.Builder
	go func() {
		re := regexp.MustCompile(`Local server started on port: (\d+)`)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			log.WriteString(sc.Text() + "\n")
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				ports <- m[1]
			}
		}
		close(ports)
	}()
	limit := time.NewTimer(time.Minute)
	defer limit.Stop()
	select {
	case p, ok := <-ports:
		if !ok {
			t.Fatalf("the helper's serve exited before serving")
		}
		return "http://127.0.0.1:" + p + "/"
	case <-limit.C:
		t.Fatalf("the helper's serve logged no port within a minute")
	}
	return ""
}

// reply is one answer, with what may differ between runs taken out.
type reply struct {
	status  int
	headers []string // names, but Date and Content-Length
	header  http.Header
	body    string
}

func send(t *testing.T, base, method, path string, header ...string) reply {
	t.Helper()
	req, err := http.NewRequest(method, base+strings.TrimPrefix(path, "/"), nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s%s: %v", method, base, path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	r := reply{status: resp.StatusCode, header: resp.Header, body: string(body)}
	for name := range resp.Header {
		if name != "Date" && name != "Content-Length" {
			r.headers = append(r.headers, name)
		}
	}
	sort.Strings(r.headers)
	return r
}

// TestServeSideBySide runs AWS's helper's serve and keyless serve with
// the same flags against the same emulator and sends both the same
// requests: paths, methods, token TTLs, tokens missing or unknown, the
// X-Forwarded-For refusal, the credentials. Statuses, header names and
// bodies must match, but for tokens and credentials, whose shape must
// match; the deliberate differences are checked to be exactly those
// listed in docs/serve.md.
func TestServeSideBySide(t *testing.T) {
	keyless, awsHelper := binaries(t)
	root := pkitest.NewRoot(t, "serve-root")
	inter := root.Intermediate(t, "serve-int")
	emu := emulatortest.New(t, nil, root.Cert)
	dir := t.TempDir()
	key := pkitest.Key(t, pkitest.P256)
	id := identityFilesFor(t, dir, inter.Leaf(t, pkitest.LeafOptions{Key: key}), key)
	chain := pkitest.WriteFile(t, dir, "chain.pem", pki.EncodeCertificates(inter.Cert))
	args := []string{"--certificate", id.cert, "--private-key", id.key, "--intermediates", chain,
		"--trust-anchor-arn", emu.TrustAnchorARN, "--profile-arn", emu.ProfileARN, "--role-arn", emu.RoleARN,
		"--endpoint", emu.URL, "--port", "0"}
	helperURL := helperServe(t, awsHelper, args...)
	keylessURL, _, _ := testkit.Serve(t, keyless, nil, args...)
	both := map[string]string{"helper": helperURL, "keyless": keylessURL}

	tokens := map[string]string{}
	for name, base := range both {
		r := send(t, base, "PUT", "/latest/api/token", "X-aws-ec2-metadata-token-ttl-seconds", "21600")
		if r.status != 200 {
			t.Fatalf("%s: token: %d %s", name, r.status, r.body)
		}
		tokens[name] = r.body
	}
	tok := func(name string) string { return tokens[name] }
	const ttl = "X-aws-ec2-metadata-token-ttl-seconds"
	const token = "X-aws-ec2-metadata-token"
	role := emulatortest.Role
	for _, tc := range []struct {
		name, method, path string
		header             func(who string) []string
		// same: the bodies must be equal (else their shape is checked).
		same bool
	}{
		{"token", "PUT", "/latest/api/token", func(string) []string { return []string{ttl, "21600"} }, false},
		{"token for a second", "PUT", "/latest/api/token", func(string) []string { return []string{ttl, "1"} }, false},
		{"token without TTL", "PUT", "/latest/api/token", nil, false},
		{"token TTL 0", "PUT", "/latest/api/token", func(string) []string { return []string{ttl, "0"} }, true},
		{"token TTL 21601", "PUT", "/latest/api/token", func(string) []string { return []string{ttl, "21601"} }, true},
		{"token TTL not a number", "PUT", "/latest/api/token", func(string) []string { return []string{ttl, "ten"} }, true},
		{"token behind a proxy", "PUT", "/latest/api/token", func(string) []string { return []string{ttl, "60", "X-Forwarded-For", "10.0.0.1"} }, true},
		{"token path with a slash", "PUT", "/latest/api/token/", nil, true},
		{"role list", "GET", "/latest/meta-data/iam/security-credentials/", func(w string) []string { return []string{token, tok(w)} }, true},
		{"role list without token", "GET", "/latest/meta-data/iam/security-credentials/", nil, true},
		{"role list, unknown token", "GET", "/latest/meta-data/iam/security-credentials/", func(string) []string { return []string{token, "forged"} }, true},
		{"role list without the slash", "GET", "/latest/meta-data/iam/security-credentials", func(w string) []string { return []string{token, tok(w)} }, true},
		{"credentials", "GET", "/latest/meta-data/iam/security-credentials/" + role, func(w string) []string { return []string{token, tok(w)} }, false},
		{"credentials without token", "GET", "/latest/meta-data/iam/security-credentials/" + role, nil, true},
		{"credentials, unknown token", "GET", "/latest/meta-data/iam/security-credentials/" + role, func(string) []string { return []string{token, "forged"} }, true},
		{"elsewhere", "GET", "/latest/meta-data/", func(w string) []string { return []string{token, tok(w)} }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := map[string]reply{}
			for who, base := range both {
				var h []string
				if tc.header != nil {
					h = tc.header(who)
				}
				got[who] = send(t, base, tc.method, tc.path, h...)
			}
			h, k := got["helper"], got["keyless"]
			if h.status != k.status {
				t.Fatalf("status: helper %d %q, keyless %d %q", h.status, h.body, k.status, k.body)
			}
			if !slices.Equal(h.headers, k.headers) {
				t.Errorf("header names: helper %v, keyless %v", h.headers, k.headers)
			}
			for _, name := range []string{"Content-Type", "Location"} {
				want := h.header.Get(name)
				if name == "Content-Type" && strings.HasPrefix(h.body, "{") && want == http.DetectContentType([]byte(h.body)) {
					// The helper sets no Content-Type, so net/http sniffs
					// its body, and random credentials now and then look
					// like another type (bytes 34-35 "LP" read as an EOT
					// font). keyless always says what the sniff says for
					// JSON text.
					want = http.DetectContentType([]byte("{}"))
				}
				if want != k.header.Get(name) {
					t.Errorf("%s: helper %q (keyless should say %q), keyless %q", name, h.header.Get(name), want, k.header.Get(name))
				}
			}
			if tc.same && h.body != k.body {
				t.Errorf("body: helper %q, keyless %q", h.body, k.body)
			}
			if h.header.Get(ttl) != "" && tc.name != "role list" && h.header.Get(ttl) != k.header.Get(ttl) {
				t.Errorf("TTL header: helper %q, keyless %q", h.header.Get(ttl), k.header.Get(ttl))
			}
			if tc.name == "credentials" {
				sameCredentialShape(t, emu, h.body, k.body)
			}
			if strings.HasPrefix(tc.name, "token") && h.status == 200 && (h.body == "" || k.body == "" || strings.ContainsAny(k.body, " \n")) {
				t.Errorf("tokens: helper %q, keyless %q", h.body, k.body)
			}
		})
	}

	// The deliberate differences (docs/serve.md), each checked, so the
	// list stays true.
	t.Run("differences", func(t *testing.T) {
		// A role name keyless does not serve: 404, as EC2 answers; the
		// helper answers its own role's name for any.
		h := send(t, helperURL, "GET", "/latest/meta-data/iam/security-credentials/other-role", token, tok("helper"))
		k := send(t, keylessURL, "GET", "/latest/meta-data/iam/security-credentials/other-role", token, tok("keyless"))
		if h.status != 200 || h.body != role || k.status != 404 {
			t.Errorf("another role name: helper %d %q, keyless %d %q", h.status, h.body, k.status, k.body)
		}
		// 405 names the allowed method in Allow, as HTTP requires.
		h = send(t, helperURL, "GET", "/latest/api/token")
		k = send(t, keylessURL, "GET", "/latest/api/token")
		if h.status != 405 || k.status != 405 || h.header.Get("Allow") != "" || k.header.Get("Allow") != "PUT" {
			t.Errorf("405: helper Allow %q, keyless Allow %q", h.header.Get("Allow"), k.header.Get("Allow"))
		}
		// A Host that is a name: keyless refuses it (DNS rebinding).
		for who, base := range both {
			req, _ := http.NewRequest("PUT", base+"latest/api/token", nil)
			req.Host = "rebound.example"
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			want := map[string]int{"helper": 200, "keyless": 403}[who]
			if resp.StatusCode != want {
				t.Errorf("%s, Host a name: %d, want %d", who, resp.StatusCode, want)
			}
		}
	})
}

// sameCredentialShape: both answers have EC2's fields with the same
// fixed values, RFC 3339 times, and credentials STS accepts.
func sameCredentialShape(t *testing.T, emu *emulatortest.Server, helperBody, keylessBody string) {
	t.Helper()
	var h, k map[string]string
	if err := json.Unmarshal([]byte(helperBody), &h); err != nil {
		t.Fatalf("helper: %v: %s", err, helperBody)
	}
	if err := json.Unmarshal([]byte(keylessBody), &k); err != nil {
		t.Fatalf("keyless: %v: %s", err, keylessBody)
	}
	keys := func(m map[string]string) []string {
		var out []string
		for name := range m {
			out = append(out, name)
		}
		sort.Strings(out)
		return out
	}
	if !slices.Equal(keys(h), keys(k)) {
		t.Errorf("fields: helper %v, keyless %v", keys(h), keys(k))
	}
	for _, m := range []map[string]string{h, k} {
		if m["Code"] != "Success" || m["Type"] != "AWS-HMAC" {
			t.Errorf("Code %q Type %q", m["Code"], m["Type"])
		}
		exp, err1 := time.Parse(time.RFC3339, m["Expiration"])
		_, err2 := time.Parse(time.RFC3339, m["LastUpdated"])
		if err1 != nil || err2 != nil {
			t.Errorf("times: %v %v", err1, err2)
		}
		if _, err := sts.New(emu.URL, emulatortest.Region).GetCallerIdentity(context.Background(),
			sigv4.Credentials{AccessKeyID: m["AccessKeyId"], SecretAccessKey: m["SecretAccessKey"], SessionToken: m["Token"], Expiration: exp}); err != nil {
			t.Errorf("STS refuses: %v", err)
		}
	}
	// keyless writes times as EC2 does, to the second in UTC.
	if !regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$`).MatchString(k["LastUpdated"]) {
		t.Errorf("keyless LastUpdated %q", k["LastUpdated"])
	}
}
