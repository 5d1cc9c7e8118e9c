// Package credfile edits the AWS shared credentials file
// (~/.aws/credentials) the way keyless update needs: it sets the three
// credential keys of one profile and leaves every other byte of the file
// as it was (other profiles, comments, blank lines, key order, line
// endings, other keys of the same profile), and it rewrites the file
// atomically, 0600, under a lock that keeps two keyless processes from
// losing each other's profile.
//
// The file is read as botocore (the AWS CLI) reads it, since that is the
// strictest reader in common use: a section header is "[" NAME "]" with
// NAME taken as it stands (botocore does not trim it), keys are
// case-insensitive and end at the first "=" or ":", a line indented
// deeper than the key above it continues that key's value, and "#" or ";"
// begins a comment line. In the credentials file a profile's section is
// [NAME], never [profile NAME] (that form belongs to ~/.aws/config).
//
// It is a domain package: any keyless package may import it.
package credfile

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
)

// The keys Set writes, in the order it adds them, as AWS's helper and the
// AWS CLI write them.
const (
	KeyAccessKeyID     = "aws_access_key_id"
	KeySecretAccessKey = "aws_secret_access_key"
	KeySessionToken    = "aws_session_token"
)

var credentialKeys = []string{KeyAccessKeyID, KeySecretAccessKey, KeySessionToken}

// Credentials are the values Set writes.
type Credentials struct {
	AccessKeyID, SecretAccessKey, SessionToken string
}

func (c Credentials) value(key string) string {
	switch key {
	case KeyAccessKeyID:
		return c.AccessKeyID
	case KeySecretAccessKey:
		return c.SecretAccessKey
	}
	return c.SessionToken
}

// Change says what Set changed.
type Change struct {
	// Created: the profile had no section, and one was appended.
	Created bool
	// Replaced and Added count the credential keys whose value was
	// replaced and those added to an existing section; Removed counts
	// duplicate credential keys dropped (botocore refuses a section that
	// holds a key twice).
	Replaced, Added, Removed int
}

// ErrProfileName is a profile name that cannot be written as a section
// of the credentials file.
var ErrProfileName = errors.New("invalid profile name")

// CheckProfile refuses a profile name the credentials file cannot hold
// unambiguously: empty, with a bracket, a control character or
// whitespace at either end, or in the config file's "profile NAME" form.
func CheckProfile(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: empty", ErrProfileName)
	case strings.TrimSpace(name) != name:
		return fmt.Errorf("%w %q: whitespace at either end", ErrProfileName, name)
	case strings.ContainsAny(name, "[]"):
		return fmt.Errorf("%w %q: it holds a bracket", ErrProfileName, name)
	case strings.HasPrefix(name, "profile "):
		return fmt.Errorf("%w %q: in the credentials file a profile's section is [NAME], not [profile NAME] (that is ~/.aws/config's form); give the name alone", ErrProfileName, name)
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("%w %q: it holds a control character", ErrProfileName, name)
		}
	}
	return nil
}

// ErrValue is a credential value that would not stay on its line.
var ErrValue = errors.New("invalid credential value")

func checkValue(key, v string) error {
	if v == "" {
		return fmt.Errorf("%w: %s is empty", ErrValue, key)
	}
	if strings.TrimSpace(v) != v {
		return fmt.Errorf("%w: %s has whitespace at either end", ErrValue, key)
	}
	for _, r := range v {
		if r < 0x20 || r == 0x7f {
			// Never the value itself: it is a secret.
			return fmt.Errorf("%w: %s holds a control character", ErrValue, key)
		}
	}
	return nil
}

// DuplicateProfileError is a file with the profile's section more than
// once. botocore refuses such a file, and other SDKs merge the sections
// in ways of their own, so Set does not guess which one to change.
type DuplicateProfileError struct {
	Profile string
	Lines   []int // of each [Profile] header, from 1
}

func (e *DuplicateProfileError) Error() string {
	return fmt.Sprintf("the profile [%s] appears %d times (lines %s); the AWS CLI refuses such a file: merge them into one", e.Profile, len(e.Lines), joinInts(e.Lines))
}

// AmbiguousHeaderError is a section header whose name is the profile's
// only with the spaces inside its brackets removed: botocore reads
// "[ NAME ]" as another profile than NAME, the Go SDK as the same one, so
// neither adding [NAME] nor changing it would be right for every reader.
type AmbiguousHeaderError struct {
	Profile string
	Line    int
	Header  string
}

