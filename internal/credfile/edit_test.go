package credfile_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/keyless-dev/keyless/internal/credfile"
)

var creds = credfile.Credentials{AccessKeyID: "ASIANEW", SecretAccessKey: "secret/NEW+", SessionToken: "token=NEW"}

const newKeys = "aws_access_key_id = ASIANEW\naws_secret_access_key = secret/NEW+\naws_session_token = token=NEW\n"

// TestSet: the profile's three keys get the new values, and every other
// byte of the file stays as it was.
func TestSet(t *testing.T) {
	for _, tc := range []struct {
		name, profile, in, want string
		change                  credfile.Change
	}{
		{name: "empty file", profile: "default", in: "",
			want: "[default]\n" + newKeys, change: credfile.Change{Created: true}},
		{name: "profile absent, others and comments kept", profile: "ci",
			in:     "# my keys\n[default]\naws_access_key_id = AKIAOLD ; not a comment to botocore\n",
			want:   "# my keys\n[default]\naws_access_key_id = AKIAOLD ; not a comment to botocore\n\n[ci]\n" + newKeys,
			change: credfile.Change{Created: true}},
		{name: "profile absent, file ends with a blank line", profile: "ci", in: "[default]\nx = 1\n\n",
			want: "[default]\nx = 1\n\n[ci]\n" + newKeys, change: credfile.Change{Created: true}},
		{name: "profile absent, no trailing newline", profile: "ci", in: "[default]\nx = 1",
			want: "[default]\nx = 1\n\n[ci]\n" + newKeys, change: credfile.Change{Created: true}},
		{name: "replaced in place, rest untouched", profile: "ci",
			in:     "[default]\naws_access_key_id = AKIAOTHER\n\n# ci is keyless's\n[ci]\nregion = eu-west-1\naws_access_key_id = OLD\n; note\naws_secret_access_key = OLD\nextra = kept\naws_session_token = OLD\n\n[zzz]\nk = v\n",
			want:   "[default]\naws_access_key_id = AKIAOTHER\n\n# ci is keyless's\n[ci]\nregion = eu-west-1\naws_access_key_id = ASIANEW\n; note\naws_secret_access_key = secret/NEW+\nextra = kept\naws_session_token = token=NEW\n\n[zzz]\nk = v\n",
			change: credfile.Change{Replaced: 3}},
		{name: "spelling and spacing kept", profile: "default",
			in:     "[default]\n  AWS_Access_Key_ID=OLD\n  aws_secret_access_key:   OLD\n  aws_session_token\t=\tOLD\n",
			want:   "[default]\n  AWS_Access_Key_ID=ASIANEW\n  aws_secret_access_key:   secret/NEW+\n  aws_session_token\t=\ttoken=NEW\n",
			change: credfile.Change{Replaced: 3}},
		{name: "missing keys after the last key, before what leads into the next section", profile: "ci",
			in:     "[ci]\nregion = us-east-1\naws_session_token = OLD\n\n# the next one\n[next]\n",
			want:   "[ci]\nregion = us-east-1\naws_session_token = token=NEW\naws_access_key_id = ASIANEW\naws_secret_access_key = secret/NEW+\n\n# the next one\n[next]\n",
			change: credfile.Change{Replaced: 1, Added: 2}},
		{name: "header only", profile: "ci", in: "[ci]\n[next]\n",
			want: "[ci]\n" + newKeys + "[next]\n", change: credfile.Change{Added: 3}},
		{name: "header last without newline", profile: "ci", in: "[ci]",
			want: "[ci]\n" + strings.TrimSuffix(newKeys, "\n"), change: credfile.Change{Added: 3}},
		{name: "last line replaced without newline", profile: "ci",
			in:     "[ci]\naws_access_key_id = a\naws_secret_access_key = b\naws_session_token = c",
			want:   "[ci]\n" + strings.TrimSuffix(newKeys, "\n"),
			change: credfile.Change{Replaced: 3}},
		{name: "last line kept when it is another key", profile: "ci",
			in:     "[ci]\naws_access_key_id = a\naws_secret_access_key = b\naws_session_token = c\nregion = us-east-1",
			want:   "[ci]\n" + newKeys + "region = us-east-1",
			change: credfile.Change{Replaced: 3}},
		{name: "CRLF kept, new lines CRLF too", profile: "ci",
			in:     "[default]\r\nk = v\r\n[ci]\r\naws_access_key_id = OLD\r\n",
			want:   "[default]\r\nk = v\r\n[ci]\r\naws_access_key_id = ASIANEW\r\naws_secret_access_key = secret/NEW+\r\naws_session_token = token=NEW\r\n",
			change: credfile.Change{Replaced: 1, Added: 2}},
		{name: "CRLF, profile absent", profile: "ci", in: "[default]\r\nk = v\r\n",
			want:   "[default]\r\nk = v\r\n\r\n[ci]\r\n" + strings.ReplaceAll(newKeys, "\n", "\r\n"),
			change: credfile.Change{Created: true}},
		{name: "duplicate keys dropped, the first replaced", profile: "ci",
			in:     "[ci]\naws_access_key_id = A1\naws_secret_access_key = S\naws_access_key_id = A2\naws_session_token = T\nAWS_SESSION_TOKEN = T2\n",
			want:   "[ci]\n" + newKeys,
			change: credfile.Change{Replaced: 3, Removed: 2}},
		{name: "continuation of an old value dropped", profile: "ci",
			in:     "[ci]\naws_session_token =\n    part1\n\n    part2\naws_access_key_id = A\naws_secret_access_key = S\n",
			want:   "[ci]\naws_session_token =token=NEW\n\naws_access_key_id = ASIANEW\naws_secret_access_key = secret/NEW+\n",
			change: credfile.Change{Replaced: 3}},
		{name: "an indented line under a credential key is more of its old value", profile: "ci",
			in:     "[ci]\naws_access_key_id = A\n  aws_secret_access_key = S\n",
			want:   "[ci]\naws_access_key_id = ASIANEW\naws_secret_access_key = secret/NEW+\naws_session_token = token=NEW\n",
			change: credfile.Change{Replaced: 1, Added: 2}},
		{name: "added keys take the next line's indentation, so it stays a header", profile: "ci",
			in:     "[ci]\n  [next]\n  k = v\n",
			want:   "[ci]\n  aws_access_key_id = ASIANEW\n  aws_secret_access_key = secret/NEW+\n  aws_session_token = token=NEW\n  [next]\n  k = v\n",
			change: credfile.Change{Added: 3}},
		{name: "a key nested in another key's value is not a key", profile: "ci",
			in:     "[ci]\ns3 =\n  aws_access_key_id = NESTED\n",
			want:   "[ci]\ns3 =\n  aws_access_key_id = NESTED\n" + newKeys,
			change: credfile.Change{Added: 3}},
		{name: "same keys in other profiles untouched", profile: "b",
			in:     "[a]\naws_access_key_id = A\n[b]\naws_access_key_id = B\n[c]\naws_access_key_id = C\n",
			want:   "[a]\naws_access_key_id = A\n[b]\naws_access_key_id = ASIANEW\naws_secret_access_key = secret/NEW+\naws_session_token = token=NEW\n[c]\naws_access_key_id = C\n",
			change: credfile.Change{Replaced: 1, Added: 2}},
		{name: "prefix-named keys are other keys", profile: "ci",
			in:     "[ci]\naws_session_token_ttl = 1\naws_security_token = legacy\n",
			want:   "[ci]\naws_session_token_ttl = 1\naws_security_token = legacy\n" + newKeys,
			change: credfile.Change{Added: 3}},
		{name: "[profile ci] is another section in this file", profile: "ci", in: "[profile ci]\nk = v\n",
			want: "[profile ci]\nk = v\n\n[ci]\n" + newKeys, change: credfile.Change{Created: true}},
		{name: "header with a comment after it", profile: "ci", in: "[ci] # keyless\naws_access_key_id = A\n",
			want:   "[ci] # keyless\naws_access_key_id = ASIANEW\naws_secret_access_key = secret/NEW+\naws_session_token = token=NEW\n",
			change: credfile.Change{Replaced: 1, Added: 2}},
		{name: "duplicate other sections are not ours", profile: "ci", in: "[a]\n[a]\n",
			want: "[a]\n[a]\n\n[ci]\n" + newKeys, change: credfile.Change{Created: true}},
		{name: "broken header ends the section", profile: "ci", in: "[ci]\naws_access_key_id = A\n[broken\naws_secret_access_key = S\n",
			want:   "[ci]\naws_access_key_id = ASIANEW\naws_secret_access_key = secret/NEW+\naws_session_token = token=NEW\n[broken\naws_secret_access_key = S\n",
			change: credfile.Change{Replaced: 1, Added: 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ch, err := credfile.Set([]byte(tc.in), tc.profile, creds)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, string(got)); diff != "" {
				t.Errorf("file (-want +got):\n%s", diff)
			}
			if ch != tc.change {
				t.Errorf("change %+v, want %+v", ch, tc.change)
			}
			if c, ok := credfile.Get(got, tc.profile); !ok || c != creds {
				t.Errorf("read back %+v %v", c, ok)
			}
			// Setting the same values again changes nothing.
			again, _, err := credfile.Set(got, tc.profile, creds)
			if err != nil || string(again) != string(got) {
				t.Errorf("second Set changed the file: %v\n%q\n%q", err, got, again)
			}
		})
	}
}

