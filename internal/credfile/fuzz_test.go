package credfile

import (
	"strings"
	"testing"
)

// FuzzSet: whatever the file holds, Set either refuses it or returns a
// file in which the profile reads back as the new credentials, a second
// Set changes nothing, and every line outside the profile's credential
// keys is still there, in order, with its bytes.
func FuzzSet(f *testing.F) {
	for _, s := range []string{
		"", "[default]\naws_access_key_id = A\n", "# c\n[a]\r\nk=v\r\n[ci]\r\naws_session_token: T",
		"[ci]\ns3 =\n  aws_access_key_id = x\n\n  y = 1\naws_access_key_id=1\naws_access_key_id=2\n[x",
		"[ ci ]\n", "[ci]\n[ci]\n", "k = v\n[ci] ; c\n\tAWS_SECRET_ACCESS_KEY = s\n;x\n",
	} {
		f.Add(s, "ci")
	}
	f.Fuzz(func(t *testing.T, in, profile string) {
		c := Credentials{AccessKeyID: "ASIAFUZZ", SecretAccessKey: "sec+/=", SessionToken: "tok"}
		out, first, err := Set([]byte(in), profile, c)
		if err != nil {
			return
		}
		got, ok := Get(out, profile)
		if !ok || got != c {
			t.Fatalf("read back %+v %v from %q", got, ok, out)
		}
		again, ch, err := Set(out, profile, c)
		if err != nil || string(again) != string(out) || ch.Added+ch.Removed != 0 || ch.Created {
			t.Fatalf("second Set: %v %+v\n%q\n%q", err, ch, out, again)
		}
		rest := string(out)
		if first.Created {
			// The appended section is all that is new.
			i := strings.LastIndex(rest, "["+profile+"]")
			if i < 0 || i < len(in) || !strings.HasPrefix(rest, in) {
				t.Fatalf("created a section, but not after the old content: %q", out)
			}
			rest = rest[:i]
		}
		if a, b := kept(in, profile), kept(rest, profile); a != b {
			t.Fatalf("lines outside the credential keys changed:\n%q\n%q\nfrom %q to %q", a, b, in, out)
		}
	})
}

// kept is the file's text without the profile's credential keys (and
// their continuation lines), line endings and trailing blank lines: what
// Set must not change.
func kept(content, profile string) string {
	lines := parse(content)
	target := -1
	for _, l := range lines {
		if l.kind == header && l.name == profile {
			target = l.section
		}
	}
	var b []string
	dropping := false
	for _, l := range lines {
		if l.section == target && target >= 0 {
			if l.kind == key {
				dropping = isCredentialKey(l.name)
			} else if l.kind != continuation && l.kind != blank && l.kind != comment {
				dropping = false
			}
			if dropping && (l.kind == key || l.kind == continuation) {
				continue
			}
		}
		b = append(b, strings.TrimSuffix(l.text, "\r")) // "x\r" at the end becomes "x" and "\r\n" once a newline follows
	}
	for len(b) > 0 && strings.TrimSpace(b[len(b)-1]) == "" {
		b = b[:len(b)-1]
	}
	return strings.Join(b, "\n")
}
