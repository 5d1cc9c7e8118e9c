package awshelper_test

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	helper "github.com/aws/rolesanywhere-credential-helper/aws_signing_helper"

	"github.com/keyless-dev/keyless/internal/credfile"
	"github.com/keyless-dev/keyless/internal/emulator/emulatortest"
	"github.com/keyless-dev/keyless/internal/pki"
	"github.com/keyless-dev/keyless/internal/pki/pkitest"
)

// helperEdit is AWS's helper's update edit (v1.4.0, as a library): the
// file read line by line as its GetCredentialsFileContents reads it, then
// GetNewCredentialsFileContents.
func helperEdit(in, profile string, c credfile.Credentials) string {
	var lines []string
	sc := bufio.NewScanner(strings.NewReader(in))
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	return strings.Join(helper.GetNewCredentialsFileContents(profile, lines, &helper.TemporaryCredential{
		AccessKeyId: c.AccessKeyID, SecretAccessKey: c.SecretAccessKey, SessionToken: c.SessionToken}), "")
}

// TestUpdateEditsLikeTheHelper: on files as the AWS CLI and the helper
// write them, keyless update and aws_signing_helper update leave the same
// bytes. Where they differ, the case says how and why, and pins the
// helper's output, so a new helper version that changes shows here.
func TestUpdateEditsLikeTheHelper(t *testing.T) {
	c := credfile.Credentials{AccessKeyID: "ASIANEW", SecretAccessKey: "secretNEW", SessionToken: "tokenNEW"}
	const keys = "aws_access_key_id = ASIANEW\naws_secret_access_key = secretNEW\naws_session_token = tokenNEW\n"
	for _, tc := range []struct {
		name, in string
		// helper is the helper's output when it differs from keyless's,
		// and why.
		helper, why string
	}{
		{name: "profile present, others around it",
			in: "[default]\naws_access_key_id = A\n\n[ci]\naws_access_key_id = OLD\naws_secret_access_key = OLD\naws_session_token = OLD\n\n[other]\nk = v\n"},
		{name: "profile present with other keys and comments",
			in: "# mine\n[ci]\nregion = eu-west-1\naws_access_key_id = OLD\n; note\naws_secret_access_key = OLD\naws_session_token = OLD\n[other]\nk = v\n"},
		{name: "profile missing keys, before another profile",
			in: "[ci]\nregion = eu-west-1\n[other]\nk = v\n"},
		{name: "profile last, credential key last",
			in: "[other]\nk = v\n\n[ci]\naws_access_key_id = OLD\naws_secret_access_key = OLD\naws_session_token = OLD\n"},
		{name: "empty file", in: "",
			helper: "[ci]\n" + keys + "\n", why: "the helper ends the new section with a blank line; keyless puts the blank line before it, as a separator"},
		{name: "profile absent", in: "[default]\nk = v\n",
			helper: "[default]\nk = v\n[ci]\n" + keys + "\n", why: "layout of an appended section, as above"},
		{name: "profile last, another key last",
			in:     "[ci]\naws_access_key_id = OLD\naws_secret_access_key = OLD\naws_session_token = OLD\nregion = eu-west-1\n",
			helper: "[ci]\n" + keys, why: "the helper drops the file's last line when it is in the profile and not a credential key (region = eu-west-1 is lost)"},
		{name: "profile followed by a last line that is a header", in: "[ci]\naws_access_key_id = OLD\n[other]\n",
			helper: "[ci]\naws_access_key_id = ASIANEW\n" + keys[len("aws_access_key_id = ASIANEW\n"):], why: "the same: the helper drops the [other] header on the last line"},
		{name: "CRLF", in: "[ci]\r\naws_access_key_id = OLD\r\naws_secret_access_key = OLD\r\naws_session_token = OLD\r\n[other]\r\nk = v\r\n",
			helper: "[ci]\n" + keys + "[other]\nk = v\n", why: "the helper turns every line ending of the file into \\n; keyless keeps them"},
		{name: "no spaces around =", in: "[ci]\naws_access_key_id=OLD\naws_secret_access_key=OLD\naws_session_token=OLD\n[other]\nk = v\n",
			helper: "[ci]\n" + keys + "[other]\nk = v\n", why: "the helper rewrites the credential lines in its own spacing; keyless keeps the user's"},
		{name: "a key whose name starts like a credential key", in: "[ci]\naws_session_token_ttl = 3600\naws_access_key_id = OLD\naws_secret_access_key = OLD\naws_session_token = OLD\n[other]\nk = v\n",
			helper: "[ci]\naws_session_token = tokenNEW\naws_access_key_id = ASIANEW\naws_secret_access_key = secretNEW\naws_session_token = tokenNEW\n[other]\nk = v\n",
			why:    "the helper matches keys by prefix, so it overwrites aws_session_token_ttl and writes aws_session_token twice, which the AWS CLI refuses"},
		{name: "header with a comment", in: "[ci] # keyless\naws_access_key_id = OLD\n",
			helper: "[ci] # keyless\naws_access_key_id = OLD\n[ci]\n" + keys + "\n",
			why:    "the helper matches only the exact line [ci], so it appends a second [ci], which the AWS CLI refuses; botocore reads [ci] # keyless as [ci], and so does keyless"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, _, err := credfile.Set([]byte(tc.in), "ci", c)
			if err != nil {
				t.Fatal(err)
			}
			h := helperEdit(tc.in, "ci", c)
			want := string(out)
			if tc.helper != "" {
				want = tc.helper
				if h == string(out) {
					t.Errorf("keyless and the helper now agree (%s no longer holds):\n%q", tc.why, out)
				}
			}
			if h != want {
				t.Errorf("the helper wrote\n%q\nwant\n%q\n(keyless: %q)", h, want, out)
			}
		})
	}
}