// TestSetRefuses: what Set will not write, each refusal on its own.
func TestSetRefuses(t *testing.T) {
	var (
		dup *credfile.DuplicateProfileError
		amb *credfile.AmbiguousHeaderError
	)
	for _, tc := range []struct {
		name, profile, in string
		c                 credfile.Credentials
		want              func(error) bool
		msg               string
	}{
		{"duplicate profile", "ci", "[ci]\nx = 1\n[other]\n[ci]\n", creds,
			func(err error) bool { return errors.As(err, &dup) && cmp.Equal(dup.Lines, []int{1, 4}) }, "appears 2 times (lines 1, 4)"},
		{"ambiguous header", "ci", "[a]\n[ ci ]\n", creds,
			func(err error) bool { return errors.As(err, &amb) && amb.Line == 2 }, `line 2: [ ci ] is the profile " ci " to the AWS CLI`},
		{"bare CR", "ci", "[a]\rk = v\r[ci]\r", creds, func(err error) bool { return errors.Is(err, credfile.ErrBareCR) }, "carriage return"},
		{"empty profile", "", "", creds, func(err error) bool { return errors.Is(err, credfile.ErrProfileName) }, "empty"},
		{"bracket", "a]b", "", creds, func(err error) bool { return errors.Is(err, credfile.ErrProfileName) }, "bracket"},
		{"newline in profile", "a\nb", "", creds, func(err error) bool { return errors.Is(err, credfile.ErrProfileName) }, "control character"},
		{"spaces around profile", " a", "", creds, func(err error) bool { return errors.Is(err, credfile.ErrProfileName) }, "whitespace"},
		{"config form", "profile ci", "", creds, func(err error) bool { return errors.Is(err, credfile.ErrProfileName) }, "not [profile NAME]"},
		{"newline in a value", "ci", "", credfile.Credentials{AccessKeyID: "A", SecretAccessKey: "S\n[x]", SessionToken: "T"},
			func(err error) bool { return errors.Is(err, credfile.ErrValue) }, "aws_secret_access_key holds a control character"},
		{"empty value", "ci", "", credfile.Credentials{AccessKeyID: "A", SecretAccessKey: "S"},
			func(err error) bool { return errors.Is(err, credfile.ErrValue) }, "aws_session_token is empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, _, err := credfile.Set([]byte(tc.in), tc.profile, tc.c)
			if err == nil || !tc.want(err) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("got %v, %q; want an error with %q", err, out, tc.msg)
			}
			if strings.Contains(err.Error(), "S\n[x]") {
				t.Fatal("the error holds the secret")
			}
		})
	}
}
