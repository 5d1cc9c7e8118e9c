package awscli_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keyless-dev/keyless/internal/credfile"
)

// TestEditedFilesReadByCLI: on files written in every way botocore
// accepts (and one it refuses until keyless fixes it), the AWS CLI reads
// the profile keyless update wrote as the new credentials, and the other
// values as they were: keyless's reading of the file is botocore's.
func TestEditedFilesReadByCLI(t *testing.T) {
	aws := awsCLIs(t).paths[0]
	c := credfile.Credentials{AccessKeyID: "ASIANEW", SecretAccessKey: "secret/NEW+", SessionToken: "token=NEW"}
	type value struct{ profile, key, want string }
	for _, tc := range []struct {
		name, in string
		others   []value
	}{
		{"canonical", "[default]\naws_access_key_id = A\n\n[ci]\naws_access_key_id = OLD\naws_secret_access_key = OLD\naws_session_token = OLD\n",
			[]value{{"default", "aws_access_key_id", "A"}}},
		{"CRLF, colons, upper case, header comment", "[ci] # keyless\r\nAWS_ACCESS_KEY_ID : OLD\r\nRegion = eu-west-1\r\n[b]\r\nk = v\r\n",
			[]value{{"ci", "region", "eu-west-1"}, {"b", "k", "v"}}},
		{"nested values", "[ci]\ns3 =\n  aws_access_key_id = NESTED\n  max_concurrent_requests = 20\n[b]\nk = v\n",
			[]value{{"b", "k", "v"}}},
		{"indented next section", "[ci]\n  [b]\n  k = v\n", []value{{"b", "k", "v"}}},
		{"continued old value", "[ci]\naws_session_token =\n  part1\n\n  part2\nregion = eu-west-1\n", []value{{"ci", "region", "eu-west-1"}}},
		{"duplicate keys the CLI refuses", "[ci]\naws_access_key_id = A1\naws_access_key_id = A2\n[b]\nk = v\n", []value{{"b", "k", "v"}}},
		{"no trailing newline", "[b]\nk = v", []value{{"b", "k", "v"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, _, err := credfile.Set([]byte(tc.in), "ci", c)
			if err != nil {
				t.Fatal(err)
			}
			file := filepath.Join(t.TempDir(), "credentials")
			if err := os.WriteFile(file, out, 0o600); err != nil {
				t.Fatal(err)
			}
			get := func(profile, key string) string {
				cmd := exec.Command(aws, "configure", "get", key, "--profile", profile)
				cmd.Env = append(os.Environ(), "AWS_SHARED_CREDENTIALS_FILE="+file, "AWS_CONFIG_FILE="+filepath.Join(t.TempDir(), "none"), "HOME="+t.TempDir())
				got, err := cmd.CombinedOutput()
				if err != nil {
					t.Fatalf("aws configure get %s --profile %s: %v: %s\nfile:\n%q", key, profile, err, got, out)
				}
				return strings.TrimRight(string(got), "\r\n")
			}
			for key, want := range map[string]string{"aws_access_key_id": c.AccessKeyID, "aws_secret_access_key": c.SecretAccessKey, "aws_session_token": c.SessionToken} {
				if got := get("ci", key); got != want {
					t.Errorf("ci %s: the AWS CLI reads %q, want %q\nfile:\n%q", key, got, want, out)
				}
			}
			for _, o := range tc.others {
				if got := get(o.profile, o.key); got != o.want {
					t.Errorf("%s %s: the AWS CLI reads %q, want %q\nfile:\n%q", o.profile, o.key, got, o.want, out)
				}
			}
		})
	}
}