func (e *AmbiguousHeaderError) Error() string {
	return fmt.Sprintf("line %d: %s is the profile %q to the AWS CLI but %q to other SDKs; write it [%s]", e.Line, e.Header, strings.TrimSuffix(strings.TrimPrefix(e.Header, "["), "]"), e.Profile, e.Profile)
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = fmt.Sprint(n)
	}
	return strings.Join(s, ", ")
}

// kind is what a line of the file is.
type kind int

const (
	blank kind = iota
	comment
	header       // [name]
	badHeader    // a line beginning with "[" with no "]" after it
	key          // name = value
	continuation // a line indented under a key: more of its value
	other        // none of these (botocore refuses it)
)

// line is one line of the file, its ending kept apart.
type line struct {
	text string // without its ending
	eol  string // "\n", "\r\n", or "" for a last line without one
	kind kind
	// name is a header's section name, as it stands, or a key's name,
	// lowercased and trimmed.
	name string
	// section is the index of the header the line falls under, -1 before
	// the first.
	section int
	// valueAt is where a key's value starts in text: after the delimiter
	// and the whitespace that follows it.
	valueAt int
}

// parse splits content into classified lines.
func parse(content string) []line {
	var lines []line
	for len(content) > 0 {
		l := line{}
		if i := strings.IndexByte(content, '\n'); i >= 0 {
			l.text, l.eol, content = content[:i], "\n", content[i+1:]
			if strings.HasSuffix(l.text, "\r") {
				l.text, l.eol = l.text[:len(l.text)-1], "\r\n"
			}
		} else {
			l.text, content = content, ""
		}
		lines = append(lines, l)
	}
	section, keyIndent, inKey := -1, 0, false
	for i := range lines {
		l := &lines[i]
		l.section = section
		trimmed := strings.TrimSpace(l.text)
		switch {
		case trimmed == "":
			l.kind = blank
			continue // a blank line does not end a value (botocore keeps empty lines in values)
		case trimmed[0] == '#' || trimmed[0] == ';':
			l.kind = comment
			continue
		}
		indent := len(l.text) - len(strings.TrimLeftFunc(l.text, unicode.IsSpace))
		if inKey && indent > keyIndent {
			l.kind = continuation
			continue
		}
		keyIndent, inKey = indent, false
		if trimmed[0] == '[' {
			if end := strings.LastIndexByte(trimmed, ']'); end > 1 {
				l.kind, l.name = header, trimmed[1:end]
			} else {
				l.kind = badHeader
			}
			section = i
			l.section = i
			continue
		}
		d := strings.IndexAny(l.text, "=:")
		if d < 0 {
			l.kind = other
			continue
		}
		l.kind, l.name, inKey = key, strings.ToLower(strings.TrimSpace(l.text[:d])), true
		l.valueAt = d + 1
		for l.valueAt < len(l.text) && (l.text[l.valueAt] == ' ' || l.text[l.valueAt] == '\t') {
			l.valueAt++
		}
	}
	return lines
}

