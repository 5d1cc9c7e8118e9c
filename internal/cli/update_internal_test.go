package cli

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
)

// TestUpdateFlagErrorsExit2: each flag mistake keyless update can make is
// a usage error (exit 2) whose message names the flag, and nothing is
// written.
func TestUpdateFlagErrorsExit2(t *testing.T) {
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "credentials"))
	ok := []string{"update", "--certificate", "runner.crt", "--trust-anchor-arn", "arn:aws:rolesanywhere:us-east-1:111122223333:trust-anchor/ta",
		"--profile-arn", "arn:aws:rolesanywhere:us-east-1:111122223333:profile/p", "--role-arn", "arn:aws:iam::111122223333:role/r", "--once"}
	for _, tc := range []struct {
		args []string
		flag string
	}{
		{[]string{"update"}, "--certificate"},
		{append(ok[:len(ok):len(ok)], "--profile", "profile ci"), "--profile"},
		{append(ok[:len(ok):len(ok)], "--profile", ""), "--profile"},
		{append(ok[:len(ok):len(ok)], "--profile", "x\ny"), "--profile"},
		{append(ok[:len(ok):len(ok)], "--session-duration", "60"), "--session-duration"},
		{append(ok[:len(ok):len(ok)], "--session-duration", "x"), "--session-duration"},
		{append(ok[:len(ok):len(ok)], "--region", "eu-west-1"), "--region"},
		{append(ok[:len(ok):len(ok)], "--role-arn", "r"), "--role-arn"},
		{append(ok[:len(ok):len(ok)], "--role-session-name", "a b"), "--role-session-name"},
		{append(ok[:len(ok):len(ok)], "--endpoint", "ftp://x"), "--endpoint"},
		{append(ok[:len(ok):len(ok)], "--once=maybe"), "--once"},
		{append(ok[:len(ok):len(ok)], "--log-level", "loud"), "--log-level"},
		{append(ok[:len(ok):len(ok)], "--debug", "--log-level", "warn"), "--debug"},
		{append(ok[:len(ok):len(ok)], "--tpm-key-password", "x"), "--tpm-key-password"},
		{append(ok[:len(ok):len(ok)], "--pkcs8-password-file", "a", "--pkcs8-password", "b"), "--pkcs8-password"},
	} {
		var out, errb bytes.Buffer
		code := Main(tc.args, strings.NewReader(""), &out, &errb)
		if code != exitUsage || !strings.Contains(errb.String(), tc.flag) || out.Len() != 0 {
			t.Errorf("keyless %q: exit %d, stderr %q; want exit 2 naming %s", tc.args, code, errb.String(), tc.flag)
		}
	}
}