// TestUpdateOnceSideBySide runs aws_signing_helper update --once and
// keyless update --once against the emulator, each on its own copy of the
// same credentials file: with the credential values masked, the files
// are byte for byte the same, and both are 0600.
func TestUpdateOnceSideBySide(t *testing.T) {
	keyless, awsHelper := binaries(t)
	root := pkitest.NewRoot(t, "update-root")
	inter := root.Intermediate(t, "update-int")
	srv := emulatortest.New(t, nil, root.Cert)
	dir := t.TempDir()
	key := pkitest.Key(t, pkitest.P256)
	id := identityFilesFor(t, dir, inter.Leaf(t, pkitest.LeafOptions{Key: key}), key)
	chain := pkitest.WriteFile(t, dir, "chain.pem", pki.EncodeCertificates(inter.Cert))
	const start = "# mine\n[default]\naws_access_key_id = AKIAEXAMPLE\naws_secret_access_key = handwritten\n\n[ci]\nregion = eu-west-1\naws_access_key_id = OLD\naws_secret_access_key = OLD\naws_session_token = OLD\n\n[other]\nk = v\n"
	mask := regexp.MustCompile(`(?m)^\[ci\]\nregion = eu-west-1\naws_access_key_id = ASIA\S+\naws_secret_access_key = \S+\naws_session_token = \S+$`)
	var files []string
	for _, bin := range []string{awsHelper, keyless} {
		file := filepath.Join(t.TempDir(), "credentials")
		if err := os.WriteFile(file, []byte(start), 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, "update", "--once", "--profile", "ci", "--certificate", id.cert, "--private-key", id.key, "--intermediates", chain,
			"--trust-anchor-arn", srv.TrustAnchorARN, "--profile-arn", srv.ProfileARN, "--role-arn", srv.RoleARN, "--endpoint", srv.URL)
		cmd.Env = append(os.Environ(), "AWS_SHARED_CREDENTIALS_FILE="+file)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s update --once: %v\n%s", filepath.Base(bin), err, out)
		}
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if info, _ := os.Stat(file); info.Mode().Perm() != 0o600 {
			t.Errorf("%s left mode %v", filepath.Base(bin), info.Mode())
		}
		if !mask.Match(data) {
			t.Fatalf("%s wrote no fresh credentials into [ci]:\n%s", filepath.Base(bin), data)
		}
		files = append(files, mask.ReplaceAllString(string(data), "[ci] MASKED"))
	}
	if files[0] != files[1] {
		t.Errorf("the files differ\nhelper:\n%s\nkeyless:\n%s", files[0], files[1])
	}
}