// Set returns content with the profile's three credential keys set to c,
// and what it changed. A key already in the section keeps its place, its
// spelling and the spacing around its delimiter; only its value (and any
// continuation lines of the old value) changes, and later copies of it in
// the section are dropped. Missing keys go after the section's last key,
// before any blank lines and comments that lead into the next section. A
// missing section is appended at the end, after a blank line. New lines
// end as the file's first line does ("\n" for an empty file). Every other
// byte is kept.
func Set(content []byte, profile string, c Credentials) ([]byte, Change, error) {
	if err := CheckProfile(profile); err != nil {
		return nil, Change{}, err
	}
	for _, k := range credentialKeys {
		if err := checkValue(k, c.value(k)); err != nil {
			return nil, Change{}, err
		}
	}
	if bareCR(content) {
		return nil, Change{}, ErrBareCR
	}
	lines := parse(string(content))
	eol := "\n"
	if len(lines) > 0 && lines[0].eol == "\r\n" {
		eol = "\r\n"
	}
	target := -1
	var dups []int
	for i, l := range lines {
		if l.kind != header {
			continue
		}
		switch {
		case l.name == profile:
			dups = append(dups, i+1)
			target = i
		case strings.TrimSpace(l.name) == profile:
			return nil, Change{}, &AmbiguousHeaderError{Profile: profile, Line: i + 1, Header: strings.TrimSpace(l.text)}
		}
	}
	if len(dups) > 1 {
		return nil, Change{}, &DuplicateProfileError{Profile: profile, Lines: dups}
	}
	var ch Change
	out := make([]line, 0, len(lines)+5)
	if target < 0 {
		out = append(out, lines...)
		if n := len(out); n > 0 {
			if out[n-1].eol == "" {
				out[n-1].eol = eol
			}
			if out[n-1].kind != blank {
				out = append(out, line{eol: eol})
			}
		}
		out = append(out, line{text: "[" + profile + "]", eol: eol})
		for _, k := range credentialKeys {
			out = append(out, line{text: k + " = " + c.value(k), eol: eol})
		}
		ch.Created = true
		return render(out), ch, nil
	}
	seen := map[string]bool{}
	insertAt := -1 // index in out after which missing keys go
	dropping := false
	for i, l := range lines {
		if l.section != target {
			out = append(out, l)
			continue
		}
		if l.kind == continuation && dropping {
			continue
		}
		if l.kind != continuation && l.kind != blank && l.kind != comment {
			dropping = false // blank lines and comments do not end a value
		}
		if l.kind == key && isCredentialKey(l.name) {
			dropping = true
			if seen[l.name] {
				ch.Removed++
				continue
			}
			seen[l.name] = true
			ch.Replaced++
			l.text = l.text[:l.valueAt] + c.value(l.name)
		}
		out = append(out, l)
		if l.kind != blank && l.kind != comment || i == target {
			insertAt = len(out) - 1
		}
	}
	// A line indented deeper than a key continues its value, so the keys
	// added take the indentation of the next line that is not blank or a
	// comment: it stays what it was, not more of their value. (It is
	// never deeper than a key above the insertion point: it would be
	// that key's continuation, and the insertion point after it.)
	indent := ""
	for _, l := range out[insertAt+1:] {
		if l.kind != blank && l.kind != comment {
			indent = l.text[:len(l.text)-len(strings.TrimLeftFunc(l.text, unicode.IsSpace))]
			break
		}
	}
	var missing []line
	for _, k := range credentialKeys {
		if !seen[k] {
			missing = append(missing, line{text: indent + k + " = " + c.value(k), eol: eol})
			ch.Added++
		}
	}
	if len(missing) > 0 {
		if out[insertAt].eol == "" {
			out[insertAt].eol = eol
			missing[len(missing)-1].eol = ""
		}
		out = append(out[:insertAt+1], append(missing, out[insertAt+1:]...)...)
	}
	return render(out), ch, nil
}

// ErrBareCR is a file with a carriage return that does not end a line
// with the newline after it: botocore reads a lone "\r" as a line break
// (old Mac line endings), keyless would not, and the two would disagree
// on where the profile is.
var ErrBareCR = errors.New(`holds a carriage return without a newline after it (old Mac line endings?); convert the file to "\n" or "\r\n" line endings`)

func bareCR(b []byte) bool {
	for i, c := range b {
		if c == '\r' && (i+1 == len(b) || b[i+1] != '\n') {
			return true
		}
	}
	return false
}

func isCredentialKey(name string) bool {
	return name == KeyAccessKeyID || name == KeySecretAccessKey || name == KeySessionToken
}

func render(lines []line) []byte {
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(l.text)
		b.WriteString(l.eol)
	}
	return []byte(b.String())
}

// Get returns the credential keys of the profile as the AWS CLI would
// read them (the first of each; continuation lines are not joined), and
// whether the profile has a section. It is for tests and checks; it never
// fails.
func Get(content []byte, profile string) (Credentials, bool) {
	var c Credentials
	found := false
	target := -1
	for _, l := range parse(string(content)) {
		if l.kind == header && l.name == profile && target < 0 {
			target, found = l.section, true
		}
		if !found || l.section != target || l.kind != key {
			continue
		}
		v := strings.TrimSpace(l.text[l.valueAt:])
		switch {
		case l.name == KeyAccessKeyID && c.AccessKeyID == "":
			c.AccessKeyID = v
		case l.name == KeySecretAccessKey && c.SecretAccessKey == "":
			c.SecretAccessKey = v
		case l.name == KeySessionToken && c.SessionToken == "":
			c.SessionToken = v
		}
	}
	return c, found
}
